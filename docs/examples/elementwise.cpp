// SPDX-License-Identifier: MIT
// Element-wise updates: y = a * x + y with weft::parallelize (one call per
// index), then a clamp with weft::parallel_for (one call per chunk, for
// loops that want per-chunk setup). Checks both against serial loops and
// exits 1 on a mismatch. Usage: elementwise [n]
#include <weft/weft.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : std::size_t{1} << 20;
  const double a = 3.0;

  // Integer-valued doubles: every result is exact, so equality is the check.
  std::vector<double> x(n);
  std::vector<double> y(n);
  for (std::size_t i = 0; i < n; ++i) {
    x[i] = static_cast<double>(i % 1000);
    y[i] = 500.0 - static_cast<double>(i % 777);
  }
  std::vector<double> expected = y;
  for (std::size_t i = 0; i < n; ++i) expected[i] = std::clamp(a * x[i] + expected[i], 0.0, 2000.0);

  // One call per index. From outside any runtime this runs on
  // weft::default_runtime() (WEFT_NUM_WORKERS workers, else one per hardware
  // thread) and returns when every index has been done. The lambda may run on
  // any worker: each call touches only its own element.
  weft::parallelize(n, [&](std::size_t i) { y[i] = a * x[i] + y[i]; });

  // One call per chunk [begin, end): chunk sizes are chosen by weft (a
  // parallel_for with a grain argument guarantees at least that many items).
  weft::parallel_for(std::size_t{0}, n, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) y[i] = std::clamp(y[i], 0.0, 2000.0);
  });

  for (std::size_t i = 0; i < n; ++i) {
    if (y[i] != expected[i]) {
      std::fprintf(stderr, "elementwise: y[%zu] = %g, expected %g\n", i, y[i], expected[i]);
      return 1;
    }
  }
  std::printf("elementwise: %zu elements updated on %d workers, all match the serial loop\n", n,
              weft::default_runtime().num_workers());
  return 0;
}
