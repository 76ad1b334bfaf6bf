// SPDX-License-Identifier: MIT
// task_group: spawns by the owner are uncounted and popped back at wait();
// other spawns are counted, and may come while the owner waits: the group's
// frame is an open one (docs/protocols/join.md, "Open frames").
#include "weft/task_group.hpp"

#include <atomic>
#include <cstdint>
#include <stdexcept>

#include "join.hpp"
#include "scheduler.hpp"
#include "waiter.hpp"
#include "worker.hpp"
#include "workspan.hpp"

namespace weft::rt {
scheduler& default_scheduler();
}

namespace weft::detail {

// group_init_slow() and group_spawn_slow() never switch fibers: inline worker reads.
void group_init_slow(group_state& g) noexcept {
  g.m_owner.store(nullptr, std::memory_order_relaxed);
  g.m_runtime = nullptr;
  g.m_runtime_id = 0;
  g.m_unmeasured_owner = nullptr;
  g.m_ws_of = 0;
  if (rt::worker* w = rt::this_thread_worker()) {
    g.m_owner.store(reinterpret_cast<void*>(w->m_current->m_activation), std::memory_order_relaxed);
    g.m_runtime = &w->m_sched;
    g.m_runtime_id = w->m_sched.sequence();
    if (WEFT_UNLIKELY(w->m_current->m_ws != nullptr)) {
      // Measured: no owner, so that every spawn takes the counted path,
      // where it becomes a strand (docs/protocols/workspan.md).
      g.m_owner.store(nullptr, std::memory_order_relaxed);
      g.m_ws.start();
    }
  } else {
    // Made outside any runtime: no owner, every spawn is counted, and one
    // from a measured strand becomes a strand of its call (spawn_as), as in
    // a group made there. Cold: off a worker.
    g.m_ws.start();
  }
}

namespace {

// A group whose spawns from a measured strand are strands of their call: one
// without an owner, that is one made on a measured strand or outside any
// runtime (group_init_slow), or one made measured by its owner's spawn on a
// measured strand (make_measured). Each has its ws_sync constructed.
bool measured(const group_state& g) noexcept { return g.m_owner.load(std::memory_order_relaxed) == nullptr; }

// What a measured spawn leaves in group_state::m_last: no job on any queue.
job g_measured_spawn_mark;

// A spawn of a measured group: runs t as a strand started where its spawner
// stands (one migration later on the burdened schedule). t runs as if popped
// back (k_inline: it neither marks the group detached nor completes); this
// ends the strand and then completes t, so that the owner sees the strand's
// sums once it sees t done.
struct measured_spawn : job {
  group_job* m_task;
  group_state* m_group;
  ws_strand m_strand;

