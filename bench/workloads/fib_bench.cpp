// SPDX-License-Identifier: MIT
// fib(n): fork fib(n-1), run fib(n-2) inline, join; no cutoff. Isolates the
// cost of a spawn and a join: fib(n) spawns fib(n+1) - 1 tasks (1 346 268 for
// n = 30) that do almost nothing else.
//
// Variants: serial; weft with fibers (join) and with coroutines (task<long>,
// when_all); oneTBB task_group; OpenMP tasks; Boost.Fiber.
// Inputs: n = 30 (serial, weft, oneTBB, OpenMP) and n = 25 (the same plus
// Boost.Fiber, which needs seconds per fib(30)).
#include <string>

#include <weft/coroutine.hpp>

#include "peers.hpp"

#if WEFT_BENCH_HAVE_TBB
#include <tbb/task_group.h>
#endif

namespace {

long fib_serial(int n) { return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2); }

// Spawned calls of fib(n): one per inner node of the call tree.
double spawns(int n) {
  double a = 0;  // fib(0)
  double b = 1;  // fib(1)
  for (int i = 0; i < n + 1; ++i) {
    const double c = a + b;
    a = b;
    b = c;
  }
  return a - 1;  // fib(n + 1) - 1
}

void finish(benchmark::State& state, int n, long result) {
  bench::check(state, result == fib_serial(n),
               "wrong result: fib(" + std::to_string(n) + ") = " + std::to_string(result));
  bench::set_tasks(state, spawns(n));
}

void serial(benchmark::State& state) {
  int n = static_cast<int>(state.range(0));
  long r = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(n);
    r = fib_serial(n);
    benchmark::DoNotOptimize(r);
  }
  finish(state, n, r);
}

long fib_weft(int n) {
  if (n < 2) return n;
  auto [a, b] = weft::join([n] { return fib_weft(n - 2); }, [n] { return fib_weft(n - 1); });
  return a + b;
}

void weft_variant(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  weft::runtime& rt = bench::weft_runtime(static_cast<int>(state.range(1)));
  rt.reset_stats();
  long r = 0;
  for (auto _ : state) r = rt.run([n] { return fib_weft(n); });
  bench::set_weft_stats(state, rt);
  finish(state, n, r);
}

// The same recursion as C++20 coroutines: when_all runs fib(n-2) inline and
// offers fib(n-1); a frame per call from the per-worker task cache.
weft::task<long> fib_coro(int n) {
  if (n < 2) co_return n;
  auto [a, b] = co_await weft::when_all(fib_coro(n - 2), fib_coro(n - 1));
  co_return a + b;
}

void weft_coro_variant(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  weft::runtime& rt = bench::weft_runtime(static_cast<int>(state.range(1)));
  rt.reset_stats();
  long r = 0;
  for (auto _ : state) r = rt.run([n] { return weft::sync_wait(fib_coro(n)); });
  bench::set_weft_stats(state, rt);
  finish(state, n, r);
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

void tbb_variant(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  auto& arena = bench::tbb_arena(static_cast<int>(state.range(1)));
  long r = 0;
  for (auto _ : state) arena.execute([&] { r = fib_tbb(n); });
  finish(state, n, r);
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

void omp_variant(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const int workers = static_cast<int>(state.range(1));
  long r = 0;
  for (auto _ : state) {
#pragma omp parallel num_threads(workers)
#pragma omp single
    r = fib_omp(n);
  }
  finish(state, n, r);
}
#endif

#if WEFT_BENCH_HAVE_BOOST_FIBER
long fib_boost(int n) {
  if (n < 2) return n;
  long b = 0;
  boost::fibers::fiber child(std::allocator_arg, bench::boost_fiber_stack(), [&b, n] { b = fib_boost(n - 1); });
  const long a = fib_boost(n - 2);
  child.join();
  return a + b;
}

void boost_fiber_variant(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::string error;
  if (bench::boost_fiber_pool::get(static_cast<int>(state.range(1)), &error) == nullptr) {
    state.SkipWithError(error.c_str());
    return;
  }
  long r = 0;
  for (auto _ : state) r = fib_boost(n);
  finish(state, n, r);
}
#endif

void register_input(int n, bool with_fibers) {
  bench::add_serial("fib/serial", serial, {{"n", n}});
  bench::add_parallel("fib/weft", weft_variant, {{"n", n}});
  bench::add_parallel("fib/weft_coro", weft_coro_variant, {{"n", n}});
#if WEFT_BENCH_HAVE_TBB
  bench::add_parallel("fib/tbb", tbb_variant, {{"n", n}});
#endif
#if WEFT_BENCH_HAVE_OPENMP
  bench::add_parallel("fib/omp", omp_variant, {{"n", n}});
#endif
#if WEFT_BENCH_HAVE_BOOST_FIBER
  if (with_fibers) bench::add_parallel("fib/boost_fiber", boost_fiber_variant, {{"n", n}});
#endif
  (void)with_fibers;
}

}  // namespace

int main(int argc, char** argv) {
  register_input(30, false);
  register_input(25, true);
  return bench::main(argc, argv);
}
