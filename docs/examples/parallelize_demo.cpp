// SPDX-License-Identifier: MIT
// The parallelize demo: a CPU-heavy loop (counting primes by trial division in
// blocks of numbers) run serially and with weft::parallelize; prints both
// times and the speedup. Usage: parallelize_demo [items] [workers]
#include <weft/weft.hpp>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

// CPU-bound work of uneven cost: the primes in [block*1000, block*1000 + 1000).
int primes_in_block(std::int64_t block) {
  int count = 0;
  for (std::int64_t n = block * 1000; n < block * 1000 + 1000; ++n) {
    if (n < 2) continue;
    bool prime = true;
    for (std::int64_t d = 2; d * d <= n; ++d) {
      if (n % d == 0) {
        prime = false;
        break;
      }
    }
    count += prime ? 1 : 0;
  }
  return count;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// argv[i] as a number in [low, high], or `otherwise` when it is absent; -1
// when it is not one.
long long argument(int argc, char** argv, int i, long long otherwise, long long low, long long high) {
  if (argc <= i) return otherwise;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(argv[i], &end, 10);
  return end != argv[i] && *end == '\0' && errno == 0 && v >= low && v <= high ? v : -1;
}

int main(int argc, char** argv) {
  const std::int64_t items = argument(argc, argv, 1, 4000, 1, 100'000'000);
  weft::config cfg;
  cfg.workers = static_cast<int>(argument(argc, argv, 2, 0, 0, 4096));
  if (items < 0 || cfg.workers < 0 || argc > 3) {
    std::fprintf(stderr, "usage: parallelize_demo [items (1 to 10^8, default 4000)] [workers (0: all CPUs)]\n");
    return 2;
  }
  weft::runtime rt(cfg);

  std::vector<int> serial(static_cast<std::size_t>(items));
  std::vector<int> parallel(static_cast<std::size_t>(items));

  auto t0 = std::chrono::steady_clock::now();
  for (std::int64_t i = 0; i < items; ++i) serial[static_cast<std::size_t>(i)] = primes_in_block(i);
  const double t_serial = seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  rt.run([&] {
    weft::parallelize(items, [&](std::int64_t i) { parallel[static_cast<std::size_t>(i)] = primes_in_block(i); });
  });
  const double t_weft = seconds_since(t0);

  std::int64_t total = 0;
  for (std::int64_t i = 0; i < items; ++i) {
    if (serial[static_cast<std::size_t>(i)] != parallel[static_cast<std::size_t>(i)]) {
      std::fprintf(stderr, "mismatch at item %lld\n", static_cast<long long>(i));
      return 1;
    }
    total += parallel[static_cast<std::size_t>(i)];
  }
  std::printf("primes below %lld: %lld\n", static_cast<long long>(items * 1000), static_cast<long long>(total));
  std::printf("serial loop:            %8.1f ms\n", t_serial * 1e3);
  std::printf("weft::parallelize (%2d): %8.1f ms\n", rt.num_workers(), t_weft * 1e3);
  std::printf("speedup:                %8.2fx on %d workers\n", t_serial / t_weft, rt.num_workers());
  return 0;
}
