// SPDX-License-Identifier: MIT
// weft and OpenMP in one process: weft called from inside OpenMP parallel
// regions (on the default runtime and on one shared runtime), OpenMP regions
// run inside weft tasks, and weft called from OpenMP tasks. Every result is
// checked; the watchdog turns a deadlock into a failure.
//
// The pools oversubscribe the cores on purpose (OpenMP teams of 2 to 4 threads
// next to up to 8 weft workers on a 2-core machine): correctness must not
// depend on each thread having a core. Only the patterns that docs/guide.md
// allows are tested; in particular no weft call is made on the thread that
// started an OpenMP region from inside a weft task (its fiber could resume on
// another worker thread in the middle of the region).
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include <weft/weft.hpp>

#include "worker_count.hpp"

namespace {

constexpr std::int64_t k_items = 20'000;
// Rounds of each pattern: enough for the pools to interleave in many ways.
constexpr int k_rounds = 50;

std::int64_t expected_sum(std::int64_t n) { return n * (n - 1) / 2; }

// A parallelize and a parallel_reduce over [0, n); returns the number of
// wrong results.
int weft_work(std::int64_t n) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(n), -1);
  weft::parallelize(n, [&](std::int64_t i) { v[static_cast<std::size_t>(i)] = i; });
  const std::int64_t sum = weft::parallel_reduce(
      std::int64_t{0}, n, std::int64_t{0}, [&](std::int64_t i) { return v[static_cast<std::size_t>(i)]; },
      std::plus<>{});
  return sum == expected_sum(n) ? 0 : 1;
}

TEST(OpenMPCallsWeft, ParallelRegionUsesDefaultRuntime) {
  // Each OpenMP thread is outside any weft runtime: its weft calls run in the
  // default runtime and block that OpenMP thread until they are done.
  std::atomic<int> errors{0};
  std::atomic<int> threads{0};
#pragma omp parallel num_threads(4)
  {
    threads.fetch_add(1);
    for (int round = 0; round < k_rounds; ++round) errors.fetch_add(weft_work(k_items));
  }
  EXPECT_EQ(threads.load(), 4);  // OpenMP gave the region its 4 threads
  EXPECT_EQ(errors.load(), 0);
}

class OpenMPCallsSharedRuntime : public weft_test::WorkerCount {};

TEST_P(OpenMPCallsSharedRuntime, EveryThreadRunsInOneRuntime) {
  // All OpenMP threads hand their work to one runtime of GetParam() workers.
  std::atomic<int> errors{0};
  std::atomic<int> on_worker{0};
#pragma omp parallel num_threads(4)
  {
    for (int round = 0; round < k_rounds; ++round) {
      errors.fetch_add(rt.run([] { return weft_work(k_items); }));
      on_worker.fetch_add(rt.run([] { return weft::on_worker() ? 1 : 0; }));
    }
  }
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(on_worker.load(), 4 * k_rounds);
}

WEFT_INSTANTIATE_WORKER_COUNTS(OpenMPCallsSharedRuntime);

class WeftRunsOpenMP : public weft_test::WorkerCount {};

TEST_P(WeftRunsOpenMP, ParallelForInsideTasks) {
  // Every task runs an OpenMP parallel loop with a reduction: each weft
  // worker that starts a region becomes the master of an OpenMP team of its
  // own (workers x 2 threads in all).
  constexpr int tasks = 16;
  constexpr int inner = 10'000;
  for (int round = 0; round < k_rounds; ++round) {
    std::vector<std::int64_t> sums(tasks, -1);
    std::atomic<int> team_sizes{0};
    rt.run([&] {
      weft::parallelize(tasks, [&](int t) {
        std::int64_t s = 0;
        int team = 0;
#pragma omp parallel for num_threads(2) reduction(+ : s) reduction(max : team)
        for (int j = 0; j < inner; ++j) {
          s += static_cast<std::int64_t>(t) * inner + j;
          team = omp_get_num_threads();
        }
        sums[static_cast<std::size_t>(t)] = s;
        team_sizes.fetch_add(team);
      });
    });
    for (int t = 0; t < tasks; ++t) {
      const std::int64_t expected = static_cast<std::int64_t>(t) * inner * inner + expected_sum(inner);
      ASSERT_EQ(sums[static_cast<std::size_t>(t)], expected) << "task " << t << ", round " << round;
    }
    EXPECT_GE(team_sizes.load(), tasks);  // one thread per team when libgomp is short of threads
  }
}

TEST_P(WeftRunsOpenMP, RegionsInSpawnedTasksAndJoins) {
  // OpenMP regions in both halves of joins and in a task_group, all at once.
  std::atomic<std::int64_t> total{0};
  auto region = [&](int base) {
    std::int64_t s = 0;
#pragma omp parallel for num_threads(2) reduction(+ : s)
    for (int j = 0; j < 1000; ++j) s += base + j;
    total.fetch_add(s);
  };
  rt.run([&] {
    for (int round = 0; round < k_rounds; ++round) {
      weft::task_group g;
      for (int k = 0; k < 8; ++k) {
        g.spawn([&, k] { weft::join([&] { region(k); }, [&] { region(-k); }); });
      }
      g.wait();
    }
  });
  // Sum over k of (1000k + S) + (-1000k + S), with S = 0 + ... + 999.
  EXPECT_EQ(total.load(), k_rounds * 8 * 2 * expected_sum(1000));
}

WEFT_INSTANTIATE_WORKER_COUNTS(WeftRunsOpenMP);

TEST(OpenMPTasksCallWeft, TasksJoinAndReduce) {
  // OpenMP tasks (run by the threads of one team) call weft: each call blocks
  // the OpenMP thread that runs the task, never a weft worker.
  weft::runtime rt{{.workers = 2}};
  constexpr int tasks = 12;
  std::vector<std::int64_t> results(tasks, -1);
#pragma omp parallel num_threads(3)
#pragma omp single
  {
    for (int t = 0; t < tasks; ++t) {
#pragma omp task firstprivate(t) shared(results, rt)
      {
        results[static_cast<std::size_t>(t)] = rt.run([t] {
          auto [a, b] = weft::join([t] { return weft_work(1000 + t); }, [t] { return static_cast<std::int64_t>(t); });
          return a == 0 ? b : -2;
        });
      }
    }
  }
  for (int t = 0; t < tasks; ++t) EXPECT_EQ(results[static_cast<std::size_t>(t)], t) << "task " << t;
}

}  // namespace
