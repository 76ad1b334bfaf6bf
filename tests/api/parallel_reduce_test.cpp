// weft::parallel_reduce: the right result for every range, an order that
// needs only associativity, and bit-for-bit the same result whatever the
// number of workers and the timing (also for floating point).
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <weft/weft.hpp>

#include "expect_names.hpp"
#include "index_types.hpp"
#include "seeded_rng.hpp"
#include "worker_count.hpp"

namespace {

struct item_error {
  std::int64_t index;
};

// Values whose floating-point sum depends on the order of additions.
std::vector<double> awkward_values(std::uint64_t seed, std::size_t n) {
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<double> mantissa(-1.0, 1.0);
  std::uniform_int_distribution<int> exponent(-30, 30);
  std::vector<double> out(n);
  for (auto& v : out) v = std::ldexp(mantissa(engine), exponent(engine));
  return out;
}

double reduce_sum(const std::vector<double>& values) {
  return weft::parallel_reduce(
      std::size_t{0}, values.size(), 0.0, [&](std::size_t i) { return values[i]; },
      [](double a, double b) { return a + b; });
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

class ParallelReduceTest : public weft_test::WorkerCount {};

TEST_P(ParallelReduceTest, SumsAreExactForManyCounts) {
  for (const std::int64_t n :
       {0LL, 1LL, 2LL, 3LL, 7LL, 8LL, 9LL, 31LL, 1021LL, 1024LL, 1025LL, 4099LL, 65536LL, 1'000'000LL}) {
    SCOPED_TRACE(::testing::Message() << "n = " << n);
    const std::int64_t sum = rt.run([n] {
      return weft::parallel_reduce(
          std::int64_t{0}, n, std::int64_t{0}, [](std::int64_t i) { return i; },
          [](std::int64_t a, std::int64_t b) { return a + b; });
    });
    EXPECT_EQ(sum, n * (n - 1) / 2);
  }
}

TEST_P(ParallelReduceTest, EveryItemIsMappedOnce) {
  constexpr int n = 100'000;
  std::vector<std::atomic<int>> mapped(n);
  const std::int64_t count = rt.run([&] {
    return weft::parallel_reduce(
        0, n, std::int64_t{0},
        [&](int i) {
          mapped[static_cast<std::size_t>(i)].fetch_add(1);
          return std::int64_t{1};
        },
        [](std::int64_t a, std::int64_t b) { return a + b; });
  });
  EXPECT_EQ(count, n);
  for (int i = 0; i < n; ++i) ASSERT_EQ(mapped[static_cast<std::size_t>(i)].load(), 1) << "item " << i;
}

TEST_P(ParallelReduceTest, EmptyRangeReturnsIdentity) {
  EXPECT_EQ(rt.run([] {
    return weft::parallel_reduce(
        5, 5, 42, [](int) { return 1; }, [](int a, int b) { return a + b; });
  }),
            42);
  EXPECT_EQ(rt.run([] {
    return weft::parallel_reduce(
        0u, 0u, std::string("id"), [](unsigned) { return std::string("x"); },
        [](std::string a, const std::string& b) { return a + b; });
  }),
            "id");
}

// String concatenation is associative but not commutative: the result must
// keep the order of the range.
TEST_P(ParallelReduceTest, OrderIsKeptForNonCommutativeCombine) {
  for (const int n : {1, 2, 5, 26, 1000, 5001}) {
    SCOPED_TRACE(n);
    const std::string got = rt.run([n] {
      return weft::parallel_reduce(
          0, n, std::string(), [](int i) { return std::string(1, static_cast<char>('a' + i % 26)); },
          [](std::string a, const std::string& b) { return a + b; });
    });
    std::string want;
    for (int i = 0; i < n; ++i) want += static_cast<char>('a' + i % 26);
    EXPECT_EQ(got, want);
  }
}

// The same floating-point inputs give the same bits on 1 worker and on this
// runtime, run after run.
TEST_P(ParallelReduceTest, FloatingPointResultIsBitForBitReproducible) {
  weft_test::seeded_rng rng;
  weft::runtime one{weft::config{.workers = 1}};
  for (const std::size_t n : {std::size_t{10}, std::size_t{1000}, std::size_t{12'345}, std::size_t{300'001}}) {
    SCOPED_TRACE(::testing::Message() << "n = " << n);
    const auto values = awkward_values(rng(), n);
    const double reference = one.run([&] { return reduce_sum(values); });
    for (int round = 0; round < 5; ++round) {
      const double got = rt.run([&] { return reduce_sum(values); });
      ASSERT_TRUE(same_bits(got, reference)) << "round " << round << ": " << got << " vs " << reference;
    }
    EXPECT_TRUE(same_bits(reduce_sum(values), reference)) << "from outside any runtime";
  }
}

TEST_P(ParallelReduceTest, RangesOfEveryIndexType) {
  weft_test::for_each_index_type([&]<class I>(const char* type) {
    SCOPED_TRACE(type);
    constexpr I hi = std::numeric_limits<I>::max();
    constexpr I lo = std::numeric_limits<I>::min();
    // The last up to 100 values of the type, and the first ones.
    const I top_first = static_cast<I>(hi - static_cast<I>(hi < 100 ? hi : 100));
    const std::uint64_t top = rt.run([&] {
      return weft::parallel_reduce(
          top_first, hi, std::uint64_t{0}, [](I) { return std::uint64_t{1}; },
          [](std::uint64_t a, std::uint64_t b) { return a + b; });
    });
    EXPECT_EQ(top, static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(top_first));
    const std::uint64_t bottom = rt.run([&] {
      return weft::parallel_reduce(
          lo, static_cast<I>(lo + 50), std::uint64_t{0}, [](I) { return std::uint64_t{1}; },
          [](std::uint64_t a, std::uint64_t b) { return a + b; });
    });
    EXPECT_EQ(bottom, 50u);
  });
}

TEST_P(ParallelReduceTest, NegativeRangeSums) {
  EXPECT_EQ(rt.run([] {
    return weft::parallel_reduce(
        -500, 500, 0L, [](int i) { return static_cast<long>(i); }, [](long a, long b) { return a + b; });
  }),
            -500L);
}

TEST_P(ParallelReduceTest, LastBeforeFirstThrows) {
  weft_test::expect_invalid_argument(
      [&] {
        rt.run([] {
          return weft::parallel_reduce(
              10, 5, 0, [](int) { return 1; }, [](int a, int b) { return a + b; });
        });
      },
      "last");
}

TEST_P(ParallelReduceTest, ExceptionsFromMapAndCombineReachTheCaller) {
  try {
    rt.run([] {
      return weft::parallel_reduce(
          0, 100'000, 0L,
          [](int i) -> long {
            if (i == 77'777) throw item_error{i};
            return i;
          },
          [](long a, long b) { return a + b; });
    });
    ADD_FAILURE() << "no exception reached the caller";
  } catch (const item_error& e) {
    EXPECT_EQ(e.index, 77'777);
  }
  EXPECT_THROW(rt.run([] {
    return weft::parallel_reduce(
        0, 100'000, 0L, [](int i) { return static_cast<long>(i); },
        [](long a, long b) -> long {
          if (a + b > 1'000'000) throw item_error{-1};
          return a + b;
        });
  }),
               item_error);
  // Still usable.
  EXPECT_EQ(rt.run([] {
    return weft::parallel_reduce(
        0, 1000, 0, [](int) { return 1; }, [](int a, int b) { return a + b; });
  }),
            1000);
}

TEST_P(ParallelReduceTest, NestedInsideOtherParallelCalls) {
  std::atomic<std::int64_t> total{0};
  rt.run([&] {
    weft::parallelize(16, [&](int k) {
      total.fetch_add(weft::parallel_reduce(
          0, 1000 + k, std::int64_t{0}, [](int i) { return std::int64_t{i}; },
          [](std::int64_t a, std::int64_t b) { return a + b; }));
    });
  });
  std::int64_t want = 0;
  for (int k = 0; k < 16; ++k) want += std::int64_t{1000 + k} * (999 + k) / 2;
  EXPECT_EQ(total.load(), want);
}

WEFT_INSTANTIATE_WORKER_COUNTS(ParallelReduceTest);

}  // namespace
