// SPDX-License-Identifier: MIT
// weft::runtime: creation and destruction (also in a loop and many at once),
// runtime::run (results, where f runs, runtimes inside runtimes), the default
// runtime, worker_index / on_worker, and the stats counters.
#include <gtest/gtest.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <weft/weft.hpp>

#include "process_info.hpp"
#include "sanitizers.hpp"
#include "worker_count.hpp"

namespace {

// The thread ids that ran the calls of a parallel loop, and whether every
// call saw a worker index inside [0, workers).
struct thread_census {
  std::mutex m;
  std::set<std::thread::id> ids;
  std::atomic<int> bad_index{0};

  void note(int workers) {
    const int w = weft::worker_index();
    if (!weft::on_worker() || w < 0 || w >= workers) bad_index.fetch_add(1);
    std::lock_guard lock(m);
    ids.insert(std::this_thread::get_id());
  }
};

// A little of everything, with an exact result.
std::int64_t small_workload() {
  std::atomic<std::int64_t> sum{0};
  weft::parallelize(200, [&](int i) { sum.fetch_add(i); });
  auto [a, b] = weft::join([] { return 1; }, [] { return 2; });
  weft::task_group g;
  g.spawn([&] { sum.fetch_add(1000); });
  g.wait();
  return sum.load() + a + b;
}
constexpr std::int64_t k_small_workload = 199 * 200 / 2 + 1000 + 3;

std::atomic<std::int64_t> g_joins{0};

std::uint64_t fib_counting_joins(int n) {
  if (n < 2) return static_cast<std::uint64_t>(n);
  g_joins.fetch_add(1, std::memory_order_relaxed);
  auto [a, b] = weft::join([n] { return fib_counting_joins(n - 1); }, [n] { return fib_counting_joins(n - 2); });
  return a + b;
}

class RuntimeTest : public weft_test::WorkerCount {};

TEST_P(RuntimeTest, NumWorkersMatchesConfig) { EXPECT_EQ(rt.num_workers(), workers()); }

TEST_P(RuntimeTest, RunReturnsValues) {
  EXPECT_EQ(rt.run([] { return 42; }), 42);
  EXPECT_EQ(rt.run([] { return std::string("weft"); }), "weft");
  const auto pair = rt.run([] { return std::pair<int, double>(1, 2.5); });
  EXPECT_EQ(pair.first, 1);
  EXPECT_EQ(pair.second, 2.5);
  std::atomic<int> calls{0};
  rt.run([&] { calls.fetch_add(1); });
  static_assert(std::is_void_v<decltype(rt.run([] {}))>);
  EXPECT_EQ(calls.load(), 1);
}

TEST_P(RuntimeTest, RunReturnsMoveOnlyValues) {
  std::unique_ptr<int> p = rt.run([] { return std::make_unique<int>(7); });
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 7);
  auto v = rt.run([] {
    std::vector<std::unique_ptr<int>> out;
    for (int i = 0; i < 10; ++i) out.push_back(std::make_unique<int>(i));
    return out;
  });
  ASSERT_EQ(v.size(), 10u);
  EXPECT_EQ(*v[9], 9);
}

TEST_P(RuntimeTest, RunReturnsReferences) {
  int x = 1;
  const std::string s = "same object";
  int& rx = rt.run([&]() -> int& { return x; });
  const std::string& rs = rt.run([&]() -> const std::string& { return s; });
  EXPECT_EQ(&rx, &x);
  EXPECT_EQ(&rs, &s);
  rx = 9;
  EXPECT_EQ(x, 9);
}

TEST_P(RuntimeTest, RunsOnAWorkerOfThisRuntime) {
  const int w = rt.run([] { return weft::worker_index(); });
  EXPECT_GE(w, 0);
  EXPECT_LT(w, workers());
  EXPECT_TRUE(rt.run([] { return weft::on_worker(); }));
  thread_census census;
  rt.run([&] { weft::parallelize(1000, [&](int) { census.note(workers()); }); });
  EXPECT_EQ(census.bad_index.load(), 0);
  // The calling thread may take part, as a worker of this runtime on the
  // slot of a parked worker (whose thread stays parked meanwhile): never more
  // threads run items than the runtime has workers.
  EXPECT_LE(census.ids.size(), static_cast<std::size_t>(workers()));
}

