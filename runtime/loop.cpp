// SPDX-License-Identifier: MIT
// Parallel loops: adaptive range splitting (docs/architecture.md, "Loops"),
// and items that wait for each other (docs/protocols/loops.md).
#include "loop.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <new>
#include <type_traits>

#include "clock.hpp"
#include "join.hpp"
#include "scheduler.hpp"
#include "weft/detail/entry.hpp"
#include "weft/parallelize.hpp"
#include "worker.hpp"
#include "workspan.hpp"

namespace weft::rt {

namespace {

using detail::join_frame;
using detail::loop;
using detail::push_status;

// State of one run_loop() call, shared by all its pieces; lives in the
// caller's frame, which outlives every piece.
struct loop_run {
  const loop* m_loop;
  std::uint64_t m_split_ticks;  // work worth handing to another worker
  int m_workers;
  // A small loop's body (run_small): its first leaf notes what an item costs
  // in the worker's loop_hints. Null for other loops.
  const void* m_hint_body = nullptr;
  split_policy m_policy;
  std::uint64_t m_piece;      // eager: largest leaf; fixed: chunk size
  std::uint64_t m_share = 1;  // eager and fixed: a worker's share of the items (at least 1)
  std::atomic<bool> m_cancelled{false};
  join_frame m_errors;  // only its exception slot is used

  void fail(std::exception_ptr e) noexcept {
    m_errors.capture(std::move(e));
    m_cancelled.store(true, std::memory_order_relaxed);
  }
  bool cancelled() const noexcept { return m_cancelled.load(std::memory_order_relaxed); }
  // A range splits when both halves hold an item.
  static bool can_split(std::uint64_t size) noexcept { return size >= 2; }
};

// The largest run of items between two polls.
constexpr std::uint64_t k_max_step = 2048;
// The shortest measurement an estimate is made from (clock reads cost ~12 ns).
constexpr std::uint64_t k_min_sample_ns = 250;
// A loop of at most this many items per worker (and at least 2) is small
// (run_small).
constexpr std::uint64_t k_small_items_per_worker = 4;

// How a range of a loop runs: a leaf of its split policy.
using range_runner = void (*)(loop_run& r, std::uint64_t begin, std::uint64_t end) noexcept;

// ---- calls of the body, and handing off the items not started ----

// Calls the body on [begin, end) with the call registered on fiber self
// (docs/protocols/loops.md). Rethrows what the body throws, unregistered.
void call_body(const loop& l, fiber& self, running_leaf& call, std::uint64_t begin, std::uint64_t end) {
  call.m_items.m_next = detail::to_offset(begin);
  call.m_items.m_stop = detail::to_offset(end);
  call.m_outer = self.m_leaves;
  self.m_leaves = &call;
  try {
    l.m_body(l.m_ctx, call.m_items);
  } catch (...) {
    self.m_leaves = call.m_outer;
    throw;
  }
  self.m_leaves = call.m_outer;
}

// Items of a leaf handed to another worker because one of its items waited.
struct handed_range : detail::job {
  loop_run* m_run;
  std::uint64_t m_begin;
  std::uint64_t m_end;
  range_runner m_runner;
  join_frame* m_parent;

  static void execute(detail::job* t) noexcept {
    auto* self = static_cast<handed_range*>(t);
    loop_run& r = *self->m_run;
    join_frame& parent = *self->m_parent;
    if (!r.cancelled()) self->m_runner(r, self->m_begin, self->m_end);
    detail::complete(parent);  // last access to self
  }
};

// A leaf that owns its range: a wait inside one of its items hands the rest
// of the range to its worker's queue as one task (at most once: the range
// then ends there), which the leaf joins before it returns.
struct owned_leaf : running_leaf {
  owned_leaf(loop_run& r, std::uint64_t end, range_runner runner) noexcept : m_run(&r), m_runner(runner) {
    m_end = end;
    m_hand_off = &hand_off;
  }
  owned_leaf(const owned_leaf&) = delete;
  owned_leaf& operator=(const owned_leaf&) = delete;
  // Joins the handed range, if any: call before the leaf returns.
  ~owned_leaf() {
    if (m_handed_off) detail::wait(m_frame, 0);
  }

  static void hand_off(worker& w, running_leaf& base) noexcept {
    auto& self = static_cast<owned_leaf&>(base);
    const std::uint64_t next = detail::from_offset(self.m_items.m_next);
    if (next >= self.m_end) return;
    self.m_handed.m_execute = &handed_range::execute;
    self.m_handed.m_run = self.m_run;
    self.m_handed.m_begin = next;
    self.m_handed.m_end = self.m_end;
    self.m_handed.m_runner = self.m_runner;
    self.m_handed.m_parent = &self.m_frame;
    self.m_items.m_stop = detail::to_offset(next);
    self.m_end = next;
    self.m_handed_off = true;
    // A counted child: its complete() is the only one, so the plain frame
    // needs nothing more.
    self.m_frame.m_pending.store(1, std::memory_order_relaxed);  // published by the push
    try {
      w.push(&self.m_handed);
    } catch (...) {
      w.m_sched.inject(&self.m_handed);  // no memory to grow the deque
    }
  }

