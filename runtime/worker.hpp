// SPDX-License-Identifier: MIT
// weft::rt: a worker thread and its scheduling loop: pop, steal, park.
// Owns: its queue, yield lists, fiber pool, task cache, counters and victim
// state. Touched by: its owner thread (or a borrowing caller); the shared
// fields are grouped below with the parts that touch them.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <variant>

#include "assert.hpp"
#include "caller.hpp"
#include "counters.hpp"
#include "fiber.hpp"
#include "job_cache.hpp"
#include "job_queue.hpp"
#include "platform.hpp"
#include "stack.hpp"
#include "trace.hpp"
#include "victim.hpp"
#include "weft/stats.hpp"

namespace weft::rt {

class scheduler;

// One worker: its thread, its queue, its fibers. Everything here is touched by
// the owner thread only, except m_queue's public part (thieves), m_counters
// (readers) and the fields marked otherwise.
class alignas(k_false_sharing) worker {
 public:
  // first: the fiber the thread starts its loop on (created by the caller, so
  // that a failure to create it is reported in the runtime's constructor).
  worker(scheduler& s, int index, fiber* first);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  // Body of the worker thread: runs the scheduling loop on fibers until the
  // scheduler stops, then frees the fibers it holds.
  void thread_main() noexcept;

  // Owner: makes t runnable (others may steal it); wakes a sleeper when t or
  // an older task became visible to thieves.
  void push(detail::job* t) {
    WEFT_ASSERT(is_owner(), "worker::push: called by the worker's own thread");
    counters::bump(m_counters.spawns);
    if (detail::job* p = m_queue.push(t); WEFT_UNLIKELY(p != nullptr)) published(p);
  }
  // The same for a task that is not a spawn (a fiber made ready again).
  void push_uncounted(detail::job* t) {
    WEFT_ASSERT(is_owner(), "worker::push_uncounted: called by the worker's own thread");
    if (WEFT_UNLIKELY(m_queue.push(t) != nullptr)) wake_sleeper();
  }

  // Any thread: this worker's counters, with the spawns and pop-backs that
  // the public templates did inline (counted in its ring); and their reset.
  worker_stats stats() const noexcept;
  void reset_stats() noexcept;

  // Owner: the next task to run, found locally, in the injection queue or by
  // stealing; parks while there is none. Null when the scheduler stops.
  detail::job* find_work() noexcept;

  // Owner: a fiber to switch to when the current fiber suspends: the oldest
  // yielded entry when it is a fiber, else an idle pooled one, or a new one,
  // or (when none can be created) a yielded fiber out of turn. Null only when
  // none can be had (m_fiber_error says why).
  fiber* next_fiber() noexcept;
  // Owner: an idle pooled fiber or a new one; null when none can be created
  // (m_fiber_error says why).
  fiber* idle_fiber() noexcept;

  // Any thread (reads only constant fields and public queues): some work is
  // visible to thieves (a public deque of another worker, or the injection
  // queue).
  bool work_visible() const noexcept;
  // Owner: work_visible(), and asks every other worker whose public deque
  // is empty to publish (public_nonempty_or_ask), as a failed steal does.
  bool work_visible_or_ask() noexcept;

  // Owner: one steal round (the runtime's victim policy); the stolen task or
  // null. For joins that run stolen work on their own stack (join.cpp): a
  // loop's split that helps its own loop (watch_in_place), a join without a
  // fiber (wait_without_fiber).
  detail::job* steal_for_help() noexcept { return (this->*m_steal_round)(); }
  // Owner: queues a stolen task that the thief will not run at once (on its
  // deque, else, when that cannot grow, on the injection queue).
  void queue_stolen(detail::job* t) noexcept;

  // Owner: ready work of this worker without searching or parking: its
  // queue, the oldest yielded fiber (its resume descriptor) or task, the
  // injection queue. Null when there is none. For a join that has no fiber
  // to suspend to (join.cpp).
  detail::job* take_ready() noexcept;
  // Owner: for a join near the bottom of a full stack without a fiber, which
  // starts no task there (join.cpp, wait_without_fiber): work that goes on
  // rather than starts, a ready fiber's resume descriptor or a task that
  // continues a coroutine (continues_a_coroutine): the newest such task of
  // this worker's queue (private or public part), else the oldest in the
  // injection queue; null when none is. Nothing else is taken: the other
  // tasks keep their places (job_queue::take_newest_such), the other
  // injected tasks go back to the injection queue (and a sleeper is woken
  // for them).
  detail::job* take_continuation() noexcept;
  // Owner: publishes every private task of this worker (a publish event
  // each in a trace) and wakes a sleeper: for a join that may start none of
  // them (wait_without_fiber), so that another worker, with a stack to run
  // them on, can steal them; and for work to be shared at once: a loop's
  // split (runtime/loop.cpp, split_step), a waiter that a mutex, condition
  // variable, latch or barrier made ready here (runtime/sync.cpp,
  // wake_visibly), a reduction's eager pieces (detail::offer_queued,
  // runtime/join.cpp).
  void give_away_private() noexcept;
  // Owner: the same for the `most` oldest private tasks (detail::offer_spawns).
  void give_away_oldest(std::uint32_t most) noexcept;
  // Owner: how many other workers of the runtime look for work: those
  // parked and those searching (a worker counts as searching from its
  // thread's start), or 1 when none does but a thief found this worker's
  // deque empty since its last publication (a hint: each may change at
  // once). Loads of the parked bits and of the count of searchers (shared
  // lines, written when a worker parks or wakes, starts or ends a search),
  // then of the demand flag.
  std::uint32_t idle_others() const noexcept;

