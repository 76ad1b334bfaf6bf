// SPDX-License-Identifier: MIT
// spmd: Jacobi sweeps of a 1024 x 1024 grid, 100 sweeps, in the SPMD shape:
// one item (thread) per worker sweeps its own band of rows, and all meet at
// a barrier between sweeps (the grids alternate by the sweep's parity).
//   weft: weft::parallelize(k, k, fn) with a weft::barrier, called from plain
//         code on the default runtime (WEFT_NUM_WORKERS = k);
//   omp:  #pragma omp parallel num_threads(k) with #pragma omp barrier;
//   serial: the bands one after the other.
// Every variant's final grid is compared bit for bit with the serial one.
#include <cstddef>
#include <cstring>
#include <utility>
#include <vector>

#include "from_main.hpp"
#include "peers.hpp"

#if WEFT_BENCH_HAVE_OPENMP
#include <omp.h>
#endif

namespace {

constexpr int k_n = 1024;
constexpr int k_sweeps = 100;

struct grids {
  std::vector<double> a, b;
  grids() : a(static_cast<std::size_t>(k_n) * k_n, 0.0), b(static_cast<std::size_t>(k_n) * k_n, 0.0) {
    for (int c = 0; c < k_n; ++c) a[static_cast<std::size_t>(c)] = b[static_cast<std::size_t>(c)] = 1.0;
  }
};

void sweep(const double* from, double* to, int r0, int r1) {
  for (int r = r0; r < r1; ++r) {
    const double* up = from + static_cast<std::size_t>(r - 1) * k_n;
    const double* mid = from + static_cast<std::size_t>(r) * k_n;
    const double* down = from + static_cast<std::size_t>(r + 1) * k_n;
    double* out = to + static_cast<std::size_t>(r) * k_n;
    for (int c = 1; c + 1 < k_n; ++c) out[c] = 0.25 * (up[c] + down[c] + mid[c - 1] + mid[c + 1]);
  }
}

std::pair<int, int> band(int p, int me) {
  const int inner = k_n - 2;
  return {1 + inner * me / p, 1 + inner * (me + 1) / p};
}

const std::vector<double>& reference() {
  static const std::vector<double> result = [] {
    grids g;
    double* from = g.a.data();
    double* to = g.b.data();
    for (int s = 0; s < k_sweeps; ++s) {
      sweep(from, to, 1, k_n - 1);
      std::swap(from, to);
    }
    return std::vector<double>(from, from + static_cast<std::size_t>(k_n) * k_n);
  }();
  return result;
}

void finish(benchmark::State& state, const double* result) {
  bench::check(state, std::memcmp(result, reference().data(), reference().size() * sizeof(double)) == 0,
               "the final grid differs from the serial one");
  bench::set_tasks(state, static_cast<double>(k_sweeps));
}

void serial(benchmark::State& state) {
  grids g;
  const double* result = nullptr;
  for (auto _ : state) {
    g = grids();
    double* from = g.a.data();
    double* to = g.b.data();
    for (int s = 0; s < k_sweeps; ++s) {
      sweep(from, to, 1, k_n - 1);
      std::swap(from, to);
    }
    result = from;
  }
  finish(state, result);
}

void weft_variant(benchmark::State& state) {
  const int p = static_cast<int>(state.range(0));
  if (!bench::default_runtime_of(state, p)) return;
  grids g;
  const double* result = nullptr;
  weft::default_runtime().reset_stats();
  for (auto _ : state) {
    g = grids();
    double* grid[2] = {g.a.data(), g.b.data()};
    weft::barrier sync(p);
    weft::parallelize(p, p, [&](int me) {
      const auto [r0, r1] = band(p, me);
      for (int s = 0; s < k_sweeps; ++s) {
        sweep(grid[s % 2], grid[(s + 1) % 2], r0, r1);
        sync.arrive_and_wait();
      }
    });
    result = grid[k_sweeps % 2];
  }
  bench::set_weft_stats(state, weft::default_runtime());
  finish(state, result);
}

#if WEFT_BENCH_HAVE_OPENMP
void omp_variant(benchmark::State& state) {
  const int p = static_cast<int>(state.range(0));
  grids g;
  const double* result = nullptr;
  for (auto _ : state) {
    g = grids();
    double* grid[2] = {g.a.data(), g.b.data()};
#pragma omp parallel num_threads(p)
    {
      const int me = omp_get_thread_num();
      const int team = omp_get_num_threads();
      const auto [r0, r1] = band(team, me);
      for (int s = 0; s < k_sweeps; ++s) {
        sweep(grid[s % 2], grid[(s + 1) % 2], r0, r1);
#pragma omp barrier
      }
    }
    result = grid[k_sweeps % 2];
  }
  finish(state, result);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  bench::add_serial("spmd/serial", serial);
  bench::add_parallel("spmd/weft", weft_variant);
#if WEFT_BENCH_HAVE_OPENMP
  bench::add_parallel("spmd/omp", omp_variant);
#endif
  return bench::main(argc, argv);
}
