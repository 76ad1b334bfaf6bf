// SPDX-License-Identifier: MIT
// weft: a group of spawned calls joined together.
#pragma once

#include "weft/detail/cxx20.hpp"

#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>

#include "weft/detail/entry.hpp"
#include "weft/detail/export.hpp"
#include "weft/detail/job.hpp"
#include "weft/detail/workspan.hpp"

namespace weft {

namespace detail {

// State of a task_group. The owner is the task (or outside thread) that
// created the group: its spawns are uncounted and popped back at wait(); spawns
// from anywhere else are counted (see join_counter). Counted spawns may happen
// while the owner waits, so the frame's counter follows the group variant of
// the join protocol (docs/protocols/join.md, "Open frames"): group_complete(), not
// complete().
struct group_state {
  // The rounds (see m_failed_rounds), as bits of group_job::m_mode and of
  // m_failed_rounds.
  static constexpr std::uint8_t k_even_round = 8;
  static constexpr std::uint8_t k_odd_round = 16;

  join_counter m_frame;
  // m_owner, m_runtime and m_runtime_id are written by group_init() (both of
  // its paths): no default values to store first. The owner: the task
  // activation that made the group (worker_view::m_fiber, unique within its
  // runtime; not the fiber, which runs other tasks in turn while a group
  // outlives the task that made it, as a coroutine's does); null for an
  // outside thread. While the owner's wait runs other tasks on its stack
  // (no fiber could be had), it holds the owner's activation with its low
  // bit set (owner_away() in runtime/task_group.cpp), which is no
  // activation's: a call run there does not spawn as the owner. Atomic (relaxed) because spawners on other threads read
  // it meanwhile; for them either value is not their activation.
  std::atomic<void*> m_owner;
  // The runtime of the owner; null for a group created outside any runtime,
  // whose spawns go to the spawner's runtime (the default one from outside).
  runtime_state* m_runtime;
  std::uint64_t m_runtime_id;  // which one (a runtime's address may be reused)
  // The owner's uncounted spawns not yet waited for, newest first, linked
  // through m_next: null exactly when m_unpopped is 0. In a measured group
  // (which has no uncounted spawns) a measured spawn stores a mark here,
  // never a job on any queue, so that the next wait takes the library's path
  // and joins the spawn's strand even when every spawn is done by then (the
  // inline wait would return at once). Written by the owner, and by measured
  // spawns from any fiber: atomic, relaxed (plain moves on x86-64).
  std::atomic<job*> m_last{nullptr};
  // Uncounted spawns not popped back by the owner (owner only): what its
  // wait counts as taken.
  std::int64_t m_unpopped = 0;
  // Set when an uncounted spawn ran elsewhere (stolen, or taken by another
  // fiber of the owner's worker): its closure may since have been recycled for
  // a newer task at the same address, so the owner stops popping back by
  // address. Written before that spawn's complete(); reset by the owner after
  // its wait.
  std::atomic<bool> m_detached{false};
  // A closure lives in its task_group's slot: set by the owner's spawn that
  // puts it there (before the callable is copied, which may spawn into the
  // group), cleared by that spawn when it fails, else by the closure's
  // execute once it has destroyed itself (release; the owner's spawn reads
  // it with acquire), wherever it runs.
  std::atomic<bool> m_slot_busy{false};
  // The rounds that failed: k_even_round, k_odd_round. A round is the calls
  // one wait waits for. A wait that registered (and a failed wait) ends one,
  // flipping join_counter::k_round in the counter, so that a counted spawn
  // tells from its counting RMW which round it belongs to: the one in
  // progress, or the next when a wait is registered (docs/protocols/join.md,
  // "Open frames"). A call tests and records its own round's failure only: a
  // failing wait does not skip the calls counted for the next one. Set by
  // group_capture (fetch_or), cleared by the waiter (fetch_and).
  std::atomic<std::uint8_t> m_failed_rounds{0};
  // The round of the owner's spawns (the one in progress). Written by the
  // waiter (wait_owned and the end of a failed round), read by the owner.
  std::uint8_t m_round = k_even_round;
  // The round that the owner's latest registered wait closed (0: none since
  // the last wait() returned or threw, which clear it; the destructor's waits
  // leave it set, but no wait() follows them, and a call popped back there
  // waits before its round closes). A call popped back on
  // the owner's fiber may wait for the group itself, ending rounds inside the
  // owner's wait: wait() tells from this and m_round the last round it
  // covered. Owner only.
  std::uint8_t m_closed = 0;
  // Constructed for every group without an owner: one created on a measured
  // strand (<weft/workspan.hpp>) or outside any runtime, and one made
  // measured by its owner's first spawn on a measured strand. Every spawn of
  // such a group is counted, and one from a measured strand runs as a strand
  // of its own; their work and ends gather here.
  ws_sync_slot m_ws;
  // The first exception of the even and of the odd rounds (m_failed_rounds).
  std::exception_ptr m_errors[2];
  // The owner of a group made measured by a spawn (see m_ws), given back by
  // the first wait off any measured strand; null for a group made on one.
  // Written by group_init_slow and by that spawn; read only when measured.
  void* m_unmeasured_owner;
  // Which measured call the strands gathered in m_ws belong to (0: none yet):
  // a wait in another one joins none of them. Written by group_init_slow,
  // make_measured and measured spawns (std::atomic_ref, relaxed); read only
  // when measured.
  std::uint64_t m_ws_of;
};

// A spawned call of a task_group: descriptor and closure in one block from
// allocate_job().
struct group_job : job {
  // m_mode's bits, each written by whoever holds the job before it can run.
  static constexpr std::uint8_t k_counted = 1;  // set by a counted spawn (group_spawn_slow)
  static constexpr std::uint8_t k_inline = 2;   // set when its owner popped it back (group_wait)
  static constexpr std::uint8_t k_in_slot = 4;  // lives in its task_group's slot, not in allocate_job() memory
  // And one of group_state::k_even_round and k_odd_round: its round.
  // Popped back and uncounted: runs as part of the owner's wait, which
  // neither marks the group detached nor completes it.
  static bool popped_back(std::uint8_t mode) noexcept { return (mode & (k_inline | k_counted)) == k_inline; }

