// SPDX-License-Identifier: MIT
// main_loops: parallel loops called from plain code (the benchmark thread,
// outside any runtime) again and again, the way a time-stepping program
// calls them: 10 000 calls over 1 000 light items, 1 000 calls over 100 000,
// an empty round trip (parallelize(num_workers) items that do nothing), and
// a few coarse items per call (coarse_items).
// weft runs on its default runtime (WEFT_NUM_WORKERS = the worker count),
// oneTBB is capped with a global_control, OpenMP uses num_threads(k); see
// bench/support/from_main.hpp. Items: x[i] = x[i] * a + b (checked).
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

#include "affine.hpp"
#include "from_main.hpp"
#include "peers.hpp"

#if WEFT_BENCH_HAVE_TBB
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#endif

namespace {

void weft_loops(benchmark::State& state);

bench::affine_array& data(std::size_t n) {
  static bench::affine_array small(1000);
  static bench::affine_array large(100'000);
  return n == 1000 ? small : large;
}

struct input {
  std::int64_t calls;
  std::size_t items;
  bench::affine_array& x;
  explicit input(benchmark::State& state)
      : calls(state.range(0)), items(static_cast<std::size_t>(state.range(1))), x(data(items)) {}
  void finish(benchmark::State& state) {
    x.end(state, state.iterations() * calls);
    bench::set_tasks(state, static_cast<double>(calls) * static_cast<double>(items));
  }
};

void serial(benchmark::State& state) {
  input in(state);
  double* p = in.x.data();
  const double a = in.x.a();
  const double b = in.x.b();
  in.x.begin();
  for (auto _ : state) {
    for (std::int64_t c = 0; c < in.calls; ++c) {
      for (std::size_t i = 0; i < in.items; ++i) p[i] = p[i] * a + b;
      benchmark::ClobberMemory();
    }
  }
  in.finish(state);
}

void weft_variant(benchmark::State& state) {
  if (!bench::default_runtime_of(state, static_cast<int>(state.range(2)))) return;
  weft_loops(state);
}

// The same with WEFT_CALLER_POLICY=hand_over: the calling thread hands each
// call to the workers and waits (the policy before callers took part).
void weft_hand_over_variant(benchmark::State& state) {
  ::setenv("WEFT_CALLER_POLICY", "hand_over", 1);
  if (!bench::default_runtime_of(state, static_cast<int>(state.range(2)))) return;
  weft_loops(state);
}

void weft_loops(benchmark::State& state) {
  input in(state);
  double* p = in.x.data();
  const double a = in.x.a();
  const double b = in.x.b();
  in.x.begin();
  weft::default_runtime().reset_stats();
  for (auto _ : state) {
    for (std::int64_t c = 0; c < in.calls; ++c) {
      weft::parallelize(in.items, [p, a, b](std::size_t i) { p[i] = p[i] * a + b; });
    }
  }
  bench::set_weft_stats(state, weft::default_runtime());
  in.finish(state);
}

#if WEFT_BENCH_HAVE_TBB
void tbb_variant(benchmark::State& state) {
  bench::tbb_threads(static_cast<int>(state.range(2)));
  input in(state);
  double* p = in.x.data();
  const double a = in.x.a();
  const double b = in.x.b();
  in.x.begin();
  for (auto _ : state) {
    for (std::int64_t c = 0; c < in.calls; ++c) {
      tbb::parallel_for(tbb::blocked_range<std::size_t>(0, in.items),
                        [p, a, b](const tbb::blocked_range<std::size_t>& r) {
                          for (std::size_t i = r.begin(); i < r.end(); ++i) p[i] = p[i] * a + b;
                        });
    }
  }
  in.finish(state);
}
#endif

#if WEFT_BENCH_HAVE_OPENMP
void omp_variant(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(2));
  input in(state);
  double* p = in.x.data();
  const double a = in.x.a();
  const double b = in.x.b();
  const std::size_t n = in.items;
  in.x.begin();
  for (auto _ : state) {
    for (std::int64_t c = 0; c < in.calls; ++c) {
#pragma omp parallel for schedule(static) num_threads(workers)
      for (std::size_t i = 0; i < n; ++i) p[i] = p[i] * a + b;
    }
  }
  in.finish(state);
}
#endif

// ---- the empty round trip: k items that do nothing, k = workers ----

constexpr int k_round_trips = 10'000;

void round_trip_serial(benchmark::State& state) {
  for (auto _ : state) {
    for (int c = 0; c < k_round_trips; ++c) benchmark::ClobberMemory();
  }
  bench::set_tasks(state, k_round_trips);
}

void round_trip_weft(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  if (!bench::default_runtime_of(state, workers)) return;
  weft::default_runtime().reset_stats();
  for (auto _ : state) {
    for (int c = 0; c < k_round_trips; ++c) weft::parallelize(workers, [](int) { benchmark::ClobberMemory(); });
  }
  bench::set_weft_stats(state, weft::default_runtime());
  bench::set_tasks(state, k_round_trips);
}

#if WEFT_BENCH_HAVE_TBB
void round_trip_tbb(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  bench::tbb_threads(workers);
  for (auto _ : state) {
    for (int c = 0; c < k_round_trips; ++c) {
      tbb::parallel_for(0, workers, [](int) { benchmark::ClobberMemory(); });
    }
  }
  bench::set_tasks(state, k_round_trips);
}
#endif

#if WEFT_BENCH_HAVE_OPENMP
void round_trip_omp(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  for (auto _ : state) {
    for (int c = 0; c < k_round_trips; ++c) {
#pragma omp parallel for schedule(static) num_threads(workers)
      for (int i = 0; i < workers; ++i) benchmark::ClobberMemory();
    }
  }
  bench::set_tasks(state, k_round_trips);
}
#endif

// ---- a few coarse items ----
//
// 100 calls of a loop of `items` items (2 or 8) of about 65 µs each (a chain
// of dependent multiply-adds), as a program hands a few big jobs to the
// cores: one item per worker, or a few. Each item writes its result (checked
// against the serial loop's).

constexpr int k_coarse_calls = 100;
constexpr int k_coarse_steps = 40'000;

[[gnu::noinline]] double coarse_item(int i) {  // one call per item in every variant
  double x = 1.0 + i;
  for (int s = 0; s < k_coarse_steps; ++s) x = x * 0.999999 + 1e-6;
  return x;
}

struct coarse_input {
  int items;
  std::vector<double> out;
  explicit coarse_input(benchmark::State& state)
      : items(static_cast<int>(state.range(0))), out(static_cast<std::size_t>(items), 0.0) {}
  void finish(benchmark::State& state) {
    bool ok = true;
    for (int i = 0; i < items; ++i) ok = ok && out[static_cast<std::size_t>(i)] == coarse_item(i);
    bench::check(state, ok, "wrong result of a coarse item");
    bench::set_tasks(state, static_cast<double>(k_coarse_calls) * items);
  }
};

void coarse_serial(benchmark::State& state) {
  coarse_input in(state);
  for (auto _ : state) {
    for (int c = 0; c < k_coarse_calls; ++c) {
      for (int i = 0; i < in.items; ++i) in.out[static_cast<std::size_t>(i)] = coarse_item(i);
      benchmark::ClobberMemory();
    }
  }
  in.finish(state);
}

void coarse_weft(benchmark::State& state) {
  if (!bench::default_runtime_of(state, static_cast<int>(state.range(1)))) return;
  coarse_input in(state);
  weft::default_runtime().reset_stats();
  for (auto _ : state) {
    for (int c = 0; c < k_coarse_calls; ++c) {
      weft::parallelize(in.items, [&in](int i) { in.out[static_cast<std::size_t>(i)] = coarse_item(i); });
    }
  }
  bench::set_weft_stats(state, weft::default_runtime());
  in.finish(state);
}

#if WEFT_BENCH_HAVE_TBB
void coarse_tbb(benchmark::State& state) {
  bench::tbb_threads(static_cast<int>(state.range(1)));
  coarse_input in(state);
  for (auto _ : state) {
    for (int c = 0; c < k_coarse_calls; ++c) {
      tbb::parallel_for(0, in.items, [&in](int i) { in.out[static_cast<std::size_t>(i)] = coarse_item(i); });
    }
  }
  in.finish(state);
}
#endif

#if WEFT_BENCH_HAVE_OPENMP
void coarse_omp(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(1));
  coarse_input in(state);
  const int items = in.items;
  double* out = in.out.data();
  for (auto _ : state) {
    for (int c = 0; c < k_coarse_calls; ++c) {
#pragma omp parallel for schedule(static) num_threads(workers)
      for (int i = 0; i < items; ++i) out[i] = coarse_item(i);
    }
  }
  in.finish(state);
}
#endif

