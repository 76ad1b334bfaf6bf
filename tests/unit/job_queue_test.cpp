// SPDX-License-Identifier: MIT
// Unit tests of runtime/job_queue.hpp on one thread: the private ring in
// front of the public deque, the publication rules, pop_if, the demand flag
// and serve_demand. Concurrency is in tests/stress/job_queue_stress_test.cpp.
#include "job_queue.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <memory>
#include <new>
#include <random>
#include <vector>

#include "seeded_rng.hpp"
#include "watchdog.hpp"

namespace {

// While set, every allocation fails: memory has run out (the public deque
// cannot grow).
std::atomic<bool> g_refuse_allocations{false};
// Allocations made, to find the push that grows the public deque.
std::atomic<std::size_t> g_allocations{0};

}  // namespace

void* operator new(std::size_t size) {
  if (g_refuse_allocations.load(std::memory_order_relaxed)) throw std::bad_alloc();
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size != 0 ? size : 1)) return p;
  throw std::bad_alloc();
}
// Out of line: inlined where a delete-expression frees what operator new
// returned, its free() would look mismatched to the compiler.
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

using weft::detail::job;
using weft::rt::job_queue;
using status = weft::rt::deque<job*>::steal_status;
constexpr std::size_t k_cap = job_queue::k_private_capacity;

class JobQueue : public testing::Test {
 protected:
  // A queue with its private ring (kept by the fixture: it outlives the queue).
  std::unique_ptr<job_queue> make(bool stealable) {
    m_rings.push_back(std::make_unique<weft::detail::job_ring>());
    return std::make_unique<job_queue>(stealable, *m_rings.back());
  }
  job* t(std::size_t i) { return &m_tasks.at(i); }
  std::ptrdiff_t id(const job* p) const { return p - m_tasks.data(); }

  static job* stolen(job_queue& q) {
    const auto r = q.steal();
    EXPECT_EQ(r.status, status::success);
    return r.value;
  }
  // How many pushes onto a fresh stealable queue fit before the first one
  // that grows the public deque.
  std::size_t pushes_before_growth() {
    std::size_t fit = 0;
    auto probe = make(true);
    for (;;) {
      const std::size_t before = g_allocations.load();
      probe->push(t(fit));
      if (g_allocations.load() != before) return fit;
      ++fit;
    }
  }
  static void expect_nothing_public(job_queue& q) {
    EXPECT_FALSE(q.public_nonempty());
    EXPECT_EQ(q.steal().status, status::empty);
  }

 private:
  std::vector<job> m_tasks = std::vector<job>(4096);
  std::vector<std::unique_ptr<weft::detail::job_ring>> m_rings;
};

TEST_F(JobQueue, NewQueueIsEmpty) {
  for (const bool stealable : {true, false}) {
    auto q = make(stealable);
    EXPECT_TRUE(q->empty());
    EXPECT_FALSE(q->public_nonempty());
    EXPECT_FALSE(q->has_demand());
    EXPECT_EQ(q->pop(), nullptr);
    EXPECT_FALSE(q->pop_if(t(0)));
  }
}

TEST_F(JobQueue, PopIsLifo) {
  for (const bool stealable : {true, false}) {
    SCOPED_TRACE(stealable ? "stealable" : "not stealable");
    auto q = make(stealable);
    for (std::size_t i = 0; i < 10; ++i) q->push(t(i));
    for (std::size_t i = 10; i-- > 0;) ASSERT_EQ(q->pop(), t(i));
    EXPECT_EQ(q->pop(), nullptr);
    EXPECT_TRUE(q->empty());
  }
}

// Past the private capacity the oldest tasks go public, and pop() still
// returns every task newest first.
TEST_F(JobQueue, PopIsLifoAcrossPrivateAndPublic) {
  for (const bool stealable : {true, false}) {
    SCOPED_TRACE(stealable ? "stealable" : "not stealable");
    auto q = make(stealable);
    constexpr std::size_t n = 3 * k_cap + 17;
    for (std::size_t i = 0; i < n; ++i) q->push(t(i));
    EXPECT_TRUE(q->public_nonempty());
    for (std::size_t i = n; i-- > 0;) ASSERT_EQ(q->pop(), t(i)) << "i=" << i;
    EXPECT_EQ(q->pop(), nullptr);
    EXPECT_TRUE(q->empty());
  }
}

