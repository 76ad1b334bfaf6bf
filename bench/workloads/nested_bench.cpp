// SPDX-License-Identifier: MIT
// nested: a parallel loop over 256 rows, each row a parallel reduction (a sum)
// over its 4096 doubles (8 MB in all). Isolates nested parallelism: the inner
// reductions must neither serialise nor oversubscribe.
//
// Variants: weft::parallelize over rows with weft::parallel_reduce inside;
// oneTBB parallel_for with parallel_reduce inside; OpenMP `parallel for` with a
// nested `parallel for reduction(+)` (with libgomp's default nesting settings,
// recorded as omp_max_active_levels in the JSON context).
//
// The items are multiples of 1/4 below 16, so every sum is exact whatever the
// order of additions: each variant must match the serial row sums exactly.
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "peers.hpp"

#if WEFT_BENCH_HAVE_TBB
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>
#endif

namespace {

constexpr std::size_t k_rows = 256;
constexpr std::size_t k_cols = 4096;

struct matrix {
  std::vector<double> items;
  std::vector<double> expected;  // row sums
  matrix() : items(k_rows * k_cols), expected(k_rows, 0.0) {
    for (std::size_t i = 0; i < items.size(); ++i) items[i] = static_cast<double>((i * 37) % 64) * 0.25;
    for (std::size_t r = 0; r < k_rows; ++r) {
      for (std::size_t c = 0; c < k_cols; ++c) expected[r] += items[r * k_cols + c];
    }
  }
  const double* row(std::size_t r) const { return items.data() + r * k_cols; }
};

const matrix& data() {
  static const matrix m;
  return m;
}

void finish(benchmark::State& state, const std::vector<double>& sums) {
  const matrix& m = data();
  for (std::size_t r = 0; r < k_rows; ++r) {
    if (sums[r] != m.expected[r]) {
      bench::check(state, false,
                   "wrong sum of row " + std::to_string(r) + ": " + std::to_string(sums[r]) + ", expected " +
                       std::to_string(m.expected[r]));
      return;
    }
  }
  bench::set_tasks(state, static_cast<double>(k_rows * k_cols));
}

void serial(benchmark::State& state) {
  const matrix& m = data();
  std::vector<double> sums(k_rows);
  for (auto _ : state) {
    for (std::size_t r = 0; r < k_rows; ++r) {
      const double* row = m.row(r);
      double s = 0;
      for (std::size_t c = 0; c < k_cols; ++c) s += row[c];
      sums[r] = s;
    }
    benchmark::DoNotOptimize(sums.data());
    benchmark::ClobberMemory();
  }
  finish(state, sums);
}

void weft_variant(benchmark::State& state) {
  const matrix& m = data();
  weft::runtime& rt = bench::weft_runtime(static_cast<int>(state.range(0)));
  std::vector<double> sums(k_rows);
  rt.reset_stats();
  for (auto _ : state) {
    rt.run([&] {
      weft::parallelize(k_rows, [&](std::size_t r) {
        const double* row = m.row(r);
        sums[r] = weft::parallel_reduce(
            std::size_t{0}, k_cols, 0.0, [row](std::size_t c) { return row[c]; }, std::plus<>{});
      });
    });
  }
  bench::set_weft_stats(state, rt);
  finish(state, sums);
}

#if WEFT_BENCH_HAVE_TBB
void tbb_variant(benchmark::State& state) {
  const matrix& m = data();
  auto& arena = bench::tbb_arena(static_cast<int>(state.range(0)));
  std::vector<double> sums(k_rows);
  for (auto _ : state) {
    arena.execute([&] {
      tbb::parallel_for(std::size_t{0}, k_rows, [&](std::size_t r) {
        const double* row = m.row(r);
        sums[r] = tbb::parallel_reduce(
            tbb::blocked_range<std::size_t>(0, k_cols), 0.0,
            [row](const tbb::blocked_range<std::size_t>& range, double s) {
              for (std::size_t c = range.begin(); c < range.end(); ++c) s += row[c];
              return s;
            },
            std::plus<>{});
      });
    });
  }
  finish(state, sums);
}
#endif

#if WEFT_BENCH_HAVE_OPENMP
void omp_variant(benchmark::State& state) {
  const matrix& m = data();
  const int workers = static_cast<int>(state.range(0));
  std::vector<double> sums(k_rows);
  for (auto _ : state) {
#pragma omp parallel for num_threads(workers)
    for (std::size_t r = 0; r < k_rows; ++r) {
      const double* row = m.row(r);
      double s = 0;
#pragma omp parallel for reduction(+ : s) num_threads(workers)
      for (std::size_t c = 0; c < k_cols; ++c) s += row[c];
      sums[r] = s;
    }
  }
  finish(state, sums);
}
#endif

}  // namespace

int main(int argc, char** argv) {
#if WEFT_BENCH_HAVE_OPENMP
  bench::add_context("omp_max_active_levels", std::to_string(omp_get_max_active_levels()));
#endif
  bench::add_serial("nested/serial", serial);
  bench::add_parallel("nested/weft", weft_variant);
#if WEFT_BENCH_HAVE_TBB
  bench::add_parallel("nested/tbb", tbb_variant);
#endif
#if WEFT_BENCH_HAVE_OPENMP
  bench::add_parallel("nested/omp", omp_variant);
#endif
  return bench::main(argc, argv);
}
