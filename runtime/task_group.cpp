// task_group: spawns by the owner are uncounted and popped back at wait();
// other spawns are counted, and may come while the owner waits
// (docs/protocols/join.md, "Groups").
#include "weft/task_group.hpp"
#include "scheduler.hpp"
#include "waiter.hpp"
#include "worker.hpp"

namespace weft::rt {
scheduler& default_scheduler();
}

namespace weft::detail {

namespace {

constexpr std::int64_t k_waiting = join_frame::k_waiting;
// The wait in progress is complete and one party owns its resumption.
// Counted spawns that come meanwhile add to it; the owner subtracts it when it
// goes on, leaving their count for its next wait.
constexpr std::int64_t k_claimed = std::int64_t{1} << 61;

// Adds delta to the counter; when that completes the wait in progress (the
// sum is exactly k_waiting), stores k_claimed instead. True: the caller owns
// the resumption of the waiter. acq_rel: a finished spawn releases its writes
// and the claimer acquires every earlier one; the waiter's add releases
// m_waiter to the claimer.
bool add_and_claim(std::atomic<std::int64_t>& pending, std::int64_t delta) noexcept {
  std::int64_t v = pending.load(std::memory_order_relaxed);
  bool claim;
  do {
    // Not `result == k_claimed`: a spawn counted after a claim that finishes
    // brings k_claimed + 1 down to k_claimed without claiming anything.
    claim = v + delta == k_waiting;
  } while (!pending.compare_exchange_weak(v, claim ? k_claimed : v + delta, std::memory_order_acq_rel,
                                          std::memory_order_relaxed));
  return claim;
}

struct group_wait_action {
  group_state* m_group;
  std::int64_t m_taken;
};

// Switch action: the owner's fiber is saved; register the wait. If that
// completes it, resume the owner at once.
void publish_group_wait(rt::worker&, rt::fiber* prev, void* arg) noexcept {
  const auto* a = static_cast<group_wait_action*>(arg);
  if (add_and_claim(a->m_group->m_frame.m_pending, a->m_taken + k_waiting)) rt::make_ready(prev);
  // Otherwise a spawn may resume prev at any moment: touch nothing of it.
}

void wait_as_thread(group_state& g, std::int64_t taken) noexcept {
  rt::waiter me;
  g.m_frame.m_waiter = &me;
  if (!add_and_claim(g.m_frame.m_pending, taken + k_waiting)) rt::block(me);
}

// Returns once `taken` uncounted spawns and every counted spawn made before
// the wait registered have finished. Spawns counted later stay in the counter
// for the next wait.
void wait_for_spawns(group_state& g, std::int64_t taken) noexcept {
  std::atomic<std::int64_t>& pending = g.m_frame.m_pending;
  // Fast path: every spawn finished (the counter is exactly -taken then). The
  // acquire pairs with their releasing decrements.
  if (pending.load(std::memory_order_acquire) == -taken) {
    // Spawns counted since keep their count; ours go back to zero.
    if (taken != 0) pending.fetch_add(taken, std::memory_order_relaxed);
    return;
  }
  rt::worker* w = rt::current_worker();
  if (w == nullptr) {
    wait_as_thread(g, taken);
  } else {
    rt::waiter me;
    me.m_fiber = w->m_current;
    g.m_frame.m_waiter = &me;
    group_wait_action a{&g, taken};
    if (!rt::suspend(&publish_group_wait, &a)) {
      me.m_fiber = nullptr;  // no fiber to switch to (out of memory): block this worker instead
      wait_as_thread(g, taken);
    }
  }
  // Resumed by the claimer (or claimed here): close this wait. relaxed: only
  // this party can remove k_claimed, and the claim already acquired.
  pending.fetch_sub(k_claimed, std::memory_order_relaxed);
}

}  // namespace

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
  // Counted: the group's runtime; for a group made outside any runtime, the
  // spawner's (every call inside runtime::run uses that runtime), else the
  // default runtime.
  rt::scheduler* target = nullptr;
  if (g.m_runtime != nullptr) {
    target = &rt::scheduler::of(g.m_runtime);
  } else if (w != nullptr) {
    target = &w->m_sched;
  } else {
    target = &rt::default_scheduler();  // may throw: nothing done yet
  }
  t->m_counted = true;
  g.m_frame.m_pending.fetch_add(1, std::memory_order_relaxed);  // before t is visible; the pushes publish it
  if (w != nullptr && &w->m_sched == target) {
    try {
      w->push(t);
      return;
    } catch (...) {
      // no memory to grow the deque: inject instead
    }
  }
  target->inject(t);
}

void group_complete(group_state& g) noexcept {
  if (add_and_claim(g.m_frame.m_pending, -1)) rt::notify(*static_cast<rt::waiter*>(g.m_frame.m_waiter));
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
  wait_for_spawns(g, taken);
  // Every uncounted spawn that ran elsewhere set the flag before its
  // group_complete(), which this wait observed: no store can follow this reset.
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
