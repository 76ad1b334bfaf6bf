// SPDX-License-Identifier: MIT
// weft::parallel_reduce: the right result for every range, an order that
// needs only associativity, and bit-for-bit the same result whatever the
// number of workers and the timing (also for floating point).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
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
#include "sanitizers.hpp"
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

// parallel_reduce(0, 10, T{}, map, combine) is a call that can be made: its
// constraints, not an error inside the library, decide.
template <class T, class Map, class Combine>
concept reducible = requires(Map& m, Combine& c) {
  weft::parallel_reduce(0, 10, T{}, m, c);
};

struct plus_longs {
  long operator()(long a, long b) const { return a + b; }
};
struct plus_lvalues {  // takes lvalues only: a reduction passes rvalues
  long operator()(long& a, long& b) const { return a + b; }
};

// A map or combine that cannot be called as parallel_reduce calls it makes
// the call not viable (it compiled as a viable call before, and failed deep
// inside the library).
static_assert(reducible<long, long (*)(int), plus_longs>);
static_assert(!reducible<long, long (*)(std::string), plus_longs>, "map cannot take the index");
static_assert(!reducible<long, std::string (*)(int), plus_longs>, "map gives no value convertible to T");
static_assert(!reducible<long, long (*)(int), plus_lvalues>, "combine cannot take rvalues");
static_assert(!reducible<long, long (*)(int), std::string (*)(long, long)>, "combine gives no T");
static_assert(!reducible<long, long (*)(int), long (*)(long)>, "combine takes one argument");

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

// The identity of an empty range is returned moved, as the by-value
// parameter it is, from a worker and from outside (it was copied, through the
// reference the reduction holds, while identity went on by reference).
struct counted_value {
  static inline std::atomic<int> copies{0};
  long v = 0;
  explicit counted_value(long x) : v(x) {}
  counted_value(const counted_value& o) : v(o.v) { copies.fetch_add(1, std::memory_order_relaxed); }
  counted_value(counted_value&& o) noexcept : v(o.v) {}
  counted_value& operator=(const counted_value& o) {
    v = o.v;
    copies.fetch_add(1, std::memory_order_relaxed);
    return *this;
  }
  counted_value& operator=(counted_value&& o) noexcept {
    v = o.v;
    return *this;
  }
};

