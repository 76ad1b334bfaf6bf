// SPDX-License-Identifier: MIT
// std::exit with a runtime of static storage duration (or owned by a static):
// from inside one of its work items, from another thread while it is busy,
// from a default-runtime item: the process ends with the exit status, never a
// hang and never an abort (docs/reliability.md, "Process exit"). Each case
// runs tests/api/static_runtime_program in a child process.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "child_process.hpp"

namespace {

weft_test::child_result run_program(const std::string& which) {
  const char* program = std::getenv("WEFT_STATIC_RUNTIME_PROGRAM");
  if (program == nullptr) {
    weft_test::child_result r;
    r.err = "WEFT_STATIC_RUNTIME_PROGRAM is not set (run this test through meson test)";
    return r;
  }
  const std::string path = program;
  return weft_test::run_in_child(
      [path, which] {
        std::string p = path;
        std::string c = which;
        std::vector<char*> argv{p.data(), c.data(), nullptr};
        ::execv(p.c_str(), argv.data());
        std::fprintf(stderr, "execv failed: %s\n", std::strerror(errno));
        return 127;
      },
      std::chrono::seconds(20));
}

class StaticRuntimeExitTest : public ::testing::TestWithParam<const char*> {};

TEST_P(StaticRuntimeExitTest, EndsWithTheExitStatus) {
  const auto r = run_program(GetParam());
  EXPECT_TRUE(r.exited_with(7)) << r.describe();
  EXPECT_TRUE(r.lines_with("weft:").empty()) << r.describe();
}

INSTANTIATE_TEST_SUITE_P(Cases, StaticRuntimeExitTest,
                         ::testing::Values("idle", "exit-in-item", "exit-in-run", "exit-from-other-thread",
                                           "exit-from-default-runtime-item", "exit-from-main-while-busy",
                                           "owned-exit-from-other-thread", "owned-exit-in-item"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string name;
                           for (const char* p = info.param; *p != '\0'; ++p) {
                             if (*p != '-') name += (p == info.param || p[-1] == '-') ? static_cast<char>(*p - 32) : *p;
                           }
                           return name;
                         });

}  // namespace
