// SPDX-License-Identifier: MIT
// Two runtimes of different sizes in one process, through runtime::run: a
// small one (1 worker) and a larger one (3 workers). Shows that every weft
// call made inside run() uses that runtime (loops split over its workers
// only), that both can be driven at once from two threads, and that a task
// of one runtime may call the other's run(): its fiber waits, its worker keeps
// working. Checks every result and exits 1 on a mismatch.
#include <weft/weft.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <thread>
#include <vector>

namespace {

// A loop that records the highest worker index it ran on, and its sum.
struct loop_report {
  int max_worker = -1;
  std::int64_t sum = 0;
};

loop_report indexed_loop(std::int64_t n) {
  std::atomic<int> max_worker{-1};
  std::vector<std::int64_t> v(static_cast<std::size_t>(n));
  weft::parallelize(n, [&](std::int64_t i) {
    v[static_cast<std::size_t>(i)] = i;
    const int w = weft::worker_index();
    int seen = max_worker.load(std::memory_order_relaxed);
    while (w > seen && !max_worker.compare_exchange_weak(seen, w, std::memory_order_relaxed)) {
    }
  });
  const std::int64_t sum = weft::parallel_reduce(
      std::int64_t{0}, n, std::int64_t{0}, [&](std::int64_t i) { return v[static_cast<std::size_t>(i)]; },
      std::plus<>{});
  return {max_worker.load(), sum};
}

}  // namespace

int main() {
  constexpr std::int64_t n = 200'000;
  constexpr std::int64_t expected = n * (n - 1) / 2;
  int errors = 0;
  auto check = [&](const char* what, const loop_report& r, int workers) {
    if (r.sum != expected || r.max_worker < 0 || r.max_worker >= workers) {
      std::fprintf(stderr, "%s: sum %lld (expected %lld), worker index %d (runtime of %d)\n", what,
                   static_cast<long long>(r.sum), static_cast<long long>(expected), r.max_worker, workers);
      ++errors;
    }
  };

  weft::runtime small{{.workers = 1}};
  weft::runtime big{{.workers = 3}};

  // 1. One after the other from the main thread.
  check("small.run", small.run([] { return indexed_loop(n); }), small.num_workers());
  check("big.run", big.run([] { return indexed_loop(n); }), big.num_workers());

  // 2. Both at once, each driven by a thread of its own.
  loop_report from_a;
  loop_report from_b;
  {
    std::jthread a([&] { from_a = small.run([] { return indexed_loop(n); }); });
    std::jthread b([&] { from_b = big.run([] { return indexed_loop(n); }); });
  }
  check("small.run from a thread", from_a, small.num_workers());
  check("big.run from a thread", from_b, big.num_workers());

  // 3. Nested: a task of the small runtime hands a loop to the big one. Its
  //    fiber waits for big.run to return; the small runtime's worker stays
  //    free for other work meanwhile.
  const auto [inner, outer] = small.run([&] {
    return weft::join([&] { return big.run([] { return indexed_loop(n); }); }, [] { return indexed_loop(n); });
  });
  check("big.run inside small", inner, big.num_workers());
  check("small beside it", outer, small.num_workers());

  if (errors != 0) return 1;
  std::printf("two_runtimes: runtimes of %d and %d workers, alone, at once and nested: OK\n", small.num_workers(),
              big.num_workers());
  return 0;
}
