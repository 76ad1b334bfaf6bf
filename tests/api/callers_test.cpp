// SPDX-License-Identifier: MIT
// Many external threads calling at once, repeatedly: parallelize, join,
// task_group and runtime::run against one runtime and against the default
// runtime; results exact.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <weft/coroutine.hpp>
#include <weft/weft.hpp>

#include "sanitizers.hpp"
#include "seeded_rng.hpp"
#include "worker_count.hpp"

namespace {

constexpr int k_threads = 8;

std::uint64_t fib_join(int n) {
  if (n < 2) return static_cast<std::uint64_t>(n);
  auto [a, b] = weft::join([n] { return fib_join(n - 1); }, [n] { return fib_join(n - 2); });
  return a + b;
}

// One round of work of caller t: every primitive, each with an exact result.
// Returns a description of the first wrong result, or an empty string.
std::string one_round(int t, int round) {
  const int n = 1000 + 37 * t + round;
  std::atomic<std::int64_t> sum{0};
  weft::parallelize(n, [&](int i) { sum.fetch_add(i); });
  if (sum.load() != std::int64_t{n} * (n - 1) / 2) return "parallelize sum " + std::to_string(sum.load());

  std::atomic<int> capped{0};
  weft::parallelize(100, 1 + t % 3, [&](int) { capped.fetch_add(1); });
  if (capped.load() != 100) return "capped parallelize count " + std::to_string(capped.load());

  std::atomic<std::int64_t> covered{0};
  weft::parallel_for(-t * 100, 5000, 16, [&](int b, int e) { covered.fetch_add(e - b); });
  if (covered.load() != 5000 + t * 100) return "parallel_for items " + std::to_string(covered.load());

  auto [f, tag] = weft::join([] { return fib_join(15); }, [t] { return t; });
  if (f != 610 || tag != t) return "join";

  std::atomic<int> spawned{0};
  weft::task_group g;
  for (int k = 0; k < 50; ++k) g.spawn([&] { spawned.fetch_add(1); });
  g.wait();
  if (spawned.load() != 50) return "task_group count " + std::to_string(spawned.load());
  return {};
}

// Runs `body(t, round)` on k_threads external threads, `rounds` times each;
// every failure is reported with its thread and round.
void from_many_threads(int rounds, const std::function<std::string(int, int)>& body) {
  std::vector<std::string> failures(k_threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < k_threads; ++t) {
    pool.emplace_back([&, t] {
      for (int round = 0; round < rounds; ++round) {
        try {
          if (std::string f = body(t, round); !f.empty()) {
            failures[static_cast<std::size_t>(t)] = "round " + std::to_string(round) + ": " + f;
            return;
          }
        } catch (const std::exception& e) {
          failures[static_cast<std::size_t>(t)] = "round " + std::to_string(round) + ": exception " + e.what();
          return;
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  for (int t = 0; t < k_threads; ++t) EXPECT_EQ(failures[static_cast<std::size_t>(t)], "") << "thread " << t;
}

const int k_rounds = static_cast<int>(weft_test::scaled(30, 3));

class CallersTest : public weft_test::WorkerCount {};

TEST_P(CallersTest, ManyThreadsRunWorkInOneRuntime) {
  from_many_threads(k_rounds, [&](int t, int round) {
    return rt.run([&] {
      if (weft::worker_index() < 0 || weft::worker_index() >= workers()) return std::string("bad worker index");
      return one_round(t, round);
    });
  });
}

TEST_P(CallersTest, ManyThreadsCallRunWithResults) {
  from_many_threads(k_rounds * 10, [&](int t, int round) -> std::string {
    const int v = rt.run([t, round] { return t * 1000 + round; });
    if (v != t * 1000 + round) return "run returned " + std::to_string(v);
    auto s = rt.run([t] { return std::to_string(t); });
    if (s != std::to_string(t)) return "run returned " + s;
    return {};
  });
}

// Half the threads use this runtime, half the default one.
TEST_P(CallersTest, ManyThreadsOverTwoRuntimes) {
  from_many_threads(k_rounds, [&](int t, int round) {
    if (t % 2 == 0) return rt.run([&] { return one_round(t, round); });
    return one_round(t, round);
  });
}

// A task that starts a thread of its own: that thread is outside every
// runtime, so its calls go to the default runtime.
TEST_P(CallersTest, ThreadStartedInsideATaskCallsFromOutside) {
  std::string failure = "not run";
  rt.run([&] {
    std::thread inner([&] {
      if (weft::on_worker()) {
        failure = "a thread started by a task counts as a worker";
        return;
      }
      failure = one_round(0, 0);
    });
    inner.join();
  });
  EXPECT_EQ(failure, "");
}

WEFT_INSTANTIATE_WORKER_COUNTS(CallersTest);

TEST(CallersDefaultRuntimeTest, ManyThreadsCallFreeFunctions) { from_many_threads(k_rounds, one_round); }

TEST(CallersDefaultRuntimeTest, ManyThreadsCallDefaultRuntimeRun) {
  from_many_threads(k_rounds,
                    [](int t, int round) { return weft::default_runtime().run([&] { return one_round(t, round); }); });
}

// Threads that come and go, each making a few calls.
TEST(CallersDefaultRuntimeTest, ShortLivedThreads) {
  weft_test::seeded_rng rng;
  std::atomic<int> bad{0};
  for (int wave = 0; wave < 10; ++wave) {
    const int count = rng.uniform(1, 16);
    std::vector<std::thread> pool;
    for (int t = 0; t < count; ++t) {
      pool.emplace_back([&, t] {
        std::atomic<int> calls{0};
        weft::parallelize(64 + t, [&](int) { calls.fetch_add(1); });
        if (calls.load() != 64 + t) bad.fetch_add(1);
      });
    }
    for (auto& th : pool) th.join();
  }
  EXPECT_EQ(bad.load(), 0);
}

// 8 threads call at once into a runtime of one worker, more threads than
// slots: while the slot is lent, the others wait for it to be given back
// and take turns on it, instead of handing their calls to the worker's
// thread (once it runs a handed call, no worker parks, and every next
// caller would hand over too: most calls were handed over). Counts, not
// times: the runtime's `lent` and `injected` counters. A call is handed over
// only after 200 us without a slot, which a loaded sanitized run may reach
// often: there the counts are printed, not checked.
TEST(CallersTurnsTest, ThreadsCallingAtOnceTakeTurnsOnTheSlots) {
  weft::runtime rt{weft::config{.workers = 1}};
  constexpr int k_threads = 8;
  const int calls = static_cast<int>(weft_test::scaled(500, 5));
  std::atomic<int> bad{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < k_threads; ++t) {
    pool.emplace_back([&] {
      for (int c = 0; c < calls; ++c) {
        std::atomic<int> items{0};
        rt.run([&] { weft::parallelize(100, [&](int) { items.fetch_add(1, std::memory_order_relaxed); }); });
        if (items.load() != 100) bad.fetch_add(1);
      }
    });
  }
  for (auto& th : pool) th.join();
  EXPECT_EQ(bad.load(), 0);
  const weft::worker_stats s = rt.stats().total;
  const std::uint64_t total = std::uint64_t{k_threads} * static_cast<std::uint64_t>(calls);
  std::printf("%llu calls: %llu on a borrowed slot, %llu handed over\n", static_cast<unsigned long long>(total),
              static_cast<unsigned long long>(s.lent), static_cast<unsigned long long>(s.injected));
  EXPECT_EQ(s.lent + s.injected, total);
  if (!weft_test::k_sanitized) {
    EXPECT_LT(s.injected, total / 4) << "calls made at once were mostly handed over instead of taking turns";
  }
}

// Calls from outside that wait for each other: 8 threads each call rt.run
// with a function that meets the others at one latch, on runtimes of 1 and 2
// workers, so most calls find every slot lent to a call that waits. Those
// wait a bounded time for a slot, then hand their call over, and the thread
// holding a slot runs it while its own call waits: every call returns.
TEST(CallersTurnsTest, CallsFromOutsideThatWaitForEachOtherAllReturn) {
  for (const int workers : {1, 2}) {
    weft::runtime rt{weft::config{.workers = workers}};
    constexpr int k_threads = 8;
    for (int round = 0; round < 5; ++round) {
      weft::latch all(k_threads);
      std::atomic<int> returned{0};
      std::vector<std::thread> pool;
      for (int t = 0; t < k_threads; ++t) {
        pool.emplace_back([&] {
          rt.run([&] { all.arrive_and_wait(); });
          returned.fetch_add(1);
        });
      }
      for (auto& th : pool) th.join();
      EXPECT_EQ(returned.load(), k_threads) << workers << " workers, round " << round;
    }
  }
}

// A thread's call waits; its thread, holding a slot, takes up a call handed
// over by a third thread that polls with a yield for what the first thread
// does after its call returns; meanwhile the first call is completed on the
// other slot. A yield on the borrowing thread must let its own call return
// (it used to spin there for ever: only that thread can return its call).
TEST(CallersTurnsTest, APollingYieldLetsTheBorrowingThreadsOwnCallReturn) {
  for (const bool coroutine : {false, true}) {
    weft::runtime rt{weft::config{.workers = 2}};
    weft::latch opened(1);
    std::atomic<bool> first_in{false}, second_in{false}, poller_in{false}, first_returned{false};
    std::thread first([&] {
      rt.run([&] {
        first_in.store(true);
        opened.wait();
      });
      first_returned.store(true);
    });
    while (!first_in.load()) std::this_thread::yield();
    std::thread second([&] {
      rt.run([&] {
        second_in.store(true);
        while (!poller_in.load()) std::this_thread::yield();
        // Let the poller settle on the first thread (correct either way).
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        opened.count_down();
      });
    });
    while (!second_in.load()) std::this_thread::yield();
    auto poll = [&]() -> weft::task<void> {
      while (!first_returned.load()) co_await weft::yield_async();
    };
    std::thread third([&] {
      // Both slots are lent: after a bounded wait this call is handed over.
      rt.run([&] {
        poller_in.store(true);
        if (coroutine) {
          weft::sync_wait(poll());
        } else {
          while (!first_returned.load()) weft::yield();
        }
      });
    });
    first.join();
    second.join();
    third.join();
    EXPECT_TRUE(first_returned.load()) << (coroutine ? "coroutine" : "fiber");
  }
}

// Calls from outside over many light items at 2 workers: the other worker
// takes part of the loop, and the end game is split between them; the
// caller's join runs pieces of its own loop on its stack meanwhile
// (wait_for_pieces), and a piece's own wait there may move the call's fiber
// to the other worker. The join then went on as the worker it had left,
// pushing onto a queue it no longer owned (a protocol check, or a crash in a
// release build). Every item runs once per call.
TEST(CallersLoopTest, ManyCallsWhoseLoopsEndGameIsSplit) {
  weft::runtime rt{weft::config{.workers = 2}};
  constexpr std::size_t n = 100'000;
  const int calls = weft_test::k_sanitized ? 2000 : 40000;
  std::vector<int> runs(n, 0);
  for (int call = 0; call < calls; ++call) {
    rt.run([&] { weft::parallelize(n, [&](std::size_t i) { ++runs[i]; }); });
  }
  std::size_t wrong = 0;
  for (const int r : runs) wrong += r != calls ? 1 : 0;
  EXPECT_EQ(wrong, 0u);
}

}  // namespace
