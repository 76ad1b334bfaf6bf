// SPDX-License-Identifier: MIT
// weft::config and WEFT_NUM_WORKERS: every bad value is a std::invalid_argument
// from the runtime's constructor that names the field (or the variable);
// boundary values work; nothing is left behind by a constructor that threw.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <weft/weft.hpp>

#include "expect_names.hpp"
#include "process_info.hpp"
#include "scoped_env.hpp"
#include "worker_count.hpp"

namespace {

using weft_test::expect_invalid_argument;

// Constructs a runtime from cfg and uses it once.
void construct(const weft::config& cfg) {
  weft::runtime rt{cfg};
  std::atomic<int> calls{0};
  rt.run([&] { weft::parallelize(100, [&](int) { calls.fetch_add(1); }); });
  ASSERT_EQ(calls.load(), 100);
}

// Constructs a runtime from cfg; expects it to fail naming `field` and to
// leave no thread behind.
void expect_rejected(const weft::config& cfg, std::string_view field) {
  const int threads = weft_test::thread_count();
  expect_invalid_argument([&] { construct(cfg); }, field);
  EXPECT_LE(weft_test::settled_thread_count_at_most(threads), threads)
      << "a constructor that threw left threads behind";
}

TEST(ConfigTest, NegativeWorkersRejected) {
  for (const int w : {-1, -5, INT_MIN}) {
    SCOPED_TRACE(w);
    expect_rejected(weft::config{.workers = w}, "workers");
  }
}

TEST(ConfigTest, TooManyWorkersRejected) {
  for (const int w : {weft::k_max_workers + 1, INT_MAX}) {
    SCOPED_TRACE(w);
    expect_rejected(weft::config{.workers = w}, "workers");
  }
}

TEST(ConfigTest, StackSizeBelowMinimumRejected) {
  for (const std::size_t s : {std::size_t{0}, std::size_t{1}, std::size_t{4096}, weft::k_min_stack_size - 1}) {
    SCOPED_TRACE(s);
    expect_rejected(weft::config{.workers = 1, .stack_size = s}, "stack_size");
  }
}

TEST(ConfigTest, SpinTimeAboveOneSecondRejected) {
  for (const std::uint32_t us : {std::uint32_t{1'000'001}, std::numeric_limits<std::uint32_t>::max()}) {
    SCOPED_TRACE(us);
    expect_rejected(weft::config{.workers = 1, .spin_us = us}, "spin_us");
  }
}

TEST(ConfigTest, MaxFibersBelowFourRejected) {
  for (const std::size_t f : {std::size_t{0}, std::size_t{1}, std::size_t{3}}) {
    SCOPED_TRACE(f);
    expect_rejected(weft::config{.workers = 1, .max_fibers = f}, "max_fibers");
  }
}

// A bad field is reported even when WEFT_NUM_WORKERS would be read.
TEST(ConfigTest, BadFieldRejectedWithDefaultWorkerCount) {
  weft_test::scoped_env env("WEFT_NUM_WORKERS", "2");
  expect_rejected(weft::config{.stack_size = 1}, "stack_size");
  expect_rejected(weft::config{.max_fibers = 0}, "max_fibers");
}

TEST(ConfigTest, BoundaryValuesAccepted) {
  EXPECT_NO_THROW(construct(weft::config{.workers = 1, .stack_size = weft::k_min_stack_size}));
  EXPECT_NO_THROW(construct(weft::config{.workers = 2, .stack_size = weft::k_min_stack_size + 1}));  // rounded up
  EXPECT_NO_THROW(construct(weft::config{.workers = 2, .spin_us = 0}));
  EXPECT_NO_THROW(construct(weft::config{.workers = 2, .spin_us = 1'000'000}));
  EXPECT_NO_THROW(construct(weft::config{.workers = 2, .max_fibers = 4}));
  EXPECT_NO_THROW(construct(weft::config{.workers = 1, .stack_size = 8 * 1024 * 1024}));
}

// With the fewest fibers allowed, work that suspends a lot still completes:
// the bound is soft and never fails a suspension.
TEST(ConfigTest, FewestFibersStillRunNestedWork) {
  weft::runtime rt{weft::config{.workers = 3, .max_fibers = 4}};
  std::atomic<int> leaves{0};
  rt.run([&] {
    weft::parallelize(32, [&](int) {
      weft::parallelize(32, [&](int) { weft::join([&] { leaves.fetch_add(1); }, [&] { weft::yield(); }); });
    });
  });
  EXPECT_EQ(leaves.load(), 32 * 32);
}

// ---- WEFT_NUM_WORKERS ----

TEST(NumWorkersEnvTest, PositiveIntegerSetsTheWorkerCount) {
  for (const int n : {1, 2, 3}) {
    weft_test::scoped_env env("WEFT_NUM_WORKERS", std::to_string(n));
    weft::runtime rt{};
    EXPECT_EQ(rt.num_workers(), n);
    EXPECT_EQ(rt.run([] { return 6 * 7; }), 42);
  }
}

TEST(NumWorkersEnvTest, GarbageIsAClearError) {
  const std::vector<std::string> garbage = {"abc",         "-1",  "0",  "",    "1x",
                                            "99999999999", "3.5", " 3", "0x4", std::to_string(weft::k_max_workers + 1)};
  for (const std::string& value : garbage) {
    SCOPED_TRACE("WEFT_NUM_WORKERS=\"" + value + "\"");
    weft_test::scoped_env env("WEFT_NUM_WORKERS", value);
    const int threads = weft_test::thread_count();
    try {
      weft::runtime rt{};
      ADD_FAILURE() << "accepted, with " << rt.num_workers() << " workers";
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("WEFT_NUM_WORKERS"), std::string::npos) << what;
      if (value.size() >= 2 && value.find_first_of(" ") == std::string::npos) {
        EXPECT_NE(what.find(value), std::string::npos) << "the message should show the bad value: " << what;
      }
    }
    EXPECT_LE(weft_test::settled_thread_count_at_most(threads), threads);
  }
}

