// SPDX-License-Identifier: MIT
// weft: the compiled side of work/span measurement (<weft/workspan.hpp>), as
// the public templates call it. Not for users.
#pragma once

#include <atomic>
#include <cstdint>
#include <new>
#include <type_traits>

#include "weft/detail/export.hpp"

namespace weft::detail {

struct ws_measure;

// A strand of a measured computation: one side of a join, a spawned call, a
// loop item, a task of a when_all, the measured call itself. A strand runs on
// one fiber at a time (the fiber's current strand, rt::fiber::m_ws), in pieces
// between the points where it forks, joins or waits. Times are clock ticks
// (rt::ticks()). m_pos is where the running piece starts on the ideal
// schedule (unboundedly many workers, nothing waits for a worker): the span of
// everything this strand depends on; m_bpos the same with every potential
// steal charged the migration cost. Touched only by the thread running the
// strand, and by whoever joins it after the join's synchronisation.
// No initialisers: a strand embedded in spawn state (a when_all slot, a join
// side) costs nothing unless measured; ws_child_init (or the code creating
// it) sets every field.
struct ws_strand {
  ws_measure* m_measure;
  std::int64_t m_work;      // work of this strand and of the children joined into it
  std::int64_t m_pos;       // ideal start of the running piece (ticks since the measured call began)
  std::int64_t m_bpos;      // the same, burdened
  std::uint64_t m_start;    // clock at the start of the running piece; 0: not running
  std::uint64_t m_strands;  // this strand and the children joined into it
};

// The children of one join point, which may end on any thread: their summed
// work and their latest ideal (and burdened) end. Children add with relaxed
// RMWs before the join's own synchronisation (its counter, or program order),
// which orders them before the joiner's reads.
struct ws_sync {
  std::atomic<std::int64_t> m_work{0};
  std::atomic<std::int64_t> m_end{0};
  std::atomic<std::int64_t> m_bend{0};
  std::atomic<std::uint64_t> m_strands{0};
};

// Room for a ws_sync in spawn state, constructed only by a measured run (no
// cost otherwise): start() makes it, get() uses it.
struct ws_sync_slot {
  alignas(ws_sync) unsigned char m_bytes[sizeof(ws_sync)];
  ws_sync& start() noexcept { return *::new (static_cast<void*>(m_bytes)) ws_sync{}; }
  ws_sync& get() noexcept { return *std::launder(reinterpret_cast<ws_sync*>(m_bytes)); }
};
static_assert(std::is_trivially_destructible_v<ws_sync>);

// A measured weft::join: the parent's strand, paused while both sides run,
// and one strand per side.
struct ws_fork {
  ws_strand* m_parent;
  ws_strand m_left;
  ws_strand m_right;
};

// ---- entry points (on a worker whose current fiber runs a measured strand) ----

// Starts a measured join: closes the running piece of the current strand, and
// starts both sides where it stands (the right side, which other workers may
// take, one migration later on the burdened schedule).
WEFT_API void ws_fork_begin(ws_fork& f) noexcept;
// Ends it (both sides done): the parent's work gains both sides', its span
// goes on from the later end. The parent's strand runs again.
WEFT_API void ws_fork_end(ws_fork& f) noexcept;

// Makes s the current strand of the calling fiber and starts its piece;
// returns the strand it replaces. ws_leave (on the same fiber, which may have
// moved to another thread meanwhile) closes s and puts `previous` back.
WEFT_API ws_strand* ws_enter(ws_strand& s) noexcept;
WEFT_API void ws_leave(ws_strand& s, ws_strand* previous) noexcept;

// The current strand of the calling fiber when it runs, its running piece
// closed at this point and restarted at once; null otherwise. For a coroutine
// about to suspend: the strand to restart where it resumes.
WEFT_API ws_strand* ws_suspend_point() noexcept;
// The calling fiber runs s from now on, with a new piece (a coroutine
// resumed: s came from ws_suspend_point(), or is a child's own strand). Off
// any worker (ws_restart, ws_child_end, ws_join: a coroutine that an
// awaitable of another library resumed on its own thread) no piece runs:
// nothing is measured there.
WEFT_API void ws_restart(ws_strand& s) noexcept;
// The calling fiber's current strand becomes s (null: none), not started.
WEFT_API void ws_set_current(ws_strand* s) noexcept;
// sync_wait's chain is about to run inline on the calling fiber: returns the
// fiber's strand (null: none), which the chain goes on with.
// ws_chain_returned(s), once the resumption returns: the fiber runs no strand
// from there; when the chain neither ended nor handed s on at one of weft's
// suspension points (it suspended in an awaitable of another library), s's
// running piece is closed first, so that the work up to that suspension is
// kept. What the chain runs after it, off this fiber, is not measured.
WEFT_API ws_strand* ws_chain_begin() noexcept;
WEFT_API void ws_chain_returned(ws_strand& s) noexcept;

// A child strand s of a join point ends: closes it and adds it to `into`.
WEFT_API void ws_child_end(ws_strand& s, ws_sync& into) noexcept;
// Starts child strands at the current strand's position: closes the current
// piece (the strand goes on running unless `pause`) and returns it (null when
// nothing is measured here).
WEFT_API ws_strand* ws_spawn_point(bool pause) noexcept;
// Sets s up as a child started at parent's position. A `stealable` child (one
// that was queued: not the first side of a fork) costs a spawn (an empty
// join, measured) of work before it starts, and one migration more on the
// burdened schedule.
WEFT_API void ws_child_init(ws_strand& s, const ws_strand& parent, bool stealable) noexcept;
// parent (paused, or running) joins the children gathered in `from`, which is
// left empty; parent becomes the calling fiber's strand and runs.
WEFT_API void ws_join(ws_strand& parent, ws_sync& from) noexcept;

// True when the calling fiber runs a measured strand.
WEFT_API bool ws_active() noexcept;
// True when push() refused a spawn because the calling fiber runs a measured
// strand (and its stack is not nearly full): the spawn takes its measured
// path.
WEFT_API bool ws_spawn_measured() noexcept;

// Measures fn(arg) on the calling worker (which must be one) into `out`:
// {work, span, burdened span, burden} in nanoseconds and the number of strands.
struct ws_result {
  std::int64_t m_work_ns;
  std::int64_t m_span_ns;
  std::int64_t m_burdened_span_ns;
  std::int64_t m_burden_ns;
  std::uint64_t m_strands;
};
WEFT_API void ws_measure_call(void (*fn)(void*), void* arg, ws_result& out);

}  // namespace weft::detail
