// SPDX-License-Identifier: MIT
// Stress test of parking at the runtime level (the protocol on its own is in
// sleep_stress_test.cpp): workers go idle and park over and over, while work
// arrives from other workers (tasks published after a pause) and from outside
// (calls injected by other threads). Each round is built so that its work can
// only be done by a parked worker: the publishing worker stays busy until
// another worker has started the task it published. A lost wake-up therefore
// shows as a stall: each wait is bounded by stress.hpp's stall limit (and the
// whole test by the watchdog), and counts are exact.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <weft/weft.hpp>

#include "seeded_rng.hpp"
#include "stress.hpp"

namespace {

namespace st = weft_test::stress;

// A pause on the calling thread long enough, at times, for idle workers to
// finish their search (spin_us) and park.
void pause(st::fast_rng& r) {
  switch (r.below(4)) {
    case 0: break;
    case 1: st::spin(r.below(2000)); break;
    default: std::this_thread::sleep_for(std::chrono::microseconds(r.below(300)));
  }
}

// What one wake-up chain saw.
struct chain_result {
  bool stalled = false;
  int distinct = 0;  // workers that ran a piece of the chain
};

// On a worker of a runtime of `workers` workers: a chain of workers - 1
// publications. Level i pauses, then offers a task through join and stays
// busy until a thief started it; the task does the same one level down. The
// last level waits until every worker is in, so every task must be taken by
// a different, possibly parked, worker.
chain_result wake_chain(int workers, st::fast_rng& r) {
  std::atomic<int> arrived{1};
  std::atomic<bool> stalled{false};
  std::vector<std::atomic<int>> ran_on(static_cast<std::size_t>(workers));
  for (auto& x : ran_on) x.store(0);
  ran_on[static_cast<std::size_t>(weft::worker_index())].store(1);
  // Each level is a separate function call so that its stack frame holds the
  // join's state while the level below runs.
  struct level {
    static void run(int left, int workers, std::atomic<int>& arrived, std::atomic<bool>& stalled,
                    std::vector<std::atomic<int>>& ran_on, std::uint64_t pause_seed) {
      if (left == 0) {
        // Everyone in: each worker runs exactly one piece of this chain.
        if (!st::wait_until([&] { return arrived.load() == workers || stalled.load(); })) stalled = true;
        return;
      }
      st::fast_rng r(pause_seed);
      pause(r);
      std::atomic<bool> taken{false};
      weft::join(
          [&] {
            // Busy until a thief took the task (a parked worker must be woken).
            if (!st::wait_until([&] { return taken.load() || stalled.load(); })) stalled = true;
            if (!stalled.load()) run(left - 1, workers, arrived, stalled, ran_on, pause_seed * 31 + 7);
          },
          [&] {
            taken = true;
            ran_on[static_cast<std::size_t>(weft::worker_index())].fetch_add(1);
            arrived.fetch_add(1);
            if (!st::wait_until([&] { return arrived.load() == workers || stalled.load(); })) stalled = true;
          });
    }
  };
  level::run(workers - 1, workers, arrived, stalled, ran_on, r());
  chain_result out;
  out.stalled = stalled.load();
  for (auto& x : ran_on) out.distinct += x.load() > 0 ? 1 : 0;
  return out;
}

struct params {
  int workers;
  std::uint32_t spin_us;
};

class RuntimeParkingStress : public testing::TestWithParam<params> {};

// Work from other workers: each round, inside the runtime, pauses (the other
// workers go idle and park), then publishes a chain of tasks that only
// parked workers can run.
TEST_P(RuntimeParkingStress, TasksPublishedAfterWorkersParked) {
  const int workers = GetParam().workers;  // not structured bindings: clang 14 cannot capture those
  const std::uint32_t spin_us = GetParam().spin_us;
  if (workers == 1) GTEST_SKIP() << "a chain needs a worker to publish to";
  weft_test::seeded_rng rng;
  const std::uint64_t seed = rng.seed();
  weft::runtime rt{weft::config{.workers = workers, .spin_us = spin_us}};
  const auto start = st::clock_type::now();
  const auto deadline = start + st::budget(1.5);
  std::uint64_t rounds = 0;
  std::uint64_t stalls = 0;
  std::uint64_t bad_spread = 0;
  rt.reset_stats();
  rt.run([&] {
    st::fast_rng r(seed);
    while (st::clock_type::now() < deadline && stalls == 0) {
      const chain_result c = wake_chain(workers, r);
      ++rounds;
      if (c.stalled) ++stalls;
      if (!c.stalled && c.distinct != workers) ++bad_spread;
    }
  });
  const weft::stats s = rt.stats();
  st::report("seed %" PRIu64 ", %d workers, spin_us %u, %.2f s: %" PRIu64 " chains of %d publications; %" PRIu64
             " parks, %" PRIu64 " wake-ups, %" PRIu64 " steals",
             seed, workers, spin_us, std::chrono::duration<double>(st::clock_type::now() - start).count(), rounds,
             workers - 1, s.total.parks, s.total.wakeups, s.total.steals);
  EXPECT_EQ(stalls, 0u) << "a published task was not taken within the stall limit while other workers were idle: "
                           "a lost wake-up";
  EXPECT_EQ(bad_spread, 0u) << "a chain finished without every worker running a piece of it";
  EXPECT_GT(rounds, 0u);
}

// Work from outside: threads pause (every worker goes idle and parks) and
// then call into the runtime: on the slot of a parked worker, or, when none
// is free, through the injection queue, which has to wake a worker;
// some calls spawn work of their own, which wakes others. A call whose
// wake-up is lost never returns (the watchdog ends the test).
//
// (The wake-up chains above need a worker whose queue holds nothing but the
// chain, which injections break: a worker takes every task injected so far
// at once and queues the rest behind its own work.)
TEST_P(RuntimeParkingStress, CallsFromOutsideAfterWorkersParked) {
  const int workers = GetParam().workers;  // not structured bindings: clang 14 cannot capture those
  const std::uint32_t spin_us = GetParam().spin_us;
  constexpr int k_callers = 3;
  weft_test::seeded_rng rng;
  const std::uint64_t seed = rng.seed();
  weft::runtime rt{weft::config{.workers = workers, .spin_us = spin_us}};
  const auto start = st::clock_type::now();
  const auto deadline = start + st::budget(1.0);
  std::atomic<std::uint64_t> issued{0};
  std::atomic<std::uint64_t> ran{0};
  std::atomic<std::uint64_t> items{0};
  std::atomic<std::uint64_t> items_want{0};
  rt.reset_stats();
  std::vector<std::thread> callers;
  for (int c = 0; c < k_callers; ++c) {
    callers.emplace_back([&, c] {
      st::fast_rng r(seed + 1 + static_cast<std::uint64_t>(c));
      while (st::clock_type::now() < deadline) {
        pause(r);
        issued.fetch_add(1, std::memory_order_relaxed);
        switch (r.below(3)) {
          case 0: rt.run([&] { ran.fetch_add(1, std::memory_order_relaxed); }); break;
          case 1: {
            const int n = 1 + static_cast<int>(r.below(64));
            items_want.fetch_add(static_cast<std::uint64_t>(n), std::memory_order_relaxed);
            rt.run([&] {
              ran.fetch_add(1, std::memory_order_relaxed);
              weft::task_group g;
              for (int i = 0; i < n; ++i) g.spawn([&] { items.fetch_add(1, std::memory_order_relaxed); });
              g.wait();
            });
            break;
          }
          default: {
            const int n = 1 + static_cast<int>(r.below(2000));
            items_want.fetch_add(static_cast<std::uint64_t>(n), std::memory_order_relaxed);
            rt.run([&] {
              ran.fetch_add(1, std::memory_order_relaxed);
              weft::parallelize(n, [&](int) { items.fetch_add(1, std::memory_order_relaxed); });
            });
            break;
          }
        }
      }
    });
  }
  for (std::thread& t : callers) t.join();
  const weft::stats s = rt.stats();
  st::report("seed %" PRIu64 ", %d workers, spin_us %u, %d callers, %.2f s: %" PRIu64 " calls, %" PRIu64
             " items spawned inside them; %" PRIu64 " injected, %" PRIu64 " on lent slots, %" PRIu64 " parks, %" PRIu64
             " wake-ups, %" PRIu64 " steals",
             seed, workers, spin_us, k_callers, std::chrono::duration<double>(st::clock_type::now() - start).count(),
             issued.load(), items.load(), s.total.injected, s.total.lent, s.total.parks, s.total.wakeups,
             s.total.steals);
  EXPECT_EQ(ran.load(), issued.load());
  EXPECT_EQ(items.load(), items_want.load());
  if (s.total.tasks_run != 0) {  // counters compiled in (-Dinstrumentation=true)
    EXPECT_EQ(s.total.injected + s.total.lent, issued.load())
        << "every call from outside runs on a lent slot or is one injected task";
  }
  EXPECT_GT(issued.load(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Configs, RuntimeParkingStress,
                         testing::Values(params{1, 0}, params{2, 0}, params{3, 0}, params{3, 20}),
                         [](const testing::TestParamInfo<params>& info) {
                           return "Workers" + std::to_string(info.param.workers) + "Spin" +
                                  std::to_string(info.param.spin_us) + "us";
                         });

}  // namespace
