// SPDX-License-Identifier: MIT
// A parallel quicksort whose partition is serial: both sides of each pivot
// are sorted with weft::join, but the partition that makes them is one loop,
// so the chain of partitions down one path of the recursion (about 2n
// element steps) bounds the speedup, whatever the number of workers: the
// parallelism of sorting a few million doubles is about 10. The input is made
// in parallel first. Checks the result (sorted, and the same elements) and
// exits 1 otherwise. With --measure, runs under weft::measure_workspan and
// prints the work, the span and the speedups they predict. Draw its
// scalability with tools/workspan_plot (docs/guide.md).
// Usage: workspan_demo [--measure] [n]
#include <weft/weft.hpp>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

namespace {

// Below this size std::sort is faster than splitting.
constexpr std::ptrdiff_t k_cutoff = 2048;

// Sorts [first, last): a serial partition around the median of three, then
// both sides at once.
void quicksort(double* first, double* last) {
  const std::ptrdiff_t n = last - first;
  if (n <= k_cutoff) {
    std::sort(first, last);
    return;
  }
  // The median of the first, middle and last elements goes to the end, and
  // is the pivot.
  double* mid = first + n / 2;
  if (*mid < *first) std::swap(*mid, *first);
  if (*(last - 1) < *first) std::swap(*(last - 1), *first);
  if (*mid < *(last - 1)) std::swap(*mid, *(last - 1));
  const double pivot = *(last - 1);
  double* split = std::partition(first, last - 1, [pivot](double x) { return x < pivot; });
  std::swap(*split, *(last - 1));  // the pivot is in place: neither side holds it
  weft::join([&] { quicksort(first, split); }, [&] { quicksort(split + 1, last); });
}

// Uniform in [0, 1), from a counter (splitmix64).
double uniform(std::uint64_t i) {
  std::uint64_t z = i * 0x9e3779b97f4a7c15ULL + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

// The sum of the bit patterns of [first, last): the same for any order of the
// same elements.
std::uint64_t fingerprint(const double* first, const double* last) {
  std::uint64_t s = 0;
  for (; first != last; ++first) s += std::bit_cast<std::uint64_t>(*first);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  bool measure = false;
  std::size_t n = 3'000'000;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--measure") == 0) {
      measure = true;
    } else {
      char* end = nullptr;
      n = std::strtoull(argv[i], &end, 10);
      if (end == argv[i] || *end != '\0' || n == 0 || n > (std::size_t{1} << 32)) {
        std::fprintf(stderr, "usage: workspan_demo [--measure] [n (1 to 2^32, default 3000000)]\n");
        return 2;
      }
    }
  }

  // Not zeroed: the first touch of each page (expensive) is in the parallel
  // fill, so that the serial part of the process stays small.
  const auto v = std::make_unique_for_overwrite<double[]>(n);
  constexpr std::size_t k_block = 65536;
  const std::size_t blocks = (n + k_block - 1) / k_block;
  std::vector<std::uint64_t> block_fingerprints(blocks);
  auto fill_and_sort = [&] {
    weft::parallelize(blocks, [&](std::size_t b) {
      const std::size_t end = std::min(n, (b + 1) * k_block);
      for (std::size_t i = b * k_block; i < end; ++i) v[i] = uniform(i);
      block_fingerprints[b] = fingerprint(v.get() + b * k_block, v.get() + end);
    });
    quicksort(v.get(), v.get() + n);
  };

  weft::workspan ws;
  if (measure) {
    ws = weft::measure_workspan(fill_and_sort);
  } else {
    // One call into the runtime (which WEFT_WORKSPAN measures as one site).
    weft::default_runtime().run(fill_and_sort);
  }

  std::uint64_t before = 0;
  for (std::uint64_t f : block_fingerprints) before += f;
  if (!std::is_sorted(v.get(), v.get() + n) || fingerprint(v.get(), v.get() + n) != before) {
    std::fprintf(stderr, "workspan_demo: the %zu elements are not sorted, or not the same\n", n);
    return 1;
  }
  std::printf("workspan_demo: %zu doubles sorted on %d workers\n", n, weft::default_runtime().num_workers());
  if (!measure) return 0;

  // The measurement: the work and span, and what they predict. The span
  // cannot exceed the work, and a sort this size has some parallelism.
  auto ms = [](std::chrono::nanoseconds t) { return static_cast<double>(t.count()) / 1e6; };
  std::printf("work           %10.3f ms\n", ms(ws.work));
  std::printf("span           %10.3f ms\n", ms(ws.span));
  std::printf("burdened span  %10.3f ms (%.1f us per potential steal)\n", ms(ws.burdened_span),
              static_cast<double>(ws.burden.count()) / 1e3);
  std::printf("strands        %10llu\n", static_cast<unsigned long long>(ws.strands));
  std::printf("parallelism    %10.2f (burdened %.2f)\n", ws.parallelism(), ws.burdened_parallelism());
  std::printf("speedup on p workers: at most / burdened estimate\n");
  for (int p = 1; p <= 64; p *= 2) {
    std::printf("  %3d  %6.2f  %6.2f\n", p, ws.speedup_bound(p), ws.burdened_speedup(p));
  }
  if (ws.span.count() <= 0 || ws.span > ws.work || ws.burdened_span < ws.span || ws.parallelism() < 1.5) {
    std::fprintf(stderr, "workspan_demo: implausible measurement\n");
    return 1;
  }
  return 0;
}
