// SPDX-License-Identifier: MIT
// steal: a join whose child is taken by the other of 2 workers. One iteration:
// the parent offers g, then runs f, which waits until g has started, which
// only a thief can make happen; then the parent joins g.
//   steal       g returns at once: push, steal, join of a finished (or just
//               finishing) child.
//   steal_wait  g runs for 2 us after it started: the parent reaches the join
//               first and must wait for it (weft's counter "suspensions" says
//               whether it suspended its fiber or waited without switching).
// Variants: weft::join, tbb::task_group (run + wait), OpenMP task + taskwait;
// all on 2 workers. f gives up after 1 s if g never starts (counter
// "not_stolen": should be 0).
#include <atomic>
#include <chrono>

#include "peers.hpp"

#if WEFT_BENCH_HAVE_TBB
#include <tbb/task_group.h>
#endif

namespace {

using clock_type = std::chrono::steady_clock;

struct round {
  std::atomic<bool> started{false};
  std::chrono::nanoseconds child_work;

  // f: wait until g started; true when it did.
  bool wait_for_thief() const {
    const auto limit = clock_type::now() + std::chrono::seconds(1);
    while (!started.load(std::memory_order_acquire)) {
      if (clock_type::now() > limit) return false;
    }
    return true;
  }
  // g
  void child() {
    started.store(true, std::memory_order_release);
    if (child_work.count() > 0) {
      const auto until = clock_type::now() + child_work;
      while (clock_type::now() < until) {
      }
    }
  }
};

std::chrono::nanoseconds child_work(const benchmark::State& state) { return std::chrono::nanoseconds(state.range(0)); }

void finish(benchmark::State& state, long not_stolen) {
  state.counters["not_stolen"] = benchmark::Counter(static_cast<double>(not_stolen));
}

void weft_variant(benchmark::State& state) {
  weft::runtime& rt = bench::weft_runtime(static_cast<int>(state.range(1)));
  rt.reset_stats();
  long not_stolen = 0;
  rt.run([&] {
    for (auto _ : state) {
      round r{{false}, child_work(state)};
      weft::join([&] { not_stolen += r.wait_for_thief() ? 0 : 1; }, [&] { r.child(); });
    }
  });
  bench::set_weft_stats(state, rt);
  finish(state, not_stolen);
}

#if WEFT_BENCH_HAVE_TBB
void tbb_variant(benchmark::State& state) {
  auto& arena = bench::tbb_arena(static_cast<int>(state.range(1)));
  long not_stolen = 0;
  arena.execute([&] {
    for (auto _ : state) {
      round r{{false}, child_work(state)};
      tbb::task_group g;
      g.run([&] { r.child(); });
      not_stolen += r.wait_for_thief() ? 0 : 1;
      g.wait();
    }
  });
  finish(state, not_stolen);
}
#endif

#if WEFT_BENCH_HAVE_OPENMP
void omp_variant(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(1));
  long not_stolen = 0;
#pragma omp parallel num_threads(workers)
#pragma omp single
  for (auto _ : state) {
    round r{{false}, child_work(state)};
#pragma omp task shared(r) untied
    r.child();
    not_stolen += r.wait_for_thief() ? 0 : 1;
#pragma omp taskwait
  }
  finish(state, not_stolen);
}
#endif

void register_kind(const char* workload, long work_ns) {
  const std::string w = workload;
  bench::add_parallel(w + "/weft", weft_variant, {{"child_ns", work_ns}}, {2})->Unit(benchmark::kNanosecond);
#if WEFT_BENCH_HAVE_TBB
  bench::add_parallel(w + "/tbb", tbb_variant, {{"child_ns", work_ns}}, {2})->Unit(benchmark::kNanosecond);
#endif
#if WEFT_BENCH_HAVE_OPENMP
  bench::add_parallel(w + "/omp", omp_variant, {{"child_ns", work_ns}}, {2})->Unit(benchmark::kNanosecond);
#endif
}

}  // namespace

int main(int argc, char** argv) {
  register_kind("steal", 0);
  register_kind("steal_wait", 2000);
  return bench::main(argc, argv);
}
