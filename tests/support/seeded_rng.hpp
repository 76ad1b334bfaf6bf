// SPDX-License-Identifier: MIT
// Seeded randomness whose seed is printed with every failure.
//
//   weft_test::seeded_rng rng;            // seed from WEFT_TEST_SEED, else random
//   std::uniform_int_distribution<int> d(0, 9);
//   int x = d(rng);
//
// While the object lives, every failing assertion in the test is reported with
// "seed: N" (a GoogleTest scoped trace); rerun with WEFT_TEST_SEED=N to repeat
// the same choices.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>

#include "call_site.hpp"

namespace weft_test {

// The seed a test should use: WEFT_TEST_SEED when set (a decimal number),
// else a fresh one from std::random_device.
inline std::uint64_t test_seed() {
  if (const char* env = std::getenv("WEFT_TEST_SEED"); env != nullptr && *env != '\0') {
    return std::strtoull(env, nullptr, 10);
  }
  std::random_device rd;
  return (std::uint64_t{rd()} << 32) ^ rd();
}

// A std::mt19937_64 that reports its seed on failure while it lives. Declare
// it in the scope whose failures it should annotate (usually the test body).
class seeded_rng {
 public:
  using result_type = std::mt19937_64::result_type;

  explicit seeded_rng(std::uint64_t seed = test_seed(), call_site where = {})
      : m_seed(seed),
        m_trace(where.m_file, where.m_line,
                "seed: " + std::to_string(seed) + " (rerun with WEFT_TEST_SEED=" + std::to_string(seed) + ")"),
        m_engine(seed) {}

  seeded_rng(const seeded_rng&) = delete;
  seeded_rng& operator=(const seeded_rng&) = delete;

  std::uint64_t seed() const noexcept { return m_seed; }

  static constexpr result_type min() { return std::mt19937_64::min(); }
  static constexpr result_type max() { return std::mt19937_64::max(); }
  result_type operator()() { return m_engine(); }

  // A uniform integer in [lo, hi].
  template <class T>
  T uniform(T lo, T hi) {
    return std::uniform_int_distribution<T>(lo, hi)(m_engine);
  }

 private:
  std::uint64_t m_seed;
  ::testing::ScopedTrace m_trace;
  std::mt19937_64 m_engine;
};

}  // namespace weft_test
