// SPDX-License-Identifier: MIT
// weft::join(f, g): both calls run exactly once, their results come back
// (values, move-only values, references, void), and it nests and recurses.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>

#include <weft/weft.hpp>

#include "worker_count.hpp"

namespace {

std::uint64_t fib_join(int n) {
  if (n < 2) return static_cast<std::uint64_t>(n);
  auto [a, b] = weft::join([n] { return fib_join(n - 1); }, [n] { return fib_join(n - 2); });
  return a + b;
}

constexpr std::uint64_t fib_serial(int n) {
  return n < 2 ? static_cast<std::uint64_t>(n) : fib_serial(n - 1) + fib_serial(n - 2);
}

// A chain of nested joins `depth` deep; the counted leaves are the g sides.
int chain(int depth) {
  if (depth == 0) return 0;
  auto [rest, one] = weft::join([depth] { return chain(depth - 1); }, [] { return 1; });
  return rest + one;
}

class JoinTest : public weft_test::WorkerCount {};

TEST_P(JoinTest, RunsEachCallExactlyOnce) {
  for (int round = 0; round < 200; ++round) {
    std::atomic<int> f_calls{0};
    std::atomic<int> g_calls{0};
    rt.run([&] { weft::join([&] { f_calls.fetch_add(1); }, [&] { g_calls.fetch_add(1); }); });
    ASSERT_EQ(f_calls.load(), 1) << "round " << round;
    ASSERT_EQ(g_calls.load(), 1) << "round " << round;
  }
}

TEST_P(JoinTest, ReturnsVoidWhenBothReturnVoid) {
  std::atomic<int> calls{0};
  rt.run([&] {
    auto f = [&] { calls.fetch_add(1); };
    static_assert(std::is_void_v<decltype(weft::join(f, f))>);
    weft::join(f, f);
  });
  EXPECT_EQ(calls.load(), 2);
}

TEST_P(JoinTest, ReturnsPairOfResults) {
  auto [a, b] = rt.run([] { return weft::join([] { return 42; }, [] { return std::string("weft"); }); });
  EXPECT_EQ(a, 42);
  EXPECT_EQ(b, "weft");
}

TEST_P(JoinTest, VoidSideIsMonostate) {
  std::atomic<int> calls{0};
  auto r1 = rt.run([&] { return weft::join([&] { calls.fetch_add(1); }, [] { return 7; }); });
  static_assert(std::is_same_v<decltype(r1), std::pair<std::monostate, int>>);
  EXPECT_EQ(r1.second, 7);
  auto r2 = rt.run([&] { return weft::join([] { return 8; }, [&] { calls.fetch_add(1); }); });
  static_assert(std::is_same_v<decltype(r2), std::pair<int, std::monostate>>);
  EXPECT_EQ(r2.first, 8);
  EXPECT_EQ(calls.load(), 2);
}

TEST_P(JoinTest, ReturnsMoveOnlyResults) {
  auto [a, b] = rt.run([] {
    return weft::join([] { return std::make_unique<int>(1); }, [] { return std::make_unique<std::string>("two"); });
  });
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(*a, 1);
  EXPECT_EQ(*b, "two");
}

// Calls that return a const move-only value: the pair (whose member drops
// the const) and run() hand it on, moved out of where the call put it. Did
// not compile: a const value could only be copied.
TEST_P(JoinTest, ReturnsConstMoveOnlyResults) {
  using const_ptr = const std::unique_ptr<int>;
  auto r = rt.run([]() -> const_ptr {
    auto [a, b] =
        weft::join([]() -> const_ptr { return std::make_unique<int>(1); }, [] { return std::make_unique<int>(2); });
    static_assert(std::is_same_v<decltype(a), std::unique_ptr<int>>);  // the pair's member is not const
    return std::make_unique<int>(*a + *b);
  });
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(*r, 3);
  auto [c, d] = weft::join([] {}, []() -> const_ptr { return std::make_unique<int>(4); });  // from outside
  static_assert(std::is_same_v<decltype(c), std::monostate>);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(*d, 4);
}

TEST_P(JoinTest, ReturnsReferences) {
  int x = 1;
  const std::string s = "ref";
  auto r = rt.run([&] { return weft::join([&]() -> int& { return x; }, [&]() -> const std::string& { return s; }); });
  static_assert(std::is_same_v<decltype(r), std::pair<int&, const std::string&>>);
  EXPECT_EQ(&r.first, &x);
  EXPECT_EQ(&r.second, &s);
  r.first = 5;
  EXPECT_EQ(x, 5);
}

TEST_P(JoinTest, AcceptsLvalueAndMutableCallables) {
  int f_state = 0;
  int g_state = 0;
  auto f = [&f_state]() mutable { return ++f_state; };
  auto g = [&g_state, calls = 0]() mutable { return g_state = ++calls; };
  auto [a, b] = rt.run([&] { return weft::join(f, g); });
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 1);
  EXPECT_EQ(f_state, 1);
  EXPECT_EQ(g_state, 1);
}

