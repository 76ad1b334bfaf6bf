// SPDX-License-Identifier: MIT
// Unit tests of runtime/deque.hpp, the Chase-Lev deque, on one thread: the
// exact order of push/take/steal, empty results, growth across wrapped
// indices, and size_hint. Concurrency is in tests/stress/deque_stress_test.cpp.
#include "deque.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <random>
#include <vector>

#include "seeded_rng.hpp"
#include "watchdog.hpp"

namespace {

using weft::rt::deque;
using int_deque = deque<int*>;
using status = int_deque::steal_status;

// Distinct pointers standing for items 0..n-1.
class items {
 public:
  explicit items(std::size_t n) : m_cells(n) {}
  int* operator[](std::size_t i) { return &m_cells.at(i); }
  std::ptrdiff_t id(const int* p) const { return p - m_cells.data(); }

 private:
  std::vector<int> m_cells;
};

void expect_empty(int_deque& d) {
  EXPECT_EQ(d.size_hint(), 0);
  EXPECT_TRUE(d.looks_empty());
  const auto r = d.steal();
  EXPECT_EQ(r.status, status::empty);
  EXPECT_EQ(r.value, nullptr);
  EXPECT_EQ(d.take(), nullptr);
}

TEST(Deque, NewDequeIsEmpty) {
  int_deque d;
  expect_empty(d);
  expect_empty(d);  // and stays so after take() on empty
}

TEST(Deque, TakeIsLifo) {
  items it(100);
  int_deque d;
  for (std::size_t i = 0; i < 100; ++i) d.push(it[i]);
  EXPECT_EQ(d.size_hint(), 100);
  EXPECT_FALSE(d.looks_empty());
  for (std::size_t i = 100; i-- > 0;) ASSERT_EQ(d.take(), it[i]) << "i=" << i;
  expect_empty(d);
}

TEST(Deque, StealIsFifo) {
  items it(100);
  int_deque d;
  for (std::size_t i = 0; i < 100; ++i) d.push(it[i]);
  for (std::size_t i = 0; i < 100; ++i) {
    const auto r = d.steal();
    ASSERT_EQ(r.status, status::success) << "i=" << i;
    ASSERT_EQ(r.value, it[i]) << "i=" << i;
    EXPECT_EQ(d.size_hint(), static_cast<std::int64_t>(99 - i));
  }
  expect_empty(d);
}

TEST(Deque, TakeAndStealMeetInTheMiddle) {
  items it(11);
  int_deque d;
  for (std::size_t i = 0; i < 11; ++i) d.push(it[i]);
  std::size_t lo = 0;
  std::size_t hi = 11;
  while (lo < hi) {
    const auto r = d.steal();
    ASSERT_EQ(r.status, status::success);
    ASSERT_EQ(r.value, it[lo++]);
    if (lo == hi) break;
    ASSERT_EQ(d.take(), it[--hi]);
  }
  expect_empty(d);
}

TEST(Deque, LastElementByTakeThenReuse) {
  items it(3);
  int_deque d;
  d.push(it[0]);
  EXPECT_EQ(d.take(), it[0]);  // the last element: goes through the CAS on top
  expect_empty(d);
  d.push(it[1]);
  const auto r = d.steal();
  EXPECT_EQ(r.status, status::success);
  EXPECT_EQ(r.value, it[1]);
  expect_empty(d);
  d.push(it[2]);
  EXPECT_EQ(d.size_hint(), 1);
  EXPECT_EQ(d.take(), it[2]);
  expect_empty(d);
}

TEST(Deque, ManyTakesOnEmptyLeaveIndicesConsistent) {
  items it(3);
  int_deque d;
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(d.take(), nullptr);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(d.steal().status, status::empty);
  EXPECT_EQ(d.size_hint(), 0);
  for (std::size_t i = 0; i < 3; ++i) d.push(it[i]);
  EXPECT_EQ(d.size_hint(), 3);
  EXPECT_EQ(d.steal().value, it[0]);
  EXPECT_EQ(d.take(), it[2]);
  EXPECT_EQ(d.take(), it[1]);
  expect_empty(d);
}

TEST(Deque, GrowsFromTheSmallestCapacity) {
  constexpr std::size_t n = 10000;
  items it(n);
  {
    int_deque d(1);
    for (std::size_t i = 0; i < n; ++i) d.push(it[i]);
    EXPECT_EQ(d.size_hint(), static_cast<std::int64_t>(n));
    for (std::size_t i = n; i-- > 0;) ASSERT_EQ(d.take(), it[i]) << "i=" << i;
    expect_empty(d);
  }
  {
    int_deque d(1);
    for (std::size_t i = 0; i < n; ++i) d.push(it[i]);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(d.steal().value, it[i]) << "i=" << i;
    expect_empty(d);
  }
}

TEST(Deque, CapacityArgumentIsRoundedUp) {
  items it(1100);
  for (const std::int64_t cap : {std::int64_t{-5}, std::int64_t{0}, std::int64_t{1}, std::int64_t{15}, std::int64_t{16},
                                 std::int64_t{17}, std::int64_t{1000}}) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    int_deque d(cap);
    const std::size_t n = static_cast<std::size_t>(cap < 0 ? 0 : cap) + 50;
    for (std::size_t i = 0; i < n; ++i) d.push(it[i]);
    for (std::size_t i = 0; i < n / 2; ++i) ASSERT_EQ(d.steal().value, it[i]);
    for (std::size_t i = n; i-- > n / 2;) ASSERT_EQ(d.take(), it[i]);
    expect_empty(d);
  }
}

