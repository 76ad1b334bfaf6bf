// SPDX-License-Identifier: MIT
// Reductions, two ways: per-worker slots filled by weft::parallelize, and
// weft::parallel_reduce. Checks an exact integer sum both ways, a
// floating-point sum against a serial loop, and that parallel_reduce gives the
// same bits on 1, 2 and 4 workers. Exits 1 on a mismatch. Usage: reduction [n]
#include <weft/weft.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <numeric>
#include <vector>

namespace {

// One slot per worker, each on a cache line of its own: slots that share a
// line would slow each other down (false sharing).
struct alignas(64) slot {
  std::uint64_t count = 0;
  double sum = 0.0;
};

double value(std::size_t i) { return std::sin(static_cast<double>(i) * 1e-3) + 1.0; }

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 2'000'000;
  int errors = 0;

  double serial = 0.0;
  for (std::size_t i = 0; i < n; ++i) serial += value(i);
  const std::uint64_t serial_count = static_cast<std::uint64_t>(n) * (n - 1) / 2;
  auto close_to_serial = [&](double s) { return std::fabs(s - serial) <= 1e-9 * std::fabs(serial); };

  // 1. Per-worker slots. The loop runs on a runtime of our own so that we
  //    know how many slots to make; worker_index() names the slot. It is
  //    stable for the duration of a call that does not wait (this body makes
  //    no weft call). The floating-point total depends on which worker did
  //    what, so it may differ in the last bits from run to run.
  weft::runtime rt;
  std::vector<slot> slots(static_cast<std::size_t>(rt.num_workers()));
  rt.run([&] {
    weft::parallelize(n, [&](std::size_t i) {
      slot& s = slots[static_cast<std::size_t>(weft::worker_index())];
      s.count += i;
      s.sum += value(i);
    });
  });
  std::uint64_t count = 0;
  double sum = 0.0;
  for (const slot& s : slots) {
    count += s.count;
    sum += s.sum;
  }
  if (count != serial_count || !close_to_serial(sum)) {
    std::fprintf(stderr, "slots: count %llu (expected %llu), sum %.17g (serial %.17g)\n",
                 static_cast<unsigned long long>(count), static_cast<unsigned long long>(serial_count), sum, serial);
    ++errors;
  }

  // 2. parallel_reduce: map each index to a value, combine with an
  //    associative operation. No slots, no worker_index(); the combination
  //    tree depends on n only, so the result is the same bits whatever the
  //    number of workers.
  auto reduce = [&] {
    return weft::parallel_reduce(
        std::size_t{0}, n, 0.0, [](std::size_t i) { return value(i); }, std::plus<>{});
  };
  const std::uint64_t exact = weft::parallel_reduce(
      std::size_t{0}, n, std::uint64_t{0}, [](std::size_t i) { return static_cast<std::uint64_t>(i); }, std::plus<>{});
  if (exact != serial_count) {
    std::fprintf(stderr, "parallel_reduce: count %llu, expected %llu\n", static_cast<unsigned long long>(exact),
                 static_cast<unsigned long long>(serial_count));
    ++errors;
  }
  double first = 0.0;
  for (int workers : {1, 2, 4}) {
    weft::runtime sized{{.workers = workers}};
    const double r = sized.run(reduce);
    if (workers == 1) first = r;
    if (!same_bits(r, first) || !close_to_serial(r)) {
      std::fprintf(stderr, "parallel_reduce on %d workers: %.17g (1 worker: %.17g, serial %.17g)\n", workers, r, first,
                   serial);
      ++errors;
    }
  }

  if (errors != 0) return 1;
  std::printf(
      "reduction: n = %zu, per-worker slots %.17g, parallel_reduce %.17g (same bits on 1, 2, 4 workers), "
      "serial %.17g\n",
      n, sum, first, serial);
  return 0;
}
