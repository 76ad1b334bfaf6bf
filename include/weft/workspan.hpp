// SPDX-License-Identifier: MIT
// weft: the work and the span of a computation, and so how far it can scale
// (docs/guide.md, "How far will it scale?").
#pragma once

#include "weft/detail/cxx20.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>

#include "weft/detail/workspan.hpp"
#include "weft/runtime.hpp"
#include "weft/this_fiber.hpp"

namespace weft {

// What measure_workspan() found. Work: the time of every strand of the
// computation added up (T1: the serial time, plus what spawning costs). Span:
// the longest chain of strands that depend on one another through spawns and
// joins (T∞), with every loop taken as split down to single items (or chunks
// of its grain) and every reduction down to its blocks, whatever this run
// split. No schedule on p workers beats max(work / p, span); a
// work-stealing scheduler comes close to work / p + span. Burdened span: the
// same chain with `burden` added for every spawn on it that another worker
// could take (the cost of moving the work there), so a computation whose
// spawns are too fine shows it. Waiting (for a mutex, a latch, a condition
// variable, a yield) is not work; what those waits order is not part of the
// span.
struct workspan {
  std::chrono::nanoseconds work{0};
  std::chrono::nanoseconds span{0};
  std::chrono::nanoseconds burdened_span{0};
  std::chrono::nanoseconds burden{0};  // charged per potential steal (a measured migration)
  std::uint64_t strands = 0;           // strands measured (the call itself included)

  // work / span: the most workers the computation can keep busy; 0 when
  // nothing was measured.
  double parallelism() const noexcept { return ratio(work, span); }
  // work / burdened span.
  double burdened_parallelism() const noexcept { return ratio(work, burdened_span); }
  // The work law and the span law: no speedup on p workers beats min(p,
  // parallelism()). Throws nothing; p < 1 counts as 1.
  double speedup_bound(int p) const noexcept { return std::min(static_cast<double>(std::max(p, 1)), parallelism()); }
  // What a greedy scheduler is expected to reach on p workers when every
  // potential steal costs `burden`: work / (work / p + burdened span).
  double burdened_speedup(int p) const noexcept {
    const double w = static_cast<double>(work.count());
    const double t = w / static_cast<double>(std::max(p, 1)) + static_cast<double>(burdened_span.count());
    return t > 0 ? w / t : 0;
  }

 private:
  static double ratio(std::chrono::nanoseconds a, std::chrono::nanoseconds b) noexcept {
    return b.count() > 0 ? static_cast<double>(a.count()) / static_cast<double>(b.count()) : 0;
  }
};

// Runs f() and returns its work and span (its result, if any, is dropped;
// what it throws propagates, and nothing is measured then). Runs on the
// calling worker's runtime, or in default_runtime() from outside any. The
// measurement times every strand (two clock reads, about 60 ns per spawn)
// and runs loops item by item, so f runs slower than usual. The span does not
// depend on the number of workers beyond noise; the work of tasks of a few
// nanoseconds (mostly spawn cost) grows with the workers that steal them. A
// measurement inside a measured call is part of the outer one: its work adds
// to the outer work, its span to the span of the strand that made it. A
// task_group made before the call and used inside it is measured as one made
// inside; the algorithms that cut their input by the worker count are
// measured as this run has them (docs/guide.md, "How far will it scale?").
// Nothing runs measured off weft's workers: a coroutine that an awaitable of
// another library resumes on its own thread is measured up to that
// suspension when it got there straight from sync_wait, not after it (nor a
// piece that ends in such a suspension inside a when_all or spawn child,
// after the coroutine was resumed from a queue, or after a yield_async that
// went on at once).
// Measures once per process, on the first call, the cost of a spawn (1 024
// empty joins), of reading the clock, and of a one-way hand-over between two
// threads (with a helper thread, at most about 6 ms), never more than the
// runtime's own 2 us estimate of sharing work; the burden of a migration is
// two hand-overs and a spawn (so at most about 4 us and a spawn). Later
// calls pay none of that.
template <class F>
workspan measure_workspan(F&& f) {
  if (!weft::on_worker()) {
    return default_runtime().run([&] { return weft::measure_workspan(f); });
  }
  struct call {
    F& m_fn;
    // The result is dropped, a [[nodiscard]] one too.
    static void run(void* p) { static_cast<void>(std::invoke(static_cast<call*>(p)->m_fn)); }
  } c{f};
  detail::ws_result r{};
  detail::ws_measure_call(&call::run, &c, r);
  workspan out;
  out.work = std::chrono::nanoseconds(r.m_work_ns);
  out.span = std::chrono::nanoseconds(r.m_span_ns);
  out.burdened_span = std::chrono::nanoseconds(r.m_burdened_span_ns);
  out.burden = std::chrono::nanoseconds(r.m_burden_ns);
  out.strands = r.m_strands;
  return out;
}

}  // namespace weft
