// SPDX-License-Identifier: MIT
// The README's first program: fills a vector in parallel and sums it with the
// deterministic reduction. Exits 1 if the sum is not the harmonic number H(n).
#include <weft/weft.hpp>

#include <cstdio>
#include <functional>
#include <vector>

int main() {
  std::vector<double> v(10'000'000);
  weft::parallelize(v.size(), [&](std::size_t i) { v[i] = 1.0 / static_cast<double>(i + 1); });
  auto term = [&](std::size_t i) { return v[i]; };
  const double sum = weft::parallel_reduce(0, v.size(), 0.0, term, std::plus<>{});  // int and size_t bounds
  std::printf("H(%zu) = %.6f on %d workers\n", v.size(), sum, weft::num_workers());
  return sum > 16.695 && sum < 16.696 ? 0 : 1;  // ln(n) + 0.5772...
}
