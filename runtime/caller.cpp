// SPDX-License-Identifier: MIT
// Threads from outside a runtime that take part in their own call as a
// worker, on the slot of a parked worker (docs/protocols/callers.md).
#include "caller.hpp"

#include <pthread.h>
#include <signal.h>

#include <algorithm>

#include "asan.hpp"
#include "clock.hpp"
#include "futex.hpp"
#include "scheduler.hpp"
#include "stack.hpp"
#include "suspend.hpp"
#include "weft/detail/entry.hpp"
#include "worker.hpp"

namespace weft::rt {

namespace {

// LeakSanitizer scans the stack a thread runs on, which for a thread on loan
// is a fiber of the slot: its own stack, which holds the caller's objects
// (and what they point to), would look unreferenced, and an exit from inside
// the call would report them as leaks. So where the sanitizer runs (also in
// a program built with it against a plain libweft) that stack, from the
// loan's frame up, is a root region for the length of the loan.
// Only where asan::leak_check_active().
class native_stack_root {
 public:
  native_stack_root() noexcept {
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return;
    void* addr = nullptr;
    std::size_t size = 0;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
      auto* here = static_cast<char*>(__builtin_frame_address(0));
      char* top = static_cast<char*>(addr) + size;
      if (here > static_cast<char*>(addr) && here < top) {
        m_begin = here;
        m_size = static_cast<std::size_t>(top - here);
        asan::register_root(m_begin, m_size);
      }
    }
    pthread_attr_destroy(&attr);
  }
  ~native_stack_root() {
    if (m_begin != nullptr) asan::unregister_root(m_begin, m_size);
  }
  native_stack_root(const native_stack_root&) = delete;
  native_stack_root& operator=(const native_stack_root&) = delete;