  loop_run* m_run;
  range_runner m_runner;
  join_frame m_frame;
  handed_range m_handed;
  bool m_handed_off = false;
};

}  // namespace

void hand_off_unstarted(worker& w, fiber& f) noexcept {
  for (running_leaf* c = f.m_leaves; c != nullptr; c = c->m_outer) c->m_hand_off(w, *c);
}

bool yields_again(fiber& f) noexcept {
  bool again = false;
  for (running_leaf* c = f.m_leaves; c != nullptr; c = c->m_outer) {
    const std::uint64_t running = detail::from_offset(c->m_items.m_next);  // >= 1 while an item runs
    if (c->m_yielded == running) again = true;
    c->m_yielded = running;
  }
  return again;
}

namespace {

void run_range(loop_run& r, std::uint64_t begin, std::uint64_t end, int depth) noexcept;
void leaf(loop_run& r, std::uint64_t begin, std::uint64_t end, bool root) noexcept;
void rest_of_leaf(loop_run& r, std::uint64_t begin, std::uint64_t end) noexcept { leaf(r, begin, end, false); }

// The upper part of a split, which another worker may take: Run(ctx, begin,
// end, depth) runs it (a Run for a loop_run skips it once the loop is
// cancelled), wherever it runs; then its parent frame is completed, unless
// the splitter popped it back.
template <class Ctx, void (*Run)(Ctx&, std::uint64_t, std::uint64_t, int) noexcept>
struct piece : detail::job {
  Ctx* m_ctx;
  std::uint64_t m_begin;
  std::uint64_t m_end;
  int m_depth;  // splits it still makes before running as a leaf
  join_frame* m_parent;