  static void execute(job* self) noexcept {
    auto* m = static_cast<measured_spawn*>(self);
    group_job* t = m->m_task;
    group_state& g = *m->m_group;
    ws_measure* measure = m->m_strand.m_measure;  // held since spawn_as
    ws_strand* previous = ws_enter(m->m_strand);
    t->m_execute(t);  // runs (or skips) the call and frees t
    if (!rt::ws_measure_over(m->m_strand)) {
      ws_child_end(m->m_strand, g.m_ws.get());
      rt::set_strand(*rt::current_worker()->m_current, previous);
    } else {
      ws_leave(m->m_strand, previous);  // its measured call has returned: in no result
    }
    rt::ws_release(measure);
    free_job(m, sizeof(measured_spawn));
    group_complete(g);  // last access to the group
  }
};

// Empties s without joining its strands anywhere: they belong to another
// measured call than the one that spawns or waits now.
void drop_strands(ws_sync& s) noexcept {
  s.m_work.store(0, std::memory_order_relaxed);
  s.m_end.store(0, std::memory_order_relaxed);
  s.m_bend.store(0, std::memory_order_relaxed);
  s.m_strands.store(0, std::memory_order_relaxed);
}

// Which measured call g's gathered strands belong to (group_state::m_ws_of).
std::atomic_ref<std::uint64_t> strands_of(group_state& g) noexcept { return std::atomic_ref<std::uint64_t>(g.m_ws_of); }

// The task to queue for t, spawned on worker w: t itself, or for a measured
// group and a spawner on a measured strand a strand around it. Throws
// std::bad_alloc (nothing done).
job* spawn_as(group_state& g, group_job* t, const rt::worker* w) {
  if (!measured(g) || WEFT_LIKELY(w->m_current->m_ws == nullptr)) return t;
  ws_strand* spawner = ws_spawn_point(false);
  if (spawner == nullptr) return t;  // a spawn from outside the measured code
  auto* m = ::new (allocate_job(sizeof(measured_spawn))) measured_spawn{};
  m->m_execute = &measured_spawn::execute;
  m->m_task = t;
  m->m_group = &g;
  ws_child_init(m->m_strand, *spawner, true);
  rt::ws_hold(*spawner);  // released by execute: the call may return first
  // A group spawned into by another measured call than before (it was not
  // waited in that one) starts afresh: what it gathered joins no result.
  if (const std::uint64_t of = rt::ws_measure_id(*spawner); strands_of(g).load(std::memory_order_relaxed) != of) {
    drop_strands(g.m_ws.get());
    strands_of(g).store(of, std::memory_order_relaxed);
  }
  t->m_mode = static_cast<std::uint8_t>((t->m_mode & group_job::k_in_slot) | group_job::k_inline);
  return m;
}

// The round of a spawn counted by the RMW that read `before` from g's
// counter: the round in progress, or the next one when the wait in progress
// has been claimed and not yet closed (the count, near k_claimed, then
// belongs to the next wait). A count near k_waiting, during a registered
// wait not yet claimed, is waited for by that wait: its round. As a
// group_job::m_mode bit.
std::uint8_t round_of_count(std::int64_t before) noexcept {
  const std::int64_t round = join_counter::round_bit(before);
  const std::int64_t count = before - round;
  constexpr std::int64_t k_claimed_from = join_counter::k_claimed / 2;
  constexpr std::int64_t k_waiting_from = (join_counter::k_claimed + join_counter::k_waiting) / 2;
  const bool next = count >= k_claimed_from && count < k_waiting_from;
  return (round != 0) != next ? group_state::k_odd_round : group_state::k_even_round;
}

// A counted spawn: from another fiber or thread than the owner, or into a
// group made outside any runtime, or into a measured group. Out of line, so
// that the owner's path below stays a leaf.
WEFT_NOINLINE void spawn_counted(group_state& g, group_job* t, rt::worker* w) {
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
  t->m_mode |= group_job::k_counted;
  // The spawner runs in the group's runtime: the same scheduler, and the same
  // runtime at that address (a destroyed runtime's successor may sit there).
  if (w != nullptr && &w->m_sched == target && (g.m_runtime == nullptr || w->m_sched.sequence() == g.m_runtime_id)) {
    job* queued = spawn_as(g, t, w);  // may throw std::bad_alloc: nothing done yet
    // Before t is visible; the push publishes it. acq_rel: a wait that
    // registered before this add cleared m_last before it (release), so the
    // mark below outlives that clear and the next wait joins this spawn.
    t->m_mode |= round_of_count(g.m_frame.m_pending.fetch_add(1, std::memory_order_acq_rel));
    if (queued != t) g.m_last.store(&g_measured_spawn_mark, std::memory_order_relaxed);
    try {
      w->push(queued);
    } catch (...) {
      target->inject(queued);  // no memory to grow the deque
    }
    return;
  }
  // From another thread or runtime: the group's runtime may be gone; held
  // alive (counted as a root) while t goes in.
  if (g.m_runtime != nullptr && !rt::pin_runtime(g.m_runtime, g.m_runtime_id)) {
    throw std::logic_error(
        "weft::task_group::spawn: the runtime this group was created in has been destroyed; nothing was spawned");
  }
  // Before t is visible; inject publishes it. acquire: a spawn for the next
  // round sees the reset of that round's failure (group_end_failed_round)
  // that came before the registration it read.
  t->m_mode |= round_of_count(g.m_frame.m_pending.fetch_add(1, std::memory_order_acquire));
  target->inject(t);
  if (g.m_runtime != nullptr) target->end_root();
}

}  // namespace

namespace {

// The caller, running on worker w (or null), is g's owner: the task
// activation that made g (fiber::m_activation), in the runtime that made it.
// A fiber's address is not enough: a fiber runs many tasks in turn, and one
// of them may spawn into a group that another made (a coroutine's, which
// moved on to another fiber meanwhile); activations are unique within a
// runtime, whose sequence number tells runtimes apart.
bool is_owner(const group_state& g, const rt::worker* w) noexcept {
  return w != nullptr &&
         reinterpret_cast<void*>(w->m_current->m_activation) == g.m_owner.load(std::memory_order_relaxed) &&
         w->m_sched.sequence() == g.m_runtime_id;
}

}  // namespace

namespace {

// Makes g, whose owner is about to spawn on a measured strand, a measured
// group (as if made there) until a wait off any measured strand gives the
// owner back. Its uncounted spawns from before stay uncounted: the waits count
// them as taken (wait_owned without a worker).
void make_measured(group_state& g) noexcept {
  g.m_unmeasured_owner = g.m_owner.load(std::memory_order_relaxed);
  g.m_owner.store(nullptr, std::memory_order_relaxed);
  g.m_ws.start();
  strands_of(g).store(0, std::memory_order_relaxed);
}

}  // namespace

void group_spawn_slow(group_state& g, group_job* t) {
  rt::worker* w = rt::this_thread_worker();
  if (WEFT_LIKELY(is_owner(g, w))) {
    if (WEFT_UNLIKELY(w->m_current->m_ws != nullptr)) {
      make_measured(g);
      spawn_counted(g, t, w);
      return;
    }
    t->m_mode = static_cast<std::uint8_t>((t->m_mode & group_job::k_in_slot) | g.m_round);
    t->m_next =
        g.m_last.load(std::memory_order_relaxed);  // owner's spawns, newest first (m_next is free: never injected)
    w->push(t);
    g.m_last.store(t, std::memory_order_relaxed);
    ++g.m_unpopped;
    return;
  }
  spawn_counted(g, t, w);
}

void group_call_begins(group_state& g, std::uint8_t mode) noexcept {
  // release: pairs with the owner's acquire in group_wait.
  if ((mode & (group_job::k_inline | group_job::k_counted)) == 0) g.m_detached.store(true, std::memory_order_release);
  if (rt::worker* w = rt::this_thread_worker(); w != nullptr) {
    w->m_current->m_group_call = &g;
    w->m_current->m_group_call_activation = w->m_current->m_activation;
  }
}

void group_complete(group_state& g) noexcept {
  // The call is over: a wait of g on this fiber from now on is not its own.
  if (rt::worker* w = rt::this_thread_worker(); w != nullptr && w->m_current->m_group_call == &g) {
    w->m_current->m_group_call = nullptr;
  }
  rt::complete_open(g.m_frame);
}

namespace {

// Takes up the round that g's counter names (the waiter only).
void sync_round(group_state& g) noexcept {
  const std::int64_t v = g.m_frame.m_pending.load(std::memory_order_relaxed);
  g.m_round = join_counter::round_bit(v) != 0 ? group_state::k_odd_round : group_state::k_even_round;
}

// The owner's activation with its low bit set: no activation's (theirs is
// clear: fiber::m_activation).
void* owner_away(void* owner) noexcept { return reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(owner) | 1U); }

// w: the calling worker when the caller is the group's owner, or runs
// on a fresh stack on its behalf (the owner is suspended meanwhile); null
// otherwise. Inlined into group_wait's owner path: one call per wait.
[[gnu::always_inline]] inline void wait_owned(group_state& g, rt::worker* w) noexcept {
  if (w != nullptr) {
    // Pop back the owner's spawns while they are the newest on this worker.
    // Once one of them ran elsewhere, an address on top of the queue no longer
    // proves identity (closures are recycled): stop and count instead.
    // (A measured spawn's mark is on no queue: pop_if fails at it.)
    while (job* t = g.m_last.load(std::memory_order_relaxed)) {
      if (g.m_detached.load(std::memory_order_acquire)) break;  // pairs with the release in group_call_begins
      if (!w->m_queue.pop_if(t)) break;
      rt::counters::bump(w->m_counters.tasks_run);
      g.m_last.store(t->m_next, std::memory_order_relaxed);
      --g.m_unpopped;
      static_cast<group_job*>(t)->m_mode |= group_job::k_inline;
      t->m_execute(t);  // runs it (or skips it after a failure) and frees it
      if (g.m_last.load(std::memory_order_relaxed) == nullptr) break;
      w = rt::current_worker();  // it may have moved this fiber
    }
  }
  const std::int64_t taken = g.m_unpopped;
  // Before the wait registers (its RMW on the counter releases this store),
  // so a measured spawn counted after the registration keeps its mark for the
  // next wait (spawn_counted). The fast path below registers nothing: it
  // reads the counter with nothing outstanding, so no call of the group runs
  // to spawn into it; a measured spawn from elsewhere racing with it may lose
  // its mark (waited for all the same, its strand maybe not joined).
  g.m_last.store(nullptr, std::memory_order_relaxed);
  g.m_unpopped = 0;
  // Fast path inline (a group whose spawns were all popped back or are done):
  // one load, and an RMW only when spawns ran elsewhere (see
  // rt::wait_for_children). acquire: pairs with their releasing completions.
  if (const std::int64_t v = g.m_frame.m_pending.load(std::memory_order_acquire);
      v - join_counter::round_bit(v) == -taken) {
    if (taken != 0) g.m_frame.m_pending.fetch_add(taken, std::memory_order_relaxed);
  } else if (w != nullptr) {
    // The wait may run other tasks on this stack (no fiber to be had); a call
    // of the group run there that spawns into it is not the owner: its spawns
    // are counted, and so waited for here or by the next wait. Taken as the
    // owner's, uncounted, one that ended during this wait would leave the
    // counter one below -taken for good.
    void* const owner = g.m_owner.load(std::memory_order_relaxed);
    g.m_owner.store(owner_away(owner), std::memory_order_relaxed);
    rt::wait_for_children(g.m_frame, taken, rt::join_kind::group);
    g.m_owner.store(owner, std::memory_order_relaxed);
  } else {
    rt::wait_for_children(g.m_frame, taken, rt::join_kind::group);
  }
  // A wait that registered ended its round (wait_for_children): the owner's
  // next spawns belong to the next one. Only the waiter flips the bit.
  const std::uint8_t waited = g.m_round;
  sync_round(g);
  if (g.m_round != waited) g.m_closed = waited;  // for task_group::wait()
  // Every uncounted spawn that ran elsewhere set the flag before its
  // group_complete(), which this wait observed: no store can follow this reset.
  g.m_detached.store(false, std::memory_order_relaxed);
}

}  // namespace