TEST_P(ParallelReduceTest, EmptyRangeMovesItsIdentity) {
  auto map = [](int) { return counted_value(1); };
  auto combine = [](counted_value a, counted_value b) { return counted_value(a.v + b.v); };
  counted_value::copies = 0;
  const counted_value inside = rt.run([&] { return weft::parallel_reduce(3, 3, counted_value(42), map, combine); });
  const counted_value outside = weft::parallel_reduce(3, 3, counted_value(43), map, combine);
  const counted_value mixed = weft::parallel_reduce(3, 3L, counted_value(44), map, combine);
  EXPECT_EQ(inside.v + outside.v + mixed.v, 42 + 43 + 44);
  EXPECT_EQ(counted_value::copies.load(), 0);
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

// A pointer to a member function as combine, which the constraint
// (std::invocable<Combine&, T, T>) accepts: the call did not compile (a plain
// call, where std::invoke is needed). A small T and one past the size kept in
// place (the partials then live on the heap).
struct small_sum {
  long total = 0;
  small_sum merge(small_sum other) const { return {total + other.total}; }
};
struct large_sum {
  long total = 0;
  long padding[63] = {};
  large_sum merge(const large_sum& other) const {
    large_sum r;
    r.total = total + other.total;
    return r;
  }
};

TEST_P(ParallelReduceTest, CombineMayBeAPointerToAMemberFunction) {
  const auto [small, large] = rt.run([] {
    const small_sum s = weft::parallel_reduce(
        0, 10'000, small_sum{}, [](int i) { return small_sum{i}; }, &small_sum::merge);
    const large_sum l = weft::parallel_reduce(
        0, 10'000, large_sum{},
        [](int i) {
          large_sum r;
          r.total = i;
          return r;
        },
        &large_sum::merge);
    return std::pair<long, long>(s.total, l.total);
  });
  EXPECT_EQ(small, 49'995'000);
  EXPECT_EQ(large, 49'995'000);
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

// After map throws, the blocks not started are skipped (docs/guide.md,
// "Exceptions"): the item that throws is the first of the right half, which
// another worker takes at once, so without the skip the left half would
// still map nearly all of its items. Counted, not timed: a block in progress
// per worker may finish (blocks of 1024 items here), nowhere near n / 8.
// The fewest of three rounds: between the throw and its capture (the unwind,
// slow under a sanitizer) the other workers go on, and a worker preempted
// there (8 workers on 2 cores) lets them map a million items more; without
// the skip every round maps about n / 2.
TEST_P(ParallelReduceTest, BlocksNotStartedAfterAThrowAreSkipped) {
  const std::int64_t n = std::int64_t{1} << 22;
  std::int64_t fewest = n;
  std::string seen;
  for (int round = 0; round < 3; ++round) {
    std::atomic<bool> thrown{false};
    std::atomic<std::int64_t> after{0};
    EXPECT_THROW(rt.run([&] {
      return weft::parallel_reduce(
          std::int64_t{0}, n, std::int64_t{0},
          [&](std::int64_t i) -> std::int64_t {
            if (thrown.load(std::memory_order_relaxed)) after.fetch_add(1, std::memory_order_relaxed);
            if (i == n / 2) {
              thrown.store(true, std::memory_order_relaxed);
              throw item_error{static_cast<int>(i)};
            }
            return i & 1;
          },
          [](std::int64_t a, std::int64_t b) { return a + b; });
    }),
                 item_error);
    fewest = std::min(fewest, after.load());
    seen += " " + std::to_string(after.load());
  }
  EXPECT_LT(fewest, n / 8) << "items mapped after the throw, per round:" << seen;
}

// Ranges of up to 2^64 - 1 items cannot be reduced in full, but an item that
// throws early must reach the caller as for any other range: the block size
// and count must not wrap near 2^64 (they did: no blocks at all, an endless
// recursion, and a false "fiber stack overflow").
struct early_item_error {
  std::uint64_t offset;
};

template <class I>
void expect_early_item_throws(weft::runtime& rt, I first, I last, std::uint64_t offset) {
  const std::uint64_t base = static_cast<std::uint64_t>(first);
  SCOPED_TRACE(::testing::Message() << "[" << +first << ", " << +last << "), item " << offset << " throws");
  try {
    rt.run([&] {
      return weft::parallel_reduce(
          first, last, std::uint64_t{0},
          [base, offset](I i) -> std::uint64_t {
            const std::uint64_t k = static_cast<std::uint64_t>(i) - base;
            if (k == offset) throw early_item_error{k};
            return k;
          },
          [](std::uint64_t a, std::uint64_t b) { return a + b; });
    });
    ADD_FAILURE() << "no exception reached the caller";
  } catch (const early_item_error& e) {
    EXPECT_EQ(e.offset, offset);
  }
}

TEST_P(ParallelReduceTest, HugeRangesDeliverTheExceptionOfAnEarlyItem) {
  constexpr std::uint64_t u_max = std::numeric_limits<std::uint64_t>::max();
  constexpr std::int64_t s_min = std::numeric_limits<std::int64_t>::min();
  constexpr std::int64_t s_max = std::numeric_limits<std::int64_t>::max();
  // 2^64 - 1 items, and counts where only the block count wrapped
  // ((count + leaf - 1) / leaf with leaf near 2^52), or the block size too
  // ((count + 4095) / 4096).
  for (const std::uint64_t first : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{4094}, std::uint64_t{4095},
                                    std::uint64_t{1} << 40, std::uint64_t{1} << 50, std::uint64_t{1} << 63}) {
    expect_early_item_throws(rt, first, u_max, 1000);
  }
  expect_early_item_throws(rt, std::uint64_t{0}, u_max - 1, 1000);
  expect_early_item_throws(rt, std::uint64_t{0}, u_max - (std::uint64_t{1} << 40), 1000);
  for (const std::int64_t first :
       {s_min, s_min + 1, s_min + (std::int64_t{1} << 50), std::int64_t{-1}, std::int64_t{0}}) {
    expect_early_item_throws(rt, first, s_max, 1000);
  }
  expect_early_item_throws(rt, s_min, s_max - 1, 1000);
  // The whole range of every index type, ending at the top of the type.
  weft_test::for_each_index_type([&]<class I>(const char* type) {
    SCOPED_TRACE(type);
    constexpr I lo = std::numeric_limits<I>::min();
    constexpr I hi = std::numeric_limits<I>::max();
    const std::uint64_t count = static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo);
    expect_early_item_throws(rt, lo, hi, count < 2000 ? count / 2 : 1000);
    expect_early_item_throws(rt, static_cast<I>(lo + 1), hi, count < 2000 ? count / 3 : 999);
  });
  // Still usable.
  EXPECT_EQ(rt.run([] {
    return weft::parallel_reduce(
        0, 1000, 0, [](int) { return 1; }, [](int a, int b) { return a + b; });
  }),
            1000);
}

// x -> a x + b modulo 2^64, composed left to right: associative, not
// commutative, so only the right order gives the serial result.
struct affine {
  std::uint64_t a = 1;
  std::uint64_t b = 0;
};

affine then(const affine& f, const affine& g) { return {g.a * f.a, g.a * f.b + g.b}; }
affine affine_of(std::uint64_t i) { return {2 * i + 1, i ^ (i >> 7)}; }

template <class I>
void expect_serial_result_at_top(weft::runtime& rt, std::uint64_t count) {
  constexpr I hi = std::numeric_limits<I>::max();
  const I first = static_cast<I>(hi - static_cast<I>(count));
  SCOPED_TRACE(::testing::Message() << "[" << first << ", " << hi << ")");
  const affine got = rt.run([&] {
    return weft::parallel_reduce(
        first, hi, affine{}, [](I i) { return affine_of(static_cast<std::uint64_t>(i)); }, then);
  });
  affine want;
  for (I i = first; i != hi; ++i) want = then(want, affine_of(static_cast<std::uint64_t>(i)));
  EXPECT_EQ(got.a, want.a);
  EXPECT_EQ(got.b, want.b);
}

// Large ranges that end at the top of a 64-bit type, reduced in full.
TEST_P(ParallelReduceTest, LargeRangesAtTheTopOfTheTypeMatchSerial) {
  const auto count = static_cast<std::uint64_t>(weft_test::scaled(3'000'017));
  expect_serial_result_at_top<std::uint64_t>(rt, count);
  expect_serial_result_at_top<std::int64_t>(rt, count);
}

// The combination tree of the guide, written out serially with its own
// formulas: a combine that is not associative shows any change of the tree
// (block size, block count, split points, lanes), which would break the
// bit-for-bit promise for floating point.
struct reference_tree {
  std::uint64_t n;
  std::uint64_t (*map)(std::uint64_t);
  std::uint64_t (*combine)(std::uint64_t, std::uint64_t);
  std::uint64_t identity;

  std::uint64_t leaf() const {
    if (n <= 64) return 1;
    if (n < 16384) return (n + 63) / 64;
    const std::uint64_t size = (n + 4095) / 4096;
    return size < 256 ? 256 : size;
  }
  std::uint64_t lane(std::uint64_t b, std::uint64_t e) const {
    std::uint64_t acc = identity;
    for (std::uint64_t k = b; k < e; ++k) acc = combine(acc, map(k));
    return acc;
  }
  std::uint64_t block(std::uint64_t b, std::uint64_t e) const {
    if (e - b < 8) return lane(b, e);
    const std::uint64_t q = (e - b) / 4;
    return combine(combine(lane(b, b + q), lane(b + q, b + 2 * q)),
                   combine(lane(b + 2 * q, b + 3 * q), lane(b + 3 * q, e)));
  }
  std::uint64_t over(std::uint64_t lo, std::uint64_t hi) const {
    if (hi - lo == 1) {
      const std::uint64_t b = lo * leaf();
      return block(b, b + leaf() < n ? b + leaf() : n);
    }
    const std::uint64_t mid = lo + (hi - lo) / 2;
    return combine(over(lo, mid), over(mid, hi));
  }
  std::uint64_t result() const { return over(0, (n + leaf() - 1) / leaf()); }
};

std::uint64_t scramble(std::uint64_t i) { return i * 0x9E3779B97F4A7C15u + 0x632BE59BD9B4E019u; }
std::uint64_t lopsided(std::uint64_t a, std::uint64_t b) { return (a ^ (a >> 31)) * 0xBF58476D1CE4E5B9u + b; }

TEST_P(ParallelReduceTest, TreeIsTheDocumentedOne) {
  for (const std::uint64_t n : {1u, 2u, 7u, 8u, 9u, 63u, 64u, 65u, 100u, 1000u, 1031u, 16383u, 16384u, 16385u, 65543u,
                                1'048'577u, 3'000'017u}) {
    SCOPED_TRACE(::testing::Message() << "n = " << n);
    const std::uint64_t want = reference_tree{n, scramble, lopsided, 7}.result();
    for (int round = 0; round < 3; ++round) {
      const std::uint64_t got =
          rt.run([n] { return weft::parallel_reduce(std::uint64_t{0}, n, std::uint64_t{7}, scramble, lopsided); });
      ASSERT_EQ(got, want) << "round " << round;
    }
  }
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

// A partial result larger than a few words (a histogram) is kept off the
// fiber's stack: every level of the tree, 7 here, held about five of them,
// and 2 KiB ones overflowed a 64 KiB stack (8 KiB ones the default 256 KiB).
TEST_P(ParallelReduceTest, LargePartialResultsStayOffTheStack) {
  using histogram = std::array<std::uint64_t, 256>;
  weft::runtime small{weft::config{.workers = workers(), .stack_size = 64 * 1024}};
  for (const std::int64_t n : {std::int64_t{5}, std::int64_t{1000}, std::int64_t{100'000}}) {
    SCOPED_TRACE(::testing::Message() << "n = " << n);
    const histogram got = small.run([n] {
      return weft::parallel_reduce(
          std::int64_t{0}, n, histogram{},
          [](std::int64_t i) {
            histogram h{};
            h[static_cast<std::size_t>(i * 7 % 256)] = static_cast<std::uint64_t>(i);
            return h;
          },
          [](histogram a, const histogram& b) {
            for (std::size_t k = 0; k < a.size(); ++k) a[k] += b[k];
            return a;
          });
    });
    histogram want{};
    for (std::int64_t i = 0; i < n; ++i) want[static_cast<std::size_t>(i * 7 % 256)] += static_cast<std::uint64_t>(i);
    EXPECT_EQ(got, want);
  }
}

// A partial result kept in place (256 bytes or less) takes no more stack per
// level than it did before large ones moved to the heap: 192 bytes over 2^20
// items (12 levels) fit the minimum stack (a version that passed the halves
// to combine by value overflowed it; and, in about 1 run in 10 at 8 workers,
// so did a tree whose unforked levels did not check the stack, when its last
// forked level was deep). Sanitizer builds have larger frames: 64 KiB there.
TEST_P(ParallelReduceTest, InPlacePartialResultsFitTheMinimumStack) {
  using histogram = std::array<std::uint64_t, 24>;
  const std::size_t stack = weft_test::k_sanitized ? 64 * 1024 : weft::k_min_stack_size;
  weft::runtime small{weft::config{.workers = workers(), .stack_size = stack}};
  const std::int64_t n = std::int64_t{1} << 20;
  const histogram got = small.run([n] {
    return weft::parallel_reduce(
        std::int64_t{0}, n, histogram{},
        [](std::int64_t i) {
          histogram h{};
          h[static_cast<std::size_t>(i % 24)] = 1;
          return h;
        },
        [](histogram a, const histogram& b) {
          for (std::size_t k = 0; k < a.size(); ++k) a[k] += b[k];
          return a;
        });
  });
  std::uint64_t total = 0;
  for (const std::uint64_t x : got) total += x;
  EXPECT_EQ(total, static_cast<std::uint64_t>(n));
}

// A large value type whose class forbids operator new (a type meant to live
// on the stack, or one with its own pool) reduces with the global heap.
struct no_class_new {
  std::array<std::int64_t, 64> sums{};
  static void* operator new(std::size_t) = delete;
  static void operator delete(void*) = delete;
};

TEST_P(ParallelReduceTest, LargePartialResultsUseTheGlobalHeap) {
  const no_class_new got = rt.run([] {
    return weft::parallel_reduce(
        0, 10'000, no_class_new{},
        [](int i) {
          no_class_new v;
          v.sums[static_cast<std::size_t>(i % 64)] = i;
          return v;
        },
        [](no_class_new a, const no_class_new& b) {
          for (std::size_t k = 0; k < a.sums.size(); ++k) a.sums[k] += b.sums[k];
          return a;
        });
  });
  std::int64_t want[64] = {};
  for (int i = 0; i < 10'000; ++i) want[i % 64] += i;
  for (std::size_t k = 0; k < 64; ++k) ASSERT_EQ(got.sums[k], want[k]) << "k = " << k;
}

namespace overloads {
// Two overloads of a user's function, one for callables parallel_reduce can
// use: overload resolution picks by the constraints.
struct not_a_map {};
template <class Map>
requires requires(Map& m) { weft::parallel_reduce(0, 10, 0L, m, plus_longs{}); }
long total(Map& m) { return weft::parallel_reduce(0, 10, 0L, m, plus_longs{}); }
template <class Map>
long total(Map&) {
  return -1;
}
}  // namespace overloads

TEST_P(ParallelReduceTest, CallablesItCannotCallAreNotViable) {
  auto map = [](int i) { return static_cast<long>(i); };
  overloads::not_a_map other;
  EXPECT_EQ(rt.run([&] { return overloads::total(map); }), 45);
  EXPECT_EQ(rt.run([&] { return overloads::total(other); }), -1);
}

// A large partial result still reaches the caller with map's exception, and
// move-only state in it is freed (the sanitizer builds check the leaks).
TEST_P(ParallelReduceTest, LargePartialResultsWithAThrowingMapLoseNothing) {
  struct big {
    std::array<char, 1024> pad{};
    std::vector<std::int64_t> items;
  };
  // The items of [0, 5000) in order; map throws at `bad` (none if negative).
  auto items_in_order = [&](std::int64_t bad) {
    return rt.run([bad] {
      return weft::parallel_reduce(
          std::int64_t{0}, std::int64_t{5000}, big{},
          [bad](std::int64_t i) {
            if (i == bad) throw item_error{i};
            big b;
            b.items.push_back(i);
            return b;
          },
          [](big a, big b) {
            a.items.insert(a.items.end(), b.items.begin(), b.items.end());
            return a;
          });
    });
  };
  for (const std::int64_t bad : {std::int64_t{0}, std::int64_t{777}, std::int64_t{4999}}) {
    SCOPED_TRACE(::testing::Message() << "bad = " << bad);
    EXPECT_THROW(items_in_order(bad), item_error);
  }
  const big all = items_in_order(-1);
  ASSERT_EQ(all.items.size(), 5000U);
  for (std::int64_t i = 0; i < 5000; ++i) ASSERT_EQ(all.items[static_cast<std::size_t>(i)], i);
}

WEFT_INSTANTIATE_WORKER_COUNTS(ParallelReduceTest);

}  // namespace