TEST_P(RuntimeTest, OutsideAnyWorkerIndexIsMinusOne) {
  EXPECT_EQ(weft::worker_index(), -1);
  EXPECT_FALSE(weft::on_worker());
  rt.run([] {});
  EXPECT_EQ(weft::worker_index(), -1);
  EXPECT_FALSE(weft::on_worker());
  std::thread([] {
    EXPECT_EQ(weft::worker_index(), -1);
    EXPECT_FALSE(weft::on_worker());
  }).join();
}

// Called from one of its own workers, run simply calls f.
TEST_P(RuntimeTest, RunFromOwnWorkerCallsDirectly) {
  rt.run([&] {
    const auto me = std::this_thread::get_id();
    const int index = weft::worker_index();
    EXPECT_EQ(rt.run([] { return std::this_thread::get_id(); }), me);
    EXPECT_EQ(rt.run([] { return weft::worker_index(); }), index);
    int local = 3;
    EXPECT_EQ(&rt.run([&]() -> int& { return local; }), &local);
  });
}

// Runtime B used from inside a task of runtime A: f of b.run, and the calls
// made inside it, run on B's workers.
TEST_P(RuntimeTest, SecondRuntimeInsideATaskOfTheFirst) {
  weft::runtime b{weft::config{.workers = 3}};
  thread_census in_a;
  thread_census in_b;
  std::atomic<int> b_calls{0};
  rt.run([&] {
    in_a.note(workers());
    const int r = b.run([&] {
      in_b.note(3);
      weft::parallelize(300, [&](int) {
        in_b.note(3);
        b_calls.fetch_add(1);
      });
      return 5;
    });
    EXPECT_EQ(r, 5);
    in_a.note(workers());  // back in A, possibly on another of its workers
    weft::parallelize(300, [&](int) { in_a.note(workers()); });
  });
  EXPECT_EQ(b_calls.load(), 300);
  EXPECT_EQ(in_a.bad_index.load(), 0);
  EXPECT_EQ(in_b.bad_index.load(), 0);
  for (const auto& id : in_b.ids) EXPECT_EQ(in_a.ids.count(id), 0u) << "a call of B ran on a thread of A";
}

// A -> B -> A: the calling fiber of A suspends while B runs, so A's workers
// are free to run the innermost call, even with one worker.
TEST_P(RuntimeTest, CallsBetweenTwoRuntimesPingPong) {
  weft::runtime b{weft::config{.workers = 1}};
  const int depth = rt.run([&] {
    return b.run([&] {
      return rt.run([&] { return b.run([&] { return rt.run([] { return weft::on_worker() ? 4 : -1; }); }); });
    });
  });
  EXPECT_EQ(depth, 4);
}

TEST_P(RuntimeTest, RuntimeCreatedAndDestroyedInsideATask) {
  for (int i = 0; i < 5; ++i) {
    const std::int64_t r = rt.run([] {
      weft::runtime inner{weft::config{.workers = 2}};
      return inner.run(small_workload);
    });
    EXPECT_EQ(r, k_small_workload);
  }
}

TEST_P(RuntimeTest, DestructorWaitsForARunInFlight) {
  auto owned = std::make_unique<weft::runtime>(weft::config{.workers = workers()});
  weft::runtime* r = owned.get();
  std::atomic<bool> started{false};
  std::atomic<bool> finished{false};
  std::thread caller([&] {
    r->run([&] {
      started.store(true);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      finished.store(true);
    });
  });
  while (!started.load()) std::this_thread::yield();
  owned.reset();  // waits for the run in flight
  EXPECT_TRUE(finished.load()) << "the runtime was destroyed while its work still ran";
  caller.join();
}

