// SPDX-License-Identifier: MIT
// Unit tests of runtime/counters.hpp: snapshot() turns the ticks a worker
// accumulated into nanoseconds exactly, also for tick counts whose product
// with 1000 does not fit in 64 bits. The counters through the public API are
// in tests/api/counters_test.cpp.
#include "counters.hpp"

#include <gtest/gtest.h>

#include <cstdint>

#include "watchdog.hpp"

namespace {

using weft::rt::counters;

__extension__ using u128 = unsigned __int128;

// t ticks in nanoseconds, saturated.
std::uint64_t expected_ns(std::uint64_t t) {
  const u128 ns = static_cast<u128>(t) * 1000 / weft::rt::ticks_per_us();
  return ns > UINT64_MAX ? UINT64_MAX : static_cast<std::uint64_t>(ns);
}

// A worker's counters holding `busy`, `search` and `parked` ticks of
// finished intervals, and no interval in progress.
void set_ticks(counters& c, std::uint64_t busy, std::uint64_t search, std::uint64_t parked) {
  c.ticks[0].store(busy);
  c.ticks[1].store(search);
  c.ticks[2].store(parked);
  c.current.store(static_cast<std::uint32_t>(weft::rt::activity::parked));
  c.since.store(UINT64_MAX);  // later than now: the interval in progress counts nothing
}

TEST(Counters, SmallTimesInNanoseconds) {
  if (!weft::rt::k_instrumented) GTEST_SKIP() << "built with -Dinstrumentation=false";
  const std::uint64_t per_us = weft::rt::ticks_per_us();
  counters c;
  set_ticks(c, 3 * per_us, per_us, 0);
  const weft::worker_stats s = c.snapshot();
  EXPECT_EQ(s.busy_ns, 3000u);
  EXPECT_EQ(s.search_ns, 1000u);
  EXPECT_EQ(s.parked_ns, 0u);
}

// 1000 days of ticks in one activity, whose t * 1000 overflows 64 bits at
// any clock rate above 213 ticks per microsecond (the snapshot used to report
// a wrapped, far smaller time), and the largest tick count.
TEST(Counters, LongTimesDoNotOverflow) {
  if (!weft::rt::k_instrumented) GTEST_SKIP() << "built with -Dinstrumentation=false";
  const std::uint64_t per_us = weft::rt::ticks_per_us();
  const std::uint64_t thousand_days_us = std::uint64_t{1000} * 86'400 * 1'000'000;
  counters c;
  set_ticks(c, thousand_days_us * per_us, UINT64_MAX, UINT64_MAX / 1000 + 1);
  const weft::worker_stats s = c.snapshot();
  EXPECT_EQ(s.busy_ns, thousand_days_us * 1000);
  EXPECT_EQ(s.search_ns, expected_ns(UINT64_MAX));
  EXPECT_EQ(s.parked_ns, expected_ns(UINT64_MAX / 1000 + 1));
}

}  // namespace
