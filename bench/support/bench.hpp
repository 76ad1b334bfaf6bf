// SPDX-License-Identifier: MIT
// Benchmark support: the worker-count sweep, naming, result checks and the
// main() shared by every benchmark binary.
//
// Naming (tools/bench_report parses it): "workload/variant[/param:value...]"
// followed, for a parallel variant, by "/workers:k". The variant is "serial",
// "weft" (or "weft_<how>"), or a peer: "tbb", "omp", "boost_fiber". Everything
// but the variant and the worker count selects the input, so benchmarks with
// the same workload and params are compared with each other.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

namespace bench {

// The highest worker count of the sweep: the environment variable
// WEFT_BENCH_MAX_WORKERS (a positive integer), else the hardware thread count.
int max_workers();

// The worker counts every parallel variant is registered for: 1 ..
// max_workers(), or the list in WEFT_BENCH_WORKERS ("1,2,4,8,16") if set.
std::vector<int> worker_counts();

using function = void (*)(benchmark::State&);

// A fixed input of a benchmark, part of its name ("n:30").
struct param {
  const char* name;
  std::int64_t value;
};

// Registers a serial variant: "name/p:v...", with the params as state.range(0..).
// Measured in wall-clock time.
benchmark::internal::Benchmark* add_serial(const std::string& name, function fn,
                                           std::initializer_list<param> params = {});

// How a benchmark is timed: wall-clock time of the iteration loop, or the
// time each iteration reports with state.SetIterationTime().
enum class timing { real, manual };

// Registers a parallel variant once per worker count of `workers` (default:
// the sweep): "name/p:v.../workers:k", with the params as state.range(0..) and
// the worker count as the last range.
benchmark::internal::Benchmark* add_parallel(const std::string& name, function fn,
                                             std::initializer_list<param> params = {},
                                             const std::vector<int>& workers = worker_counts(),
                                             timing how = timing::real);

// Marks the benchmark failed (SkipWithError) unless ok. Returns ok.
bool check(benchmark::State& state, bool ok, const std::string& what);

// Records how many tasks (spawned calls, or loop items) one iteration runs:
// counter "tasks"; tools/bench_report derives the time per task from it.
void set_tasks(benchmark::State& state, double tasks_per_iteration);

// Runs hook after all benchmarks (peers shut their threads down there).
void at_exit(std::function<void()> hook);

// Adds "key: value" to the JSON context of the run (peers found, compiler, ...).
void add_context(const std::string& key, const std::string& value);

// The main() of a benchmark binary, after registration: records the context
// (peers compiled in, compiler, weft version), parses the Google Benchmark
// flags, runs, then runs the at_exit hooks. Use bench::main (peers.hpp).
int run(int argc, char** argv, const std::string& peers);

}  // namespace bench