  group_state* m_group = nullptr;
  std::uint8_t m_mode = 0;  // one load in execute()
};

// The round of a job of g whose m_mode is `mode` (or the round g.m_round
// names) has failed.
inline bool round_failed(const group_state& g, std::uint8_t mode) noexcept {
  return (g.m_failed_rounds.load(std::memory_order_relaxed) & mode) != 0;
}
// In a handler of a call of g whose m_mode is `mode`: records the exception
// if it is the first of the call's round.
WEFT_API void group_capture(group_state& g, std::uint8_t mode) noexcept;

// A counter value of g's frame without its round bit, where it cannot be
// negative (no uncounted spawn of the owner is outstanding).
inline std::int64_t group_count(std::int64_t v) noexcept { return v & ~join_counter::k_round; }

WEFT_API void group_init_slow(group_state& g) noexcept;
// Makes the caller g's owner when it runs on a worker (g's runtime is the
// worker's); a fiber on a measured strand makes a measured group
// (group_init_slow, like every caller off a worker).
inline void group_init(group_state& g) noexcept {
  if (const worker_view* view = this_thread_view(); view != nullptr && !view->measured()) {
    g.m_owner.store(const_cast<void*>(view->m_fiber), std::memory_order_relaxed);
    g.m_runtime = view->m_runtime;
    g.m_runtime_id = view->m_runtime_id;
    return;
  }
  group_init_slow(g);
}

// The caller is g's owner: the task activation that made g, in its runtime
// (activations are unique within a runtime, not across runtimes).
inline bool group_owner_here(const group_state& g, const worker_view* view) noexcept {
  return view != nullptr && view->m_fiber == g.m_owner.load(std::memory_order_relaxed) &&
         view->m_runtime_id == g.m_runtime_id;
}

// Pushes t, a spawn of g's owner (the caller), onto the private ring of the
// caller's worker, whose view is `view` and where view->spawn_push_ok().
// t is fresh from spawn(): m_mode has no k_counted.
inline void group_push_owned(group_state& g, group_job* t, worker_view* view) noexcept {
  t->m_next =
      g.m_last.load(std::memory_order_relaxed);  // owner's spawns, newest first (m_next is free: never injected)
  t->m_mode |= g.m_round;
  view->m_ring.push_counted(t);
  g.m_last.store(t, std::memory_order_relaxed);
  ++g.m_unpopped;
}

WEFT_API void group_spawn_slow(group_state& g, group_job* t);
// Makes t runnable. Inline for the owner's spawn when it needs no publication
// and runs no measured strand (onto the private ring: docs/protocols/join.md,
// "The frame"); the library does the rest.
inline void group_spawn(group_state& g, group_job* t) {
  worker_view* view = this_thread_view();
  if (group_owner_here(g, view) && view->spawn_push_ok()) {
    group_push_owned(g, t, view);
    return;
  }
  group_spawn_slow(g, t);
}
WEFT_API void group_wait_slow(group_state& g) noexcept;
// Waits for g's spawns (the caller is g's owner, or g has no uncounted
// spawns). Inline while the owner's newest spawn is the newest private task of
// the calling worker and none of its spawns ran elsewhere: pops them back and
// runs them, and returns when that was all; the library does the rest (and
// the whole wait near the bottom of the stack). No check of the owner here:
// a job on the calling worker's ring that is g.m_last is g's, not yet run
// (its memory cannot have been reused before m_detached was set), so running
// it here is right whichever fiber waits.
inline void group_wait(group_state& g) noexcept {
  // Several spawns unpopped while another worker may be idle: offered to it
  // first, but the newest, popped back next (offer_spawns). Once, before
  // the pop-backs: a call in their loop costs every wait registers.
  if (g.m_unpopped > 1) offer_spawns_if_idle(1);
  for (;;) {
    job* t = g.m_last.load(std::memory_order_relaxed);
    if (t == nullptr) {
      // Every uncounted spawn was popped back (m_last is null exactly when
      // m_unpopped is 0), so none set m_detached; the counted ones are
      // done when the counter is 0. acquire: pairs with their releasing
      // completions.
      if (group_count(g.m_frame.m_pending.load(std::memory_order_acquire)) != 0) break;
      return;
    }
    // Afresh each round: a call run here may have moved this fiber.
    worker_view* view = this_thread_view();
    if (view == nullptr || stack_pointer_here() < view->m_spawn_limit) break;
    // acquire: pairs with the release in group_call_begins.
    job_ring& ring = view->m_ring;
    if (g.m_detached.load(std::memory_order_acquire) || ring.empty() || ring.newest() != t) break;
    ring.drop_newest_counted();
    g.m_last.store(t->m_next, std::memory_order_relaxed);
    --g.m_unpopped;
    static_cast<group_job*>(t)->m_mode |= group_job::k_inline;
    t->m_execute(t);  // runs it (or skips it after a failure) and frees it
  }
  group_wait_slow(g);
}
// A spawn of g that was not popped back by its owner has finished: its last
// access to g. Any thread.
WEFT_API void group_complete(group_state& g) noexcept;
// A call of g that its owner did not pop back (mode: its m_mode) starts: an
// uncounted one marks g detached (release: pairs with the owner's acquire in
// group_wait), and the running fiber notes the call, so that a wait of g
// from inside it (wait() or the destructor) aborts with one line instead of
// waiting for itself for ever.
WEFT_API void group_call_begins(group_state& g, std::uint8_t mode) noexcept;
// After a wait of g (the caller waits for g) that found its round, `round`
// (group_state::m_round when it began), failed: ends that round if the wait
// did not, and rethrows its first exception, resetting its failure.
[[noreturn]] WEFT_API void group_end_failed_round(group_state& g, std::uint8_t round);
// After a wait of g that began in round `round` and closed a round, or
// during which a call popped back on the owner's fiber waited for g (ending
// rounds), or whose round failed: clears m_closed, and when a round it
// covered failed, rethrows the first exception of one of them, resetting
// their failures.
WEFT_API void group_after_wait(group_state& g, std::uint8_t round);

// What task_group::spawn takes: a callable whose copy (or move) it can make
// and call as an lvalue.
template <class F>
concept group_callable =
    std::is_constructible_v<std::decay_t<F>, F> && std::invocable<std::add_lvalue_reference_t<std::decay_t<F>>>;

template <class F>
struct group_closure final : group_job {
  F m_fn;

