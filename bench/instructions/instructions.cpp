// SPDX-License-Identifier: MIT
// Single-worker overhead in instructions: one computation per process, run by
// tools/instructions under callgrind (which counts instructions and ignores
// machine noise). Runs inside a runtime of one worker, whose thread runs every
// computation but `outside`: its calls are handed over (caller_policy::
// hand_over). Taking part, main would run them on the worker's slot when the
// worker had parked by then, else hand them over: two paths, picked by the
// timing of the run, that differ by about 3 instructions per yield, and a
// borrowing thread's first call reads its stack's bounds from
// /proc/self/maps (about 130 000 instructions), so counts moved from run to
// run by up to 14 per yield.
//   instructions join N      fib(N), one weft::join per call with n >= 2
//   instructions group N     fib(N), one task_group spawn + wait per call
//   instructions coro N      fib(N), weft::task and when_all of two per call
//   instructions loops K N   K calls of parallelize over N items
//                            (x[i] = x[i] * 0.5 + 0.25)
//   instructions yield K     two fibers of one worker yield to each other K
//                            times each (2K fiber switches)
//   instructions outside K N K calls of parallelize over N items from main,
//                            on the default runtime (of one worker here)
//   instructions reduce K N  K calls of parallel_reduce over N doubles
//                            (their sum, std::plus)
// Prints the result, so that the work cannot be optimised away.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include <weft/coroutine.hpp>
#include <weft/weft.hpp>

namespace {

long fib_join(int n) {
  if (n < 2) return n;
  auto [a, b] = weft::join([n] { return fib_join(n - 1); }, [n] { return fib_join(n - 2); });
  return a + b;
}

long fib_group(int n) {
  if (n < 2) return n;
  long a = 0;
  weft::task_group g;
  g.spawn([&a, n] { a = fib_group(n - 1); });
  const long b = fib_group(n - 2);
  g.wait();
  return a + b;
}

weft::task<long> fib_coro(int n) {
  if (n < 2) co_return n;
  auto [a, b] = co_await weft::when_all(fib_coro(n - 1), fib_coro(n - 2));
  co_return a + b;
}

int usage() {
  std::fprintf(stderr, "usage: instructions join|group|coro|yield N | instructions loops|outside|reduce K N\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  const char* what = argv[1];
  const int n = std::atoi(argv[2]);
  if (std::strcmp(what, "outside") == 0 && argc == 4) {
    // Calls from plain code, as a new user writes them: each one comes in
    // through the door (a borrowed slot) and leaves again.
    setenv("WEFT_NUM_WORKERS", "1", 1);
    const int items = std::atoi(argv[3]);
    std::vector<double> x(static_cast<std::size_t>(items), 1.0);
    for (int k = 0; k < n; ++k) weft::parallelize(x.size(), [&](std::size_t i) { x[i] = x[i] * 0.5 + 0.25; });
    std::printf("%g\n", x[0]);
    return 0;
  }
  weft::runtime rt{weft::config{.workers = 1, .caller = weft::caller_policy::hand_over}};  // one path every run
  if (std::strcmp(what, "join") == 0) {
    std::printf("%ld\n", rt.run([n] { return fib_join(n); }));
  } else if (std::strcmp(what, "group") == 0) {
    std::printf("%ld\n", rt.run([n] { return fib_group(n); }));
  } else if (std::strcmp(what, "coro") == 0) {
    std::printf("%ld\n", rt.run([n] { return weft::sync_wait(fib_coro(n)); }));
  } else if (std::strcmp(what, "yield") == 0) {
    // The join's second half is queued; the first yields to it, and from
    // then on each yield switches to the other fiber.
    long turns = 0;
    rt.run([&] {
      auto ping = [&] {
        for (int k = 0; k < n; ++k) {
          ++turns;
          weft::yield();
        }
      };
      weft::join(ping, ping);
    });
    std::printf("%ld\n", turns);
  } else if (std::strcmp(what, "loops") == 0 && argc == 4) {
    const int items = std::atoi(argv[3]);
    std::vector<double> x(static_cast<std::size_t>(items), 1.0);
    rt.run([&] {
      for (int k = 0; k < n; ++k) weft::parallelize(x.size(), [&](std::size_t i) { x[i] = x[i] * 0.5 + 0.25; });
    });
    std::printf("%g\n", x[0]);
  } else if (std::strcmp(what, "reduce") == 0 && argc == 4) {
    const std::size_t items = static_cast<std::size_t>(std::atoi(argv[3]));
    std::vector<double> x(items);
    for (std::size_t i = 0; i < items; ++i) x[i] = static_cast<double>(i % 7) * 0.5;
    const double total = rt.run([&] {
      double sum = 0;
      for (int k = 0; k < n; ++k) {
        sum += weft::parallel_reduce(
            std::size_t{0}, items, 0.0, [&](std::size_t i) { return x[i]; }, std::plus<>{});
      }
      return sum;
    });
    std::printf("%g\n", total);
  } else {
    return usage();
  }
  return 0;
}
