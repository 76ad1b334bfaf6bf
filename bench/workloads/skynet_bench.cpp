// SPDX-License-Identifier: MIT
// skynet: every node spawns 10 children and joins them; the 10^depth leaves
// return their id, and the root returns the sum of the ids. Isolates wide
// fan-out and a join of 10 children. Every variant spawns all 10 children of a
// node as tasks (none runs inline), as in the original benchmark.
//
// Inputs: depth 6 (1 000 000 leaves, 1 111 110 spawns; serial, weft, oneTBB,
// OpenMP) and depth 5 (the same plus Boost.Fiber, which needs seconds for
// depth 6).
#include <array>
#include <string>

#include "peers.hpp"

#if WEFT_BENCH_HAVE_TBB
#include <tbb/task_group.h>
#endif

namespace {

constexpr int k_fanout = 10;

long leaves(int depth) {
  long n = 1;
  for (int i = 0; i < depth; ++i) n *= k_fanout;
  return n;
}

void finish(benchmark::State& state, int depth, long result) {
  const long n = leaves(depth);
  const long expected = n * (n - 1) / 2;
  bench::check(state, result == expected,
               "wrong result: " + std::to_string(result) + ", expected " + std::to_string(expected));
  double spawns = 0;
  for (long level = k_fanout; level <= n; level *= k_fanout) spawns += static_cast<double>(level);
  bench::set_tasks(state, spawns);
}

// The subtree of `size` leaves whose first leaf id is `first`.
long skynet_serial(long first, long size) {
  if (size == 1) return first;
  const long step = size / k_fanout;
  long sum = 0;
  for (int i = 0; i < k_fanout; ++i) sum += skynet_serial(first + i * step, step);
  return sum;
}

void serial(benchmark::State& state) {
  const int depth = static_cast<int>(state.range(0));
  long size = leaves(depth);
  long r = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(size);
    r = skynet_serial(0, size);
    benchmark::DoNotOptimize(r);
  }
  finish(state, depth, r);
}

long skynet_weft(long first, long size) {
  if (size == 1) return first;
  const long step = size / k_fanout;
  std::array<long, k_fanout> part{};
  weft::task_group g;
  for (int i = 0; i < k_fanout; ++i) {
    g.spawn([&part, i, first, step] { part[i] = skynet_weft(first + i * step, step); });
  }
  g.wait();
  long sum = 0;
  for (long p : part) sum += p;
  return sum;
}

void weft_variant(benchmark::State& state) {
  const int depth = static_cast<int>(state.range(0));
  weft::runtime& rt = bench::weft_runtime(static_cast<int>(state.range(1)));
  const long size = leaves(depth);
  rt.reset_stats();
  long r = 0;
  for (auto _ : state) r = rt.run([size] { return skynet_weft(0, size); });
  bench::set_weft_stats(state, rt);
  finish(state, depth, r);
}

#if WEFT_BENCH_HAVE_TBB
long skynet_tbb(long first, long size) {
  if (size == 1) return first;
  const long step = size / k_fanout;
  std::array<long, k_fanout> part{};
  tbb::task_group g;
  for (int i = 0; i < k_fanout; ++i) {
    g.run([&part, i, first, step] { part[i] = skynet_tbb(first + i * step, step); });
  }
  g.wait();
  long sum = 0;
  for (long p : part) sum += p;
  return sum;
}

void tbb_variant(benchmark::State& state) {
  const int depth = static_cast<int>(state.range(0));
  auto& arena = bench::tbb_arena(static_cast<int>(state.range(1)));
  const long size = leaves(depth);
  long r = 0;
  for (auto _ : state) arena.execute([&] { r = skynet_tbb(0, size); });
  finish(state, depth, r);
}
#endif

#if WEFT_BENCH_HAVE_OPENMP
long skynet_omp(long first, long size) {
  if (size == 1) return first;
  const long step = size / k_fanout;
  std::array<long, k_fanout> part{};
  for (int i = 0; i < k_fanout; ++i) {
#pragma omp task shared(part) firstprivate(i, first, step) untied
    part[i] = skynet_omp(first + i * step, step);
  }
#pragma omp taskwait
  long sum = 0;
  for (long p : part) sum += p;
  return sum;
}

void omp_variant(benchmark::State& state) {
  const int depth = static_cast<int>(state.range(0));
  const int workers = static_cast<int>(state.range(1));
  const long size = leaves(depth);
  long r = 0;
  for (auto _ : state) {
#pragma omp parallel num_threads(workers)
#pragma omp single
    r = skynet_omp(0, size);
  }
  finish(state, depth, r);
}
#endif

#if WEFT_BENCH_HAVE_BOOST_FIBER
long skynet_boost(long first, long size) {
  if (size == 1) return first;
  const long step = size / k_fanout;
  std::array<long, k_fanout> part{};
  std::array<boost::fibers::fiber, k_fanout> children;
  for (int i = 0; i < k_fanout; ++i) {
    children[i] = boost::fibers::fiber(std::allocator_arg, bench::boost_fiber_stack(),
                                       [&part, i, first, step] { part[i] = skynet_boost(first + i * step, step); });
  }
  for (auto& child : children) child.join();
  long sum = 0;
  for (long p : part) sum += p;
  return sum;
}

void boost_fiber_variant(benchmark::State& state) {
  const int depth = static_cast<int>(state.range(0));
  std::string error;
  if (bench::boost_fiber_pool::get(static_cast<int>(state.range(1)), &error) == nullptr) {
    state.SkipWithError(error.c_str());
    return;
  }
  const long size = leaves(depth);
  long r = 0;
  for (auto _ : state) r = skynet_boost(0, size);
  finish(state, depth, r);
}
#endif

void register_input(int depth, bool with_fibers) {
  bench::add_serial("skynet/serial", serial, {{"depth", depth}});
  bench::add_parallel("skynet/weft", weft_variant, {{"depth", depth}});
#if WEFT_BENCH_HAVE_TBB
  bench::add_parallel("skynet/tbb", tbb_variant, {{"depth", depth}});
#endif
#if WEFT_BENCH_HAVE_OPENMP
  bench::add_parallel("skynet/omp", omp_variant, {{"depth", depth}});
#endif
#if WEFT_BENCH_HAVE_BOOST_FIBER
  if (with_fibers) bench::add_parallel("skynet/boost_fiber", boost_fiber_variant, {{"depth", depth}});
#endif
  (void)with_fibers;
}

}  // namespace

int main(int argc, char** argv) {
  register_input(6, false);
  register_input(5, true);
  return bench::main(argc, argv);
}