  // Owner: this worker has ready work of its own: a queued task, a yielded
  // fiber or a yielded task.
  bool has_local_work() const noexcept { return !m_queue.empty() || has_yielded(); }
  // True when this worker's slot is lent and the borrowing thread's own
  // stack was made ready: the loop switches back to it first.
  bool caller_ready() const noexcept {
    // acquire: pairs with the release in make_pinned_ready(); the caller's
    // fiber was saved before it was made ready.
    return m_caller != nullptr && m_caller->m_native_ready.load(std::memory_order_acquire);
  }
  // Owner: a fiber or a task yielded on this worker and waits for its turn.
  bool has_yielded() const noexcept { return !m_yielded.empty(); }
  // Owner, its queue empty: moves the injection queue's tasks onto the queue,
  // the oldest to run first; true when the queue holds any after. For a
  // yield, which must let them run (with one worker nobody else takes them).
  bool take_injected_onto_queue() noexcept;

  // Owner, at a poll point: a thief asked for work. Publishes the oldest
  // private task; false when there was none to publish (the caller may split
  // its own work instead).
  bool serve_demand();

  // Owner: the slow paths of suspend(), yield_current() and the join without
  // a fiber (suspend.cpp, join.cpp) reach the yield lists and the pool here.
  // Yielded fibers and tasks share one FIFO, so that each waits for all that
  // yielded before it, whatever their kind (a fiber as its resume
  // descriptor).
  void push_yielded(fiber* f) noexcept { m_yielded.push_back(&f->m_resume); }
  void push_yielded_job(detail::job* t) noexcept { m_yielded.push_back(t); }
  // The oldest yielded fiber, wherever it is in the FIFO, or null. For a
  // join near the bottom of its stack, which runs fibers but no tasks.
  fiber* take_yielded_fiber() noexcept;
  void pool_fiber(fiber* f) noexcept { m_pool.put(f); }
  // Why the last fiber creation failed (see idle_fiber); null if none did.
  const std::exception_ptr& fiber_error() const noexcept { return m_fiber_error; }

  // Owner (or the switch that lands on f): f runs on this worker now. The
  // public templates' view gets its stack limits (stack_low_here(), push()).
  void set_current(fiber* f) noexcept {
    m_current = f;
    detail::worker_view& view = *m_job_cache.view();
    view.m_stack_limit = f->m_real_limit;
    view.m_spawn_limit = f->m_stack_limit;
    view.m_fiber = reinterpret_cast<const void*>(f->m_activation);
  }
  // Owner: a task starts on the running fiber: a fresh activation
  // (fiber::m_activation), unique in the runtime: 2 mod 4, this worker's
  // index and its count of them. Returns the one it replaces (a fiber that
  // runs a task on its stack while it waits gets that back: end_activation).
  std::uintptr_t begin_activation() noexcept {
    const std::uintptr_t previous = m_current->m_activation;
    ++m_activations;
    set_activation((m_activations << 16 | static_cast<std::uintptr_t>(m_index)) << 2 | 2);
    return previous;
  }
  void end_activation(std::uintptr_t previous) noexcept { set_activation(previous); }
  // Owner: the running fiber's spawn limit changed (a measured strand began
  // or ended on it).
  void spawn_limit_changed() noexcept { m_job_cache.view()->m_spawn_limit = m_current->m_stack_limit; }

  // True when the running fiber's stack is nearly full (entry points then
  // continue on a fresh stack).
  // Also true on a fiber that runs a measured strand: spawns check this one
  // and take their measured path there (workspan.hpp).
  bool stack_low() const noexcept { return stack_pointer() < m_current->m_stack_limit; }
  // The stack itself is nearly full (whether measured or not).
  bool real_stack_low() const noexcept { return stack_pointer() < m_current->m_real_limit; }