  void run() noexcept { Run(*m_ctx, m_begin, m_end, m_depth); }
  static void execute(detail::job* t) noexcept {
    auto* self = static_cast<piece*>(t);
    join_frame& parent = *self->m_parent;
    self->run();
    detail::complete(parent);  // last access to self
  }
};

// The split step of every loop policy: [mid, end) is offered to other
// workers as a piece while lower() runs here; then the piece is popped back
// and run here, or waited for. When the piece cannot be offered (the push
// found the stack nearly full, a few frames below this one; or no memory to
// grow the deque) the same step goes on a fresh stack (fresh: it runs there
// already), where the piece can be offered: run after lower() on this fiber,
// it would leave an item of lower() that waits for one of [mid, end) waiting
// for ever. Only when it cannot be offered there either (no memory) does
// here_instead() run both parts here. publish: the piece is offered at once
// (see below); else it is pushed as any task is.
template <class Ctx, void (*Run)(Ctx&, std::uint64_t, std::uint64_t, int) noexcept, class Lower, class Here>
void split_step(Ctx& ctx, std::uint64_t mid, std::uint64_t end, int depth, bool publish, Lower&& lower,
                Here&& here_instead, bool fresh = false) noexcept {
  join_frame frame;
  piece<Ctx, Run> upper;
  upper.m_execute = &piece<Ctx, Run>::execute;
  upper.m_ctx = &ctx;
  upper.m_begin = mid;
  upper.m_end = end;
  upper.m_depth = depth;
  upper.m_parent = &frame;
  if (detail::push_plain(&upper) != push_status::pushed) {
    if (!fresh) {
      auto again = [&] { split_step<Ctx, Run>(ctx, mid, end, depth, publish, lower, here_instead, true); };
      // run_on_fresh_stack throws only what its function throws: nothing here.
      detail::run_on_fresh_stack([](void* p) { (*static_cast<decltype(again)*>(p))(); }, &again);
      return;
    }
    here_instead();
    return;
  }
  // Offered now, not at this fiber's next scheduling point: a piece the push
  // left in the private ring (the public deque held an earlier piece) would
  // wait there while lower() runs, through whole items of its own (the
  // second piece of a small loop spread over 4 workers or more waited for the
  // first item to end, with workers idle). Publishes the older private tasks
  // too, and wakes a sleeping worker. Not for the lower levels of the eager
  // and fixed policies, whose splits go all the way down at once: a
  // publication, a wake-up and a pop-back from the deque per split doubled
  // the time of their fine loops.
  if (publish) detail::offer_queued();
  lower();
  if (detail::pop(&upper)) {
    upper.run();
  } else if constexpr (!std::is_same_v<Ctx, loop_run>) {
    detail::wait(frame, 1);
  } else {
    // Taken by another worker: pieces of the same loop that the workers
    // publish meanwhile run here while the join watches (wait_for_pieces).
    const help_filter same_loop{[](const detail::job* t, const void* c) noexcept {
                                  return t->m_execute == &piece<Ctx, Run>::execute &&
                                         static_cast<const piece<Ctx, Run>*>(t)->m_ctx == c;
                                },
                                &ctx};
    wait_for_pieces(frame, 1, same_loop);
  }
}

void run_range_unless_cancelled(loop_run& r, std::uint64_t begin, std::uint64_t end, int depth) noexcept {
  if (!r.cancelled()) run_range(r, begin, end, depth);
}

// Runs [begin, end) as two halves: the upper one offered to other workers.
// depth: splits each half still makes before running as leaves.
void split_and_run(loop_run& r, std::uint64_t begin, std::uint64_t end, int depth) noexcept {
  const std::uint64_t mid = begin + (end - begin) / 2;
  split_step<loop_run, &run_range_unless_cancelled>(
      r, mid, end, depth, true, [&] { run_range(r, begin, mid, depth); },
      [&] {
        leaf(r, begin, mid, false);
        leaf(r, mid, end, false);
      });
}

// ---- one call for a whole range (one worker) ----

// Runs [begin, end) in one call of the body: nothing else can take a piece
// (one worker), unless an item waits. An exception ends the call, skipping
// what is left.
void run_whole(loop_run& r, std::uint64_t begin, std::uint64_t end) noexcept {
  const loop& l = *r.m_loop;
  owned_leaf call(r, end, &run_whole);
  try {
    call_body(l, *current_worker()->m_current, call, begin, end);
  } catch (...) {
    r.fail(std::current_exception());
  }
}

// ---- the eager and fixed split policies ----

// Runs [begin, end) as one chunk: runs of growing length with a look at the
// cancellation flag between them, so that items not started when an item
// throws are skipped.
void run_chunk(loop_run& r, std::uint64_t begin, std::uint64_t end) noexcept {
  const loop& l = *r.m_loop;
  owned_leaf call(r, end, &run_chunk);
  fiber& self = *current_worker()->m_current;  // the call's frame is on it: it stays the same
  std::uint64_t step = 1;
  while (begin < call.m_end) {
    if (r.cancelled()) return;
    const std::uint64_t n = std::min(step, call.m_end - begin);
    try {
      call_body(l, self, call, begin, begin + n);
    } catch (...) {
      r.fail(std::current_exception());
      return;
    }
    begin = detail::from_offset(call.m_items.m_next);
    if (step < k_max_step) step *= 2;
  }
}

// Where [begin, end) is cut by the eager or fixed policy, or end when it is a
// leaf. Eager: halves while each half keeps m_piece items. Fixed: on a chunk
// boundary (multiples of m_piece from begin), half of the chunks to each side.
std::uint64_t static_cut(const loop_run& r, std::uint64_t begin, std::uint64_t end) noexcept {
  const std::uint64_t size = end - begin;
  if (r.m_policy == split_policy::eager) return size / 2 >= r.m_piece ? begin + size / 2 : end;
  const std::uint64_t chunks = size / r.m_piece + (size % r.m_piece != 0 ? 1 : 0);
  if (chunks < 2) return end;
  return begin + (chunks - chunks / 2) * r.m_piece;
}

void run_static(loop_run& r, std::uint64_t begin, std::uint64_t end) noexcept;

void run_static_unless_cancelled(loop_run& r, std::uint64_t begin, std::uint64_t end, int) noexcept {
  if (!r.cancelled()) run_static(r, begin, end);
}

// Splits all the way down at once, every upper part offered to other workers.
void run_static(loop_run& r, std::uint64_t begin, std::uint64_t end) noexcept {
  const std::uint64_t cut = static_cut(r, begin, end);
  if (cut == end) {
    run_chunk(r, begin, end);
    return;
  }
  // Offered at once at the top levels only, while the range split holds
  // more than a worker's share of the loop (every split of a loop of at most
  // one item per worker): O(workers) publications.
  split_step<loop_run, &run_static_unless_cancelled>(
      r, cut, end, 0, end - begin > r.m_share, [&] { run_static(r, begin, cut); },
      [&] {
        run_static(r, begin, cut);
        run_static(r, cut, end);
      });
}

void run_range(loop_run& r, std::uint64_t begin, std::uint64_t end, int depth) noexcept {
  if (depth > 0 && r.can_split(end - begin)) {
    split_and_run(r, begin, end, depth - 1);
    return;
  }
  leaf(r, begin, end, false);
}

__extension__ using u128 = unsigned __int128;

// elapsed * remaining / done, without overflow.
std::uint64_t estimate(std::uint64_t elapsed, std::uint64_t remaining, std::uint64_t done) noexcept {
  const u128 e = static_cast<u128>(elapsed) * remaining / done;
  return e > UINT64_MAX ? UINT64_MAX : static_cast<std::uint64_t>(e);
}

// The first leaf of a small loop (its items from offset 0, run by the loop's
// caller) notes the time of one of its items for the next small loop of its
// body (loop_hints): at its first estimate; else when it ends, from its last
// look at the clock (or, if it never looked, one more read).
class item_note {
 public:
  item_note(const loop_run& r, const running_leaf& call, std::uint64_t first, std::uint64_t t0, bool timed) noexcept
      : m_body(timed && first == 0 ? r.m_hint_body : nullptr), m_call(call), m_t0(t0) {}
  item_note(const item_note&) = delete;
  item_note& operator=(const item_note&) = delete;
  ~item_note() {
    if (m_body == nullptr) return;
    if (m_done != 0) {
      note(m_elapsed / m_done);
      return;
    }
    const std::uint64_t items = detail::from_offset(m_call.m_items.m_next);  // started, from offset 0
    if (items != 0) note((ticks() - m_t0) / items);
  }
  // The leaf looked at the clock: `elapsed` ticks for its first `done` items.
  void looked(std::uint64_t elapsed, std::uint64_t done) noexcept {
    m_elapsed = elapsed;
    m_done = done;
  }
  // The leaf's estimate from that look.
  void estimated(std::uint64_t elapsed, std::uint64_t done) noexcept {
    if (m_body == nullptr) return;
    note(elapsed / done);
    m_body = nullptr;
  }

