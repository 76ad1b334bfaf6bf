// Benchmark support: one runtime (or arena) per worker count, shared by all
// benchmarks of a binary, so that start-up costs stay out of the timings.
#pragma once

#include <map>
#include <memory>

#include <weft/weft.hpp>

#if WEFT_BENCH_HAVE_TBB
#include <tbb/task_arena.h>
#endif
#if WEFT_BENCH_HAVE_OPENMP
#include <omp.h>
#endif

namespace bench {

// A weft runtime with `workers` workers, created on first use.
inline weft::runtime& weft_runtime(int workers) {
  static std::map<int, std::unique_ptr<weft::runtime>> cache;
  auto& slot = cache[workers];
  if (!slot) slot = std::make_unique<weft::runtime>(weft::config{.workers = workers});
  return *slot;
}

#if WEFT_BENCH_HAVE_TBB
// A oneTBB arena with `workers` threads (the calling thread included).
inline tbb::task_arena& tbb_arena(int workers) {
  static std::map<int, std::unique_ptr<tbb::task_arena>> cache;
  auto& slot = cache[workers];
  if (!slot) {
    slot = std::make_unique<tbb::task_arena>(workers);
    slot->initialize();
  }
  return *slot;
}
#endif

}  // namespace bench