// ---- 8 threads calling at once ----
//
// 8 plain threads each make 1000 calls over 1 000 light items of their own,
// at once (weft), or taking turns on a mutex (weft_turns): calls from several
// threads at once must be no slower than the same calls made one at a time.

constexpr int k_callers = 8;
constexpr int k_caller_calls = 1000;

void callers(benchmark::State& state, bool turns) {
  if (!bench::default_runtime_of(state, static_cast<int>(state.range(0)))) return;
  std::vector<std::vector<double>> data(k_callers, std::vector<double>(1000, 1.0));
  std::mutex turn;
  for (auto _ : state) {
    std::vector<std::thread> threads;
    for (int t = 0; t < k_callers; ++t) {
      threads.emplace_back([&, t] {
        double* p = data[static_cast<std::size_t>(t)].data();
        for (int c = 0; c < k_caller_calls; ++c) {
          std::unique_lock<std::mutex> lock(turn, std::defer_lock);
          if (turns) lock.lock();
          weft::parallelize(std::size_t{1000}, [p](std::size_t i) { p[i] = p[i] * 0.5 + 0.5; });
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  bench::set_tasks(state, static_cast<double>(k_callers) * k_caller_calls * 1000);
}
void callers_weft(benchmark::State& state) { callers(state, false); }
void callers_weft_turns(benchmark::State& state) { callers(state, true); }

}  // namespace

int main(int argc, char** argv) {
  for (auto [calls, items] : {std::pair<std::int64_t, std::int64_t>{10'000, 1000}, {1000, 100'000}}) {
    const std::initializer_list<bench::param> p{{"calls", calls}, {"items", items}};
    bench::add_serial("main_loops/serial", serial, p);
    bench::add_parallel("main_loops/weft", weft_variant, p);
    bench::add_parallel("main_loops/weft_hand_over", weft_hand_over_variant, p);
#if WEFT_BENCH_HAVE_TBB
    bench::add_parallel("main_loops/tbb", tbb_variant, p);
#endif
#if WEFT_BENCH_HAVE_OPENMP
    bench::add_parallel("main_loops/omp", omp_variant, p);
#endif
  }
  bench::add_serial("round_trip/serial", round_trip_serial);
  bench::add_parallel("round_trip/weft", round_trip_weft);
#if WEFT_BENCH_HAVE_TBB
  bench::add_parallel("round_trip/tbb", round_trip_tbb);
#endif
#if WEFT_BENCH_HAVE_OPENMP
  bench::add_parallel("round_trip/omp", round_trip_omp);
#endif
  for (const std::int64_t items : {2, 8}) {
    const std::initializer_list<bench::param> p{{"items", items}};
    bench::add_serial("coarse_items/serial", coarse_serial, p);
    bench::add_parallel("coarse_items/weft", coarse_weft, p);
#if WEFT_BENCH_HAVE_TBB
    bench::add_parallel("coarse_items/tbb", coarse_tbb, p);
#endif
#if WEFT_BENCH_HAVE_OPENMP
    bench::add_parallel("coarse_items/omp", coarse_omp, p);
#endif
  }
  bench::add_parallel("callers8/weft", callers_weft);
  bench::add_parallel("callers8/weft_turns", callers_weft_turns);
  return bench::main(argc, argv);
}
