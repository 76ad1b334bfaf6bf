// SPDX-License-Identifier: MIT
// weft::rt: fibers that wait and are made ready again, and yields.
#include "suspend.hpp"

#include <new>

#include "caller.hpp"
#include "loop.hpp"
#include "scheduler.hpp"
#include "waiter.hpp"
#include "worker.hpp"
#include "workspan.hpp"

namespace weft::rt {

void recycle_fiber(worker& w, fiber* prev, void*) noexcept { w.pool_fiber(prev); }

// resume_fiber(), suspend(), yield_job() and throw_no_fiber() read the
// worker inline (and use it only before their switch, if any): out of line
// (WEFT_NOINLINE), so that no caller that runs them after a switch of its own
// can have its thread's TLS address reused for them (see
// this_thread_worker()). yield_current() is called only from the public entry
// point.
void about_to_resume(worker& w, fiber* f) noexcept {
  if (f->m_suspended) {
    // It runs on this worker next: no longer in flight elsewhere (a worker
    // leaves only once nothing is in flight: scheduler::done()).
    f->m_suspended = false;
    w.m_sched.end_root();
  }
}

WEFT_NOINLINE void resume_fiber(detail::job* t) noexcept {
  fiber* f = fiber_of(t);
  worker& w = *this_thread_worker();
  about_to_resume(w, f);
  switch_to(w, f, &recycle_fiber, nullptr);
}

void retire_fiber(worker&, fiber* prev, void*) noexcept { destroy_fiber(prev); }

namespace {

// Owner: w's queue holds tasks, after moving the injection queue's onto it
// when it was empty (a yield must let them run: with one worker nobody else
// takes them).
bool local_or_injected(worker& w) noexcept {
  return !w.m_queue.empty() || (!w.m_sched.injection().looks_empty() && w.take_injected_onto_queue());
}

// Queues t, ready to run in scheduler s: on the calling worker's queue when
// it belongs to s, else (or when the deque cannot grow) through s's injection
// queue. Any thread. A wake by code that goes on running (a mutex's,
// condition variable's, latch's or barrier's: w->m_wake_goes_on) past the
// fiber bound goes through the injection queue too: no worker steals then
// (worker::search), but each takes injected work; on this worker's queue the
// waiter waited for its waker's next scheduling point, with the others idle.
// (Not for a fiber its own switch action makes ready, a continuation or a
// join's completion: this worker runs those next.)
void ready_in(scheduler& s, detail::job* t) noexcept {
  worker* w = current_worker();
  if (w != nullptr && &w->m_sched == &s && !(w->m_wake_goes_on && s.over_fiber_bound())) {
    try {
      w->push_uncounted(t);
      return;
    } catch (...) {
      // no memory to grow the deque: go through the injection queue instead
    }
  }
  s.inject(t);
}

}  // namespace

void make_ready(fiber* f) noexcept {
  if (WEFT_UNLIKELY(f->m_pinned != nullptr)) {
    make_pinned_ready(f);
    return;
  }
  ready_in(*f->m_sched, &f->m_resume);
}

void make_runnable(detail::job* t, detail::runtime_state* rt) noexcept { ready_in(scheduler::of(rt), t); }

WEFT_NOINLINE bool suspend(switch_action publish, void* arg) noexcept {
  worker* w = this_thread_worker();
  fiber* next = w->next_fiber();
  if (next == nullptr) return false;
  suspend_to(*w, next, publish, arg);
  return true;
}

void suspend_to(worker& w, fiber* next, switch_action publish, void* arg) noexcept {
  counters::bump(w.m_counters.suspensions);
  // Items of a loop in progress on this fiber that have not started go to
  // other workers (and to this one's next fiber): none waits behind this one.
  if (WEFT_UNLIKELY(w.m_current->m_leaves != nullptr)) hand_off_unstarted(w, *w.m_current);
  // A suspended fiber is work in flight: the runtime's destructor waits for
  // it (counted before publish can make it resumable; uncounted in
  // resume_fiber()).
  w.m_current->m_suspended = true;
  w.m_sched.begin_root();
  // A measured strand does no work while it waits.
  detail::ws_strand* strand = w.m_current->m_ws;
  const bool running = strand != nullptr && strand->m_start != 0;
  if (WEFT_UNLIKELY(running)) ws_pause(*strand);
  switch_to(w, next, publish, arg);
  if (WEFT_UNLIKELY(running)) ws_resume_piece(*strand);
}

void run_on_this_stack(worker& w, detail::job* t) noexcept {
  counters::bump(w.m_counters.tasks_run);
  fiber* self = w.m_current;
  detail::ws_strand* strand = self->m_ws;
  const std::uintptr_t waiting = w.begin_activation();  // t is not the waiting task
  t->m_execute(t);
  current_worker()->end_activation(waiting);  // t may have moved this fiber
  if (WEFT_UNLIKELY(self->m_ws != strand)) set_strand(*self, strand);
}

WEFT_NOINLINE void throw_no_fiber() {
  const worker* w = this_thread_worker();
  if (w != nullptr && w->fiber_error()) std::rethrow_exception(w->fiber_error());
  throw std::bad_alloc();
}

WEFT_NOINLINE bool yield_job(detail::job* t) noexcept {
  worker* w = this_thread_worker();
  if (w == nullptr) return false;
  // A coroutine that polls with yield_async in a loop item (sync_wait runs
  // it on the item's fiber) may poll for an item not started: as for
  // yield_current, the item's second yield hands them off.
  if (WEFT_UNLIKELY(w->m_current->m_leaves != nullptr) && yields_again(*w->m_current)) {
    hand_off_unstarted(*w, *w->m_current);
  }
  // Injected tasks and a borrowing thread's ready call count as this
  // worker's work, as for yield_current().
  if (!local_or_injected(*w) && !w->has_yielded() && !w->caller_ready()) return false;
  w->push_yielded_job(t);
  counters::bump(w->m_counters.suspensions);
  return true;
}

bool yield_current() noexcept {
  worker* w = this_thread_worker();
  if (w == nullptr) return false;
  // First the items of a loop in progress here that have not started, when
  // the running item yields for the second time: it polls, maybe for one of
  // them (docs/protocols/loops.md).
  if (WEFT_UNLIKELY(w->m_current->m_leaves != nullptr) && yields_again(*w->m_current)) {
    hand_off_unstarted(*w, *w->m_current);
  }
  // Tasks injected from outside (a fiber resumed by a thread from outside, a
  // call handed over) count as this worker's: with one worker nobody else
  // would run them while this fiber polls. So does the call of the thread
  // that borrows this slot, when it is done (only this thread can return
  // it, and the poller may wait for what it does next).
  const bool queued = local_or_injected(*w) || w->caller_ready();
  if (!queued && !w->has_yielded()) return true;  // nothing else to run here
  // Queued tasks run before any yielded fiber (a loop fiber takes them
  // first): two fibers that poll with yield() would otherwise hand the worker
  // to each other for ever, and a task on the queue (the rest of a loop whose
  // items they wait for) would never start.
  fiber* next = queued ? w->idle_fiber() : nullptr;
  if (next == nullptr && queued) {
    // No stack for a fiber to run the queue: its next task runs on this
    // stack instead (a ready fiber is switched to), so that a poller does not
    // spin while what it polls for waits in the queue. On a nearly full
    // stack no task may start: only what goes on may, as in a join's wait
    // without a fiber (a ready fiber on its own stack, a coroutine), and
    // what may not start goes to the workers that have a stack (published,
    // a sleeper woken).
    const bool room = !w->real_stack_low();
    detail::job* t = room ? w->take_ready() : w->take_continuation();
    if (t == nullptr && !room) w->give_away_private();
    if (t != nullptr) {
      if (t->m_execute != &resume_fiber) {
        run_on_this_stack(*w, t);
        return true;
      }
      next = fiber_of(t);
      about_to_resume(*w, next);
    }
  }
  if (next == nullptr) next = w->next_fiber();
  if (next == nullptr) return true;
  // Queued before the switch: only this worker reads its yield list, and it
  // is busy switching, so nobody can resume this fiber too early.
  w->push_yielded(w->m_current);
  counters::bump(w->m_counters.suspensions);
  detail::ws_strand* strand = w->m_current->m_ws;
  const bool running = strand != nullptr && strand->m_start != 0;
  if (WEFT_UNLIKELY(running)) ws_pause(*strand);
  switch_to(*w, next, nullptr, nullptr);
  if (WEFT_UNLIKELY(running)) ws_resume_piece(*strand);
  return true;
}

}  // namespace weft::rt
