// SPDX-License-Identifier: MIT
// weft: a mutex, a condition variable, a latch and a barrier that suspend the
// calling fiber instead of blocking its worker thread.
#pragma once

#include "weft/detail/cxx20.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <type_traits>
#include <utility>

#include "weft/detail/export.hpp"
#include "weft/detail/fifo.hpp"
#include "weft/detail/waiter.hpp"

namespace weft {

namespace detail {

// A FIFO of waiting fibers or threads, guarded by a spin bit kept in an
// atomic word of its owner. Plumbing for the classes below.
using wait_queue = intrusive_fifo<wait_node>;

// The bits of a weft::mutex's state word; runtime/sync.cpp holds the protocol.
struct mutex_bits {
  static constexpr std::uintptr_t k_locked = 1;   // held
  static constexpr std::uintptr_t k_guard = 2;    // the wait queue is being changed
  static constexpr std::uintptr_t k_waiters = 4;  // the wait queue is not empty (the mutex may be free)
};

}  // namespace detail

class mutex;
class latch;

namespace detail {
// For coroutine awaiters (weft/coroutine.hpp): queue n on m unless m can be
// taken now. True: queued (n's task runs once it has taken the mutex: woken
// with the mutex free, it competes for it, as mutex::lock's waiters do);
// false: the caller holds the mutex now. Any thread.
WEFT_API bool mutex_lock_async(mutex& m, wait_node& n) noexcept;
// Inside the library: what it reaches of a mutex besides the calls above.
struct mutex_access;
// Queue n on l unless l is open. True: queued (n's task runs when the counter
// reaches zero); false: open now.
WEFT_API bool latch_wait_async(const latch& l, wait_node& n) noexcept;
class barrier_core;
class barrier_token;
// Queue n on b unless the phase of `token` (a token of b) is over. True:
// queued (n's task runs when the phase completes); false: over now.
WEFT_API bool barrier_wait_async(const barrier_core& b, const barrier_token& token, wait_node& n) noexcept;
}  // namespace detail

// A mutex for fibers (Lockable: std::lock_guard, std::unique_lock and
// std::scoped_lock work with it). lock() on a worker suspends the calling
// fiber while another holds the mutex, and the worker runs other work; from a
// thread outside any runtime it blocks that thread without spinning.
//
// Cost: an uncontended lock()/unlock() pair is two compare-and-swaps.
// Fairness: as std::mutex's. When the mutex is contended, unlock() wakes the
// longest-waiting waiter (FIFO) and leaves the mutex free: the woken one
// competes for it with newcomers, and goes back to the head of the queue if
// one took it first. (Handing it over instead, the mutex stayed held while
// the woken waiter waited for a worker to run it, and every newcomer queued
// behind: a loop whose items took one mutex turned into one suspension, and
// one fiber, per item.) A coroutine's lock_async waits the same way. Not
// recursive; unlock() by a non-owner is undefined, as for
// std::mutex. Any fiber of any runtime, and any thread, may use one mutex.
//
// Every wait on a worker (mutex::lock, condition_variable::wait, latch::wait,
// the barrier's waits) switches to another fiber, which may need a new stack. When none can be
// created (the process reached vm.max_map_count, or memory ran out) the wait
// throws std::system_error (std::errc::not_enough_memory) whose message names
// the limit, rather than block the worker's thread: the party that would end
// the wait may be a task queued behind it on that very thread.
class WEFT_API mutex : private detail::mutex_bits {
 public:
  constexpr mutex() noexcept = default;
  // Destroying a locked mutex prints one line and aborts (its waiters would
  // hang, and the unlock would write freed memory), except during the
  // process's exit and for a mutex of static storage duration or a
  // thread_local of the destroying thread (destroyed only as the process
  // exits or that thread ends: a static mutex may be held then). A mutex
  // whose waiter was woken and has not taken it yet is free and has no
  // queued waiter: destroying it then is undefined, as for std::mutex.
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
  // Takes the mutex if it is free, also while woken waiters compete for it;
  // may fail while another thread queues or wakes a waiter (as
  // std::mutex::try_lock may fail spuriously).
  bool try_lock() noexcept {
    std::uintptr_t s = m_state.load(std::memory_order_relaxed);
    while ((s & (k_locked | k_guard)) == 0) {
      if (m_state.compare_exchange_weak(s, s | k_locked, std::memory_order_acquire, std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
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
  friend struct detail::mutex_access;

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
  // prints one line and aborts (the waiter would hang), with the exceptions
  // of ~mutex(). Destroying it right after notify_all() is fine.
  ~condition_variable();
  condition_variable(const condition_variable&) = delete;
  condition_variable& operator=(const condition_variable&) = delete;

  // Releases lock, waits for a notification, re-acquires lock. lock must own
  // its mutex (std::invalid_argument otherwise). Throws std::system_error,
  // with lock still held and nothing waited for, when no fiber can be had
  // (see mutex); or what mutex::lock() throws when re-acquiring, and then
  // lock owns nothing (owns_lock() is false: the mutex is not held).
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
  // Throws std::invalid_argument if expected is negative or greater than max().
  explicit latch(std::ptrdiff_t expected);
  latch(const latch&) = delete;
  latch& operator=(const latch&) = delete;

  // Destroying a latch while a fiber, thread or coroutine waits on it prints
  // one line and aborts (the waiter would hang, and a later count_down would
  // write freed memory), with the exceptions of ~mutex(). A latch may be
  // destroyed as soon as its wait() returned, even while the count_down()
  // that opened it is still running.
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

namespace detail {

// The completion function of a weft::barrier that names none: does nothing.
struct barrier_no_completion {
  void operator()() const noexcept {}
};

// What barrier::arrive() returns (barrier<F>::arrival_token): the barrier, the
// phase the arrival belongs to, and whether that arrival completed the phase
// (then waiting on it returns at once without touching the barrier, which
// another party may have destroyed already). Copyable; a default-constructed
// token belongs to no barrier, and waiting on it throws.
class barrier_token {
 public:
  barrier_token() noexcept = default;

 private:
  friend class barrier_core;
  friend bool barrier_wait_async(const barrier_core& b, const barrier_token& token, wait_node& n) noexcept;
  barrier_token(const barrier_core* b, std::uint64_t phase, bool completed) noexcept
      : m_barrier(b), m_phase(phase), m_completed(completed) {}

  const barrier_core* m_barrier = nullptr;
  std::uint64_t m_phase = 0;  // the phase bits of the state word during that phase
  bool m_completed = false;
};

// The part of weft::barrier that does not depend on the completion function:
// phase, counts, wait queue, guard (docs/protocols/sync.md). Plumbing for the
// template; the party whose arrival completes a phase (the token says so) runs
// the completion function and then calls complete(), and nothing else.
class WEFT_API barrier_core {
 public:
  // has_completion: the completion function is not barrier_no_completion (an
  // arrival during its completion step is then an error, not a short wait).
  // Throws std::invalid_argument naming `expected` if it is negative or above
  // max().
  barrier_core(std::ptrdiff_t expected, bool has_completion);
  // Aborts with one `weft:` line if a party waits on the barrier or its
  // completion step runs (with the exceptions of ~mutex()).
  ~barrier_core();
  barrier_core(const barrier_core&) = delete;
  barrier_core& operator=(const barrier_core&) = delete;

  static constexpr std::ptrdiff_t max() noexcept { return (std::ptrdiff_t{1} << k_count_bits) - 1; }

  // Counts n arrivals in the current phase. `who` names the public call in
  // error messages; `names_n`: the caller has an n to name. Throws
  // std::invalid_argument (nothing counted) if n < 1, if n is larger than
  // the arrivals still expected in the phase, or if the phase's completion
  // step runs and has_completion (without one that step is a few
  // instructions: the arrival waits for it and counts in the next phase).
  barrier_token arrive(std::ptrdiff_t n, const char* who, bool names_n);
  // Lowers the expected count of the later phases by one, then arrives once.
  // Throws as arrive() when no arrival is expected.
  barrier_token arrive_and_drop();
  // The completion step is over: starts the next phase and releases the
  // waiters of the one that completed. Its last access to the barrier is one
  // store; the caller must not touch the barrier after it.
  void complete() noexcept;

  // Returns once the phase of `t` is over (at once for a token that completed
  // its phase, or of an earlier phase). Throws std::invalid_argument naming
  // `arrival` if t comes from another barrier; std::system_error as
  // barrier::wait() describes.
  void wait(const barrier_token& t, const char* who) const;
  // t's arrival completed its phase.
  static bool completed(const barrier_token& t) noexcept { return t.m_completed; }
  // The phase of t (a token of this barrier) is over. Acquire: pairs with
  // complete()'s release store.
  bool passed(const barrier_token& t) const noexcept {
    return t.m_completed || (m_state.load(std::memory_order_acquire) & k_phase_mask) != t.m_phase;
  }
  // Throws std::invalid_argument naming `arrival` unless t comes from this
  // barrier's arrive().
  void check_token(const barrier_token& t, const char* who) const {
    if (t.m_barrier != this) [[unlikely]] {
      throw_foreign_token(who);
    }
  }

 private:
  friend bool barrier_wait_async(const barrier_core& b, const barrier_token& token, wait_node& n) noexcept;

  // m_state: phase << k_phase_shift | count << k_count_shift | k_broken |
  // k_completing | k_guard. count: arrivals still expected in the phase.
  // k_completing: the count reached zero and the completion step runs; the
  // completer then takes k_guard and stores the next phase with its count,
  // both bits clear, as its last access. k_guard guards m_queue and
  // m_expected. k_broken: see barrier::wait(). The phase wraps after 2^30
  // phases.
  static constexpr std::uint64_t k_guard = 1;
  static constexpr std::uint64_t k_completing = 2;
  static constexpr std::uint64_t k_broken = 4;
  static constexpr int k_count_shift = 3;
  static constexpr int k_count_bits = 31;
  static constexpr int k_phase_shift = k_count_shift + k_count_bits;
  static constexpr std::uint64_t k_count_one = std::uint64_t{1} << k_count_shift;
  static constexpr std::uint64_t k_count_mask = ((std::uint64_t{1} << k_count_bits) - 1) << k_count_shift;
  static constexpr std::uint64_t k_phase_one = std::uint64_t{1} << k_phase_shift;
  static constexpr std::uint64_t k_phase_mask = ~std::uint64_t{0} << k_phase_shift;

  [[noreturn, gnu::cold]] static void throw_foreign_token(const char* who);
  // Waits until the completion step that runs now is over (has_completion:
  // throws instead). Returns the state after it.
  std::uint64_t wait_out_completion(const char* who, bool names_n) const;

  mutable std::atomic<std::uint64_t> m_state;
  mutable wait_queue m_queue;
  std::ptrdiff_t m_expected;  // the count of the next phase; under k_guard
  const bool m_has_completion;
};

struct barrier_access;

}  // namespace detail

// A reusable barrier with the interface of std::barrier: `expected` parties
// arrive at each phase; when the last one arrives, that party runs the
// completion function once (the completion step), then the next phase
// begins with the expected count (lowered by every arrive_and_drop() so far)
// and the waiters of the phase that completed are released. wait() on a
// worker suspends the calling fiber (the worker runs other work); outside a
// runtime it blocks the thread without spinning; a coroutine awaits
// arrive_and_wait_async(b) or wait_async(b, token) (weft/coroutine.hpp).
// Any fiber of any runtime, any thread and any coroutine may take part.
//
// Ordering (as std::barrier): every arrival of a phase happens before its
// completion step, which happens before every wait of that phase returns.
// Cost: an arrival is one compare-and-swap; the completion adds two atomic
// operations; a wait on a phase that is over, one load. Nothing allocates.
//
// CompletionFunction must be move-constructible and nothrow-invocable as an
// lvalue with no arguments (checked at compile time). It runs without any
// lock of the barrier held: parties may wait meanwhile. Calling arrive(),
// arrive_and_wait() or arrive_and_drop() while it runs throws
// std::invalid_argument (std::barrier makes that undefined); with the
// default completion function (none) such an arrival waits for the step,
// a few instructions, and counts in the next phase.
template <class CompletionFunction = detail::barrier_no_completion>
class barrier {
  static_assert(std::is_nothrow_invocable_v<CompletionFunction&>,
                "weft::barrier: the completion function must be invocable as an lvalue with no arguments, and "
                "noexcept (as for std::barrier)");
  static_assert(std::is_move_constructible_v<CompletionFunction> && std::is_destructible_v<CompletionFunction>,
                "weft::barrier: the completion function must be move-constructible and destructible");

 public:
  // A token of one arrival, for wait(). Copyable. Waiting on a token of a
  // phase that is over returns at once; a token must be waited on within
  // 2^30 - 1 phases of its arrival (std::barrier requires the current phase
  // or the one before).
  using arrival_token = detail::barrier_token;

  static constexpr std::ptrdiff_t max() noexcept { return detail::barrier_core::max(); }

  // Throws std::invalid_argument naming `expected` if expected is negative or
  // larger than max(); what f's move constructor throws.
  explicit barrier(std::ptrdiff_t expected, CompletionFunction f = CompletionFunction())
      : m_core(expected, !std::is_same_v<CompletionFunction, detail::barrier_no_completion>),
        m_completion(std::move(f)) {}
  barrier(const barrier&) = delete;
  barrier& operator=(const barrier&) = delete;

  // Destroying a barrier while a fiber, thread or coroutine waits on it, or
  // while its completion step runs, prints one line and aborts (the waiter
  // would never resume), with the exceptions of ~mutex(). A party may
  // destroy the barrier as soon as its wait() returned (the other parties
  // done with it), even while the party that completed the phase is still on
  // its way out of its call.
  ~barrier() = default;

  // Counts n arrivals in the current phase; the one that completes the phase
  // runs the completion step before it returns. Throws std::invalid_argument
  // naming n, with nothing counted, if n < 1 or n is larger than the
  // arrivals still expected in the phase (see above for arrivals during the
  // completion step).
  [[nodiscard]] arrival_token arrive(std::ptrdiff_t n = 1) { return arrive_as(n, "weft::barrier::arrive", true); }

  // Returns once the phase of `arrival` is over. Throws std::invalid_argument
  // naming `arrival` if it comes from another barrier. On a worker that
  // cannot get a fiber to wait on (see mutex) it throws std::system_error
  // naming the limit and breaks the barrier: the parties that would arrive
  // are commonly skipped after such a failure, so the fibers and threads
  // waiting on it are woken and throw std::system_error too, as does every
  // later wait() by a fiber or thread on a phase that is not over.
  // Coroutines hold no stack: they keep waiting for the phase.
  void wait(arrival_token&& arrival) const { m_core.wait(arrival, "weft::barrier::wait"); }

  // wait(arrive()), except that the party that completes the phase does not
  // touch the barrier after its completion step.
  void arrive_and_wait() {
    const arrival_token t = arrive_as(1, "weft::barrier::arrive_and_wait", false);
    if (!detail::barrier_core::completed(t)) m_core.wait(t, "weft::barrier::arrive_and_wait");
  }

  // Lowers the expected count of every later phase by one, then arrives once
  // in the current phase (a party leaving). Throws std::invalid_argument when
  // no arrival is expected in the phase.
  void arrive_and_drop() {
    if (detail::barrier_core::completed(m_core.arrive_and_drop())) run_completion();
  }

 private:
  friend struct detail::barrier_access;

  arrival_token arrive_as(std::ptrdiff_t n, const char* who, bool names_n) {
    const arrival_token t = m_core.arrive(n, who, names_n);
    if (detail::barrier_core::completed(t)) run_completion();
    return t;
  }
  // The completion step, then the next phase. complete() is the last access
  // to the barrier: a released party may destroy it at once.
  void run_completion() noexcept {
    static_cast<void>(m_completion());  // a [[nodiscard]] result too, as std::barrier
    m_core.complete();
  }

  detail::barrier_core m_core;
  [[no_unique_address]] CompletionFunction m_completion;
};

namespace detail {

// For the coroutine awaitables (weft/coroutine.hpp).
struct barrier_access {
  template <class F>
  static const barrier_core& core(const barrier<F>& b) noexcept {
    return b.m_core;
  }
  // One arrival; the one that completes the phase runs its completion step
  // here, and the barrier must not be touched after (the token says so).
  template <class F>
  static barrier_token arrive(barrier<F>& b, const char* who) {
    return b.arrive_as(1, who, false);
  }
};

}  // namespace detail

}  // namespace weft