 private:
  void note(std::uint64_t item_ticks) const noexcept {
    current_worker()->m_sched.m_loop_hints.note(m_body, item_ticks);
  }

  const void* m_body;  // null: nothing (more) to note
  const running_leaf& m_call;
  std::uint64_t m_t0;
  std::uint64_t m_elapsed = 0;
  std::uint64_t m_done = 0;  // items of the last look; 0: none
};

// Runs [begin, end) in growing runs of items (1, 2, 4, ... 2048). With
// several workers it times itself: once
// enough is measured it estimates the work left; work too small to share is
// never split (and never looked at again), larger work is split when a thief
// asks — and, for the root of the loop, at once into up to one piece per
// worker. Between runs it also answers a thief's demand by publishing a
// queued task of an enclosing computation. An item that waits hands the
// rest of the range to other workers (owned_leaf).
void leaf(loop_run& r, std::uint64_t begin, std::uint64_t end, bool root) noexcept {
  const loop& l = *r.m_loop;
  owned_leaf call(r, end, &rest_of_leaf);
  fiber& self = *current_worker()->m_current;  // the call's frame is on it: it stays the same
  const bool timed = r.m_workers > 1;
  std::uint64_t step = 1;
  const std::uint64_t first = begin;
  const std::uint64_t t0 = timed ? ticks() : 0;
  const std::uint64_t min_sample = k_min_sample_ns * ticks_per_us() / 1000;
  std::uint64_t next_check = timed ? begin + 1 : end;  // when to look at the clock next
  item_note note(r, call, first, t0, timed);
  bool worth_sharing = false;
  while (begin < call.m_end) {
    if (r.cancelled()) return;
    const std::uint64_t n = std::min(step, call.m_end - begin);
    try {
      call_body(l, self, call, begin, begin + n);
    } catch (...) {
      r.fail(std::current_exception());
      return;
    }
    begin = detail::from_offset(call.m_items.m_next);  // begin + n, unless an item waited and the rest went elsewhere
    if (step < k_max_step) step *= 2;
    if (begin >= call.m_end) return;
    if (begin >= next_check) {
      const std::uint64_t elapsed = ticks() - t0;
      const std::uint64_t done = begin - first;
      note.looked(elapsed, done);
      if (elapsed < min_sample) {
        next_check = begin + done;  // too short to judge: measure twice as much
      } else {
        note.estimated(elapsed, done);
        const std::uint64_t left = estimate(elapsed, call.m_end - begin, done);
        worth_sharing = left >= r.m_split_ticks && r.can_split(call.m_end - begin);
        next_check = worth_sharing ? begin + done : call.m_end;
        if (worth_sharing && root) {
          // The loop is worth spreading: about one piece per worker at once.
          const int depth = eager_split_depth(left, r.m_split_ticks, r.m_workers);
          const std::uint64_t rest = call.m_end;
          call.m_end = begin;  // the rest is split_and_run's now
          split_and_run(r, begin, rest, depth);
          return;
        }
      }
    }
    worker* w = current_worker();  // the body may have moved this fiber
    // The demand flag only where this leaf can answer it: a searching worker
    // raises it again after every clear, and reading it under a loop that
    // neither splits nor has a private task to publish moves its cache line
    // between the cores on every run (decision 0004, amended).
    if (WEFT_UNLIKELY((worth_sharing || !w->m_queue.private_empty()) && w->m_queue.has_demand())) {
      bool served = false;
      try {
        served = w->serve_demand();
      } catch (...) {
        continue;  // no memory to publish (the task stays queued): keep going here
      }
      if (served) continue;  // a queued task of an enclosing computation went out
      if (worth_sharing && r.can_split(call.m_end - begin)) {
        const std::uint64_t rest = call.m_end;
        call.m_end = begin;
        split_and_run(r, begin, rest, 0);
        return;
      }
    }
  }
}

// ---- loops with a cap on concurrent calls ----
//
// Self-scheduling: every runner claims chunks of a shared counter (guided
// sizes: a share of what is left), so at most one call per runner is in
// flight. An item that waits hands the rest of its chunk back
// (returned_range) and, while fewer runners than the cap are alive, starts
// another runner, so that a waiting item never holds items that another
// runner could run.

// The rest of a chunk handed back by a runner whose item waits; in that
// runner's frame, listed at most once at a time (the runner takes its own
// back first when it resumes, and before it leaves).
struct returned_range {
  std::uint64_t m_begin = 0;
  std::uint64_t m_end = 0;
  returned_range* m_next = nullptr;
  bool m_listed = false;
};

struct capped_run {
  loop_run* m_run;
  std::atomic<std::uint64_t> m_next{0};
  std::uint64_t m_runners;  // runners started with the loop (for guided sizes)
  std::uint64_t m_cap;      // runners alive at most
  // Runners started and not finished. seq_cst with m_any_returned: a runner
  // that leaves and a handing-off one never miss each other.
  std::atomic<std::uint64_t> m_alive{0};
  std::atomic<std::uintptr_t> m_guard{0};  // guards m_returned
  returned_range* m_returned = nullptr;
  std::atomic<bool> m_any_returned{false};
  join_frame m_extra;  // runners started at hand-offs: an open frame (they start while the owner waits)
};

void run_runner(capped_run& c, std::atomic<bool>* counted = nullptr) noexcept;

// A runner that hand-offs start in the handing runner's frame, for want of
// memory for an extra_runner; that runner joins it before it returns. A
// hand-off may start it again while an earlier start still runs: each start
// is a runner of its own (counted in the frame's join), and none touches the
// job after it began except m_counted.
struct spare_runner : detail::job {
  capped_run* m_capped;
  join_frame* m_parent;
  // Set by the hand-off that starts it (only when clear: the job is then in
  // no queue), cleared by that start just before it first stops counting
  // itself in m_alive (run_runner). seq_cst, as m_alive and m_any_returned:
  // a hand-off that finds it set returns the range to a runner that looks at
  // the list once more before it leaves.
  std::atomic<bool> m_counted{false};

