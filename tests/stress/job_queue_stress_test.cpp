// SPDX-License-Identifier: MIT
// Stress test of runtime/job_queue.hpp: the owner pushes, pops, pops back
// the task it just spawned (pop_if, as a join does), answers demand
// (serve_demand), publishes all its private tasks and takes tasks from within
// the queue (publish_all_private, take_newest_such: a join on a full stack),
// while several thieves steal and raise demand. Every task
// pushed is popped or stolen exactly once.
#include "job_queue.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cinttypes>
#include <memory>
#include <thread>
#include <vector>

#include "seeded_rng.hpp"
#include "stress.hpp"

namespace {

namespace st = weft_test::stress;
using weft::detail::job;
using weft::rt::job_queue;
using status = weft::rt::deque<job*>::steal_status;

struct thief_counts {
  std::uint64_t stolen = 0;
  std::uint64_t empty = 0;
  std::uint64_t lost_race = 0;
};

struct owner_counts {
  std::uint64_t popped = 0;
  std::uint64_t pop_if_hits = 0;
  std::uint64_t pop_if_misses = 0;
  std::uint64_t published_by_push = 0;
  std::uint64_t demands_served = 0;
  std::uint64_t published_by_join = 0;
  std::uint64_t taken_such = 0;
};

class JobQueueStress : public testing::TestWithParam<int> {};

TEST_P(JobQueueStress, OwnerAgainstThieves) {
  const int thieves = GetParam();
  weft_test::seeded_rng rng;
  const std::uint64_t seed = rng.seed();
  st::errors errs;
  st::ledger ledger(std::uint64_t{1} << 24);
  auto ring = std::make_unique<weft::detail::job_ring>();
  auto q = std::make_unique<job_queue>(true, *ring);
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
        const auto s = q->steal();
        if (s.status == status::success) {
          if (s.value == nullptr) {
            errs.add("steal() succeeded with a null job");
          } else {
            // Ids are pushed in increasing order, every public task is older
            // than every private one, and steal() takes the oldest public
            // task: one thief's steals come in increasing order.
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
          ++c.lost_race;
        } else {
          if (done) break;
          ++c.empty;
          if (r.one_in(4)) st::spin(r.below(128));
        }
      }
    });
  }
  while (thieves_ready.load() < thieves) std::this_thread::yield();

  st::fast_rng r(seed);
  owner_counts oc;
  std::uint64_t next = 0;
  std::uint64_t ops = 0;
  const auto deadline = st::clock_type::now() + st::budget(2.0);
  const std::uint64_t limit = ledger.capacity() - 8192;
  auto push = [&]() -> job* {
    job* t = st::item_ptr<job>(next++);
    if (q->push(t)) ++oc.published_by_push;
    return t;
  };
  auto pop = [&] {
    job* t = q->pop();
    if (t == nullptr) return false;
    ledger.receive(st::item_id(t), errs, "the owner (pop)");
    ++oc.popped;
    return true;
  };
  auto pop_if = [&](job* t) {
    if (q->pop_if(t)) {
      ledger.receive(st::item_id(t), errs, "the owner (pop_if)");
      ++oc.pop_if_hits;
      return true;
    }
    ++oc.pop_if_misses;
    return false;
  };
  auto poll_demand = [&] {
    if (q->has_demand() && q->serve_demand()) ++oc.demands_served;
  };

  while (next < limit && !errs.any() && ((++ops & 15) != 0 || st::clock_type::now() < deadline)) {
    const std::uint64_t choice = r.below(100);
    if (choice < 30) {
      // Fork-join: spawn a child, do some work (maybe spawning more), then
      // take the child back if nobody stole it.
      job* child = push();
      const std::uint64_t inner = r.below(4);
      for (std::uint64_t i = 0; i < inner; ++i) {
        job* grandchild = push();
        st::spin(r.below(16));
        if (!pop_if(grandchild)) poll_demand();
      }
      st::spin(r.below(32));
      pop_if(child);
    } else if (choice < 50) {
      // A burst; now and then past the private capacity (overflow).
      const std::uint64_t n = r.one_in(16) ? job_queue::k_private_capacity + r.below(600) : 1 + r.below(48);
      for (std::uint64_t i = 0; i < n; ++i) push();
    } else if (choice < 70) {
      const std::uint64_t n = 1 + r.below(48);
      for (std::uint64_t i = 0; i < n && pop(); ++i) {
        if (r.one_in(8)) poll_demand();
      }
    } else if (choice < 80) {
      while (pop()) {
      }
    } else if (choice < 90) {
      poll_demand();
    } else if (choice < 93) {
      if (q->serve_demand()) ++oc.demands_served;  // unasked: must be harmless
    } else if (choice < 95) {
      oc.published_by_join += q->publish_all_private();  // a join that may start nothing
    } else if (choice < 97) {
      // A join that may start nothing takes a continuation from anywhere in
      // the queue (here: an id that is a multiple of 5).
      bool held_aside = false;
      if (job* t = q->take_newest_such([](job* x) { return st::item_id(x) % 5 == 0; }, held_aside)) {
        if (st::item_id(t) % 5 != 0) errs.add("take_newest_such returned a task it was not asked for");
        ledger.receive(st::item_id(t), errs, "the owner (take_newest_such)");
        ++oc.taken_such;
      }
    } else {
      // A foreign pop_if: an id that is not the newest (or not queued at all).
      if (next > 0) pop_if(st::item_ptr<job>(r.below(next)));
    }
  }
  while (pop()) {
  }
  if (!q->empty()) errs.add("the queue is not empty after the owner drained it");
  owner_done.store(true, std::memory_order_release);
  for (std::thread& t : threads) t.join();

  thief_counts total;
  for (const thief_counts& c : counts) {
    total.stolen += c.stolen;
    total.empty += c.empty;
    total.lost_race += c.lost_race;
  }
  st::report("seed %" PRIu64 ", %d thieves: pushed %" PRIu64 " (%" PRIu64 " published by push, %" PRIu64
             " demands served, %" PRIu64 " published at once), popped %" PRIu64 ", pop_if %" PRIu64 " hits / %" PRIu64
             " misses, %" PRIu64 " taken from within, stolen %" PRIu64 " (%" PRIu64 " empty, %" PRIu64 " lost races)",
             seed, thieves, next, oc.published_by_push, oc.demands_served, oc.published_by_join, oc.popped,
             oc.pop_if_hits, oc.pop_if_misses, oc.taken_such, total.stolen, total.empty, total.lost_race);
  EXPECT_FALSE(errs.any()) << errs.summary();
  EXPECT_EQ(oc.popped + oc.pop_if_hits + oc.taken_such + total.stolen, next);
  const std::string problems = ledger.check(next);
  EXPECT_TRUE(problems.empty()) << problems;
  EXPECT_GT(total.stolen, 0u) << "the thieves never got a job: publication does not work";
}

INSTANTIATE_TEST_SUITE_P(Thieves, JobQueueStress, testing::Values(3, 6),
                         [](const testing::TestParamInfo<int>& info) { return std::to_string(info.param); });

}  // namespace
