// SPDX-License-Identifier: MIT
// Worker-count parameterisation shared by the test suites.
//
//   class ParallelizeTest : public weft_test::WorkerCount {};
//   TEST_P(ParallelizeTest, CoversEveryIndex) { ... rt.run(...) ... }
//   WEFT_INSTANTIATE_WORKER_COUNTS(ParallelizeTest);
//
// Every test of such a suite runs once per worker count in k_worker_counts,
// against its own runtime `rt`, created before the test body and destroyed
// after it. Test names read "Workers/ParallelizeTest.CoversEveryIndex/Workers3".
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <string>

#include <weft/weft.hpp>

#include "watchdog.hpp"

namespace weft_test {

// One worker (no stealing at all), two and three (odd splits), and more
// workers than the machine has cores (oversubscription, preemption).
inline constexpr std::array<int, 4> k_worker_counts{1, 2, 3, 8};

inline std::string worker_count_name(const ::testing::TestParamInfo<int>& info) {
  return "Workers" + std::to_string(info.param);
}

// A fixture that owns a runtime of GetParam() workers.
class WorkerCount : public ::testing::TestWithParam<int> {
 protected:
  int workers() const { return GetParam(); }

  weft::runtime rt{weft::config{.workers = GetParam()}};
};

}  // namespace weft_test

// Instantiates a WorkerCount-derived suite for every count in k_worker_counts.
#define WEFT_INSTANTIATE_WORKER_COUNTS(suite)                                                 \
  INSTANTIATE_TEST_SUITE_P(Workers, suite, ::testing::ValuesIn(::weft_test::k_worker_counts), \
                           ::weft_test::worker_count_name)
