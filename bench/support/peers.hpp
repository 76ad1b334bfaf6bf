// SPDX-License-Identifier: MIT
// Benchmark support: one runtime (or arena, or thread pool) per worker count,
// shared by all benchmarks of a binary, so that start-up costs stay out of the
// timings. Peers are optional: each is compiled in only when Meson found it
// (WEFT_BENCH_HAVE_TBB, WEFT_BENCH_HAVE_OPENMP, WEFT_BENCH_HAVE_BOOST_FIBER).
//
// "k workers" means k threads working in every system: a weft runtime with k
// workers (the outside caller only waits), a oneTBB arena of concurrency k (the
// calling thread included), an OpenMP team of num_threads(k) (the caller
// included), a Boost.Fiber work_stealing group of k threads (the caller
// included).
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <weft/weft.hpp>

#include "bench.hpp"

#if WEFT_BENCH_HAVE_TBB
#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#endif
#if WEFT_BENCH_HAVE_OPENMP
#include <omp.h>
#endif
#if WEFT_BENCH_HAVE_BOOST_FIBER
#include <boost/fiber/algo/work_stealing.hpp>
#include <boost/fiber/all.hpp>
#endif

namespace bench {

// A weft runtime with `workers` workers, created on first use.
inline weft::runtime& weft_runtime(int workers) {
  static std::map<int, std::unique_ptr<weft::runtime>> cache;
  auto& slot = cache[workers];
  if (!slot) slot = std::make_unique<weft::runtime>(weft::config{.workers = workers});
  return *slot;
}

// Records weft's scheduler counters since the last rt.reset_stats(), per
// iteration of `state`: steals, fiber switches, suspensions, parks, wake-ups
// and tasks taken from the injection queue (calls handed over among them);
// and the fiber stacks created in all. Call rt.reset_stats() before the
// timing loop (the runtime is idle then, so the counters start exact).
inline void set_weft_stats(benchmark::State& state, const weft::runtime& rt) {
  const weft::worker_stats s = rt.stats().total;
  const double n = state.iterations() > 0 ? static_cast<double>(state.iterations()) : 1.0;
  state.counters["steals"] = benchmark::Counter(static_cast<double>(s.steals) / n);
  state.counters["switches"] = benchmark::Counter(static_cast<double>(s.fiber_switches) / n);
  state.counters["suspensions"] = benchmark::Counter(static_cast<double>(s.suspensions) / n);
  state.counters["fibers_created"] = benchmark::Counter(static_cast<double>(s.fibers_created));
  state.counters["parks"] = benchmark::Counter(static_cast<double>(s.parks) / n);
  state.counters["wakeups"] = benchmark::Counter(static_cast<double>(s.wakeups) / n);
  state.counters["injected"] = benchmark::Counter(static_cast<double>(s.injected) / n);
}

#if WEFT_BENCH_HAVE_TBB
// A oneTBB arena with `workers` threads (the calling thread included).
inline tbb::task_arena& tbb_arena(int workers) {
  // oneTBB caps its worker threads at the hardware thread count minus one
  // unless told otherwise; the sweep may go beyond it.
  static tbb::global_control limit(tbb::global_control::max_allowed_parallelism,
                                   static_cast<std::size_t>(std::max<int>(max_workers(), 1) + 1));
  static std::map<int, std::unique_ptr<tbb::task_arena>> cache;
  auto& slot = cache[workers];
  if (!slot) {
    slot = std::make_unique<tbb::task_arena>(workers);
    slot->initialize();
  }
  return *slot;
}
#endif

#if WEFT_BENCH_HAVE_BOOST_FIBER
// The stack allocator of every Boost.Fiber fiber here: fixed-size stacks of
// WEFT_BENCH_FIBER_STACK bytes (default 64 KiB), from malloc. Boost's default
// (128 KiB) lies above glibc's mmap threshold, so every fiber would cost an
// mmap, page faults and an munmap; 64 KiB stacks come from malloc's free lists.
// (pooled_fixedsize_stack is not safe when fibers migrate between threads.)
inline boost::fibers::fixedsize_stack boost_fiber_stack() {
  static const std::size_t size = [] {
    const char* env = std::getenv("WEFT_BENCH_FIBER_STACK");
    return env != nullptr ? static_cast<std::size_t>(std::strtoul(env, nullptr, 10)) : std::size_t{64 * 1024};
  }();
  return boost::fibers::fixedsize_stack(size);
}

// Boost.Fiber's work-stealing scheduler on `workers` threads: the benchmark
// thread joins the group, workers - 1 helper threads run fibers until exit.
//
// boost::fibers::algo::work_stealing keeps its thread count in static state (a
// static barrier and a static scheduler table sized once), so a process can
// hold one such group, of one size, for its whole life. tools/bench therefore
// runs the boost_fiber variants in one process per worker count.
class boost_fiber_pool {
 public:
  // The group of `workers` threads, created on first use; null (and *error set)
  // if a group of another size exists already in this process.
  static boost_fiber_pool* get(int workers, std::string* error) {
    static std::unique_ptr<boost_fiber_pool> pool;
    if (!pool) {
      pool.reset(new boost_fiber_pool(workers));
      at_exit([] { pool.reset(); });
    }
    if (pool->m_workers != workers) {
      *error = "Boost.Fiber work_stealing supports one thread count per process (" + std::to_string(pool->m_workers) +
               " here): run each worker count alone (tools/bench does)";
      return nullptr;
    }
    return pool.get();
  }

