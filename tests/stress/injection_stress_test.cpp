// SPDX-License-Identifier: MIT
// Stress test of runtime/injection.hpp: many producers push while several
// consumers take_all(). Every task pushed is taken exactly once, and each
// consumer sees every producer's tasks in the order they were pushed (within
// a list and across its lists).
#include "injection.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cinttypes>
#include <cstddef>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#include "seeded_rng.hpp"
#include "stress.hpp"

namespace {

namespace st = weft_test::stress;
using weft::detail::job;
using weft::rt::injection_queue;

// A task with what the consumers check. Each producer owns a pool of items
// and pushes all of them once per round, in order; it starts the next round
// only when the consumers took every item of this one.
struct item {
  job m_task;  // first: the task pointer is the item pointer
  std::uint32_t m_producer = 0;
  std::uint32_t m_index = 0;
  std::uint64_t m_round = 0;  // written by the producer before the push
  std::atomic<std::uint64_t> m_receipts{0};
};
static_assert(std::is_standard_layout_v<item>);
static_assert(offsetof(item, m_task) == 0);

item* item_of(job* t) { return reinterpret_cast<item*>(t); }

struct alignas(weft::rt::k_false_sharing) producer_state {
  std::atomic<std::uint64_t> m_taken{0};  // items of this producer taken by consumers
};

class InjectionStress : public testing::TestWithParam<std::pair<int, int>> {};

TEST_P(InjectionStress, ProducersAndTakeAllConsumers) {
  const auto& param = GetParam();  // named copies below, not structured bindings: clang 14 cannot capture those
  const auto producers = std::get<0>(param);
  const auto consumers = std::get<1>(param);
  constexpr std::uint32_t pool_size = 2048;
  weft_test::seeded_rng rng;
  const std::uint64_t seed = rng.seed();
  st::errors errs;
  injection_queue q;
  std::vector<std::unique_ptr<item[]>> pools;
  std::vector<producer_state> states(static_cast<std::size_t>(producers));
  for (int p = 0; p < producers; ++p) {
    pools.push_back(std::make_unique<item[]>(pool_size));
    for (std::uint32_t i = 0; i < pool_size; ++i) {
      pools.back()[i].m_producer = static_cast<std::uint32_t>(p);
      pools.back()[i].m_index = i;
    }
  }
  const auto deadline = st::clock_type::now() + st::budget(2.0);
  std::atomic<int> producers_left{producers};
  std::atomic<std::uint64_t> pushed{0};
  std::atomic<std::uint64_t> taken{0};
  std::atomic<std::uint64_t> lists{0};
  std::atomic<std::uint64_t> longest{0};

  std::vector<std::thread> threads;
  for (int c = 0; c < consumers; ++c) {
    threads.emplace_back([&, c] {
      st::fast_rng r(seed + 100 + static_cast<std::uint64_t>(c));
      // The (round, index) of the last item seen from each producer.
      std::vector<std::uint64_t> last(static_cast<std::size_t>(producers), 0);
      std::vector<bool> seen(static_cast<std::size_t>(producers), false);
      std::uint64_t my_taken = 0;
      std::uint64_t my_lists = 0;
      std::uint64_t my_longest = 0;
      const std::uint64_t max_len = static_cast<std::uint64_t>(producers) * pool_size;
      for (;;) {
        const bool done = producers_left.load(std::memory_order_acquire) == 0;
        job* list = q.take_all();
        if (list == nullptr) {
          if (done) break;
          if (r.one_in(2)) st::spin(r.below(256));
          continue;
        }
        ++my_lists;
        std::uint64_t len = 0;
        for (job* t = list; t != nullptr;) {
          if (++len > max_len) {
            errs.add("a list from take_all() is longer than every item pushed: a cycle");
            break;
          }
          job* next = t->m_next;  // read before the item goes back to its producer
          item* it = item_of(t);
          const std::uint32_t p = it->m_producer;
          const std::uint64_t round = it->m_round;
          const std::uint64_t key = (round << 32) | it->m_index;
          if (p >= static_cast<std::uint32_t>(producers)) {
            errs.add("take_all() returned a job that was never pushed");
            break;
          }
          if (seen[p] && key <= last[p]) {
            errs.add("consumer " + std::to_string(c) + " got producer " + std::to_string(p) + "'s item " +
                     std::to_string(it->m_index) + " of round " + std::to_string(round) + " after item " +
                     std::to_string(last[p] & 0xffffffffu) + " of round " + std::to_string(last[p] >> 32) +
                     ": not oldest first");
          }
          seen[p] = true;
          last[p] = key;
          if (it->m_receipts.fetch_add(1, std::memory_order_relaxed) != round) {
            errs.add("producer " + std::to_string(p) + "'s item " + std::to_string(it->m_index) +
                     " taken twice in round " + std::to_string(round));
          }
          states[p].m_taken.fetch_add(1, std::memory_order_release);  // the item goes back to its producer
          t = next;
        }
        my_taken += len;
        if (len > my_longest) my_longest = len;
      }
      taken.fetch_add(my_taken);
      lists.fetch_add(my_lists);
      std::uint64_t l = longest.load();
      while (my_longest > l && !longest.compare_exchange_weak(l, my_longest)) {
      }
    });
  }
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      st::fast_rng r(seed + 1 + static_cast<std::uint64_t>(p));
      item* pool = pools[static_cast<std::size_t>(p)].get();
      std::uint64_t n = 0;
      for (std::uint64_t round = 0; st::clock_type::now() < deadline && !errs.any(); ++round) {
        for (std::uint32_t i = 0; i < pool_size; ++i) {
          pool[i].m_round = round;
          q.push(&pool[i].m_task);
          if (r.one_in(64)) st::spin(r.below(256));
        }
        n += pool_size;
        const std::uint64_t want = (round + 1) * pool_size;
        if (!st::wait_until(
                [&] { return states[static_cast<std::size_t>(p)].m_taken.load(std::memory_order_acquire) == want; })) {
          errs.add("producer " + std::to_string(p) + ": items of round " + std::to_string(round) +
                   " were never taken (" + std::to_string(states[static_cast<std::size_t>(p)].m_taken.load()) + " of " +
                   std::to_string(want) + ")");
          break;
        }
      }
      pushed.fetch_add(n);
      producers_left.fetch_sub(1, std::memory_order_acq_rel);
    });
  }
  for (std::thread& t : threads) t.join();
  st::report("seed %" PRIu64 ", %d producers, %d consumers: pushed %" PRIu64 ", taken %" PRIu64 " in %" PRIu64
             " lists (longest %" PRIu64 ")",
             seed, producers, consumers, pushed.load(), taken.load(), lists.load(), longest.load());
  EXPECT_FALSE(errs.any()) << errs.summary();
  EXPECT_EQ(taken.load(), pushed.load());
  EXPECT_TRUE(q.looks_empty());
  EXPECT_GT(pushed.load(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Threads, InjectionStress, testing::Values(std::pair{4, 2}, std::pair{8, 3}),
                         [](const testing::TestParamInfo<std::pair<int, int>>& info) {
                           return std::to_string(info.param.first) + "Producers" + std::to_string(info.param.second) +
                                  "Consumers";
                         });

}  // namespace