TEST_P(JoinTest, RecursiveFibonacciIsExact) {
  EXPECT_EQ(rt.run([] { return fib_join(22); }), fib_serial(22));
}

TEST_P(JoinTest, CallsSeeWorkersOfTheirRuntime) {
  std::atomic<int> bad{0};
  rt.run([&] {
    weft::parallelize(64, [&](int) {
      weft::join(
          [&] {
            if (!weft::on_worker() || weft::worker_index() < 0 || weft::worker_index() >= workers()) bad.fetch_add(1);
          },
          [&] {
            if (!weft::on_worker() || weft::worker_index() < 0 || weft::worker_index() >= workers()) bad.fetch_add(1);
          });
    });
  });
  EXPECT_EQ(bad.load(), 0);
}

// f may wait for g by yielding: g is ready work of this worker (or runs on
// another one), so this completes with any number of workers.
TEST_P(JoinTest, FirstCallCanWaitForSecondByYielding) {
  std::atomic<bool> g_done{false};
  rt.run([&] {
    weft::join(
        [&] {
          while (!g_done.load()) weft::yield();
        },
        [&] { g_done.store(true); });
  });
  EXPECT_TRUE(g_done.load());
}

// 2000 nested joins: the runtime must not run out of stack.
TEST_P(JoinTest, Recursion2000DeepCompletes) {
  EXPECT_EQ(rt.run([] { return chain(2000); }), 2000);
}

TEST_P(JoinTest, NestedInsideParallelize) {
  std::atomic<std::uint64_t> total{0};
  rt.run([&] { weft::parallelize(20, [&](int) { total.fetch_add(fib_join(12)); }); });
  EXPECT_EQ(total.load(), 20 * fib_serial(12));
}

WEFT_INSTANTIATE_WORKER_COUNTS(JoinTest);

// A join whose other half was taken watches it in place before it suspends
// (docs/protocols/join.md, "Watching before suspending"), and must still let
// its worker run what only that worker can: here g, on the other worker,
// waits for a call from another thread, which needs f's worker (the one
// that waits in the join) since g's is busy.
TEST(JoinWaitTest, AWaitingJoinLetsAnotherThreadsCallRunOnItsWorker) {
  weft::runtime rt{weft::config{.workers = 2}};
  for (int round = 0; round < 20; ++round) {
    std::atomic<bool> g_started{false};
    std::atomic<bool> call_ran{false};
    std::thread outside;
    rt.run([&] {
      weft::join(
          [&] {
            // Holds this worker until the other one took g.
            while (!g_started.load()) std::this_thread::yield();
          },
          [&] {
            g_started.store(true);
            outside = std::thread([&] { rt.run([&] { call_ran.store(true); }); });
            while (!call_ran.load()) std::this_thread::sleep_for(std::chrono::microseconds(50));
          });
    });
    outside.join();
    EXPECT_TRUE(call_ran.load());
  }
}

TEST(JoinOutsideTest, RunsInDefaultRuntimeFromOutside) {
  auto [a, b] = weft::join([] { return fib_join(15); }, [] { return weft::on_worker(); });
  EXPECT_EQ(a, fib_serial(15));
  (void)b;  // where g runs is the runtime's choice
  EXPECT_FALSE(weft::on_worker());
  EXPECT_EQ(weft::worker_index(), -1);
}

}  // namespace
