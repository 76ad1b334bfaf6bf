// SPDX-License-Identifier: MIT
// Unit tests of runtime/injection.hpp on one thread: take_all() hands back
// everything pushed so far, oldest first, as a list linked by m_next.
// Concurrency is in tests/stress/injection_stress_test.cpp.
#include "injection.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "watchdog.hpp"

namespace {

using weft::detail::job;
using weft::rt::injection_queue;

// The list from take_all() as a vector (fails past `limit` nodes: a cycle).
std::vector<job*> drain(injection_queue& q, std::size_t limit = 100000) {
  std::vector<job*> out;
  for (job* t = q.take_all(); t != nullptr; t = t->m_next) {
    out.push_back(t);
    if (out.size() > limit) {
      ADD_FAILURE() << "the list from take_all() is longer than " << limit << " nodes";
      break;
    }
  }
  return out;
}

TEST(InjectionQueue, NewQueueIsEmpty) {
  injection_queue q;
  EXPECT_TRUE(q.looks_empty());
  EXPECT_EQ(q.take_all(), nullptr);
}

TEST(InjectionQueue, SingleTask) {
  injection_queue q;
  job a;
  q.push(&a);
  EXPECT_FALSE(q.looks_empty());
  job* got = q.take_all();
  EXPECT_EQ(got, &a);
  EXPECT_EQ(a.m_next, nullptr);
  EXPECT_TRUE(q.looks_empty());
  EXPECT_EQ(q.take_all(), nullptr);
}

TEST(InjectionQueue, TakeAllIsOldestFirst) {
  injection_queue q;
  std::vector<job> tasks(1000);
  for (job& t : tasks) q.push(&t);
  const std::vector<job*> got = drain(q);
  ASSERT_EQ(got.size(), tasks.size());
  for (std::size_t i = 0; i < tasks.size(); ++i) ASSERT_EQ(got[i], &tasks[i]) << "i=" << i;
  EXPECT_EQ(tasks.back().m_next, nullptr);
  EXPECT_TRUE(q.looks_empty());
  EXPECT_EQ(q.take_all(), nullptr);
}

TEST(InjectionQueue, EachTakeAllGetsOnlyNewerTasks) {
  injection_queue q;
  std::vector<job> tasks(10);
  for (std::size_t i = 0; i < 4; ++i) q.push(&tasks[i]);
  std::vector<job*> got = drain(q);
  ASSERT_EQ(got.size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(got[i], &tasks[i]);
  for (std::size_t i = 4; i < 10; ++i) q.push(&tasks[i]);
  got = drain(q);
  ASSERT_EQ(got.size(), 6u);
  for (std::size_t i = 0; i < 6; ++i) EXPECT_EQ(got[i], &tasks[i + 4]);
}

// A task taken out may be pushed again (its link belongs to the queue
// again).
TEST(InjectionQueue, TakenTasksCanBePushedAgain) {
  injection_queue q;
  std::vector<job> tasks(3);
  for (int round = 0; round < 5; ++round) {
    q.push(&tasks[2]);
    q.push(&tasks[0]);
    q.push(&tasks[1]);
    const std::vector<job*> got = drain(q);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0], &tasks[2]);
    EXPECT_EQ(got[1], &tasks[0]);
    EXPECT_EQ(got[2], &tasks[1]);
  }
}

TEST(InjectionQueue, PushOverwritesStaleLink) {
  injection_queue q;
  job a;
  job b;
  a.m_next = &b;  // garbage from an earlier use
  q.push(&a);
  const std::vector<job*> got = drain(q);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], &a);
}

}  // namespace
