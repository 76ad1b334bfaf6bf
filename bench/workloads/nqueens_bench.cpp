// SPDX-License-Identifier: MIT
// nqueens(n): count the placements of n queens on an n x n board, one task per
// legal column of every row (the BOTS formulation: a task receives a copy of
// the board so far, rows 0 .. row-1, one byte per row). An irregular search:
// the subtrees differ widely in size.
//
// Input: n = 11 (2 680 solutions, 166 925 tasks).
#include <array>
#include <cstdint>
#include <string>

#include "peers.hpp"

#if WEFT_BENCH_HAVE_TBB
#include <tbb/task_group.h>
#endif

namespace {

constexpr int k_max_n = 16;
using board = std::array<std::int8_t, k_max_n>;

// True when the queen of row `row` attacks none of rows 0 .. row-1.
bool legal(const board& b, int row) {
  for (int r = 0; r < row; ++r) {
    const int d = b[row] - b[r];
    if (d == 0 || d == row - r || d == r - row) return false;
  }
  return true;
}

long solutions(int n) {
  static const long table[] = {1, 1, 0, 0, 2, 10, 4, 40, 92, 352, 724, 2680, 14200, 73712, 365596, 2279184, 14772512};
  return table[n];
}

long nqueens_serial(int n, int row, const board& b, long* tasks) {
  if (row == n) return 1;
  long count = 0;
  for (int col = 0; col < n; ++col) {
    board next = b;
    next[row] = static_cast<std::int8_t>(col);
    if (!legal(next, row)) continue;
    ++*tasks;
    count += nqueens_serial(n, row + 1, next, tasks);
  }
  return count;
}

long task_count(int n) {
  long tasks = 0;
  nqueens_serial(n, 0, board{}, &tasks);
  return tasks;
}

void finish(benchmark::State& state, int n, long result) {
  bench::check(state, result == solutions(n),
               "wrong result: " + std::to_string(result) + ", expected " + std::to_string(solutions(n)));
  bench::set_tasks(state, static_cast<double>(task_count(n)));
}

void serial(benchmark::State& state) {
  int n = static_cast<int>(state.range(0));
  long r = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(n);
    long tasks = 0;
    r = nqueens_serial(n, 0, board{}, &tasks);
    benchmark::DoNotOptimize(r);
  }
  finish(state, n, r);
}

long nqueens_weft(int n, int row, const board& b) {
  if (row == n) return 1;
  std::array<long, k_max_n> part{};
  weft::task_group g;
  for (int col = 0; col < n; ++col) {
    board next = b;
    next[row] = static_cast<std::int8_t>(col);
    if (!legal(next, row)) continue;
    g.spawn([&part, col, n, row, next] { part[col] = nqueens_weft(n, row + 1, next); });
  }
  g.wait();
  long count = 0;
  for (int col = 0; col < n; ++col) count += part[col];
  return count;
}

void weft_variant(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  weft::runtime& rt = bench::weft_runtime(static_cast<int>(state.range(1)));
  rt.reset_stats();
  long r = 0;
  for (auto _ : state) r = rt.run([n] { return nqueens_weft(n, 0, board{}); });
  bench::set_weft_stats(state, rt);
  finish(state, n, r);
}

#if WEFT_BENCH_HAVE_TBB
long nqueens_tbb(int n, int row, const board& b) {
  if (row == n) return 1;
  std::array<long, k_max_n> part{};
  tbb::task_group g;
  for (int col = 0; col < n; ++col) {
    board next = b;
    next[row] = static_cast<std::int8_t>(col);
    if (!legal(next, row)) continue;
    g.run([&part, col, n, row, next] { part[col] = nqueens_tbb(n, row + 1, next); });
  }
  g.wait();
  long count = 0;
  for (int col = 0; col < n; ++col) count += part[col];
  return count;
}

void tbb_variant(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  auto& arena = bench::tbb_arena(static_cast<int>(state.range(1)));
  long r = 0;
  for (auto _ : state) arena.execute([&] { r = nqueens_tbb(n, 0, board{}); });
  finish(state, n, r);
}
#endif

#if WEFT_BENCH_HAVE_OPENMP
long nqueens_omp(int n, int row, const board& b) {
  if (row == n) return 1;
  std::array<long, k_max_n> part{};
  for (int col = 0; col < n; ++col) {
    board next = b;
    next[row] = static_cast<std::int8_t>(col);
    if (!legal(next, row)) continue;
#pragma omp task shared(part) firstprivate(col, n, row, next) untied
    part[col] = nqueens_omp(n, row + 1, next);
  }
#pragma omp taskwait
  long count = 0;
  for (int col = 0; col < n; ++col) count += part[col];
  return count;
}

void omp_variant(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const int workers = static_cast<int>(state.range(1));
  long r = 0;
  for (auto _ : state) {
#pragma omp parallel num_threads(workers)
#pragma omp single
    r = nqueens_omp(n, 0, board{});
  }
  finish(state, n, r);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const int n = 11;
  bench::add_serial("nqueens/serial", serial, {{"n", n}});
  bench::add_parallel("nqueens/weft", weft_variant, {{"n", n}});
#if WEFT_BENCH_HAVE_TBB
  bench::add_parallel("nqueens/tbb", tbb_variant, {{"n", n}});
#endif
#if WEFT_BENCH_HAVE_OPENMP
  bench::add_parallel("nqueens/omp", omp_variant, {{"n", n}});
#endif
  return bench::main(argc, argv);
}
