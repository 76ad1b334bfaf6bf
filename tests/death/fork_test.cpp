// SPDX-License-Identifier: MIT
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
#include "fork_child.hpp"
#include "sanitizers.hpp"

namespace {

using weft_test::fork_and_use;
using weft_test::run_in_child;

int count_items(int n) {
  std::atomic<int> calls{0};
  weft::parallelize(n, [&](int) { calls.fetch_add(1); });
  return calls.load();
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
