// SPDX-License-Identifier: MIT
// weft::rt: a worker thread and its scheduling loop: pop, steal, park.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <variant>

#include "assert.hpp"
#include "caller.hpp"
#include "counters.hpp"
#include "fiber.hpp"
#include "platform.hpp"
#include "stack.hpp"
#include "task_cache.hpp"
#include "task_queue.hpp"
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
  void push(detail::task* t) {
    WEFT_ASSERT(is_owner(), "worker::push: called by the worker's own thread");
    counters::bump(m_counters.spawns);
    if (detail::task* p = m_queue.push(t); WEFT_UNLIKELY(p != nullptr)) published(p);
  }
  // The same for a task that is not a spawn (a fiber made ready again).
  void push_uncounted(detail::task* t) {
    WEFT_ASSERT(is_owner(), "worker::push_uncounted: called by the worker's own thread");
    if (WEFT_UNLIKELY(m_queue.push(t) != nullptr)) wake_sleeper();
  }

  // Owner: the next task to run, found locally, in the injection queue or by
  // stealing; parks while there is none. Null when the scheduler stops.
  detail::task* find_work() noexcept;

  // Owner: a fiber to switch to when the current fiber suspends: a ready
  // yielded fiber, an idle pooled one, or a new one. Null only when no fiber
  // can be created (m_fiber_error says why).
  fiber* next_fiber() noexcept;
  // Owner: an idle pooled fiber or a new one; null when none can be created
  // (m_fiber_error says why).
  fiber* idle_fiber() noexcept;

  // Any thread (reads only constant fields and public queues): some work is
  // visible to thieves (a public deque of another worker, or the injection
  // queue).
  bool work_visible() const noexcept;

  // Owner: ready work of this worker without searching or parking: its
  // queue, a yielded fiber (its resume descriptor), a yielded task, the
  // injection queue. Null when there is none. For a join that has no fiber
  // to suspend to (join.cpp).
  detail::task* take_ready() noexcept;

  // Owner: this worker has ready work of its own: a queued task, a yielded
  // fiber or a yielded task.
  bool has_local_work() const noexcept { return !m_queue.empty() || !m_yielded.empty() || !m_yielded_tasks.empty(); }

  // Owner, at a poll point: a thief asked for work. Publishes the oldest
  // private task; false when there was none to publish (the caller may split
  // its own work instead).
  bool serve_demand();

  scheduler& m_sched;
  const int m_index;

  // True when the running fiber's stack is nearly full (entry points then
  // continue on a fresh stack).
  // Also true on a fiber that runs a measured strand: spawns check this one
  // and take their measured path there (workspan.hpp).
  bool stack_low() const noexcept { return stack_pointer() < m_current->m_stack_limit; }
  // The stack itself is nearly full (whether measured or not).
  bool real_stack_low() const noexcept { return stack_pointer() < m_current->m_real_limit; }

  fiber* m_current = nullptr;  // the fiber running on this worker
  task_queue m_queue;
  fiber_list m_yielded;                                  // fibers that yielded, oldest first
  detail::intrusive_fifo<detail::task> m_yielded_tasks;  // tasks that yielded (coroutines), oldest first
  fiber_pool m_pool;                                     // idle fibers
  task_cache m_task_cache;
  counters m_counters;
  fiber m_native;                    // the thread's own stack
  fiber* m_first;                    // the loop's first fiber, until the thread starts
  trace_ring* m_trace = nullptr;     // this worker's events; null when not tracing
  std::uint32_t m_found = 0;         // where find_work() found its task: see trace_kind::run_task
  void* m_eh_globals = nullptr;      // this thread's C++ exception globals
  std::exception_ptr m_fiber_error;  // why the last fiber creation failed (see idle_fiber)
  bool m_searching = false;
  signal_stack m_signal_stack;

  // While this worker's slot is lent to a thread from outside
  // (runtime/caller.hpp): that thread's state; null otherwise. Written by the
  // borrowing thread when it takes and returns the slot.
  caller_state* m_caller = nullptr;
  // The sleep_set entry this worker's current thread parks on: m_index for
  // its own thread, another one for a borrowing thread.
  int m_sleep_entry;

 private:
  // The calling thread runs this worker (its own thread, or the thread that
  // borrowed its slot). For checks only.
  bool is_owner() const noexcept;
  // A task became stealable: trace it and wake a sleeper if needed.
  void published(detail::task* t) noexcept;
  void wake_sleeper() noexcept;
  detail::task* got(detail::task* t) noexcept;
  // The ready work of this worker itself, in the order it runs it: its
  // queue (newest first), then yielded fibers, then yielded tasks (oldest
  // first). Null when there is none.
  detail::task* take_local() noexcept;
  detail::task* take_injected() noexcept;
  template <class Policy>
  detail::task* steal_round_with(Policy& victims) noexcept;
  template <class Policy>
  detail::task* steal_round_of() noexcept;
  detail::task* search() noexcept;
  // True when this worker's slot is lent and the borrowing thread's own
  // stack was made ready: the loop switches back to it first.
  bool caller_ready() const noexcept;
  void park() noexcept;
  void go_idle() noexcept;

  // Victim selection: the state of the runtime's policy, whose steal round is
  // called through one pointer per round (never per task).
  std::variant<random_victims, round_robin_victims, last_victim_first> m_victims;
  detail::task* (worker::*m_steal_round)() noexcept;
  bool m_idle = false;  // between going idle and finding work (time accounting, trace)
};