void group_wait_slow(group_state& g) noexcept {
  // Read on entry, before anything here can switch fibers: inline. A wait
  // from inside a call of g first, then the owner's check (it fails for a
  // group without an owner: m_current is never null).
  rt::worker* w = rt::this_thread_worker();
  if (WEFT_UNLIKELY(w != nullptr && w->m_current->m_group_call == &g &&
                    w->m_current->m_group_call_activation == w->m_current->m_activation)) {
    // A call of g (one that its owner did not pop back) waits for g, which
    // waits for that call.
    rt::fatal(
        "weft: a call spawned into a weft::task_group waited for that group (wait() or its destructor, called "
        "from inside one of its own calls): it would wait for itself for ever");
  }
  if (WEFT_LIKELY(is_owner(g, w))) {
    if (WEFT_UNLIKELY(w->stack_low())) {
      // The popped-back calls would run on top of a nearly full stack: wait
      // from a fresh one, on the owner's behalf.
      try {
        run_on_fresh_stack([](void* p) { wait_owned(*static_cast<group_state*>(p), rt::current_worker()); }, &g);
        return;
      } catch (...) {
        // unreachable: wait_owned never throws
      }
      w = rt::current_worker();
    }
    wait_owned(g, w);
    return;
  }
  if (WEFT_UNLIKELY(measured(g))) {
    // The waiter's strand does no work while it waits, and goes on from the
    // latest end of the spawns.
    ws_strand* waiter = ws_spawn_point(true);
    wait_owned(g, nullptr);
    if (waiter != nullptr) {
      // Only the waiter's own measured call's strands join it.
      if (strands_of(g).load(std::memory_order_relaxed) != rt::ws_measure_id(*waiter)) drop_strands(g.m_ws.get());
      ws_join(*waiter, g.m_ws.get());
    } else if (void* owner = g.m_unmeasured_owner; owner != nullptr) {
      // Waited off any measured strand: a group made measured by its owner's
      // spawn (make_measured) has its owner back, the waiter by contract.
      g.m_unmeasured_owner = nullptr;
      g.m_owner.store(owner, std::memory_order_relaxed);
    }
    return;
  }
  wait_owned(g, nullptr);
}