TEST(NumWorkersEnvTest, ExplicitWorkerCountIgnoresTheVariable) {
  weft_test::scoped_env env("WEFT_NUM_WORKERS", "abc");
  weft::runtime rt{weft::config{.workers = 2}};
  EXPECT_EQ(rt.num_workers(), 2);
}

TEST(NumWorkersEnvTest, UnsetUsesTheCpusTheThreadMayRunOn) {
  weft_test::scoped_env env("WEFT_NUM_WORKERS", std::nullopt);
  weft::runtime rt{};
  cpu_set_t mine;
  CPU_ZERO(&mine);
  ASSERT_EQ(sched_getaffinity(0, sizeof mine, &mine), 0);
  const unsigned hw = std::thread::hardware_concurrency();
  const int allowed = std::min(CPU_COUNT(&mine), hw == 0 ? CPU_COUNT(&mine) : static_cast<int>(hw));
  EXPECT_GE(rt.num_workers(), 1);
  // Fewer under a cgroup CPU quota.
  EXPECT_LE(rt.num_workers(), std::min(allowed, weft::k_max_workers));
}

// A thread restricted to one CPU (taskset, a cpuset cgroup, an MPI rank's
// binding) gets one worker by default, not one per hardware thread of the
// machine: its workers inherit its mask and would take turns on that CPU.
TEST(NumWorkersEnvTest, UnsetOnAThreadBoundToOneCpuMeansOneWorker) {
  weft_test::scoped_env env("WEFT_NUM_WORKERS", std::nullopt);
  cpu_set_t mine;
  CPU_ZERO(&mine);
  ASSERT_EQ(sched_getaffinity(0, sizeof mine, &mine), 0);
  cpu_set_t one;
  CPU_ZERO(&one);
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &mine)) {
      CPU_SET(c, &one);
      break;
    }
  }
  int workers = -1;
  int sum = 0;
  int refused = 0;
  std::thread t([&] {
    refused = pthread_setaffinity_np(pthread_self(), sizeof one, &one);
    if (refused != 0) return;
    weft::runtime rt{};
    workers = rt.num_workers();
    sum = rt.run([] {
      return weft::parallel_reduce(
          0, 100, 0, [](int i) { return i; }, std::plus<>{});
    });
  });
  t.join();
  if (refused != 0) GTEST_SKIP() << "this system refuses to bind a thread to one CPU: " << std::strerror(refused);
  EXPECT_EQ(workers, 1);
  EXPECT_EQ(sum, 4950);
}

}  // namespace
