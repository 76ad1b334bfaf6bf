// task_group: spawns by the owner are uncounted and popped back at wait();
// other spawns are counted (docs/protocols/join.md).
#include "weft/task_group.hpp"
#include "scheduler.hpp"
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
  }
}

void group_spawn(group_state& g, group_task* t) {
  rt::worker* w = rt::this_thread_worker();
  if (w != nullptr && g.m_owner != nullptr && w->m_current == g.m_owner) {
    t->m_counted = false;
    t->m_next = g.m_last;  // owner's spawns, newest first (m_next is free: never injected)
    w->push(t);
    g.m_last = t;
    ++g.m_spawned;
    return;
  }
  if (g.m_runtime == nullptr) g.m_runtime = &rt::default_scheduler();  // may throw: nothing done yet
  t->m_counted = true;
  g.m_frame.m_pending.fetch_add(1, std::memory_order_relaxed);  // before t is visible; the pushes publish it
  if (w != nullptr && &w->m_sched == g.m_runtime) {
    try {
      w->push(t);
      return;
    } catch (...) {
      // no memory to grow the deque: inject instead
    }
  }
  rt::scheduler::of(g.m_runtime).inject(t);
}

namespace {

// owner: the caller is the group's owner fiber, or runs on a fresh stack on
// its behalf (the owner is suspended meanwhile).
void wait_owned(group_state& g, bool owner) noexcept {
  if (owner) {
    rt::worker* w = rt::current_worker();
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
      t->m_execute(t);           // runs it (or skips it after a failure) and frees it
      w = rt::current_worker();  // it may have moved this fiber
    }
  }
  const std::int64_t taken = g.m_spawned - g.m_popped;
  g.m_last = nullptr;
  g.m_spawned = 0;
  g.m_popped = 0;
  wait(g.m_frame, taken);
  // Every uncounted spawn that ran elsewhere set the flag before its
  // complete(), which wait() observed: no store can follow this reset.
  g.m_detached.store(false, std::memory_order_relaxed);
}

}  // namespace

void group_wait(group_state& g) noexcept {
  rt::worker* w = rt::current_worker();
  const bool owner = w != nullptr && g.m_owner != nullptr && w->m_current == g.m_owner;
  if (owner && WEFT_UNLIKELY(w->stack_low())) {
    // The popped-back calls would run on top of a nearly full stack: wait from
    // a fresh one, on the owner's behalf.
    try {
      run_on_fresh_stack([](void* p) { wait_owned(*static_cast<group_state*>(p), true); }, &g);
      return;
    } catch (...) {
      // unreachable: wait_owned never throws
    }
  }
  wait_owned(g, owner);
}

}  // namespace weft::detail