// Destroying runtime B on a worker of runtime A suspends that fiber while B's
// work finishes, instead of blocking A's worker thread: here B's last work
// calls into A, whose only worker is the one destroying B (this hung).
TEST_P(RuntimeTest, DestroyingARuntimeFromAFiberOfAnotherKeepsThatWorkerWorking) {
  weft::runtime a{weft::config{.workers = 1}};
  for (int round = 0; round < 5; ++round) {
    std::atomic<bool> started{false};
    std::atomic<int> done_in_a{0};
    a.run([&] {
      auto* b = new weft::runtime{weft::config{.workers = workers()}};
      std::thread caller([&, b] {
        b->run([&] {
          started.store(true);
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          a.run([&] { weft::parallelize(10, [&](int) { done_in_a.fetch_add(1); }); });
        });
      });
      while (!started.load()) std::this_thread::yield();
      delete b;  // waits for b's run in flight, which needs this worker
      EXPECT_EQ(done_in_a.load(), 10);
      caller.join();
    });
    EXPECT_EQ(done_in_a.load(), 10) << "round " << round;
  }
}

// The same when B is idle, and destroyed from a coroutine of A.
TEST_P(RuntimeTest, DestroyingAnIdleRuntimeFromAFiberOfAnother) {
  weft::runtime a{weft::config{.workers = 1}};
  for (int round = 0; round < 20; ++round) {
    a.run([&] {
      weft::runtime b{weft::config{.workers = workers()}};
      EXPECT_EQ(b.run(small_workload), k_small_workload);
    });
  }
}

// ---- stats ----

TEST_P(RuntimeTest, StatsHaveOneEntryPerWorkerAndTheirSum) {
  rt.run(small_workload);
  const weft::stats s = rt.stats();
  ASSERT_EQ(s.workers.size(), static_cast<std::size_t>(workers()));
  weft::worker_stats sum;
  for (const auto& w : s.workers) sum += w;
  EXPECT_EQ(sum.tasks_run, s.total.tasks_run);
  EXPECT_EQ(sum.spawns, s.total.spawns);
  EXPECT_EQ(sum.steals, s.total.steals);
  EXPECT_EQ(sum.failed_steals, s.total.failed_steals);
  EXPECT_EQ(sum.suspensions, s.total.suspensions);
  EXPECT_EQ(sum.fiber_switches, s.total.fiber_switches);
  EXPECT_EQ(sum.fibers_created, s.total.fibers_created);
  EXPECT_EQ(sum.parks, s.total.parks);
  EXPECT_EQ(sum.injected, s.total.injected);
  EXPECT_EQ(sum.lent, s.total.lent);
  EXPECT_GE(s.total.tasks_run, 1u);
  EXPECT_EQ(s.total.injected + s.total.lent, 1u)
      << "a run from outside runs on a lent slot or enters through the injection queue";
}

TEST_P(RuntimeTest, SummaryHasARowPerWorkerAndATotal) {
  rt.run(small_workload);
  const std::string table = rt.stats().summary();
  std::istringstream in(table);
  std::string line;
  std::vector<std::string> first_words;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string w;
    words >> w;
    first_words.push_back(w);
  }
  ASSERT_EQ(first_words.size(), static_cast<std::size_t>(workers()) + 2) << table;
  for (int i = 0; i < workers(); ++i) {
    EXPECT_EQ(first_words[static_cast<std::size_t>(i) + 1], std::to_string(i)) << table;
  }
  EXPECT_EQ(first_words.back(), "total") << table;
}