  static void execute(detail::job* t) noexcept {
    auto* self = static_cast<spare_runner*>(t);
    join_frame& parent = *self->m_parent;
    run_runner(*self->m_capped, &self->m_counted);
    detail::complete(parent);  // last access to the starter's frame
  }
};

// A runner's call of the body: a wait inside an item returns the rest.
struct capped_leaf : running_leaf {
  explicit capped_leaf(capped_run& c) noexcept : m_capped(&c) {
    m_end = 0;
    m_hand_off = &hand_off;
  }
  capped_leaf(const capped_leaf&) = delete;
  capped_leaf& operator=(const capped_leaf&) = delete;
  // Joins the spare runner's starts, if any: call before the runner returns.
  ~capped_leaf() {
    if (m_spare_started) detail::wait(m_spare_frame, 0);
  }
  static void hand_off(worker& w, running_leaf& base) noexcept;

  capped_run* m_capped;
  returned_range m_node;
  // A runner started from this frame when no memory could be had for one:
  // without it, a runner whose item waits for items it handed back could be
  // the only one alive (one worker), and nobody would run them.
  spare_runner m_spare;
  join_frame m_spare_frame;
  bool m_spare_started = false;
};

void lock(std::atomic<std::uintptr_t>& guard) noexcept {
  std::uintptr_t expected = 0;
  // acquire: pairs with unlock()'s release.
  while (!guard.compare_exchange_weak(expected, 1, std::memory_order_acquire, std::memory_order_relaxed)) {
    expected = 0;
    cpu_relax();
  }
}
void unlock(std::atomic<std::uintptr_t>& guard) noexcept { guard.store(0, std::memory_order_release); }

// Unlinks own, which is listed. Under the guard.
void unlink(capped_run& c, returned_range& own) noexcept {
  returned_range** at = &c.m_returned;
  while (*at != &own) at = &(*at)->m_next;
  *at = own.m_next;
}

// Takes a returned range: this runner's own if listed, else any. Takes the
// guard.
bool take_returned(capped_run& c, returned_range& own, std::uint64_t& begin, std::uint64_t& end) noexcept {
  lock(c.m_guard);
  returned_range* taken = nullptr;
  if (own.m_listed) {
    unlink(c, own);
    taken = &own;
  } else if (c.m_returned != nullptr) {
    taken = c.m_returned;
    c.m_returned = taken->m_next;
  }
  if (taken != nullptr) {
    taken->m_listed = false;
    begin = taken->m_begin;
    end = taken->m_end;
  }
  c.m_any_returned.store(c.m_returned != nullptr, std::memory_order_seq_cst);
  unlock(c.m_guard);
  return taken != nullptr;
}

// Takes this runner's own returned range off the list, if it is there, and
// drops it: a runner that leaves a cancelled loop (the node is in its frame).
void unlist_own(capped_run& c, returned_range& own) noexcept {
  lock(c.m_guard);
  if (own.m_listed) {
    unlink(c, own);
    own.m_listed = false;
  }
  c.m_any_returned.store(c.m_returned != nullptr, std::memory_order_seq_cst);
  unlock(c.m_guard);
}

bool claim(capped_run& c, std::uint64_t& begin, std::uint64_t& end) noexcept {
  const loop& l = *c.m_run->m_loop;
  std::uint64_t b = c.m_next.load(std::memory_order_relaxed);
  std::uint64_t n;
  do {
    if (b >= l.m_count) return false;
    const std::uint64_t left = l.m_count - b;
    n = std::max<std::uint64_t>(1, left / (2 * c.m_runners));
  } while (!c.m_next.compare_exchange_weak(b, b + n, std::memory_order_relaxed));
  begin = b;
  end = b + n;
  return true;
}

// One runner: claims and runs chunks until none is left. The caller counted
// it in m_alive. counted: a spare runner's flag, cleared before the runner
// first stops counting itself.
void run_runner(capped_run& c, std::atomic<bool>* counted) noexcept {
  loop_run& r = *c.m_run;
  const loop& l = *r.m_loop;
  capped_leaf call(c);
  for (;;) {
    std::uint64_t begin = 0;
    std::uint64_t end = 0;
    bool got = !r.cancelled() &&
               ((c.m_any_returned.load(std::memory_order_seq_cst) && take_returned(c, call.m_node, begin, end)) ||
                claim(c, begin, end));
    if (!got) {
      // Leave; but a range handed back meanwhile by a runner whose item waits
      // must not stay behind with nobody to run it: come back for it (within
      // the cap). A cancelled loop runs nothing more, but this runner's own
      // range, if listed, leaves the list first: its node is in this frame,
      // and another runner may still look at the list.
      if (r.cancelled()) unlist_own(c, call.m_node);
      if (counted != nullptr) {
        counted->store(false, std::memory_order_seq_cst);
        counted = nullptr;  // once: a hand-off may start the spare again now
      }
      c.m_alive.fetch_sub(1, std::memory_order_seq_cst);
      if (r.cancelled() || !c.m_any_returned.load(std::memory_order_seq_cst)) return;
      std::uint64_t alive = c.m_alive.load(std::memory_order_relaxed);
      do {
        if (alive >= c.m_cap) return;  // another runner is alive to take it
      } while (!c.m_alive.compare_exchange_weak(alive, alive + 1, std::memory_order_seq_cst));
      continue;
    }
    // The chunk in runs of at most k_max_step items, as a leaf's: once the
    // loop has failed, the runner finishes the run it is in and starts
    // nothing more (a chunk may hold most of a count of 2^64 - 1).
    call.m_end = end;
    try {
      while (begin < call.m_end && !r.cancelled()) {
        const std::uint64_t stop = call.m_end - begin > k_max_step ? begin + k_max_step : call.m_end;
        call_body(l, *current_worker()->m_current, call, begin, stop);
        begin = detail::from_offset(call.m_items.m_next);  // stop, unless an item waited and handed the rest back
      }
    } catch (...) {
      r.fail(std::current_exception());
    }
  }
}

// A runner started when an item handed a range back and fewer than the cap
// were alive.
struct extra_runner : detail::job {
  capped_run* m_capped;

