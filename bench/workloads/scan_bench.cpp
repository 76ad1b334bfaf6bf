// SPDX-License-Identifier: MIT
// scan: the inclusive prefix sum of 10^8 int64_t (800 MB in, 800 MB out), and
// copy_if of 10^8 int64_t keeping half of them (the odd ones, spread at
// random). Both are bound by memory bandwidth.
//
// Scan variants: serial std::inclusive_scan; weft::inclusive_scan; oneTBB's
// tbb::parallel_scan over a blocked_range; the OpenMP 5 `scan` directive
// (`reduction(inscan, +)`); std::inclusive_scan(std::execution::par)
// ("std_par", on oneTBB in the caller's arena).
// copy_if variants: serial std::copy_if; weft::copy_if;
// std::copy_if(std::execution::par).
//
// Every variant's output must equal the serial one. WEFT_BENCH_SCAN_N overrides
// the item count (e.g. 50000000 where memory is short).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <vector>

#include <weft/algorithm.hpp>

#include "peers.hpp"

#if WEFT_BENCH_HAVE_TBB
#include <execution>

#include <tbb/blocked_range.h>
#include <tbb/parallel_scan.h>
#endif

namespace {

struct input {
  std::vector<std::int64_t> items;
  std::vector<std::int64_t> scanned;
  std::vector<std::int64_t> kept;
};

bool keep(std::int64_t x) { return (x & 1) != 0; }

std::size_t count() {
  static const std::size_t n = [] {
    long v = 100'000'000;
    if (const char* env = std::getenv("WEFT_BENCH_SCAN_N")) v = std::atol(env);
    if (v < 1) {
      std::fputs("WEFT_BENCH_SCAN_N: expected a positive integer\n", stderr);
      std::exit(2);
    }
    return static_cast<std::size_t>(v);
  }();
  return n;
}

// Items from a 64-bit mixing function of the index: half of them odd.
const input& data(bool scan) {
  static input d;
  if (d.items.empty()) {
    const std::size_t n = count();
    d.items.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      std::uint64_t z = i * 0x9e3779b97f4a7c15ULL;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z ^= z >> 31;
      d.items[i] = static_cast<std::int64_t>(z % 1000);
    }
  }
  if (scan && d.scanned.empty()) {
    d.scanned.resize(d.items.size());
    std::inclusive_scan(d.items.begin(), d.items.end(), d.scanned.begin());
  }
  if (!scan && d.kept.empty()) std::copy_if(d.items.begin(), d.items.end(), std::back_inserter(d.kept), keep);
  return d;
}

std::vector<std::int64_t>& output() {
  static std::vector<std::int64_t> out(count());
  return out;
}

void finish_scan(benchmark::State& state) {
  const input& d = data(true);
  bench::check(state, output() == d.scanned, "scan differs from std::inclusive_scan");
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(2 * d.items.size() * sizeof(std::int64_t)));
}

void finish_copy_if(benchmark::State& state, std::size_t kept) {
  const input& d = data(false);
  std::vector<std::int64_t>& out = output();
  bench::check(state, kept == d.kept.size() && std::equal(d.kept.begin(), d.kept.end(), out.begin()),
               "copy_if differs from std::copy_if");
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(d.items.size() * sizeof(std::int64_t)));
}

void scan_serial(benchmark::State& state) {
  const input& d = data(true);
  auto& out = output();
  for (auto _ : state) std::inclusive_scan(d.items.begin(), d.items.end(), out.begin());
  finish_scan(state);
}

void scan_weft(benchmark::State& state) {
  const input& d = data(true);
  auto& out = output();
  weft::runtime& rt = bench::weft_runtime(static_cast<int>(state.range(1)));
  rt.reset_stats();
  for (auto _ : state) rt.run([&] { weft::inclusive_scan(d.items.begin(), d.items.end(), out.begin()); });
  bench::set_weft_stats(state, rt);
  finish_scan(state);
}

