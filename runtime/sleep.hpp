// SPDX-License-Identifier: MIT
// weft::rt: parking idle workers without lost wake-ups.
// Owns: the parked bits and the count of searching workers. Touched by:
// worker.cpp (park, search), caller.cpp (claims a parked slot), any thread
// (notify). Each step has a WEFT_ASSERT (docs/protocols/sleep.md).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "platform.hpp"

namespace weft::rt {

// The sleep/wake protocol of a runtime's workers (docs/protocols/sleep.md).
//
// A worker is running, searching (looking for work to steal) or parked.
// m_searching counts searching workers; a bit per parked worker is set in
// m_parked. Invariant: while work is visible to thieves, some worker is
// searching or no worker is parked. Kept by three rules:
//   1. a producer, after making work visible, calls notify_one(): it wakes a
//      parked worker when nobody is searching;
//   2. the last searcher to find work calls notify_one(), so that the search
//      goes on while more work may be there (Go's spinning-thread rule);
//   3. a worker parks in two steps: prepare_park() (set its bit, stop
//      searching, full fence), then a re-check of every source of work, then
//      commit_park() or cancel_park(). The fences in prepare_park() and
//      notify_one() make "work published, then sleepers checked" and "sleeper
//      registered, then work checked" a Dekker pair: at least one side sees
//      the other.
// A waker clears the sleeper's bit first (exactly one waker wins it), counts
// the sleeper as searching, then sets its state and wakes its futex; so every
// wake-up is handed over exactly once and a cancelled park never leaves a
// stale token behind.
class sleep_set {
 public:
  // `parkers` entries: one per worker thread, and one per thread that may
  // borrow a worker's slot (see lending below).
  explicit sleep_set(int parkers);
  sleep_set(const sleep_set&) = delete;
  sleep_set& operator=(const sleep_set&) = delete;

  // The calling worker starts searching.
  void start_search() noexcept { m_searching.fetch_add(1, std::memory_order_seq_cst); }
  // A searching worker found work; wakes another if it was the last searcher.
  void found_work() noexcept {
    if (m_searching.fetch_sub(1, std::memory_order_seq_cst) == 1) notify_one();
  }
  // A searching worker stops searching without parking (shutdown).
  void stop_search() noexcept { m_searching.fetch_sub(1, std::memory_order_seq_cst); }

  // Worker w (searching) registers as parked. The caller must then re-check
  // every source of work and call cancel_park(w) or commit_park(w).
  void prepare_park(int w) noexcept;
  // w found work after prepare_park(w). Returns when w is searching again:
  // either it removed its own bit, or a waker took it (then this waits, very
  // briefly, for that waker's hand-over).
  void cancel_park(int w) noexcept;
  // Blocks w until a waker hands it a wake-up; w is searching on return.
  void commit_park(int w) noexcept;
  // The same for at most about timeout_ns: then w takes its own bit back
  // (as cancel_park(w)), unless a waker won it meanwhile.
  void commit_park_for(int w, std::uint64_t timeout_ns) noexcept;

  // After making work visible to thieves: wakes one parked worker unless some
  // worker is searching. Any thread.
  void notify_one() noexcept;
  // Wakes parker w if it is parked (after the caller made its condition true:
  // full fence, then its bit). Any thread.
  void notify(int w) noexcept;

  // ---- lending (docs/protocols/callers.md) ----
  //
  // A parked worker's slot can be lent to a thread from outside: the borrower
  // wins the parked bit as a waker would, but hands nothing over, so the
  // parker stays blocked (its state stays parked) and touches nothing of its
  // worker until the slot comes back.

  // Wins the bit of one parked entry in [first, last) without waking it;
  // returns the entry, or -1 when none is parked. Any thread.
  int claim_parked(int first, int last) noexcept;
  // Some entry in [first, last) is parked (a hint: it may be claimed by
  // another thread at once). Any thread.
  bool any_parked(int first, int last) const noexcept;
  // How many entries in [first, last) are parked (a hint, as any_parked).
  int parked_count(int first, int last) const noexcept;
  // Gives back entry w, claimed by claim_parked() and still blocked: parks it
  // again (sets its bit; nothing to hand over), or, when `wake`, hands it a
  // wake-up. The caller then re-checks for visible work (see park rules).
  void give_back(int w, bool wake) noexcept;
  // Wakes every parked worker (shutdown). Any thread.
  void notify_all() noexcept;

  int searching() const noexcept { return m_searching.load(std::memory_order_relaxed); }
  // For inline hints (detail::job_ring::others_may_be_idle): the count of
  // searchers, and the parked bits of entries 0-63.
  const std::atomic<int>& searching_count() const noexcept { return m_searching; }
  const std::atomic<std::uint64_t>& first_parked_word() const noexcept { return m_parked[0].m_bits; }

 private:
  static constexpr std::uint32_t k_awake = 0;
  static constexpr std::uint32_t k_parked = 1;
  static constexpr std::uint32_t k_notified = 2;

  void hand_over(int w) noexcept;

  struct alignas(k_false_sharing) slot {
    std::atomic<std::uint32_t> m_state{k_awake};  // futex word; written by w and by its one waker
  };
  struct alignas(k_false_sharing) word {
    std::atomic<std::uint64_t> m_bits{0};
  };

  alignas(k_false_sharing) std::atomic<int> m_searching{0};
  int m_words;
  std::unique_ptr<word[]> m_parked;
  std::unique_ptr<slot[]> m_slots;
};

}  // namespace weft::rt
