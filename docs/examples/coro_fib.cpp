// SPDX-License-Identifier: MIT
// Recursive Fibonacci, the same problem in both of weft's styles: fibers
// (ordinary functions and weft::join) and C++20 coroutines (weft::task<long>
// with weft::when_all, and with weft::spawn). A spawn per call, no cutoff.
// Each is run from outside any runtime, inside a runtime of our own, and on 1
// and 2 workers; every result is checked against a serial loop and the program
// exits 1 on a mismatch. Prints the time of each style (informative only).
// Usage: coro_fib [n]   (docs/guide.md, "Fibers or coroutines")
#include <weft/coroutine.hpp>  // not included by weft.hpp
#include <weft/weft.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace {

// Fibers: an ordinary recursive function. join() offers the second call to
// other workers; if it must wait for it, the fiber is suspended.
long fib_join(int n) {
  if (n < 2) return n;
  auto [a, b] = weft::join([&] { return fib_join(n - 1); }, [&] { return fib_join(n - 2); });
  return a + b;
}

// Coroutines: every function on the path is a coroutine and awaits its
// children. when_all() runs the first child inline and offers the second.
weft::task<long> fib_when_all(int n) {
  if (n < 2) co_return n;
  auto [a, b] = co_await weft::when_all(fib_when_all(n - 1), fib_when_all(n - 2));
  co_return a + b;
}

// The same with spawn(): the child is offered at once, the parent goes on
// with the other call, then joins it (running it inline if nobody took it).
weft::task<long> fib_spawn(int n) {
  if (n < 2) co_return n;
  auto a = weft::spawn(fib_spawn(n - 1));
  const long b = co_await fib_spawn(n - 2);
  co_return co_await a + b;
}

long fib_serial(int n) {
  long a = 0;
  long b = 1;
  for (int i = 0; i < n; ++i) {
    const long t = a + b;
    a = b;
    b = t;
  }
  return a;
}

template <class F>
long timed(const char* what, int workers, F&& f) {
  const auto start = std::chrono::steady_clock::now();
  const long r = f();
  const std::chrono::duration<double, std::milli> ms = std::chrono::steady_clock::now() - start;
  std::printf("  %-22s %d worker(s): %8.2f ms\n", what, workers, ms.count());
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 25;
  if (n < 0 || n > 90) {
    std::fprintf(stderr, "usage: coro_fib [n], 0 <= n <= 90\n");
    return 2;
  }
  const long expected = fib_serial(n);
  int errors = 0;
  auto check = [&](const char* what, long got) {
    if (got != expected) {
      std::fprintf(stderr, "%s: fib(%d) = %ld, expected %ld\n", what, n, got, expected);
      ++errors;
    }
  };

  // From outside any runtime: join() and sync_wait() run in the default
  // runtime and block this thread until they are done.
  check("fiber join (default runtime)", fib_join(n));
  check("when_all (default runtime)", weft::sync_wait(fib_when_all(n)));
  check("spawn (default runtime)", weft::sync_wait(fib_spawn(n)));

  // Inside runtimes of our own. sync_wait() on a worker suspends the calling
  // fiber (never the thread) until the coroutine is done.
  std::printf("fib(%d) = %ld\n", n, expected);
  for (int workers : {1, 2}) {
    weft::runtime rt{{.workers = workers}};
    check("fiber join", timed("fibers: weft::join", workers, [&] { return rt.run([&] { return fib_join(n); }); }));
    check("when_all", timed("coroutines: when_all", workers,
                            [&] { return rt.run([&] { return weft::sync_wait(fib_when_all(n)); }); }));
    check("spawn",
          timed("coroutines: spawn", workers, [&] { return rt.run([&] { return weft::sync_wait(fib_spawn(n)); }); }));
  }

  // A coroutine awaiting fiber code, and fiber code waiting for a coroutine.
  auto mixed = [&]() -> weft::task<long> {
    const long a = co_await weft::on_fiber_async([&] { return fib_join(n - 1); });  // ordinary code, real stack
    const long b = co_await fib_when_all(n - 2);
    co_return a + b;
  };
  check("on_fiber_async + co_await", weft::sync_wait(mixed()));

  if (errors != 0) return 1;
  std::printf("coro_fib: fibers and coroutines agree: OK\n");
  return 0;
}
