// SPDX-License-Identifier: MIT
// Benchmark support: an array updated in place by x[i] = x[i] * a + b, the
// element-wise work of the loop benchmarks, and the check that every variant
// applied the update exactly once per item per round.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "bench.hpp"

namespace bench {

class affine_array {
 public:
  // a = 1 and b = 2^-10, read through a volatile so that the compiler cannot
  // fold them (the multiplication stays). With these values the items neither
  // converge nor round: after r rounds item i holds exactly x0(i) + r b, so a
  // missed or doubled update always shows.
  explicit affine_array(std::size_t n) : m_x(n) {
    for (std::size_t i = 0; i < n; ++i) m_x[i] = static_cast<double>(i % 1024) * (1.0 / 512.0);
    const volatile double a = 1.0;
    const volatile double b = 1.0 / 1024.0;
    m_a = a;
    m_b = b;
  }

  double* data() { return m_x.data(); }
  std::size_t size() const { return m_x.size(); }
  double a() const { return m_a; }
  double b() const { return m_b; }

  // Remembers the current values of a few items, before a run of rounds.
  void begin() {
    m_samples.clear();
    for (std::size_t k = 0; k < k_samples; ++k) {
      const std::size_t i = sample(k);
      m_samples.push_back(m_x[i]);
    }
  }

  // Checks that the sampled items went through exactly `rounds` updates since
  // begin().
  bool end(benchmark::State& state, std::int64_t rounds) const {
    for (std::size_t k = 0; k < k_samples; ++k) {
      double v = m_samples[k];
      for (std::int64_t r = 0; r < rounds; ++r) v = v * m_a + m_b;
      const double got = m_x[sample(k)];
      if (got != v) {
        return check(state, false,
                     "wrong result at item " + std::to_string(sample(k)) + ": " + std::to_string(got) + ", expected " +
                         std::to_string(v));
      }
    }
    return true;
  }

 private:
  static constexpr std::size_t k_samples = 16;
  std::size_t sample(std::size_t k) const { return (k * 7919 * 1021 + k) % m_x.size(); }

  std::vector<double> m_x;
  double m_a;
  double m_b;
  std::vector<double> m_samples;
};

}  // namespace bench
