// SPDX-License-Identifier: MIT
// weft::rt: the runtime's side of work/span measurement: which fiber runs
// which strand, and the WEFT_WORKSPAN report (docs/protocols/workspan.md).
// Owns: which strand each fiber runs (fiber::m_ws). Touched by: join.cpp,
// loop.cpp, task_group.cpp, suspend.cpp, worker.cpp, the coroutine headers.
#pragma once

#include <cstdint>

#include "weft/detail/workspan.hpp"

namespace weft::rt {

struct fiber;
class scheduler;

// The stack limit of a fiber that runs a measured strand: every stack check
// of a spawn fails, so that spawns take their measured path at no cost to the
// unmeasured one; the checks that need the stack's real state read
// fiber::m_real_limit.
inline constexpr std::uintptr_t k_measured_limit = ~std::uintptr_t{0};

// Makes s (null: none) the current strand of f, and f's stack limit follow.
// Owner of f (the thread running it).
void set_strand(fiber& f, detail::ws_strand* s) noexcept;

// The costs a measurement charges: one level of a loop split down to its
// items, and one potential steal on the burdened schedule (ticks).
std::int64_t ws_split_ticks(const detail::ws_strand& s) noexcept;
std::int64_t ws_burden_ticks(const detail::ws_strand& s) noexcept;

// For tests: the spawn cost measured once per process is forgotten, and the
// next measured call with room on its stack measures it again.
void forget_join_ticks() noexcept;

// The measured call s belongs to, held (one more reference) until
// ws_release: for a task_group spawn, which may end after its call returned.
detail::ws_measure* ws_hold(const detail::ws_strand& s) noexcept;
void ws_release(detail::ws_measure* m) noexcept;
// True once s's measured call has returned: its result cannot take s in any
// more. Any thread.
bool ws_measure_over(const detail::ws_strand& s) noexcept;
// Which measured call s belongs to: unique in the process, never 0.
std::uint64_t ws_measure_id(const detail::ws_strand& s) noexcept;

// Closes the running piece of s (a fiber suspends: waiting is not work);
// ws_resume_piece starts a new one (it resumed).
void ws_pause(detail::ws_strand& s) noexcept;
void ws_resume_piece(detail::ws_strand& s) noexcept;
// A loop item s ends (ws_leave(s, previous)) and joins `into`.
void ws_item_end(detail::ws_strand& s, detail::ws_strand* previous, detail::ws_sync& into) noexcept;
// Raises into's ends to at least (end, bend).
void ws_sync_at_least(detail::ws_sync& into, std::int64_t end, std::int64_t bend) noexcept;

// True when WEFT_WORKSPAN names a report file (read once; registers the
// write at exit on first use).
bool workspan_reporting();

// Runs fn(arg) through call(s, ...) (the way a call from outside enters s),
// measured, and adds the result to the report under `site`.
void call_measured(scheduler& s, void (*fn)(void*), void* arg, const void* site,
                   void (*call)(scheduler&, void (*)(void*), void*));

// fork(): the atfork handlers (scheduler.cpp) hold these locks across the
// fork: the first reading of WEFT_WORKSPAN (another thread's, when it is in
// progress, is finished first), and the report's, so that a child forked
// while another thread records a call can record its own and write its
// report.
void lock_workspan_start_for_fork() noexcept;
void unlock_workspan_start_after_fork() noexcept;
void lock_workspan_report_for_fork() noexcept;
void unlock_workspan_report_after_fork() noexcept;

}  // namespace weft::rt
