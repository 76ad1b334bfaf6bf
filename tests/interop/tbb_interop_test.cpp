// SPDX-License-Identifier: MIT
// weft and oneTBB in one process: tbb::parallel_for and tbb::task_group
// bodies that call weft, and weft tasks that call tbb::parallel_for,
// tbb::parallel_reduce and tbb::task_group. Every result is checked; the
// watchdog turns a deadlock into a failure.
//
// Both pools run at once and oversubscribe the cores (TBB's threads next to
// up to 8 weft workers): correctness must not depend on each thread having a
// core. A weft worker that calls TBB joins TBB's arena and blocks in TBB until
// the TBB call is done (it runs TBB tasks meanwhile); a TBB thread that calls
// weft blocks in weft. Only the patterns that docs/guide.md allows are
// tested: no weft call is made from a TBB body that a weft worker may run
// (the weft task's fiber could resume on another thread with TBB's frames on
// its stack).
#include <gtest/gtest.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include <weft/weft.hpp>

#include "worker_count.hpp"

namespace {

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

std::int64_t tbb_sum(std::int64_t n) {
  return tbb::parallel_reduce(
      tbb::blocked_range<std::int64_t>(0, n), std::int64_t{0},
      [](const tbb::blocked_range<std::int64_t>& r, std::int64_t acc) {
        for (std::int64_t i = r.begin(); i != r.end(); ++i) acc += i;
        return acc;
      },
      std::plus<>{});
}

class TbbCallsWeft : public weft_test::WorkerCount {};

TEST_P(TbbCallsWeft, ParallelForBodiesRunInARuntime) {
  // TBB's threads are outside weft: their calls run in rt and block them.
  constexpr int outer = 32;
  for (int round = 0; round < k_rounds; ++round) {
    std::vector<int> errors(outer, -1);
    tbb::parallel_for(
        0, outer, [&](int i) { errors[static_cast<std::size_t>(i)] = rt.run([i] { return weft_work(5000 + i); }); });
    for (int i = 0; i < outer; ++i) ASSERT_EQ(errors[static_cast<std::size_t>(i)], 0) << "iteration " << i;
  }
}

TEST_P(TbbCallsWeft, TaskGroupBodiesJoin) {
  tbb::task_group g;
  std::atomic<std::int64_t> total{0};
  for (int round = 0; round < k_rounds; ++round) {
    for (int k = 0; k < 16; ++k) {
      g.run([&, k] {
        auto [a, b] = rt.run(
            [k] { return weft::join([k] { return static_cast<std::int64_t>(k); }, [] { return weft_work(2000); }); });
        total.fetch_add(b == 0 ? a : -1000);
      });
    }
  }
  g.wait();
  EXPECT_EQ(total.load(), k_rounds * expected_sum(16));
}

WEFT_INSTANTIATE_WORKER_COUNTS(TbbCallsWeft);

TEST(TbbCallsWeftDefault, ParallelForBodiesUseDefaultRuntime) {
  std::atomic<int> errors{0};
  tbb::parallel_for(0, 16 * k_rounds, [&](int i) { errors.fetch_add(weft_work(3000 + i)); });
  EXPECT_EQ(errors.load(), 0);
}

class WeftCallsTbb : public weft_test::WorkerCount {};

TEST_P(WeftCallsTbb, TasksRunParallelReduce) {
  // Every weft task calls TBB: the worker joins TBB's arena and works there
  // until its TBB call is done.
  constexpr int tasks = 24;
  for (int round = 0; round < k_rounds; ++round) {
    std::vector<std::int64_t> sums(tasks, -1);
    rt.run([&] { weft::parallelize(tasks, [&](int t) { sums[static_cast<std::size_t>(t)] = tbb_sum(10'000 + t); }); });
    for (int t = 0; t < tasks; ++t) ASSERT_EQ(sums[static_cast<std::size_t>(t)], expected_sum(10'000 + t)) << t;
  }
}

TEST_P(WeftCallsTbb, JoinsAndGroupsRunTbbTaskGroupsAndLoops) {
  std::atomic<std::int64_t> total{0};
  rt.run([&] {
    weft::task_group g;
    for (int k = 0; k < 8 * k_rounds; ++k) {
      g.spawn([&] {
        weft::join(
            [&] {
              tbb::task_group tg;
              for (int j = 0; j < 4; ++j) tg.run([&] { total.fetch_add(1); });
              tg.wait();
            },
            [&] {
              std::vector<int> v(1000, 0);
              tbb::parallel_for(tbb::blocked_range<std::size_t>(0, v.size()),
                                [&](const tbb::blocked_range<std::size_t>& r) {
                                  for (std::size_t i = r.begin(); i != r.end(); ++i) v[i] = 1;
                                });
              std::int64_t s = 0;
              for (int x : v) s += x;
              total.fetch_add(s);
            });
      });
    }
    g.wait();
  });
  EXPECT_EQ(total.load(), 8 * k_rounds * (4 + 1000));
}

TEST_P(WeftCallsTbb, TasksUseALimitedArena) {
  // A TBB arena sized to leave room for weft's workers, as docs/guide.md
  // suggests when both pools are busy at once.
  tbb::task_arena arena(2);
  constexpr int tasks = 8 * k_rounds;
  std::vector<std::int64_t> sums(tasks, -1);
  rt.run([&] {
    weft::parallelize(
        tasks, [&](int t) { sums[static_cast<std::size_t>(t)] = arena.execute([&] { return tbb_sum(5000 + t); }); });
  });
  for (int t = 0; t < tasks; ++t) EXPECT_EQ(sums[static_cast<std::size_t>(t)], expected_sum(5000 + t)) << t;
}

WEFT_INSTANTIATE_WORKER_COUNTS(WeftCallsTbb);

}  // namespace