  static void execute(detail::job* t) noexcept {
    auto* self = static_cast<extra_runner*>(t);
    capped_run& c = *self->m_capped;
    run_runner(c);
    detail::free_job(self, sizeof(extra_runner));
    complete_open(c.m_extra);  // last access to c
  }
};

void capped_leaf::hand_off(worker& w, running_leaf& base) noexcept {
  auto& self = static_cast<capped_leaf&>(base);
  capped_run& c = *self.m_capped;
  const std::uint64_t next = detail::from_offset(self.m_items.m_next);
  if (next < self.m_end) {
    self.m_node.m_begin = next;
    self.m_node.m_end = self.m_end;
    self.m_items.m_stop = detail::to_offset(next);
    self.m_end = next;
    lock(c.m_guard);
    self.m_node.m_next = c.m_returned;
    self.m_node.m_listed = true;
    c.m_returned = &self.m_node;
    c.m_any_returned.store(true, std::memory_order_seq_cst);
    unlock(c.m_guard);
  } else if (c.m_next.load(std::memory_order_relaxed) >= c.m_run->m_loop->m_count &&
             !c.m_any_returned.load(std::memory_order_seq_cst)) {
    return;  // nothing left that another runner could start
  }
  // Another runner for what is left, within the cap (this runner stays
  // alive: its item is in flight).
  std::uint64_t alive = c.m_alive.load(std::memory_order_seq_cst);
  do {
    if (alive >= c.m_cap) return;  // the others take it when they finish an item
  } while (!c.m_alive.compare_exchange_weak(alive, alive + 1, std::memory_order_seq_cst));
  detail::job* t = nullptr;
  try {
    auto* extra = ::new (detail::allocate_job(sizeof(extra_runner))) extra_runner{};
    extra->m_execute = &extra_runner::execute;
    extra->m_capped = &c;
    c.m_extra.m_pending.fetch_add(1, std::memory_order_relaxed);  // before t is visible; the push publishes it
    t = extra;
  } catch (...) {
    // No memory: the spare runner of this frame, unless a start of it still
    // counts itself, and so looks at the list before it leaves.
    if (self.m_spare.m_counted.exchange(true, std::memory_order_seq_cst)) {
      c.m_alive.fetch_sub(1, std::memory_order_seq_cst);
      return;
    }
    if (!self.m_spare_started) {
      self.m_spare.m_execute = &spare_runner::execute;
      self.m_spare.m_capped = &c;
      self.m_spare.m_parent = &self.m_spare_frame;
      self.m_spare_started = true;
    }
    self.m_spare_frame.m_pending.fetch_add(1, std::memory_order_relaxed);  // before t is visible; the push publishes it
    t = &self.m_spare;
  }
  try {
    w.push(t);
  } catch (...) {
    w.m_sched.inject(t);
  }
}

void run_runners(capped_run& c, std::uint64_t lo, std::uint64_t hi) noexcept;

void run_runners_piece(capped_run& c, std::uint64_t lo, std::uint64_t hi, int) noexcept { run_runners(c, lo, hi); }

// Runners [lo, hi): the upper half goes to other workers, this fiber is
// runner lo.
void run_runners(capped_run& c, std::uint64_t lo, std::uint64_t hi) noexcept {
  WEFT_ASSERT(hi > lo, "run_runners: at least one runner");
  if (hi - lo <= 1) {
    run_runner(c);
    return;
  }
  // Popped back, the upper half's runners find the counter exhausted by now,
  // or nobody else came.
  split_step<capped_run, &run_runners_piece>(
      c, lo + (hi - lo) / 2, hi, 0, true, [&] { run_runners(c, lo, lo + (hi - lo) / 2); },
      [&] {
        // No room to offer them: these runners run one after the other here.
        for (std::uint64_t i = lo; i < hi; ++i) run_runner(c);
      });
}

void run_capped(loop_run& r) noexcept {
  const loop& l = *r.m_loop;
  capped_run c;
  c.m_run = &r;
  c.m_cap = l.m_max_concurrency;
  c.m_runners = std::min<std::uint64_t>({l.m_max_concurrency, static_cast<std::uint64_t>(r.m_workers), l.m_count});
  c.m_alive.store(c.m_runners, std::memory_order_relaxed);  // each starts counted
  run_runners(c, 0, c.m_runners);
  wait_for_children(c.m_extra, 0, join_kind::open);
}

// A small loop: at most about k_small_items_per_worker items per worker
// (the SPMD shape, parallelize(num_workers(), fn); a few coarse items).
// Timing its first item alone, as a larger loop does, runs that item while
// the other workers wait for the estimate (two items of 20 ms on two workers
// took 40 ms; n items of one worker's share took twice that). Its items are
// spread at once, one piece per worker (or per item), when the last small
// loop of its body found an item worth it (loop_hints), or
// when nothing is known of the body and it has at most one item per worker;
// else its first item is timed as usual. Its first leaf notes what an item
// cost this time (in the runtime's loop_hints, which every worker reads).
void run_small(loop_run& r, worker& w) noexcept {
  const std::uint64_t n = r.m_loop->m_count;
  r.m_hint_body = reinterpret_cast<const void*>(r.m_loop->m_body);
  const std::uint64_t item = w.m_sched.m_loop_hints.item_ticks(r.m_hint_body);
  const auto workers = static_cast<std::uint64_t>(r.m_workers);
  std::uint64_t rest = 0;  // ticks of the items after the first, by the hint
  const bool spread = item == 0 ? n <= workers : __builtin_mul_overflow(item, n - 1, &rest) || rest >= r.m_split_ticks;
  if (!spread) {
    leaf(r, 0, n, true);
    return;
  }
  int levels = 1;  // halvings for a piece per worker, or per item: at least two pieces
  while ((std::uint64_t{1} << levels) < std::min(n, workers)) ++levels;
  split_and_run(r, 0, n, levels - 1);
}

void run_here(loop& l, worker& w) {
  scheduler& s = w.m_sched;
  loop_run r;
  r.m_loop = &l;
  r.m_split_ticks = k_split_us * ticks_per_us();
  r.m_workers = s.num_workers();
  r.m_policy = s.cfg().split;
  if (r.m_policy != split_policy::adaptive) {
    const std::uint64_t share = l.m_count / (4 * static_cast<std::uint64_t>(r.m_workers));
    r.m_piece = s.cfg().split_grain != 0 ? s.cfg().split_grain : std::max<std::uint64_t>(share, 1);
    r.m_share = std::max<std::uint64_t>(l.m_count / static_cast<std::uint64_t>(r.m_workers), 1);
  }
  if (l.m_max_concurrency != 0) {
    run_capped(r);
  } else if (r.m_policy != split_policy::adaptive) {
    run_static(r, 0, l.m_count);
  } else if (r.m_workers == 1) {
    // Nobody can take a piece: one run of everything, unless an item waits.
    run_whole(r, 0, l.m_count);
  } else if (l.m_count >= 2 && l.m_count <= k_small_items_per_worker * static_cast<std::uint64_t>(r.m_workers)) {
    run_small(r, w);
  } else {
    leaf(r, 0, l.m_count, true);
  }
  r.m_errors.rethrow_if_failed();
}

// A loop run on a measured strand (docs/protocols/workspan.md): every item is
// a strand of its own, started where a split down to single items would start
// it (one split level per halving, one migration per level on the burdened
// schedule); the caller's strand goes on from the latest item end.
struct measured_loop {
  const loop* m_loop;
  detail::ws_strand* m_parent;
  std::int64_t m_pos;
  std::int64_t m_bpos;
  detail::ws_sync m_sync;
  // The items' spans (and burdened spans) summed: a capped loop's items run
  // at most m_max_concurrency at once, each for at least its span.
  std::atomic<std::int64_t> m_spans{0};
  std::atomic<std::int64_t> m_bspans{0};

