// SPDX-License-Identifier: MIT
// wake_latency: the cost of reaching a runtime from an outside thread.
//   wake_first_item  weft only: time from an outside thread's rt.run(f) to
//                    the start of f on a worker, the runtime parked (idle for
//                    3 ms before each call, so every worker went to sleep;
//                    counter "parks" > 0 confirms it). oneTBB and OpenMP run
//                    the first item on the calling thread, so they have no
//                    such latency to compare.
//   round_trip_parked an empty parallel loop of `workers` items from an
//                    outside thread, the runtime parked: rt.run(parallelize),
//                    tbb arena.execute(parallel_for), omp parallel for; the
//                    time until the caller continues.
//   round_trip       the same, back to back (workers still spinning).
// The parked variants time each call alone (manual timing) and sleep 3 ms
// between calls, outside the timing.
#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "peers.hpp"

#if WEFT_BENCH_HAVE_TBB
#include <tbb/parallel_for.h>
#endif

namespace {

using clock_type = std::chrono::steady_clock;
constexpr auto k_idle = std::chrono::milliseconds(3);
constexpr int k_parked_iterations = 100;

void first_item(benchmark::State& state) {
  weft::runtime& rt = bench::weft_runtime(static_cast<int>(state.range(0)));
  rt.reset_stats();
  for (auto _ : state) {
    std::this_thread::sleep_for(k_idle);
    const auto t0 = clock_type::now();
    clock_type::time_point t1;
    rt.run([&t1] { t1 = clock_type::now(); });
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
  }
  const weft::worker_stats s = rt.stats().total;
  state.counters["parks"] = benchmark::Counter(static_cast<double>(s.parks) / static_cast<double>(state.iterations()));
}

// Runs one round trip; parked: with idle time before it, timed alone.
template <class F>
void round_trips(benchmark::State& state, bool parked, F&& call) {
  for (auto _ : state) {
    if (parked) {
      std::this_thread::sleep_for(k_idle);
      const auto t0 = clock_type::now();
      call();
      state.SetIterationTime(std::chrono::duration<double>(clock_type::now() - t0).count());
    } else {
      call();
    }
  }
}

void weft_variant(benchmark::State& state, bool parked) {
  const int workers = static_cast<int>(state.range(0));
  weft::runtime& rt = bench::weft_runtime(workers);
  std::atomic<int> items{0};
  round_trips(state, parked, [&] {
    rt.run([&] { weft::parallelize(workers, [&](int) { items.fetch_add(1, std::memory_order_relaxed); }); });
  });
  bench::check(state, items.load() == workers * state.iterations(), "wrong item count");
}
void weft_parked(benchmark::State& state) { weft_variant(state, true); }
void weft_hot(benchmark::State& state) { weft_variant(state, false); }

#if WEFT_BENCH_HAVE_TBB
void tbb_variant(benchmark::State& state, bool parked) {
  const int workers = static_cast<int>(state.range(0));
  auto& arena = bench::tbb_arena(workers);
  std::atomic<int> items{0};
  round_trips(state, parked, [&] {
    arena.execute([&] { tbb::parallel_for(0, workers, [&](int) { items.fetch_add(1, std::memory_order_relaxed); }); });
  });
  bench::check(state, items.load() == workers * state.iterations(), "wrong item count");
}
void tbb_parked(benchmark::State& state) { tbb_variant(state, true); }
void tbb_hot(benchmark::State& state) { tbb_variant(state, false); }
#endif

#if WEFT_BENCH_HAVE_OPENMP
void omp_variant(benchmark::State& state, bool parked) {
  const int workers = static_cast<int>(state.range(0));
  std::atomic<int> items{0};
  round_trips(state, parked, [&] {
#pragma omp parallel for num_threads(workers)
    for (int i = 0; i < workers; ++i) items.fetch_add(1, std::memory_order_relaxed);
  });
  bench::check(state, items.load() == workers * state.iterations(), "wrong item count");
}
void omp_parked(benchmark::State& state) { omp_variant(state, true); }
void omp_hot(benchmark::State& state) { omp_variant(state, false); }
#endif

void add_parked(const std::string& name, bench::function fn) {
  bench::add_parallel(name, fn, {}, bench::worker_counts(), bench::timing::manual)
      ->Iterations(k_parked_iterations)
      ->Unit(benchmark::kMicrosecond);
}

}  // namespace

int main(int argc, char** argv) {
  add_parked("wake_first_item/weft", first_item);
  add_parked("round_trip_parked/weft", weft_parked);
  bench::add_parallel("round_trip/weft", weft_hot)->Unit(benchmark::kMicrosecond);
#if WEFT_BENCH_HAVE_TBB
  add_parked("round_trip_parked/tbb", tbb_parked);
  bench::add_parallel("round_trip/tbb", tbb_hot)->Unit(benchmark::kMicrosecond);
#endif
#if WEFT_BENCH_HAVE_OPENMP
  add_parked("round_trip_parked/omp", omp_parked);
  bench::add_parallel("round_trip/omp", omp_hot)->Unit(benchmark::kMicrosecond);
#endif
  return bench::main(argc, argv);
}
