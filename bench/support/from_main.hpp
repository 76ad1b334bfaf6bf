// SPDX-License-Identifier: MIT
// Benchmark support: peers called from plain code, the way a new user writes
// them. weft: weft::parallelize / parallel_for / parallel_reduce on the
// default runtime, sized by WEFT_NUM_WORKERS; oneTBB: tbb::parallel_for with
// a global_control that caps its threads; OpenMP: a parallel for with
// num_threads(k). One process per variant and worker count (tools/bench), so
// each can be set once per process.
#pragma once

#include <cstdlib>
#include <memory>
#include <string>

#include <weft/weft.hpp>

#include "bench.hpp"

#if WEFT_BENCH_HAVE_TBB
#include <tbb/global_control.h>
#endif

namespace bench {

// Makes the default runtime have `workers` workers: sets WEFT_NUM_WORKERS
// before its first use. False (and the benchmark marked failed) when it was
// created earlier with another count.
inline bool default_runtime_of(benchmark::State& state, int workers) {
  ::setenv("WEFT_NUM_WORKERS", std::to_string(workers).c_str(), 1);
  return check(state, weft::default_runtime().num_workers() == workers,
               "the default runtime was created with another worker count: run one worker count per process");
}

#if WEFT_BENCH_HAVE_TBB
// Caps oneTBB at `workers` threads (the caller included) for this process.
inline void tbb_threads(int workers) {
  static std::unique_ptr<tbb::global_control> limit;
  limit = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                static_cast<std::size_t>(workers));
}
#endif

}  // namespace bench
