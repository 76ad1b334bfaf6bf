// SPDX-License-Identifier: MIT
// weft::rt: fibers that wait and are made ready again, and yields. A fiber
// suspends only through suspend() / suspend_to() (or yields through
// yield_current()); whoever it waits for makes it ready through make_ready()
// (docs/protocols/fiber-lifecycle.md). Uses the worker's queue, yield lists
// and fiber pool through worker's member functions.
// Owns: nothing (the states it moves are the fiber's). Used by joins,
// callers, sync objects, waiters, the runtime and the worker's loop.
#pragma once

#include "fiber.hpp"
#include "weft/detail/job.hpp"

namespace weft::detail {
struct runtime_state;
}

namespace weft::rt {

class worker;

// Task function of fiber::m_resume: switches to that fiber; the loop fiber
// that ran it goes back to the pool.
void resume_fiber(detail::job* t) noexcept;

// Worker w is about to switch to f, taken from a queue as a ready fiber:
// ends the count of a suspension (suspend_to). Every switch to a fiber that
// suspend_to() suspended goes through it.
void about_to_resume(worker& w, fiber* f) noexcept;

// Switch action: the previous fiber (dead) is destroyed.
void retire_fiber(worker& w, fiber* prev, void* arg) noexcept;

// Switch action: the previous fiber (idle, at loop level) goes to the pool.
void recycle_fiber(worker& w, fiber* prev, void* arg) noexcept;

// Makes a task runnable in runtime rt: on the calling worker's queue when it
// belongs to rt, else through rt's injection queue (so too a waiter woken by
// a mutex, condition variable, latch or barrier past rt's fiber bound:
// worker::m_wake_goes_on). Any thread.
void make_runnable(detail::job* t, detail::runtime_state* rt) noexcept;

// Makes a suspended fiber runnable again: on the calling worker's queue when
// it belongs to the same runtime, else through its runtime's injection queue
// (as make_runnable). Any thread.
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
bool yield_job(detail::job* t) noexcept;

// The current fiber gives way to the other ready work of its worker (queued
// tasks and yielded fibers) and resumes after it, here or on another worker.
// When no fiber can be had to run the queue, its next task runs on this
// stack instead (unless the stack is nearly full). Returns at once when
// there is nothing else to run. False when the caller is not a worker.
bool yield_current() noexcept;

// Runs t, a task taken from the queue of w (the calling thread's worker), on
// the current fiber's stack, for want of a fiber to run it on: the current
// fiber keeps its work/span strand (a coroutine resumed here may leave its
// own there).
void run_on_this_stack(worker& w, detail::job* t) noexcept;

// t continues a coroutine that stopped: one that waited on a weft mutex,
// latch or barrier (sync.cpp), or one whose transfer was deferred because the
// stack was nearly full (transfer_to, detail::resume_deferred). It starts no
// new work: a join near the bottom of a full stack without a fiber runs it
// there (join.cpp, wait_without_fiber), where it runs no other task.
bool continues_a_coroutine(const detail::job* t) noexcept;

}  // namespace weft::rt
