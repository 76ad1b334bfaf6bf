// SPDX-License-Identifier: MIT
// Spawning, joining, and running elsewhere: the compiled side of join(),
// task_group, parallel loops and runtime::run (docs/protocols/join.md).
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>

#include "caller.hpp"
#include "clock.hpp"
#include "fiber.hpp"
#include "join.hpp"
#include "loop.hpp"
#include "scheduler.hpp"
#include "stack.hpp"
#include "suspend.hpp"
#include "waiter.hpp"
#include "weft/coroutine/task.hpp"
#include "weft/detail/entry.hpp"
#include "worker.hpp"
#include "workspan.hpp"

namespace weft::rt {
scheduler& default_scheduler();
}

namespace weft::detail {

using rt::current_worker;
using rt::worker;

// push_slow(), push_plain() and pop_slow() never switch fibers, and are never
// inlined into code that does (they are the library's entry points), so they
// read the worker inline. They count in the worker's counters; the inline
// paths (entry.hpp) in its ring's.
WEFT_NOINLINE push_status push_slow(job* t) noexcept {
  worker* w = rt::this_thread_worker();
  if (WEFT_UNLIKELY(w == nullptr)) return push_status::not_on_worker;
  // One check for both rare cases: a measured fiber's limit fails it too
  // (the caller tells them apart: ws_spawn_measured()).
  if (WEFT_UNLIKELY(w->stack_low())) {
    return push_status::stack_low;
  }
  try {
    w->push(t);
  } catch (...) {
    return push_status::stack_low;  // no memory for the deque: run it on its own instead
  }
  return push_status::pushed;
}

WEFT_NOINLINE push_status push_plain(job* t) noexcept {
  worker* w = rt::this_thread_worker();
  if (w == nullptr) return push_status::not_on_worker;
  if (w->real_stack_low()) return push_status::stack_low;
  try {
    w->push(t);
  } catch (...) {
    return push_status::stack_low;
  }
  return push_status::pushed;
}

WEFT_NOINLINE bool pop_slow(job* t) noexcept {
  worker* w = rt::this_thread_worker();
  if (!w->m_queue.pop_if(t)) return false;
  rt::counters::bump(w->m_counters.tasks_run);
  return true;
}

namespace {

using rt::join_kind;

constexpr std::int64_t k_waiting = join_counter::k_waiting;
constexpr std::int64_t k_claimed = join_counter::k_claimed;

// Adds delta to an open frame's counter; when that completes the wait in
// progress (the sum is exactly k_waiting), stores k_claimed instead. True: the
// caller owns the waiter's resumption. acq_rel: a finished child releases its
// writes and the claimer acquires every earlier one; the waiter's add
// releases m_waiter to the claimer.
bool add_and_claim(std::atomic<std::int64_t>& pending, std::int64_t delta) noexcept {
  std::int64_t v = pending.load(std::memory_order_relaxed);
  bool claim;
  std::int64_t round;
  do {
    // The round bit (a task_group's) rides along: only the close of a wait
    // changes it.
    round = join_counter::round_bit(v);
    const std::int64_t count = v - round;
    // A waiter's add (delta >= k_waiting) that finds a wait in progress (a
    // value near k_waiting or k_claimed; outside a wait the counter is small):
    // two waits of one open frame, which would overflow the counter and
    // leave one waiter never resumed.
    if (delta >= k_waiting && count >= k_claimed / 2) [[unlikely]] {
      rt::fatal(
          "weft: a weft::task_group was waited for by two threads or fibers at once (wait() belongs to the fiber "
          "or thread that created the group)");
    }
    // Not `result == k_claimed`: a child counted after a claim that finishes
    // brings k_claimed + 1 down to k_claimed without claiming anything.
    claim = count + delta == k_waiting;
  } while (!pending.compare_exchange_weak(v, claim ? k_claimed + round : v + delta, std::memory_order_acq_rel,
                                          std::memory_order_relaxed));
  return claim;
}

// The waiter's add: taken + k_waiting. True when it completes the wait (the
// waiter goes on at once).
bool add_waiting(join_counter& f, std::int64_t taken, join_kind kind) noexcept {
  const std::int64_t add = taken + k_waiting;
  if (kind != join_kind::plain) return add_and_claim(f.m_pending, add);
  // acq_rel: publishes m_waiter to the last child; acquires the children's results.
  return f.m_pending.fetch_add(add, std::memory_order_acq_rel) + add == k_waiting;
}

struct join_wait {
  join_counter* m_frame;
  std::int64_t m_taken;
  join_kind m_kind;
};

// Switch action: the joining fiber is saved; publish its suspension. The
// children may all be done already: then this side resumes it at once.
void publish_join(rt::worker&, rt::fiber* prev, void* arg) noexcept {
  auto* jw = static_cast<join_wait*>(arg);
  if (add_waiting(*jw->m_frame, jw->m_taken, jw->m_kind)) rt::make_ready(prev);
  // After the add a child may resume prev at any moment: touch nothing of it.
}

void wait_as_thread(join_counter& f, std::int64_t taken, join_kind kind) noexcept {
  rt::waiter w;
  f.m_waiter = &w;
  if (!add_waiting(f, taken, kind)) rt::block(w);
}

// True when every child is done. Acquire: the children's results (pairs with
// the acq_rel in complete()).
bool children_done(const join_counter& f, std::int64_t taken) noexcept {
  const std::int64_t v = f.m_pending.load(std::memory_order_acquire);
  return v - join_counter::round_bit(v) == -taken;
}

// Suspends the joining fiber of w (the calling thread's worker) until the
// children are done: switches to `next`, or to w.next_fiber() when null.
// False when there was no fiber (nothing happened).
bool suspend_join(worker& w, join_counter& f, std::int64_t taken, join_kind kind, rt::fiber* next) noexcept {
  rt::waiter me;
  me.m_fiber = w.m_current;
  f.m_waiter = &me;
  join_wait jw{&f, taken, kind};
  if (next == nullptr) return rt::suspend(&publish_join, &jw);
  rt::suspend_to(w, next, &publish_join, &jw);
  return true;
}

// Backs off while waiting without a fiber, for work that may take long (a
// child task): 8 rounds of k_spin_relaxes pauses (about 10 µs in all on the
// development machine: a child about to finish), then 8 yields of the thread,
// then sleeps from 20 µs doubling to about a millisecond per round (so a
// long wait costs little processor time, and ends within about 1 ms of the
// child's end).
void nap(unsigned round) noexcept {
  if (round < 8) {
    for (unsigned i = 0; i < rt::k_spin_relaxes; ++i) rt::cpu_relax();
  } else if (round < 16) {
    sched_yield();
  } else {
    const long ns = 20'000L << std::min(round - 16, 6u);
    timespec ts{0, ns};
    nanosleep(&ts, nullptr);
  }
}

// One line on stderr the first time in the process that a join has waited
// this long without a fiber, with nothing to run: such a stall would
// otherwise be silent. Relaxed: a once flag, it publishes nothing.
constexpr auto k_stall_report = std::chrono::seconds(2);
std::atomic<bool> g_stall_reported{false};

void report_stall() noexcept {
  if (g_stall_reported.exchange(true, std::memory_order_relaxed)) return;
  try {
    std::string cause = rt::last_stack_shortage();
    if (cause.empty()) cause = "no fiber stack can be created";
    std::fprintf(stderr,
                 "weft: a join has waited %lld s for a fiber, with nothing else it can run on its stack: %s; it keeps "
                 "retrying\n",
                 static_cast<long long>(k_stall_report.count()), cause.c_str());
  } catch (...) {
    // no memory for the message either
  }
}

// The joiner's worker has no fiber to switch to (no stack can be created:
// vm.max_map_count or memory). Blocking the thread could strand the work
// queued on this worker, which the children may need (a latch counted down by
// a queued task, a fiber made ready here), and with one worker it always
// would. So the worker stays at work on the joiner's stack: it runs its ready
// tasks, else a task stolen from another worker, on top of the join,
// suspends the joiner onto a ready fiber it finds (that needs no new stack),
// and retries creating a fiber when there is nothing to run, backing off,
// until the children are done. Tasks run here
// that must wait in turn join the same way or, for a latch, barrier, mutex or
// condition variable, throw (sync.cpp). Near the bottom of its stack the
// joiner starts no more tasks; it then only takes ready fibers and tasks that
// continue a coroutine (worker::take_continuation), and retries.
// True when the wait registered (the joiner suspended and was resumed), false
// when the children were seen done first.
bool wait_without_fiber(join_counter& f, std::int64_t taken, join_kind kind) noexcept {
  // Items of a loop in progress on this fiber that have not started go to
  // the queue first, as before a suspension: the children may wait for them
  // (items that wait for each other), and they run below.
  if (worker* w = current_worker(); w->m_current->m_leaves != nullptr) rt::hand_off_unstarted(*w, *w->m_current);
  std::chrono::steady_clock::time_point stalled_since;
  for (unsigned idle = 0;;) {
    if (children_done(f, taken)) return false;
    worker* w = current_worker();  // a task run below may have moved this fiber
    detail::job* t = nullptr;
    if (!w->real_stack_low()) {
      // Its own ready work first, then other workers' (whose joins may
      // all sit on nearly full stacks, where they start nothing).
      t = w->take_ready();
      if (t == nullptr) t = w->steal_for_help();
    } else if (rt::fiber* ready = w->take_yielded_fiber()) {
      t = &ready->m_resume;
    } else {
      // No task may start here, but what goes on may: a ready fiber (on its
      // own stack), or a coroutine (resumed by a latch, or deferred because
      // its stack was full). Either may be what the children wait for, and
      // it would otherwise stay queued behind tasks that need a stack: with
      // every join of every worker here, no fiber would ever end.
      t = w->take_continuation();
      // What it may not start, a worker with a stack may: thieves asked
      // for work, or are parked, and this join serves no demand.
      if (t == nullptr) w->give_away_private();
    }
    if (t != nullptr && t->m_execute == &rt::resume_fiber) {
      rt::about_to_resume(*w, rt::fiber_of(t));
      suspend_join(*w, f, taken, kind, rt::fiber_of(t));  // the ready fiber takes over this worker
      return true;
    }
    if (t != nullptr) {
      rt::run_on_this_stack(*w, t);  // keeps the joiner's strand
      idle = 0;
      continue;
    }
    if (suspend_join(*w, f, taken, kind, nullptr)) return true;  // a fiber could be had after all
    const auto now = std::chrono::steady_clock::now();
    if (idle == 0) stalled_since = now;
    if (now - stalled_since > k_stall_report) report_stall();
    nap(idle++);
  }
}

// How long a join watches its children in place (watch_in_place), about
// the time a searching worker spins before it yields its core.
constexpr std::uint64_t k_watch_us = 5;

// A plain join whose children run on other workers, with nothing to run
// here: watches the children in place for up to k_watch_us before it
// suspends, asking the other workers to publish as a search would. A child
// that ends meanwhile (the last piece of a loop, the other half of a join)
// then costs no suspension, no resumption on the child's worker and, for a
// call from outside, no hand-back of the call to its thread. Stops watching
// as soon as there is something to run, here or elsewhere (work visible to
// steal, the injection queue, a yielded fiber, the borrowing thread's own
// call), or when the runtime stops. Not with one worker (a child not done
// then waits for something that this worker must run), and not on a fiber
// running loop items: a wait hands their unstarted items off first, and the
// children may wait for them. True when the children were seen done.
// With a help filter, work seen elsewhere is stolen: a task it accepts runs
// here, on the watching stack (unless that is low), and `helped` is set
// (the caller watches again, on the worker this fiber is on then); any
// other task goes onto this worker's queue, and the join suspends, as it
// does when the steal finds nothing (the work seen was injected, or another
// thief was first).
bool watch_in_place(worker& w, const join_counter& f, std::int64_t taken, const rt::help_filter* help = nullptr,
                    bool* helped = nullptr) noexcept {
  if (w.m_sched.num_workers() < 2 || w.m_current->m_leaves != nullptr) return false;
  const std::uint64_t start = rt::ticks();
  const std::uint64_t limit = k_watch_us * rt::ticks_per_us();
  for (;;) {
    for (unsigned i = 0; i < 16; ++i) {
      if (children_done(f, taken)) return true;
      rt::cpu_relax();
    }
    if (w.has_local_work() || w.caller_ready() || w.m_sched.stopping()) return false;
    if (w.work_visible_or_ask()) {
      if (help == nullptr || w.real_stack_low()) return false;
      detail::job* t = w.steal_for_help();
      if (t == nullptr) return false;  // injected work, or a race lost: suspend, as without a filter
      if (!help->mine(t, help->ctx)) {
        w.queue_stolen(t);
        return false;
      }
      rt::run_on_this_stack(w, t);  // t may move this fiber to another worker
      *helped = true;
      return children_done(f, taken);
    }
    if (rt::ticks() - start >= limit) return children_done(f, taken);
  }
}

}  // namespace

}  // namespace weft::detail

