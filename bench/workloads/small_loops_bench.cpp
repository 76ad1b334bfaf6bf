// SPDX-License-Identifier: MIT
// small loops: 10 000 parallel loops, one after the other, of 1000 tiny items
// each (x[i] = x[i] * a + b over 1000 doubles, about 0.3 us of work per loop).
// Isolates the latency of starting and finishing a parallel loop.
//
// Variants:
//   weft          the 10 000 loops run inside one task of the runtime
//                 (rt.run around them): the cost of a nested parallelize.
//   weft_outside  each loop is called from the outside (benchmark) thread:
//                 rt.run([&] { weft::parallelize(...); }) 10 000 times, which
//                 is exactly what weft::parallelize does when called outside
//                 any runtime (it runs on the default runtime that way).
//   weft_default  weft::parallelize called from the outside thread 10 000
//                 times, on the default runtime; registered only for the
//                 default runtime's worker count (WEFT_NUM_WORKERS, else the
//                 CPUs the process may use), since that is fixed per process.
//   tbb           10 000 tbb::parallel_for inside one arena.execute.
//   omp           10 000 `#pragma omp parallel for` regions.
#include <cstddef>

#include "affine.hpp"
#include "peers.hpp"

#if WEFT_BENCH_HAVE_TBB
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#endif

namespace {

constexpr int k_loops = 10'000;
constexpr std::size_t k_items = 1000;

bench::affine_array& data() {
  static bench::affine_array x(k_items);
  return x;
}

void finish(benchmark::State& state, bench::affine_array& x) {
  x.end(state, state.iterations() * k_loops);
  bench::set_tasks(state, static_cast<double>(k_loops) * static_cast<double>(k_items));
}

void serial(benchmark::State& state) {
  auto& x = data();
  double* p = x.data();
  const double a = x.a();
  const double b = x.b();
  x.begin();
  for (auto _ : state) {
    for (int loop = 0; loop < k_loops; ++loop) {
      for (std::size_t i = 0; i < k_items; ++i) p[i] = p[i] * a + b;
      benchmark::ClobberMemory();
    }
  }
  finish(state, x);
}

void weft_variant(benchmark::State& state) {
  auto& x = data();
  weft::runtime& rt = bench::weft_runtime(static_cast<int>(state.range(0)));
  double* p = x.data();
  const double a = x.a();
  const double b = x.b();
  x.begin();
  rt.reset_stats();
  for (auto _ : state) {
    rt.run([&] {
      for (int loop = 0; loop < k_loops; ++loop) {
        weft::parallelize(k_items, [p, a, b](std::size_t i) { p[i] = p[i] * a + b; });
      }
    });
  }
  bench::set_weft_stats(state, rt);
  finish(state, x);
}

void weft_outside_variant(benchmark::State& state) {
  auto& x = data();
  weft::runtime& rt = bench::weft_runtime(static_cast<int>(state.range(0)));
  double* p = x.data();
  const double a = x.a();
  const double b = x.b();
  x.begin();
  rt.reset_stats();
  for (auto _ : state) {
    for (int loop = 0; loop < k_loops; ++loop) {
      rt.run([&] { weft::parallelize(k_items, [p, a, b](std::size_t i) { p[i] = p[i] * a + b; }); });
    }
  }
  bench::set_weft_stats(state, rt);
  finish(state, x);
}

void weft_default_variant(benchmark::State& state) {
  auto& x = data();
  weft::runtime& rt = weft::default_runtime();
  if (!bench::check(state, rt.num_workers() == state.range(0), "the default runtime has another worker count")) return;
  double* p = x.data();
  const double a = x.a();
  const double b = x.b();
  x.begin();
  rt.reset_stats();
  for (auto _ : state) {
    for (int loop = 0; loop < k_loops; ++loop) {
      weft::parallelize(k_items, [p, a, b](std::size_t i) { p[i] = p[i] * a + b; });
    }
  }
  bench::set_weft_stats(state, rt);
  finish(state, x);
}

// The default runtime's worker count (weft::config::workers: WEFT_NUM_WORKERS,
// else the CPUs this thread may use); creates it.
int default_workers() { return weft::default_runtime().num_workers(); }

#if WEFT_BENCH_HAVE_TBB
void tbb_variant(benchmark::State& state) {
  auto& x = data();
  auto& arena = bench::tbb_arena(static_cast<int>(state.range(0)));
  double* p = x.data();
  const double a = x.a();
  const double b = x.b();
  x.begin();
  for (auto _ : state) {
    arena.execute([&] {
      for (int loop = 0; loop < k_loops; ++loop) {
        tbb::parallel_for(tbb::blocked_range<std::size_t>(0, k_items),
                          [p, a, b](const tbb::blocked_range<std::size_t>& r) {
                            for (std::size_t i = r.begin(); i < r.end(); ++i) p[i] = p[i] * a + b;
                          });
      }
    });
  }
  finish(state, x);
}
#endif

#if WEFT_BENCH_HAVE_OPENMP
void omp_variant(benchmark::State& state) {
  auto& x = data();
  const int workers = static_cast<int>(state.range(0));
  double* p = x.data();
  const double a = x.a();
  const double b = x.b();
  x.begin();
  for (auto _ : state) {
    for (int loop = 0; loop < k_loops; ++loop) {
#pragma omp parallel for schedule(static) num_threads(workers)
      for (std::size_t i = 0; i < k_items; ++i) p[i] = p[i] * a + b;
    }
  }
  finish(state, x);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  bench::add_serial("small_loops/serial", serial);
  bench::add_parallel("small_loops/weft", weft_variant);
  bench::add_parallel("small_loops/weft_outside", weft_outside_variant);
  if (default_workers() <= bench::max_workers()) {
    bench::add_parallel("small_loops/weft_default", weft_default_variant, {}, {default_workers()});
  }
#if WEFT_BENCH_HAVE_TBB
  bench::add_parallel("small_loops/tbb", tbb_variant);
#endif
#if WEFT_BENCH_HAVE_OPENMP
  bench::add_parallel("small_loops/omp", omp_variant);
#endif
  return bench::main(argc, argv);
}
