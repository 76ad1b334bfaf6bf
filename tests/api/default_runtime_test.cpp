// SPDX-License-Identifier: MIT
// The default runtime: built on first use from the environment (a bad
// WEFT_NUM_WORKERS or WEFT_STACK_SIZE is a clear error, and a later call tries
// again), and a process that used it exits cleanly.
//
// The default runtime exists once per process and reads the environment only
// when it is created, so every test here runs in a child process of its own.
// The parent never creates it: a forked child would inherit a runtime whose
// workers do not exist in the child.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

#include <weft/weft.hpp>

#include "child_process.hpp"

namespace {

using weft_test::run_in_child;

// Calls f and returns the message of the std::invalid_argument it threw, or
// "<none>" / "<other>".
template <class F>
std::string invalid_argument_of(F f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  } catch (...) {
    return "<other>";
  }
  return "<none>";
}

int parallel_count(int n) {
  std::atomic<int> calls{0};
  weft::parallelize(n, [&](int) { calls.fetch_add(1); });
  return calls.load();
}

TEST(DefaultRuntimeEnvTest, NumWorkersVariableSetsTheWorkerCount) {
  const auto r = run_in_child([] {
    ::setenv("WEFT_NUM_WORKERS", "3", 1);
    WEFT_CHILD_CHECK(weft::default_runtime().num_workers() == 3, 1);
    WEFT_CHILD_CHECK(parallel_count(1000) == 1000, 2);
    return 0;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

TEST(DefaultRuntimeEnvTest, BadNumWorkersIsAnErrorAndALaterCallTriesAgain) {
  for (const char* bad : {"abc", "-1", "0", "", "1x", "99999999999"}) {
    SCOPED_TRACE(::testing::Message() << "WEFT_NUM_WORKERS=\"" << bad << "\"");
    const auto r = run_in_child([bad] {
      ::setenv("WEFT_NUM_WORKERS", bad, 1);
      const std::string e1 = invalid_argument_of([] { weft::default_runtime(); });
      std::fprintf(stderr, "default_runtime(): %s\n", e1.c_str());
      WEFT_CHILD_CHECK(e1.find("WEFT_NUM_WORKERS") != std::string::npos, 1);
      // A call from outside needs the default runtime: the same error.
      const std::string e2 = invalid_argument_of([] { parallel_count(10); });
      std::fprintf(stderr, "parallelize(): %s\n", e2.c_str());
      WEFT_CHILD_CHECK(e2.find("WEFT_NUM_WORKERS") != std::string::npos, 2);
      const std::string e3 = invalid_argument_of([] { weft::join([] {}, [] {}); });
      WEFT_CHILD_CHECK(e3.find("WEFT_NUM_WORKERS") != std::string::npos, 3);
      // Fixed: the next call creates it.
      ::setenv("WEFT_NUM_WORKERS", "2", 1);
      WEFT_CHILD_CHECK(weft::default_runtime().num_workers() == 2, 4);
      WEFT_CHILD_CHECK(parallel_count(1000) == 1000, 5);
      return 0;
    });
    EXPECT_TRUE(r.exited_with(0)) << r.describe();
  }
}

TEST(DefaultRuntimeEnvTest, BadStackSizeIsAnErrorAndALaterCallTriesAgain) {
  for (const char* bad : {"abc", "", "1x", "-1", "100", "2G", "99999999999999999999"}) {
    SCOPED_TRACE(::testing::Message() << "WEFT_STACK_SIZE=\"" << bad << "\"");
    const auto r = run_in_child([bad] {
      ::setenv("WEFT_NUM_WORKERS", "2", 1);
      ::setenv("WEFT_STACK_SIZE", bad, 1);
      const std::string e = invalid_argument_of([] { weft::default_runtime(); });
      std::fprintf(stderr, "default_runtime(): %s\n", e.c_str());
      WEFT_CHILD_CHECK(e.find("WEFT_STACK_SIZE") != std::string::npos, 1);
      ::setenv("WEFT_STACK_SIZE", "1M", 1);
      WEFT_CHILD_CHECK(parallel_count(1000) == 1000, 2);
      return 0;
    });
    EXPECT_TRUE(r.exited_with(0)) << r.describe();
  }
}

// ---- process exit ----

TEST(DefaultRuntimeExitTest, ExitAfterUseIsClean) {
  const auto r = run_in_child([] {
    WEFT_CHILD_CHECK(parallel_count(10'000) == 10'000, 1);
    std::exit(0);  // runs static destructors, as returning from main does
    return 2;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

std::atomic<long> g_background_calls{0};

// Another thread keeps calling into the default runtime while the process
// exits: no hang, no crash in static destruction.
TEST(DefaultRuntimeExitTest, ExitWhileAnotherThreadIsCallingIsClean) {
  const auto r = run_in_child([] {
    std::thread([] {
      for (;;) weft::parallelize(1000, [](int) { g_background_calls.fetch_add(1, std::memory_order_relaxed); });
    }).detach();
    while (g_background_calls.load() < 10'000) std::this_thread::yield();
    std::exit(0);
    return 2;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

TEST(DefaultRuntimeExitTest, ExitFromInsideATaskIsClean) {
  const auto r = run_in_child([] {
    weft::parallelize(4, [](int i) {
      if (i == 2) std::exit(0);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    });
    return 2;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

// A runtime with static storage duration is destroyed during exit: its
// destructor joins its workers without hanging.
TEST(DefaultRuntimeExitTest, StaticRuntimeDestroyedAtExit) {
  const auto r = run_in_child([] {
    static weft::runtime rt{weft::config{.workers = 3}};
    std::atomic<int> calls{0};
    rt.run([&] { weft::parallelize(1000, [&](int) { calls.fetch_add(1); }); });
    WEFT_CHILD_CHECK(calls.load() == 1000, 1);
    std::exit(0);
    return 2;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

}  // namespace
