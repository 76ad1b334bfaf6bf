// A per-test timeout. Meson's timeout stops a whole executable; this names the
// test that hung. Every executable that includes a support header gets it.
//
// When one test runs longer than the limit (WEFT_TEST_TIMEOUT_S seconds, else
// 30, four times that under a sanitizer), the watchdog prints the test's name
// and aborts the process: a hang is a failure, never a stuck run.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include "sanitizers.hpp"

namespace weft_test {

namespace detail {

class watchdog final : public ::testing::EmptyTestEventListener {
 public:
  // The state lives on the heap and is never freed: the checking thread may
  // still wait on it while the process exits.
  struct state {
    std::mutex m_mutex;
    std::condition_variable m_changed;
    std::string m_test;             // empty: no test running
    std::uint64_t m_generation = 0;  // counts test starts
    std::chrono::steady_clock::time_point m_deadline;
    std::chrono::seconds m_limit{30};
  };

  explicit watchdog(state* s) : m_state(s) {}

  void OnTestStart(const ::testing::TestInfo& info) override {
    std::lock_guard lock(m_state->m_mutex);
    m_state->m_test = std::string(info.test_suite_name()) + "." + info.name();
    ++m_state->m_generation;
    m_state->m_deadline = std::chrono::steady_clock::now() + m_state->m_limit;
    m_state->m_changed.notify_all();
  }

  void OnTestEnd(const ::testing::TestInfo&) override {
    std::lock_guard lock(m_state->m_mutex);
    m_state->m_test.clear();
    m_state->m_changed.notify_all();
  }

  // The checking thread. It keeps nothing on the heap of its own (a forked
  // child has no such thread, and a leak checker there would see its memory
  // as leaked).
  static void check(state* s) {
    std::unique_lock lock(s->m_mutex);
    for (;;) {
      if (s->m_test.empty()) {
        s->m_changed.wait(lock);
        continue;
      }
      const std::uint64_t generation = s->m_generation;
      const auto deadline = s->m_deadline;
      if (s->m_changed.wait_until(lock, deadline) == std::cv_status::timeout && !s->m_test.empty() &&
          s->m_generation == generation) {
        std::fprintf(stderr, "\nwatchdog: %s ran longer than %lld s; aborting (a hang is a failure)\n",
                     s->m_test.c_str(), static_cast<long long>(s->m_limit.count()));
        std::fflush(stderr);
        std::abort();
      }
    }
  }

 private:
  state* m_state;
};

inline bool install_watchdog() {
  auto* s = new watchdog::state;
  long long limit = 30 * (k_sanitized ? 4 : 1);
  if (const char* env = std::getenv("WEFT_TEST_TIMEOUT_S"); env != nullptr && std::atoll(env) > 0) {
    limit = std::atoll(env);
  }
  s->m_limit = std::chrono::seconds(limit);
  ::testing::UnitTest::GetInstance()->listeners().Append(new watchdog(s));
  std::thread(&watchdog::check, s).detach();
  return true;
}

}  // namespace detail

// Installed once per executable, before main() runs.
inline const bool k_watchdog_installed = detail::install_watchdog();

}  // namespace weft_test