  template <class A>
  explicit group_closure(A&& fn) : m_fn(std::forward<A>(fn)) {
    m_execute = &execute;
  }

  static void execute(job* t) noexcept {
    auto* self = static_cast<group_closure*>(t);
    // Not popped back by its owner: marks the group detached when uncounted
    // (ordered before the closure's free and reallocation, which the owner
    // must observe first), and notes the call on its fiber.
    if (!popped_back(self->m_mode)) group_call_begins(*self->m_group, self->m_mode);
    // Its own round's failure: a wait that fails does not skip the calls
    // counted for the next one.
    if (!round_failed(*self->m_group, self->m_mode)) {
      try {
        static_cast<void>(self->m_fn());  // a result is dropped, [[nodiscard]] or not
      } catch (...) {
        group_capture(*self->m_group, self->m_mode);
      }
    }
    // Read after the call, not kept across it (nobody else writes them while
    // t runs): fewer registers to save around the user's code.
    group_state* group = self->m_group;
    const std::uint8_t mode = self->m_mode;
    self->~group_closure();
    if ((mode & k_in_slot) != 0) {
      group->m_slot_busy.store(false, std::memory_order_release);  // the slot may be used again
    } else {
      free_job(self, sizeof(group_closure));
    }
    if (!popped_back(mode)) group_complete(*group);  // last access to the group
  }
};

}  // namespace detail

// Spawns calls that may run in parallel with the caller, then waits for all of
// them. wait() must be called by the fiber or thread that created the group
// (two waits that reach the group's counter at once abort with one line on
// stderr; other overlaps are undefined); spawn() may be called from
// anywhere, also from inside a spawned call.
class task_group {
 public:
  task_group() noexcept { detail::group_init(m_state); }
  task_group(const task_group&) = delete;
  task_group& operator=(const task_group&) = delete;