void group_end_failed_round(group_state& g, std::uint8_t round) {
  // A wait that did not register (its calls were done when it looked) has
  // not ended the round: end it now, unless calls were counted since. Those
  // may have seen the failure (they test the round in progress), so they are
  // this round's too: wait for them, which ends the round.
  while (g.m_round == round) {
    std::int64_t v = g.m_frame.m_pending.load(std::memory_order_relaxed);
    if (v - join_counter::round_bit(v) != 0) {
      group_wait_slow(g);  // m_last is null: registers unless they are done by then
      continue;
    }
    // acq_rel: acquires the completions of the round's calls (their
    // errors), and releases what the owner did before, as a registration.
    std::atomic<std::int64_t>& pending = g.m_frame.m_pending;
    if (pending.compare_exchange_strong(v, v + join_counter::round_flip(v), std::memory_order_acq_rel)) sync_round(g);
  }
  // Not a round that the caller's wait() closed (a wait() nested in a call
  // popped back on the owner's fiber reads m_closed before this).
  g.m_closed = 0;
  // Every call of the round is done: its error is final.
  std::exception_ptr e = std::exchange(g.m_errors[round == group_state::k_odd_round ? 1 : 0], nullptr);
  // release: a call of the round after next (the same bit) that fails
  // synchronises with this reset (its fetch_or) before it stores its error.
  // An RMW: calls of the next round may set their bit meanwhile.
  g.m_failed_rounds.fetch_and(static_cast<std::uint8_t>(~round), std::memory_order_release);
  std::rethrow_exception(e ? std::move(e) : bad_exception_ptr());
}