 private:
  void* m_begin = nullptr;
  std::size_t m_size = 0;
};

// How long a thread from outside that finds no parked worker waits for one
// to park or for another thread from outside to give a slot back, before it
// hands its call over instead: long against a call's round trip, so that
// threads calling at once take turns on the slots (as through a mutex)
// instead of handing calls over, which keeps the workers' threads busy and
// so makes the next caller hand over too; short enough that two calls
// waiting for each other (what the hand-over is for) lose little.
constexpr std::uint64_t k_borrow_wait_us = 200;
// The wait counts from the last slot given back while it waits (slots that
// come back show that the calls holding them make progress: it lost a race,
// it is not waited for), up to this long in all: threads that call at once
// take turns without handing calls over, and none waits longer than this
// for its turn.
constexpr std::uint64_t k_borrow_wait_max_us = 2000;
// Within that wait, how long it spins while a worker searches (a searching
// worker notices lend_wanted within one steal round and parks) before it
// sleeps on m_slot_returns.
constexpr std::uint64_t k_borrow_spin_us = 10;

// One per thread; only this thread touches it (but m_native_ready).
// Constructed at the first call from outside on a thread, which also
// registers its destructor; reached through t_caller_of_thread afterwards.
// A call made after that destructor ran (from the destructor of a
// thread_local made before the thread's first call; on the thread that
// exits the process, from an atexit handler or a static destructor) gets a
// caller_state of its own for that call (t_caller_ended).
struct caller_holder {
  caller_state m_state;
  caller_holder() noexcept;
  caller_holder(const caller_holder&) = delete;
  caller_holder& operator=(const caller_holder&) = delete;
  ~caller_holder();
};
thread_local caller_holder t_caller;
// &t_caller.m_state while it lives, else null: one load off the thread
// pointer (initial-exec, as t_worker), where every use of t_caller would
// call __tls_get_addr and check its guard.
constinit thread_local caller_state* t_caller_of_thread __attribute__((tls_model("initial-exec"))) = nullptr;
// t_caller was destroyed (its thread ends, or the process exits): it cannot
// be used or made again.
constinit thread_local bool t_caller_ended __attribute__((tls_model("initial-exec"))) = false;
caller_holder::caller_holder() noexcept { t_caller_of_thread = &m_state; }
caller_holder::~caller_holder() {
  t_caller_of_thread = nullptr;
  t_caller_ended = true;
}

// The thread's caller_state, made at its first call; null once it was
// destroyed (its thread ends, or the process exits).
caller_state* this_thread_caller() noexcept {
  if (caller_state* c = t_caller_of_thread; c != nullptr) [[likely]] {
    return c;
  }
  if (t_caller_ended) return nullptr;
  return &t_caller.m_state;  // constructs it (once per thread)
}

// Wins the slot of a parked worker, at once or after a bounded wait for a
// worker to park (searching workers are asked to park at once) or for a
// slot to be given back; -1 when none could be had.
int borrow(scheduler& s) noexcept {
  const int n = s.num_workers();
  sleep_set& sleepers = s.sleepers();
  int w = sleepers.claim_parked(0, n);
  if (w >= 0) return w;
  s.m_lend_wanted.fetch_add(1, std::memory_order_relaxed);
  // seq_cst and the fence: either a worker that parks or a thread that gives
  // a slot back sees this waiter (and bumps m_slot_returns), or the claims
  // below see its parked bit (Dekker; scheduler::notify_slot_waiters()).
  s.m_slot_waiters.fetch_add(1, std::memory_order_seq_cst);
  full_fence();
  const std::uint64_t start = ticks();
  const std::uint64_t wait = k_borrow_wait_us * ticks_per_us();
  const std::uint64_t last_deadline = start + k_borrow_wait_max_us * ticks_per_us();
  std::uint64_t deadline = start + wait;
  const std::uint64_t spin_until = start + k_borrow_spin_us * ticks_per_us();
  std::uint32_t seen = s.m_slot_returns.load(std::memory_order_relaxed);
  for (;;) {
    // This thread looks now: the next return wakes a sleeper again. The
    // fence orders the clearing before the look: a return that found the
    // flag set (and woke nobody) set its bit before, so the claim below
    // sees it (Dekker with notify_slot_waiters()).
    if (s.m_slot_wake_pending.load(std::memory_order_relaxed)) {
      s.m_slot_wake_pending.store(false, std::memory_order_seq_cst);
      full_fence();
    }
    const std::uint32_t returns = s.m_slot_returns.load(std::memory_order_seq_cst);
    w = sleepers.claim_parked(0, n);
    if (w >= 0) break;
    const std::uint64_t now = ticks();
    if (returns != seen) {  // a slot came back (and went to another thread): wait on
      seen = returns;
      deadline = std::min(now + wait, last_deadline);
    }
    if (now >= deadline) break;
    if (now < spin_until && sleepers.searching() > 0) {
      cpu_relax();
      continue;
    }
    futex_wait_for(s.m_slot_returns, returns, (deadline - now) * 1000 / ticks_per_us());
  }
  s.m_slot_waiters.fetch_sub(1, std::memory_order_seq_cst);
  s.m_lend_wanted.fetch_sub(1, std::memory_order_relaxed);
  // Two slots that come back together wake one waiter (the second return
  // finds it on its way): the one that got a slot passes the wake on while
  // another slot is free and others wait.
  if (w >= 0 && s.m_slot_waiters.load(std::memory_order_seq_cst) > 0 && sleepers.any_parked(0, n)) {
    s.notify_slot_waiters();
  }
  return w;
}

// The calling thread holds slot w of s (its parked bit won) for its lifetime:
// it becomes that worker, its own stack the worker's current fiber. The
// worker's thread stays blocked in its park meanwhile and touches nothing of
// the worker (see worker::park()).
class slot_loan {
 public:
  // Inline in both paths of call_on_slot (one call from outside each).
  [[gnu::always_inline]] slot_loan(scheduler& s, worker& w, caller_state& c) noexcept
      : m_sched(s), m_worker(w), m_caller(c) {
    WEFT_ASSERT(t_worker == nullptr, "slot_loan: the borrowing thread is outside every runtime");
    WEFT_ASSERT(w.m_caller == nullptr, "slot_loan: the slot is not lent already (its parked bit was won once)");
    c.m_saved_current = w.m_current;
    c.m_saved_eh = w.m_eh_globals;
    c.m_saved_entry = w.m_sleep_entry;
    adopt_thread(c.m_native, s);
    // A call runs on this stack when no fiber can be had (run_on_fresh_stack):
    // then it is nearly full near its thread's limit, as a fiber's is near
    // its own, so that joins there stop starting tasks on it (and spawns
    // move to fresh stacks) instead of nesting them until it overflows.
    c.m_native.m_stack_limit = c.m_stack_limit;
    c.m_native.m_real_limit = c.m_stack_limit;
    c.m_native.m_resume.m_execute = &resume_fiber;
    c.m_native.m_pinned = &c;
    c.m_native_ready.store(false, std::memory_order_relaxed);
    c.m_entry = s.num_workers() + w.m_index;
    w.set_current(&c.m_native);
    w.m_eh_globals = c.m_eh_globals;
    w.m_sleep_entry = c.m_entry;
    w.m_caller = &c;
    w.m_counters.enter(activity::busy);
    counters::bump(w.m_counters.tasks_run);
    counters::bump(w.m_counters.lent);
    set_thread_worker(&w);
  }