TEST_F(JobQueue, StealableFirstPushIsPublic) {
  auto q = make(true);
  EXPECT_EQ(q->push(t(0)), t(0));
  EXPECT_TRUE(q->public_nonempty());
  EXPECT_FALSE(q->empty());
  EXPECT_EQ(stolen(*q), t(0));
  EXPECT_TRUE(q->empty());
}

TEST_F(JobQueue, StealableLaterPushesStayPrivate) {
  auto q = make(true);
  EXPECT_EQ(q->push(t(0)), t(0));
  EXPECT_EQ(q->push(t(1)), nullptr);
  EXPECT_EQ(q->push(t(2)), nullptr);
  EXPECT_EQ(stolen(*q), t(0));
  expect_nothing_public(*q);
  EXPECT_FALSE(q->empty());
  EXPECT_EQ(q->pop(), t(2));
  EXPECT_EQ(q->pop(), t(1));
  EXPECT_EQ(q->pop(), nullptr);
}

// The publication rule: a push that finds the public part empty publishes
// the oldest private task, not the new one.
TEST_F(JobQueue, PushPublishesOldestPrivateWhenPublicIsEmpty) {
  auto q = make(true);
  q->push(t(0));
  q->push(t(1));
  q->push(t(2));
  EXPECT_EQ(stolen(*q), t(0));
  EXPECT_EQ(q->push(t(3)), t(1));  // publishes t1
  EXPECT_TRUE(q->public_nonempty());
  EXPECT_EQ(stolen(*q), t(1));
  expect_nothing_public(*q);
  EXPECT_EQ(q->push(t(4)), t(2));  // publishes t2
  EXPECT_EQ(stolen(*q), t(2));
  EXPECT_EQ(q->pop(), t(4));
  EXPECT_EQ(q->pop(), t(3));
  EXPECT_EQ(q->pop(), nullptr);
}

// Every public task is older than every private one: the thieves see the
// tasks in push order.
TEST_F(JobQueue, ThievesTakeOldestFirst) {
  auto q = make(true);
  constexpr std::size_t n = 1000;
  for (std::size_t i = 0; i < n; ++i) q->push(t(i));
  std::size_t next = 0;
  while (next < n) {
    const auto r = q->steal();
    if (r.status == status::empty) {
      ASSERT_TRUE(q->has_demand());
      ASSERT_EQ(q->serve_demand(), t(next)) << "next=" << next;
      continue;
    }
    ASSERT_EQ(r.status, status::success);
    ASSERT_EQ(r.value, t(next)) << "stole job " << id(r.value);
    ++next;
  }
  EXPECT_TRUE(q->empty());
}

TEST_F(JobQueue, NonStealableNeverPublishesBelowCapacity) {
  auto q = make(false);
  for (std::size_t i = 0; i < k_cap; ++i) ASSERT_EQ(q->push(t(i)), nullptr);
  expect_nothing_public(*q);
  EXPECT_FALSE(q->empty());
  // A thief's failed steal raises the demand flag, but pushes still do not
  // publish.
  EXPECT_TRUE(q->has_demand());
  ASSERT_EQ(q->pop(), t(k_cap - 1));
  ASSERT_EQ(q->push(t(k_cap - 1)), nullptr);
  expect_nothing_public(*q);
}

TEST_F(JobQueue, NonStealableOverflowGoesPublic) {
  auto q = make(false);
  for (std::size_t i = 0; i < k_cap; ++i) q->push(t(i));
  EXPECT_EQ(q->push(t(k_cap)), nullptr);  // overflow, but nothing is stealable to report
  EXPECT_TRUE(q->public_nonempty());
  EXPECT_EQ(q->push(t(k_cap + 1)), nullptr);
  // The overflow holds the oldest tasks, in order.
  EXPECT_EQ(stolen(*q), t(0));
  EXPECT_EQ(stolen(*q), t(1));
  expect_nothing_public(*q);
  for (std::size_t i = k_cap + 2; i-- > 2;) ASSERT_EQ(q->pop(), t(i));
  EXPECT_TRUE(q->empty());
}

