// SPDX-License-Identifier: MIT
// integrate: adaptive trapezoid integration of f(x) = (x^2 + 1) x over
// [0, L]: an interval is halved (one half spawned, the other run inline)
// until the two halves' trapezoids agree with the whole one within eps. An
// irregular binary recursion of tiny tasks (a few flops each).
//
// Input: L = 1000, eps = 1e-9. Every variant computes the same tree and adds
// the same pairs, so all results are bit-for-bit equal to the serial one.
#include <cmath>
#include <cstdio>
#include <string>

#include "peers.hpp"

#if WEFT_BENCH_HAVE_TBB
#include <tbb/task_group.h>
#endif

namespace {

constexpr double k_eps = 1e-9;

double f(double x) { return (x * x + 1.0) * x; }

// Recursion state of one interval [x1, x2] with f(x1) = y1, f(x2) = y2 and
// trapezoid area `area`.
struct interval {
  double x1, y1, x2, y2, area;
};

// Splits i at its midpoint; true when the halves must be refined further.
bool split(const interval& i, interval& left, interval& right) {
  const double half = (i.x2 - i.x1) / 2;
  const double x0 = i.x1 + half;
  const double y0 = f(x0);
  left = {i.x1, i.y1, x0, y0, (i.y1 + y0) / 2 * half};
  right = {x0, y0, i.x2, i.y2, (y0 + i.y2) / 2 * half};
  const double both = left.area + right.area;
  return both - i.area > k_eps || i.area - both > k_eps;
}

double integrate_serial(const interval& i, long* tasks) {
  interval l;
  interval r;
  if (!split(i, l, r)) return l.area + r.area;
  ++*tasks;
  const double a = integrate_serial(l, tasks);
  const double b = integrate_serial(r, tasks);
  return a + b;
}

interval whole(int length) { return {0.0, f(0.0), double(length), f(double(length)), 0.0}; }

struct answer {
  double value;
  long tasks;
};

answer serial_answer(int length) {
  long tasks = 0;
  const double value = integrate_serial(whole(length), &tasks);
  return {value, tasks};
}

void finish(benchmark::State& state, int length, double result) {
  const answer a = serial_answer(length);
  char text[128];
  std::snprintf(text, sizeof text, "wrong result: %.17g, expected %.17g", result, a.value);
  bench::check(state, result == a.value, text);
  bench::set_tasks(state, static_cast<double>(a.tasks));
}

void serial(benchmark::State& state) {
  int length = static_cast<int>(state.range(0));
  double r = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(length);
    long tasks = 0;
    r = integrate_serial(whole(length), &tasks);
    benchmark::DoNotOptimize(r);
  }
  finish(state, length, r);
}

double integrate_weft(const interval& i) {
  interval l;
  interval r;
  if (!split(i, l, r)) return l.area + r.area;
  auto [a, b] = weft::join([&l] { return integrate_weft(l); }, [&r] { return integrate_weft(r); });
  return a + b;
}

void weft_variant(benchmark::State& state) {
  const int length = static_cast<int>(state.range(0));
  weft::runtime& rt = bench::weft_runtime(static_cast<int>(state.range(1)));
  rt.reset_stats();
  double r = 0;
  for (auto _ : state) r = rt.run([length] { return integrate_weft(whole(length)); });
  bench::set_weft_stats(state, rt);
  finish(state, length, r);
}

#if WEFT_BENCH_HAVE_TBB
double integrate_tbb(const interval& i) {
  interval l;
  interval r;
  if (!split(i, l, r)) return l.area + r.area;
  double a = 0;
  double b = 0;
  tbb::task_group g;
  g.run([&] { b = integrate_tbb(r); });
  a = integrate_tbb(l);
  g.wait();
  return a + b;
}

void tbb_variant(benchmark::State& state) {
  const int length = static_cast<int>(state.range(0));
  auto& arena = bench::tbb_arena(static_cast<int>(state.range(1)));
  double r = 0;
  for (auto _ : state) arena.execute([&] { r = integrate_tbb(whole(length)); });
  finish(state, length, r);
}
#endif

#if WEFT_BENCH_HAVE_OPENMP
double integrate_omp(const interval& i) {
  interval l;
  interval r;
  if (!split(i, l, r)) return l.area + r.area;
  double a = 0;
  double b = 0;
#pragma omp task shared(b) firstprivate(r) untied
  b = integrate_omp(r);
  a = integrate_omp(l);
#pragma omp taskwait
  return a + b;
}

void omp_variant(benchmark::State& state) {
  const int length = static_cast<int>(state.range(0));
  const int workers = static_cast<int>(state.range(1));
  double r = 0;
  for (auto _ : state) {
#pragma omp parallel num_threads(workers)
#pragma omp single
    r = integrate_omp(whole(length));
  }
  finish(state, length, r);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const int length = 1000;
  bench::add_serial("integrate/serial", serial, {{"L", length}});
  bench::add_parallel("integrate/weft", weft_variant, {{"L", length}});
#if WEFT_BENCH_HAVE_TBB
  bench::add_parallel("integrate/tbb", tbb_variant, {{"L", length}});
#endif
#if WEFT_BENCH_HAVE_OPENMP
  bench::add_parallel("integrate/omp", omp_variant, {{"L", length}});
#endif
  return bench::main(argc, argv);
}