// Growth while the live range straddles the end of the ring: top is moved
// to every offset in the first array by steals, then the deque grows twice.
class DequeWrappedGrowth : public testing::TestWithParam<int> {};

TEST_P(DequeWrappedGrowth, KeepsOrder) {
  const int offset = GetParam();
  items it(static_cast<std::size_t>(offset) + 100);
  int_deque d(16);
  std::size_t next = 0;
  for (int i = 0; i < offset; ++i) d.push(it[next++]);
  for (int i = 0; i < offset; ++i) ASSERT_EQ(d.steal().value, it[static_cast<std::size_t>(i)]);
  const std::size_t first = next;
  for (int i = 0; i < 100; ++i) d.push(it[next++]);  // 16 -> 32 -> 64 -> 128
  EXPECT_EQ(d.size_hint(), 100);
  for (std::size_t i = first; i < first + 50; ++i) {
    const auto r = d.steal();
    ASSERT_EQ(r.status, status::success);
    ASSERT_EQ(r.value, it[i]) << "i=" << i;
  }
  for (std::size_t i = next; i-- > first + 50;) ASSERT_EQ(d.take(), it[i]) << "i=" << i;
  expect_empty(d);
}

INSTANTIATE_TEST_SUITE_P(Offsets, DequeWrappedGrowth, testing::Range(0, 48));

// The ring wraps many times without growing: steals and pushes alternate so
// that the live range walks around a capacity-16 array.
TEST(Deque, WrapsManyTimesWithoutLosingItems) {
  constexpr std::size_t n = 16 * 1000;
  items it(n);
  int_deque d(16);
  std::size_t pushed = 0;
  std::size_t stolen = 0;
  for (; pushed < 10; ++pushed) d.push(it[pushed]);
  while (pushed < n) {
    d.push(it[pushed++]);
    const auto r = d.steal();
    ASSERT_EQ(r.status, status::success);
    ASSERT_EQ(r.value, it[stolen++]);
    ASSERT_EQ(d.size_hint(), 10);
  }
  for (std::size_t i = pushed; i-- > stolen;) ASSERT_EQ(d.take(), it[i]);
  expect_empty(d);
}

TEST(Deque, SizeHintTracksOperations) {
  items it(40);
  int_deque d(16);
  std::int64_t size = 0;
  for (std::size_t i = 0; i < 40; ++i) {
    d.push(it[i]);
    EXPECT_EQ(d.size_hint(), ++size);
  }
  for (int i = 0; i < 10; ++i) {
    d.steal();
    EXPECT_EQ(d.size_hint(), --size);
    d.take();
    EXPECT_EQ(d.size_hint(), --size);
  }
  while (size > 0) {
    d.take();
    EXPECT_EQ(d.size_hint(), --size);
  }
  d.take();
  EXPECT_EQ(d.size_hint(), 0);
}

// Random single-thread sequences against a std::deque model: take() is the
// newest, steal() the oldest, every result exact, across growth, drains and
// wraps. Phases alternate between push-heavy (growth) and pop-heavy (drain).
TEST(Deque, RandomOperationsMatchModel) {
  weft_test::seeded_rng rng;  // names its seed in every failure
  constexpr std::size_t n = 200000;
  items it(n);
  for (int round = 0; round < 8; ++round) {
    int_deque d(static_cast<std::int64_t>(1) << (rng() % 6));
    std::deque<int*> model;
    std::size_t next = 0;
    std::uint64_t op = 0;
    while (next < n / 8 * (round + 1) && op < 400000) {
      ++op;
      const unsigned phase = static_cast<unsigned>((op / 512) % 3);  // 0: grow, 1: mixed, 2: drain
      const unsigned push_pct = phase == 0 ? 80 : phase == 1 ? 50 : 20;
      const unsigned r = static_cast<unsigned>(rng() % 100);
      if (r < push_pct) {
        int* p = it[next++ % n];
        d.push(p);
        model.push_back(p);
      } else if (r % 2 == 0) {
        int* got = d.take();
        if (model.empty()) {
          ASSERT_EQ(got, nullptr) << "op " << op;
        } else {
          ASSERT_EQ(got, model.back()) << "op " << op << ": take returned item " << it.id(got);
          model.pop_back();
        }
      } else {
        const auto s = d.steal();
        if (model.empty()) {
          ASSERT_EQ(s.status, status::empty) << "op " << op;
        } else {
          ASSERT_EQ(s.status, status::success) << "op " << op;
          ASSERT_EQ(s.value, model.front()) << "op " << op << ": steal returned item " << it.id(s.value);
          model.pop_front();
        }
      }
      ASSERT_EQ(d.size_hint(), static_cast<std::int64_t>(model.size())) << "op " << op;
      ASSERT_EQ(d.looks_empty(), model.empty()) << "op " << op;
    }
    while (!model.empty()) {
      ASSERT_EQ(d.take(), model.back());
      model.pop_back();
    }
    expect_empty(d);
  }
}

}  // namespace
