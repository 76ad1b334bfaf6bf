// SPDX-License-Identifier: MIT
// SPMD with weft: one item per worker (parallelize(p, p, fn)), each item
// sweeps its own band of a 2-D grid, and the items meet at a weft::barrier
// between sweeps (the shape of an OpenMP `parallel` region with
// `#pragma omp barrier`). The barrier's completion step, run once per sweep
// by the last item to arrive, swaps the grids and, every 10 sweeps, sums the
// residual the items left in their slots. Waiting at the barrier suspends the
// item's fiber, never its worker thread. Checks the result against a serial
// run, bit for bit.
//
//   spmd_jacobi [rows] [sweeps]
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include <weft/weft.hpp>

namespace {

struct grid {
  int rows;
  int cols;
  std::vector<double> cells;
  grid(int r, int c) : rows(r), cols(c), cells(static_cast<std::size_t>(r) * static_cast<std::size_t>(c)) {}
  double& at(int r, int c) {
    return cells[static_cast<std::size_t>(r) * static_cast<std::size_t>(cols) + static_cast<std::size_t>(c)];
  }
  double at(int r, int c) const {
    return cells[static_cast<std::size_t>(r) * static_cast<std::size_t>(cols) + static_cast<std::size_t>(c)];
  }
};

grid initial(int rows, int cols) {
  grid g(rows, cols);
  for (int c = 0; c < cols; ++c) g.at(0, c) = 1.0;  // a hot top edge; the rest starts cold
  return g;
}

// One sweep of rows [r0, r1) from `from` into `to`; returns the sum of the
// squared changes.
double sweep(const grid& from, grid& to, int r0, int r1) {
  double residual = 0;
  for (int r = r0; r < r1; ++r) {
    for (int c = 1; c + 1 < from.cols; ++c) {
      const double v = 0.25 * (from.at(r - 1, c) + from.at(r + 1, c) + from.at(r, c - 1) + from.at(r, c + 1));
      residual += (v - from.at(r, c)) * (v - from.at(r, c));
      to.at(r, c) = v;
    }
  }
  return residual;
}

// Rows [1, rows - 1) cut into p bands.
std::pair<int, int> band(int rows, int p, int me) {
  const int inner = rows - 2;
  return {1 + inner * me / p, 1 + inner * (me + 1) / p};
}

}  // namespace

int main(int argc, char** argv) {
  const int rows = argc > 1 ? std::atoi(argv[1]) : 512;
  const int sweeps = argc > 2 ? std::atoi(argv[2]) : 200;
  if (rows < 3 || rows > 16384 || sweeps < 10 || sweeps % 10 != 0 || argc > 3) {
    std::fprintf(stderr,
                 "usage: spmd_jacobi [rows (3 to 16384, default 512)] [sweeps (a multiple of 10, default 200)]\n");
    return 2;
  }
  const int cols = rows;

  // Serial reference, band by band in the same order of additions.
  const int p = weft::num_workers();  // the default runtime's workers
  grid a = initial(rows, cols), b = initial(rows, cols);
  std::vector<double> serial_residuals;
  for (int s = 0; s < sweeps; ++s) {
    double residual = 0;
    for (int me = 0; me < p; ++me) {
      const auto [r0, r1] = band(rows, p, me);
      residual += sweep(a, b, r0, r1);
    }
    std::swap(a, b);
    if ((s + 1) % 10 == 0) serial_residuals.push_back(residual);
  }

  // SPMD: p items, one per worker, meeting at a barrier after every sweep.
  grid x = initial(rows, cols), y = initial(rows, cols);
  grid* from = &x;
  grid* to = &y;
  std::vector<double> slot(static_cast<std::size_t>(p));
  std::vector<double> residuals;
  int sweep_done = 0;
  auto after_sweep = [&]() noexcept {  // the completion step: once per sweep
    std::swap(from, to);
    if (++sweep_done % 10 == 0) {
      double residual = 0;
      for (double v : slot) residual += v;  // in item order: the serial order
      residuals.push_back(residual);
    }
  };
  weft::barrier sync(p, after_sweep);
  weft::parallelize(p, p, [&](int me) {
    const auto [r0, r1] = band(rows, p, me);
    for (int s = 0; s < sweeps; ++s) {
      slot[static_cast<std::size_t>(me)] = sweep(*from, *to, r0, r1);
      sync.arrive_and_wait();
    }
  });

  const bool same = from->cells == a.cells && residuals == serial_residuals;
  std::printf("spmd_jacobi: %d x %d grid, %d sweeps on %d workers, residual after the last 10 sweeps %.6g: %s\n", rows,
              cols, sweeps, p, residuals.empty() ? 0.0 : residuals.back(), same ? "OK" : "WRONG");
  return same ? 0 : 1;
}
