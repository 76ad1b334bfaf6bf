// SPDX-License-Identifier: MIT
// Forking from a test child: run weft calls in a grandchild process and
// report how it ended (tests/death/fork*_test.cpp).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <string>

#include "child_process.hpp"
#include "sanitizers.hpp"

namespace weft_test {

// How long a forked grandchild may take: a hang is reported, not waited for.
inline constexpr auto k_grandchild_timeout = std::chrono::seconds(5 * (k_sanitized ? 3 : 1));

// Runs `use` in a grandchild; returns 0 when it completed (or failed with an
// error that names fork: a clear error), 1 when it hung, 2 when it crashed,
// else its exit code. Describes every outcome but success on stderr.
template <class F>
int fork_and_use(F use) {
  const auto g = run_in_child(
      [&] {
        try {
          return use();
        } catch (const std::exception& e) {
          std::fprintf(stderr, "grandchild: error: %s\n", e.what());
          return std::string(e.what()).find("fork") != std::string::npos ? 0 : 30;
        }
      },
      k_grandchild_timeout);
  if (g.timed_out) {
    std::fprintf(stderr, "grandchild hung: %s\n", g.describe().c_str());
    return 1;
  }
  if (!g.exited) {
    std::fprintf(stderr, "grandchild crashed: %s\n", g.describe().c_str());
    return 2;
  }
  if (g.exit_code != 0) std::fprintf(stderr, "grandchild: %s\n", g.describe().c_str());
  return g.exit_code;
}

}  // namespace weft_test

// ThreadSanitizer kills a child that starts threads after a fork of a
// multi-threaded process: exactly what the fork tests do.
#define WEFT_SKIP_UNDER_TSAN() \
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer does not support threads after a multi-threaded fork"