// Every join pushes one task (its g) and runs it once, here or elsewhere.
TEST_P(RuntimeTest, JoinCountsOneSpawnAndOneTaskPerJoin) {
  rt.reset_stats();
  g_joins = 0;
  const std::uint64_t f = rt.run([] { return fib_counting_joins(20); });
  EXPECT_EQ(f, 6765u);
  const std::uint64_t joins = static_cast<std::uint64_t>(g_joins.load());
  EXPECT_EQ(joins, 10945u);  // fib calls with n >= 2 for fib(20)
  const weft::stats s = rt.stats();
  if (workers() == 1) {
    // Nothing is stolen, nothing suspends: exactly one spawn per join, and
    // every spawned task plus the call itself ran once.
    EXPECT_EQ(s.total.spawns, joins);
    EXPECT_EQ(s.total.tasks_run, joins + 1);
    EXPECT_EQ(s.total.injected + s.total.lent, 1u);
    EXPECT_EQ(s.total.steals, 0u);
  } else {
    EXPECT_GE(s.total.spawns, joins);
    EXPECT_GE(s.total.tasks_run, joins + 1);
    EXPECT_EQ(s.total.injected + s.total.lent, 1u);
  }
}

TEST_P(RuntimeTest, ResetStatsZeroesEveryCounterOfAnIdleRuntime) {
  rt.run(small_workload);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // idle: the workers park
  rt.reset_stats();
  const weft::stats s = rt.stats();
  for (const auto& w : s.workers) {
    EXPECT_EQ(w.tasks_run, 0u);
    EXPECT_EQ(w.spawns, 0u);
    EXPECT_EQ(w.steals, 0u);
    EXPECT_EQ(w.failed_steals, 0u);
    EXPECT_EQ(w.suspensions, 0u);
    EXPECT_EQ(w.fiber_switches, 0u);
    EXPECT_EQ(w.fibers_created, 0u);
    EXPECT_EQ(w.parks, 0u);
    EXPECT_EQ(w.injected, 0u);
  }
}

WEFT_INSTANTIATE_WORKER_COUNTS(RuntimeTest);

