// SPDX-License-Identifier: MIT
// Stress test of config::max_fibers, the soft bound on fibers: a worker whose
// runtime has max_fibers x workers fibers alive stops stealing until some
// finish, but never fails a suspension. With max_fibers = 4 (the smallest
// accepted), many tasks suspended at once (on a weft::latch, queued on a
// weft::mutex) and deep recursions whose joins wait for stolen children must
// all complete with exact results; and once the fibers of such a burst have
// finished, idle workers must take work from busy ones again.
//
// Every round checks its results; the watchdog turns a deadlock into a
// failure. The seed (printed) fixes the sizes of the rounds.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <weft/weft.hpp>

#include "seeded_rng.hpp"
#include "stress.hpp"

namespace {

namespace st = weft_test::stress;

constexpr std::size_t k_small_bound = 4;

weft::config bounded(int workers) { return weft::config{.workers = workers, .max_fibers = k_small_bound}; }

// m tasks of a task_group wait at one latch, so that all m are suspended at
// once: m fibers alive, far beyond the bound. Returns how many passed it.
int meet_at_latch(int m) {
  weft::latch l(m);
  std::atomic<int> passed{0};
  weft::task_group g;
  for (int j = 0; j < m; ++j) {
    g.spawn([&] {
      l.arrive_and_wait();
      passed.fetch_add(1, std::memory_order_relaxed);
    });
  }
  g.wait();
  return passed.load();
}

// The caller holds a weft::mutex while m tasks queue on it (each suspended),
// then lets them through one by one. Returns the guarded count.
int queue_on_mutex(int m) {
  weft::mutex mtx;
  weft::latch queued(m);
  int counter = 0;  // guarded by mtx; deliberately not atomic
  mtx.lock();
  weft::task_group g;
  for (int j = 0; j < m; ++j) {
    g.spawn([&] {
      queued.count_down();
      std::lock_guard lock(mtx);
      ++counter;
    });
  }
  queued.wait();  // every task counted down; each is queued on mtx or about to be
  mtx.unlock();
  g.wait();
  std::lock_guard lock(mtx);
  return counter;
}

// A recursion `depth` levels deep through join: each level offers a leaf
// (which suspends once) to thieves and recurses in the other half, so joins
// wait for stolen children all the way down. Returns the number of leaves.
std::uint64_t chain(int depth) {
  if (depth == 0) return 0;
  auto [below, leaf] = weft::join([depth] { return chain(depth - 1); },
                                  [] {
                                    weft::yield();
                                    return std::uint64_t{1};
                                  });
  return below + leaf;
}

// Fibonacci through join, with a yield in every leaf.
std::uint64_t fib(int n) {
  if (n < 2) {
    weft::yield();
    return static_cast<std::uint64_t>(n);
  }
  auto [a, b] = weft::join([n] { return fib(n - 1); }, [n] { return fib(n - 2); });
  return a + b;
}

constexpr std::uint64_t fib_of(int n) {
  std::uint64_t a = 0, b = 1;
  for (int i = 0; i < n; ++i) {
    const std::uint64_t c = a + b;
    a = b;
    b = c;
  }
  return a;
}

// Nested parallelize, `depth` levels deep, with a latch meeting at the bottom
// of every branch of two.
std::uint64_t nested_loops(int depth) {
  if (depth == 0) return meet_at_latch(2) == 2 ? 1 : 0;
  std::atomic<std::uint64_t> sum{0};
  weft::parallelize(2, [&](int) { sum.fetch_add(nested_loops(depth - 1), std::memory_order_relaxed); });
  return sum.load();
}

// Whether a task offered by a busy worker is taken by another worker: the
// caller offers g through join and keeps its own worker busy (the thread
// yields, the worker does not) until g has started somewhere, or until the
// stall limit. g then runs on another worker, or on this one after the limit.
bool another_worker_takes_work(weft::runtime& rt) {
  return rt.run([] {
    const int me = weft::worker_index();
    std::atomic<int> taker{-1};
    weft::join([&] { st::wait_until([&] { return taker.load() != -1; }); }, [&] { taker.store(weft::worker_index()); });
    return taker.load() != me;
  });
}

class FiberBoundStress : public testing::TestWithParam<int> {};

TEST_P(FiberBoundStress, ManySuspendedFibersUnderASmallBound) {
  const int workers = GetParam();
  weft_test::seeded_rng rng;
  const std::uint64_t seed = rng.seed();
  st::fast_rng r(seed);
  const auto start = st::clock_type::now();
  const auto deadline = start + st::budget(1.5);
  std::uint64_t rounds = 0, latch_tasks = 0, mutex_tasks = 0, chain_levels = 0, fibs = 0, loops = 0;
  std::uint64_t most_fibers = 0, steals = 0;
  while (st::clock_type::now() < deadline) {
    // A fresh runtime each round: every round starts below the bound, with
    // stealing on, and crosses it.
    weft::runtime rt{bounded(workers)};
    const int m = 20 + static_cast<int>(r.below(400));
    switch (rounds % 5) {
      case 0:
        ASSERT_EQ(rt.run([m] { return meet_at_latch(m); }), m) << "round " << rounds;
        latch_tasks += static_cast<std::uint64_t>(m);
        break;
      case 1:
        ASSERT_EQ(rt.run([m] { return queue_on_mutex(m); }), m) << "round " << rounds;
        mutex_tasks += static_cast<std::uint64_t>(m);
        break;
      case 2: {
        const int depth = 500 + static_cast<int>(r.below(1500));
        ASSERT_EQ(rt.run([depth] { return chain(depth); }), static_cast<std::uint64_t>(depth)) << "round " << rounds;
        chain_levels += static_cast<std::uint64_t>(depth);
        break;
      }
      case 3: {
        const int n = 12 + static_cast<int>(r.below(8));
        ASSERT_EQ(rt.run([n] { return fib(n); }), fib_of(n)) << "round " << rounds;
        ++fibs;
        break;
      }
      case 4: {
        const int depth = 3 + static_cast<int>(r.below(5));
        ASSERT_EQ(rt.run([depth] { return nested_loops(depth); }), std::uint64_t{1} << depth) << "round " << rounds;
        ++loops;
        break;
      }
    }
    const weft::stats s = rt.stats();
    if (s.total.fibers_created > most_fibers) most_fibers = s.total.fibers_created;
    steals += s.total.steals;
    ++rounds;
  }
  st::report("seed %" PRIu64 ", %d workers, max_fibers %zu, %.2f s: %" PRIu64 " rounds; %" PRIu64
             " tasks met at latches, %" PRIu64 " queued on mutexes, %" PRIu64 " join levels, %" PRIu64
             " fib runs, %" PRIu64 " nested loops; up to %" PRIu64 " fibers in one round; %" PRIu64 " steals",
             seed, workers, k_small_bound, std::chrono::duration<double>(st::clock_type::now() - start).count(), rounds,
             latch_tasks, mutex_tasks, chain_levels, fibs, loops, most_fibers, steals);
  EXPECT_GT(rounds, 0u);
}

INSTANTIATE_TEST_SUITE_P(Workers, FiberBoundStress, testing::Values(1, 2, 3),
                         [](const testing::TestParamInfo<int>& info) {
                           return "Workers" + std::to_string(info.param);
                         });

// Outside threads at once, each with its own suspended tasks: the bound is
// per runtime, shared by every caller.
TEST(FiberBoundStressCallers, OutsideThreadsSuspendTasksAtOnce) {
  weft_test::seeded_rng rng;
  const std::uint64_t seed = rng.seed();
  weft::runtime rt{bounded(2)};
  st::errors errs;
  const auto deadline = st::clock_type::now() + st::budget(1.0);
  std::atomic<std::uint64_t> rounds{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      st::fast_rng r(seed + static_cast<std::uint64_t>(t));
      while (st::clock_type::now() < deadline && !errs.any()) {
        const int m = 10 + static_cast<int>(r.below(200));
        if (t == 0) {
          if (rt.run([m] { return queue_on_mutex(m); }) != m) errs.add("queue_on_mutex lost tasks");
        } else if (t == 1) {
          const int depth = 100 + static_cast<int>(r.below(400));
          if (rt.run([depth] { return chain(depth); }) != static_cast<std::uint64_t>(depth))
            errs.add("chain lost leaves");
        } else {
          if (rt.run([m] { return meet_at_latch(m); }) != m) errs.add("meet_at_latch lost tasks");
        }
        rounds.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  st::report("seed %" PRIu64 ", 2 workers, 3 outside threads: %" PRIu64 " rounds", seed, rounds.load());
  EXPECT_FALSE(errs.any()) << errs.summary();
}

// The bound stops stealing only while the fibers are alive: after a burst of
// suspensions has finished, an idle worker takes work from a busy one again.
TEST(FiberBoundStressRecovery, StealingResumesAfterABurstOfSuspensions) {
  weft::runtime rt{bounded(2)};
  ASSERT_TRUE(another_worker_takes_work(rt)) << "no steal even before the burst";
  constexpr int burst = 200;
  ASSERT_EQ(rt.run([] { return meet_at_latch(burst); }), burst);
  const weft::stats s = rt.stats();
  st::report("a burst of %d suspended tasks created %" PRIu64 " fibers (bound: %zu per worker)", burst,
             s.total.fibers_created, k_small_bound);
  EXPECT_TRUE(another_worker_takes_work(rt))
      << "after the burst finished, the idle worker never took the task the busy one offered; the runtime "
         "seems to count the finished (pooled) fibers of the burst against max_fibers for good";
}

// A bound too large to reach never stops stealing.
TEST(FiberBoundStressRecovery, HugeBoundNeverStopsStealing) {
  for (const std::size_t max_fibers :
       {std::size_t{1} << 40, std::numeric_limits<std::size_t>::max() / 2, std::numeric_limits<std::size_t>::max()}) {
    SCOPED_TRACE(::testing::Message() << "max_fibers = " << max_fibers);
    weft::runtime rt{weft::config{.workers = 2, .max_fibers = max_fibers}};
    EXPECT_TRUE(another_worker_takes_work(rt))
        << "the idle worker never took the task the busy one offered: does max_fibers x workers overflow?";
  }
}

}  // namespace
