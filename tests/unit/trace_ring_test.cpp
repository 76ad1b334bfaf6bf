// SPDX-License-Identifier: MIT
// Unit tests of runtime/trace.hpp's trace_ring: snapshot() of a ring on one
// thread (order, what a wrapped ring keeps), and while its owner writes: every
// event it returns is one record, never fields of two.
#include "trace.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "sanitizers.hpp"
#include "watchdog.hpp"

namespace {

using weft::rt::trace_kind;
using weft::rt::trace_ring;

constexpr std::size_t k_capacity = 1024;  // the smallest ring

// Record `i` (from 1): every field but the time derived from i, so that a
// snapshotted event shows whether it is one record.
void record(trace_ring& ring, std::uint64_t i) {
  ring.record(static_cast<trace_kind>(i % 8), i, static_cast<std::uint32_t>(i * 0x9e3779b9u));
}

// Whether e is record e.m_arg as record() wrote it.
bool whole(const trace_ring::event& e) {
  return e.m_arg != 0 && static_cast<std::uint32_t>(e.m_kind) == e.m_arg % 8 &&
         e.m_extra == static_cast<std::uint32_t>(e.m_arg * 0x9e3779b9u);
}

TEST(TraceRing, SnapshotBeforeWrappingHasEveryEventInOrder) {
  trace_ring ring(k_capacity);
  EXPECT_TRUE(ring.snapshot().empty());
  for (std::uint64_t i = 1; i <= 100; ++i) record(ring, i);
  const std::vector<trace_ring::event> events = ring.snapshot();
  ASSERT_EQ(events.size(), 100u);
  for (std::size_t k = 0; k < events.size(); ++k) {
    EXPECT_EQ(events[k].m_arg, k + 1);
    EXPECT_TRUE(whole(events[k])) << "k=" << k;
    if (k > 0) {
      EXPECT_GE(events[k].m_ticks, events[k - 1].m_ticks);
    }
  }
}

// Once wrapped, a snapshot keeps the newest events but the oldest slot: that
// slot is the one the owner writes next.
TEST(TraceRing, WrappedSnapshotKeepsTheNewestInOrder) {
  trace_ring ring(k_capacity);
  const std::uint64_t n = 5 * k_capacity + 17;
  for (std::uint64_t i = 1; i <= n; ++i) record(ring, i);
  const std::vector<trace_ring::event> events = ring.snapshot();
  ASSERT_EQ(events.size(), k_capacity - 1);
  for (std::size_t k = 0; k < events.size(); ++k) {
    EXPECT_EQ(events[k].m_arg, n - (k_capacity - 1) + 1 + k) << "k=" << k;
    EXPECT_TRUE(whole(events[k])) << "k=" << k;
  }
}

// One thread records as fast as it can while this one snapshots: every event
// of every snapshot is one whole record, and a snapshot's events are
// consecutive records. A snapshot used to return, as its oldest event, the
// slot the owner was overwriting meanwhile: fields of records i and
// i + capacity.
TEST(TraceRing, SnapshotsWhileTheOwnerWritesHoldWholeRecords) {
  const int snapshots = static_cast<int>(weft_test::scaled(200'000, 20));
  trace_ring ring(k_capacity);
  std::atomic<std::uint64_t> written{0};
  std::atomic<bool> stop{false};
  std::thread owner([&] {
    for (std::uint64_t i = 1; !stop.load(std::memory_order_relaxed); ++i) {
      record(ring, i);
      written.store(i, std::memory_order_relaxed);
    }
  });
  // Start once the ring wrapped (the watchdog bounds the wait).
  while (written.load(std::memory_order_relaxed) < 2 * k_capacity) std::this_thread::yield();
  int torn = 0;
  int gaps = 0;
  std::string first_bad;
  for (int s = 0; s < snapshots; ++s) {
    const std::vector<trace_ring::event> events = ring.snapshot();
    for (std::size_t k = 0; k < events.size(); ++k) {
      const trace_ring::event& e = events[k];
      const bool bad = !whole(e);
      const bool gap = k > 0 && e.m_arg != events[k - 1].m_arg + 1;
      if ((bad || gap) && first_bad.empty()) {
        first_bad = "snapshot " + std::to_string(s) + " event " + std::to_string(k) + " of " +
                    std::to_string(events.size()) + ": arg " + std::to_string(e.m_arg) + ", kind " +
                    std::to_string(static_cast<std::uint32_t>(e.m_kind)) + ", extra " + std::to_string(e.m_extra) +
                    (k > 0 ? ", after arg " + std::to_string(events[k - 1].m_arg) : std::string());
      }
      torn += bad ? 1 : 0;
      gaps += gap ? 1 : 0;
    }
  }
  stop.store(true, std::memory_order_relaxed);
  owner.join();
  EXPECT_EQ(torn, 0) << "events mixing two records in " << snapshots << " snapshots; first: " << first_bad;
  EXPECT_EQ(gaps, 0) << "non-consecutive events in " << snapshots << " snapshots; first: " << first_bad;
}

}  // namespace
