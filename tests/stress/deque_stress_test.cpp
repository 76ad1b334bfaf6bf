// SPDX-License-Identifier: MIT
// Stress tests of runtime/deque.hpp: one owner pushing and taking against
// several thieves. Every item pushed is taken or stolen exactly once
// (nothing lost, nothing twice), across growth from the smallest capacity,
// wraps of the ring, and races for the last element.
#include "deque.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cinttypes>
#include <thread>
#include <vector>

#include "seeded_rng.hpp"
#include "stress.hpp"

namespace {

namespace st = weft_test::stress;
struct item;  // never defined: items are ids encoded as pointers
using item_deque = weft::rt::deque<item*>;
using status = item_deque::steal_status;

struct thief_counts {
  std::uint64_t stolen = 0;
  std::uint64_t empty = 0;
  std::uint64_t lost_race = 0;
};

// The owner's mix of operations; `last_element` makes it mostly push one or
// two items and take them back at once, the window where take() and steal()
// race for the same element through the CAS on top.
struct owner_mix {
  bool last_element = false;
};

class DequeStress : public testing::TestWithParam<int> {};

void run_deque_stress(int thieves, owner_mix mix, double seconds) {
  weft_test::seeded_rng rng;
  const std::uint64_t seed = rng.seed();
  st::errors errs;
  st::ledger ledger(std::uint64_t{1} << 24);
  item_deque d(1);  // the smallest array: the owner's bursts make it grow many times
  std::atomic<bool> owner_done{false};
  std::atomic<int> thieves_ready{0};
  std::vector<thief_counts> counts(static_cast<std::size_t>(thieves));

  std::vector<std::thread> threads;
  for (int k = 0; k < thieves; ++k) {
    threads.emplace_back([&, k] {
      thief_counts& c = counts[static_cast<std::size_t>(k)];
      st::fast_rng r(seed + 1 + static_cast<std::uint64_t>(k));
      std::uint64_t last = 0;
      thieves_ready.fetch_add(1);
      for (;;) {
        const bool done = owner_done.load(std::memory_order_acquire);
        const auto s = d.steal();
        if (s.status == status::success) {
          if (s.value == nullptr) {
            errs.add("steal() succeeded with a null value");
          } else {
            // Ids are pushed in increasing order and the deque hands out its
            // oldest element: one thief's steals come in increasing order.
            const std::uint64_t id = st::item_id(s.value);
            if (c.stolen != 0 && id <= last) {
              errs.add("a thief stole id " + std::to_string(id) + " after id " + std::to_string(last) +
                       ": not oldest first");
            }
            last = id;
            ledger.receive(id, errs, "a thief");
          }
          ++c.stolen;
        } else if (s.status == status::lost_race) {
          if (s.value != nullptr) errs.add("steal() lost a race but returned a value");
          ++c.lost_race;
        } else {
          if (done) break;  // the owner drained the deque before it said done
          ++c.empty;
          if (r.one_in(8)) st::spin(r.below(64));
        }
      }
    });
  }
  while (thieves_ready.load() < thieves) std::this_thread::yield();

  // The owner, on this thread.
  st::fast_rng r(seed);
  std::uint64_t next = 0;
  std::uint64_t taken = 0;
  std::uint64_t empty_takes = 0;
  std::int64_t max_size = 0;
  std::uint64_t ops = 0;
  const auto deadline = st::clock_type::now() + st::budget(seconds);
  const std::uint64_t limit = ledger.capacity() - 8192;
  auto push = [&] { d.push(st::item_ptr<item>(next++)); };
  auto take = [&] {
    item* x = d.take();
    if (x == nullptr) {
      ++empty_takes;
      return false;
    }
    ledger.receive(st::item_id(x), errs, "the owner");
    ++taken;
    return true;
  };
  while (next < limit && !errs.any() && ((++ops & 15) != 0 || st::clock_type::now() < deadline)) {
    const std::uint64_t choice = r.below(100);
    if (mix.last_element && choice < 70) {
      // One or two items, taken back at once: thieves fight for the last one.
      const std::uint64_t n = 1 + r.below(2);
      for (std::uint64_t i = 0; i < n; ++i) push();
      if (r.one_in(2)) st::spin(r.below(32));
      for (std::uint64_t i = 0; i < n + 1; ++i) take();
    } else if (choice < 45) {
      // A burst; now and then a large one, which grows the array.
      const std::uint64_t n = r.one_in(64) ? 256 + r.below(4096) : 1 + r.below(64);
      for (std::uint64_t i = 0; i < n; ++i) push();
    } else if (choice < 65) {
      const std::uint64_t n = 1 + r.below(48);
      for (std::uint64_t i = 0; i < n && take(); ++i) {
      }
    } else if (choice < 70) {
      while (take()) {  // drain: the last take races the thieves
      }
    } else if (choice < 85) {
      // Push and take in alternation around a small size.
      for (int i = 0; i < 32; ++i) {
        push();
        if (r.one_in(2)) take();
      }
    } else {
      // The owner is busy elsewhere: the thieves have the deque to themselves.
      st::spin(r.below(1000));
    }
    const std::int64_t size = d.size_hint();
    if (size > max_size) max_size = size;
  }
  while (take()) {
  }
  // take() found the deque empty, or lost the last element to a thief: it is
  // empty either way, and nothing is pushed any more.
  if (!d.looks_empty()) errs.add("the deque is not empty after the owner drained it");
  owner_done.store(true, std::memory_order_release);
  for (std::thread& t : threads) t.join();

  thief_counts total;
  for (const thief_counts& c : counts) {
    total.stolen += c.stolen;
    total.empty += c.empty;
    total.lost_race += c.lost_race;
  }
  st::report("seed %" PRIu64 ", %d thieves: pushed %" PRIu64 ", taken %" PRIu64 " (%" PRIu64
             " empty takes), stolen %" PRIu64 " (%" PRIu64 " empty, %" PRIu64 " lost races), max size %" PRId64,
             seed, thieves, next, taken, empty_takes, total.stolen, total.empty, total.lost_race, max_size);
  EXPECT_FALSE(errs.any()) << errs.summary();
  EXPECT_EQ(taken + total.stolen, next);
  const std::string problems = ledger.check(next);
  EXPECT_TRUE(problems.empty()) << problems;
  EXPECT_GT(next, 0u);
}

TEST_P(DequeStress, OwnerPushesAndTakesWhileThievesSteal) { run_deque_stress(GetParam(), owner_mix{}, 2.0); }

TEST_P(DequeStress, RaceForTheLastElement) { run_deque_stress(GetParam(), owner_mix{.last_element = true}, 1.5); }

INSTANTIATE_TEST_SUITE_P(Thieves, DequeStress, testing::Values(3, 7),
                         [](const testing::TestParamInfo<int>& info) { return std::to_string(info.param); });

}  // namespace