TEST_F(JobQueue, StealableOverflowPublishesAndReportsIt) {
  auto q = make(true);
  EXPECT_EQ(q->push(t(0)), t(0));                                              // public
  for (std::size_t i = 1; i <= k_cap; ++i) ASSERT_EQ(q->push(t(i)), nullptr);  // private, now full
  EXPECT_EQ(q->push(t(k_cap + 1)), t(1));                                      // t1 goes public
  EXPECT_EQ(stolen(*q), t(0));
  EXPECT_EQ(stolen(*q), t(1));
  expect_nothing_public(*q);
}

TEST_F(JobQueue, PopIfTakesOnlyTheNewestPrivateTask) {
  auto q = make(true);
  q->push(t(0));  // public
  q->push(t(1));
  q->push(t(2));
  EXPECT_FALSE(q->pop_if(t(1)));
  EXPECT_FALSE(q->pop_if(t(0)));
  EXPECT_FALSE(q->pop_if(t(9)));
  EXPECT_TRUE(q->pop_if(t(2)));
  EXPECT_FALSE(q->pop_if(t(2)));
  EXPECT_TRUE(q->pop_if(t(1)));
  EXPECT_TRUE(q->public_nonempty());
  EXPECT_TRUE(q->pop_if(t(0)));  // from the public part
  EXPECT_TRUE(q->empty());
  EXPECT_FALSE(q->pop_if(t(0)));
}

TEST_F(JobQueue, PopIfPutsBackAForeignPublicTask) {
  auto q = make(true);
  q->push(t(0));  // public
  EXPECT_FALSE(q->pop_if(t(5)));
  EXPECT_TRUE(q->public_nonempty());  // still there, still stealable
  EXPECT_EQ(stolen(*q), t(0));
  EXPECT_TRUE(q->empty());
}

TEST_F(JobQueue, PopIfOnPublicPartKeepsOrder) {
  auto q = make(false);
  for (std::size_t i = 0; i < k_cap + 3; ++i) q->push(t(i));  // t0..t2 public
  for (std::size_t i = k_cap + 3; i-- > 3;) ASSERT_TRUE(q->pop_if(t(i)));
  EXPECT_FALSE(q->pop_if(t(0)));  // t2 is the newest: t2 goes back
  EXPECT_FALSE(q->pop_if(t(1)));
  EXPECT_TRUE(q->pop_if(t(2)));
  EXPECT_EQ(stolen(*q), t(0));
  EXPECT_TRUE(q->pop_if(t(1)));
  EXPECT_TRUE(q->empty());
}

TEST_F(JobQueue, FailedStealRaisesDemand) {
  auto q = make(true);
  EXPECT_FALSE(q->has_demand());
  EXPECT_EQ(q->steal().status, status::empty);
  EXPECT_TRUE(q->has_demand());
  EXPECT_EQ(q->steal().status, status::empty);
  EXPECT_TRUE(q->has_demand());
}

TEST_F(JobQueue, SuccessfulStealRaisesNoDemand) {
  auto q = make(true);
  q->push(t(0));
  q->push(t(1));
  EXPECT_EQ(stolen(*q), t(0));
  EXPECT_FALSE(q->has_demand());
}

TEST_F(JobQueue, PublishingPushClearsDemand) {
  auto q = make(true);
  q->push(t(0));
  q->push(t(1));
  EXPECT_EQ(stolen(*q), t(0));
  EXPECT_EQ(q->steal().status, status::empty);
  ASSERT_TRUE(q->has_demand());
  EXPECT_EQ(q->push(t(2)), t(1));  // publishes t1
  EXPECT_FALSE(q->has_demand());
  EXPECT_EQ(q->push(t(3)), nullptr);  // not publishing: the demand stays cleared
  EXPECT_FALSE(q->has_demand());
}

