// fork() in a process that has a running runtime: the child either gets a
// working runtime or a clear error, never a hang (reliability.md, "Callers").
//
// Each case runs in a child process C that starts a runtime and uses it, then
// forks a grandchild G that makes weft calls. C reports how G ended: G must
// finish (exit 0 after its calls completed) or fail with a message; G hanging
// is the failure this file exists to catch.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <exception>
#include <string>

#include <weft/weft.hpp>

#include "child_process.hpp"
#include "sanitizers.hpp"

namespace {

using weft_test::run_in_child;

constexpr auto k_grandchild_timeout = std::chrono::seconds(5);

int count_items(int n) {
  std::atomic<int> calls{0};
  weft::parallelize(n, [&](int) { calls.fetch_add(1); });
  return calls.load();
}

// Runs `use` in a grandchild forked while the calling process has runtimes
// running; returns C's exit code: 0 when G completed or failed with an error
// that names fork, 1 when G hung, 2 when G crashed, else G's exit code.
// ThreadSanitizer cannot follow a child that starts threads after a fork of a
// multi-threaded process (it kills such a child), and that is the very case
// here.
#define WEFT_SKIP_UNDER_TSAN() \
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer does not support threads after a multi-threaded fork"

template <class F>
int fork_and_use(F use) {
  const auto g = run_in_child(
      [&] {
        try {
          return use();
        } catch (const std::exception& e) {
          // A clear error says what happened: it names fork.
          std::fprintf(stderr, "grandchild: error: %s\n", e.what());
          return std::string(e.what()).find("fork") != std::string::npos ? 0 : 30;
        }
      },
      k_grandchild_timeout);
  std::fprintf(stderr, "grandchild: %s\n", g.describe().c_str());
  if (g.timed_out) return 1;
  if (!g.exited) return 2;
  return g.exit_code;
}

TEST(ForkTest, DefaultRuntimeInTheForkedChildWorksOrFailsClearly) {
  WEFT_SKIP_UNDER_TSAN();
  const auto r = run_in_child([] {
    WEFT_CHILD_CHECK(count_items(1000) == 1000, 10);
    return fork_and_use([] { return count_items(1000) == 1000 ? 0 : 20; });
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

TEST(ForkTest, ExplicitRuntimeInTheForkedChildWorksOrFailsClearly) {
  WEFT_SKIP_UNDER_TSAN();
  const auto r = run_in_child([] {
    weft::runtime rt{weft::config{.workers = 2}};
    WEFT_CHILD_CHECK(rt.run([] { return count_items(1000); }) == 1000, 10);
    return fork_and_use([&rt] { return rt.run([] { return count_items(1000); }) == 1000 ? 0 : 20; });
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

// The child may destroy a runtime it inherited: no hang, no crash.
TEST(ForkTest, InheritedRuntimeCanBeDestroyedInTheForkedChild) {
  WEFT_SKIP_UNDER_TSAN();
  const auto r = run_in_child([] {
    auto* rt = new weft::runtime{weft::config{.workers = 3}};
    WEFT_CHILD_CHECK(rt->run([] { return count_items(1000); }) == 1000, 10);
    const int code = fork_and_use([rt] {
      delete rt;
      return 0;
    });
    delete rt;  // and the parent still can
    return code;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

// A runtime created after the fork, in the child, always works.
TEST(ForkTest, NewRuntimeInTheForkedChildWorks) {
  WEFT_SKIP_UNDER_TSAN();
  const auto r = run_in_child([] {
    weft::runtime rt{weft::config{.workers = 2}};
    WEFT_CHILD_CHECK(rt.run([] { return count_items(1000); }) == 1000, 10);
    return fork_and_use([] {
      weft::runtime fresh{weft::config{.workers = 2}};
      return fresh.run([] { return count_items(1000); }) == 1000 ? 0 : 20;
    });
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

}  // namespace
