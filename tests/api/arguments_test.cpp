// SPDX-License-Identifier: MIT
// Bad arguments of the loops throw std::invalid_argument naming the parameter
// (negative n, num_workers < 1, grain < 1, last < first), call nothing, and
// do so both from outside a runtime and inside one.
#include <gtest/gtest.h>

#include <atomic>
#include <climits>
#include <cstdint>
#include <limits>
#include <stdexcept>

#include <weft/weft.hpp>

#include "expect_names.hpp"
#include "index_types.hpp"
#include "worker_count.hpp"

namespace {

using weft_test::expect_invalid_argument;

class ArgumentsTest : public weft_test::WorkerCount {
 protected:
  // Runs f inside the runtime and outside of any, so that both paths check.
  template <class F>
  void both_ways(F f, std::string_view parameter) {
    {
      SCOPED_TRACE("called from outside any runtime");
      expect_invalid_argument(f, parameter);
    }
    {
      SCOPED_TRACE("called inside a task of the runtime");
      expect_invalid_argument([&] { rt.run(f); }, parameter);
    }
  }

  std::atomic<int> calls{0};
};

TEST_P(ArgumentsTest, NegativeCountThrowsForEverySignedType) {
  weft_test::for_each_index_type([&]<class I>(const char* type) {
    if constexpr (std::is_signed_v<I>) {
      SCOPED_TRACE(type);
      for (const I n : {I(-1), I(-2), std::numeric_limits<I>::min()}) {
        both_ways([&] { weft::parallelize(n, [&](I) { calls.fetch_add(1); }); }, "n");
        both_ways([&] { weft::parallelize(n, 2, [&](I) { calls.fetch_add(1); }); }, "n");
      }
    }
  });
  EXPECT_EQ(calls.load(), 0);
}

TEST_P(ArgumentsTest, NumWorkersBelowOneThrows) {
  for (const int k : {0, -1, -5, INT_MIN}) {
    SCOPED_TRACE(::testing::Message() << "num_workers " << k);
    both_ways([&] { weft::parallelize(100, k, [&](int) { calls.fetch_add(1); }); }, "num_workers");
    both_ways([&] { weft::parallelize(std::uint64_t{100}, k, [&](std::uint64_t) { calls.fetch_add(1); }); },
              "num_workers");
    // A bad num_workers is an error even when there is nothing to do.
    both_ways([&] { weft::parallelize(0, k, [&](int) { calls.fetch_add(1); }); }, "num_workers");
  }
  EXPECT_EQ(calls.load(), 0);
}

// num_workers of a wider type than int is taken as it is: a std::size_t
// count of 2^32 was narrowed to 0 (an error about a cap the caller did not
// give) and 2^32 + 1 to 1 (the loop ran serially, silently).
TEST_P(ArgumentsTest, NumWorkersOfAWideTypeIsNotNarrowed) {
  // No SCOPED_TRACE inside: GoogleTest keeps its traces per thread, and the
  // items wait, so the task may end on another thread than it began on.
  rt.run([&] {
    for (const std::size_t k : {std::size_t{1} << 32, (std::size_t{1} << 32) + 1, ~std::size_t{0}}) {
      std::atomic<int> running{0};
      std::atomic<int> most{0};
      weft::latch all(2);  // two items meet: only a cap of 1 keeps them apart
      EXPECT_NO_THROW(weft::parallelize(2, k,
                                        [&](int) {
                                          const int now = running.fetch_add(1) + 1;
                                          int seen = most.load();
                                          while (seen < now && !most.compare_exchange_weak(seen, now)) {
                                          }
                                          all.arrive_and_wait();
                                          running.fetch_sub(1);
                                        }))
          << "num_workers " << k;
      EXPECT_EQ(most.load(), 2) << "num_workers " << k;
    }
  });
  both_ways([&] { weft::parallelize(100, std::size_t{0}, [&](int) { calls.fetch_add(1); }); }, "num_workers");
  both_ways([&] { weft::parallelize(100, std::int64_t{-1} << 40, [&](int) { calls.fetch_add(1); }); }, "num_workers");
  EXPECT_EQ(calls.load(), 0);
}

// The same for __int128 counts, which std::integral leaves out under strict
// -std=c++20 (this suite's): they went to the int overload, narrowed, so
// that 2^32 + 1 capped the loop at 1 (the two items below, which meet at a
// latch, hung) and 2^100 threw as if it were 0.
__extension__ using int128 = __int128;
__extension__ using uint128 = unsigned __int128;

TEST_P(ArgumentsTest, NumWorkersOfA128BitTypeIsNotNarrowed) {
  rt.run([&] {
    for (const uint128 k : {uint128{1} << 32, (uint128{1} << 32) + 1, uint128{1} << 100, ~uint128{0}}) {
      weft::latch all(2);  // two items meet: only a cap of 1 keeps them apart
      EXPECT_NO_THROW(weft::parallelize(2, k, [&](int) { all.arrive_and_wait(); }))
          << "num_workers 2^" << (k >> 64 != 0 ? "100 or more" : "32 or 2^32 + 1");
    }
    weft::latch all(2);
    EXPECT_NO_THROW(weft::parallelize(2, (int128{1} << 32) + 1, [&](int) { all.arrive_and_wait(); }));
  });
  both_ways([&] { weft::parallelize(100, uint128{0}, [&](int) { calls.fetch_add(1); }); }, "num_workers");
  both_ways([&] { weft::parallelize(100, -(int128{1} << 100), [&](int) { calls.fetch_add(1); }); }, "num_workers");
  EXPECT_EQ(calls.load(), 0);
}

TEST_P(ArgumentsTest, GrainBelowOneThrows) {
  for (const int grain : {0, -1, -100, INT_MIN}) {
    SCOPED_TRACE(::testing::Message() << "grain " << grain);
    both_ways([&] { weft::parallel_for(0, 100, grain, [&](int, int) { calls.fetch_add(1); }); }, "grain");
    // Also when the range is empty.
    both_ways([&] { weft::parallel_for(5, 5, grain, [&](int, int) { calls.fetch_add(1); }); }, "grain");
  }
  both_ways([&] { weft::parallel_for(0u, 100u, 0u, [&](unsigned, unsigned) { calls.fetch_add(1); }); }, "grain");
  both_ways([&] { weft::parallel_for<std::int8_t>(0, 100, -1, [&](std::int8_t, std::int8_t) { calls.fetch_add(1); }); },
            "grain");
  EXPECT_EQ(calls.load(), 0);
}

TEST_P(ArgumentsTest, LastBeforeFirstThrows) {
  both_ways([&] { weft::parallel_for(10, 5, [&](int, int) { calls.fetch_add(1); }); }, "last");
  both_ways([&] { weft::parallel_for(10, 5, 1, [&](int, int) { calls.fetch_add(1); }); }, "last");
  both_ways([&] { weft::parallel_for(0, -1, [&](int, int) { calls.fetch_add(1); }); }, "last");
  both_ways([&] { weft::parallel_for(INT_MAX, INT_MIN, [&](int, int) { calls.fetch_add(1); }); }, "last");
  both_ways([&] { weft::parallel_for(1u, 0u, [&](unsigned, unsigned) { calls.fetch_add(1); }); }, "last");
  both_ways(
      [&] {
        weft::parallel_for(std::numeric_limits<std::uint64_t>::max(), std::uint64_t{0}, std::uint64_t{4},
                           [&](std::uint64_t, std::uint64_t) { calls.fetch_add(1); });
      },
      "last");
  EXPECT_EQ(calls.load(), 0);
}

TEST_P(ArgumentsTest, RuntimeStaysUsableAfterBadArguments) {
  for (int i = 0; i < 10; ++i) {
    EXPECT_THROW(rt.run([] { weft::parallelize(-1, [](int) {}); }), std::invalid_argument);
    EXPECT_THROW(rt.run([] { weft::parallelize(1, 0, [](int) {}); }), std::invalid_argument);
  }
  std::atomic<int> n{0};
  rt.run([&] { weft::parallelize(1000, [&](int) { n.fetch_add(1); }); });
  EXPECT_EQ(n.load(), 1000);
}

WEFT_INSTANTIATE_WORKER_COUNTS(ArgumentsTest);

}  // namespace