TEST_F(JobQueue, ServeDemandPublishesOldestPrivateTask) {
  auto q = make(true);
  for (std::size_t i = 0; i < 4; ++i) q->push(t(i));  // t0 public, t1..t3 private
  EXPECT_EQ(stolen(*q), t(0));
  EXPECT_EQ(q->steal().status, status::empty);
  ASSERT_TRUE(q->has_demand());
  EXPECT_EQ(q->serve_demand(), t(1));
  EXPECT_FALSE(q->has_demand());
  EXPECT_TRUE(q->public_nonempty());
  EXPECT_EQ(stolen(*q), t(1));
  expect_nothing_public(*q);
  EXPECT_EQ(q->pop(), t(3));
  EXPECT_EQ(q->pop(), t(2));
  EXPECT_EQ(q->pop(), nullptr);
}

TEST_F(JobQueue, ServeDemandWithNothingPrivateClearsDemand) {
  auto q = make(true);
  EXPECT_EQ(q->steal().status, status::empty);
  ASSERT_TRUE(q->has_demand());
  EXPECT_EQ(q->serve_demand(), nullptr);
  EXPECT_FALSE(q->has_demand());
  q->push(t(0));  // public, nothing private
  EXPECT_EQ(q->serve_demand(), nullptr);
  EXPECT_EQ(stolen(*q), t(0));
}

TEST_F(JobQueue, PushPublicIsStealable) {
  auto q = make(true);
  q->push_public(t(0));
  q->push_public(t(1));
  EXPECT_TRUE(q->public_nonempty());
  EXPECT_EQ(stolen(*q), t(0));
  EXPECT_EQ(q->pop(), t(1));
  EXPECT_TRUE(q->empty());
}

