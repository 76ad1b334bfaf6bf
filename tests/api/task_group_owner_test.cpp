// SPDX-License-Identifier: MIT
// task_group::wait() by the group's owner pops its own spawns back while they
// are the newest tasks of its worker, and runs them inline. These cases make
// another fiber of the same worker run one of those spawns while the owner is
// away (yielded or suspended inside a call it popped back), and then make the
// worker queue a newer task of another group, allocated where the finished
// spawn was (the closures are recycled per worker, by size). The owner must
// still wait for exactly its own calls: never run another group's task as its
// own, never hang. (Found by tests/stress/random_mix_stress_test.cpp.)
//
// One worker makes the order of events deterministic. Each case runs in a
// child process with a timeout, so that a hang is reported as a failure of
// this test instead of stopping the suite.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include <weft/coroutine.hpp>
#include <weft/weft.hpp>

#include "child_process.hpp"

namespace {

using weft_test::run_in_child;

constexpr auto k_timeout = std::chrono::seconds(10 * (weft_test::k_sanitized ? 3 : 1));

struct counts {
  std::atomic<int> a{0}, b{0}, x{0}, y{0};
};

// On one worker, the owner F0 of g spawns X (another group's task, in gx),
// then A and B. g.wait() pops B back and runs it on F0; B lets the worker go
// (`away`), so another fiber F1 takes the newest task, A, runs it and frees
// its closure, then takes X. X spawns Y into its own group g2 (Y's closure has
// A's size, so it lands at A's address) and lets F0 continue (`back`). F0 then
// looks for A, its next spawn, on top of the worker's queue, where Y now is.
template <class Away, class Back>
int owner_meets_a_recycled_spawn(Away away, Back back) {
  weft::runtime rt{weft::config{.workers = 1}};
  counts c;
  const int inner = rt.run([&] {
    weft::task_group gx;
    weft::task_group g;
    gx.spawn([&] {  // X
      weft::task_group g2;
      g2.spawn([&c] { c.y.fetch_add(1); });  // Y: the same closure size as A
      c.x.fetch_add(1);
      back();
      g2.wait();
    });
    g.spawn([&c] { c.a.fetch_add(1); });  // A
    g.spawn([&] {                         // B, popped back and run by the owner
      c.b.fetch_add(1);
      away();
    });
    g.wait();
    WEFT_CHILD_CHECK(c.a.load() == 1 && c.b.load() == 1, 1);
    gx.wait();
    return 0;
  });
  if (inner != 0) return inner;
  std::fprintf(stderr, "a %d, b %d, x %d, y %d\n", c.a.load(), c.b.load(), c.x.load(), c.y.load());
  WEFT_CHILD_CHECK(c.a.load() == 1, 2);
  WEFT_CHILD_CHECK(c.b.load() == 1, 3);
  WEFT_CHILD_CHECK(c.x.load() == 1, 4);
  WEFT_CHILD_CHECK(c.y.load() == 1, 5);
  return 0;
}

TEST(TaskGroupOwnerTest, OwnerYieldsInAPoppedBackCallWhileItsSpawnIsRecycled) {
  const auto r = run_in_child(
      [] {
        return owner_meets_a_recycled_spawn([] { weft::yield(); },  // F0 to the yield list: F1 takes over
                                            [] { weft::yield(); }   // X yields: F0 resumes first
        );
      },
      k_timeout);
  EXPECT_TRUE(r.exited_with(0)) << (r.timed_out ? "task_group::wait() hung. " : "") << r.describe();
}

TEST(TaskGroupOwnerTest, OwnerSuspendsInAPoppedBackCallWhileItsSpawnIsRecycled) {
  const auto r = run_in_child(
      [] {
        weft::latch gate(1);
        return owner_meets_a_recycled_spawn([&gate] { gate.wait(); },       // F0 suspends: F1 takes over
                                            [&gate] { gate.count_down(); }  // F0 ready again, above Y
        );
      },
      k_timeout);
  EXPECT_TRUE(r.exited_with(0)) << (r.timed_out ? "task_group::wait() hung. " : "") << r.describe();
}

// The owner is the task that made the group, not its fiber: a fiber runs
// many tasks in turn, and a group may outlive the task that made it. Here a
// call of the group runs on the creator's old fiber after the creator moved
// on (a coroutine resumed on another fiber; a task that handed the group to
// a plain thread and returned), and spawns into the group while another
// party waits: the wait must cover that spawn. It was taken for the owner's
// own (uncounted), and the wait returned before it ran.
// The parties of both cases: S, a call of the group that spawns X while
// another party waits, and the order of events (latches opened in turn).
struct handoff {
  weft::latch moved{1};
  weft::latch gate{1};
  weft::latch gate2{1};
  std::atomic<int> stage{0};
  std::atomic<bool> nested_done{false};
  bool covered = false;

  // S: spawned into g by its creator; runs on the creator's fiber F once the
  // creator has moved on.
  void spawn_s(weft::task_group& g) {
    g.spawn([this, &g] {
      stage.store(1);
      gate.wait();      // F suspends
      g.spawn([this] {  // X, from a call of the group
        gate2.wait();
        nested_done.store(true);
      });
    });
  }
  // The waiting party, once it waits: whether the wait covered X.
  void waited() { covered = nested_done.load(); }
  // Counts the latches down in order once each stage is reached; the last two
  // after a pause, so that the wait has begun when S spawns X.
  void open_in_order() {
    while (stage.load() != 1) std::this_thread::yield();
    moved.count_down();
    while (stage.load() != 2) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    gate.count_down();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    gate2.count_down();
  }
};

weft::task<void> coroutine_with_a_group(weft::latch& start, handoff& h) {
  co_await start;  // resumed by the loop: runs on a loop fiber F
  weft::task_group g;
  h.spawn_s(g);
  co_await h.moved;  // resumes on another fiber
  h.stage.store(2);
  g.wait();
  h.waited();
}

TEST(TaskGroupOwnerTest, ACallOnTheCreatorsOldFiberIsNotTheOwner) {
  const auto r = run_in_child(
      [] {
        weft::runtime rt{weft::config{.workers = 1}};
        weft::latch start(1);
        handoff h;
        std::thread driver([&] {
          start.count_down();
          h.open_in_order();
        });
        rt.run([&] { weft::sync_wait(coroutine_with_a_group(start, h)); });
        driver.join();
        WEFT_CHILD_CHECK(h.covered, 1);
        return 0;
      },
      k_timeout);
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

TEST(TaskGroupOwnerTest, AGroupHandedToAThreadByATaskThatReturned) {
  const auto r = run_in_child(
      [] {
        weft::runtime rt{weft::config{.workers = 1}};
        weft::latch made(1);
        handoff h;
        std::unique_ptr<weft::task_group> g;
        std::thread waiter([&] {
          made.wait();
          h.moved.wait();
          h.stage.store(2);
          g->wait();
          h.waited();
          g.reset();
        });
        std::thread driver([&] { h.open_in_order(); });
        weft::task_group outer;  // made outside any runtime: its calls run on a loop fiber
        rt.run([&] {
          outer.spawn([&] {
            g = std::make_unique<weft::task_group>();  // made by this task, on its fiber F
            h.spawn_s(*g);                             // S runs on F after this task returned
            made.count_down();
          });  // returns at once: the loop runs the call, then S, on one fiber
        });
        waiter.join();
        driver.join();
        outer.wait();
        WEFT_CHILD_CHECK(h.covered, 1);
        return 0;
      },
      k_timeout);
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

}  // namespace
