// SPDX-License-Identifier: MIT
// A parallel merge sort whose merge is parallel too: the two halves are
// sorted with weft::join, then merged by splitting the larger input at its
// middle, finding the matching split of the other by binary search, and
// merging both pairs with weft::join. Checks the result against std::sort
// and exits 1 on a mismatch. Usage: merge_sort [n] [seed]
#include <weft/weft.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

namespace {

// Below these sizes the sequential algorithms are faster than splitting.
constexpr std::size_t k_sort_cutoff = 4096;
constexpr std::size_t k_merge_cutoff = 8192;

// Merges the sorted a[0, na) and b[0, nb) into out, stably (on ties, a first).
template <class T>
void parallel_merge(const T* a, std::size_t na, const T* b, std::size_t nb, T* out) {
  if (na + nb <= k_merge_cutoff) {
    std::merge(a, a + na, b, b + nb, out);
    return;
  }
  // Split the larger input in two non-empty halves, and the other where its
  // elements stop belonging before the split element: every element of the
  // two left parts then precedes every element of the two right parts.
  std::size_t ma;
  std::size_t mb;
  if (na >= nb) {
    ma = na / 2;
    mb = static_cast<std::size_t>(std::lower_bound(b, b + nb, a[ma]) - b);
  } else {
    mb = nb / 2;
    ma = static_cast<std::size_t>(std::upper_bound(a, a + na, b[mb]) - a);
  }
  weft::join([&] { parallel_merge(a, ma, b, mb, out); },
             [&] { parallel_merge(a + ma, na - ma, b + mb, nb - mb, out + ma + mb); });
}

// Sorts the n elements at src. The result lands in dst when into_dst, else
// in src; the other buffer is scratch space. The halves alternate between the
// buffers, so no level copies.
template <class T>
void merge_sort(T* src, T* dst, std::size_t n, bool into_dst) {
  if (n <= k_sort_cutoff) {
    std::sort(src, src + n);
    if (into_dst) std::copy(src, src + n, dst);
    return;
  }
  const std::size_t half = n / 2;
  // Each half ends up in the buffer the merge reads from.
  weft::join([&] { merge_sort(src, dst, half, !into_dst); },
             [&] { merge_sort(src + half, dst + half, n - half, !into_dst); });
  if (into_dst) {
    parallel_merge(src, half, src + half, n - half, dst);
  } else {
    parallel_merge(dst, half, dst + half, n - half, src);
  }
}

template <class T>
void merge_sort(std::vector<T>& v) {
  std::vector<T> scratch(v.size());
  merge_sort(v.data(), scratch.data(), v.size(), false);
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 2'000'000;
  const std::uint64_t seed = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : std::random_device{}();

  std::mt19937_64 rng(seed);
  // Many duplicates (values below n / 4) exercise the tie handling of the merge.
  std::uniform_int_distribution<std::int64_t> dist(0, static_cast<std::int64_t>(n / 4 + 1));
  std::vector<std::int64_t> v(n);
  for (auto& x : v) x = dist(rng);
  std::vector<std::int64_t> expected = v;
  std::sort(expected.begin(), expected.end());

  merge_sort(v);  // from outside a runtime: runs on the default runtime

  if (v != expected) {
    const auto at = std::mismatch(v.begin(), v.end(), expected.begin()).first - v.begin();
    std::fprintf(stderr, "merge_sort: differs from std::sort at %td (n = %zu, seed = %llu)\n", at, n,
                 static_cast<unsigned long long>(seed));
    return 1;
  }
  std::printf("merge_sort: %zu elements sorted on %d workers, same as std::sort (seed %llu)\n", n,
              weft::default_runtime().num_workers(), static_cast<unsigned long long>(seed));
  return 0;
}
