// SPDX-License-Identifier: MIT
// loop: one parallel loop over 10^7 doubles, x[i] = x[i] * a + b. Isolates
// per-item overhead (the compiler must still see a tight, vectorisable loop)
// and memory bandwidth (80 MB per round).
//
// Variants: a plain loop; weft::parallelize(n, fn) with fn called per item;
// oneTBB parallel_for over a blocked_range (default partitioner); OpenMP
// `parallel for schedule(static)`.
#include <cstddef>

#include "affine.hpp"
#include "peers.hpp"

#if WEFT_BENCH_HAVE_TBB
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#endif

namespace {

bench::affine_array& data(std::size_t n) {
  static bench::affine_array x(n);
  return x;
}

void serial(benchmark::State& state) {
  auto& x = data(static_cast<std::size_t>(state.range(0)));
  double* p = x.data();
  const std::size_t n = x.size();
  const double a = x.a();
  const double b = x.b();
  x.begin();
  for (auto _ : state) {
    for (std::size_t i = 0; i < n; ++i) p[i] = p[i] * a + b;
    benchmark::ClobberMemory();
  }
  x.end(state, state.iterations());
  bench::set_tasks(state, static_cast<double>(n));
}

void weft_variant(benchmark::State& state) {
  auto& x = data(static_cast<std::size_t>(state.range(0)));
  weft::runtime& rt = bench::weft_runtime(static_cast<int>(state.range(1)));
  double* p = x.data();
  const std::size_t n = x.size();
  const double a = x.a();
  const double b = x.b();
  x.begin();
  rt.reset_stats();
  for (auto _ : state) {
    rt.run([&] { weft::parallelize(n, [p, a, b](std::size_t i) { p[i] = p[i] * a + b; }); });
  }
  bench::set_weft_stats(state, rt);
  x.end(state, state.iterations());
  bench::set_tasks(state, static_cast<double>(n));
}

#if WEFT_BENCH_HAVE_TBB
void tbb_variant(benchmark::State& state) {
  auto& x = data(static_cast<std::size_t>(state.range(0)));
  auto& arena = bench::tbb_arena(static_cast<int>(state.range(1)));
  double* p = x.data();
  const std::size_t n = x.size();
  const double a = x.a();
  const double b = x.b();
  x.begin();
  for (auto _ : state) {
    arena.execute([&] {
      tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n), [p, a, b](const tbb::blocked_range<std::size_t>& r) {
        for (std::size_t i = r.begin(); i < r.end(); ++i) p[i] = p[i] * a + b;
      });
    });
  }
  x.end(state, state.iterations());
  bench::set_tasks(state, static_cast<double>(n));
}
#endif

#if WEFT_BENCH_HAVE_OPENMP
void omp_variant(benchmark::State& state) {
  auto& x = data(static_cast<std::size_t>(state.range(0)));
  const int workers = static_cast<int>(state.range(1));
  double* p = x.data();
  const std::size_t n = x.size();
  const double a = x.a();
  const double b = x.b();
  x.begin();
  for (auto _ : state) {
#pragma omp parallel for schedule(static) num_threads(workers)
    for (std::size_t i = 0; i < n; ++i) p[i] = p[i] * a + b;
  }
  x.end(state, state.iterations());
  bench::set_tasks(state, static_cast<double>(n));
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const int n = 10'000'000;
  bench::add_serial("loop/serial", serial, {{"n", n}});
  bench::add_parallel("loop/weft", weft_variant, {{"n", n}});
#if WEFT_BENCH_HAVE_TBB
  bench::add_parallel("loop/tbb", tbb_variant, {{"n", n}});
#endif
#if WEFT_BENCH_HAVE_OPENMP
  bench::add_parallel("loop/omp", omp_variant, {{"n", n}});
#endif
  return bench::main(argc, argv);
}
