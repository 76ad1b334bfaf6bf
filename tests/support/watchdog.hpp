// SPDX-License-Identifier: MIT
// A per-test timeout. Meson's timeout stops a whole executable; this names the
// test that hung. Every executable that includes a support header gets it.
//
// When one test runs longer than the limit (WEFT_TEST_TIMEOUT_S seconds, else
// 30, four times that under a sanitizer), the watchdog prints the test's name
// and aborts the process: a hang is a failure, never a stuck run.
//
// It is a SIGALRM timer, not a thread: a test process stays single-threaded
// unless a test starts threads, so that children it forks may start threads
// of their own (ThreadSanitizer forbids that after a multi-threaded fork),
// and a forked child never inherits the timer.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "sanitizers.hpp"

namespace weft_test {

namespace detail {

class watchdog final : public ::testing::EmptyTestEventListener {
 public:
  // The line printed on a timeout; written before the timer is armed, read
  // only by the signal handler.
  static inline char s_message[512];
  static inline std::size_t s_length = 0;
  static inline unsigned s_limit_s = 30;

  void OnTestStart(const ::testing::TestInfo& info) override {
    const int n = std::snprintf(s_message, sizeof s_message,
                                "\nwatchdog: %s.%s ran longer than %u s; aborting (a hang is a failure)\n",
                                info.test_suite_name(), info.name(), s_limit_s);
    s_length =
        n < 0 ? 0
              : (static_cast<std::size_t>(n) < sizeof s_message ? static_cast<std::size_t>(n) : sizeof s_message - 1);
    ::alarm(s_limit_s);
  }

  void OnTestEnd(const ::testing::TestInfo&) override { ::alarm(0); }

  static void on_alarm(int) {
    ssize_t ignored = ::write(STDERR_FILENO, s_message, s_length);
    (void)ignored;
    std::abort();
  }
};

inline bool install_watchdog() {
  long long limit = 30 * (k_sanitized ? 4 : 1);
  if (const char* env = std::getenv("WEFT_TEST_TIMEOUT_S"); env != nullptr && std::atoll(env) > 0) {
    limit = std::atoll(env);
  }
  watchdog::s_limit_s = static_cast<unsigned>(limit);
  struct sigaction sa {};
  sa.sa_handler = &watchdog::on_alarm;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGALRM, &sa, nullptr);
  ::testing::UnitTest::GetInstance()->listeners().Append(new watchdog);
  return true;
}

}  // namespace detail

// Installed once per executable, before main() runs.
inline const bool k_watchdog_installed = detail::install_watchdog();

}  // namespace weft_test
