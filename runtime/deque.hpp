// SPDX-License-Identifier: MIT
// weft::rt: the Chase-Lev work-stealing deque.
// Owns: its buffers. Touched by: job_queue.hpp only (owner push/pop, thieves
// steal).
#pragma once

#include <atomic>
#include <cstdint>
#include <new>
#include <type_traits>

#include "assert.hpp"
#include "platform.hpp"
#include "weft/detail/deque_ends.hpp"

namespace weft::rt {

static_assert(detail::deque_ends::k_line == k_false_sharing);

// A growable work-stealing deque of pointers (Chase and Lev, "Dynamic circular
// work-stealing deque", SPAA 2005) with the C11 memory orderings of Lê, Pop,
// Cohen and Zappa Nardelli, "Correct and efficient work-stealing for weak
// memory models", PPoPP 2013 (checked there with a model checker).
//
// The owner thread pushes and takes at the bottom; any thread steals at the
// top. Invariants (docs/protocols/deque.md):
//   - top only grows, by a CAS; bottom is written by the owner only;
//   - the live elements are the indices [top, bottom) of the current array;
//   - indices are signed 64-bit: take() on an empty deque makes bottom < top
//     for a moment;
//   - slots are relaxed atomics: a thief may read a slot that the owner is
//     overwriting after a wrap, and then its CAS on top fails;
//   - an array replaced by growth stays allocated until the deque dies,
//     because a thief may still read from it.
template <class T>
class deque {
  static_assert(std::is_pointer_v<T>, "deque holds pointers");

 public:
  enum class steal_status { success, empty, lost_race };
  struct steal_result {
    steal_status status;
    T value;
  };

  explicit deque(std::int64_t capacity = 256) : m_array(array::make(round_up(capacity), nullptr)) {}
  ~deque() {
    array* a = m_array.load(std::memory_order_relaxed);
    while (a != nullptr) {
      array* prev = a->m_prev;
      array::destroy(a);
      a = prev;
    }
  }
  deque(const deque&) = delete;
  deque& operator=(const deque&) = delete;

  // Owner only. Never fails except by std::bad_alloc when growing.
  void push(T x) {
    const std::int64_t b = m_ends.m_bottom.load(std::memory_order_relaxed);
    const std::int64_t t = m_ends.m_top.load(std::memory_order_acquire);
    array* a = m_array.load(std::memory_order_relaxed);
    if (b - t > a->m_mask) a = grow(a, t, b);  // reloads the array after growing
    put(a, b, x);
  }

  // Owner only: pushes back an element that take() returned, after the
  // takes since; the deque held it, so it does not grow.
  void push_back_taken(T x) noexcept {
    const std::int64_t b = m_ends.m_bottom.load(std::memory_order_relaxed);
    array* a = m_array.load(std::memory_order_relaxed);
    WEFT_ASSERT(b - m_ends.m_top.load(std::memory_order_relaxed) <= a->m_mask,
                "deque::push_back_taken: room for an element that was taken");
    put(a, b, x);
  }

  // Owner only. The newest element, or nullptr when empty.
  T take() noexcept {
    const std::int64_t b = m_ends.m_bottom.load(std::memory_order_relaxed) - 1;
    array* a = m_array.load(std::memory_order_relaxed);
    m_ends.m_bottom.store(b, std::memory_order_relaxed);
    full_fence();  // orders the store of bottom before the load of top (pairs with steal())
    std::int64_t t = m_ends.m_top.load(std::memory_order_relaxed);
    if (t > b) {  // empty
      m_ends.m_bottom.store(b + 1, std::memory_order_relaxed);
      return nullptr;
    }
    T x = a->slot(b).load(k_relaxed_or_acquire);
    if (t == b) {  // the last element: race with thieves through top
      if (!m_ends.m_top.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst, std::memory_order_relaxed)) {
        x = nullptr;
      }
      m_ends.m_bottom.store(b + 1, std::memory_order_relaxed);
    }
    return x;
  }

  // Any thread. The oldest element, `empty`, or `lost_race` when another thief
  // or the owner took it first (the deque may still hold elements then).
  steal_result steal() noexcept {
    std::int64_t t = m_ends.m_top.load(std::memory_order_acquire);
    full_fence();  // orders the load of top before the load of bottom (pairs with take())
    const std::int64_t b = m_ends.m_bottom.load(std::memory_order_acquire);  // pairs with push()
    if (t >= b) return {steal_status::empty, nullptr};
    array* a = m_array.load(std::memory_order_acquire);  // pairs with the release in grow()
    T x = a->slot(t).load(k_relaxed_or_acquire);         // read before the CAS: after it the slot may be reused
    if (!m_ends.m_top.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst, std::memory_order_relaxed)) {
      return {steal_status::lost_race, nullptr};
    }
    return {steal_status::success, x};
  }

  // The two ends, for a reader that only looks (detail::job_ring).
  const detail::deque_ends& ends() const noexcept { return m_ends; }

  // Any thread; a hint only (exact for the owner when no thief is active).
  bool looks_empty() const noexcept {
    return m_ends.m_bottom.load(std::memory_order_relaxed) <= m_ends.m_top.load(std::memory_order_relaxed);
  }
  // Any thread; a hint only.
  std::int64_t size_hint() const noexcept {
    const std::int64_t n =
        m_ends.m_bottom.load(std::memory_order_relaxed) - m_ends.m_top.load(std::memory_order_relaxed);
    return n < 0 ? 0 : n;
  }

 private:
  struct array {
    std::int64_t m_mask;
    array* m_prev;  // the array this one replaced (freed with the deque)
    std::atomic<T>* slots() noexcept { return reinterpret_cast<std::atomic<T>*>(this + 1); }
    std::atomic<T>& slot(std::int64_t i) noexcept { return slots()[i & m_mask]; }

    static array* make(std::int64_t capacity, array* prev) {
      void* p = ::operator new(sizeof(array) + sizeof(std::atomic<T>) * static_cast<std::size_t>(capacity));
      auto* a = ::new (p) array{capacity - 1, prev};
      for (std::int64_t i = 0; i < capacity; ++i) ::new (&a->slots()[i]) std::atomic<T>(nullptr);
      return a;
    }
    static void destroy(array* a) noexcept { ::operator delete(a); }
  };

  // Owner only: stores x at bottom b of a, which has room, and publishes it.
  void put(array* a, std::int64_t b, T x) noexcept {
    a->slot(b).store(x, k_relaxed_or_release);
    release_fence();                                     // publishes the slot (and *x) before bottom
    m_ends.m_bottom.store(b + 1, k_relaxed_or_release);  // pairs with the acquire load in steal()
  }

  static std::int64_t round_up(std::int64_t n) noexcept {
    std::int64_t c = 16;
    while (c < n) c *= 2;
    return c;
  }

  // Owner only: copies [t, b) into an array twice as large and publishes it.
  array* grow(array* a, std::int64_t t, std::int64_t b) {
    array* bigger = array::make((a->m_mask + 1) * 2, a);
    for (std::int64_t i = t; i < b; ++i) {
      bigger->slot(i).store(a->slot(i).load(std::memory_order_relaxed), std::memory_order_relaxed);
    }
    m_array.store(bigger, std::memory_order_release);  // pairs with the acquire load in steal()
    return bigger;
  }

  detail::deque_ends m_ends;  // top and bottom, each on a line of its own
  alignas(k_false_sharing) std::atomic<array*> m_array;
};

}  // namespace weft::rt
