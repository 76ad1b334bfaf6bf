// SPDX-License-Identifier: MIT
// Idle workers park: once config::spin_us has passed without work, a runtime
// uses (almost) no CPU. A resource check, not a speed benchmark: the bound
// (5% of one core over the window) is far above what parked threads use and
// far below what one spinning worker burns.
//
// Its own executable: no other runtime (not even the default one) may run in
// the process while CPU time is measured.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include <weft/weft.hpp>

#include "process_info.hpp"
#include "worker_count.hpp"

namespace {

using namespace std::chrono_literals;

constexpr auto k_settle = 300ms;  // much longer than any spin_us used here
constexpr auto k_window = 500ms;
constexpr double k_max_share = 0.05;

// CPU time of the whole process over a window of wall-clock time, as a share
// of that window.
double cpu_share_over_window() {
  const auto cpu0 = weft_test::process_cpu_time();
  const auto wall0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(k_window);
  const auto cpu1 = weft_test::process_cpu_time();
  const auto wall1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double>(cpu1 - cpu0).count() / std::chrono::duration<double>(wall1 - wall0).count();
}

void some_work(weft::runtime& rt) {
  std::atomic<long> sum{0};
  rt.run([&] {
    weft::parallelize(100'000, [&](int i) { sum.fetch_add(i, std::memory_order_relaxed); });
    weft::task_group g;
    for (int i = 0; i < 100; ++i) g.spawn([&] { weft::join([&] { sum.fetch_add(1); }, [&] { weft::yield(); }); });
    g.wait();
  });
  ASSERT_EQ(sum.load(), 99'999L * 100'000 / 2 + 100);
}

class IdleTest : public weft_test::WorkerCount {};

TEST_P(IdleTest, IdleRuntimeUsesAlmostNoCpu) {
  some_work(rt);
  std::this_thread::sleep_for(k_settle);
  const double share = cpu_share_over_window();
  EXPECT_LT(share, k_max_share) << "an idle runtime of " << workers() << " workers used " << share * 100
                                << "% of a core";
}

// One worker blocks in the OS inside a task; the others have nothing to do and
// must park rather than spin waiting for it.
TEST_P(IdleTest, OtherWorkersParkWhileATaskBlocksInTheOs) {
  some_work(rt);
  std::atomic<bool> release{false};
  std::atomic<bool> entered{false};
  std::thread caller([&] {
    rt.run([&] {
      entered.store(true);
      while (!release.load()) std::this_thread::sleep_for(5ms);
    });
  });
  while (!entered.load()) std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(k_settle);
  const double share = cpu_share_over_window();
  release.store(true);
  caller.join();
  // The blocked task itself wakes every 5 ms: a fraction of a percent.
  EXPECT_LT(share, k_max_share) << workers() << " workers used " << share * 100 << "% of a core";
}

// A fiber suspended in a join whose other half blocks in the OS: the
// suspended fiber's worker, and the rest, park.
TEST_P(IdleTest, WorkersParkWhileAJoinWaits) {
  std::atomic<bool> release{false};
  std::atomic<bool> entered{false};
  std::thread caller([&] {
    rt.run([&] {
      weft::join([] {},
                 [&] {
                   entered.store(true);
                   while (!release.load()) std::this_thread::sleep_for(5ms);
                 });
    });
  });
  while (!entered.load()) std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(k_settle);
  const double share = cpu_share_over_window();
  release.store(true);
  caller.join();
  EXPECT_LT(share, k_max_share) << workers() << " workers used " << share * 100 << "% of a core";
}

// After a burst of calls from plain code (the calling thread takes part in
// each, on the slot of a parked worker), every thread parks within about a
// millisecond: the CPU time of the whole process in the second after the last
// call. The figure goes to the log.
TEST_P(IdleTest, IdleRightAfterABurstOfCallsFromOutside) {
  std::vector<double> x(2000, 1.0);
  for (int call = 0; call < 5000; ++call) {
    rt.run([&] { weft::parallelize(x.size(), [&](std::size_t i) { x[i] = x[i] * 0.5 + 0.5; }); });
  }
  const auto cpu0 = weft_test::process_cpu_time();
  const auto wall0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(1s);
  const double share = std::chrono::duration<double>(weft_test::process_cpu_time() - cpu0).count() /
                       std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  std::printf("%d workers: %.2f ms of CPU time in the second after the last of 5000 calls\n", workers(),
              share * 1000.0);
  EXPECT_LT(share, k_max_share) << workers() << " workers used " << share * 100 << "% of a core";
}

WEFT_INSTANTIATE_WORKER_COUNTS(IdleTest);

// Past config::max_fibers x workers fibers alive, workers stop stealing. A
// worker that sees work it may not steal (in another worker's public queue)
// must park, not spin until the bound clears: here the owner of that work
// blocks in the OS with 20 fibers suspended (the bound is 8 or 12).
TEST(IdleFiberBoundTest, IdleWorkersParkWhileOverTheFiberBound) {
  for (const int workers : {2, 3}) {
    weft::runtime rt{weft::config{.workers = workers, .max_fibers = 4}};
    std::atomic<bool> release{false};
    std::atomic<bool> entered{false};
    std::thread caller([&] {
      rt.run([&] {
        weft::latch gate(1);
        weft::latch arrived(20);
        weft::task_group waiters;
        for (int i = 0; i < 20; ++i) {
          waiters.spawn([&] {
            arrived.count_down();
            gate.wait();
          });
        }
        arrived.wait();  // 20 fibers suspended: past the bound
        weft::task_group queued;
        for (int i = 0; i < 100; ++i) queued.spawn([] {});  // visible to thieves, but over the bound
        entered.store(true);
        while (!release.load()) std::this_thread::sleep_for(5ms);
        gate.count_down();
        queued.wait();
        waiters.wait();
      });
    });
    while (!entered.load()) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(k_settle);
    const double share = cpu_share_over_window();
    release.store(true);
    caller.join();
    EXPECT_LT(share, k_max_share) << workers << " workers over the fiber bound used " << share * 100
                                  << "% of a core while the only work sat in one worker's queue";
  }
}

TEST(IdleCallersTest, IdleAfterManyExternalCallers) {
  weft::runtime rt{weft::config{.workers = 3}};
  std::vector<std::thread> pool;
  for (int t = 0; t < 8; ++t) {
    pool.emplace_back([&] {
      for (int i = 0; i < 20; ++i) some_work(rt);
    });
  }
  for (auto& th : pool) th.join();
  std::this_thread::sleep_for(k_settle);
  const double share = cpu_share_over_window();
  EXPECT_LT(share, k_max_share) << "used " << share * 100 << "% of a core";
}

TEST(IdleSpinTest, LongerSpinTimeStillEndsInParking) {
  weft::runtime rt{weft::config{.workers = 3, .spin_us = 100'000}};  // 100 ms
  some_work(rt);
  std::this_thread::sleep_for(k_settle);
  const double share = cpu_share_over_window();
  EXPECT_LT(share, k_max_share) << "used " << share * 100 << "% of a core";
}

TEST(IdleSpinTest, ZeroSpinTimeParksAtOnceAndStillRunsWork) {
  weft::runtime rt{weft::config{.workers = 3, .spin_us = 0}};
  for (int i = 0; i < 20; ++i) some_work(rt);
  std::this_thread::sleep_for(k_settle);
  const double share = cpu_share_over_window();
  EXPECT_LT(share, k_max_share) << "used " << share * 100 << "% of a core";
}

}  // namespace
