// SPDX-License-Identifier: MIT
// 100 000 items of one parallelize meeting at one latch: every item
// suspends, so the loop's items not started go to other workers and to the
// suspending worker's next fiber each time (docs/protocols/loops.md), and all
// 100 000 are suspended at once at the end (16 KiB stacks; stacks come from
// slabs with guard markers where the kernel has MADV_GUARD_INSTALL, Linux
// 6.13+; elsewhere 100 000 stacks exceed vm.max_map_count, and the test skips
// itself saying so). Also a capped loop whose cap is the item count, and
// parallel_for chunks of one item. And SPMD phases: items of one loop meet
// at a weft::barrier phase after phase, for the test's time budget (one item
// per worker, and more items than workers). The watchdog turns a hang into a
// failure.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include <weft/weft.hpp>

#include "process_info.hpp"
#include "sanitizers.hpp"
#include "stress.hpp"

namespace {

namespace st = weft_test::stress;

enum class kind { parallelize, capped, parallel_for };

class LoopWaitStress : public testing::TestWithParam<std::tuple<int, kind>> {};

TEST_P(LoopWaitStress, HundredThousandItemsMeetAtOneLatch) {
  if (!weft_test::kernel_has_guard_markers()) {
    GTEST_SKIP() << "this kernel lacks MADV_GUARD_INSTALL (Linux 6.13+): 100 000 suspended fibers need two memory "
                    "mappings each with mprotect guards, beyond vm.max_map_count";
  }
  // TSan counts every fiber against its limit of 8128 threads and creates
  // each slowly: fewer there.
  const int n = weft_test::k_tsan ? 500 : 100'000;
  const auto& param = GetParam();  // named copies below, not structured bindings: clang 14 cannot capture those
  const auto workers = std::get<0>(param);
  const auto k = std::get<1>(param);
  weft::runtime rt{weft::config{.workers = workers, .stack_size = weft::k_min_stack_size}};
  std::vector<std::atomic<int>> ran(static_cast<std::size_t>(n));
  std::atomic<int> released{0};
  const auto start = st::clock_type::now();
  rt.run([&] {
    weft::latch all(n);
    auto item = [&](int i) {
      ran[static_cast<std::size_t>(i)].fetch_add(1, std::memory_order_relaxed);
      all.arrive_and_wait();
      released.fetch_add(1, std::memory_order_relaxed);
    };
    switch (k) {
      case kind::parallelize: weft::parallelize(n, item); break;
      case kind::capped: weft::parallelize(n, n, item); break;
      case kind::parallel_for:
        weft::parallel_for(0, n, 1, [&](int b, int e) {
          for (int i = b; i < e; ++i) item(i);
        });
        break;
    }
  });
  const double seconds = std::chrono::duration<double>(st::clock_type::now() - start).count();
  st::report("%d workers, %s: %d items met at one latch in %.3f s (%.2f us per item)", workers,
             k == kind::parallelize ? "parallelize"
             : k == kind::capped    ? "capped parallelize"
                                    : "parallel_for",
             n, seconds, seconds * 1e6 / n);
  int wrong = 0;
  for (int i = 0; i < n; ++i) wrong += ran[static_cast<std::size_t>(i)].load() != 1;
  EXPECT_EQ(wrong, 0) << "items that did not run exactly once";
  EXPECT_EQ(released.load(), n);
}

INSTANTIATE_TEST_SUITE_P(All, LoopWaitStress,
                         testing::Combine(testing::Values(1, 2),
                                          testing::Values(kind::parallelize, kind::capped, kind::parallel_for)),
                         [](const testing::TestParamInfo<std::tuple<int, kind>>& info) {
                           const kind k = std::get<1>(info.param);
                           return std::string(k == kind::parallelize ? "Parallelize"
                                              : k == kind::capped    ? "Capped"
                                                                     : "ParallelFor") +
                                  "Workers" + std::to_string(std::get<0>(info.param));
                         });

// Items of one loop meet at a barrier phase after phase until the budget is
// spent (the completion function decides when to stop, so every item sees
// the same last phase). Every phase completes only after all its arrivals.
class LoopBarrierStress : public testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(LoopBarrierStress, ItemsMeetAtABarrierForManyPhases) {
  const auto [workers, items_per_worker] = GetParam();
  const int n = workers * items_per_worker;
  weft::runtime rt{weft::config{.workers = workers, .stack_size = weft::k_min_stack_size}};
  const auto deadline = st::clock_type::now() + st::budget(1.0);
  std::atomic<long> arrivals{0};
  long phases = 0;
  long early = 0;
  bool stop = false;
  weft::barrier b(n, [&]() noexcept {
    // Only the completion step touches phases, early and stop: the barrier
    // orders it after every arrival of its phase and before the waits return.
    if (arrivals.load(std::memory_order_relaxed) != static_cast<long>(n) * (phases + 1)) ++early;
    ++phases;
    stop = st::clock_type::now() >= deadline;
  });
  std::atomic<long> item_phases{0};
  rt.run([&] {
    weft::parallelize(n, n, [&](int) {
      for (bool done = false; !done;) {
        arrivals.fetch_add(1, std::memory_order_relaxed);
        b.arrive_and_wait();
        done = stop;
        item_phases.fetch_add(1, std::memory_order_relaxed);
      }
    });
  });
  st::report("%d workers, %d items: %ld phases", workers, n, phases);
  EXPECT_EQ(early, 0) << "phases completed before all their arrivals";
  EXPECT_EQ(item_phases.load(), phases * n) << "every item passes every phase";
  EXPECT_GT(phases, 0);
}

INSTANTIATE_TEST_SUITE_P(All, LoopBarrierStress, testing::Combine(testing::Values(1, 2, 3), testing::Values(1, 16)),
                         [](const testing::TestParamInfo<std::tuple<int, int>>& info) {
                           return "Workers" + std::to_string(std::get<0>(info.param)) + "ItemsPerWorker" +
                                  std::to_string(std::get<1>(info.param));
                         });

}  // namespace
