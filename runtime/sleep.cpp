// SPDX-License-Identifier: MIT
#include "sleep.hpp"

#include "assert.hpp"
#include "futex.hpp"

namespace weft::rt {

sleep_set::sleep_set(int parkers)
    : m_words((parkers + 63) / 64),
      m_parked(std::make_unique<word[]>(static_cast<std::size_t>(m_words))),
      m_slots(std::make_unique<slot[]>(static_cast<std::size_t>(parkers))) {}

void sleep_set::prepare_park(int w) noexcept {
  WEFT_ASSERT(m_slots[w].m_state.load(std::memory_order_relaxed) == k_awake, "prepare_park: w is awake");
  m_slots[w].m_state.store(k_parked, std::memory_order_relaxed);  // published by the seq_cst RMW below
  [[maybe_unused]] const std::uint64_t old =
      m_parked[w / 64].m_bits.fetch_or(std::uint64_t{1} << (w % 64), std::memory_order_seq_cst);
  WEFT_ASSERT((old & (std::uint64_t{1} << (w % 64))) == 0, "prepare_park: w's parked bit was clear");
  [[maybe_unused]] const int searchers = m_searching.fetch_sub(1, std::memory_order_seq_cst);
  WEFT_ASSERT(searchers > 0, "prepare_park: w was counted as searching");
  full_fence();  // the caller's re-check of work reads after this (pairs with notify_one())
}

void sleep_set::cancel_park(int w) noexcept {
  const std::uint64_t bit = std::uint64_t{1} << (w % 64);
  const std::uint64_t old = m_parked[w / 64].m_bits.fetch_and(~bit, std::memory_order_seq_cst);
  if ((old & bit) != 0) {  // still ours: nobody will hand us a wake-up
    m_slots[w].m_state.store(k_awake, std::memory_order_relaxed);
    m_searching.fetch_add(1, std::memory_order_seq_cst);
    return;
  }
  commit_park(w);  // a waker won the bit: take its hand-over (it is on its way)
}

void sleep_set::commit_park(int w) noexcept {
  std::atomic<std::uint32_t>& state = m_slots[w].m_state;
  while (state.load(std::memory_order_acquire) == k_parked) {  // pairs with the release in hand_over()
    futex_wait(state, k_parked);
  }
  state.store(k_awake, std::memory_order_relaxed);
}

void sleep_set::commit_park_for(int w, std::uint64_t timeout_ns) noexcept {
  std::atomic<std::uint32_t>& state = m_slots[w].m_state;
  if (state.load(std::memory_order_acquire) == k_parked) futex_wait_for(state, k_parked, timeout_ns);
  if (state.load(std::memory_order_acquire) == k_parked) {
    cancel_park(w);  // timed out (or woken spuriously): its bit back, or the waker's hand-over
    return;
  }
  state.store(k_awake, std::memory_order_relaxed);  // handed over (pairs with the release in hand_over())
}

void sleep_set::hand_over(int w) noexcept {
  // The caller won w's parked bit, which prepare_park() set after this state
  // (or give_back() while the state stayed parked): one wake-up per park.
  WEFT_ASSERT(m_slots[w].m_state.load(std::memory_order_relaxed) == k_parked, "hand_over: w is parked");
  m_searching.fetch_add(1, std::memory_order_seq_cst);  // w searches on waking up
  m_slots[w].m_state.store(k_notified, std::memory_order_release);
  futex_wake(m_slots[w].m_state, 1);
}

void sleep_set::notify_one() noexcept {
  full_fence();  // orders the caller's publication of work before the loads below (pairs with prepare_park())
  if (m_searching.load(std::memory_order_relaxed) > 0) return;
  for (int i = 0; i < m_words; ++i) {
    std::uint64_t bits = m_parked[i].m_bits.load(std::memory_order_relaxed);
    while (bits != 0) {
      const std::uint64_t bit = bits & (~bits + 1);
      if (m_parked[i].m_bits.compare_exchange_weak(bits, bits & ~bit, std::memory_order_acq_rel,
                                                   std::memory_order_relaxed)) {
        hand_over(i * 64 + __builtin_ctzll(bit));
        return;
      }
    }
  }
}

void sleep_set::notify(int w) noexcept {
  full_fence();  // orders the caller's condition before the load below (pairs with prepare_park())
  const std::uint64_t bit = std::uint64_t{1} << (w % 64);
  std::atomic<std::uint64_t>& word = m_parked[w / 64].m_bits;
  std::uint64_t bits = word.load(std::memory_order_relaxed);
  while ((bits & bit) != 0) {
    if (word.compare_exchange_weak(bits, bits & ~bit, std::memory_order_acq_rel, std::memory_order_relaxed)) {
      hand_over(w);
      return;
    }
  }
}

namespace {
// The bits of entries [first, last) in word i of the parked set.
std::uint64_t entries_in_word(int i, int first, int last) noexcept {
  std::uint64_t mask = ~std::uint64_t{0};
  if (i == first / 64) mask &= ~std::uint64_t{0} << (first % 64);
  if ((i + 1) * 64 > last && last % 64 != 0) mask &= (std::uint64_t{1} << (last % 64)) - 1;
  return mask;
}
}  // namespace

bool sleep_set::any_parked(int first, int last) const noexcept {
  for (int i = first / 64; i * 64 < last; ++i) {
    if ((m_parked[i].m_bits.load(std::memory_order_seq_cst) & entries_in_word(i, first, last)) != 0) return true;
  }
  return false;
}

int sleep_set::parked_count(int first, int last) const noexcept {
  int n = 0;
  for (int i = first / 64; i * 64 < last; ++i) {
    n += __builtin_popcountll(m_parked[i].m_bits.load(std::memory_order_relaxed) & entries_in_word(i, first, last));
  }
  return n;
}

int sleep_set::claim_parked(int first, int last) noexcept {
  for (int i = first / 64; i * 64 < last; ++i) {
    const std::uint64_t mask = entries_in_word(i, first, last);
    std::atomic<std::uint64_t>& word = m_parked[i].m_bits;
    std::uint64_t bits = word.load(std::memory_order_relaxed);
    while ((bits & mask) != 0) {
      const std::uint64_t bit = bits & mask & (~(bits & mask) + 1);
      // acq_rel: the parker's writes before prepare_park() happen-before the
      // borrower's use of its slot (pairs with the seq_cst fetch_or there).
      if (word.compare_exchange_weak(bits, bits & ~bit, std::memory_order_acq_rel, std::memory_order_relaxed)) {
        const int w = i * 64 + __builtin_ctzll(bit);
        WEFT_ASSERT(m_slots[w].m_state.load(std::memory_order_relaxed) == k_parked, "claim_parked: w is parked");
        return w;
      }
    }
  }
  return -1;
}

void sleep_set::give_back(int w, bool wake) noexcept {
  if (wake) {
    hand_over(w);  // its state store releases the borrower's writes to the parker
    return;
  }
  // seq_cst, and release: the borrower's writes happen-before whoever wins the
  // bit next (a waker, then the parker; or another borrower).
  [[maybe_unused]] const std::uint64_t old =
      m_parked[w / 64].m_bits.fetch_or(std::uint64_t{1} << (w % 64), std::memory_order_seq_cst);
  WEFT_ASSERT((old & (std::uint64_t{1} << (w % 64))) == 0, "give_back: the borrower held w's parked bit");
  full_fence();  // the caller's re-check of work reads after this (as in prepare_park())
}

void sleep_set::notify_all() noexcept {
  full_fence();
  for (int i = 0; i < m_words; ++i) {
    std::uint64_t bits = m_parked[i].m_bits.exchange(0, std::memory_order_acq_rel);
    while (bits != 0) {
      const int b = __builtin_ctzll(bits);
      bits &= bits - 1;
      hand_over(i * 64 + b);
    }
  }
}

}  // namespace weft::rt
