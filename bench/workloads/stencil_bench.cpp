// SPDX-License-Identifier: MIT
// stencil: Jacobi sweeps called from plain code, one parallel loop per step,
// the way a new user writes a solver:
//   1d: 10^6 cells x 200 steps, u'[i] = (u[i-1] + u[i] + u[i+1]) / 3
//       (weft::parallelize over cells);
//   1d_small: 10^5 cells x 1000 steps, the same (the case of the busy
//       machine, see tools/bench --busy);
//   2d: 2048 x 2048 cells x 50 steps, 5-point average, rows in parallel
//       (weft::parallel_for), and every 10 steps the residual sum of
//       (u' - u)^2 (weft::parallel_reduce).
// Boundaries stay fixed. Every variant's final grid is compared bit for bit
// with the serial one (each cell is computed by the same expression).
// weft runs on its default runtime (WEFT_NUM_WORKERS), oneTBB capped with a
// global_control, OpenMP with num_threads(k) (bench/support/from_main.hpp).
#include <cmath>
#include <cstddef>
#include <cstring>
#include <functional>
#include <map>
#include <utility>
#include <vector>

#include "from_main.hpp"
#include "peers.hpp"

#if WEFT_BENCH_HAVE_TBB
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>
#endif

namespace {

struct grid {
  std::size_t rows;  // 1 for the 1-D cases
  std::size_t cols;
  std::vector<double> u, v;
  grid(std::size_t r, std::size_t c) : rows(r), cols(c), u(r * c), v(r * c) {
    for (std::size_t i = 0; i < u.size(); ++i) u[i] = static_cast<double>((i * 2654435761u) % 1000) / 1000.0;
    v = u;
  }
};

struct shape {
  std::size_t rows, cols;
  int steps;
};

shape shape_of(benchmark::State& state) {
  return {static_cast<std::size_t>(state.range(0)), static_cast<std::size_t>(state.range(1)),
          static_cast<int>(state.range(2))};
}

// One step of 1-D Jacobi on cells [b, e) (1 <= b, e <= n - 1).
inline void cell_1d(const double* u, double* v, std::size_t i) { v[i] = (u[i - 1] + u[i] + u[i + 1]) * (1.0 / 3.0); }

// One row of 2-D Jacobi (1 <= r <= rows - 2).
inline void row_2d(const double* u, double* v, std::size_t cols, std::size_t r) {
  const double* up = u + (r - 1) * cols;
  const double* mid = u + r * cols;
  const double* down = u + (r + 1) * cols;
  double* out = v + r * cols;
  for (std::size_t j = 1; j + 1 < cols; ++j) out[j] = 0.25 * (up[j] + down[j] + mid[j - 1] + mid[j + 1]);
}

inline double row_residual(const double* u, const double* v, std::size_t cols, std::size_t r) {
  double s = 0;
  for (std::size_t j = 1; j + 1 < cols; ++j) {
    const double d = v[r * cols + j] - u[r * cols + j];
    s += d * d;
  }
  return s;
}

// How each system runs a step: a loop over [1, n - 1) and a reduction.
struct system_ops {
  std::function<void(std::size_t, std::size_t, const std::function<void(std::size_t)>&)> items;
  std::function<double(std::size_t, std::size_t, const std::function<double(std::size_t)>&)> sum;
};

// The whole solve, with `loop(first, last, body)` running body(i) for i in
// [first, last) in parallel and `reduce` summing; returns the final grid.
template <class Loop, class Reduce>
std::vector<double> solve(const shape& s, Loop&& loop, Reduce&& reduce, double* residual_out) {
  grid g(s.rows, s.cols);
  double residual = 0;
  for (int step = 0; step < s.steps; ++step) {
    const double* u = g.u.data();
    double* v = g.v.data();
    if (s.rows == 1) {
      loop(std::size_t{1}, s.cols - 1, [u, v](std::size_t i) { cell_1d(u, v, i); });
    } else {
      const std::size_t cols = s.cols;
      loop(std::size_t{1}, s.rows - 1, [u, v, cols](std::size_t r) { row_2d(u, v, cols, r); });
      if ((step + 1) % 10 == 0) {
        residual =
            reduce(std::size_t{1}, s.rows - 1, [u, v, cols](std::size_t r) { return row_residual(u, v, cols, r); });
      }
    }
    std::swap(g.u, g.v);
  }
  if (residual_out != nullptr) *residual_out = residual;
  return std::move(g.u);
}

template <class F>
void serial_loop(std::size_t b, std::size_t e, F&& f) {
  for (std::size_t i = b; i < e; ++i) f(i);
}
template <class F>
double serial_sum(std::size_t b, std::size_t e, F&& f) {
  double s = 0;
  for (std::size_t i = b; i < e; ++i) s += f(i);
  return s;
}

// The serial result of a shape, computed once per process.
const std::vector<double>& reference(const shape& s) {
  static std::map<std::tuple<std::size_t, std::size_t, int>, std::vector<double>> cache;
  auto& r = cache[{s.rows, s.cols, s.steps}];
  if (r.empty()) {
    r = solve(
        s, [](std::size_t b, std::size_t e, auto&& f) { serial_loop(b, e, f); },
        [](std::size_t b, std::size_t e, auto&& f) { return serial_sum(b, e, f); }, nullptr);
  }
  return r;
}

void finish(benchmark::State& state, const shape& s, const std::vector<double>& result) {
  const std::vector<double>& ref = reference(s);
  bench::check(state,
               result.size() == ref.size() && std::memcmp(result.data(), ref.data(), ref.size() * sizeof(double)) == 0,
               "the final grid differs from the serial one");
  bench::set_tasks(state, static_cast<double>(s.steps) * static_cast<double>(s.rows == 1 ? s.cols : s.rows));
}

void serial(benchmark::State& state) {
  const shape s = shape_of(state);
  std::vector<double> out;
  for (auto _ : state) {
    out = solve(
        s, [](std::size_t b, std::size_t e, auto&& f) { serial_loop(b, e, f); },
        [](std::size_t b, std::size_t e, auto&& f) { return serial_sum(b, e, f); }, nullptr);
  }
  finish(state, s, out);
}

void weft_variant(benchmark::State& state) {
  const shape s = shape_of(state);
  if (!bench::default_runtime_of(state, static_cast<int>(state.range(3)))) return;
  std::vector<double> out;
  weft::default_runtime().reset_stats();
  for (auto _ : state) {
    out = solve(
        s,
        [&s](std::size_t b, std::size_t e, auto&& f) {
          if (s.rows == 1) {
            // The seed's pattern: one call per item.
            weft::parallelize(e - b, [&f, b](std::size_t k) { f(b + k); });
          } else {
            weft::parallel_for(b, e, [&f](std::size_t lo, std::size_t hi) {
              for (std::size_t r = lo; r < hi; ++r) f(r);
            });
          }
        },
        [](std::size_t b, std::size_t e, auto&& f) { return weft::parallel_reduce(b, e, 0.0, f, std::plus<>{}); },
        nullptr);
  }
  bench::set_weft_stats(state, weft::default_runtime());
  finish(state, s, out);
}

#if WEFT_BENCH_HAVE_TBB
void tbb_variant(benchmark::State& state) {
  const shape s = shape_of(state);
  bench::tbb_threads(static_cast<int>(state.range(3)));
  std::vector<double> out;
  for (auto _ : state) {
    out = solve(
        s,
        [](std::size_t b, std::size_t e, auto&& f) {
          tbb::parallel_for(tbb::blocked_range<std::size_t>(b, e), [&f](const tbb::blocked_range<std::size_t>& r) {
            for (std::size_t i = r.begin(); i < r.end(); ++i) f(i);
          });
        },
        [](std::size_t b, std::size_t e, auto&& f) {
          return tbb::parallel_reduce(
              tbb::blocked_range<std::size_t>(b, e), 0.0,
              [&f](const tbb::blocked_range<std::size_t>& r, double acc) {
                for (std::size_t i = r.begin(); i < r.end(); ++i) acc += f(i);
                return acc;
              },
              std::plus<>{});
        },
        nullptr);
  }
  finish(state, s, out);
}
#endif

#if WEFT_BENCH_HAVE_OPENMP
void omp_variant(benchmark::State& state) {
  const shape s = shape_of(state);
  const int workers = static_cast<int>(state.range(3));
  std::vector<double> out;
  for (auto _ : state) {
    out = solve(
        s,
        [workers](std::size_t b, std::size_t e, auto&& f) {
#pragma omp parallel for schedule(static) num_threads(workers)
          for (std::size_t i = b; i < e; ++i) f(i);
        },
        [workers](std::size_t b, std::size_t e, auto&& f) {
          double acc = 0;
#pragma omp parallel for schedule(static) reduction(+ : acc) num_threads(workers)
          for (std::size_t i = b; i < e; ++i) acc += f(i);
          return acc;
        },
        nullptr);
  }
  finish(state, s, out);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  struct input {
    const char* name;
    std::int64_t rows, cols, steps;
  };
  for (const input& in : {input{"stencil_1d", 1, 1'000'000, 200}, input{"stencil_1d_small", 1, 100'000, 1000},
                          input{"stencil_2d", 2048, 2048, 50}}) {
    const std::initializer_list<bench::param> p{{"rows", in.rows}, {"cols", in.cols}, {"steps", in.steps}};
    const std::string base = in.name;
    bench::add_serial(base + "/serial", serial, p);
    bench::add_parallel(base + "/weft", weft_variant, p);
#if WEFT_BENCH_HAVE_TBB
    bench::add_parallel(base + "/tbb", tbb_variant, p);
#endif
#if WEFT_BENCH_HAVE_OPENMP
    bench::add_parallel(base + "/omp", omp_variant, p);
#endif
  }
  return bench::main(argc, argv);
}
