// SPDX-License-Identifier: MIT
// spawn_join: one fork-join round at 1 worker, where nobody steals: the
// overhead a spawn adds to a call. One iteration calls two tiny out-of-line
// functions f and g:
//   serial           f(); g();                        (the plain calls)
//   weft             weft::join(f, g)
//   weft_task_group  task_group t; t.spawn(g); f(); t.wait();
//   tbb              tbb::task_group t; t.run(g); f(); t.wait();
//   omp              #pragma omp task g(); f(); #pragma omp taskwait
// The iteration loop itself runs inside the runtime (arena, parallel region).
#include "peers.hpp"

#if WEFT_BENCH_HAVE_TBB
#include <tbb/task_group.h>
#endif

namespace {

[[gnu::noinline]] long leaf(long x) {
  benchmark::DoNotOptimize(x);
  return x + 1;
}

void finish(benchmark::State& state, long sum) {
  bench::check(state, sum == 2 * static_cast<long>(state.iterations()), "wrong result");
  bench::set_tasks(state, 1);
}

void serial(benchmark::State& state) {
  long sum = 0;
  for (auto _ : state) {
    const long a = leaf(0);
    const long b = leaf(0);
    sum += a + b;
  }
  finish(state, sum);
}

void weft_variant(benchmark::State& state) {
  weft::runtime& rt = bench::weft_runtime(static_cast<int>(state.range(0)));
  rt.reset_stats();
  long sum = 0;
  rt.run([&] {
    for (auto _ : state) {
      auto [a, b] = weft::join([] { return leaf(0); }, [] { return leaf(0); });
      sum += a + b;
    }
  });
  bench::set_weft_stats(state, rt);
  finish(state, sum);
}

void weft_task_group_variant(benchmark::State& state) {
  weft::runtime& rt = bench::weft_runtime(static_cast<int>(state.range(0)));
  rt.reset_stats();
  long sum = 0;
  rt.run([&] {
    for (auto _ : state) {
      long b = 0;
      weft::task_group t;
      t.spawn([&b] { b = leaf(0); });
      const long a = leaf(0);
      t.wait();
      sum += a + b;
    }
  });
  bench::set_weft_stats(state, rt);
  finish(state, sum);
}

#if WEFT_BENCH_HAVE_TBB
void tbb_variant(benchmark::State& state) {
  auto& arena = bench::tbb_arena(static_cast<int>(state.range(0)));
  long sum = 0;
  arena.execute([&] {
    for (auto _ : state) {
      long b = 0;
      tbb::task_group t;
      t.run([&b] { b = leaf(0); });
      const long a = leaf(0);
      t.wait();
      sum += a + b;
    }
  });
  finish(state, sum);
}
#endif

#if WEFT_BENCH_HAVE_OPENMP
void omp_variant(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  long sum = 0;
#pragma omp parallel num_threads(workers)
#pragma omp single
  for (auto _ : state) {
    long b = 0;
#pragma omp task shared(b) untied
    b = leaf(0);
    const long a = leaf(0);
#pragma omp taskwait
    sum += a + b;
  }
  finish(state, sum);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  bench::add_serial("spawn_join/serial", serial)->Unit(benchmark::kNanosecond);
  bench::add_parallel("spawn_join/weft", weft_variant, {}, {1})->Unit(benchmark::kNanosecond);
  bench::add_parallel("spawn_join/weft_task_group", weft_task_group_variant, {}, {1})->Unit(benchmark::kNanosecond);
#if WEFT_BENCH_HAVE_TBB
  bench::add_parallel("spawn_join/tbb", tbb_variant, {}, {1})->Unit(benchmark::kNanosecond);
#endif
#if WEFT_BENCH_HAVE_OPENMP
  bench::add_parallel("spawn_join/omp", omp_variant, {}, {1})->Unit(benchmark::kNanosecond);
#endif
  return bench::main(argc, argv);
}