  // Waits if wait() was not called (or spawns came after it); never throws:
  // an exception nobody waited for is dropped.
  ~task_group() {
    // Again while spawns remain: counted spawns may come after a wait
    // returned (from other threads, or from calls of the group still
    // running).
    while (m_state.m_last.load(std::memory_order_relaxed) != nullptr ||
           detail::group_count(m_state.m_frame.m_pending.load(std::memory_order_acquire)) != 0) {
      detail::group_wait(m_state);
    }
  }

  // Makes f() (a copy or move of f) runnable in parallel with the caller.
  // An owner's spawn keeps its closure in the group when it fits
  // (k_slot_bytes) and the slot's last closure is done; other closures come
  // from a per-worker recycling pool. Throws std::logic_error, and runs
  // nothing, when the runtime the group was created in has been destroyed.
  // f's copy is called as an lvalue (docs/decisions/0022): a callable that
  // cannot be is refused in overload resolution.
  template <detail::group_callable F>
  void spawn(F&& f) {
    using closure = detail::group_closure<std::decay_t<F>>;
    static_assert(alignof(closure) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__,
                  "weft::task_group::spawn: over-aligned callables are not supported");
    bool in_slot = false;
    detail::worker_view* view = nullptr;
    if constexpr (sizeof(closure) <= k_slot_bytes) {
      // The owner's check first: only the owner takes the slot. acquire:
      // pairs with the release of the closure that used it last.
      view = detail::this_thread_view();
      in_slot = detail::group_owner_here(m_state, view) && !m_state.m_slot_busy.load(std::memory_order_acquire);
    }
    // Taken before f is copied: a copy may spawn into this group.
    if (in_slot) m_state.m_slot_busy.store(true, std::memory_order_relaxed);
    void* memory = in_slot ? static_cast<void*>(m_slot) : detail::allocate_job(sizeof(closure));
    closure* t;
    try {
      t = ::new (memory) closure(std::forward<F>(f));
    } catch (...) {
      if (in_slot) {
        m_state.m_slot_busy.store(false, std::memory_order_relaxed);
      } else {
        detail::free_job(memory, sizeof(closure));
      }
      throw;
    }
    t->m_group = &m_state;
    if (in_slot) {
      t->m_mode = detail::group_job::k_in_slot;  // the round: group_push_owned
      // Still the owner (a fiber stays itself), but a copy of f that runs
      // code may have moved it to another worker: then the view afresh.
      if constexpr (!std::is_trivially_constructible_v<std::decay_t<F>, F&&>) view = detail::this_thread_view();
      if (view->spawn_push_ok()) {
        detail::group_push_owned(m_state, t, view);
        return;
      }
    }
    try {
      detail::group_spawn(m_state, t);
    } catch (...) {
      t->~closure();
      if (in_slot) {
        m_state.m_slot_busy.store(false, std::memory_order_relaxed);
      } else {
        detail::free_job(t, sizeof(closure));
      }
      throw;
    }
  }

  // Returns when every spawned call has returned; rethrows the first exception
  // one of them threw (calls not started by then are skipped). The group may be
  // used again afterwards. May suspend the calling fiber; never fails for lack
  // of one (when no fiber stack can be created, the worker runs its other
  // queued work on this stack meanwhile: docs/guide.md, "Limits").
  void wait() {
    const std::uint8_t round = m_state.m_round;
    detail::group_wait(m_state);
    // Inline only a wait that stayed in its round (m_closed is 0 on entry)
    // and whose round did not fail.
    if (m_state.m_closed != 0 || m_state.m_round != round || detail::round_failed(m_state, round)) [[unlikely]] {
      detail::group_after_wait(m_state, round);
    }
  }

 private:
  // The largest closure (its descriptor and the callable) kept in the group.
  static constexpr std::size_t k_slot_bytes = 96;

  detail::group_state m_state;
  alignas(__STDCPP_DEFAULT_NEW_ALIGNMENT__) unsigned char m_slot[k_slot_bytes];
};

}  // namespace weft
