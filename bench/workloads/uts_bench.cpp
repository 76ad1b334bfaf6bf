// SPDX-License-Identifier: MIT
// UTS, the Unbalanced Tree Search benchmark (Olivier et al., LCPC 2006): count
// the nodes of an implicit random tree, one task per child. Isolates load
// balance on unpredictable trees, and the memory a runtime needs for deep
// chains of joins.
//
// The published UTS derives a child's 20-byte state from its parent's with
// SHA-1. Here a node's state is a 64-bit hash and
//
//   mix(z)      = splitmix64's finaliser of z + 0x9e3779b97f4a7c15
//   root        = mix(seed)
//   child(h, i) = mix(h ^ mix(i + 1))           (i: the child's index, from 0)
//   u(h)        = (h >> 11) * 2^-53             (uniform in [0, 1))
//
// so the trees differ from the SHA-1 ones; the seeds were chosen so that their
// sizes are close to the published ones. One hash per child keeps the work per
// node small (a few ns): scheduling costs show.
//
//   T1, geometric ("-t 1 -a 3 -d 10 -b 4"): a node at depth < 10 has
//       floor(log(1 - u) / log(1 - 1/(1 + 4))) children (geometric, mean 4),
//       deeper nodes none. Seed 23: 4 266 262 nodes, depth 10 (published,
//       SHA-1, seed 19: 4 130 071).
//   T3, binomial ("-t 0 -b 2000 -q 0.124875 -m 8"): the root has 2000
//       children; any other node 8 children with probability 0.124875, else
//       none. Seed 22: 4 123 817 nodes, depth 1 409 (published, SHA-1, seed
//       42: 4 112 897 nodes).
//
// Every benchmark checks its node count against these.
#include <array>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>

#include "peers.hpp"

#if WEFT_BENCH_HAVE_TBB
#include <tbb/task_group.h>
#endif

namespace {

std::uint64_t mix(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double uniform(std::uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }

struct node {
  std::uint64_t hash;
  int depth;
};

node child(const node& n, int i) { return {mix(n.hash ^ mix(static_cast<std::uint64_t>(i) + 1)), n.depth + 1}; }

struct tree {
  int id;  // 1 or 3
  std::uint64_t seed;
  long nodes;  // expected count
  int depth;   // of the deepest node
};

constexpr tree k_t1{1, 23, 4266262, 10};
constexpr tree k_t3{3, 22, 4123817, 1409};

const tree& tree_of(int id) { return id == 1 ? k_t1 : k_t3; }

int children(const node& n, int tree_id) {
  if (tree_id == 1) {
    if (n.depth >= 10) return 0;
    const double p = 1.0 / (1.0 + 4.0);
    return static_cast<int>(std::floor(std::log(1.0 - uniform(n.hash)) / std::log(1.0 - p)));
  }
  if (n.depth == 0) return 2000;
  return uniform(n.hash) < 0.124875 ? 8 : 0;
}

node root(const tree& t) { return {mix(t.seed), 0}; }

// One count per child: inline for up to 8 children, else on the heap.
class counts {
 public:
  explicit counts(int n) : m_data(m_small.data()) {
    if (n > static_cast<int>(m_small.size())) {
      m_big = std::make_unique<long[]>(static_cast<std::size_t>(n));
      m_data = m_big.get();
    }
  }
  long& operator[](int i) { return m_data[i]; }
  long sum(int n) const {
    long s = 0;
    for (int i = 0; i < n; ++i) s += m_data[i];
    return s;
  }

 private:
  std::array<long, 8> m_small{};
  std::unique_ptr<long[]> m_big;
  long* m_data;
};

void finish(benchmark::State& state, const tree& t, long result) {
  bench::check(state, result == t.nodes,
               "wrong node count: " + std::to_string(result) + ", expected " + std::to_string(t.nodes));
  bench::set_tasks(state, static_cast<double>(t.nodes - 1));
}

long uts_serial(const node& n, int tree_id) {
  const int k = children(n, tree_id);
  long s = 1;
  for (int i = 0; i < k; ++i) s += uts_serial(child(n, i), tree_id);
  return s;
}

void serial(benchmark::State& state) {
  const tree& t = tree_of(static_cast<int>(state.range(0)));
  int id = t.id;
  long r = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(id);
    r = uts_serial(root(t), id);
    benchmark::DoNotOptimize(r);
  }
  finish(state, t, r);
}

long uts_weft(const node& n, int tree_id) {
  const int k = children(n, tree_id);
  if (k == 0) return 1;
  counts c(k);
  weft::task_group g;
  for (int i = 0; i < k; ++i) {
    g.spawn([&c, i, tree_id, ch = child(n, i)] { c[i] = uts_weft(ch, tree_id); });
  }
  g.wait();
  return 1 + c.sum(k);
}

void weft_variant(benchmark::State& state) {
  const tree& t = tree_of(static_cast<int>(state.range(0)));
  weft::runtime& rt = bench::weft_runtime(static_cast<int>(state.range(1)));
  rt.reset_stats();
  long r = 0;
  for (auto _ : state) r = rt.run([&t] { return uts_weft(root(t), t.id); });
  bench::set_weft_stats(state, rt);
  finish(state, t, r);
}

#if WEFT_BENCH_HAVE_TBB
long uts_tbb(const node& n, int tree_id) {
  const int k = children(n, tree_id);
  if (k == 0) return 1;
  counts c(k);
  tbb::task_group g;
  for (int i = 0; i < k; ++i) {
    g.run([&c, i, tree_id, ch = child(n, i)] { c[i] = uts_tbb(ch, tree_id); });
  }
  g.wait();
  return 1 + c.sum(k);
}

void tbb_variant(benchmark::State& state) {
  const tree& t = tree_of(static_cast<int>(state.range(0)));
  auto& arena = bench::tbb_arena(static_cast<int>(state.range(1)));
  long r = 0;
  for (auto _ : state) arena.execute([&] { r = uts_tbb(root(t), t.id); });
  finish(state, t, r);
}
#endif

#if WEFT_BENCH_HAVE_OPENMP
long uts_omp(const node& n, int tree_id) {
  const int k = children(n, tree_id);
  if (k == 0) return 1;
  counts c(k);
  for (int i = 0; i < k; ++i) {
    const node ch = child(n, i);
#pragma omp task shared(c) firstprivate(i, tree_id, ch) untied
    c[i] = uts_omp(ch, tree_id);
  }
#pragma omp taskwait
  return 1 + c.sum(k);
}

void omp_variant(benchmark::State& state) {
  const tree& t = tree_of(static_cast<int>(state.range(0)));
  const int workers = static_cast<int>(state.range(1));
  long r = 0;
  for (auto _ : state) {
#pragma omp parallel num_threads(workers)
#pragma omp single
    r = uts_omp(root(t), t.id);
  }
  finish(state, t, r);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  for (int id : {1, 3}) {
    bench::add_serial("uts/serial", serial, {{"tree", id}});
    bench::add_parallel("uts/weft", weft_variant, {{"tree", id}});
#if WEFT_BENCH_HAVE_TBB
    bench::add_parallel("uts/tbb", tbb_variant, {{"tree", id}});
#endif
#if WEFT_BENCH_HAVE_OPENMP
    bench::add_parallel("uts/omp", omp_variant, {{"tree", id}});
#endif
  }
  return bench::main(argc, argv);
}