  // ---- Shared state. Besides the owner, these are touched by the fiber
  // switch (fiber.cpp: m_current, m_eh_globals, m_trace, m_native), by a
  // thread from outside that borrows this worker's slot and becomes its owner
  // for a while (caller.cpp: m_current, m_eh_globals, m_caller,
  // m_sleep_entry, m_counters), by thieves (m_queue's public part) and by
  // readers of the counters (m_counters).
  scheduler& m_sched;
  const int m_index;
  fiber* m_current = nullptr;        // the fiber running on this worker
  std::uintptr_t m_activations = 0;  // begun here (begin_activation)
  job_cache m_job_cache;             // before m_queue: it holds the queue's private ring
  job_queue m_queue;
  counters m_counters;
  fiber m_native;                 // the thread's own stack
  trace_ring* m_trace = nullptr;  // this worker's events; null when not tracing
  void* m_eh_globals = nullptr;   // this thread's C++ exception globals
  // Owner: set while a mutex, condition variable, latch or barrier wakes
  // waiters from code that goes on running (wake_visibly, runtime/sync.cpp):
  // past the fiber bound, ready_in then injects what it makes ready.
  bool m_wake_goes_on = false;
  signal_stack m_signal_stack;

  // While this worker's slot is lent to a thread from outside
  // (runtime/caller.hpp): that thread's state; null otherwise. Written by the
  // borrowing thread when it takes and returns the slot.
  caller_state* m_caller = nullptr;
  // The sleep_set entry this worker's current thread parks on: m_index for
  // its own thread, another one for a borrowing thread.
  int m_sleep_entry;

 private:
  friend void scheduling_loop() noexcept;  // reads m_found for the trace

  void set_activation(std::uintptr_t a) noexcept {
    m_current->m_activation = a;
    m_job_cache.view()->m_fiber = reinterpret_cast<const void*>(a);
  }

  // The calling thread runs this worker (its own thread, or the thread that
  // borrowed its slot). For checks only.
  bool is_owner() const noexcept;
  // A task became stealable: trace it and wake a sleeper if needed.
  void published(detail::job* t) noexcept;
  // A trace's publish event for t (nothing when not traced).
  void record_publish(const detail::job* t) noexcept;
  void wake_sleeper() noexcept;
  detail::job* got(detail::job* t) noexcept;
  // The ready work of this worker itself, in the order it runs it: its
  // queue (newest first), then yielded fibers, then yielded tasks (oldest
  // first). Null when there is none.
  detail::job* take_local() noexcept;
  detail::job* take_injected() noexcept;
  template <class Policy>
  detail::job* steal_round_with(Policy& victims) noexcept;
  template <class Policy>
  detail::job* steal_round_of() noexcept;
  detail::job* search() noexcept;
  void park() noexcept;
  void go_idle() noexcept;

  // Where the worker stands between tasks. busy: it runs work. idle: it ran
  // out of work and is not counted among the sleep set's searchers (about to
  // search, or parking). searching: it ran out and is counted
  // (sleep_set::start_search(); a worker waking from a park is counted by
  // its waker). Time accounting and the trace follow busy / not busy.
  enum class hunt : std::uint8_t { busy, idle, searching };

  // Fibers (their resume descriptors) and tasks (coroutines) that yielded,
  // oldest first; owner only, never stolen.
  detail::intrusive_fifo<detail::job> m_yielded;
  fiber_pool m_pool;                 // idle fibers
  fiber* m_first;                    // the loop's first fiber, until the thread starts
  std::uint32_t m_found = 0;         // where find_work() found its task: see trace_kind::run_task
  std::exception_ptr m_fiber_error;  // why the last fiber creation failed (see idle_fiber)
  hunt m_hunt = hunt::busy;

  // Victim selection: the state of the runtime's policy, whose steal round is
  // called through one pointer per round (never per task).
  std::variant<random_victims, round_robin_victims, last_victim_first> m_victims;
  detail::job* (worker::*m_steal_round)() noexcept;
};

// The worker of this thread. initial-exec: one load off the thread pointer,
// also from a shared library (the variable is small).
extern constinit thread_local worker* t_worker __attribute__((tls_model("initial-exec")));

// Makes w (null: none) the worker the calling thread runs: t_worker and the
// public templates' view of it (detail::t_worker_view) change together.
inline void set_thread_worker(worker* w) noexcept {
  t_worker = w;
  detail::t_worker_view = w != nullptr ? w->m_job_cache.view() : nullptr;
}

// The worker running the calling thread, or null. Reads the thread pointer
// each time (never inlined or cached), so that a fiber that resumed on another
// thread gets that thread's worker.
worker* current_worker() noexcept;

// The same, inline: only where the value is not used after a fiber switch
// (in a function that does not switch, or before its switch), and in
// functions that are not inlined into ones that run them after a switch
// (GCC treats the thread pointer as constant within a function): such a
// function is WEFT_NOINLINE, or called only from outside libweft.
inline worker* this_thread_worker() noexcept { return t_worker; }

// The scheduling loop every pool fiber runs; returns when the scheduler stops.
void scheduling_loop() noexcept;

}  // namespace weft::rt
