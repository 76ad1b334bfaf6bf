// SPDX-License-Identifier: MIT
// The scheduler counters add up: spawns and tasks run match what a known
// workload creates, whatever the worker count and the steals; one worker
// never steals; the time split covers the time that passed.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <weft/weft.hpp>

#include "worker_count.hpp"

namespace {

// fib(n) by join: one spawn per call with n >= 2.
long fib(int n) {
  if (n < 2) return n;
  auto [a, b] = weft::join([n] { return fib(n - 2); }, [n] { return fib(n - 1); });
  return a + b;
}

// Calls of fib(n) with n >= 2, i.e. joins, i.e. spawns.
long joins_of(int n) { return n < 2 ? 0 : 1 + joins_of(n - 1) + joins_of(n - 2); }

class CountersTest : public weft_test::WorkerCount {};

TEST_P(CountersTest, SpawnsAndTasksMatchTheWorkload) {
  // A fresh runtime: no reset_stats(), which is exact only while the runtime
  // is idle, and its workers may still be looking for work right after the
  // start (a steal attempt counted before a reset, its outcome after).
  ASSERT_EQ(rt.run([] { return fib(20); }), 6765);
  const weft::stats s = rt.stats();
  EXPECT_EQ(s.total.spawns, static_cast<std::uint64_t>(joins_of(20)));
  // Every spawned task runs once (popped back or stolen), plus the call
  // itself: run by the calling thread on a lent slot, or handed over through
  // the injection queue when no worker was parked.
  EXPECT_EQ(s.total.tasks_run, static_cast<std::uint64_t>(joins_of(20)) + 1);
  EXPECT_EQ(s.total.injected + s.total.lent, 1u);
  EXPECT_GE(s.total.steal_attempts, s.total.steals + s.total.failed_steals);
  EXPECT_LE(s.total.steals, s.total.spawns);
}

TEST_P(CountersTest, TaskGroupSpawnsAreCounted) {
  rt.reset_stats();
  rt.run([] {
    weft::task_group g;
    for (int i = 0; i < 1000; ++i) g.spawn([] {});
    g.wait();
  });
  const weft::stats s = rt.stats();
  EXPECT_EQ(s.total.spawns, 1000u);
  EXPECT_EQ(s.total.tasks_run, 1001u);
}

TEST_P(CountersTest, OneWorkerNeverSteals) {
  if (workers() != 1) GTEST_SKIP() << "one worker only";
  rt.reset_stats();
  rt.run([] {
    fib(18);
    weft::parallelize(100000, [](int) {});
  });
  const weft::stats s = rt.stats();
  EXPECT_EQ(s.total.steals, 0u);
  EXPECT_EQ(s.total.failed_steals, 0u);
  EXPECT_EQ(s.total.steal_attempts, 0u);
}

TEST_P(CountersTest, PerWorkerCountersSumToTotal) {
  rt.reset_stats();
  rt.run([] { fib(18); });
  const weft::stats s = rt.stats();
  ASSERT_EQ(s.workers.size(), static_cast<std::size_t>(workers()));
  weft::worker_stats sum;
  for (const auto& w : s.workers) sum += w;
  EXPECT_EQ(sum.spawns, s.total.spawns);
  EXPECT_EQ(sum.tasks_run, s.total.tasks_run);
  EXPECT_EQ(sum.steals, s.total.steals);
  EXPECT_EQ(sum.parks, s.total.parks);
}

// busy + searching + parked of each worker covers the time since the reset
// (each worker is always in exactly one of them), and idle workers park.
TEST_P(CountersTest, TimeSplitCoversTheElapsedTime) {
  rt.reset_stats();
  const auto t0 = std::chrono::steady_clock::now();
  rt.run([] { fib(20); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // idle: everyone parks
  const weft::stats s = rt.stats();
  const auto elapsed =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
  for (std::size_t i = 0; i < s.workers.size(); ++i) {
    const auto& w = s.workers[i];
    const std::uint64_t covered = w.busy_ns + w.search_ns + w.parked_ns;
    SCOPED_TRACE("worker " + std::to_string(i));
    // Clocks differ by the calibration of the time-stamp counter: allow 10%.
    EXPECT_LE(covered, static_cast<std::uint64_t>(elapsed) * 11 / 10 + 1'000'000);
    EXPECT_GE(covered, static_cast<std::uint64_t>(elapsed) * 9 / 10 - 1'000'000);
    EXPECT_GT(w.parked_ns, 0u) << "an idle worker should have parked";
  }
}

TEST_P(CountersTest, SummaryHasARowPerWorkerAndATotal) {
  rt.run([] { fib(15); });
  const std::string text = rt.stats().summary();
  for (int i = 0; i < workers(); ++i) {
    // The row's start built by appends: GCC 12 warns (-Wrestrict, a false
    // positive) on "\n" + std::to_string(i) + " ".
    std::string row = "\n";
    row += std::to_string(i);
    row += ' ';
    EXPECT_NE(text.find(row), std::string::npos) << text;
  }
  EXPECT_NE(text.find("total"), std::string::npos) << text;
}

// reset_stats() during work is not exact, but no worker's time can exceed
// the time the test has run: a reset between a worker's clock read and its
// activity's start (which the reset moves later) made the interval's length
// wrap around, and busy_ns read about 7 * 10^6 s until the next reset.
TEST_P(CountersTest, ResetDuringWorkNeverWrapsATime) {
  const auto start = std::chrono::steady_clock::now();
  std::atomic<bool> stop{false};
  std::thread work([&] {
    while (!stop.load(std::memory_order_relaxed)) rt.run([] { fib(16); });
  });
  std::uint64_t worst = 0;  // the most a worker's time exceeded the test's, ns
  // 300 ms of resets and reads.
  for (auto now = start; now - start < std::chrono::milliseconds(300); now = std::chrono::steady_clock::now()) {
    rt.reset_stats();
    const weft::stats s = rt.stats();
    const auto ran = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count());
    for (const auto& w : s.workers) {
      const std::uint64_t covered = w.busy_ns + w.search_ns + w.parked_ns;
      worst = std::max(worst, covered > ran ? covered - ran : 0);
    }
  }
  stop.store(true, std::memory_order_relaxed);
  work.join();
  // A second above the test's time: beyond any clock calibration error, far
  // below a wrapped length.
  EXPECT_LT(worst, std::uint64_t{1'000'000'000}) << "a time beyond the test's (ns)";
}

// No counter of a worker, its times included, is smaller in a snapshot than
// in an earlier one while work goes on (no reset between). A snapshot could
// read a worker's finished intervals before the worker added the one it
// ended, and the new activity after: that interval was lost, and busy_ns,
// search_ns or parked_ns went back by up to milliseconds (in 5 of 6 runs of
// a hostile pass).
TEST_P(CountersTest, NoCounterGoesBackBetweenSnapshots) {
  std::atomic<bool> stop{false};
  std::thread work([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      rt.run([] { fib(14); });
      std::this_thread::sleep_for(std::chrono::microseconds(200));  // the workers search, then park
    }
  });
  std::vector<weft::worker_stats> before = rt.stats().workers;
  std::string went_back;
  const auto start = std::chrono::steady_clock::now();
  while (went_back.empty() && std::chrono::steady_clock::now() - start < std::chrono::milliseconds(500)) {
    const std::vector<weft::worker_stats> now = rt.stats().workers;
    for (std::size_t i = 0; i < now.size() && went_back.empty(); ++i) {
      const weft::worker_stats& a = before[i];
      const weft::worker_stats& b = now[i];
      auto check = [&](const char* name, std::uint64_t x, std::uint64_t y) {
        if (y < x && went_back.empty()) {
          went_back =
              "worker " + std::to_string(i) + ": " + name + " " + std::to_string(x) + " -> " + std::to_string(y);
        }
      };
      check("tasks_run", a.tasks_run, b.tasks_run);
      check("spawns", a.spawns, b.spawns);
      check("steals", a.steals, b.steals);
      check("steal_attempts", a.steal_attempts, b.steal_attempts);
      check("parks", a.parks, b.parks);
      check("fiber_switches", a.fiber_switches, b.fiber_switches);
      check("busy_ns", a.busy_ns, b.busy_ns);
      check("search_ns", a.search_ns, b.search_ns);
      check("parked_ns", a.parked_ns, b.parked_ns);
    }
    before = now;
  }
  stop.store(true, std::memory_order_relaxed);
  work.join();
  EXPECT_EQ(went_back, "") << "a counter went back between two snapshots";
}

// A reset lowers what the next snapshot shows, below what stats() returned
// before it (no counter goes back between snapshots, except across a reset).
TEST_P(CountersTest, AResetLowersTheNextSnapshot) {
  rt.run([] { fib(16); });
  const weft::stats before = rt.stats();
  EXPECT_GT(before.total.tasks_run, 0u);
  rt.reset_stats();
  const weft::stats after = rt.stats();  // idle: no task ran since the reset
  EXPECT_EQ(after.total.tasks_run, 0u);
  EXPECT_EQ(after.total.spawns, 0u);
  EXPECT_LT(after.total.busy_ns + after.total.search_ns, before.total.busy_ns + before.total.search_ns + 1);
}

WEFT_INSTANTIATE_WORKER_COUNTS(CountersTest);

}  // namespace