  void item_end(detail::ws_strand& s, detail::ws_strand* previous) noexcept {
    ws_item_end(s, previous, m_sync);
    m_spans.fetch_add(s.m_pos - m_pos, std::memory_order_relaxed);
    m_bspans.fetch_add(s.m_bpos - m_bpos, std::memory_order_relaxed);
  }

  static void items(void* p, detail::loop_cursor& items) {
    auto* m = static_cast<measured_loop*>(p);
    std::uint64_t k = detail::from_offset(items.m_next);
    while (k < detail::from_offset(items.m_stop)) {
      items.m_next = detail::to_offset(k + 1);
      detail::loop_cursor one{detail::to_offset(k), detail::to_offset(k + 1)};
      detail::ws_strand s{m->m_parent->m_measure, 0, m->m_pos, m->m_bpos, 0, 1};
      detail::ws_strand* previous = detail::ws_enter(s);
      try {
        m->m_loop->m_body(m->m_loop->m_ctx, one);
      } catch (...) {
        m->item_end(s, previous);
        throw;
      }
      m->item_end(s, previous);
      ++k;
    }
  }
};

void run_measured(const loop& l, worker& w) {
  detail::ws_strand& parent = *w.m_current->m_ws;
  ws_pause(parent);
  std::int64_t levels = 0;
  while ((std::uint64_t{1} << levels) < l.m_count && levels < 63) ++levels;
  const std::int64_t split = ws_split_ticks(parent);
  const std::int64_t burden = ws_burden_ticks(parent);
  measured_loop m{&l, &parent, parent.m_pos + levels * split, parent.m_bpos + levels * (split + burden), {}};
  loop run{&measured_loop::items, &m, l.m_count, l.m_max_concurrency};
  auto finish = [&] {
    if (l.m_max_concurrency != 0) {
      // At most that many items at once, each taking at least its span: no
      // schedule ends before their spans spread over them. (Their work spread
      // over them, the bound before, is none: an item may run in parallel
      // inside.)
      const auto cap = static_cast<std::int64_t>(l.m_max_concurrency);
      ws_sync_at_least(m.m_sync, m.m_pos + m.m_spans.load(std::memory_order_relaxed) / cap,
                       m.m_bpos + m.m_bspans.load(std::memory_order_relaxed) / cap);
    }
    detail::ws_join(parent, m.m_sync);
    // The splits on the path to an item are work too (so the span never
    // exceeds the work, however short the items).
    parent.m_work += levels * split;
  };
  try {
    run_here(run, w);
  } catch (...) {
    finish();
    throw;
  }
  finish();
}

}  // namespace

}  // namespace weft::rt

