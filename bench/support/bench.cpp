// SPDX-License-Identifier: MIT
#include "bench.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>

#include <weft/version.hpp>

namespace bench {

namespace {

std::vector<std::function<void()>>& exit_hooks() {
  static std::vector<std::function<void()>> hooks;
  return hooks;
}

// Writes this process's peak resident set size (VmHWM of /proc/self/status,
// in KiB) to the file named by WEFT_BENCH_RSS_FILE, if set. tools/bench runs
// one benchmark per process and reports it. (A parent's wait4() cannot tell:
// Linux folds the RSS of the forked copy of the parent, before exec, into the
// child's ru_maxrss.)
void write_peak_rss() {
  const char* path = std::getenv("WEFT_BENCH_RSS_FILE");
  if (path == nullptr) return;
  std::FILE* status = std::fopen("/proc/self/status", "r");
  if (status == nullptr) return;
  char line[256];
  long kib = -1;
  while (std::fgets(line, sizeof line, status) != nullptr) {
    if (std::sscanf(line, "VmHWM: %ld kB", &kib) == 1) break;
  }
  std::fclose(status);
  if (kib < 0) return;
  if (std::FILE* out = std::fopen(path, "w")) {
    std::fprintf(out, "%ld\n", kib);
    std::fclose(out);
  }
}

}  // namespace

int max_workers() {
  static const int value = [] {
    if (const char* env = std::getenv("WEFT_BENCH_MAX_WORKERS")) {
      char* end = nullptr;
      const long v = std::strtol(env, &end, 10);
      if (end == env || *end != '\0' || v < 1 || v > 4096) {
        std::fprintf(stderr, "WEFT_BENCH_MAX_WORKERS=%s: expected a positive integer\n", env);
        std::exit(2);
      }
      return static_cast<int>(v);
    }
    const unsigned hw = std::thread::hardware_concurrency();
    return hw == 0 ? 1 : static_cast<int>(hw);
  }();
  return value;
}

std::vector<int> worker_counts() {
  std::vector<int> counts;
  if (const char* env = std::getenv("WEFT_BENCH_WORKERS")) {
    // A comma-separated list, e.g. "1,2,4,8,16": for large machines, where
    // every count from 1 would take too long. Counts above max_workers() are
    // dropped.
    const char* p = env;
    while (*p != '\0') {
      char* end = nullptr;
      const long v = std::strtol(p, &end, 10);
      if (end == p || v < 1) {
        std::fprintf(stderr, "WEFT_BENCH_WORKERS=%s: expected a comma-separated list of positive integers\n", env);
        std::exit(2);
      }
      if (v <= max_workers()) counts.push_back(static_cast<int>(v));
      p = *end == ',' ? end + 1 : end;
      if (*end != ',' && *end != '\0') {
        std::fprintf(stderr, "WEFT_BENCH_WORKERS=%s: expected a comma-separated list of positive integers\n", env);
        std::exit(2);
      }
    }
    return counts;
  }
  for (int w = 1; w <= max_workers(); ++w) counts.push_back(w);
  return counts;
}

benchmark::internal::Benchmark* add_serial(const std::string& name, function fn, std::initializer_list<param> params) {
  auto* b = benchmark::RegisterBenchmark(name.c_str(), fn);
  if (params.size() > 0) {
    std::vector<std::string> names;
    std::vector<std::int64_t> args;
    for (const param& p : params) {
      names.emplace_back(p.name);
      args.push_back(p.value);
    }
    b->ArgNames(names)->Args(args);
  }
  // Wall-clock time like the parallel variants, so that ratios compare like with like.
  return b->Unit(benchmark::kMillisecond)->UseRealTime();
}

benchmark::internal::Benchmark* add_parallel(const std::string& name, function fn, std::initializer_list<param> params,
                                             const std::vector<int>& workers, timing how) {
  auto* b = benchmark::RegisterBenchmark(name.c_str(), fn);
  std::vector<std::string> names;
  for (const param& p : params) names.emplace_back(p.name);
  names.emplace_back("workers");
  b->ArgNames(names);
  for (int w : workers) {
    std::vector<std::int64_t> args;
    for (const param& p : params) args.push_back(p.value);
    args.push_back(w);
    b->Args(args);
  }
  b->Unit(benchmark::kMillisecond);
  return how == timing::manual ? b->UseManualTime() : b->UseRealTime();
}

bool check(benchmark::State& state, bool ok, const std::string& what) {
  if (!ok) state.SkipWithError(what.c_str());
  return ok;
}

void set_tasks(benchmark::State& state, double tasks_per_iteration) {
  state.counters["tasks"] = benchmark::Counter(tasks_per_iteration);
}

void at_exit(std::function<void()> hook) { exit_hooks().push_back(std::move(hook)); }

void add_context(const std::string& key, const std::string& value) { benchmark::AddCustomContext(key, value); }

int run(int argc, char** argv, const std::string& peers) {
  add_context("weft_version", weft::k_version);
  add_context("weft_bench_max_workers", std::to_string(max_workers()));
#if defined(__clang__)
  add_context("compiler", "clang++ " __clang_version__);
#elif defined(__GNUC__)
  add_context("compiler", "g++ " __VERSION__);
#endif
#if defined(NDEBUG)
  add_context("weft_bench_build", "release (NDEBUG)");
#else
  add_context("weft_bench_build", "debug (assertions on)");
#endif
  add_context("weft_bench_peers", peers.empty() ? "none" : peers);

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  for (auto& hook : exit_hooks()) hook();
  write_peak_rss();
  return 0;
}

}  // namespace bench
