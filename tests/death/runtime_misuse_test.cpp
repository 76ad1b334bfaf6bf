// SPDX-License-Identifier: MIT
// Misuse that the runtime cannot recover from ends the process loudly (one
// clear line, then abort) instead of hanging. Every case runs in a child
// process.
#include <gtest/gtest.h>

#include <signal.h>

#include <string>

#include <weft/weft.hpp>

#include "child_process.hpp"
#include "worker_count.hpp"

namespace {

using weft_test::run_in_child;

class RuntimeMisuseTest : public ::testing::TestWithParam<int> {};

// ~runtime() must not be called from one of its own workers: it would wait
// for itself forever.
TEST_P(RuntimeMisuseTest, DestroyingARuntimeFromItsOwnWorkerAborts) {
  const int w = GetParam();
  const auto r = run_in_child([w] {
    auto* rt = new weft::runtime{weft::config{.workers = w}};
    rt->run([rt] { delete rt; });
    return 3;
  });
  EXPECT_TRUE(r.killed_by(SIGABRT)) << r.describe();
  const auto lines = r.lines_with("weft:");
  ASSERT_EQ(lines.size(), 1u) << r.describe();
  EXPECT_NE(lines[0].find("destroyed"), std::string::npos) << r.describe();
}

// The same from a task nested deeper (inside a parallel loop).
TEST_P(RuntimeMisuseTest, DestroyingARuntimeFromANestedTaskAborts) {
  const int w = GetParam();
  const auto r = run_in_child([w] {
    auto* rt = new weft::runtime{weft::config{.workers = w}};
    rt->run([rt] {
      weft::parallelize(4, [rt](int i) {
        if (i == 3) delete rt;
      });
    });
    return 3;
  });
  EXPECT_TRUE(r.killed_by(SIGABRT)) << r.describe();
  EXPECT_EQ(r.lines_with("weft:").size(), 1u) << r.describe();
}

INSTANTIATE_TEST_SUITE_P(Workers, RuntimeMisuseTest, ::testing::ValuesIn(weft_test::k_worker_counts),
                         weft_test::worker_count_name);

}  // namespace
