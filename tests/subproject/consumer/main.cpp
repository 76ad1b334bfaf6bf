// SPDX-License-Identifier: MIT
// A program that uses weft the way a consumer project does: only through
// weft's installed interface (dependency('weft') or pkg-config), with no
// Boost on its include path. Runs a parallelize, a parallel_reduce and
// fork-join recursions (join, task_group: their inline paths read weft's
// thread-local worker view) on the default runtime and on a runtime of its
// own, checks them, and exits non-zero on a mismatch. Used by tests/subproject
// and tests/install.
#include <weft/weft.hpp>

// weft's public headers must not pull Boost in: the consumer never needs it.
#if defined(BOOST_CONFIG_HPP) || defined(BOOST_VERSION) || defined(BOOST_CONTEXT_FIBER_H)
#error "weft's public headers include Boost"
#endif

#include <cstdint>
#include <cstdio>
#include <functional>
#include <vector>

namespace {

// Squares 0..n-1 with parallelize, sums them with parallel_reduce, and checks
// both against the closed form. Returns the number of mismatches.
int check(std::uint64_t n) {
  std::vector<std::uint64_t> squares(n);
  weft::parallelize(n, [&](std::uint64_t i) { squares[i] = i * i; });
  int errors = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    if (squares[i] != i * i) {
      std::fprintf(stderr, "parallelize: squares[%llu] = %llu\n", static_cast<unsigned long long>(i),
                   static_cast<unsigned long long>(squares[i]));
      ++errors;
      break;
    }
  }
  const std::uint64_t sum = weft::parallel_reduce(
      std::uint64_t{0}, n, std::uint64_t{0}, [&](std::uint64_t i) { return squares[i]; }, std::plus<>{});
  const std::uint64_t expected = (n - 1) * n * (2 * n - 1) / 6;
  if (sum != expected) {
    std::fprintf(stderr, "parallel_reduce: %llu, expected %llu\n", static_cast<unsigned long long>(sum),
                 static_cast<unsigned long long>(expected));
    ++errors;
  }
  return errors;
}

long fib_join(int k) {
  if (k < 2) return k;
  auto [a, b] = weft::join([k] { return fib_join(k - 1); }, [k] { return fib_join(k - 2); });
  return a + b;
}

long fib_group(int k) {
  if (k < 2) return k;
  long a = 0;
  weft::task_group g;
  g.spawn([&a, k] { a = fib_group(k - 1); });
  const long b = fib_group(k - 2);
  g.wait();
  return a + b;
}

// fib(22) both ways; returns the number of mismatches.
int check_fork_join() {
  constexpr long expected = 17711;
  int errors = 0;
  if (const long r = fib_join(22); r != expected) {
    std::fprintf(stderr, "join: fib(22) = %ld, expected %ld\n", r, expected);
    ++errors;
  }
  if (const long r = fib_group(22); r != expected) {
    std::fprintf(stderr, "task_group: fib(22) = %ld, expected %ld\n", r, expected);
    ++errors;
  }
  return errors;
}

}  // namespace

int main() {
  constexpr std::uint64_t n = 1'000'000;
  int errors = check(n);  // from outside any runtime: the default runtime
  errors += check_fork_join();

  weft::runtime rt{{.workers = 2}};
  errors += rt.run([&] { return check(n) + check_fork_join(); });

  if (errors != 0) return 1;
  std::printf("consumer: weft %s, %d + %d workers, parallelize, parallel_reduce, join and task_group OK\n",
              weft::k_version, weft::default_runtime().num_workers(), rt.num_workers());
  return 0;
}
