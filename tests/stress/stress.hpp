// SPDX-License-Identifier: MIT
// Shared pieces of the stress suite: the time budget of a test, errors
// reported from any thread, and a ledger that finds items lost or taken
// twice.
//
// Every stress test runs for a fixed wall-clock budget (seconds times
// WEFT_STRESS_SCALE, a positive float, default 1; sanitizer CI builds set it
// lower), then checks its invariants, and prints its seed and how many
// operations it did. Hangs are failures: each test bounds its waits with a
// deadline, and tests/support/watchdog.hpp bounds the whole test.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "platform.hpp"
#include "watchdog.hpp"

namespace weft_test::stress {

using clock_type = std::chrono::steady_clock;

// WEFT_STRESS_SCALE, or 1 when unset; a value that is not a positive number
// is reported and ignored.
inline double scale() {
  const char* env = std::getenv("WEFT_STRESS_SCALE");
  if (env == nullptr || *env == '\0') return 1.0;
  char* end = nullptr;
  const double v = std::strtod(env, &end);
  if (end == env || *end != '\0' || !(v > 0.0) || v > 1000.0) {
    std::fprintf(stderr, "WEFT_STRESS_SCALE=\"%s\" is not a positive number; using 1\n", env);
    return 1.0;
  }
  return v;
}

// The wall-clock budget of a test: `seconds` scaled, at least 20 ms.
inline clock_type::duration budget(double seconds) {
  const double s = seconds * scale();
  return std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(s < 0.02 ? 0.02 : s));
}

// How long a wait for progress may take before it counts as a hang. Not
// scaled down: a slow (sanitized, oversubscribed) machine must not fail.
inline constexpr auto k_stall_limit = std::chrono::seconds(5);

// Prints one line of statistics; it lands in the test log (meson-logs).
template <class... Args>
void report(const char* format, Args... args) {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::printf("[stress] %s.%s: ", info->test_suite_name(), info->name());
  std::printf(format, args...);
  std::printf("\n");
  std::fflush(stdout);
}

// The first error seen by any thread (GoogleTest assertions belong on the
// main thread, which checks this after joining).
class errors {
 public:
  void add(std::string what) {
    m_count.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(m_mutex);
    if (m_first.empty()) m_first = std::move(what);
  }
  bool any() const { return m_count.load(std::memory_order_relaxed) != 0; }
  std::string summary() const {
    std::lock_guard lock(m_mutex);
    return std::to_string(m_count.load(std::memory_order_relaxed)) + " error(s); first: " + m_first;
  }

 private:
  mutable std::mutex m_mutex;
  std::atomic<std::uint64_t> m_count{0};
  std::string m_first;
};

// Unique items encoded as pointers that are never dereferenced: id i is the
// address (i + 1) * 16, never null.
template <class T>
T* item_ptr(std::uint64_t id) {
  return reinterpret_cast<T*>(static_cast<std::uintptr_t>((id + 1) * 16));
}
template <class T>
std::uint64_t item_id(const T* p) {
  return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(p) / 16 - 1);
}

// Counts how often each of the ids [0, capacity) was received; receive()
// reports a second receipt at once, check() reports the ids never received.
class ledger {
 public:
  explicit ledger(std::uint64_t capacity)
      : m_capacity(capacity), m_counts(std::make_unique<std::atomic<std::uint8_t>[]>(capacity)) {}

  std::uint64_t capacity() const { return m_capacity; }

  // Any thread.
  void receive(std::uint64_t id, errors& errs, const char* who) {
    if (id >= m_capacity) {
      errs.add(std::string(who) + " received an id out of range: " + std::to_string(id));
      return;
    }
    if (m_counts[id].fetch_add(1, std::memory_order_relaxed) != 0) {
      errs.add(std::string(who) + " received id " + std::to_string(id) + " a second time");
    }
  }

  // After every thread is joined: each of the ids [0, issued) received
  // exactly once, none beyond. Returns a description of the first problems.
  std::string check(std::uint64_t issued) const {
    std::uint64_t lost = 0;
    std::uint64_t twice = 0;
    std::string first;
    for (std::uint64_t i = 0; i < m_capacity; ++i) {
      const unsigned c = m_counts[i].load(std::memory_order_relaxed);
      const unsigned want = i < issued ? 1 : 0;
      if (c == want) continue;
      if (c < want) {
        ++lost;
      } else {
        ++twice;
      }
      if (first.empty()) first = "id " + std::to_string(i) + " received " + std::to_string(c) + " times";
    }
    if (lost == 0 && twice == 0) return {};
    return std::to_string(lost) + " lost, " + std::to_string(twice) + " received too often; " + first;
  }

 private:
  std::uint64_t m_capacity;
  std::unique_ptr<std::atomic<std::uint8_t>[]> m_counts;
};

// A small fast generator for the threads of a test (xorshift64*), seeded
// from the test's seed and the thread's number.
class fast_rng {
 public:
  explicit fast_rng(std::uint64_t seed) : m_state(seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL) {
    if (m_state == 0) m_state = 1;
  }
  std::uint64_t operator()() {
    m_state ^= m_state >> 12;
    m_state ^= m_state << 25;
    m_state ^= m_state >> 27;
    return m_state * 0x2545F4914F6CDD1DULL;
  }
  // Uniform enough in [0, n).
  std::uint64_t below(std::uint64_t n) { return (*this)() % n; }
  bool one_in(std::uint64_t n) { return below(n) == 0; }

 private:
  std::uint64_t m_state;
};

// Spins for about n pause instructions (a random delay between steps).
inline void spin(std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) weft::rt::cpu_relax();
}

// Waits until pred() holds, yielding; false when `limit` passed first.
template <class Pred>
bool wait_until(Pred pred, clock_type::duration limit = k_stall_limit) {
  const auto deadline = clock_type::now() + limit;
  for (unsigned i = 0; !pred(); ++i) {
    if ((i & 63) == 63 && clock_type::now() > deadline) return pred();
    std::this_thread::yield();
  }
  return true;
}

}  // namespace weft_test::stress
