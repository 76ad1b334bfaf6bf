// weft: a mutex, a condition variable and a latch that suspend the calling
// fiber instead of blocking its worker thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "weft/detail/export.hpp"
#include "weft/detail/waiter.hpp"

namespace weft {

namespace detail {

// A FIFO of waiting fibers or threads, guarded by a spin bit kept in an
// atomic word of its owner. Plumbing for the classes below.
struct wait_queue {
  void* m_head = nullptr;
  void* m_tail = nullptr;
};

}  // namespace detail

class mutex;
class latch;

namespace detail {
// For coroutine awaiters (weft/coroutine.hpp): queue n on m unless m can be
// taken now. True: queued (n's task runs once the mutex is handed to it);
// false: the caller holds the mutex now. Any thread.
WEFT_API bool mutex_lock_async(mutex& m, wait_node& n) noexcept;
// Queue n on l unless l is open. True: queued (n's task runs when the counter
// reaches zero); false: open now.
WEFT_API bool latch_wait_async(const latch& l, wait_node& n) noexcept;
}  // namespace detail

// A mutex for fibers (Lockable: std::lock_guard, std::unique_lock and
// std::scoped_lock work with it). lock() on a worker suspends the calling
// fiber while another holds the mutex, and the worker runs other work; from a
// thread outside any runtime it blocks that thread without spinning.
//
// Cost: an uncontended lock()/unlock() pair is two compare-and-swaps.
// Fairness: when the mutex is contended, unlock() hands it directly to the
// longest-waiting waiter (FIFO) and newcomers queue behind; so a waiter gets
// the mutex after at most as many critical sections as there were waiters
// ahead of it. Not recursive; unlock() by a non-owner is undefined, as for
// std::mutex. Any fiber of any runtime, and any thread, may use one mutex.
//
// Every wait on a worker (mutex::lock, condition_variable::wait, latch::wait)
// switches to another fiber, which may need a new stack. When none can be
// created (the process reached vm.max_map_count, or memory ran out) the wait
// throws std::system_error (std::errc::not_enough_memory) whose message names
// the limit, rather than block the worker's thread: the party that would end
// the wait may be a task queued behind it on that very thread.
class WEFT_API mutex {
 public:
  constexpr mutex() noexcept = default;
  // Destroying a locked mutex prints one line and aborts (its waiters would
  // hang, and the unlock would write freed memory), except while the process
  // exits (a static mutex may be held then).
  ~mutex();
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;

  // Throws std::system_error when it must wait and no fiber can be had (see
  // above); nothing is locked then.
  void lock() {
    std::uintptr_t expected = 0;
    if (!m_state.compare_exchange_strong(expected, k_locked, std::memory_order_acquire, std::memory_order_relaxed)) {
      lock_slow();
    }
  }
  bool try_lock() noexcept {
    std::uintptr_t expected = 0;
    return m_state.compare_exchange_strong(expected, k_locked, std::memory_order_acquire, std::memory_order_relaxed);
  }
  void unlock() noexcept {
    std::uintptr_t expected = k_locked;
    if (!m_state.compare_exchange_strong(expected, 0, std::memory_order_release, std::memory_order_relaxed)) {
      unlock_slow();
    }
  }

 private:
  friend class condition_variable;
  friend bool detail::mutex_lock_async(mutex& m, detail::wait_node& n) noexcept;
  static constexpr std::uintptr_t k_locked = 1;   // held
  static constexpr std::uintptr_t k_guard = 2;    // the wait queue is being changed
  static constexpr std::uintptr_t k_waiters = 4;  // the wait queue is not empty

  void lock_slow();
  void unlock_slow() noexcept;

  std::atomic<std::uintptr_t> m_state{0};
  detail::wait_queue m_queue;
};

// A condition variable for weft::mutex. wait() on a worker suspends the
// calling fiber; outside a runtime it blocks the thread without spinning. A
// notification that happens after wait() released the mutex is never lost.
// Waiters are woken in FIFO order. Spurious wake-ups do not happen, but use the
// predicate form anyway, as with std::condition_variable.
class WEFT_API condition_variable {
 public:
  constexpr condition_variable() noexcept = default;
  // Destroying a condition variable while a fiber or thread waits on it
  // prints one line and aborts (the waiter would hang). Destroying it right
  // after notify_all() is fine.
  ~condition_variable();
  condition_variable(const condition_variable&) = delete;
  condition_variable& operator=(const condition_variable&) = delete;

  // Releases lock, waits for a notification, re-acquires lock. lock must own
  // its mutex (std::invalid_argument otherwise). Throws std::system_error,
  // with lock still held and nothing waited for, when no fiber can be had
  // (see mutex); or what mutex::lock() throws when re-acquiring.
  void wait(std::unique_lock<weft::mutex>& lock);
  template <class Predicate>
  void wait(std::unique_lock<weft::mutex>& lock, Predicate pred) {
    while (!pred()) wait(lock);
  }
  void notify_one() noexcept;
  void notify_all() noexcept;

 private:
  std::atomic<std::uintptr_t> m_guard{0};
  detail::wait_queue m_queue;
};

// A single-use barrier with the interface of std::latch. wait() on a worker
// suspends the calling fiber; outside a runtime it blocks the thread without
// spinning.
class WEFT_API latch {
 public:
  // Throws std::invalid_argument if expected is negative.
  explicit latch(std::ptrdiff_t expected);
  latch(const latch&) = delete;
  latch& operator=(const latch&) = delete;

  // Destroying a latch while a fiber, thread or coroutine waits on it prints
  // one line and aborts (the waiter would hang, and a later count_down would
  // write freed memory). A latch may be destroyed as soon as its wait()
  // returned, even while the count_down() that opened it is still running.
  ~latch();

  static constexpr std::ptrdiff_t max() noexcept { return PTRDIFF_MAX >> 2; }

  // Decrements the counter by n; releases the waiters when it reaches zero.
  // Throws std::invalid_argument if n is negative or larger than the counter.
  void count_down(std::ptrdiff_t n = 1);
  // True when the counter is zero and the count_down() that brought it there
  // is done with the latch. Acquire: pairs with count_down()'s release.
  bool try_wait() const noexcept { return (m_state.load(std::memory_order_acquire) & ~k_broken) == 0; }
  // Returns once the counter is zero. On a worker that cannot get a fiber to
  // wait on (see mutex) it throws std::system_error naming the limit, and
  // breaks the latch: more parties wait at once than the system has stacks
  // for, and those that would count it down are commonly skipped after such
  // a failure (a failed task_group or loop starts nothing more), so the
  // fibers and threads waiting on it are woken and throw std::system_error
  // too, as does every later wait() while the counter is not zero. Coroutines
  // (co_await) hold no stack: they keep waiting for zero.
  void wait() const;
  void arrive_and_wait(std::ptrdiff_t n = 1) {
    count_down(n);
    wait();
  }

 private:
  friend bool detail::latch_wait_async(const latch& l, detail::wait_node& n) noexcept;
  // m_state: the counter times k_one, plus k_guard (the wait queue is being
  // changed) and k_broken (see wait()). The count_down() that reaches zero
  // takes the guard in the same step and clears it with its last access to
  // the latch, so the state reads exactly 0 (or k_broken) only once no
  // count_down() touches the latch any more (docs/protocols/sync.md).
  static constexpr std::uintptr_t k_guard = 1;
  static constexpr std::uintptr_t k_broken = 2;
  static constexpr int k_shift = 2;
  mutable std::atomic<std::uintptr_t> m_state;
  mutable detail::wait_queue m_queue;
};

}  // namespace weft