namespace weft::rt {

using detail::children_done;
using detail::join_counter;
using detail::k_claimed;
using detail::suspend_join;
using detail::wait_as_thread;
using detail::wait_without_fiber;

void wait_for_pieces(join_counter& f, std::int64_t taken, help_filter help) noexcept {
  while (!children_done(f, taken)) {
    worker* w = current_worker();  // afresh: a piece run here may have moved this fiber
    if (w == nullptr) {
      wait_as_thread(f, taken, join_kind::plain);
      break;
    }
    bool helped = false;
    if (detail::watch_in_place(*w, f, taken, &help, &helped)) break;
    if (helped) continue;
    (void)(suspend_join(*w, f, taken, join_kind::plain, nullptr) || wait_without_fiber(f, taken, join_kind::plain));
    break;
  }
  f.m_pending.store(0, std::memory_order_relaxed);  // every child is done: reusable
}

void wait_for_children(join_counter& f, std::int64_t taken, join_kind kind) noexcept {
  // Fast path: everything already completed (pending is exactly -taken then).
  bool registered = false;
  if (!children_done(f, taken)) {
    worker* w = current_worker();
    if (w == nullptr) {
      wait_as_thread(f, taken, kind);
      registered = true;
    } else if (kind == join_kind::plain && detail::watch_in_place(*w, f, taken)) {
      registered = false;
    } else {
      registered = suspend_join(*w, f, taken, kind, nullptr) || wait_without_fiber(f, taken, kind);
    }
  }
  if (!registered && kind != join_kind::plain) {
    // Done before any add: children counted since keep their count.
    if (taken != 0) f.m_pending.fetch_add(taken, std::memory_order_relaxed);
    return;
  }
  if (kind == join_kind::plain) {
    f.m_pending.store(0, std::memory_order_relaxed);  // every child is done: reusable
  } else {
    // Resumed by the claimer (or claimed here): close this wait, and for a
    // group end its round. relaxed: only this party removes k_claimed (and
    // flips the round bit), and the claim already acquired.
    std::int64_t close = -k_claimed;
    if (kind == join_kind::group) close += join_counter::round_flip(f.m_pending.load(std::memory_order_relaxed));
    f.m_pending.fetch_add(close, std::memory_order_relaxed);
  }
}

void complete_open(join_counter& f) noexcept {
  if (detail::add_and_claim(f.m_pending, -1)) notify(*static_cast<waiter*>(f.m_waiter));
}

}  // namespace weft::rt