  // On this thread's own stack, after the call returned (or threw): nothing of
  // it runs elsewhere any more.
  [[gnu::always_inline]] ~slot_loan() {
    worker& w = m_worker;
    caller_state& c = m_caller;
    WEFT_ASSERT(w.m_current == &c.m_native, "~slot_loan: the call is done: the thread is back on its own stack");
    set_thread_worker(nullptr);
    // Work left on the slot (pushed by tasks this thread ran while its call
    // waited) is the slot thread's to run: wake it.
    const bool leftover = w.has_local_work();
    w.m_counters.enter(activity::parked);
    w.m_caller = nullptr;
    w.set_current(c.m_saved_current);
    w.m_eh_globals = c.m_saved_eh;
    w.m_sleep_entry = c.m_saved_entry;
    const int index = w.m_index;
    // From here on the slot may be borrowed again or its thread woken: only
    // its constant fields are read below.
    m_sched.sleepers().give_back(index, leftover);
    if (!leftover && w.work_visible()) m_sched.sleepers().notify_one();  // the re-check of a park (rule 5)
    // Slot 0 given back to a thread parked for good, after main() ended
    // (whose notice found the bit taken by this loan): wake it to poll.
    // give_back()'s seq_cst RMW orders the load after it.
    if (index == 0 && !leftover && main_thread_ended()) m_sched.sleepers().notify(0);
    m_sched.notify_slot_waiters();  // give_back()'s fence orders the slot's return before
    m_sched.end_root();
  }

  slot_loan(const slot_loan&) = delete;
  slot_loan& operator=(const slot_loan&) = delete;

 private:
  scheduler& m_sched;
  worker& m_worker;
  caller_state& m_caller;
};

}  // namespace

namespace {

void call_on_slot(scheduler& s, int w, caller_state& c, void (*fn)(void*), void* arg);
void call_on_slot_rooted(scheduler& s, int w, caller_state& c, void (*fn)(void*), void* arg);

// After the thread's own caller_state was destroyed (it ends, or the process
// exits): one for this call only, with its alternate signal stack (left at
// its end). Out of line, so that a call from outside does not clear its
// storage each time.
[[gnu::noinline]] void call_on_slot_late(scheduler& s, int w, void (*fn)(void*), void* arg) {
  caller_state late;
  call_on_slot(s, w, late, fn, arg);
}

}  // namespace

bool call_on_borrowed_slot(scheduler& s, void (*fn)(void*), void* arg) {
  const int w = borrow(s);
  if (w < 0) return false;
  if (caller_state* mine = this_thread_caller(); mine != nullptr) [[likely]] {
    call_on_slot(s, w, *mine, fn, arg);
  } else {
    call_on_slot_late(s, w, fn, arg);
  }
  return true;
}

namespace {

// The call on slot w of s, won by the calling thread, whose caller state is c.
void call_on_slot(scheduler& s, int w, caller_state& c, void (*fn)(void*), void* arg) {
  if (!c.m_signal_stack_checked) {
    // The thread's first call. The stack-overflow report runs on an
    // alternate signal stack; give this thread one unless it has its own.
    c.m_signal_stack_checked = true;
    c.m_stack_limit = own_stack_limit();
    c.m_eh_globals = this_thread_eh_globals();
    stack_t old{};
    if (sigaltstack(nullptr, &old) == 0 && (old.ss_flags & SS_DISABLE) != 0) c.m_signal_stack.enter();
  }
  if (asan::leak_check_active()) [[unlikely]] {
    call_on_slot_rooted(s, w, c, fn, arg);
    return;
  }
  slot_loan loan(s, s.worker_at(w), c);
  // The call runs on a fiber of the slot, like every task (the same stack
  // size, overflow report and migration rules); this thread's own stack
  // waits at loop level of that slot and is resumed when the call is done.
  detail::run_on_fresh_stack(fn, arg);
}

// The same where LeakSanitizer runs: this thread's stack a root region
// meanwhile.
WEFT_NOINLINE void call_on_slot_rooted(scheduler& s, int w, caller_state& c, void (*fn)(void*), void* arg) {
  const native_stack_root root;
  slot_loan loan(s, s.worker_at(w), c);
  detail::run_on_fresh_stack(fn, arg);
}

}  // namespace

// Out of line: make_ready() runs it, possibly after a switch of its caller
// (see this_thread_worker()).
WEFT_NOINLINE void make_pinned_ready(fiber* f) noexcept {
  caller_state& c = *f->m_pinned;
  const worker* w = this_thread_worker();
  if (w != nullptr && w->m_caller == &c) {
    // On the borrowing thread itself (it is not parked): its loop sees the
    // flag next.
    c.m_native_ready.store(true, std::memory_order_relaxed);
    return;
  }
  scheduler& s = *f->m_sched;
  const int entry = c.m_entry;  // read first: c's thread may go on once the flag is set
  // The call is a root in flight until its thread returns the slot, which it
  // cannot do before the flag is set: counting this as a root keeps the
  // runtime alive until the wake-up below is done.
  s.begin_root();
  c.m_native_ready.store(true, std::memory_order_release);  // pairs with worker::caller_ready()
  s.sleepers().notify(entry);
  s.end_root();
}

}  // namespace weft::rt
