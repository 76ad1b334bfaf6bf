// SPDX-License-Identifier: MIT
// sort: weft::sort of 10^7 uint64_t and of 10^7 doubles, and weft::stable_sort
// of 10^7 pairs ordered by their first member only (1000 distinct keys, so
// that stability decides the output).
//
// Variants: serial std::sort / std::stable_sort; weft; oneTBB's
// tbb::parallel_sort (no stable sort there); std::sort / std::stable_sort with
// std::execution::par ("std_par"; libstdc++ runs it on oneTBB, in the arena of
// the caller, which sets its worker count).
//
// Every iteration sorts a fresh copy of the same random input; only the sort is
// timed (the copy runs with the timer paused). Every variant's output must equal std::sort's
// (std::stable_sort's for the pairs). WEFT_BENCH_SORT_N overrides the count.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <utility>
#include <vector>

#include <weft/algorithm.hpp>

#include "peers.hpp"

#if WEFT_BENCH_HAVE_TBB
#include <execution>

#include <tbb/parallel_sort.h>
#endif

namespace {

using pair_item = std::pair<std::uint32_t, std::uint32_t>;

struct by_key {
  bool operator()(const pair_item& a, const pair_item& b) const { return a.first < b.first; }
};

template <class T>
struct input {
  std::vector<T> items;
  std::vector<T> sorted;
};

std::size_t count() {
  static const std::size_t n = [] {
    long v = 10'000'000;
    if (const char* env = std::getenv("WEFT_BENCH_SORT_N")) v = std::atol(env);
    if (v < 1) {
      std::fputs("WEFT_BENCH_SORT_N: expected a positive integer\n", stderr);
      std::exit(2);
    }
    return static_cast<std::size_t>(v);
  }();
  return n;
}

template <class T>
const input<T>& data() {
  static const input<T> in = [] {
    input<T> d;
    const std::size_t n = count();
    std::mt19937_64 engine(12345);
    d.items.resize(n);
    if constexpr (std::is_same_v<T, std::uint64_t>) {
      for (auto& x : d.items) x = engine();
      d.sorted = d.items;
      std::sort(d.sorted.begin(), d.sorted.end());
    } else if constexpr (std::is_same_v<T, double>) {
      std::uniform_real_distribution<double> dist(-1e6, 1e6);
      for (auto& x : d.items) x = dist(engine);
      d.sorted = d.items;
      std::sort(d.sorted.begin(), d.sorted.end());
    } else {
      for (std::size_t i = 0; i < n; ++i)
        d.items[i] = {static_cast<std::uint32_t>(engine() % 1000), static_cast<std::uint32_t>(i)};
      d.sorted = d.items;
      std::stable_sort(d.sorted.begin(), d.sorted.end(), by_key{});
    }
    return d;
  }();
  return in;
}

// Times sort_fn(work) on a fresh copy of the input per iteration and checks the
// last output.
template <class T, class Sort>
void measure(benchmark::State& state, Sort&& sort_fn) {
  const input<T>& d = data<T>();
  std::vector<T> work;
  for (auto _ : state) {
    state.PauseTiming();
    work = d.items;
    state.ResumeTiming();
    sort_fn(work);
  }
  bench::check(state, work == d.sorted, "output differs from the serial sort");
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(d.items.size()));
}

template <class T>
void serial(benchmark::State& state) {
  measure<T>(state, [](std::vector<T>& v) {
    if constexpr (std::is_same_v<T, pair_item>) {
      std::stable_sort(v.begin(), v.end(), by_key{});
    } else {
      std::sort(v.begin(), v.end());
    }
  });
}

template <class T>
void weft_variant(benchmark::State& state) {
  weft::runtime& rt = bench::weft_runtime(static_cast<int>(state.range(1)));
  rt.reset_stats();
  measure<T>(state, [&](std::vector<T>& v) {
    rt.run([&] {
      if constexpr (std::is_same_v<T, pair_item>) {
        weft::stable_sort(v.begin(), v.end(), by_key{});
      } else {
        weft::sort(v.begin(), v.end());
      }
    });
  });
  bench::set_weft_stats(state, rt);
}

#if WEFT_BENCH_HAVE_TBB
template <class T>
void tbb_variant(benchmark::State& state) {
  auto& arena = bench::tbb_arena(static_cast<int>(state.range(1)));
  measure<T>(state, [&](std::vector<T>& v) { arena.execute([&] { tbb::parallel_sort(v.begin(), v.end()); }); });
}

template <class T>
void std_par_variant(benchmark::State& state) {
  auto& arena = bench::tbb_arena(static_cast<int>(state.range(1)));
  measure<T>(state, [&](std::vector<T>& v) {
    arena.execute([&] {
      if constexpr (std::is_same_v<T, pair_item>) {
        std::stable_sort(std::execution::par, v.begin(), v.end(), by_key{});
      } else {
        std::sort(std::execution::par, v.begin(), v.end());
      }
    });
  });
}
#endif

template <class T>
void add_all(const char* workload, bool with_tbb) {
  const auto n = static_cast<std::int64_t>(count());
  const std::string w = workload;
  bench::add_serial(w + "/serial", serial<T>, {{"n", n}});
  bench::add_parallel(w + "/weft", weft_variant<T>, {{"n", n}});
#if WEFT_BENCH_HAVE_TBB
  if (with_tbb) {
    bench::add_parallel(w + "/tbb", tbb_variant<T>, {{"n", n}});
  }
  bench::add_parallel(w + "/std_par", std_par_variant<T>, {{"n", n}});
#else
  (void)with_tbb;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  add_all<std::uint64_t>("sort_u64", true);
  add_all<double>("sort_double", true);
  add_all<pair_item>("stable_sort_pairs", false);
  return bench::main(argc, argv);
}