namespace weft::detail {

void wait(join_counter& f, std::int64_t taken) noexcept { rt::wait_for_children(f, taken, rt::join_kind::plain); }

void complete(join_counter& f) noexcept {
  // acq_rel: releases this child's results to the parent; acquires m_waiter.
  if (f.m_pending.fetch_sub(1, std::memory_order_acq_rel) - 1 == join_counter::k_waiting) {
    rt::notify(*static_cast<rt::waiter*>(f.m_waiter));
  }
}

void resume_waiter(join_counter& f) noexcept {
  // m_waiter was written before the waiter's add (publish_join or
  // wait_as_thread); the caller's RMW that observed k_waiting acquired it.
  rt::notify(*static_cast<rt::waiter*>(f.m_waiter));
}

namespace {

struct root_task : job {
  void (*m_fn)(void*);
  void* m_arg;
  join_frame* m_frame;

  static void execute(job* t) noexcept {
    auto* self = static_cast<root_task*>(t);
    join_frame& frame = *self->m_frame;
    try {
      self->m_fn(self->m_arg);
    } catch (...) {
      frame.capture(std::current_exception());
    }
    complete(frame);
  }
};

}  // namespace

namespace {

// A call from outside s (a thread from outside, or a worker of another
// runtime): takes part on a borrowed slot, or goes to s's workers as a root
// task.
void call_from_outside(rt::scheduler& s, void (*fn)(void*), void* arg) {
  worker* w = current_worker();
  // In flight from here on, also while it waits for a slot: the runtime's
  // destructor waits for it (ended by the slot's return or below).
  s.begin_root();
  // A thread from outside takes part in its call as a worker when a worker is
  // parked (docs/protocols/callers.md); else the call goes to the workers.
  if (w == nullptr && s.cfg().caller == caller_policy::take_part && rt::call_on_borrowed_slot(s, fn, arg)) return;
  join_frame frame;
  root_task root;
  root.m_execute = &root_task::execute;
  root.m_fn = fn;
  root.m_arg = arg;
  root.m_frame = &frame;
  frame.m_pending.store(1, std::memory_order_relaxed);  // counted: it is not ours to pop back
  // A measured strand of a worker of another runtime waits for the call,
  // which is not measured (docs/protocols/workspan.md): no work meanwhile,
  // also while the wait watches in place before it suspends (counted as
  // work before).
  detail::ws_strand* strand = w != nullptr ? w->m_current->m_ws : nullptr;
  const bool running = strand != nullptr && strand->m_start != 0;
  if (WEFT_UNLIKELY(running)) rt::ws_pause(*strand);
  s.inject(&root);
  wait(frame, 0);
  if (WEFT_UNLIKELY(running)) rt::ws_resume_piece(*strand);
  s.end_root();
  frame.rethrow_if_failed();
}

}  // namespace

void run_root_at(runtime_state* rt, void (*fn)(void*), void* arg, const void* site) {
  rt::scheduler& s = rt != nullptr ? rt::scheduler::of(rt) : rt::default_scheduler();
  worker* w = current_worker();
  if (w != nullptr && &w->m_sched == &s) {
    fn(arg);
    return;
  }
  if (s.forked_away()) {
    throw std::runtime_error(
        "weft: this runtime was started before fork() and has no worker threads in the child process; create a "
        "new runtime in the child (default_runtime() is recreated automatically)");
  }
  s.note_outside_call();
  rt::note_thread();
  // WEFT_WORKSPAN: each call from a thread from outside is measured.
  if (w == nullptr && WEFT_UNLIKELY(rt::workspan_reporting())) {
    rt::call_measured(s, fn, arg, site, &call_from_outside);
    return;
  }
  call_from_outside(s, fn, arg);
}

void run_root(runtime_state* rt, void (*fn)(void*), void* arg) {
  run_root_at(rt, fn, arg, reinterpret_cast<const void*>(fn));
}

namespace {

struct fresh_call {
  void (*m_fn)(void*);
  void* m_arg;
  rt::fiber* m_caller;
  std::exception_ptr m_error;
};

// Switch action, run on the fresh fiber: the call, then the caller is made
// ready (nobody else can resume it meanwhile). The action returns, so this
// fiber unwinds to its loop level; its loop takes the caller next (the newest
// task here) and this fiber goes back to the pool clean, with no frames of
// the call left on it.
void run_fresh(rt::worker& w, rt::fiber*, void* arg) noexcept {
  auto* c = static_cast<fresh_call*>(arg);
  rt::fiber* self = w.m_current;
  self->m_in_job = true;  // it runs the caller's task now (for the trace)
  w.begin_activation();   // the fiber may have run other tasks before
  // The call continues the caller's work: a wait in it hands off the items
  // not started of the caller's loops too (the caller is suspended).
  self->m_leaves = c->m_caller->m_leaves;
  // It continues the caller's strand too, when measured.
  if (c->m_caller->m_ws != nullptr) rt::set_strand(*self, c->m_caller->m_ws);
  if (w.m_trace != nullptr) w.m_trace->record(rt::trace_kind::run_resume, reinterpret_cast<std::uintptr_t>(self));
  try {
    c->m_fn(c->m_arg);
  } catch (...) {
    c->m_error = detail::current_exception_or_bad();
  }
  rt::worker* now = current_worker();  // the call may have moved this fiber
  self->m_in_job = false;
  self->m_leaves = nullptr;
  if (self->m_ws != nullptr) rt::set_strand(*self, nullptr);
  if (now->m_trace != nullptr) now->m_trace->record(rt::trace_kind::run_end);
  rt::make_ready(c->m_caller);  // last access to *c: the caller may resume at once
}

}  // namespace

void run_on_fresh_stack(void (*fn)(void*), void* arg) {
  worker* w = current_worker();
  rt::fiber* next = w->idle_fiber();
  if (next == nullptr) {  // no memory for a stack: try on this one
    fn(arg);
    return;
  }
  fresh_call c{fn, arg, w->m_current, nullptr};
  rt::switch_to(*w, next, &run_fresh, &c);
  if (c.m_error) std::rethrow_exception(c.m_error);
}

void offer_queued() noexcept {
  if (rt::worker* w = rt::this_thread_worker(); w != nullptr && !w->m_queue.private_empty()) w->give_away_private();
}

void offer_spawns(std::uint32_t keep) noexcept {
  rt::worker* w = rt::this_thread_worker();
  if (w == nullptr || w->m_queue.private_size() <= keep) return;
  // As many as workers look for work (the oldest: the largest), no more:
  // each published task that this worker takes back costs a fence, and
  // fine-grained recursion meets a searching thief at many of its waits.
  if (const std::uint32_t idle = w->idle_others(); idle > 0) {
    w->give_away_oldest(std::min(idle, w->m_queue.private_size() - keep));
  }
}

WEFT_NOINLINE bool stack_low() noexcept {
  worker* w = rt::this_thread_worker();
  WEFT_ASSERT(w == nullptr || w->m_job_cache.view()->m_stack_limit == w->m_current->m_real_limit,
              "stack_low: the templates' view has the current fiber's stack limit (worker::set_current)");
  return w != nullptr && w->real_stack_low();
}

void defer(job* t) noexcept {
  worker* w = current_worker();
  rt::make_runnable(t, w != nullptr ? static_cast<runtime_state*>(&w->m_sched) : &rt::default_scheduler());
}

void defer_to(runtime_state* rt, job* t) noexcept { rt::make_runnable(t, rt); }

void resume_deferred(job* t) noexcept { coroutine_resumption::execute(t); }

runtime_state* current_runtime() noexcept {
  worker* w = current_worker();
  return w != nullptr ? &w->m_sched : nullptr;
}

bool yield_job(job* t) noexcept { return rt::yield_job(t); }

bool on_runtime(const runtime_state* rt) noexcept {
  const worker* w = current_worker();
  return w != nullptr && &w->m_sched == rt;
}

// The slow paths of allocate_job() and free_job() (job_memory.hpp): never
// switch fibers, so inline worker reads; out of line, so that no caller inside
// libweft that runs them after a switch reuses its thread's TLS address (see
// this_thread_worker()).
WEFT_NOINLINE void* allocate_job_slow(std::size_t size) {
  if (worker* w = rt::this_thread_worker()) return w->m_job_cache.allocate(size);
  const std::size_t c = rt::job_cache::class_of(size);
  return ::operator new(c == rt::job_cache::k_classes ? size : rt::job_cache::class_size(c));
}

WEFT_NOINLINE void free_job_slow(void* p, std::size_t size) noexcept {
  if (worker* w = rt::this_thread_worker()) {
    w->m_job_cache.release(p, size);
    return;
  }
  ::operator delete(p);
}

WEFT_NOIPA worker_view* worker_view_of_this_thread() noexcept { return t_worker_view; }

}  // namespace weft::detail