TEST(RuntimeStatsTest, OneWorkerNeverSteals) {
  weft::runtime one{weft::config{.workers = 1}};
  g_joins = 0;
  one.run([] {
    fib_counting_joins(18);
    weft::parallelize(100'000, [](int) {});
    weft::parallel_for(0, 100'000, [](int, int) {});
    weft::task_group g;
    for (int i = 0; i < 100; ++i) g.spawn([] {});
    g.wait();
  });
  const weft::stats s = one.stats();
  EXPECT_EQ(s.total.steals, 0u);
}

// ---- life cycle ----

TEST(RuntimeLifeTest, CreatedAndDestroyedInALoop) {
  const int threads_before = weft_test::thread_count();
  int mappings_warm = 0;
  const int rounds = static_cast<int>(weft_test::scaled(100, 2));
  for (int i = 0; i < rounds; ++i) {
    const int workers = weft_test::k_worker_counts[static_cast<std::size_t>(i) % weft_test::k_worker_counts.size()];
    {
      weft::runtime rt{weft::config{.workers = workers}};
      ASSERT_EQ(rt.num_workers(), workers);
      ASSERT_EQ(rt.run(small_workload), k_small_workload) << "round " << i;
      if (i % 3 == 0) {
        ASSERT_TRUE(rt.run([] { return weft::worker_index() >= 0; }));
      }
    }
    ASSERT_LE(weft_test::settled_thread_count_at_most(threads_before), threads_before)
        << "threads left behind after round " << i;
    // Mappings settle once the allocator has its arenas; count from there.
    if (i == 7) mappings_warm = weft_test::mapping_count();
  }
  // Under a sanitizer its allocator keeps mapping memory of its own; its leak
  // checker watches the heap instead.
  if (!weft_test::k_sanitized) {
    EXPECT_LE(weft_test::mapping_count(), mappings_warm + 16) << "memory mappings (fiber stacks?) leak";
  }
}

TEST(RuntimeLifeTest, DestroyedRightAfterCreation) {
  const int threads_before = weft_test::thread_count();
  for (int i = 0; i < 50; ++i) {
    weft::runtime rt{weft::config{.workers = 1 + i % 8}};
  }
  EXPECT_LE(weft_test::settled_thread_count_at_most(threads_before), threads_before);
}

// The constructor returns once every worker thread has finished starting (so
// a fork() after it never copies a thread in the middle of its start-up: see
// docs/reliability.md). A worker thread counts its first fiber as its last
// start-up step, so right after construction, before any work, each worker
// has counted exactly one.
TEST(RuntimeLifeTest, ConstructionReturnsWithEveryWorkerThreadStarted) {
  for (int i = 0; i < 40; ++i) {
    const int workers = 1 + i % 8;
    weft::runtime rt{weft::config{.workers = workers}};
    const weft::stats s = rt.stats();
    ASSERT_EQ(s.workers.size(), static_cast<std::size_t>(workers));
    for (std::size_t w = 0; w < s.workers.size(); ++w) {
      ASSERT_EQ(s.workers[w].fibers_created, 1u) << "worker " << w << " of " << workers << ", round " << i;
    }
  }
}

TEST(RuntimeLifeTest, TwoRuntimesUsedAtOnce) {
  weft::runtime a{weft::config{.workers = 2}};
  weft::runtime b{weft::config{.workers = 3}};
  std::atomic<int> bad{0};
  auto use = [&](weft::runtime& rt, int workers) {
    for (int i = 0; i < 50; ++i) {
      if (rt.run(small_workload) != k_small_workload) bad.fetch_add(1);
      rt.run([&] {
        weft::parallelize(100, [&](int) {
          if (weft::worker_index() < 0 || weft::worker_index() >= workers) bad.fetch_add(1);
        });
      });
    }
  };
  std::thread ta([&] { use(a, 2); });
  std::thread tb([&] { use(b, 3); });
  ta.join();
  tb.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(RuntimeLifeTest, ManyRuntimesAlive) {
  std::vector<std::unique_ptr<weft::runtime>> all;
  for (int i = 0; i < 16; ++i) all.push_back(std::make_unique<weft::runtime>(weft::config{.workers = 1 + i % 3}));
  for (auto& rt : all) EXPECT_EQ(rt->run(small_workload), k_small_workload);
  // Destroyed in an order other than creation.
  for (std::size_t i = 0; i < all.size(); i += 2) all[i].reset();
  for (auto& rt : all) {
    if (rt) {
      EXPECT_EQ(rt->run(small_workload), k_small_workload);
    }
  }
}

// ---- the default runtime ----

TEST(DefaultRuntimeTest, IsOneObjectCreatedOnFirstUse) {
  weft::runtime& a = weft::default_runtime();
  weft::runtime& b = weft::default_runtime();
  EXPECT_EQ(&a, &b);
  EXPECT_GE(a.num_workers(), 1);
  if (const char* env = std::getenv("WEFT_NUM_WORKERS"); env == nullptr) {
    // The CPUs the creating thread may use: no more than its affinity mask
    // holds and the machine has (fewer under a cgroup CPU quota).
    cpu_set_t mine;
    CPU_ZERO(&mine);
    ASSERT_EQ(sched_getaffinity(0, sizeof mine, &mine), 0);
    const unsigned hw = std::thread::hardware_concurrency();
    EXPECT_LE(a.num_workers(), CPU_COUNT(&mine));
    if (hw != 0) {
      EXPECT_LE(a.num_workers(), static_cast<int>(hw));
    }
  } else {
    EXPECT_EQ(a.num_workers(), std::atoi(env));
  }
  EXPECT_EQ(a.run(small_workload), k_small_workload);
}

TEST(DefaultRuntimeTest, CallsFromOutsideRunInTheDefaultRuntime) {
  weft::runtime& d = weft::default_runtime();
  const std::uint64_t before = d.stats().total.tasks_run;
  std::atomic<int> calls{0};
  weft::parallelize(1000, [&](int) { calls.fetch_add(1); });
  EXPECT_EQ(calls.load(), 1000);
  EXPECT_GT(d.stats().total.tasks_run, before) << "parallelize from outside ran no task in the default runtime";
  const int w = d.run([] { return weft::worker_index(); });
  EXPECT_GE(w, 0);
  EXPECT_LT(w, d.num_workers());
}

}  // namespace
