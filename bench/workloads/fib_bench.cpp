// fib(n): fork n-1, run n-2 inline, no cutoff. Isolates spawn + join cost.
#include <benchmark/benchmark.h>

#include "peers.hpp"

#if WEFT_BENCH_HAVE_TBB
#include <tbb/task_group.h>
#endif

namespace {

constexpr int k_n = 30;

long fib_serial(int n) { return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2); }

long fib_weft(int n) {
  if (n < 2) return n;
  auto [a, b] = weft::join([n] { return fib_weft(n - 2); }, [n] { return fib_weft(n - 1); });
  return a + b;
}

void report(benchmark::State& state, long result) {
  if (result != fib_serial(k_n)) state.SkipWithError("wrong result");
  state.counters["spawns"] = benchmark::Counter(static_cast<double>(state.iterations()) * 1346268.0,
                                                benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void fib_serial_bench(benchmark::State& state) {
  long r = 0;
  int n = k_n;
  for (auto _ : state) {
    benchmark::DoNotOptimize(n);
    r = fib_serial(n);
    benchmark::DoNotOptimize(r);
  }
  report(state, r);
}

void fib_weft_bench(benchmark::State& state) {
  weft::runtime& rt = bench::weft_runtime(static_cast<int>(state.range(0)));
  long r = 0;
  for (auto _ : state) r = rt.run([] { return fib_weft(k_n); });
  report(state, r);
}

#if WEFT_BENCH_HAVE_TBB
long fib_tbb(int n) {
  if (n < 2) return n;
  long a = 0;
  long b = 0;
  tbb::task_group g;
  g.run([&] { b = fib_tbb(n - 1); });
  a = fib_tbb(n - 2);
  g.wait();
  return a + b;
}

void fib_tbb_bench(benchmark::State& state) {
  auto& arena = bench::tbb_arena(static_cast<int>(state.range(0)));
  long r = 0;
  for (auto _ : state) arena.execute([&] { r = fib_tbb(k_n); });
  report(state, r);
}
#endif

#if WEFT_BENCH_HAVE_OPENMP
long fib_omp(int n) {
  if (n < 2) return n;
  long a = 0;
  long b = 0;
#pragma omp task shared(b) firstprivate(n) untied
  b = fib_omp(n - 1);
  a = fib_omp(n - 2);
#pragma omp taskwait
  return a + b;
}

void fib_omp_bench(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  long r = 0;
  for (auto _ : state) {
#pragma omp parallel num_threads(workers)
#pragma omp single
    r = fib_omp(k_n);
  }
  report(state, r);
}
#endif

}  // namespace

BENCHMARK(fib_serial_bench)->Name("fib/serial")->Unit(benchmark::kMillisecond);
BENCHMARK(fib_weft_bench)->Name("fib/weft")->ArgName("workers")->DenseRange(1, 2)->Unit(benchmark::kMillisecond)->UseRealTime();
#if WEFT_BENCH_HAVE_TBB
BENCHMARK(fib_tbb_bench)->Name("fib/tbb")->ArgName("workers")->DenseRange(1, 2)->Unit(benchmark::kMillisecond)->UseRealTime();
#endif
#if WEFT_BENCH_HAVE_OPENMP
BENCHMARK(fib_omp_bench)->Name("fib/omp")->ArgName("workers")->DenseRange(1, 2)->Unit(benchmark::kMillisecond)->UseRealTime();
#endif

BENCHMARK_MAIN();
