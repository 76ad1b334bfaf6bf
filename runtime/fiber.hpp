// SPDX-License-Identifier: MIT
// weft::rt: fibers, the carriers of a worker's scheduling loop.
// Owns: fiber objects (context, stack, per-fiber state). Touched by: the
// worker running a fiber; created and destroyed through fiber.cpp by
// worker.cpp, suspend.cpp, join.cpp (fresh stacks) and scheduler.cpp.
#pragma once

#include <cstddef>
#include <cstdint>

#include "context.hpp"
#include "stack.hpp"
#include "weft/detail/fifo.hpp"
#include "weft/detail/job.hpp"
#include "weft/detail/workspan.hpp"

namespace weft::rt {

class scheduler;
class worker;
struct caller_state;
struct running_leaf;

// A fiber: a stack and a saved context. Every fiber of a worker runs the same
// scheduling loop and runs tasks inline on top of it; a fiber switch happens
// only when a fiber must wait (docs/protocols/fiber-lifecycle.md). The fiber
// object lives at the top of its own stack, in a slot of a slab (stack.hpp).
struct fiber {
  context m_ctx;
  detail::job m_resume;  // executing it switches to this fiber (it is ready)
  scheduler* m_sched = nullptr;
  stack_memory m_stack;  // empty for a thread's own stack
  // Spawns check this limit: the stack counts as nearly full below it. It is
  // m_real_limit, except k_measured_limit while the fiber runs a measured
  // strand (workspan.hpp); checks of the stack itself read m_real_limit.
  std::uintptr_t m_stack_limit = 0;
  std::uintptr_t m_real_limit = 0;
  fiber* m_next = nullptr;  // link in a pool or a ready list, owned by that list's worker

  // The C++ exception state of this fiber while it is suspended (non-empty only
  // when it suspended inside a catch block or during unwinding).
  void* m_eh_caught = nullptr;
  unsigned int m_eh_uncaught = 0;
  bool m_has_eh = false;
  // Runs (or is suspended in) a task, as opposed to idling at loop level:
  // decides which switches open and close run segments in the trace.
  bool m_in_job = false;
  // Set for the own stack of a thread from outside that holds a borrowed slot
  // (runtime/caller.hpp): resumed only on that thread.
  caller_state* m_pinned = nullptr;
  // The innermost call of a loop body in progress on this fiber (loop.hpp):
  // its items not started are handed to other workers when the fiber
  // suspends or yields.
  running_leaf* m_leaves = nullptr;
  // The strand this fiber runs while a call is measured (workspan.hpp);
  // null otherwise. Set and read by the thread running the fiber.
  detail::ws_strand* m_ws = nullptr;
  // m_ws was handed on at a coroutine's suspension point (ws_suspend_point,
  // a paused ws_spawn_point) and not taken back since (set_strand clears
  // it): whoever resumes that coroutine may run it on another thread now.
  // Set and read by the thread running the fiber.
  bool m_ws_lent = false;
  // Which task activation runs on this fiber: a value of its own (never 0,
  // low bit clear) from its creation, and a fresh one each time a task
  // starts on it (worker::begin_activation: the scheduling loop, a task run
  // on a waiting fiber's stack, a call on a fresh stack). A task_group's
  // owner is one: a fiber runs many tasks in turn, and a group may outlive
  // the task that made it (a coroutine's, or one handed to another thread).
  // Written by the thread running the fiber.
  std::uintptr_t m_activation = 0;
  // Suspended by suspend(): counted as work in flight of its runtime
  // (scheduler::begin_root) until it is resumed.
  bool m_suspended = false;
  // The group whose call runs in activation m_group_call_activation on this
  // fiber (a call not popped back by its owner: detail::group_call_begins),
  // until it completes (group_complete); a wait of that group there would
  // wait for itself. A hint, written by the thread running the fiber: a call
  // run on its stack while it waits (no fiber to be had) replaces it.
  const void* m_group_call = nullptr;
  std::uintptr_t m_group_call_activation = 0;
};

// Creates a fiber of s with a fresh guarded stack of s's configured size; it
// starts in the scheduling loop when first switched to. Throws what
// allocate_stack() throws (std::system_error naming vm.max_map_count,
// memory or locked memory, or std::bad_alloc).
fiber* create_fiber(scheduler& s);
// Frees f's stack (and f). f must not be running.
void destroy_fiber(fiber* f) noexcept;

// Makes f stand for the calling thread's own stack.
void adopt_thread(fiber& f, scheduler& s) noexcept;

// A fiber's activation from its creation (fiber::m_activation): unique in
// the process. Any thread.
std::uintptr_t first_activation() noexcept;

inline fiber* fiber_of(detail::job* resume) noexcept {
  return reinterpret_cast<fiber*>(reinterpret_cast<char*>(resume) - offsetof(fiber, m_resume));
}

// Runs on the fiber that was switched to, right after the switch: w is the
// worker now running, prev the fiber that switched away (now saved: it may be
// published).
using switch_action = void (*)(worker& w, fiber* prev, void* arg);

// Saves the running fiber of w (the calling thread's worker) and runs `to`,
// which first calls fn(worker, previous, arg) if fn is set. Returns when the
// saved fiber is resumed, possibly on another worker thread: re-read
// current_worker() after it.
void switch_to(worker& w, fiber* to, switch_action fn, void* arg) noexcept;

// The most idle fibers a worker keeps: a pooled fiber keeps its stack's
// touched pages resident, so the pool bounds a worker's idle stack memory at
// 64 stacks (16 MiB at the default stack size if every page were touched).
// 64 is also the slot count of a stack slab (runtime/stack.cpp), so a
// worker's idle fibers never hold more than one slab's worth. Below the
// bound, waits reuse fibers without touching the slabs: rounds of 50
// suspensions cost 0.8 us each, rounds of 200 (136 fibers past the pool)
// 28-35 us (docs/decisions/0007-stack-slabs.md). A worker keeps at most
// min(k_max_idle_fibers, config::max_fibers / 2), so pooled fibers never use
// up the live-fiber bound.
inline constexpr std::size_t k_max_idle_fibers = 64;

// Idle fibers of one worker (owner only). Fibers migrate between workers when
// they suspend and resume, so a pool may hold fibers another worker created.
class fiber_pool {
 public:
  explicit fiber_pool(std::size_t max_idle) : m_max_idle(max_idle) {}
  fiber_pool(const fiber_pool&) = delete;
  fiber_pool& operator=(const fiber_pool&) = delete;
  ~fiber_pool() { clear(); }

  fiber* take() noexcept {
    fiber* f = m_head;
    if (f != nullptr) {
      m_head = f->m_next;
      --m_count;
    }
    return f;
  }
  // Keeps f for reuse, or destroys it when the pool is full. Returns true when
  // f was destroyed.
  bool put(fiber* f) noexcept {
    if (m_count >= m_max_idle) {
      destroy_fiber(f);
      return true;
    }
    f->m_next = m_head;
    m_head = f;
    ++m_count;
    return false;
  }
  std::size_t clear() noexcept {
    std::size_t n = 0;
    while (fiber* f = take()) {
      destroy_fiber(f);
      ++n;
    }
    return n;
  }

 private:
  fiber* m_head = nullptr;
  std::size_t m_count = 0;
  std::size_t m_max_idle;
};

// A FIFO of ready fibers (owner only).
using fiber_list = detail::intrusive_fifo<fiber>;

// The address of the calling thread's C++ exception globals.
void* this_thread_eh_globals() noexcept;

}  // namespace weft::rt