namespace {

// A wait that began in round `round` covered up to another round, `last` (a
// call popped back on the owner's fiber waited for g meanwhile, ending
// rounds), `closed` when it closed `last` itself, and found one of the two
// parities failed: rethrows the first exception of one of them, resetting
// the failures of both.
[[noreturn]] void end_failed_rounds(group_state& g, std::uint8_t round, std::uint8_t last, bool closed) {
  // round != last: a call popped back on the owner's fiber waited for g
  // during this wait and ended rounds from `round` on; the two are the two
  // parities. One of them is of rounds whose calls are all done: `last`
  // when this wait closed it, else the rounds before `last`, which is in
  // progress. The other is the round in progress (m_round), whose calls may
  // still be counted and run (when this wait closed `last`, its failure
  // cannot be told from that of a round before `last`, ended by the nested
  // wait: it is taken as the round in progress's, which ends it).
  const std::uint8_t done = closed ? last : round;
  const std::uint8_t open = closed ? round : last;
  if (!round_failed(g, done)) group_end_failed_round(g, open);  // then `open` failed
  // No call can record it meanwhile: the next round of that parity starts
  // after `open` ends (below, or at the next wait).
  std::exception_ptr e = std::exchange(g.m_errors[done == group_state::k_odd_round ? 1 : 0], nullptr);
  // Before `open` ends: the calls of the round after it test this bit.
  g.m_failed_rounds.fetch_and(static_cast<std::uint8_t>(~done), std::memory_order_release);
  if (round_failed(g, open)) group_end_failed_round(g, open);  // its exception wins
  std::rethrow_exception(e ? std::move(e) : bad_exception_ptr());
}

}  // namespace

void group_after_wait(group_state& g, std::uint8_t round) {
  // The last round this wait covered: the one it closed, else the one in
  // progress.
  const std::uint8_t closed = std::exchange(g.m_closed, std::uint8_t{0});
  const std::uint8_t last = closed != 0 ? closed : g.m_round;
  if (!round_failed(g, static_cast<std::uint8_t>(round | last))) return;
  if (last == round) group_end_failed_round(g, round);
  end_failed_rounds(g, round, last, closed != 0);
}

void group_capture(group_state& g, std::uint8_t mode) noexcept {
  const auto round = static_cast<std::uint8_t>(mode & (group_state::k_even_round | group_state::k_odd_round));
  // acq_rel: one winner per round; the waiter reads the error only after its
  // wait, which every call of the round happens-before.
  if ((g.m_failed_rounds.fetch_or(round, std::memory_order_acq_rel) & round) == 0) {
    g.m_errors[round == group_state::k_odd_round ? 1 : 0] = current_exception_or_bad();
  }
}

}  // namespace weft::detail
