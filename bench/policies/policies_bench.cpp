// SPDX-License-Identifier: MIT
// The scheduling policies compared on the workload shapes they affect
// (docs/policies.md): victim selection on recursive fork-join work (fib, an
// unbalanced task_group tree), range splitting on loops (cheap items, many
// small loops, items of very uneven cost). Each variant runs on a runtime
// built with that policy; "weft" in the name so that tools/bench_report
// treats it as weft.
#include <cmath>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "peers.hpp"

namespace {

using weft::split_policy;
using weft::victim_policy;

weft::runtime& runtime_for(int workers, victim_policy v, split_policy s) {
  static std::map<std::tuple<int, int, int>, std::unique_ptr<weft::runtime>> cache;
  auto& slot = cache[{workers, static_cast<int>(v), static_cast<int>(s)}];
  if (!slot) {
    weft::config cfg;
    cfg.workers = workers;
    cfg.victim = v;
    cfg.split = s;
    slot = std::make_unique<weft::runtime>(cfg);
  }
  return *slot;
}

long fib(int n) {
  if (n < 2) return n;
  auto [a, b] = weft::join([n] { return fib(n - 2); }, [n] { return fib(n - 1); });
  return a + b;
}

long fib_serial(int n) { return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2); }

// An irregular tree through task_group: every node above depth 17 has 1 to 3
// children, by a fixed hash (369 367 nodes).
std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
constexpr int k_tree_depth = 17;
long tree(std::uint64_t id, int depth) {
  const int children = depth >= k_tree_depth ? 0 : 1 + static_cast<int>(mix(id) % 3);
  if (children == 0) return 1;
  std::vector<long> counts(static_cast<std::size_t>(children));
  weft::task_group g;
  for (int c = 0; c < children; ++c) {
    g.spawn([&counts, c, id, depth] { counts[static_cast<std::size_t>(c)] = tree(mix(id * 4 + c + 1), depth + 1); });
  }
  g.wait();
  long sum = 1;
  for (long x : counts) sum += x;
  return sum;
}
long tree_serial(std::uint64_t id, int depth) {
  const int children = depth >= k_tree_depth ? 0 : 1 + static_cast<int>(mix(id) % 3);
  long sum = 1;
  for (int c = 0; c < children; ++c) sum += tree_serial(mix(id * 4 + c + 1), depth + 1);
  return sum;
}
constexpr std::uint64_t k_tree_root = 7;

// Work of item i in the uneven loop: 1 to about 2000 iterations.
double uneven_item(std::int64_t i) {
  const int n = 1 + static_cast<int>(mix(static_cast<std::uint64_t>(i)) % 2000);
  double x = 0;
  for (int k = 0; k < n; ++k) x += std::sqrt(static_cast<double>(k + i));
  return x;
}

const char* name_of(victim_policy v) {
  switch (v) {
    case victim_policy::round_robin: return "round_robin";
    case victim_policy::last_victim: return "last_victim";
    default: return "random";
  }
}
const char* name_of(split_policy s) {
  switch (s) {
    case split_policy::eager: return "eager";
    case split_policy::fixed: return "fixed";
    default: return "adaptive";
  }
}

template <victim_policy V>
void fib_variant(benchmark::State& state) {
  auto& rt = runtime_for(static_cast<int>(state.range(0)), V, split_policy::adaptive);
  long r = 0;
  rt.reset_stats();
  for (auto _ : state) r = rt.run([] { return fib(27); });
  bench::check(state, r == fib_serial(27), "fib(27)");
  bench::set_weft_stats(state, rt);
}

template <victim_policy V>
void tree_variant(benchmark::State& state) {
  auto& rt = runtime_for(static_cast<int>(state.range(0)), V, split_policy::adaptive);
  static const long expected = tree_serial(k_tree_root, 0);
  long r = 0;
  rt.reset_stats();
  for (auto _ : state) r = rt.run([] { return tree(k_tree_root, 0); });
  bench::check(state, r == expected, "tree");
  bench::set_weft_stats(state, rt);
}

template <split_policy S>
void loop_variant(benchmark::State& state) {
  auto& rt = runtime_for(static_cast<int>(state.range(0)), victim_policy::random, S);
  std::vector<double> x(10'000'000, 1.0);
  rt.reset_stats();
  for (auto _ : state) {
    rt.run([&] { weft::parallelize(x.size(), [&](std::size_t i) { x[i] = x[i] * 0.999 + 0.001; }); });
  }
  bench::check(state, x[12345] > 0.0 && x[12345] <= 1.0, "loop values");
  bench::set_weft_stats(state, rt);
}

template <split_policy S>
void small_loops_variant(benchmark::State& state) {
  auto& rt = runtime_for(static_cast<int>(state.range(0)), victim_policy::random, S);
  std::vector<double> x(1000, 1.0);
  rt.reset_stats();
  for (auto _ : state) {
    rt.run([&] {
      for (int k = 0; k < 10'000; ++k) weft::parallelize(x.size(), [&](std::size_t i) { x[i] += 1.0; });
    });
  }
  bench::check(state, x[0] == 1.0 + 10'000.0 * static_cast<double>(state.iterations()), "small loops");
  bench::set_weft_stats(state, rt);
}

template <split_policy S>
void uneven_variant(benchmark::State& state) {
  auto& rt = runtime_for(static_cast<int>(state.range(0)), victim_policy::random, S);
  constexpr std::int64_t n = 20'000;
  std::vector<double> out(n);
  rt.reset_stats();
  for (auto _ : state) {
    rt.run([&] { weft::parallelize(n, [&](std::int64_t i) { out[static_cast<std::size_t>(i)] = uneven_item(i); }); });
  }
  bench::check(state, out[777] == uneven_item(777), "uneven loop");
  bench::set_weft_stats(state, rt);
}

template <victim_policy V>
void register_victim() {
  bench::add_parallel(std::string("policies_fib/weft_") + name_of(V), fib_variant<V>);
  bench::add_parallel(std::string("policies_tree/weft_") + name_of(V), tree_variant<V>);
}

template <split_policy S>
void register_split() {
  bench::add_parallel(std::string("policies_loop/weft_") + name_of(S), loop_variant<S>);
  bench::add_parallel(std::string("policies_small_loops/weft_") + name_of(S), small_loops_variant<S>);
  bench::add_parallel(std::string("policies_uneven/weft_") + name_of(S), uneven_variant<S>);
}

}  // namespace

int main(int argc, char** argv) {
  register_victim<victim_policy::random>();
  register_victim<victim_policy::round_robin>();
  register_victim<victim_policy::last_victim>();
  register_split<split_policy::adaptive>();
  register_split<split_policy::eager>();
  register_split<split_policy::fixed>();
  return bench::main(argc, argv);
}
