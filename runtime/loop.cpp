// Parallel loops: adaptive range splitting (docs/architecture.md, "Loops").
#include <algorithm>
#include <atomic>
#include <exception>

#include "clock.hpp"
#include "scheduler.hpp"
#include "weft/detail/entry.hpp"
#include "weft/parallelize.hpp"
#include "worker.hpp"

namespace weft::rt {

namespace {

using detail::join_frame;
using detail::loop;
using detail::push_status;

// State of one run_loop() call, shared by all its pieces; lives in the
// caller's frame, which outlives every piece.
struct loop_run {
  const loop* m_loop;
  std::uint64_t m_half_min;     // a range splits only when both halves hold at least this many
  std::uint64_t m_split_ticks;  // work worth handing to another worker
  int m_workers;
  split_policy m_policy;
  std::uint64_t m_piece;  // eager: largest leaf; fixed: chunk size
  std::atomic<bool> m_cancelled{false};
  join_frame m_errors;  // only its exception slot is used

  void fail(std::exception_ptr e) noexcept {
    m_errors.capture(std::move(e));
    m_cancelled.store(true, std::memory_order_relaxed);
  }
  bool cancelled() const noexcept { return m_cancelled.load(std::memory_order_relaxed); }
  // Overflow-free: the smaller half of `size` items is size / 2.
  bool can_split(std::uint64_t size) const noexcept { return size / 2 >= m_half_min; }
};

// The largest run of items between two polls.
constexpr std::uint64_t k_max_step = 2048;
// The shortest measurement an estimate is made from (clock reads cost ~12 ns).
constexpr std::uint64_t k_min_sample_ns = 250;

void run_range(loop_run& r, std::uint64_t begin, std::uint64_t end, int depth) noexcept;
void leaf(loop_run& r, std::uint64_t begin, std::uint64_t end, bool root) noexcept;

// A range another worker may take: its upper half of a split.
struct piece : detail::task {
  loop_run* m_run;
  std::uint64_t m_begin;
  std::uint64_t m_end;
  int m_depth;  // splits it still makes before running as a leaf
  join_frame* m_parent;

