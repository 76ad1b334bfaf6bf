// SPDX-License-Identifier: MIT
// weft after main returns: static destructors and atexit handlers that call
// into the default runtime (reliability.md, "Callers": the default runtime at
// process exit). The default runtime is never destroyed, so such calls work;
// a destructor may even be the first weft call of the process.
//
// Each case runs this executable again, in a child process, with one helper
// test selected (the ProcessExitHelper tests are DISABLED_: they run only
// when asked for by name). The helper arms a static object (or registers an
// atexit handler) and passes; GoogleTest's main() then returns, and exit()
// runs the handlers and destructors, which call weft and print what they
// got. The parent checks the exit code and those lines. (tests/api/
// default_runtime_test.cpp covers exit() called from the middle of a run.)
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <weft/weft.hpp>

#include "child_process.hpp"

namespace {

using weft_test::run_in_child;

int parallel_count(int n) {
  std::atomic<int> calls{0};
  weft::parallelize(n, [&](int) { calls.fetch_add(1, std::memory_order_relaxed); });
  return calls.load();
}

// Several kinds of weft call, and one line that says what they returned.
void call_weft_and_report(const char* who) {
  const int n = parallel_count(1000);
  auto [a, b] = weft::join([] { return 1; }, [] { return 2; });
  std::atomic<int> spawned{0};
  weft::task_group g;
  for (int i = 0; i < 10; ++i) g.spawn([&] { spawned.fetch_add(1); });
  g.wait();
  const long sum = weft::parallel_reduce(
      0, 1000, 0L, [](int i) { return static_cast<long>(i); }, std::plus<>{});
  std::fprintf(stderr, "%s: parallelize %d, join %d, task_group %d, reduce %ld\n", who, n, a + b, spawned.load(), sum);
  std::fflush(stderr);
}

constexpr const char* k_expected_results = "parallelize 1000, join 3, task_group 10, reduce 499500";

// Calls weft from its destructor when armed.
struct weft_at_destruction {
  const char* m_name;
  bool m_armed = false;
  ~weft_at_destruction() {
    if (m_armed) call_weft_and_report(m_name);
  }
};

// Constructed before main(), destroyed after every static constructed later.
weft_at_destruction g_namespace_scope{"namespace-scope static"};

void at_exit_handler() { call_weft_and_report("atexit handler"); }

std::atomic<bool> g_background_started{false};

// ---- helpers, run in the child only ----

TEST(ProcessExitHelper, DISABLED_FunctionLocalStatic) {
  EXPECT_EQ(parallel_count(100), 100);  // the default runtime exists before the static
  static weft_at_destruction local{"function-local static"};
  local.m_armed = true;
}

TEST(ProcessExitHelper, DISABLED_FirstWeftCallInAStaticDestructor) {
  static weft_at_destruction local{"first call in a destructor"};
  local.m_armed = true;
}

TEST(ProcessExitHelper, DISABLED_NamespaceScopeStatic) {
  EXPECT_EQ(parallel_count(100), 100);
  g_namespace_scope.m_armed = true;
}

TEST(ProcessExitHelper, DISABLED_AtexitHandler) {
  EXPECT_EQ(parallel_count(100), 100);
  EXPECT_EQ(std::atexit(&at_exit_handler), 0);
}

// Another thread is still calling weft while main returns and a destructor
// calls weft too.
TEST(ProcessExitHelper, DISABLED_DestructorWhileAnotherThreadCalls) {
  static weft_at_destruction local{"destructor beside a busy thread"};
  local.m_armed = true;
  std::thread([] {
    for (;;) {
      parallel_count(1000);
      g_background_started.store(true);
    }
  }).detach();
  while (!g_background_started.load()) std::this_thread::yield();
}

// ---- the cases ----

// Runs this executable again with only ProcessExitHelper.DISABLED_<helper>.
weft_test::child_result run_helper(const std::string& helper) {
  return weft_test::run_program_in_child(
      "/proc/self/exe", {"--gtest_filter=ProcessExitHelper.DISABLED_" + helper, "--gtest_also_run_disabled_tests"},
      std::chrono::seconds(20 * (weft_test::k_sanitized ? 3 : 1)), [] { ::setenv("WEFT_NUM_WORKERS", "3", 1); });
}

void expect_clean_exit_with_line(const std::string& helper, const std::string& who) {
  const auto r = run_helper(helper);
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
  EXPECT_EQ(r.lines_with(who + ": " + k_expected_results).size(), 1u)
      << "expected one line \"" << who << ": " << k_expected_results << "\"; " << r.describe();
}

TEST(ProcessExitTest, FunctionLocalStaticCallsWeftAfterMainReturns) {
  expect_clean_exit_with_line("FunctionLocalStatic", "function-local static");
}

TEST(ProcessExitTest, DefaultRuntimeCreatedInAStaticDestructor) {
  expect_clean_exit_with_line("FirstWeftCallInAStaticDestructor", "first call in a destructor");
}

TEST(ProcessExitTest, NamespaceScopeStaticCallsWeftAfterMainReturns) {
  expect_clean_exit_with_line("NamespaceScopeStatic", "namespace-scope static");
}

TEST(ProcessExitTest, AtexitHandlerCallsWeft) { expect_clean_exit_with_line("AtexitHandler", "atexit handler"); }

TEST(ProcessExitTest, DestructorCallsWeftWhileAnotherThreadStillCalls) {
  expect_clean_exit_with_line("DestructorWhileAnotherThreadCalls", "destructor beside a busy thread");
}

}  // namespace