// A publication that needs the public deque to grow when memory has run out
// (a push past the private capacity, serve_demand) throws std::bad_alloc and
// leaves the queue as it was: the callers run or inject the task they were
// pushing, and every other task must still be there. The oldest private task
// was taken off the ring before the push that failed, and lost: its joiner
// waited for ever.
TEST_F(JobQueue, APublicationThatCannotGrowTheDequeLosesNoTask) {
  const std::size_t fit = pushes_before_growth();
  ASSERT_GE(fit, k_cap);  // the ring is full: the next publication grows the deque
  for (const bool serve : {false, true}) {
    SCOPED_TRACE(serve ? "serve_demand" : "push");
    auto q = make(true);
    for (std::size_t i = 0; i < fit; ++i) q->push(t(i));
    g_refuse_allocations.store(true);
    bool threw = false;
    try {
      if (serve) {
        q->serve_demand();
      } else {
        q->push(t(fit));
      }
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    g_refuse_allocations.store(false);
    EXPECT_TRUE(threw);
    // Every task pushed before is still queued, once, newest first; the one
    // whose push failed is not.
    for (std::size_t i = fit; i-- > 0;) ASSERT_EQ(q->pop(), t(i)) << "task " << i;
    EXPECT_EQ(q->pop(), nullptr);
  }
}

// take_newest_such: a join that may start no task takes a continuation from
// anywhere in its queue; every other task keeps its place and its part.
// held_aside says whether public tasks left the deque for the search (its
// caller then wakes a sleeper: a thief may have found the deque empty).
TEST_F(JobQueue, TakeNewestSuchFindsATaskBelowOthersInThePrivatePart) {
  auto q = make(true);
  for (std::size_t i = 0; i < 6; ++i) q->push(t(i));  // t0 public, t1..t5 private
  bool held_aside = true;
  EXPECT_EQ(q->take_newest_such([&](job* x) { return x == t(2) || x == t(3); }, held_aside), t(3));
  EXPECT_FALSE(held_aside);  // found in the private part: the deque was not touched
  EXPECT_EQ(q->take_newest_such([&](job* x) { return x == t(3); }, held_aside), nullptr);
  EXPECT_TRUE(held_aside);  // t0 left the deque for the search, and came back
  for (const std::size_t i : {5, 4, 2, 1, 0}) ASSERT_EQ(q->pop(), t(i)) << "task " << i;
  EXPECT_TRUE(q->empty());
}

TEST_F(JobQueue, TakeNewestSuchFindsATaskInThePublicPartAndKeepsItsOrder) {
  auto q = make(true);
  for (std::size_t i = 0; i < 8; ++i) q->push(t(i));                  // t0 public, t1..t7 private
  for (int k = 0; k < 4; ++k) ASSERT_NE(q->serve_demand(), nullptr);  // t0..t4 public, t5..t7 private
  bool held_aside = false;
  EXPECT_EQ(q->take_newest_such([&](job* x) { return x == t(2); }, held_aside), t(2));
  EXPECT_TRUE(held_aside);  // t4 and t3 were held aside
  EXPECT_EQ(q->take_newest_such([&](job* x) { return x == t(9); }, held_aside),
            nullptr);  // nothing such: nothing moves
  EXPECT_TRUE(held_aside);
  EXPECT_EQ(stolen(*q), t(0));  // thieves still take the oldest first
  EXPECT_EQ(stolen(*q), t(1));
  EXPECT_EQ(stolen(*q), t(3));
  EXPECT_EQ(stolen(*q), t(4));
  expect_nothing_public(*q);
  for (const std::size_t i : {7, 6, 5}) ASSERT_EQ(q->pop(), t(i)) << "task " << i;
  EXPECT_TRUE(q->empty());
}

TEST_F(JobQueue, TakeNewestSuchTakingTheNewestPublicTaskHoldsNothingAside) {
  auto q = make(true);
  q->push(t(0));  // public
  bool held_aside = true;
  EXPECT_EQ(q->take_newest_such([&](job* x) { return x == t(0); }, held_aside), t(0));
  EXPECT_FALSE(held_aside);
  EXPECT_TRUE(q->empty());
}

TEST_F(JobQueue, TakeNewestSuchOnAnEmptyQueueFindsNothing) {
  for (const bool stealable : {true, false}) {
    auto q = make(stealable);
    bool held_aside = true;
    EXPECT_EQ(q->take_newest_such([](job*) { return true; }, held_aside), nullptr);
    EXPECT_FALSE(held_aside);
    EXPECT_TRUE(q->empty());
  }
}

TEST_F(JobQueue, PublishAllPrivateMakesEveryTaskStealableOldestFirst) {
  auto q = make(true);
  for (std::size_t i = 0; i < 6; ++i) q->push(t(i));  // t0 public, t1..t5 private
  EXPECT_TRUE(q->steal().status == status::success);  // t0
  EXPECT_EQ(q->steal().status, status::empty);        // asks for work
  EXPECT_TRUE(q->has_demand());
  EXPECT_EQ(q->publish_all_private(), 5u);
  EXPECT_FALSE(q->has_demand());  // answered
  EXPECT_TRUE(q->private_empty());
  for (std::size_t i = 1; i < 6; ++i) ASSERT_EQ(stolen(*q), t(i)) << "task " << i;
  expect_nothing_public(*q);
  EXPECT_EQ(q->publish_all_private(), 0u);

  auto lone = make(false);  // nobody steals from a runtime of one worker
  for (std::size_t i = 0; i < 3; ++i) lone->push(t(i));
  EXPECT_EQ(lone->publish_all_private(), 0u);
  for (std::size_t i = 3; i-- > 0;) ASSERT_EQ(lone->pop(), t(i)) << "task " << i;
}

TEST_F(JobQueue, PublishAllPrivateThatCannotGrowTheDequeLosesNoTask) {
  const std::size_t fit = pushes_before_growth();  // then the ring is full and the deque too
  ASSERT_GE(fit, k_cap + 3);
  auto q = make(true);
  for (std::size_t i = 0; i < fit; ++i) q->push(t(i));
  for (std::size_t i = 0; i < 3; ++i) ASSERT_EQ(stolen(*q), t(i));  // room for three in the deque
  g_refuse_allocations.store(true);
  const std::uint32_t published = q->publish_all_private();
  g_refuse_allocations.store(false);
  EXPECT_EQ(published, 3u);  // then the deque had to grow, and could not
  EXPECT_FALSE(q->private_empty());
  for (std::size_t i = fit; i-- > 3;) ASSERT_EQ(q->pop(), t(i)) << "task " << i;
  EXPECT_EQ(q->pop(), nullptr);
}

// Random single-thread sequences of every operation against an exact model:
// the outstanding tasks in push order, of which the oldest `pub` are public.
TEST_F(JobQueue, RandomOperationsMatchModel) {
  weft_test::seeded_rng rng;  // names its seed in every failure
  for (int round = 0; round < 16; ++round) {
    const bool stealable = round % 4 != 3;
    SCOPED_TRACE("round " + std::to_string(round) + (stealable ? " stealable" : " not stealable"));
    auto q = make(stealable);
    std::deque<job*> model;
    std::size_t pub = 0;
    bool demand = false;
    std::size_t next = 0;
    for (int op = 0; op < 20000; ++op) {
      SCOPED_TRACE("op " + std::to_string(op));
      const std::size_t priv = model.size() - pub;
      // Push-heavy and pop-heavy phases, so the private part fills and drains.
      const bool growing = (op / 700) % 2 == 0;
      const unsigned r = static_cast<unsigned>(rng() % 100);
      if (r < (growing ? 55u : 25u)) {
        job* x = t(next++ % 4096);
        bool expect_visible = false;
        if (stealable && pub == 0) {
          pub = 1;
          expect_visible = true;
          demand = false;
        } else if (priv == k_cap) {
          ++pub;
          expect_visible = stealable;
        }
        ASSERT_EQ(q->push(x) != nullptr, expect_visible);
        model.push_back(x);
      } else if (r < 70) {
        job* got = q->pop();
        if (model.empty()) {
          ASSERT_EQ(got, nullptr);
        } else {
          ASSERT_EQ(got, model.back()) << "popped job " << id(got);
          if (priv == 0) --pub;
          model.pop_back();
        }
      } else if (r < 80) {
        // pop_if: half the time the newest task, else some other one.
        job* x = model.empty() || rng() % 2 == 0 ? t(rng() % 4096) : model.back();
        const bool newest = !model.empty() && x == model.back();
        ASSERT_EQ(q->pop_if(x), newest) << "pop_if of job " << id(x);
        if (newest) {
          if (priv == 0) --pub;
          model.pop_back();
        }
      } else if (r < 93) {
        const auto s = q->steal();
        if (pub == 0) {
          ASSERT_EQ(s.status, status::empty);
          demand = true;
        } else {
          ASSERT_EQ(s.status, status::success);
          ASSERT_EQ(s.value, model.front()) << "stole job " << id(s.value);
          model.pop_front();
          --pub;
        }
      } else if (stealable) {
        ASSERT_EQ(q->serve_demand() != nullptr, priv > 0);
        if (priv > 0) ++pub;
        demand = false;
      }
      ASSERT_EQ(q->has_demand(), demand);
      ASSERT_EQ(q->public_nonempty(), pub > 0);
      ASSERT_EQ(q->empty(), model.empty());
    }
    while (!model.empty()) {
      ASSERT_EQ(q->pop(), model.back());
      model.pop_back();
    }
    EXPECT_TRUE(q->empty());
  }
}

}  // namespace

namespace {

// In builds with protocol checks (debug, debugoptimized: runtime/assert.hpp),
// breaking a stated precondition stops the process with the rule's words.
TEST(JobQueueChecks, PushPublicBehindPrivateTasksIsCaught) {
  if (!WEFT_ASSERTIONS) GTEST_SKIP() << "protocol checks are compiled out of this build (release)";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        job a;
        job b;
        weft::detail::job_ring ring;
        job_queue q(false, ring);  // not stealable: a push stays private
        q.push(&a);
        q.push_public(&b);
      },
      "assertion failed: push_public: the private part is empty");
}

}  // namespace