namespace weft::detail {

reduce_plan plan_reduction(void (*sample)(void*), void* ctx, std::uint64_t blocks) {
  const rt::worker* w = rt::current_worker();
  const int workers = w != nullptr ? w->m_sched.num_workers() : 0;
  if (workers <= 1 || blocks <= 1) return {};
  const std::uint64_t t0 = rt::ticks();
  sample(ctx);
  const std::uint64_t t1 = rt::ticks();
  const std::uint64_t block = t1 > t0 ? t1 - t0 : 1;
  const std::uint64_t split = rt::k_split_us * rt::ticks_per_us();
  // Saturates: only the eager depth depends on it, never the tree.
  const std::uint64_t total = block > UINT64_MAX / blocks ? UINT64_MAX : block * blocks;
  return {rt::eager_split_depth(total, split, workers), split / block + (split % block != 0 ? 1 : 0)};
}

WEFT_NOINLINE bool split_wanted() noexcept {
  rt::worker* w = rt::this_thread_worker();
  if (w == nullptr || !w->m_queue.has_demand()) return false;
  try {
    return !w->serve_demand();
  } catch (...) {
    return false;  // no memory to publish: keep going serially
  }
}

void run_loop(loop& l) {
  rt::worker* w = rt::current_worker();
  if (w == nullptr) {
    // The report of WEFT_WORKSPAN names the loop by its body (the user's code).
    run_root_at(
        nullptr, [](void* p) { run_loop(*static_cast<loop*>(p)); }, &l, reinterpret_cast<const void*>(l.m_body));
    return;
  }
  if (WEFT_UNLIKELY(w->stack_low())) {
    if (w->m_current->m_ws != nullptr && !w->real_stack_low()) {
      rt::run_measured(l, *w);
      return;
    }
    // On the fresh stack, or on this one where no fiber could be had: then
    // the loop runs here (its splits run both parts here), since asking
    // again would recurse without end.
    run_on_fresh_stack(
        [](void* p) {
          auto& moved = *static_cast<loop*>(p);
          rt::worker* now = rt::current_worker();
          if (now->m_current->m_ws != nullptr) {
            rt::run_measured(moved, *now);
          } else {
            rt::run_here(moved, *now);
          }
        },
        &l);
    return;
  }
  rt::run_here(l, *w);
}

}  // namespace weft::detail
