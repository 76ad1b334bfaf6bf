// SPDX-License-Identifier: MIT
// weft::rt: waiting for the children of a join frame (runtime/join.cpp,
// docs/protocols/join.md).
// Owns: nothing (frames live in their spawners' frames). Used by join.cpp,
// task_group.cpp, loop.cpp, scheduler.cpp.
#pragma once

#include <cstdint>

#include "weft/detail/job.hpp"

namespace weft::rt {

// How a frame's children are counted.
enum class join_kind : unsigned char {
  // No child is counted once the wait has begun (join, loops, a root task):
  // children finish with detail::complete().
  plain,
  // Children may be counted at any time, also during and after a wait
  // (task_group, a runtime's roots): they finish with complete_open(). A
  // wait covers the children counted before it registered; later ones stay
  // counted for the next wait.
  open,
  // An open frame whose registered waits each end a round of its children
  // (a task_group's): closing such a wait flips join_counter::k_round in the
  // same RMW, so that a child counted later can tell which round's failure
  // it belongs to (docs/protocols/join.md, "Open frames").
  group,
};

// Returns once `taken` uncounted children and the counted children of f
// (those of this wait, for an open frame) have finished; leaves f reusable.
// On a worker it suspends the calling fiber (never the thread, even when no
// fiber can be had); elsewhere it blocks the thread without spinning.
void wait_for_children(detail::join_counter& f, std::int64_t taken, join_kind kind) noexcept;

// A task that a waiting join may run on its own stack while it watches:
// mine(t, ctx) says whether t is one (a piece of the waiter's own loop).
struct help_filter {
  bool (*mine)(const detail::job* t, const void* ctx) noexcept;
  const void* ctx;
};

// wait_for_children for a plain frame whose children are pieces of one
// loop: while it watches them in place, the join steals work that others
// published, and runs it here when `help` accepts it (else it queues it and
// suspends as usual). The calling fiber so stays on its thread while the
// loop's end game is split among the workers, rather than suspend and be
// resumed (and, for a call from outside, handed back) elsewhere.
void wait_for_pieces(detail::join_counter& f, std::int64_t taken, help_filter help) noexcept;

// A child of an open frame has finished: its last access to f unless it
// completed a wait (then it resumes the waiter). Any thread.
void complete_open(detail::join_counter& f) noexcept;

}  // namespace weft::rt