#if WEFT_BENCH_HAVE_TBB
void scan_tbb(benchmark::State& state) {
  const input& d = data(true);
  auto& out = output();
  auto& arena = bench::tbb_arena(static_cast<int>(state.range(1)));
  const std::int64_t* in = d.items.data();
  std::int64_t* o = out.data();
  for (auto _ : state) {
    arena.execute([&] {
      tbb::parallel_scan(
          tbb::blocked_range<std::size_t>(0, d.items.size()), std::int64_t{0},
          [in, o](const tbb::blocked_range<std::size_t>& r, std::int64_t sum, bool is_final) {
            for (std::size_t i = r.begin(); i < r.end(); ++i) {
              sum += in[i];
              if (is_final) o[i] = sum;
            }
            return sum;
          },
          [](std::int64_t a, std::int64_t b) { return a + b; });
    });
  }
  finish_scan(state);
}

void scan_std_par(benchmark::State& state) {
  const input& d = data(true);
  auto& out = output();
  auto& arena = bench::tbb_arena(static_cast<int>(state.range(1)));
  for (auto _ : state) {
    arena.execute([&] { std::inclusive_scan(std::execution::par, d.items.begin(), d.items.end(), out.begin()); });
  }
  finish_scan(state);
}
#endif

#if WEFT_BENCH_HAVE_OPENMP
// GCC 12's lowering of `reduction(inscan, ...)` makes a temporary that its own
// -Wmaybe-uninitialized flags; the code reads no uninitialised value.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
void scan_omp(benchmark::State& state) {
  const input& d = data(true);
  auto& out = output();
  const int workers = static_cast<int>(state.range(1));
  const std::int64_t* in = d.items.data();
  std::int64_t* o = out.data();
  const std::size_t n = d.items.size();
  for (auto _ : state) {
    std::int64_t sum = 0;
#pragma omp parallel for reduction(inscan, + : sum) num_threads(workers)
    for (std::size_t i = 0; i < n; ++i) {
      sum += in[i];
#pragma omp scan inclusive(sum)
      o[i] = sum;
    }
  }
  finish_scan(state);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

void copy_if_serial(benchmark::State& state) {
  const input& d = data(false);
  auto& out = output();
  std::size_t kept = 0;
  for (auto _ : state)
    kept = static_cast<std::size_t>(std::copy_if(d.items.begin(), d.items.end(), out.begin(), keep) - out.begin());
  finish_copy_if(state, kept);
}

void copy_if_weft(benchmark::State& state) {
  const input& d = data(false);
  auto& out = output();
  weft::runtime& rt = bench::weft_runtime(static_cast<int>(state.range(1)));
  rt.reset_stats();
  std::size_t kept = 0;
  for (auto _ : state) {
    kept = rt.run([&] {
      return static_cast<std::size_t>(weft::copy_if(d.items.begin(), d.items.end(), out.begin(), keep) - out.begin());
    });
  }
  bench::set_weft_stats(state, rt);
  finish_copy_if(state, kept);
}

#if WEFT_BENCH_HAVE_TBB
void copy_if_std_par(benchmark::State& state) {
  const input& d = data(false);
  auto& out = output();
  auto& arena = bench::tbb_arena(static_cast<int>(state.range(1)));
  std::size_t kept = 0;
  for (auto _ : state) {
    arena.execute([&] {
      kept = static_cast<std::size_t>(
          std::copy_if(std::execution::par, d.items.begin(), d.items.end(), out.begin(), keep) - out.begin());
    });
  }
  finish_copy_if(state, kept);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const auto n = static_cast<std::int64_t>(count());
  bench::add_serial("scan/serial", scan_serial, {{"n", n}});
  bench::add_parallel("scan/weft", scan_weft, {{"n", n}});
#if WEFT_BENCH_HAVE_TBB
  bench::add_parallel("scan/tbb", scan_tbb, {{"n", n}});
  bench::add_parallel("scan/std_par", scan_std_par, {{"n", n}});
#endif
#if WEFT_BENCH_HAVE_OPENMP
  bench::add_parallel("scan/omp", scan_omp, {{"n", n}});
#endif
  bench::add_serial("copy_if/serial", copy_if_serial, {{"n", n}});
  bench::add_parallel("copy_if/weft", copy_if_weft, {{"n", n}});
#if WEFT_BENCH_HAVE_TBB
  bench::add_parallel("copy_if/std_par", copy_if_std_par, {{"n", n}});
#endif
  return bench::main(argc, argv);
}
