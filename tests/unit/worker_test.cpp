// SPDX-License-Identifier: MIT
// Unit tests of runtime/worker.cpp: what a worker does for the sleep
// protocol when it moves tasks between the parts of its queue.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "runtime_access.hpp"
#include "scheduler.hpp"
#include "watchdog.hpp"
#include "weft/weft.hpp"
#include "worker.hpp"

namespace {

using weft::detail::runtime_access;

// A task that only says it ran.
struct flag_job : weft::detail::job {
  std::atomic<bool> m_ran{false};
  flag_job() noexcept { m_execute = &run; }
  static void run(weft::detail::job* t) noexcept { static_cast<flag_job*>(t)->m_ran.store(true); }
};

// A join near the bottom of a full stack looks for a continuation in its
// queue (take_continuation), taking the public tasks newer than it out of the
// deque for the search and putting them back. A thief that looked meanwhile
// saw the deque empty and may have parked: the worker wakes a sleeper when it
// held tasks aside. Before, nothing woke the parked worker, and a public
// task that only it could run (here: its owner is busy) stayed queued.
TEST(WorkerTakeContinuation, PublicTasksHeldAsideWakeAParkedWorker) {
  weft::runtime rt(weft::config{.workers = 2});
  weft::rt::scheduler& s = runtime_access::scheduler_of(rt);
  // Both workers parked: the call below borrows one slot, the other stays
  // parked until someone wakes it.
  while (!(s.sleepers().any_parked(0, 1) && s.sleepers().any_parked(1, 2))) std::this_thread::yield();
  bool ran = false;
  rt.run([&] {
    weft::rt::worker* w = weft::rt::current_worker();
    ASSERT_NE(w, nullptr);
    const int other = 1 - w->m_index;
    ASSERT_TRUE(s.sleepers().any_parked(other, other + 1));
    flag_job t;
    // Published (the public deque was empty), and nobody woken: the queue's
    // push, not the worker's.
    ASSERT_EQ(w->m_queue.push(&t), &t);
    ASSERT_EQ(w->take_continuation(), nullptr);  // t is no continuation: held aside, put back
    // Only the other worker can run t now (this one waits here).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!t.m_ran.load() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    ran = t.m_ran.load();
    if (!ran) {
      EXPECT_EQ(w->m_queue.pop(), &t);  // t lives in this frame: not left queued
    }
  });
  EXPECT_TRUE(ran) << "the task held aside stayed queued: the parked worker was not woken";
}

}  // namespace