  ~boost_fiber_pool() {
    {
      std::unique_lock<boost::fibers::mutex> lock(m_mutex);
      m_done = true;
    }
    m_cv.notify_all();
    for (auto& t : m_threads) t.join();
  }

 private:
  explicit boost_fiber_pool(int workers) : m_workers(workers) {
    const auto n = static_cast<std::uint32_t>(workers);
    for (int i = 1; i < workers; ++i) {
      m_threads.emplace_back([this, n] {
        boost::fibers::use_scheduling_algorithm<boost::fibers::algo::work_stealing>(n);
        std::unique_lock<boost::fibers::mutex> lock(m_mutex);
        m_cv.wait(lock, [this] { return m_done; });
      });
    }
    // Returns once all `workers` threads registered (work_stealing's barrier).
    boost::fibers::use_scheduling_algorithm<boost::fibers::algo::work_stealing>(n);
  }

  int m_workers;
  std::vector<std::thread> m_threads;
  boost::fibers::mutex m_mutex;
  boost::fibers::condition_variable m_cv;
  bool m_done = false;
};
#endif

// The peers compiled into this binary, space-separated; says on stderr which
// are missing (a missing peer is skipped, never an error). Boost.Fiber is only
// asked for by the benchmarks that use it (WEFT_BENCH_HAVE_BOOST_FIBER defined,
// 0 or 1).
inline std::string compiled_peers() {
  std::string peers;
#if WEFT_BENCH_HAVE_TBB
  peers += " tbb";
#else
  std::fputs("oneTBB not compiled in (Debian: libtbb-dev): its variants are skipped\n", stderr);
#endif
#if WEFT_BENCH_HAVE_OPENMP
  peers += " omp";
#else
  std::fputs("OpenMP not compiled in: its variants are skipped\n", stderr);
#endif
#if WEFT_BENCH_HAVE_BOOST_FIBER
  peers += " boost_fiber";
#elif defined(WEFT_BENCH_HAVE_BOOST_FIBER)
  std::fputs("Boost.Fiber not compiled in (Debian: libboost-fiber-dev): its variants are skipped\n", stderr);
#endif
  return peers.empty() ? std::string() : peers.substr(1);
}

// main() of a benchmark binary, after its registrations.
inline int main(int argc, char** argv) { return run(argc, argv, compiled_peers()); }

}  // namespace bench