// The worker of this thread. initial-exec: one load off the thread pointer,
// also from a shared library (the variable is small).
extern constinit thread_local worker* t_worker __attribute__((tls_model("initial-exec")));

// The worker running the calling thread, or null. Reads the thread pointer
// each time (never inlined or cached), so that a fiber that resumed on another
// thread gets that thread's worker.
worker* current_worker() noexcept;

// The same, inline: only where the value is not used after a fiber switch
// (in a function that does not switch, or before its switch), and in
// functions that are not inlined into ones that use it after a switch.
inline worker* this_thread_worker() noexcept { return t_worker; }

// The scheduling loop every pool fiber runs; returns when the scheduler stops.
void scheduling_loop() noexcept;

// Task function of fiber::m_resume: switches to that fiber; the loop fiber
// that ran it goes back to the pool.
void resume_fiber(detail::task* t) noexcept;

// Worker w is about to switch to f, taken from a queue as a ready fiber:
// ends the count of a suspension (suspend_to). Every switch to a fiber that
// suspend_to() suspended goes through it.
void about_to_resume(worker& w, fiber* f) noexcept;

// Switch action: the previous fiber (dead) is destroyed.
void retire_fiber(worker& w, fiber* prev, void* arg) noexcept;

// Switch action: the previous fiber (idle, at loop level) goes to the pool.
void recycle_fiber(worker& w, fiber* prev, void* arg) noexcept;

// The address of the calling thread's C++ exception globals.
void* this_thread_eh_globals() noexcept;

// Makes a suspended fiber runnable again: on the calling worker's queue when
// it belongs to the same runtime, else through its runtime's injection queue.
// Any thread.
void make_ready(fiber* f) noexcept;

// Suspends the current fiber of the calling worker: switches to next_fiber(),
// which first runs publish(current, arg). publish must make the suspended
// fiber reachable by whoever will resume it (or resume it at once). Returns
// when the fiber is resumed, possibly on another worker. False when no fiber
// could be obtained (nothing happened; the caller must wait otherwise, or
// throw_no_fiber()).
bool suspend(switch_action publish, void* arg) noexcept;

// The same, to a given fiber `next` of worker w (the calling thread's): a
// ready fiber taken from w's queue, or one from next_fiber().
void suspend_to(worker& w, fiber* next, switch_action publish, void* arg) noexcept;

// Throws why the calling worker could not get a fiber in its last suspend():
// std::system_error naming vm.max_map_count or memory (the error of the
// stack allocation), or std::bad_alloc. For waits on a worker that cannot
// suspend and must not block the thread (sync.cpp).
[[noreturn]] void throw_no_fiber();

// Queues t behind the other ready work of the calling worker (a coroutine
// that yields). False, and nothing queued, when the caller is not a worker or
// the worker has nothing else to run.
bool yield_task(detail::task* t) noexcept;

// The current fiber gives way to the other ready work of its worker (queued
// tasks and yielded fibers) and resumes after it, here or on another worker.
// Returns at once when there is nothing else to run. False when the caller is
// not a worker.
bool yield_current() noexcept;

}  // namespace weft::rt
