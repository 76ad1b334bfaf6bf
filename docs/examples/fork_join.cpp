// SPDX-License-Identifier: MIT
// Fork-join recursion with weft::join: Fibonacci with a join per call and no
// cutoff (a spawn costs a few nanoseconds), a divide-and-conquer maximum
// subarray sum whose halves return a struct, and a tree walk with
// weft::task_group. Checks each against a serial computation and exits 1 on a
// mismatch. Usage: fork_join [fib n]
#include <weft/weft.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

namespace {

// join returns both results as a std::pair.
std::int64_t fib(int n) {
  if (n < 2) return n;
  auto [a, b] = weft::join([&] { return fib(n - 1); }, [&] { return fib(n - 2); });
  return a + b;
}

std::int64_t fib_serial(int n) {
  std::int64_t a = 0;
  std::int64_t b = 1;
  for (int i = 0; i < n; ++i) {
    const std::int64_t t = a + b;
    a = b;
    b = t;
  }
  return a;
}

// Maximum subarray sum by divide and conquer: each range reports its total,
// its best prefix, its best suffix and its best subarray.
struct summary {
  std::int64_t total;
  std::int64_t prefix;
  std::int64_t suffix;
  std::int64_t best;
};

summary combine(const summary& l, const summary& r) {
  return {l.total + r.total, std::max(l.prefix, l.total + r.prefix), std::max(r.suffix, r.total + l.suffix),
          std::max({l.best, r.best, l.suffix + r.prefix})};
}

summary max_subarray(const std::int64_t* v, std::size_t n) {
  if (n <= 2048) {  // small ranges: a serial scan beats more splitting
    summary s{v[0], v[0], v[0], v[0]};
    for (std::size_t i = 1; i < n; ++i) s = combine(s, summary{v[i], v[i], v[i], v[i]});
    return s;
  }
  auto [l, r] = weft::join([&] { return max_subarray(v, n / 2); }, [&] { return max_subarray(v + n / 2, n - n / 2); });
  return combine(l, r);
}

std::int64_t max_subarray_serial(const std::vector<std::int64_t>& v) {  // Kadane
  std::int64_t best = v[0];
  std::int64_t here = v[0];
  for (std::size_t i = 1; i < v.size(); ++i) {
    here = std::max(v[i], here + v[i]);
    best = std::max(best, here);
  }
  return best;
}

// A tree with any number of children per node, walked with a task_group per
// node: spawn one call per child, then wait for all of them.
struct node {
  std::int64_t value = 0;
  std::vector<std::unique_ptr<node>> children;
};

std::unique_ptr<node> make_tree(std::mt19937& rng, int depth, std::int64_t& total) {
  auto n = std::make_unique<node>();
  n->value = static_cast<std::int64_t>(rng() % 100);
  total += n->value;
  if (depth > 0) {
    const int k = static_cast<int>(rng() % 5);
    for (int i = 0; i < k; ++i) n->children.push_back(make_tree(rng, depth - 1, total));
  }
  return n;
}

std::int64_t tree_sum(const node& n) {
  std::vector<std::int64_t> sums(n.children.size());
  weft::task_group g;
  for (std::size_t i = 0; i < n.children.size(); ++i) {
    g.spawn([&, i] { sums[i] = tree_sum(*n.children[i]); });
  }
  g.wait();  // by the fiber that created the group
  std::int64_t s = n.value;
  for (std::int64_t x : sums) s += x;
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 27;
  int errors = 0;

  const std::int64_t f = fib(n);  // from outside a runtime: the default runtime
  if (f != fib_serial(n)) {
    std::fprintf(stderr, "fib(%d) = %lld, expected %lld\n", n, static_cast<long long>(f),
                 static_cast<long long>(fib_serial(n)));
    ++errors;
  }

  std::mt19937 rng(12345);
  std::vector<std::int64_t> v(1'000'000);
  for (auto& x : v) x = static_cast<std::int64_t>(rng() % 2001) - 1000;
  const std::int64_t best = weft::default_runtime().run([&] { return max_subarray(v.data(), v.size()).best; });
  if (best != max_subarray_serial(v)) {
    std::fprintf(stderr, "max_subarray = %lld, expected %lld\n", static_cast<long long>(best),
                 static_cast<long long>(max_subarray_serial(v)));
    ++errors;
  }

  std::int64_t total = 0;
  const auto tree = make_tree(rng, 9, total);
  const std::int64_t walked = weft::default_runtime().run([&] { return tree_sum(*tree); });
  if (walked != total) {
    std::fprintf(stderr, "tree_sum = %lld, expected %lld\n", static_cast<long long>(walked),
                 static_cast<long long>(total));
    ++errors;
  }

  if (errors != 0) return 1;
  std::printf("fork_join: fib(%d) = %lld, max subarray sum %lld, tree sum %lld: OK\n", n, static_cast<long long>(f),
              static_cast<long long>(best), static_cast<long long>(walked));
  return 0;
}
