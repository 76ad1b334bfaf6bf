// SPDX-License-Identifier: MIT
// weft::task_group: every spawned call runs exactly once before wait()
// returns; spawns may come from anywhere; the group is reusable; the
// destructor waits.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <weft/weft.hpp>

#include "seeded_rng.hpp"
#include "together.hpp"
#include "worker_count.hpp"

namespace {

class TaskGroupTest : public weft_test::WorkerCount {};

// What g.wait() threw (a std::runtime_error's message), or "" when it
// returned normally.
std::string error_of_wait(weft::task_group& g) {
  try {
    g.wait();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

void spin_for(std::chrono::microseconds d) {
  const auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
  }
}

TEST_P(TaskGroupTest, WaitReturnsAfterEverySpawnedCall) {
  constexpr int n = 2000;
  std::vector<std::atomic<int>> runs(n);
  rt.run([&] {
    weft::task_group g;
    for (int i = 0; i < n; ++i) g.spawn([&, i] { runs[static_cast<std::size_t>(i)].fetch_add(1); });
    g.wait();
    for (int i = 0; i < n; ++i) ASSERT_EQ(runs[static_cast<std::size_t>(i)].load(), 1) << "call " << i;
  });
}

TEST_P(TaskGroupTest, WaitWithoutSpawnsReturns) {
  rt.run([] {
    weft::task_group g;
    g.wait();
    g.wait();
  });
}

// Spawned calls spawn more calls into the same group: a binary tree.
TEST_P(TaskGroupTest, SpawnedCallsMaySpawnIntoTheGroup) {
  constexpr int depth = 10;
  std::atomic<int> nodes{0};
  rt.run([&] {
    weft::task_group g;
    std::function<void(int)> node = [&](int d) {
      nodes.fetch_add(1);
      if (d == 0) return;
      g.spawn([&node, d] { node(d - 1); });
      g.spawn([&node, d] { node(d - 1); });
    };
    g.spawn([&] { node(depth); });
    g.wait();
  });
  EXPECT_EQ(nodes.load(), (1 << (depth + 1)) - 1);
}

// Spawns that poll with weft::yield() until all have started: the yields
// must let the spawns still queued start (they used to hand the worker to
// each other for ever at 1 worker).
TEST_P(TaskGroupTest, SpawnsThatPollWithYieldForEachOtherAllRun) {
  for (const int n : {3, 8, 100}) {
    std::atomic<int> arrived{0};
    rt.run([&] {
      weft::task_group g;
      for (int i = 0; i < n; ++i) {
        g.spawn([&] {
          arrived.fetch_add(1);
          while (arrived.load() < n) weft::yield();
        });
      }
      g.wait();
    });
    EXPECT_EQ(arrived.load(), n);
  }
}

TEST_P(TaskGroupTest, GroupIsReusableAfterWait) {
  rt.run([&] {
    weft::task_group g;
    for (int round = 1; round <= 5; ++round) {
      std::atomic<int> calls{0};
      for (int i = 0; i < 100 * round; ++i) g.spawn([&] { calls.fetch_add(1); });
      g.wait();
      ASSERT_EQ(calls.load(), 100 * round) << "round " << round;
    }
  });
}

TEST_P(TaskGroupTest, DestructorWaitsWhenWaitWasNotCalled) {
  std::atomic<int> done{0};
  rt.run([&] {
    {
      weft::task_group g;
      for (int i = 0; i < 50; ++i) {
        g.spawn([&] {
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          done.fetch_add(1);
        });
      }
    }
    EXPECT_EQ(done.load(), 50) << "the destructor returned before the spawned calls";
  });
  EXPECT_EQ(done.load(), 50);
}

TEST_P(TaskGroupTest, DestructorWaitsForSpawnsAfterWait) {
  std::atomic<int> done{0};
  rt.run([&] {
    {
      weft::task_group g;
      g.spawn([&] { done.fetch_add(1); });
      g.wait();
      for (int i = 0; i < 20; ++i) g.spawn([&] { done.fetch_add(1); });
    }
    EXPECT_EQ(done.load(), 21);
  });
}

TEST_P(TaskGroupTest, SpawnsMoveOnlyAndLargeCallables) {
  std::atomic<std::int64_t> sum{0};
  rt.run([&] {
    weft::task_group g;
    for (int i = 0; i < 100; ++i) {
      g.spawn([p = std::make_unique<int>(i), &sum] { sum.fetch_add(*p); });
    }
    std::array<std::int64_t, 128> big{};
    for (std::size_t k = 0; k < big.size(); ++k) big[k] = static_cast<std::int64_t>(k);
    for (int i = 0; i < 10; ++i) {
      g.spawn([big, &sum] {
        for (auto v : big) sum.fetch_add(v);
      });
    }
    g.wait();
  });
  EXPECT_EQ(sum.load(), 99 * 100 / 2 + 10 * (127 * 128 / 2));
}

TEST_P(TaskGroupTest, SpawnCopiesAnLvalueCallable) {
  std::atomic<int> calls{0};
  rt.run([&] {
    weft::task_group g;
    int tag = 1;
    std::atomic<int> seen_tag{0};
    auto f = [&calls, &seen_tag, tag] {
      calls.fetch_add(1);
      seen_tag.store(tag);
    };
    g.spawn(f);
    tag = 2;  // the spawned copy captured tag by value earlier
    g.spawn(f);
    g.wait();
    EXPECT_EQ(seen_tag.load(), 1);
  });
  EXPECT_EQ(calls.load(), 2);
}

// Counts its live copies; small enough for the group's own slot when Pad is
// small, too large for it otherwise.
template <std::size_t Pad>
struct counted_call {
  std::atomic<int>* m_live;
  std::atomic<int>* m_runs;
  std::array<char, Pad> m_pad{};
  counted_call(std::atomic<int>& live, std::atomic<int>& runs) : m_live(&live), m_runs(&runs) { m_live->fetch_add(1); }
  counted_call(const counted_call& o) : m_live(o.m_live), m_runs(o.m_runs), m_pad(o.m_pad) { m_live->fetch_add(1); }
  counted_call& operator=(const counted_call&) = delete;
  ~counted_call() { m_live->fetch_sub(1); }
  void operator()() const { m_runs->fetch_add(1); }
};

// An owner's spawn lives in the group while its slot is free, the others in
// pooled memory: every closure runs once and is destroyed once, whichever way it
// went (popped back, stolen, run by the destructor's wait), round after round.
TEST_P(TaskGroupTest, ClosuresInTheGroupAndInPooledMemoryAreDestroyedOnce) {
  std::atomic<int> live{0};
  std::atomic<int> runs{0};
  int spawned = 0;
  rt.run([&] {
    for (int round = 0; round < 300; ++round) {
      weft::task_group g;
      for (int k = 0; k <= round % 4; ++k) {
        g.spawn(counted_call<8>(live, runs));
        g.spawn(counted_call<200>(live, runs));
        spawned += 2;
      }
      if (round % 3 != 0) {
        g.wait();
        ASSERT_EQ(runs.load(), spawned);
        ASSERT_EQ(live.load(), 0) << "round " << round;
        g.spawn(counted_call<8>(live, runs));  // the slot again, waited for by the destructor
        ++spawned;
      }
    }
  });
  EXPECT_EQ(runs.load(), spawned);
  EXPECT_EQ(live.load(), 0);
}

// A callable whose copy throws is not spawned and leaves the group's slot
// free for the next spawn.
TEST_P(TaskGroupTest, ACopyThatThrowsLeavesTheGroupUsable) {
  struct throws_on_copy {
    std::atomic<int>* m_runs;
    explicit throws_on_copy(std::atomic<int>& runs) : m_runs(&runs) {}
    throws_on_copy(const throws_on_copy&) { throw std::runtime_error("copy"); }
    throws_on_copy& operator=(const throws_on_copy&) = delete;
    void operator()() const { m_runs->fetch_add(1); }
  };
  std::atomic<int> live{0};
  std::atomic<int> runs{0};
  rt.run([&] {
    weft::task_group g;
    const throws_on_copy bad(runs);
    for (int round = 0; round < 50; ++round) {
      EXPECT_THROW(g.spawn(bad), std::runtime_error);
      g.spawn(counted_call<8>(live, runs));
      EXPECT_THROW(g.spawn(bad), std::runtime_error);
      g.spawn(counted_call<8>(live, runs));
      g.wait();
    }
  });
  EXPECT_EQ(runs.load(), 100);
  EXPECT_EQ(live.load(), 0);
}

// A call in the group's slot that spawns into its own group while it runs on
// the owner's fiber (popped back at the wait) gets pooled memory: its own
// closure, still running, is left alone.
TEST_P(TaskGroupTest, ACallInTheGroupsSlotSpawningIntoItsGroupKeepsItsClosure) {
  std::atomic<int> bad{0};
  std::atomic<int> inner{0};
  rt.run([&] {
    for (long round = 0; round < 200; ++round) {
      weft::task_group g;
      const long tag = 1000 + round;
      // The same shape inside as outside: were the slot handed out again, the
      // inner closure would land on the outer one's captures.
      g.spawn([tag, &g, &bad, &inner] {
        for (int k = 0; k < 3; ++k) {
          g.spawn([other = -tag, also = tag, &bad, &inner] {
            if (other >= 0 || also != -other) bad.fetch_add(1);
            inner.fetch_add(1);
          });
        }
        const volatile long again = tag;  // read after the spawns
        if (again < 1000 || again >= 1200) bad.fetch_add(1);
      });
      g.wait();
    }
  });
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(inner.load(), 600);
}

// A callable whose copy spawns into the group it is being spawned into (on
// the owner's fiber): the spawn inside the copy must not take the slot that
// the copy is being made for.
TEST_P(TaskGroupTest, ACopyThatSpawnsIntoItsGroupGetsMemoryOfItsOwn) {
  struct spawns_on_copy {
    weft::task_group* m_group;
    std::atomic<int>* m_calls;
    std::atomic<int>* m_inner;
    std::atomic<int>* m_live;
    spawns_on_copy(weft::task_group& g, std::atomic<int>& calls, std::atomic<int>& inner, std::atomic<int>& live)
        : m_group(&g), m_calls(&calls), m_inner(&inner), m_live(&live) {
      m_live->fetch_add(1);
    }
    spawns_on_copy(const spawns_on_copy& o)
        : m_group(o.m_group), m_calls(o.m_calls), m_inner(o.m_inner), m_live(o.m_live) {
      m_live->fetch_add(1);
      std::atomic<int>* inner = m_inner;
      m_group->spawn([inner] { inner->fetch_add(1); });
    }
    spawns_on_copy& operator=(const spawns_on_copy&) = delete;
    ~spawns_on_copy() { m_live->fetch_sub(1); }
    void operator()() const { m_calls->fetch_add(1); }
  };
  std::atomic<int> calls{0};
  std::atomic<int> inner{0};
  std::atomic<int> live{0};
  rt.run([&] {
    for (int round = 0; round < 100; ++round) {
      weft::task_group g;
      const spawns_on_copy f(g, calls, inner, live);
      g.spawn(f);
      g.wait();
    }
  });
  EXPECT_EQ(calls.load(), 100);
  EXPECT_EQ(inner.load(), 100);
  EXPECT_EQ(live.load(), 0);
}

// spawn() may be called from a thread outside the runtime into a group owned
// by a task.
TEST_P(TaskGroupTest, SpawnFromAnExternalThreadIntoATasksGroup) {
  std::atomic<int> calls{0};
  rt.run([&] {
    weft::task_group g;
    g.spawn([&] { calls.fetch_add(1); });
    std::thread outside([&] {
      for (int i = 0; i < 100; ++i) g.spawn([&] { calls.fetch_add(1); });
    });
    outside.join();  // blocks this worker briefly; the spawns are already queued
    g.wait();
  });
  EXPECT_EQ(calls.load(), 101);
}

TEST_P(TaskGroupTest, NestedGroupsInsideSpawnedCalls) {
  std::atomic<int> leaves{0};
  rt.run([&] {
    weft::task_group outer;
    for (int i = 0; i < 16; ++i) {
      outer.spawn([&] {
        weft::task_group inner;
        for (int j = 0; j < 16; ++j) {
          inner.spawn([&] { weft::parallelize(4, [&](int) { leaves.fetch_add(1); }); });
        }
        inner.wait();
      });
    }
    outer.wait();
  });
  EXPECT_EQ(leaves.load(), 16 * 16 * 4);
}

TEST_P(TaskGroupTest, RandomSpawnTreesAreCountedExactly) {
  weft_test::seeded_rng rng;
  for (int round = 0; round < 10; ++round) {
    const auto fanout = rng.uniform(1, 6);
    const auto depth = rng.uniform(1, 4);
    SCOPED_TRACE(::testing::Message() << "fanout " << fanout << ", depth " << depth);
    std::atomic<int> nodes{0};
    std::function<void(int)> node = [&](int d) {
      nodes.fetch_add(1);
      if (d == 0) return;
      weft::task_group g;
      for (int k = 0; k < fanout; ++k) g.spawn([&node, d] { node(d - 1); });
      g.wait();
    };
    rt.run([&] { node(depth); });
    int expected = 0;
    for (int d = 0, level = 1; d <= depth; ++d, level *= fanout) expected += level;
    EXPECT_EQ(nodes.load(), expected);
  }
}

// Another thread keeps spawning into the group while its owner loops spawn +
// wait(): a spawn counted during a wait() must be waited for by that wait or
// by a later one, never dropped (the owner's last wait() once hung, or
// returned before such a call ran).
TEST_P(TaskGroupTest, SpawnsFromAnotherThreadDuringWaitAreNeverLost) {
  constexpr int outside_spawns = 3000;
  for (int trial = 0; trial < 20; ++trial) {
    std::atomic<int> outside_ran{0};
    std::atomic<int> owner_ran{0};
    rt.run([&] {
      weft::task_group g;
      std::atomic<bool> done{false};
      std::thread other([&] {
        for (int i = 0; i < outside_spawns; ++i) {
          g.spawn([&, i] {
            spin_for(std::chrono::microseconds(i % 3));
            outside_ran.fetch_add(1);
          });
        }
        done.store(true);
      });
      int owner_spawns = 0;
      while (!done.load()) {
        g.spawn([&, pause = owner_spawns % 4] {
          spin_for(std::chrono::microseconds(pause));
          owner_ran.fetch_add(1);
        });
        ++owner_spawns;
        g.wait();
        ASSERT_EQ(owner_ran.load(), owner_spawns);
      }
      other.join();
      g.wait();
      ASSERT_EQ(outside_ran.load(), outside_spawns) << "trial " << trial;
    });
  }
}

// The same with the owner outside any runtime and the other spawner a worker
// of this runtime.
TEST_P(TaskGroupTest, OutsideOwnerWithSpawnsFromAWorkerDuringWait) {
  constexpr int worker_spawns = 3000;
  for (int trial = 0; trial < 20; ++trial) {
    std::atomic<int> ran{0};
    std::atomic<int> owner_ran{0};
    weft::task_group g;
    std::atomic<bool> done{false};
    std::thread other([&] {
      rt.run([&] {
        for (int i = 0; i < worker_spawns; ++i) g.spawn([&] { ran.fetch_add(1); });
      });
      done.store(true);
    });
    int owner_spawns = 0;
    while (!done.load()) {
      g.spawn([&] { owner_ran.fetch_add(1); });
      ++owner_spawns;
      g.wait();
      ASSERT_EQ(owner_ran.load(), owner_spawns);
    }
    other.join();
    g.wait();
    ASSERT_EQ(ran.load(), worker_spawns) << "trial " << trial;
  }
}

// A group created outside any runtime, spawned into inside rt.run(): the call
// runs on rt, like every weft call inside run().
TEST_P(TaskGroupTest, GroupCreatedOutsideRunsSpawnsFromInsideRunOnThatRuntime) {
  weft::task_group g;
  std::atomic<int> on_rt{0};
  std::atomic<int> elsewhere{0};
  rt.run([&] {
    for (int i = 0; i < 200; ++i) {
      g.spawn([&] {
        const int w = weft::worker_index();
        (w >= 0 && &weft::this_runtime() == &rt ? on_rt : elsewhere).fetch_add(1);
      });
    }
  });
  g.wait();
  EXPECT_EQ(on_rt.load(), 200);
  EXPECT_EQ(elsewhere.load(), 0);
}

// Another thread keeps spawning into the group while its owner's waits
// fail every other round: every spawn is waited for by exactly one wait, run
// or skipped (a call's closure is destroyed either way), every failing round
// throws its own exception and no other wait throws. Rounds end both ways: by
// a wait that registered and by one that found its calls done.
TEST_P(TaskGroupTest, SpawnsFromAnotherThreadAcrossFailingWaitsAreNeverLost) {
  constexpr int outside_spawns = 2000;
  struct token {
    std::atomic<int>* m_done;
    explicit token(std::atomic<int>* d) : m_done(d) {}
    token(token&& o) noexcept : m_done(std::exchange(o.m_done, nullptr)) {}
    token(const token&) = delete;
    ~token() {
      if (m_done != nullptr) m_done->fetch_add(1);
    }
  };
  for (int trial = 0; trial < 10; ++trial) {
    std::atomic<int> destroyed{0};
    int wrong_errors = 0;
    rt.run([&] {
      weft::task_group g;
      std::atomic<bool> done{false};
      std::thread other([&] {
        for (int i = 0; i < outside_spawns; ++i) {
          g.spawn([t = token(&destroyed), i] { spin_for(std::chrono::microseconds(i % 3)); });
        }
        done.store(true);
      });
      for (int round = 0; !done.load(); ++round) {
        const bool fails = round % 2 == 0;
        g.spawn([fails, round] {
          if (fails) throw std::runtime_error(std::to_string(round));
        });
        try {
          g.wait();
          if (fails) ++wrong_errors;
        } catch (const std::runtime_error& e) {
          if (!fails || e.what() != std::to_string(round)) ++wrong_errors;
        }
      }
      other.join();
      g.wait();
    });
    ASSERT_EQ(destroyed.load(), outside_spawns) << "trial " << trial;
    ASSERT_EQ(wrong_errors, 0) << "trial " << trial;
  }
}

WEFT_INSTANTIATE_WORKER_COUNTS(TaskGroupTest);

// At one worker a spawned call popped back by the owner's wait runs on the
// fiber that made the group, so it may wait for the group itself; its own
// closure (in the group's slot) stays intact through that inner wait and the
// spawns after it.
TEST(TaskGroupOneWorkerTest, ACallPoppedBackOnTheOwnersFiberMayWaitForItsGroup) {
  weft::runtime rt{weft::config{.workers = 1}};
  std::atomic<int> calls{0};
  std::atomic<int> inner{0};
  std::atomic<int> bad{0};
  rt.run([&] {
    for (long round = 0; round < 100; ++round) {
      weft::task_group g;
      const long tag = 1000 + round;
      g.spawn([tag, &g, &calls, &inner, &bad] {
        g.spawn([&inner] { inner.fetch_add(1); });
        g.wait();
        g.spawn([other = -tag, &inner, &bad] {
          if (other >= 0) bad.fetch_add(1);
          inner.fetch_add(1);
        });
        const volatile long again = tag;  // read after the inner wait and spawns
        if (again < 1000 || again >= 1100) bad.fetch_add(1);
        calls.fetch_add(1);
      });
      g.wait();
    }
  });
  EXPECT_EQ(calls.load(), 100);
  EXPECT_EQ(inner.load(), 200);
  EXPECT_EQ(bad.load(), 0);
}

// A call counted while the owner's wait is registered and not yet claimed
// (here spawned by a call of the waited round) is waited for by that wait and
// belongs to its round: its exception is that wait's. At one worker the order
// is fixed: the owner's wait registers before the injected call runs. (A
// version of the rounds that put such a call in the next round made the wait
// return normally.)
TEST(TaskGroupOneWorkerTest, ACallCountedDuringARegisteredWaitBelongsToItsRound) {
  weft::runtime rt{weft::config{.workers = 1}};
  for (int trial = 0; trial < 20; ++trial) {
    std::string wait_error;
    bool next_wait_threw = false;
    rt.run([&] {
      weft::task_group g;
      std::thread outside(
          [&] { g.spawn([&g] { g.spawn([] { throw std::runtime_error("spawned during the wait"); }); }); });
      outside.join();  // blocks the only worker: the call is queued before the owner waits
      wait_error = error_of_wait(g);
      try {
        g.wait();
      } catch (...) {
        next_wait_threw = true;
      }
    });
    EXPECT_EQ(wait_error, "spawned during the wait") << "trial " << trial;
    EXPECT_FALSE(next_wait_threw) << "trial " << trial;
  }
}

// A call counted after a failing wait was claimed (its last call done) and
// before that wait has rethrown belongs to the next wait: it runs even when
// it starts before the failing wait has rethrown, and its own exception, if
// any, is the next wait's. Here the waiter is a thread outside the runtime
// (its group made outside), which must wake before it can rethrow, while a
// task of another group, queued behind the failing call on the only worker,
// spawns that call as soon as the failing call is destroyed and starts it.
// (The call was skipped when it started before the rethrow, and the next
// wait returned without having run it.)
void call_counted_after_a_failed_wait_was_claimed(bool call_throws) {
  weft::runtime rt{weft::config{.workers = 1}};
  for (int trial = 0; trial < 5; ++trial) {
    weft::task_group g;      // made outside any runtime: waited by this thread
    weft::task_group other;  // the same, for the task that spawns the call
    std::atomic<bool> waiting{false};
    std::atomic<bool> failing_destroyed{false};
    std::atomic<bool> spawned{false};
    std::atomic<int> next_ran{0};
    struct on_destroy {
      std::atomic<bool>* m_flag;
      explicit on_destroy(std::atomic<bool>* f) : m_flag(f) {}
      on_destroy(on_destroy&& o) noexcept : m_flag(std::exchange(o.m_flag, nullptr)) {}
      on_destroy(const on_destroy&) = delete;
      ~on_destroy() {
        if (m_flag != nullptr) m_flag->store(true);
      }
    };
    rt.run([&] {
      other.spawn([&] {
        while (!failing_destroyed.load()) weft::yield();
        g.spawn([&] {  // counted after the claim: the next wait's
          next_ran.fetch_add(1);
          if (call_throws) throw std::runtime_error("next round");
        });
        spawned.store(true);
        for (int i = 0; i < 64 && next_ran.load() == 0; ++i) weft::yield();
      });
      g.spawn([&, flag = on_destroy(&failing_destroyed)] {
        while (!waiting.load()) weft::yield();
        // Time for this thread's wait to register after it said so.
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        throw std::runtime_error("waited round");
      });
    });
    std::string wait_error;
    std::string next_wait_error;
    waiting.store(true);
    wait_error = error_of_wait(g);
    while (!spawned.load()) std::this_thread::yield();  // the next wait covers the call
    next_wait_error = error_of_wait(g);
    other.wait();
    EXPECT_EQ(wait_error, "waited round") << "trial " << trial;
    EXPECT_EQ(next_wait_error, call_throws ? "next round" : "") << "trial " << trial;
    EXPECT_EQ(next_ran.load(), 1) << "trial " << trial;
  }
}

TEST(TaskGroupOneWorkerTest, ACallCountedAfterAFailedWaitWasClaimedRuns) {
  call_counted_after_a_failed_wait_was_claimed(false);
}

TEST(TaskGroupOneWorkerTest, ACallCountedAfterAFailedWaitWasClaimedFailsTheNextWait) {
  call_counted_after_a_failed_wait_was_claimed(true);
}

// At one worker a call popped back by the owner's wait runs on the owner's
// fiber and may wait for its group (above). When that inner wait fails (it
// ends its round) and the call then spawns a call that throws, the outer
// wait, which ran that spawn, rethrows its exception: it is neither dropped
// (no later wait, the destructor drops it) nor kept for a later wait.
TEST(TaskGroupOneWorkerTest, AnOuterWaitRethrowsACallSpawnedAfterAFailedInnerWait) {
  weft::runtime rt{weft::config{.workers = 1}};
  for (int trial = 0; trial < 10; ++trial) {
    std::string inner_error;
    std::string outer_error;
    std::string next_error;
    std::atomic<int> c_ran{0};
    rt.run([&] {
      weft::task_group g;
      g.spawn([&] {
        g.spawn([] { throw std::runtime_error("inner"); });
        inner_error = error_of_wait(g);
        g.spawn([&] {
          c_ran.fetch_add(1);
          throw std::runtime_error("after inner");
        });
      });
      outer_error = error_of_wait(g);
      next_error = error_of_wait(g);  // nothing spawned since the outer wait
    });
    EXPECT_EQ(inner_error, "inner") << "trial " << trial;
    EXPECT_EQ(c_ran.load(), 1) << "trial " << trial;
    EXPECT_EQ(outer_error, "after inner") << "trial " << trial;
    EXPECT_EQ(next_error, "") << "trial " << trial;
  }
}

// The same when the inner wait does not fail but registers (a call spawned
// from another thread is still queued behind the owner): it ends its round
// all the same, and the outer wait, which ran the throwing spawn made after
// it, rethrows its exception.
TEST(TaskGroupOneWorkerTest, AnOuterWaitRethrowsACallSpawnedAfterARegisteredInnerWait) {
  weft::runtime rt{weft::config{.workers = 1}};
  for (int trial = 0; trial < 10; ++trial) {
    std::string outer_error;
    std::string next_error;
    std::atomic<int> ran{0};
    rt.run([&] {
      weft::task_group g;
      g.spawn([&] {
        g.wait();  // registers: the outside spawn is queued
        g.spawn([&] {
          ran.fetch_add(1);
          throw std::runtime_error("after inner");
        });
      });
      std::thread outside([&] { g.spawn([&] { ran.fetch_add(1); }); });
      outside.join();  // blocks the only worker: the outside call is queued before the owner waits
      outer_error = error_of_wait(g);
      next_error = error_of_wait(g);  // nothing spawned since the outer wait
    });
    EXPECT_EQ(ran.load(), 2) << "trial " << trial;
    EXPECT_EQ(outer_error, "after inner") << "trial " << trial;
    EXPECT_EQ(next_error, "") << "trial " << trial;
  }
}

// Randomised: the owner's call, popped back on its fiber, waits for the
// group (its inner spawn may throw, its inner wait may register behind spawns
// from another thread), then spawns a call that may throw and may throw
// itself. The outer wait throws exactly when the call or its spawn after the
// inner wait threw, one of their exceptions; the next wait, with only the
// other thread's calls (which never throw), throws nothing.
TEST(TaskGroupOneWorkerTest, NestedWaitsInPoppedBackCallsReportTheirOuterRound) {
  weft::runtime rt{weft::config{.workers = 1}};
  weft_test::seeded_rng rng;
  int wrong = 0;
  rt.run([&] {
    weft::task_group g;
    std::atomic<int> outside_done{0};
    std::thread outside([&] {
      for (int i = 0; i < 3000; ++i) g.spawn([] { spin_for(std::chrono::microseconds(1)); });
      outside_done.store(1);
    });
    for (int round = 0; round < 2000; ++round) {
      const unsigned bits = static_cast<unsigned>(rng() & 7);
      const bool b_throws = (bits & 1) != 0;
      const bool c_throws = (bits & 2) != 0;
      const bool a_throws = (bits & 4) != 0;
      const std::string a_tag = std::to_string(round) + "A";
      const std::string c_tag = std::to_string(round) + "C";
      g.spawn([&, b_throws, c_throws, a_throws] {
        g.spawn([b_throws] {
          if (b_throws) throw std::runtime_error("B");
        });
        try {
          g.wait();
          if (b_throws) ++wrong;
        } catch (const std::runtime_error& e) {
          if (!b_throws || std::string(e.what()) != "B") ++wrong;
        }
        g.spawn([&, c_throws] {
          if (c_throws) throw std::runtime_error(c_tag);
        });
        if (a_throws) throw std::runtime_error(a_tag);
      });
      try {
        g.wait();
        if (a_throws || c_throws) ++wrong;
      } catch (const std::runtime_error& e) {
        const std::string what = e.what();
        if (!((a_throws && what == a_tag) || (c_throws && what == c_tag))) ++wrong;
      }
      try {
        g.wait();
      } catch (...) {
        ++wrong;
      }
    }
    outside.join();
    g.wait();
  });
  EXPECT_EQ(wrong, 0);
}

TEST(TaskGroupOutsideTest, GroupOwnedByAnOutsideThreadRunsInDefaultRuntime) {
  std::atomic<int> calls{0};
  weft::task_group g;
  for (int i = 0; i < 500; ++i) g.spawn([&] { calls.fetch_add(1); });
  g.wait();
  EXPECT_EQ(calls.load(), 500);
  for (int i = 0; i < 10; ++i) g.spawn([&] { calls.fetch_add(1); });
  g.wait();
  EXPECT_EQ(calls.load(), 510);
}

// A burst of long spawns (one per worker, each busy without calling weft
// until all have started) runs on every worker at once, also on a runtime
// that has just started. Its spawns stayed in the owner's private ring while
// the owner ran the newest, one published at a time: 3 of 4 calls gave up
// on 4 workers, 7 of 8 on 8.
TEST(TaskGroupBurstTest, ALongBurstRunsOnEveryWorkerAtOnce) {
  for (const int workers : {4, 8}) {
    SCOPED_TRACE(::testing::Message() << workers << " workers");
    weft::runtime rt{weft::config{.workers = workers}};
    for (int round = 0; round < 2; ++round) {
      std::atomic<int> reached{0};
      std::atomic<int> gave_up{0};
      rt.run([&] {
        weft::task_group g;
        for (int k = 0; k < workers; ++k) {
          g.spawn([&] {
            if (!weft_test::busy_until(reached, workers)) gave_up.fetch_add(1);
          });
        }
        g.wait();
      });
      EXPECT_EQ(gave_up.load(), 0) << "round " << round;
    }
  }
}

}  // namespace