  static void execute(detail::task* t) noexcept {
    auto* self = static_cast<piece*>(t);
    loop_run& r = *self->m_run;
    join_frame& parent = *self->m_parent;
    if (!r.cancelled()) run_range(r, self->m_begin, self->m_end, self->m_depth);
    detail::complete(parent);  // last access to self
  }
};

// Runs [begin, end) as two halves: the upper one offered to other workers.
// depth: splits each half still makes before running as leaves.
void split_and_run(loop_run& r, std::uint64_t begin, std::uint64_t end, int depth) noexcept {
  const std::uint64_t mid = begin + (end - begin) / 2;
  join_frame frame;
  piece upper;
  upper.m_execute = &piece::execute;
  upper.m_run = &r;
  upper.m_begin = mid;
  upper.m_end = end;
  upper.m_depth = depth;
  upper.m_parent = &frame;
  if (detail::push(&upper) != push_status::pushed) {
    // No room to push (stack nearly full or no memory): run both halves here.
    leaf(r, begin, mid, false);
    leaf(r, mid, end, false);
    return;
  }
  run_range(r, begin, mid, depth);
  if (detail::pop(&upper)) {
    if (!r.cancelled()) run_range(r, mid, end, depth);
  } else {
    detail::wait(frame, 1);
  }
}

// ---- the eager and fixed split policies ----

// Runs [begin, end) as one chunk: one call of the body for user-visible
// chunks (parallel_for), else runs of growing length with a look at the
// cancellation flag between them, so that items not started when an item
// throws are skipped.
void run_chunk(loop_run& r, std::uint64_t begin, std::uint64_t end) noexcept {
  const loop& l = *r.m_loop;
  std::uint64_t step = l.m_exact_chunks ? end - begin : 1;
  while (begin < end) {
    if (r.cancelled()) return;
    const std::uint64_t n = std::min(step, end - begin);
    try {
      l.m_body(l.m_ctx, begin, begin + n);
    } catch (...) {
      r.fail(std::current_exception());
      return;
    }
    begin += n;
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

struct static_piece : detail::task {
  loop_run* m_run;
  std::uint64_t m_begin;
  std::uint64_t m_end;
  join_frame* m_parent;

  static void execute(detail::task* t) noexcept {
    auto* self = static_cast<static_piece*>(t);
    loop_run& r = *self->m_run;
    join_frame& parent = *self->m_parent;
    if (!r.cancelled()) run_static(r, self->m_begin, self->m_end);
    detail::complete(parent);  // last access to self
  }
};

// Splits all the way down at once, every upper part offered to other workers.
void run_static(loop_run& r, std::uint64_t begin, std::uint64_t end) noexcept {
  const std::uint64_t cut = static_cut(r, begin, end);
  if (cut == end) {
    run_chunk(r, begin, end);
    return;
  }
  join_frame frame;
  static_piece upper;
  upper.m_execute = &static_piece::execute;
  upper.m_run = &r;
  upper.m_begin = cut;
  upper.m_end = end;
  upper.m_parent = &frame;
  if (detail::push(&upper) != push_status::pushed) {
    run_static(r, begin, cut);
    run_static(r, cut, end);
    return;
  }
  run_static(r, begin, cut);
  if (detail::pop(&upper)) {
    if (!r.cancelled()) run_static(r, cut, end);
  } else {
    detail::wait(frame, 1);
  }
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

// Runs [begin, end) in growing runs of items (1, 2, 4, ... 2048; multiples of
// the grain for exact chunks). With several workers it times itself: once
// enough is measured it estimates the work left; work too small to share is
// never split (and never looked at again), larger work is split when a thief
// asks — and, for the root of the loop, at once into up to one piece per
// worker. Between runs it also answers a thief's demand by publishing a
// queued task of an enclosing computation.
void leaf(loop_run& r, std::uint64_t begin, std::uint64_t end, bool root) noexcept {
  const loop& l = *r.m_loop;
  const bool timed = r.m_workers > 1;
  std::uint64_t step = l.m_exact_chunks ? l.m_grain : 1;
  const std::uint64_t max_step = std::max(step, k_max_step);
  const std::uint64_t first = begin;
  const std::uint64_t t0 = timed ? ticks() : 0;
  const std::uint64_t min_sample = k_min_sample_ns * ticks_per_us() / 1000;
  std::uint64_t next_check = timed ? begin + 1 : end;  // when to look at the clock next
  bool worth_sharing = false;
  while (begin < end) {
    if (r.cancelled()) return;
    std::uint64_t n = std::min(step, end - begin);
    if (l.m_exact_chunks && end - begin - n < l.m_grain) n = end - begin;  // never leave a runt
    try {
      l.m_body(l.m_ctx, begin, begin + n);
    } catch (...) {
      r.fail(std::current_exception());
      return;
    }
    begin += n;
    if (step < max_step) step = std::min(step * 2, max_step);
    if (begin == end) return;
    if (begin >= next_check) {
      const std::uint64_t elapsed = ticks() - t0;
      const std::uint64_t done = begin - first;
      if (elapsed < min_sample) {
        next_check = begin + done;  // too short to judge: measure twice as much
      } else {
        const std::uint64_t left = estimate(elapsed, end - begin, done);
        worth_sharing = left >= r.m_split_ticks && r.can_split(end - begin);
        next_check = worth_sharing ? begin + done : end;
        if (worth_sharing && root) {
          // The loop is worth spreading: about one piece per worker at once.
          int depth = 0;
          while ((2 << depth) <= r.m_workers && left / (std::uint64_t{2} << depth) >= r.m_split_ticks) ++depth;
          split_and_run(r, begin, end, depth);
          return;
        }
      }
    }
    worker* w = current_worker();  // the body may have moved this fiber
    if (WEFT_UNLIKELY(w->m_queue.has_demand())) {
      if (w->serve_demand()) continue;  // a queued task of an enclosing computation went out
      if (worth_sharing && r.can_split(end - begin)) {
        split_and_run(r, begin, end, 0);
        return;
      }
    }
  }
}

// ---- loops with a cap on concurrent calls ----

// Self-scheduling: every runner claims chunks of a shared counter (guided
// sizes: a share of what is left), so at most one call per runner is in flight.
struct capped_run {
  loop_run* m_run;
  std::atomic<std::uint64_t> m_next{0};
  std::uint64_t m_runners;
};

void claim_and_run(capped_run& c) noexcept {
  loop_run& r = *c.m_run;
  const loop& l = *r.m_loop;
  const std::uint64_t grain = l.m_exact_chunks ? l.m_grain : 1;
  std::uint64_t begin = c.m_next.load(std::memory_order_relaxed);
  for (;;) {
    if (r.cancelled()) return;
    std::uint64_t n;
    do {
      if (begin >= l.m_count) return;
      const std::uint64_t left = l.m_count - begin;
      n = std::max(grain, left / (2 * c.m_runners));
      if (left - std::min(n, left) < grain) n = left;  // never leave a runt
      n = std::min(n, left);
    } while (!c.m_next.compare_exchange_weak(begin, begin + n, std::memory_order_relaxed));
    try {
      l.m_body(l.m_ctx, begin, begin + n);
    } catch (...) {
      r.fail(std::current_exception());
      return;
    }
    begin = c.m_next.load(std::memory_order_relaxed);
  }
}

void run_runners(capped_run& c, std::uint64_t lo, std::uint64_t hi) noexcept;

struct runner : detail::task {
  capped_run* m_capped;
  std::uint64_t m_lo;
  std::uint64_t m_hi;
  join_frame* m_parent;

  static void execute(detail::task* t) noexcept {
    auto* self = static_cast<runner*>(t);
    join_frame& parent = *self->m_parent;
    run_runners(*self->m_capped, self->m_lo, self->m_hi);
    detail::complete(parent);
  }
};

// Runners [lo, hi): the upper half goes to other workers, this fiber is
// runner lo.
void run_runners(capped_run& c, std::uint64_t lo, std::uint64_t hi) noexcept {
  if (hi - lo > 1) {
    const std::uint64_t mid = lo + (hi - lo) / 2;
    join_frame frame;
    runner upper;
    upper.m_execute = &runner::execute;
    upper.m_capped = &c;
    upper.m_lo = mid;
    upper.m_hi = hi;
    upper.m_parent = &frame;
    if (detail::push(&upper) == push_status::pushed) {
      run_runners(c, lo, mid);
      if (detail::pop(&upper)) {
        claim_and_run(c);  // the counter is exhausted by now, or nobody else came
      } else {
        detail::wait(frame, 1);
      }
      return;
    }
  }
  claim_and_run(c);
}

void run_here(loop& l, worker& w) {
  scheduler& s = w.m_sched;
  loop_run r;
  r.m_loop = &l;
  r.m_half_min = l.m_exact_chunks ? l.m_grain : 1;
  r.m_split_ticks = k_split_us * ticks_per_us();
  r.m_workers = s.num_workers();
  r.m_policy = s.cfg().split;
  if (r.m_policy != split_policy::adaptive) {
    const std::uint64_t share = l.m_count / (4 * static_cast<std::uint64_t>(r.m_workers));
    r.m_piece = s.cfg().split_grain != 0 ? s.cfg().split_grain : std::max<std::uint64_t>(share, 1);
    if (l.m_exact_chunks) r.m_piece = std::max(r.m_piece, l.m_grain);
  }
  if (l.m_max_concurrency != 0) {
    capped_run c;
    c.m_run = &r;
    c.m_runners = std::min<std::uint64_t>(
        {l.m_max_concurrency, static_cast<std::uint64_t>(s.num_workers()),
         (l.m_count + (l.m_exact_chunks ? l.m_grain : 1) - 1) / (l.m_exact_chunks ? l.m_grain : 1)});
    run_runners(c, 0, c.m_runners);
  } else if (r.m_policy != split_policy::adaptive) {
    run_static(r, 0, l.m_count);
  } else if (r.m_workers == 1) {
    // Nobody can take a piece: one run of everything (a single chunk is valid
    // for every grain). An exception ends the run, skipping what is left.
    try {
      l.m_body(l.m_ctx, 0, l.m_count);
    } catch (...) {
      r.fail(std::current_exception());
    }
  } else {
    leaf(r, 0, l.m_count, true);
  }
  r.m_errors.rethrow_if_failed();
}

}  // namespace

}  // namespace weft::rt

namespace weft::detail {

int runtime_workers() noexcept {
  const rt::worker* w = rt::current_worker();
  return w != nullptr ? w->m_sched.num_workers() : 0;
}

std::uint64_t ticks() noexcept { return rt::ticks(); }

std::uint64_t split_ticks() noexcept { return rt::k_split_us * rt::ticks_per_us(); }

bool split_wanted() noexcept {
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
    run_root(
        nullptr, [](void* p) { run_loop(*static_cast<loop*>(p)); }, &l);
    return;
  }
  if (WEFT_UNLIKELY(w->stack_low())) {
    run_on_fresh_stack([](void* p) { run_loop(*static_cast<loop*>(p)); }, &l);
    return;
  }
  rt::run_here(l, *w);
}

}  // namespace weft::detail
