// SPDX-License-Identifier: MIT
// reduce: the sum of 10^8 doubles (800 MB). Isolates a reduction bound by
// memory bandwidth.
//
// Variants: a plain loop (what one writes serially: one chain of additions);
// weft::parallel_reduce (which sums every block in four lanes, see
// docs/guide.md); oneTBB parallel_reduce over a blocked_range; OpenMP
// `parallel for reduction(+)`.
//
// The items are multiples of 1/4 below 16, so the sum is exact whatever the
// order of additions, and every variant must match the serial sum exactly.
// WEFT_BENCH_REDUCE_N overrides the item count (e.g. 50000000 where memory is
// short).
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>

#include "peers.hpp"

#if WEFT_BENCH_HAVE_TBB
#include <tbb/blocked_range.h>
#include <tbb/parallel_reduce.h>
#endif

namespace {

struct array {
  std::unique_ptr<double[]> items;
  std::size_t size;
  double expected = 0;
  explicit array(std::size_t n) : items(new double[n]), size(n) {
    for (std::size_t i = 0; i < n; ++i) items[i] = static_cast<double>(i % 64) * 0.25;
    const double block = 63.0 * 64.0 / 2.0 * 0.25;  // one period of 64 items
    expected = block * static_cast<double>(n / 64);
    for (std::size_t i = n - n % 64; i < n; ++i) expected += items[i];
  }
};

const array& data(std::size_t n) {
  static const array a(n);
  return a;
}

void finish(benchmark::State& state, const array& a, double result) {
  char text[128];
  std::snprintf(text, sizeof text, "wrong sum: %.17g, expected %.17g", result, a.expected);
  bench::check(state, result == a.expected, text);
  bench::set_tasks(state, static_cast<double>(a.size));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(a.size * sizeof(double)));
}

void serial(benchmark::State& state) {
  const array& a = data(static_cast<std::size_t>(state.range(0)));
  const double* p = a.items.get();
  double r = 0;
  for (auto _ : state) {
    double s = 0;
    for (std::size_t i = 0; i < a.size; ++i) s += p[i];
    r = s;
    benchmark::DoNotOptimize(r);
  }
  finish(state, a, r);
}

void weft_variant(benchmark::State& state) {
  const array& a = data(static_cast<std::size_t>(state.range(0)));
  weft::runtime& rt = bench::weft_runtime(static_cast<int>(state.range(1)));
  const double* p = a.items.get();
  double r = 0;
  rt.reset_stats();
  for (auto _ : state) {
    r = rt.run([&] {
      return weft::parallel_reduce(
          std::size_t{0}, a.size, 0.0, [p](std::size_t i) { return p[i]; }, std::plus<>{});
    });
  }
  bench::set_weft_stats(state, rt);
  finish(state, a, r);
}

#if WEFT_BENCH_HAVE_TBB
void tbb_variant(benchmark::State& state) {
  const array& a = data(static_cast<std::size_t>(state.range(0)));
  auto& arena = bench::tbb_arena(static_cast<int>(state.range(1)));
  const double* p = a.items.get();
  double r = 0;
  for (auto _ : state) {
    arena.execute([&] {
      r = tbb::parallel_reduce(
          tbb::blocked_range<std::size_t>(0, a.size), 0.0,
          [p](const tbb::blocked_range<std::size_t>& range, double s) {
            for (std::size_t i = range.begin(); i < range.end(); ++i) s += p[i];
            return s;
          },
          std::plus<>{});
    });
  }
  finish(state, a, r);
}
#endif

#if WEFT_BENCH_HAVE_OPENMP
void omp_variant(benchmark::State& state) {
  const array& a = data(static_cast<std::size_t>(state.range(0)));
  const int workers = static_cast<int>(state.range(1));
  const double* p = a.items.get();
  const std::size_t n = a.size;
  double r = 0;
  for (auto _ : state) {
    double s = 0;
#pragma omp parallel for schedule(static) reduction(+ : s) num_threads(workers)
    for (std::size_t i = 0; i < n; ++i) s += p[i];
    r = s;
  }
  finish(state, a, r);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  long n = 100'000'000;
  if (const char* env = std::getenv("WEFT_BENCH_REDUCE_N")) n = std::atol(env);
  if (n < 1) {
    std::fputs("WEFT_BENCH_REDUCE_N: expected a positive integer\n", stderr);
    return 2;
  }
  bench::add_serial("reduce/serial", serial, {{"n", n}});
  bench::add_parallel("reduce/weft", weft_variant, {{"n", n}});
#if WEFT_BENCH_HAVE_TBB
  bench::add_parallel("reduce/tbb", tbb_variant, {{"n", n}});
#endif
#if WEFT_BENCH_HAVE_OPENMP
  bench::add_parallel("reduce/omp", omp_variant, {{"n", n}});
#endif
  return bench::main(argc, argv);
}
