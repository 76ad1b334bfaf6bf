// SPDX-License-Identifier: MIT
// weft::rt: the calls of loop bodies in progress on a fiber, and handing
// their items not started to other workers when an item waits
// (docs/protocols/loops.md).
// Owns: the running_leaf records of a fiber's loop calls (loop.cpp writes
// them). Touched by: suspend.cpp (hand_off_unstarted before a fiber suspends
// or yields), join.cpp (hand_off_unstarted before a join without a fiber runs
// queued work on its stack; run_fresh moves them to a fresh stack's fiber).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "weft/parallelize.hpp"

namespace weft::rt {

class worker;
struct fiber;

// A call of a loop's body in progress on a fiber (it lives on that fiber's
// stack, linked from fiber::m_leaves while the call runs). The items of
// [m_items.m_next, m_end) are not started: m_items those of this call, the
// rest those the leaf would run in later calls.
struct running_leaf {
  detail::loop_cursor m_items{};  // nothing started before the first call
  std::uint64_t m_end;
  running_leaf* m_outer = nullptr;  // the call this one runs inside, on the same fiber
  // m_items.m_next (one past the running item) at the latest yield of one
  // of its items; 0: none yielded (see yields_again).
  std::uint64_t m_yielded = 0;
  // Gives [m_items.m_next, m_end) to other workers and lowers m_items.m_stop
  // and m_end to m_items.m_next. Owner (the fiber's worker), before the
  // fiber suspends.
  void (*m_hand_off)(worker& w, running_leaf& self) noexcept;
};

// The calling worker's current fiber is about to suspend (or yield): every
// call of a loop body in progress on it hands its items not started to other
// workers, so that they do not wait behind the waiting item.
void hand_off_unstarted(worker& w, fiber& f) noexcept;

// The calling worker's current fiber f, which runs loop items, is about to
// yield (a fiber's yield, or a coroutine's yield_async on it): true when
// the running item of one of its loop calls has yielded before (it polls:
// the items it may poll for must not wait behind it, so they are handed
// off); false at an item's first yield, which leaves them where they are
// (a yield is no wait: the item goes on soon, and a loop whose items each
// yield once would otherwise hold a fiber per yield until its last item
// started). Each call remembers its running item.
bool yields_again(fiber& f) noexcept;

// What a runtime remembers of the small loops its workers ran (at most 4
// items per worker: docs/decisions/0004-loop-splitting.md, amended
// 2026-12-06): for a loop body (the function the loop calls, one per
// callable type), the time of one item when it last ran, so that the next
// call of that body can spread its items at once instead of timing its
// first item alone. A hint: different calls of one body may differ, and a
// reader may see an entry's two words from different writes (then it takes
// another body's time for this one's, once). Direct-mapped by the body's
// address; any worker, relaxed atomics.
struct loop_hints {
  static constexpr std::size_t k_slots = 64;
  struct entry {
    std::atomic<const void*> m_body{nullptr};
    std::atomic<std::uint64_t> m_item_ticks{0};  // ticks of one item; 0: unknown
  };
  entry m_entries[k_slots];

  static std::size_t slot_of(const void* body) noexcept {
    const auto a = reinterpret_cast<std::uintptr_t>(body);
    return static_cast<std::size_t>((a >> 4) * 0x9E3779B97F4A7C15ull >> 58);  // the top 6 bits: 64 slots
  }
  // The ticks of one item of body's last small loop; 0 when unknown.
  std::uint64_t item_ticks(const void* body) const noexcept {
    const entry& e = m_entries[slot_of(body)];
    return e.m_body.load(std::memory_order_relaxed) == body ? e.m_item_ticks.load(std::memory_order_relaxed) : 0;
  }
  // Notes body's time of one item. Stores nothing when the entry already
  // says about as much (within a factor of 2): every worker reads the line.
  void note(const void* body, std::uint64_t item_ticks) noexcept {
    if (item_ticks == 0) item_ticks = 1;
    entry& e = m_entries[slot_of(body)];
    if (e.m_body.load(std::memory_order_relaxed) == body) {
      const std::uint64_t old = e.m_item_ticks.load(std::memory_order_relaxed);
      if (item_ticks / 2 <= old && old / 2 <= item_ticks) return;
    } else {
      e.m_body.store(body, std::memory_order_relaxed);
    }
    e.m_item_ticks.store(item_ticks, std::memory_order_relaxed);
  }
};

// How many times to halve at once a range of `work` ticks that is worth
// spreading (a loop's rest, a reduction's blocks): until twice as many pieces
// would outnumber the workers or each hold less than `split` ticks. About one
// piece per worker.
inline int eager_split_depth(std::uint64_t work, std::uint64_t split, int workers) noexcept {
  int depth = 0;
  while ((2 << depth) <= workers && work / (std::uint64_t{2} << depth) >= split) ++depth;
  return depth;
}

}  // namespace weft::rt
