// SPDX-License-Identifier: MIT
// task_group: spawns by the owner are uncounted and popped back at wait();
// other spawns are counted, and may come while the owner waits: the group's
// frame is an open one (docs/protocols/join.md, "Open frames").
#include "weft/task_group.hpp"

#include <stdexcept>

#include "join.hpp"
#include "scheduler.hpp"
#include "waiter.hpp"
#include "worker.hpp"

namespace weft::rt {
scheduler& default_scheduler();
}

namespace weft::detail {

// group_init() and group_spawn() never switch fibers: inline worker reads.
void group_init(group_state& g) noexcept {
  if (rt::worker* w = rt::this_thread_worker()) {
    g.m_owner = w->m_current;
    g.m_runtime = &w->m_sched;
    g.m_runtime_id = w->m_sched.sequence();
  }
}

namespace {

// A counted spawn: from another fiber or thread than the owner, or into a
// group made outside any runtime. Out of line, so that the owner's path
// below stays a leaf.
WEFT_NOINLINE void spawn_counted(group_state& g, group_task* t, rt::worker* w) {
  // The group's runtime; for a group made outside any runtime, the spawner's
  // (every call inside runtime::run uses that runtime), else the default
  // runtime.
  rt::scheduler* target = nullptr;
  if (g.m_runtime != nullptr) {
    target = &rt::scheduler::of(g.m_runtime);
  } else if (w != nullptr) {
    target = &w->m_sched;
  } else {
    target = &rt::default_scheduler();  // may throw: nothing done yet
  }
  t->m_counted = true;
  if (w != nullptr && &w->m_sched == target) {
    g.m_frame.m_pending.fetch_add(1, std::memory_order_relaxed);  // before t is visible; the push publishes it
    try {
      w->push(t);
    } catch (...) {
      target->inject(t);  // no memory to grow the deque
    }
    return;
  }
  // From another thread or runtime: the group's runtime may be gone; held
  // alive (counted as a root) while t goes in.
  if (g.m_runtime != nullptr && !rt::pin_runtime(g.m_runtime, g.m_runtime_id)) {
    throw std::logic_error(
        "weft::task_group::spawn: the runtime this group was created in has been destroyed; nothing was spawned");
  }
  g.m_frame.m_pending.fetch_add(1, std::memory_order_relaxed);  // before t is visible; inject publishes it
  target->inject(t);
  if (g.m_runtime != nullptr) target->end_root();
}

}  // namespace

void group_spawn(group_state& g, group_task* t) {
  rt::worker* w = rt::this_thread_worker();
  if (WEFT_LIKELY(g.m_owner != nullptr && w != nullptr && w->m_current == g.m_owner)) {
    t->m_counted = false;
    t->m_next = g.m_last;  // owner's spawns, newest first (m_next is free: never injected)
    w->push(t);
    g.m_last = t;
    ++g.m_spawned;
    return;
  }
  spawn_counted(g, t, w);
}

void group_complete(group_state& g) noexcept { rt::complete_open(g.m_frame); }

namespace {

// w: the calling worker when the caller is the group's owner fiber, or runs
// on a fresh stack on its behalf (the owner is suspended meanwhile); null
// otherwise.
void wait_owned(group_state& g, rt::worker* w) noexcept {
  if (w != nullptr) {
    // Pop back the owner's spawns while they are the newest on this worker.
    // Once one of them ran elsewhere, an address on top of the queue no longer
    // proves identity (closures are recycled): stop and count instead.
    while (task* t = g.m_last) {
      if (g.m_detached.load(std::memory_order_acquire)) break;  // pairs with the release in group_closure::execute
      if (!w->m_queue.pop_if(t)) break;
      rt::counters::bump(w->m_counters.tasks_run);
      g.m_last = t->m_next;
      ++g.m_popped;
      static_cast<group_task*>(t)->m_inline = true;
      t->m_execute(t);  // runs it (or skips it after a failure) and frees it
      if (g.m_last == nullptr) break;
      w = rt::current_worker();  // it may have moved this fiber
    }
  }
  const std::int64_t taken = g.m_spawned - g.m_popped;
  g.m_last = nullptr;
  g.m_spawned = 0;
  g.m_popped = 0;
  // Fast path inline (a group whose spawns were all popped back or are done):
  // one load, and an RMW only when spawns ran elsewhere (see
  // rt::wait_for_children). acquire: pairs with their releasing completions.
  if (g.m_frame.m_pending.load(std::memory_order_acquire) == -taken) {
    if (taken != 0) g.m_frame.m_pending.fetch_add(taken, std::memory_order_relaxed);
  } else {
    rt::wait_for_children(g.m_frame, taken, rt::join_kind::open);
  }
  // Every uncounted spawn that ran elsewhere set the flag before its
  // group_complete(), which this wait observed: no store can follow this reset.
  g.m_detached.store(false, std::memory_order_relaxed);
}

}  // namespace

void group_wait(group_state& g) noexcept {
  // Read on entry, before anything here can switch fibers: inline.
  rt::worker* w = rt::this_thread_worker();
  const bool owner = w != nullptr && g.m_owner != nullptr && w->m_current == g.m_owner;
  if (owner && WEFT_UNLIKELY(w->stack_low())) {
    // The popped-back calls would run on top of a nearly full stack: wait from
    // a fresh one, on the owner's behalf.
    try {
      run_on_fresh_stack([](void* p) { wait_owned(*static_cast<group_state*>(p), rt::current_worker()); }, &g);
      return;
    } catch (...) {
      // unreachable: wait_owned never throws
    }
  }
  wait_owned(g, owner ? w : nullptr);
}

}  // namespace weft::detail
