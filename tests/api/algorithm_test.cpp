// SPDX-License-Identifier: MIT
// <weft/algorithm.hpp>: every algorithm against its std:: counterpart on random
// inputs of many sizes (0, 1, 2, odd, and 10^6), all-equal keys, sorted and
// reverse-sorted input, custom comparators and move-only items; the same bits
// where std is deterministic (stable_sort, scans of integers) and the same
// bits on every worker count for floating-point reductions and scans;
// exceptions from callables; calls from inside parallelize items; bad
// arguments.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <compare>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <iterator>
#include <limits>
#include <list>
#include <memory>
#include <numeric>
#include <random>
#include <ranges>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <weft/algorithm.hpp>
#include <weft/weft.hpp>

#include "sanitizers.hpp"
#include "seeded_rng.hpp"
#include "watchdog.hpp"

namespace {

// One worker (no stealing), two, and four (more than the development machine's
// cores).
class AlgorithmTest : public ::testing::TestWithParam<int> {
 protected:
  weft::runtime rt{weft::config{.workers = GetParam()}};
};

INSTANTIATE_TEST_SUITE_P(Workers, AlgorithmTest, ::testing::Values(1, 2, 4),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return "Workers" + std::to_string(info.param);
                         });

std::vector<std::size_t> sizes() {
  return {0, 1, 2, 3, 5, 17, 1001, 4097, 70'001, static_cast<std::size_t>(weft_test::scaled(1'000'000))};
}

// The input shapes: random over a wide or a narrow range of values, all equal,
// sorted, reverse sorted.
enum class shape { random, few_values, all_equal, sorted, reversed };
constexpr shape k_shapes[] = {shape::random, shape::few_values, shape::all_equal, shape::sorted, shape::reversed};

std::vector<std::int64_t> make_input(weft_test::seeded_rng& rng, std::size_t n, shape s) {
  std::vector<std::int64_t> v(n);
  for (auto& x : v) x = static_cast<std::int64_t>(rng() % (s == shape::few_values ? 8 : 1'000'000'007)) - 500;
  if (s == shape::all_equal) std::fill(v.begin(), v.end(), 42);
  if (s == shape::sorted) std::sort(v.begin(), v.end());
  if (s == shape::reversed) std::sort(v.begin(), v.end(), std::greater<>{});
  return v;
}

std::vector<double> make_doubles(weft_test::seeded_rng& rng, std::size_t n) {
  std::uniform_real_distribution<double> mantissa(-1.0, 1.0);
  std::uniform_int_distribution<int> exponent(-20, 20);
  std::vector<double> v(n);
  for (auto& x : v) x = std::ldexp(mantissa(rng), exponent(rng));
  return v;
}

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
}

// Large sizes only for the shapes where they add something: the parallel
// paths are already taken at 70 001 items.
bool worth(std::size_t n, shape s) { return n <= 70'001 || s == shape::random || s == shape::few_values; }

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

struct test_error : std::runtime_error {
  test_error() : std::runtime_error("test_error") {}
};

TEST_P(AlgorithmTest, ElementWiseMatchStd) {
  weft_test::seeded_rng rng;
  for (const std::size_t n : sizes()) {
    SCOPED_TRACE(::testing::Message() << "n = " << n);
    const auto in = make_input(rng, n, shape::random);
    const auto in2 = make_input(rng, n, shape::random);
    rt.run([&] {
      auto a = in;
      weft::for_each(a.begin(), a.end(), [](std::int64_t& x) { x = x * 3 + 1; });
      auto want = in;
      std::for_each(want.begin(), want.end(), [](std::int64_t& x) { x = x * 3 + 1; });
      EXPECT_EQ(a, want);

      a = in;
      const std::size_t half = n / 2;
      EXPECT_EQ(weft::for_each_n(a.begin(), half, [](std::int64_t& x) { x = -x; }),
                a.begin() + static_cast<std::ptrdiff_t>(half));
      want = in;
      std::for_each_n(want.begin(), half, [](std::int64_t& x) { x = -x; });
      EXPECT_EQ(a, want);

      std::vector<std::int64_t> out(n);
      EXPECT_EQ(weft::transform(in.begin(), in.end(), out.begin(), [](std::int64_t x) { return x ^ 0x5555; }),
                out.end());
      std::transform(in.begin(), in.end(), want.begin(), [](std::int64_t x) { return x ^ 0x5555; });
      EXPECT_EQ(out, want);

      EXPECT_EQ(weft::transform(in.begin(), in.end(), in2.begin(), out.begin(), std::minus<>{}), out.end());
      std::transform(in.begin(), in.end(), in2.begin(), want.begin(), std::minus<>{});
      EXPECT_EQ(out, want);

      weft::fill(out.begin(), out.end(), std::int64_t{7});
      EXPECT_EQ(out, std::vector<std::int64_t>(n, 7));

      EXPECT_EQ(weft::copy(in.begin(), in.end(), out.begin()), out.end());
      EXPECT_EQ(out, in);

      std::atomic<std::int64_t> calls{0};
      weft::generate(out.begin(), out.end(), [&] { return calls.fetch_add(1, std::memory_order_relaxed); });
      EXPECT_EQ(calls.load(), static_cast<std::int64_t>(n));
      std::sort(out.begin(), out.end());
      std::vector<std::int64_t> iota(n);
      std::iota(iota.begin(), iota.end(), std::int64_t{0});
      EXPECT_EQ(out, iota);
    });
  }
}

// A count of a class that converts to an integer.
struct count_of {
  long n;
  operator long() const { return n; }  // NOLINT(google-explicit-constructor): what std::for_each_n takes
};

// std::for_each_n takes any count convertible to an integer; for_each_n took
// only integral types (a count of class type did not compile).
TEST_P(AlgorithmTest, ForEachNTakesACountConvertibleToAnInteger) {
  for (const long n : {0L, 1L, 7L, 1000L, 100'000L}) {
    SCOPED_TRACE(::testing::Message() << "n = " << n);
    std::vector<int> got(static_cast<std::size_t>(n) + 3, 0);
    std::vector<int> want = got;
    rt.run([&] { EXPECT_EQ(weft::for_each_n(got.begin(), count_of{n}, [](int& x) { ++x; }), got.begin() + n); });
    std::for_each_n(want.begin(), count_of{n}, [](int& x) { ++x; });
    EXPECT_EQ(got, want);
    // A floating-point count is truncated toward zero, as std's is.
    std::fill(got.begin(), got.end(), 0);
    std::fill(want.begin(), want.end(), 0);
    rt.run([&] {
      EXPECT_EQ(weft::for_each_n(got.begin(), static_cast<double>(n) + 0.75, [](int& x) { ++x; }), got.begin() + n);
    });
    std::for_each_n(want.begin(), static_cast<double>(n) + 0.75, [](int& x) { ++x; });
    EXPECT_EQ(got, want);
  }
  std::vector<int> v(10, 0);
  EXPECT_THROW(weft::for_each_n(v.begin(), count_of{-1}, [](int&) {}), std::invalid_argument);
  EXPECT_THROW(weft::for_each_n(v.begin(), -1.0, [](int&) {}), std::invalid_argument);
  EXPECT_THROW(weft::for_each_n(v.begin(), std::nan(""), [](int&) {}), std::invalid_argument);
  EXPECT_THROW(weft::for_each_n(v.begin(), 1e300, [](int&) {}), std::invalid_argument);
  EXPECT_THROW(weft::for_each_n(v.begin(), 0x1p63, [](int&) {}), std::invalid_argument);
  EXPECT_THROW(weft::for_each_n(v.begin(), std::numeric_limits<float>::infinity(), [](int&) {}), std::invalid_argument);
  // Between -1 and 0 it truncates to 0: nothing is called, as with std.
  EXPECT_EQ(weft::for_each_n(v.begin(), -0.5, [](int& x) { ++x; }), v.begin());
  EXPECT_EQ(v, std::vector<int>(10, 0));
}

// A count of a class that converts through a double.
struct real_count {
  double x;
  operator double() const { return x; }  // NOLINT(google-explicit-constructor): what std::for_each_n takes
};

// Counts that are not integral under -std=c++20 and hold values the
// iterator's difference type does not: an __int128 was narrowed without a
// check (2^64 + 3 ran 3 items, -2^64 + 4 ran 4), and a class that converts
// through a double skipped the check of a double (1e30 and NaN: an undefined
// conversion, then a message about a negative n).
TEST_P(AlgorithmTest, ForEachNChecksEveryCountBeforeNarrowingIt) {
  __extension__ using i128 = __int128;
  __extension__ using u128 = unsigned __int128;
  std::vector<int> v(10, 0);
  const auto none = [](int&) { ADD_FAILURE() << "an item ran for a count that should have been refused"; };
  const auto expect_refused = [&](auto count, const char* what) {
    try {
      weft::for_each_n(v.begin(), count, none);
      ADD_FAILURE() << "no exception for n " << what;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  rt.run([&] {
    expect_refused((i128{1} << 64) + 3, "exceed");
    expect_refused(-(i128{1} << 64) + 4, "negative");
    expect_refused((u128{1} << 64) + 2, "exceed");
    expect_refused(i128{-1}, "negative");
    expect_refused(real_count{1e30}, "exceed");
    expect_refused(real_count{std::nan("")}, "a number");
    expect_refused(real_count{-2.0}, "negative");
  });
  // Within range they run exactly their items.
  rt.run([&] {
    EXPECT_EQ(weft::for_each_n(v.begin(), i128{7}, [](int& x) { ++x; }), v.begin() + 7);
    EXPECT_EQ(weft::for_each_n(v.begin(), u128{3}, [](int& x) { ++x; }), v.begin() + 3);
    EXPECT_EQ(weft::for_each_n(v.begin(), real_count{2.5}, [](int& x) { ++x; }), v.begin() + 2);
  });
  EXPECT_EQ(v, (std::vector<int>{3, 3, 2, 1, 1, 1, 1, 0, 0, 0}));
}

// Over std::views::iota of a 64-bit type, whose difference type is __int128
// under strict -std=c++20 (not std::integral there), a count that is not an
// integer type called for_each_n again with the converted count, which chose
// the same overload: it recursed until the stack overflowed (or for ever).
TEST_P(AlgorithmTest, ForEachNOfANonIntegerCountOverAWideIota) {
  __extension__ using i128 = __int128;
  const auto r = std::views::iota(std::int64_t{0}, std::int64_t{100});
  for (const int n : {0, 1, 5, 100}) {
    SCOPED_TRACE(::testing::Message() << "n = " << n);
    std::atomic<std::int64_t> sum{0};
    const auto add = [&](std::int64_t x) { sum.fetch_add(x + 1, std::memory_order_relaxed); };
    const std::int64_t want = static_cast<std::int64_t>(n) * (n + 1) / 2;
    rt.run([&] {
      EXPECT_EQ(weft::for_each_n(r.begin(), static_cast<double>(n), add), r.begin() + n);
      EXPECT_EQ(weft::for_each_n(r.begin(), count_of{n}, add), r.begin() + n);
      EXPECT_EQ(weft::for_each_n(r.begin(), static_cast<i128>(n), add), r.begin() + n);
    });
    EXPECT_EQ(sum.load(), 3 * want);
  }
  rt.run([&] {
    EXPECT_THROW(weft::for_each_n(r.begin(), count_of{-1}, [](std::int64_t) {}), std::invalid_argument);
    EXPECT_THROW(weft::for_each_n(r.begin(), -1.0, [](std::int64_t) {}), std::invalid_argument);
  });
}

TEST_P(AlgorithmTest, ReductionsMatchStd) {
  weft_test::seeded_rng rng;
  for (const std::size_t n : sizes()) {
    SCOPED_TRACE(::testing::Message() << "n = " << n);
    const auto in = make_input(rng, n, shape::random);
    const auto in2 = make_input(rng, n, shape::few_values);
    rt.run([&] {
      EXPECT_EQ(weft::reduce(in.begin(), in.end()), std::reduce(in.begin(), in.end()));
      EXPECT_EQ(weft::reduce(in.begin(), in.end(), std::int64_t{5}),
                std::reduce(in.begin(), in.end(), std::int64_t{5}));
      EXPECT_EQ(weft::reduce(in, std::int64_t{1}, std::bit_xor<>{}),
                std::reduce(in.begin(), in.end(), std::int64_t{1}, std::bit_xor<>{}));
      EXPECT_EQ(weft::transform_reduce(in.begin(), in.end(), in2.begin(), std::int64_t{3}),
                std::transform_reduce(in.begin(), in.end(), in2.begin(), std::int64_t{3}));
      EXPECT_EQ(weft::transform_reduce(in, std::int64_t{0}, std::plus<>{}, [](std::int64_t x) { return x % 7; }),
                std::transform_reduce(in.begin(), in.end(), std::int64_t{0}, std::plus<>{},
                                      [](std::int64_t x) { return x % 7; }));
      auto odd = [](std::int64_t x) { return x % 2 != 0; };
      EXPECT_EQ(weft::count_if(in.begin(), in.end(), odd), std::count_if(in.begin(), in.end(), odd));
      EXPECT_EQ(weft::count_if(in2, [](std::int64_t x) { return x == 0; }), std::count(in2.begin(), in2.end(), 0));
      // Ties: the first smallest, the first largest, the last largest.
      EXPECT_EQ(weft::min_element(in2.begin(), in2.end()), std::min_element(in2.begin(), in2.end()));
      EXPECT_EQ(weft::max_element(in2.begin(), in2.end()), std::max_element(in2.begin(), in2.end()));
      EXPECT_EQ(weft::minmax_element(in2.begin(), in2.end()), std::minmax_element(in2.begin(), in2.end()));
      EXPECT_EQ(weft::min_element(in, std::greater<>{}), std::min_element(in.begin(), in.end(), std::greater<>{}));
      EXPECT_EQ(weft::max_element(in2, std::greater<>{}), std::max_element(in2.begin(), in2.end(), std::greater<>{}));
      EXPECT_EQ(weft::minmax_element(in, std::greater<>{}),
                std::minmax_element(in.begin(), in.end(), std::greater<>{}));
    });
  }
}

// Floating-point reductions and scans give the same bits on 1, 2, 3 and this
// runtime's workers.
TEST_P(AlgorithmTest, FloatingPointIsDeterministic) {
  weft_test::seeded_rng rng;
  weft::runtime one{weft::config{.workers = 1}};
  weft::runtime three{weft::config{.workers = 3}};
  for (const std::size_t n : sizes()) {
    SCOPED_TRACE(::testing::Message() << "n = " << n);
    const auto in = make_doubles(rng, n);
    auto run_all = [&] {
      std::vector<double> inc(n);
      std::vector<double> exc(n);
      weft::inclusive_scan(in.begin(), in.end(), inc.begin());
      weft::exclusive_scan(in.begin(), in.end(), exc.begin(), 0.5);
      const double sum = weft::reduce(in.begin(), in.end(), 0.0);
      return std::make_tuple(sum, inc, exc);
    };
    const auto ref = one.run(run_all);
    for (weft::runtime* r : {&rt, &three}) {
      const auto got = r->run(run_all);
      EXPECT_TRUE(same_bits(std::get<0>(got), std::get<0>(ref)));
      EXPECT_TRUE(same_bits(std::get<1>(got), std::get<1>(ref)));
      EXPECT_TRUE(same_bits(std::get<2>(got), std::get<2>(ref)));
    }
    // Close to the serial sum.
    const double serial = std::accumulate(in.begin(), in.end(), 0.0);
    EXPECT_NEAR(std::get<0>(ref), serial, 1e-6 * (1.0 + std::abs(serial)));
  }
}

// A scan on more than one worker writes the leading blocks in one pass while
// their carry is known and the others in two; where that boundary falls
// depends on timing. Items that stall (at the start, at the end, or spread at
// random) move it; the bits must not move with it.
struct slow_item {
  double value;
  bool slow;
};

TEST_P(AlgorithmTest, ScansAreDeterministicWhereverTheOnePassEnds) {
  weft_test::seeded_rng rng;
  weft::runtime one{weft::config{.workers = 1}};
  const std::size_t n = 40 * 16384 + 123;
  const auto values = make_doubles(rng, n);
  auto stall = [](const slow_item& it) {
    if (it.slow) {
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(300);
      while (std::chrono::steady_clock::now() < until) {
      }
    }
    return it.value;
  };
  std::vector<slow_item> items(n);
  for (std::size_t i = 0; i < n; ++i) items[i] = {values[i], false};
  auto scan_all = [&] {
    std::vector<double> inc(n);
    std::vector<double> exc(n);
    weft::transform_inclusive_scan(items.begin(), items.end(), inc.begin(), std::plus<>{}, stall);
    weft::transform_exclusive_scan(items.begin(), items.end(), exc.begin(), 0.25, std::plus<>{}, stall);
    return std::make_pair(inc, exc);
  };
  const auto ref = one.run(scan_all);
  for (int round = 0; round < 6; ++round) {
    SCOPED_TRACE(::testing::Message() << "round " << round);
    for (auto& it : items) it.slow = false;
    if (round % 3 == 0) {
      for (std::size_t i = 0; i < 40; ++i) items[i * 7].slow = true;  // the first block stalls
    } else if (round % 3 == 1) {
      for (std::size_t i = 0; i < 40; ++i) items[n - 1 - i * 7].slow = true;  // the last block stalls
    } else {
      for (std::size_t i = 0; i < 40; ++i) items[rng() % n].slow = true;
    }
    const auto got = rt.run(scan_all);
    EXPECT_TRUE(same_bits(got.first, ref.first));
    EXPECT_TRUE(same_bits(got.second, ref.second));
  }
}

// An associative, non-commutative operation on integers: composition of affine
// maps x -> a x + b (wrapping arithmetic), exact in any grouping.
struct affine {
  std::uint64_t a;
  std::uint64_t b;
  bool operator==(const affine&) const = default;
};
struct compose {
  affine operator()(const affine& f, const affine& g) const { return {f.a * g.a, f.b * g.a + g.b}; }
};

TEST_P(AlgorithmTest, ScansMatchStdBitForBit) {
  weft_test::seeded_rng rng;
  for (const std::size_t n : sizes()) {
    SCOPED_TRACE(::testing::Message() << "n = " << n);
    const auto in = make_input(rng, n, shape::random);
    std::vector<affine> maps(n);
    for (auto& m : maps) m = {rng() | 1, rng()};
    rt.run([&] {
      std::vector<std::int64_t> got(n);
      std::vector<std::int64_t> want(n);
      EXPECT_EQ(weft::inclusive_scan(in.begin(), in.end(), got.begin()), got.end());
      std::inclusive_scan(in.begin(), in.end(), want.begin());
      EXPECT_EQ(got, want);
      weft::inclusive_scan(in.begin(), in.end(), got.begin(), std::bit_xor<>{}, std::int64_t{9});
      std::inclusive_scan(in.begin(), in.end(), want.begin(), std::bit_xor<>{}, std::int64_t{9});
      EXPECT_EQ(got, want);
      EXPECT_EQ(weft::exclusive_scan(in, got.begin(), std::int64_t{-4}), got.end());
      std::exclusive_scan(in.begin(), in.end(), want.begin(), std::int64_t{-4});
      EXPECT_EQ(got, want);
      auto sq = [](std::int64_t x) { return (x % 1000) * (x % 1000); };
      weft::transform_inclusive_scan(in.begin(), in.end(), got.begin(), std::plus<>{}, sq);
      std::transform_inclusive_scan(in.begin(), in.end(), want.begin(), std::plus<>{}, sq);
      EXPECT_EQ(got, want);
      weft::transform_inclusive_scan(in, got.begin(), std::plus<>{}, sq, std::int64_t{11});
      std::transform_inclusive_scan(in.begin(), in.end(), want.begin(), std::plus<>{}, sq, std::int64_t{11});
      EXPECT_EQ(got, want);
      weft::transform_exclusive_scan(in.begin(), in.end(), got.begin(), std::int64_t{2}, std::plus<>{}, sq);
      std::transform_exclusive_scan(in.begin(), in.end(), want.begin(), std::int64_t{2}, std::plus<>{}, sq);
      EXPECT_EQ(got, want);

      // In place.
      got = in;
      weft::inclusive_scan(got.begin(), got.end(), got.begin());
      std::inclusive_scan(in.begin(), in.end(), want.begin());
      EXPECT_EQ(got, want);
      got = in;
      weft::exclusive_scan(got.begin(), got.end(), got.begin(), std::int64_t{1});
      std::exclusive_scan(in.begin(), in.end(), want.begin(), std::int64_t{1});
      EXPECT_EQ(got, want);

      // Order: a non-commutative operation.
      std::vector<affine> mg(n, affine{0, 0});
      std::vector<affine> mw(n, affine{0, 0});
      weft::inclusive_scan(maps.begin(), maps.end(), mg.begin(), compose{});
      std::inclusive_scan(maps.begin(), maps.end(), mw.begin(), compose{});
      EXPECT_TRUE(mg == mw);
      weft::exclusive_scan(maps.begin(), maps.end(), mg.begin(), affine{3, 5}, compose{});
      std::exclusive_scan(maps.begin(), maps.end(), mw.begin(), affine{3, 5}, compose{});
      EXPECT_TRUE(mg == mw);
      EXPECT_TRUE(weft::reduce(maps, affine{1, 0}, compose{}) ==
                  std::accumulate(maps.begin(), maps.end(), affine{1, 0}, compose{}));
    });
  }
}

// A scan whose operation returns a reference to one of its arguments (a
// running maximum written as std::max is): the carry from block to block was
// emplaced from a reference to itself after its destruction, so past one
// block of 16384 items the results went wrong (7 232 of 40 000 strings) and
// AddressSanitizer reported a read of freed memory.
TEST_P(AlgorithmTest, ScansWhoseOperationReturnsAReference) {
  const std::size_t n = 40'000;
  std::vector<std::string> in(n);
  for (std::size_t i = 0; i < n; ++i) in[i] = std::string(40, 'a') + std::to_string(n - i);
  in[0] = std::string(40, 'z');
  auto max_ref = [](const std::string& a, const std::string& b) -> const std::string& { return a < b ? b : a; };
  rt.run([&] {
    std::vector<std::string> got(n);
    std::vector<std::string> want(n);
    weft::inclusive_scan(in.begin(), in.end(), got.begin(), max_ref);
    std::inclusive_scan(in.begin(), in.end(), want.begin(), max_ref);
    EXPECT_TRUE(got == want);
    weft::exclusive_scan(in.begin(), in.end(), got.begin(), std::string(), max_ref);
    std::exclusive_scan(in.begin(), in.end(), want.begin(), std::string(), max_ref);
    EXPECT_TRUE(got == want);
    auto same = [](const std::string& x) -> const std::string& { return x; };
    weft::transform_inclusive_scan(in.begin(), in.end(), got.begin(), max_ref, same);
    std::transform_inclusive_scan(in.begin(), in.end(), want.begin(), max_ref, same);
    EXPECT_TRUE(got == want);
    weft::transform_exclusive_scan(in.begin(), in.end(), got.begin(), std::string(), max_ref, same);
    std::transform_exclusive_scan(in.begin(), in.end(), want.begin(), std::string(), max_ref, same);
    EXPECT_TRUE(got == want);
  });
}

// Past 1024 blocks of the smallest size (16384 items) the blocks of
// copy_if's passes hold ceil(n / 1024) items, here not a multiple of the 64
// answers a word of its bit mask holds: every block keeps words of its own.
TEST_P(AlgorithmTest, PackingWithBlocksOfAnySize) {
  weft_test::seeded_rng rng;
  const std::size_t n = std::size_t{1024} * 16384 + 4097;
  std::vector<std::uint8_t> in(n);
  for (auto& x : in) x = static_cast<std::uint8_t>(rng());
  auto keep = [](std::uint8_t x) { return (x & 1) != 0; };
  std::vector<std::uint8_t> want;
  want.reserve(n);
  std::copy_if(in.begin(), in.end(), std::back_inserter(want), keep);
  std::vector<std::uint8_t> got(n, 0);
  const auto end = rt.run([&] { return weft::copy_if(in.begin(), in.end(), got.begin(), keep); });
  ASSERT_EQ(static_cast<std::size_t>(end - got.begin()), want.size());
  got.resize(want.size());
  EXPECT_TRUE(got == want);
}

TEST_P(AlgorithmTest, PackingMatchesStd) {
  weft_test::seeded_rng rng;
  for (const std::size_t n : sizes()) {
    for (const shape s : k_shapes) {
      if (!worth(n, s)) continue;
      SCOPED_TRACE(::testing::Message() << "n = " << n << ", shape " << static_cast<int>(s));
      const auto in = make_input(rng, n, s);
      rt.run([&] {
        auto keep = [](std::int64_t x) { return (x & 2) == 0; };
        std::vector<std::int64_t> got(n, -1);
        std::vector<std::int64_t> want(n, -1);
        const auto ge = weft::copy_if(in.begin(), in.end(), got.begin(), keep);
        const auto we = std::copy_if(in.begin(), in.end(), want.begin(), keep);
        EXPECT_EQ(ge - got.begin(), we - want.begin());
        EXPECT_EQ(got, want);

        got = in;
        want = in;
        auto gr = weft::remove_if(got.begin(), got.end(), keep);
        auto wr = std::remove_if(want.begin(), want.end(), keep);
        ASSERT_EQ(gr - got.begin(), wr - want.begin());
        EXPECT_TRUE(std::equal(got.begin(), gr, want.begin()));

        got = in;
        want = in;
        gr = weft::unique(got);
        wr = std::unique(want.begin(), want.end());
        ASSERT_EQ(gr - got.begin(), wr - want.begin());
        EXPECT_TRUE(std::equal(got.begin(), gr, want.begin()));

        // An equivalence coarser than equality.
        got = in;
        want = in;
        auto same_tens = [](std::int64_t a, std::int64_t b) { return a / 10 == b / 10; };
        gr = weft::unique(got.begin(), got.end(), same_tens);
        wr = std::unique(want.begin(), want.end(), same_tens);
        ASSERT_EQ(gr - got.begin(), wr - want.begin());
        EXPECT_TRUE(std::equal(got.begin(), gr, want.begin()));
      });
    }
  }
}

TEST_P(AlgorithmTest, PackingOfStrings) {
  weft_test::seeded_rng rng;
  const std::size_t n = static_cast<std::size_t>(weft_test::scaled(200'001));
  std::vector<std::string> in(n);
  for (auto& s : in) s = std::string(1 + rng() % 20, static_cast<char>('a' + rng() % 3));
  rt.run([&] {
    auto keep = [](const std::string& s) { return s.size() % 3 == 0; };
    auto got = in;
    auto want = in;
    auto gr = weft::remove_if(got, keep);
    auto wr = std::remove_if(want.begin(), want.end(), keep);
    ASSERT_EQ(gr - got.begin(), wr - want.begin());
    EXPECT_TRUE(std::equal(got.begin(), gr, want.begin()));
    got = in;
    want = in;
    gr = weft::unique(got.begin(), got.end());
    wr = std::unique(want.begin(), want.end());
    ASSERT_EQ(gr - got.begin(), wr - want.begin());
    EXPECT_TRUE(std::equal(got.begin(), gr, want.begin()));
  });
}

TEST_P(AlgorithmTest, SortsMatchStd) {
  weft_test::seeded_rng rng;
  for (const std::size_t n : sizes()) {
    for (const shape s : k_shapes) {
      if (!worth(n, s)) continue;
      SCOPED_TRACE(::testing::Message() << "n = " << n << ", shape " << static_cast<int>(s));
      const auto in = make_input(rng, n, s);
      rt.run([&] {
        auto want = in;
        std::sort(want.begin(), want.end());
        auto got = in;
        weft::sort(got.begin(), got.end());
        EXPECT_EQ(got, want);
        got = in;
        weft::sort(got, std::greater<>{});
        std::reverse(want.begin(), want.end());
        EXPECT_EQ(got, want);

        // Stable: pairs ordered by key only keep their input order among equal
        // keys; the same bits as std::stable_sort.
        std::vector<std::pair<std::int64_t, std::size_t>> pairs(n);
        for (std::size_t i = 0; i < n; ++i) pairs[i] = {in[i] % 100, i};
        auto by_key = [](const auto& a, const auto& b) { return a.first < b.first; };
        auto sg = pairs;
        auto sw = pairs;
        weft::stable_sort(sg.begin(), sg.end(), by_key);
        std::stable_sort(sw.begin(), sw.end(), by_key);
        EXPECT_EQ(sg, sw);

        // Unstable sort by key only: a permutation, ordered by key.
        weft::sort(sg, by_key);
        EXPECT_TRUE(std::is_sorted(sg.begin(), sg.end(), by_key));
        std::sort(sg.begin(), sg.end());
        std::sort(sw.begin(), sw.end());
        EXPECT_EQ(sg, sw);
      });
    }
  }
}

TEST_P(AlgorithmTest, SortsStringsAndDoubles) {
  weft_test::seeded_rng rng;
  const std::size_t n = static_cast<std::size_t>(weft_test::scaled(300'007));
  std::vector<std::string> strings(n);
  for (auto& s : strings) s = std::to_string(rng() % 100'000) + std::string(rng() % 24, 'x');
  const auto doubles = make_doubles(rng, n);
  rt.run([&] {
    auto got = strings;
    auto want = strings;
    weft::sort(got);
    std::sort(want.begin(), want.end());
    EXPECT_EQ(got, want);
    got = strings;
    auto by_length = [](const std::string& a, const std::string& b) { return a.size() < b.size(); };
    weft::stable_sort(got, by_length);
    want = strings;
    std::stable_sort(want.begin(), want.end(), by_length);
    EXPECT_EQ(got, want);
    auto dg = doubles;
    auto dw = doubles;
    weft::sort(dg.begin(), dg.end());
    std::sort(dw.begin(), dw.end());
    EXPECT_TRUE(same_bits(dg, dw));
  });
}

TEST_P(AlgorithmTest, MergeMatchesStd) {
  weft_test::seeded_rng rng;
  for (const std::size_t n : sizes()) {
    SCOPED_TRACE(::testing::Message() << "n = " << n);
    using item = std::pair<std::int64_t, int>;
    std::vector<item> a(n);
    std::vector<item> b(n / 3 + 1);
    for (auto& x : a) x = {static_cast<std::int64_t>(rng() % 50), 1};
    for (auto& x : b) x = {static_cast<std::int64_t>(rng() % 50), 2};
    auto by_key = [](const item& x, const item& y) { return x.first < y.first; };
    std::sort(a.begin(), a.end(), by_key);
    std::sort(b.begin(), b.end(), by_key);
    rt.run([&] {
      std::vector<item> got(a.size() + b.size());
      std::vector<item> want(got.size());
      EXPECT_EQ(weft::merge(a.begin(), a.end(), b.begin(), b.end(), got.begin(), by_key), got.end());
      std::merge(a.begin(), a.end(), b.begin(), b.end(), want.begin(), by_key);
      EXPECT_EQ(got, want);
      // The longer range second.
      weft::merge(b, a, got.begin(), by_key);
      std::merge(b.begin(), b.end(), a.begin(), a.end(), want.begin(), by_key);
      EXPECT_EQ(got, want);
    });
  }
}

// Two arrays sorted together through a random-access iterator whose
// operator* returns a proxy (a value, as std::vector<bool>'s does), with
// iter_move and iter_swap; and merges of views whose items are values.
// std::sort, std::stable_sort and std::merge take them; weft's did not
// compile (its serial merge bound each item to an lvalue reference).
struct key_value {
  std::int64_t key;
  std::int64_t value;
};
struct zip_ref {
  std::int64_t* key;
  std::int64_t* value;
  operator key_value() const { return {*key, *value}; }  // NOLINT(google-explicit-constructor)
  const zip_ref& operator=(const key_value& x) const {
    *key = x.key;
    *value = x.value;
    return *this;
  }
  const zip_ref& operator=(const zip_ref& o) const {  // NOLINT(cppcoreguidelines-c-copy-assignment-signature)
    *key = *o.key;
    *value = *o.value;
    return *this;
  }
  zip_ref(std::int64_t* k, std::int64_t* v) : key(k), value(v) {}
  zip_ref(const zip_ref&) = default;
  friend void swap(zip_ref a, zip_ref b) {
    std::swap(*a.key, *b.key);
    std::swap(*a.value, *b.value);
  }
};
struct zip_iterator {
  using value_type = key_value;
  using difference_type = std::ptrdiff_t;
  using reference = zip_ref;
  using iterator_category = std::random_access_iterator_tag;
  std::int64_t* key = nullptr;
  std::int64_t* value = nullptr;
  zip_ref operator*() const { return {key, value}; }
  zip_ref operator[](difference_type d) const { return {key + d, value + d}; }
  zip_iterator& operator++() { return *this += 1; }
  zip_iterator operator++(int) {
    zip_iterator t = *this;
    *this += 1;
    return t;
  }
  zip_iterator& operator--() { return *this -= 1; }
  zip_iterator operator--(int) {
    zip_iterator t = *this;
    *this -= 1;
    return t;
  }
  zip_iterator& operator+=(difference_type d) {
    key += d;
    value += d;
    return *this;
  }
  zip_iterator& operator-=(difference_type d) { return *this += -d; }
  friend zip_iterator operator+(zip_iterator a, difference_type d) { return a += d; }
  friend zip_iterator operator+(difference_type d, zip_iterator a) { return a += d; }
  friend zip_iterator operator-(zip_iterator a, difference_type d) { return a -= d; }
  friend difference_type operator-(const zip_iterator& a, const zip_iterator& b) { return a.key - b.key; }
  friend bool operator==(const zip_iterator& a, const zip_iterator& b) { return a.key == b.key; }
  friend auto operator<=>(const zip_iterator& a, const zip_iterator& b) { return a.key <=> b.key; }
  friend key_value iter_move(const zip_iterator& it) { return *it; }
  friend void iter_swap(const zip_iterator& a, const zip_iterator& b) { swap(*a, *b); }
};
static_assert(std::random_access_iterator<zip_iterator>);

TEST_P(AlgorithmTest, SortsAndMergesThroughIteratorsThatYieldValues) {
  weft_test::seeded_rng rng;
  for (const std::size_t n : sizes()) {
    SCOPED_TRACE(::testing::Message() << "n = " << n);
    std::vector<std::int64_t> keys(n);
    std::vector<std::int64_t> values(n);
    for (std::size_t i = 0; i < n; ++i) {
      keys[i] = static_cast<std::int64_t>(rng() % 1000);
      values[i] = static_cast<std::int64_t>(i);
    }
    auto by_key = [](const key_value& a, const key_value& b) { return a.key < b.key; };
    rt.run([&] {
      for (const bool stable : {false, true}) {
        std::vector<std::int64_t> k = keys;
        std::vector<std::int64_t> v = values;
        const zip_iterator first{k.data(), v.data()};
        const zip_iterator last{k.data() + n, v.data() + n};
        if (stable) {
          weft::stable_sort(first, last, by_key);
        } else {
          weft::sort(first, last, by_key);
        }
        std::vector<std::pair<std::int64_t, std::int64_t>> got(n);
        std::vector<std::pair<std::int64_t, std::int64_t>> want(n);
        for (std::size_t i = 0; i < n; ++i) {
          got[i] = {k[i], v[i]};
          want[i] = {keys[i], values[i]};
        }
        if (stable) {
          std::stable_sort(want.begin(), want.end(), [](auto& a, auto& b) { return a.first < b.first; });
          EXPECT_EQ(got, want) << "stable_sort";
        } else {
          std::sort(want.begin(), want.end());
          std::sort(got.begin(), got.end());  // the same pairs: none lost or duplicated
          EXPECT_EQ(got, want) << "sort";
          EXPECT_TRUE(std::is_sorted(k.begin(), k.end()));
        }
      }
      std::vector<std::int64_t> a = keys;
      std::vector<std::int64_t> b(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(n / 3));
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      auto as_pair = [](std::int64_t x) { return std::pair<std::int64_t, std::int64_t>{x, -x}; };
      auto ra = a | std::views::transform(as_pair);
      auto rb = b | std::views::transform(as_pair);
      std::vector<std::pair<std::int64_t, std::int64_t>> got(a.size() + b.size());
      std::vector<std::pair<std::int64_t, std::int64_t>> want(got.size());
      weft::merge(ra, rb, got.begin());
      std::merge(ra.begin(), ra.end(), rb.begin(), rb.end(), want.begin());
      EXPECT_EQ(got, want) << "merge";
    });
  }
}

TEST_P(AlgorithmTest, NthElementSelects) {
  weft_test::seeded_rng rng;
  for (const std::size_t n : sizes()) {
    if (n == 0) continue;
    for (const shape s : k_shapes) {
      if (!worth(n, s)) continue;
      SCOPED_TRACE(::testing::Message() << "n = " << n << ", shape " << static_cast<int>(s));
      const auto in = make_input(rng, n, s);
      auto sorted = in;
      std::sort(sorted.begin(), sorted.end());
      for (const std::size_t k : {std::size_t{0}, n / 3, n / 2, n - 1}) {
        auto got = in;
        rt.run([&] { weft::nth_element(got.begin(), got.begin() + static_cast<std::ptrdiff_t>(k), got.end()); });
        ASSERT_EQ(got[k], sorted[k]) << "k = " << k;
        for (std::size_t i = 0; i < k; ++i) ASSERT_LE(got[i], got[k]);
        for (std::size_t i = k + 1; i < n; ++i) ASSERT_GE(got[i], got[k]);
        auto check = got;
        std::sort(check.begin(), check.end());
        ASSERT_EQ(check, sorted);
      }
    }
  }
}

TEST_P(AlgorithmTest, SearchesMatchStd) {
  weft_test::seeded_rng rng;
  for (const std::size_t n : sizes()) {
    SCOPED_TRACE(::testing::Message() << "n = " << n);
    auto in = make_input(rng, n, shape::random);
    rt.run([&] {
      for (const std::int64_t target : {std::int64_t{-1}, n > 0 ? in[n / 2] : 0, n > 0 ? in[n - 1] : 0}) {
        auto is = [target](std::int64_t x) { return x == target; };
        EXPECT_EQ(weft::find_if(in.begin(), in.end(), is), std::find_if(in.begin(), in.end(), is));
        EXPECT_EQ(weft::find_if(in, is), std::find_if(in.begin(), in.end(), is));
        EXPECT_EQ(weft::any_of(in.begin(), in.end(), is), std::any_of(in.begin(), in.end(), is));
        EXPECT_EQ(weft::none_of(in, is), std::none_of(in.begin(), in.end(), is));
      }
      auto small = [](std::int64_t x) { return x < 1'000'000'000; };
      EXPECT_EQ(weft::all_of(in, small), std::all_of(in.begin(), in.end(), small));
      auto positive = [](std::int64_t x) { return x > 0; };
      EXPECT_EQ(weft::all_of(in.begin(), in.end(), positive), std::all_of(in.begin(), in.end(), positive));
    });
  }
}

// An exception of the predicate reaches the caller of a search exactly when
// std's would: when no item before the one that threw is a hit. A block
// searched in parallel after the first hit threw (find_if rethrew where
// std::find_if returns), and any_of returned at any hit, also one after an
// item that throws (where std::any_of throws).
TEST_P(AlgorithmTest, SearchesThrowWhereStdThrows) {
  const std::size_t n = 400'000;
  std::vector<std::int64_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  struct search_case {
    std::int64_t hit;     // the one item that is a hit
    std::int64_t throws;  // every item from here on throws
    std::int64_t only;    // or only this one (when >= 0)
  };
  for (const search_case c : {search_case{50'000, 100'000, -1}, search_case{140'000, -1, 90'000},
                              search_case{300'000, 5, -1}, search_case{5, -1, 6}}) {
    SCOPED_TRACE(::testing::Message() << "hit " << c.hit << ", throws from " << c.throws << ", at " << c.only);
    auto pred = [c](std::int64_t x) {
      volatile double d = 0;  // long enough for blocks after the hit to start
      for (int i = 0; i < 20; ++i) d = d + std::sqrt(static_cast<double>(x + i));
      if ((c.throws >= 0 && x >= c.throws) || x == c.only) throw test_error();
      return x == c.hit;
    };
    auto fails = [&](std::int64_t x) { return !pred(x); };
    const bool std_throws = (c.throws >= 0 && c.throws < c.hit) || (c.only >= 0 && c.only < c.hit);
    for (int round = 0; round < 3; ++round) {
      rt.run([&] {
        if (std_throws) {
          EXPECT_THROW(weft::find_if(v.begin(), v.end(), pred), test_error);
          EXPECT_THROW(weft::any_of(v, pred), test_error);
          EXPECT_THROW(weft::none_of(v, pred), test_error);
          EXPECT_THROW(weft::all_of(v, fails), test_error);
        } else {
          EXPECT_EQ(weft::find_if(v.begin(), v.end(), pred) - v.begin(), c.hit);
          EXPECT_TRUE(weft::any_of(v, pred));
          EXPECT_FALSE(weft::none_of(v, pred));
          EXPECT_FALSE(weft::all_of(v, fails));
        }
      });
    }
  }
}

// A search whose answer is at the start skips the rest: far fewer predicate
// calls than items.
TEST_P(AlgorithmTest, SearchesStopEarly) {
  const std::size_t n = 4'000'000;
  std::vector<int> v(n, 0);
  v[10] = 1;
  std::atomic<std::size_t> calls{0};
  auto is_one = [&](int x) {
    calls.fetch_add(1, std::memory_order_relaxed);
    return x == 1;
  };
  const auto it = rt.run([&] { return weft::find_if(v.begin(), v.end(), is_one); });
  EXPECT_EQ(it - v.begin(), 10);
  EXPECT_LT(calls.load(), n / 2);
  calls = 0;
  EXPECT_TRUE(rt.run([&] { return weft::any_of(v, is_one); }));
  EXPECT_LT(calls.load(), n / 2);
}

// A random-access iterator over the integers (the item is its position):
// ranges of any length without memory.
struct counting {
  using iterator_category = std::random_access_iterator_tag;
  using value_type = std::uint64_t;
  using difference_type = std::int64_t;
  using pointer = const std::uint64_t*;
  using reference = std::uint64_t;
  std::uint64_t v = 0;
  reference operator*() const { return v; }
  reference operator[](difference_type d) const { return v + static_cast<std::uint64_t>(d); }
  counting& operator++() {
    ++v;
    return *this;
  }
  counting operator++(int) { return {v++}; }
  counting& operator--() {
    --v;
    return *this;
  }
  counting operator--(int) { return {v--}; }
  counting& operator+=(difference_type d) {
    v += static_cast<std::uint64_t>(d);
    return *this;
  }
  counting& operator-=(difference_type d) {
    v -= static_cast<std::uint64_t>(d);
    return *this;
  }
  friend counting operator+(counting a, difference_type d) { return a += d; }
  friend counting operator+(difference_type d, counting a) { return a += d; }
  friend counting operator-(counting a, difference_type d) { return a -= d; }
  friend difference_type operator-(counting a, counting b) { return static_cast<difference_type>(a.v - b.v); }
  friend auto operator<=>(counting, counting) = default;
  friend bool operator==(counting, counting) = default;
};

// A hit ends a search whatever the length of the range: over 2^62 items the
// searches handed out every run of 2048 blocks after the hit (O(n / 2^23)
// calls: more than a minute at 2 workers) where one worker returned at once.
TEST_P(AlgorithmTest, SearchesOfHugeRangesStopAtTheirHit) {
  const counting first{0};
  const counting last{std::uint64_t{1} << 62};
  rt.run([&] {
    EXPECT_TRUE(weft::any_of(first, last, [](std::uint64_t x) { return x == 0; }));
    EXPECT_EQ(weft::find_if(first, last, [](std::uint64_t x) { return x == 5 || x == 3 * 4096 + 1; }).v, 5u);
    EXPECT_EQ(weft::find_if(first, last, [](std::uint64_t x) { return x == 1'000'000; }).v, 1'000'000u);
    EXPECT_FALSE(weft::all_of(first, last, [](std::uint64_t x) { return x != 3; }));
    EXPECT_FALSE(weft::none_of(first, last, [](std::uint64_t x) { return x == 1; }));
  });
}

// std::views::iota over 64-bit types: random access to C++20's concepts, but
// under strict -std=c++20 (this suite's) their difference type is __int128,
// not integral there, and they have no classic iterator category. The searches,
// for_each_n and merge used classic algorithms on them, and did not compile.
TEST_P(AlgorithmTest, RangesOfIotaOverA64BitType) {
  using u64 = std::uint64_t;
  for (const u64 n : {u64{0}, u64{1}, u64{4097}, u64{70'001}}) {
    const auto r = std::views::iota(u64{0}, n);
    rt.run([&] {
      const u64 hit = n / 3;
      EXPECT_EQ(weft::find_if(r, [&](u64 x) { return x == hit; }) - r.begin(), n == 0 ? 0 : static_cast<long>(hit));
      EXPECT_EQ(weft::find_if(r.begin(), r.end(), [](u64) { return false; }), r.end());
      EXPECT_EQ(weft::any_of(r, [&](u64 x) { return x + 1 == n; }), n > 0);
      EXPECT_TRUE(weft::all_of(r, [&](u64 x) { return x < n; }));
      EXPECT_TRUE(weft::none_of(r, [&](u64 x) { return x >= n; }));
      std::atomic<u64> sum{0};
      EXPECT_EQ(weft::for_each_n(r.begin(), n, [&](u64 x) { sum.fetch_add(x, std::memory_order_relaxed); }), r.end());
      EXPECT_EQ(sum.load(), n == 0 ? 0 : n * (n - 1) / 2);
      // Merged with itself: each value twice, in order.
      std::vector<u64> merged(2 * n);
      weft::merge(r, r, merged.begin());
      std::vector<u64> expected(2 * n);
      for (u64 i = 0; i < 2 * n; ++i) expected[i] = i / 2;
      EXPECT_EQ(merged, expected);
    });
  }
  EXPECT_THROW(weft::for_each_n(std::views::iota(u64{0}).begin(), -1, [](u64) {}), std::invalid_argument);
}

// Items written through such an iterator: a vector's items reached by an
// index from std::views::iota over a 64-bit type. remove_if called the
// classic std::remove_if on each block, and sort, stable_sort and
// nth_element std::sort and its kin, which cannot use an __int128
// difference: none of them compiled.
TEST_P(AlgorithmTest, ItemsReachedThroughIotaOverA64BitType) {
  for (const std::int64_t n :
       {std::int64_t{0}, std::int64_t{1}, std::int64_t{2}, std::int64_t{4097}, std::int64_t{70'001}}) {
    std::vector<int> v(static_cast<std::size_t>(n));
    auto items = [&] {
      return std::views::iota(std::int64_t{0}, n) |
             std::views::transform([&](std::int64_t i) -> int& { return v[static_cast<std::size_t>(i)]; });
    };
    using view = decltype(items());
    static_assert(std::random_access_iterator<std::ranges::iterator_t<view>>);
    static_assert(!weft::detail::classic_difference<std::ranges::iterator_t<view>>);
    auto refill = [&] {
      for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int>((i * 7919) % 1000);
    };
    refill();
    std::vector<int> sorted = v;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int> kept;
    std::copy_if(v.begin(), v.end(), std::back_inserter(kept), [](int x) { return x % 3 != 0; });
    rt.run([&] {
      auto r = items();
      weft::sort(r.begin(), r.end());
      EXPECT_EQ(v, sorted) << "sort, n = " << n;
      refill();
      weft::stable_sort(items());
      EXPECT_EQ(v, sorted) << "stable_sort, n = " << n;
      if (n > 0) {
        refill();
        auto s = items();
        const std::int64_t k = n / 3;
        weft::nth_element(s.begin(), s.begin() + k, s.end());
        EXPECT_EQ(v[static_cast<std::size_t>(k)], sorted[static_cast<std::size_t>(k)]) << "nth_element, n = " << n;
      }
      refill();
      auto t = items();
      const auto end = weft::remove_if(t.begin(), t.end(), [](int x) { return x % 3 == 0; });
      EXPECT_EQ(std::vector<int>(v.begin(), v.begin() + (end - t.begin())), kept) << "remove_if, n = " << n;
    });
  }
}

// Ranges whose sentinel is no iterator: std::views::iota(0, n) with n of
// another type, and a std::counted_iterator into a std::deque up to
// std::default_sentinel. Every ranges overload passed the
// sentinel on as an iterator, and did not compile.
TEST_P(AlgorithmTest, RangesWhoseSentinelIsNoIterator) {
  constexpr long n = 5000;
  const auto r = std::views::iota(0, n);
  static_assert(!std::ranges::common_range<decltype(r)>);
  std::deque<std::int64_t> d(static_cast<std::size_t>(n) + 10);
  for (std::size_t i = 0; i < d.size(); ++i) d[i] = static_cast<std::int64_t>(d.size() - i);
  auto c = std::ranges::subrange(std::counted_iterator(d.begin(), n), std::default_sentinel);  // all but the last 10
  static_assert(!std::ranges::common_range<decltype(c)>);
  rt.run([&] {
    EXPECT_EQ(weft::reduce(r, 0L), n * (n - 1) / 2);
    EXPECT_EQ(*weft::find_if(r, [](int x) { return x == 77; }), 77);
    EXPECT_EQ(weft::count_if(r, [](int x) { return x % 2 == 0; }), n / 2);
    std::vector<long> out(static_cast<std::size_t>(n));
    weft::transform(r, out.begin(), [](int x) { return 2L * x; });
    EXPECT_EQ(out[4999], 9998);
    EXPECT_EQ(weft::transform_reduce(r, r, 0L, std::plus<>{}, [](int x, int y) { return long{x} - y; }), 0);
    weft::sort(c);
    EXPECT_TRUE(std::is_sorted(d.begin(), d.begin() + n));
    EXPECT_EQ(d[static_cast<std::size_t>(n)], 10);  // past the counted range: untouched
    weft::stable_sort(c, std::greater<>{});
    EXPECT_TRUE(std::is_sorted(d.begin(), d.begin() + n, std::greater<>{}));
    weft::nth_element(c, c.begin() + 7);
    EXPECT_EQ(d[7], 18);  // the values are 11 .. n + 10
    EXPECT_EQ(*weft::min_element(c), 11);
  });
}

// Bounded ranges that are neither common nor sized (their end is found by
// walking to the sentinel), or whose end comes from a count: they were
// refused at compile time as if they never ended.
TEST_P(AlgorithmTest, BoundedRangesThatAreNeitherCommonNorSized) {
  std::vector<int> v{5, 3, 1, 4, 2, -1, 9, 8};
  auto positive = v | std::views::take_while([](int x) { return x > 0; });
  static_assert(std::ranges::random_access_range<decltype(positive)>);
  static_assert(!std::ranges::common_range<decltype(positive)> && !std::ranges::sized_range<decltype(positive)>);
  auto first_hundred = std::views::iota(0) | std::views::take(100);
  static_assert(!std::ranges::common_range<decltype(first_hundred)>);
  rt.run([&] {
    weft::sort(positive);
    EXPECT_EQ(weft::reduce(first_hundred, 0L), 4950);
    EXPECT_EQ(weft::count_if(first_hundred, [](int x) { return x % 10 == 0; }), 10);
  });
  EXPECT_EQ(v, (std::vector<int>{1, 2, 3, 4, 5, -1, 9, 8}));  // sorted up to the first non-positive item
}

// transform_reduce over two ranges takes the length of the shorter one, as
// weft::transform does (it read past the end of a shorter second range).
TEST_P(AlgorithmTest, TransformReduceOfTwoRangesStopsAtTheShorter) {
  const std::vector<std::int64_t> a(100'000, 1);
  const std::vector<std::int64_t> b(10, 2);
  rt.run([&] {
    EXPECT_EQ(weft::transform_reduce(a, b, std::int64_t{0}), 20);
    EXPECT_EQ(weft::transform_reduce(b, a, std::int64_t{0}), 20);
    EXPECT_EQ(weft::transform_reduce(a, b, std::int64_t{0}, std::plus<>{}, std::plus<>{}), 30);
  });
}

// Two C arrays of one element type are two ranges: they matched the
// iterator forms as well (decayed to pointers), which were chosen and did
// not compile with a binary operation.
TEST_P(AlgorithmTest, TwoCArraysAreTwoRanges) {
  const std::int64_t a[5] = {1, 2, 3, 4, 5};
  const std::int64_t b[3] = {10, 20, 30};
  std::int64_t out[5] = {};
  rt.run([&] {
    EXPECT_EQ(weft::transform(a, b, out, std::plus<>{}), out + 3);
    EXPECT_EQ(weft::transform_reduce(a, b, std::int64_t{0}, std::plus<>{}, std::multiplies<>{}), 140);
    EXPECT_EQ(weft::transform_reduce(a, b, std::int64_t{0}), 140);
  });
  EXPECT_EQ(out[0], 11);
  EXPECT_EQ(out[1], 22);
  EXPECT_EQ(out[2], 33);
  EXPECT_EQ(out[3], 0);
  // One array and the iterator forms still mean what they meant.
  rt.run([&] {
    EXPECT_EQ(weft::transform_reduce(a, a + 5, std::int64_t{0}, std::plus<>{}, [](std::int64_t x) { return 2 * x; }),
              30);
    std::int64_t twice[5] = {};
    weft::transform(a, a + 5, twice, [](std::int64_t x) { return 2 * x; });
    EXPECT_EQ(twice[4], 10);
  });
}

struct boxed {
  std::unique_ptr<std::int64_t> p;
};

std::vector<boxed> boxes(const std::vector<std::int64_t>& in) {
  std::vector<boxed> out(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) out[i].p = std::make_unique<std::int64_t>(in[i]);
  return out;
}

std::vector<std::int64_t> unbox(const std::vector<boxed>& in, std::size_t count) {
  std::vector<std::int64_t> out(count);
  for (std::size_t i = 0; i < count; ++i) out[i] = *in[i].p;
  return out;
}

TEST_P(AlgorithmTest, MoveOnlyItems) {
  weft_test::seeded_rng rng;
  for (const std::size_t n :
       {std::size_t{0}, std::size_t{1}, std::size_t{1001}, static_cast<std::size_t>(weft_test::scaled(200'003))}) {
    SCOPED_TRACE(::testing::Message() << "n = " << n);
    const auto in = make_input(rng, n, shape::few_values);
    auto less = [](const boxed& a, const boxed& b) { return *a.p < *b.p; };
    rt.run([&] {
      auto want = in;
      std::stable_sort(want.begin(), want.end());
      auto b = boxes(in);
      weft::sort(b, less);
      EXPECT_EQ(unbox(b, n), want);
      b = boxes(in);
      weft::stable_sort(b.begin(), b.end(), less);
      EXPECT_EQ(unbox(b, n), want);

      b = boxes(in);
      auto odd = [](const boxed& x) { return *x.p % 2 != 0; };
      auto end = weft::remove_if(b.begin(), b.end(), odd);
      auto w = in;
      auto wend = std::remove_if(w.begin(), w.end(), [](std::int64_t x) { return x % 2 != 0; });
      w.erase(wend, w.end());
      EXPECT_EQ(unbox(b, static_cast<std::size_t>(end - b.begin())), w);

      b = boxes(in);
      end = weft::unique(b, [](const boxed& x, const boxed& y) { return *x.p == *y.p; });
      w = in;
      w.erase(std::unique(w.begin(), w.end()), w.end());
      EXPECT_EQ(unbox(b, static_cast<std::size_t>(end - b.begin())), w);

      if (n > 0) {
        b = boxes(in);
        weft::nth_element(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n / 2), b.end(), less);
        EXPECT_EQ(*b[n / 2].p, want[n / 2]);
        EXPECT_EQ(*weft::min_element(b, less)->p, want.front());
        EXPECT_EQ(*weft::max_element(b.begin(), b.end(), less)->p, want.back());
      }
      weft::for_each(b, [](boxed& x) { *x.p += 1; });
      std::vector<boxed> moved(n);
      weft::transform(b, moved.begin(), [](boxed& x) { return boxed{std::move(x.p)}; });
      EXPECT_EQ(weft::count_if(moved, [](const boxed& x) { return x.p != nullptr; }), static_cast<std::ptrdiff_t>(n));
    });
  }
}

// The first exception a callable throws reaches the caller, and the runtime
// stays usable.
TEST_P(AlgorithmTest, ExceptionsReachTheCaller) {
  const std::size_t n = static_cast<std::size_t>(weft_test::scaled(300'000));
  std::vector<std::int64_t> v(n);
  std::iota(v.begin(), v.end(), std::int64_t{0});
  std::vector<std::int64_t> out(n);
  const std::int64_t bad = static_cast<std::int64_t>(n * 2 / 3);
  auto check = [bad](std::int64_t x) {
    if (x == bad) throw test_error();
    return x;
  };
  rt.run([&] {
    EXPECT_THROW(weft::for_each(v, [&](std::int64_t x) { check(x); }), test_error);
    EXPECT_THROW(weft::transform(v, out.begin(), check), test_error);
    EXPECT_THROW(weft::generate(out, []() -> std::int64_t { throw test_error(); }), test_error);
    EXPECT_THROW(weft::transform_reduce(v, std::int64_t{0}, std::plus<>{}, check), test_error);
    EXPECT_THROW(weft::transform_inclusive_scan(v, out.begin(), std::plus<>{}, check), test_error);
    EXPECT_THROW(weft::transform_exclusive_scan(v, out.begin(), std::int64_t{0}, std::plus<>{}, check), test_error);
    EXPECT_THROW(weft::copy_if(v, out.begin(), [&](std::int64_t x) { return check(x) > 0; }), test_error);
    EXPECT_THROW(weft::count_if(v, [&](std::int64_t x) { return check(x) > 0; }), test_error);
    EXPECT_THROW(weft::find_if(v, [&](std::int64_t x) { return check(x) < 0; }), test_error);
    EXPECT_THROW(weft::min_element(v, [&](std::int64_t a, std::int64_t b) { return check(a) < check(b); }), test_error);
    auto w = v;
    std::reverse(w.begin(), w.end());
    auto throwing_less = [&](std::int64_t a, std::int64_t b) { return check(a) < check(b); };
    EXPECT_THROW(weft::sort(w, throwing_less), test_error);
    w = v;
    std::reverse(w.begin(), w.end());
    EXPECT_THROW(weft::stable_sort(w, throwing_less), test_error);
    w = v;
    std::reverse(w.begin(), w.end());
    EXPECT_THROW(weft::nth_element(w, w.begin() + 5, throwing_less), test_error);
    w = v;
    EXPECT_THROW(weft::remove_if(w, [&](std::int64_t x) { return check(x) < 0; }), test_error);
    w = v;
    EXPECT_THROW(weft::unique(w, [&](std::int64_t a, std::int64_t b) { return check(a) == b; }), test_error);
    EXPECT_THROW(weft::merge(v, v, std::vector<std::int64_t>(2 * n).begin(), throwing_less), test_error);
    // Still usable.
    EXPECT_EQ(weft::reduce(v), static_cast<std::int64_t>(n) * (static_cast<std::int64_t>(n) - 1) / 2);
  });
}

// n strings in a scrambled order.
std::vector<std::string> scrambled_items(std::size_t n) {
  std::vector<std::string> items(n);
  for (std::size_t i = 0; i < n; ++i) items[i] = "item-" + std::to_string((i * 7919) % n);
  return items;
}

// Runs algo(v, less) in rt on v, a copy of input, where less throws
// test_error at its call number throw_at: the exception comes out once when
// that call was made, and v stays a permutation of input, whose sorted
// order is sorted. Returns v and whether it threw.
template <class Algo>
std::pair<std::vector<std::string>, bool> with_a_comparison_that_throws(weft::runtime& rt,
                                                                        const std::vector<std::string>& input,
                                                                        const std::vector<std::string>& sorted,
                                                                        long throw_at, Algo algo) {
  std::atomic<long> calls{0};
  auto less = [&](const std::string& a, const std::string& b) {
    if (calls.fetch_add(1, std::memory_order_relaxed) == throw_at) throw test_error();
    return a < b;
  };
  std::vector<std::string> v = input;
  int caught = 0;
  rt.run([&] {
    try {
      algo(v, less);
    } catch (const test_error&) {
      ++caught;
    }
  });
  EXPECT_EQ(caught, calls.load() > throw_at ? 1 : 0);
  std::vector<std::string> result = v;
  std::sort(v.begin(), v.end());
  EXPECT_TRUE(v == sorted) << "items lost or duplicated";
  return {result, caught != 0};
}

// A sort whose comparator throws rethrows it once and leaves the items a
// permutation of the input, like std::sort: the parallel merge sort of items
// that are not trivially copyable ran from a buffer and destroyed the
// buffer's items on the way out, so every string of the range was left empty
// at 2 and 4 workers.
TEST_P(AlgorithmTest, SortsThatThrowKeepEveryItem) {
  const std::vector<std::string> input = scrambled_items(static_cast<std::size_t>(weft_test::scaled(100'000)));
  std::vector<std::string> sorted = input;
  std::sort(sorted.begin(), sorted.end());
  for (const long throw_at : {0L, 10L, 1000L, 100'000L, 1'000'000L}) {
    SCOPED_TRACE("throw at comparison " + std::to_string(throw_at));
    with_a_comparison_that_throws(rt, input, sorted, throw_at, [](auto& v, auto& less) { weft::sort(v, less); });
    with_a_comparison_that_throws(rt, input, sorted, throw_at, [](auto& v, auto& less) { weft::stable_sort(v, less); });
  }
}

// A selection whose comparator throws rethrows it once and leaves the items
// a permutation of the input, as a sort does: std::nth_element, which
// nth_element ends with (and runs alone on small ranges or one worker),
// holds an item in a temporary while it shifts others, and a throw there
// lost it (3 strings, a throw at the second comparison: "b" "" "a").
TEST_P(AlgorithmTest, SelectionsThatThrowKeepEveryItem) {
  for (const std::size_t n : {std::size_t{3}, std::size_t{1000}, std::size_t{70'000}}) {
    const std::vector<std::string> input = scrambled_items(n);
    std::vector<std::string> sorted = input;
    std::sort(sorted.begin(), sorted.end());
    for (const long throw_at : {0L, 1L, 10L, 500L, 100'000L, 10'000'000L}) {
      SCOPED_TRACE(std::to_string(n) + " items, throw at comparison " + std::to_string(throw_at));
      const auto [v, threw] = with_a_comparison_that_throws(rt, input, sorted, throw_at, [n](auto& v, auto& less) {
        weft::nth_element(v, v.begin() + static_cast<std::ptrdiff_t>(n / 2), less);
      });
      if (!threw) {
        EXPECT_EQ(v[n / 2], sorted[n / 2]);
      }
    }
  }
  // The bits of a std::vector<bool>, sorted and selected serially by the
  // std:: ones: as many set bits after a throw as before.
  for (const long throw_at : {0L, 1L, 2L, 5L, 20L}) {
    for (const int kind : {0, 1, 2}) {
      SCOPED_TRACE("bits, algorithm " + std::to_string(kind) + ", throw at comparison " + std::to_string(throw_at));
      std::vector<bool> bits{true, false, true, true, false, false, true, false, true, false, false, true};
      const auto ones = std::count(bits.begin(), bits.end(), true);
      long calls = 0;
      auto less = [&](bool a, bool b) {
        if (calls++ == throw_at) throw test_error();
        return a < b;
      };
      rt.run([&] {
        try {
          if (kind == 0) weft::sort(bits, less);
          if (kind == 1) weft::stable_sort(bits, less);
          if (kind == 2) weft::nth_element(bits, bits.begin() + 6, less);
        } catch (const test_error&) {
        }
      });
      EXPECT_EQ(std::count(bits.begin(), bits.end(), true), ones) << "bits lost or duplicated";
    }
  }
}

// Comparators whose result is not a bool, as std::sort accepts them: one
// with only an explicit conversion (contextually converted) compiles whether
// or not it is noexcept (before, only a noexcept one did for the sorts, and
// none for nth_element); one whose conversion throws is guarded as a
// throwing comparison is, also when the call is noexcept (before, items were
// lost).
struct explicit_verdict {
  bool v;
  explicit operator bool() const { return v; }
};
struct throwing_verdict {
  static inline std::atomic<long> s_conversions{0};
  static inline long s_throw_at = -1;
  bool v;
  operator bool() const {  // NOLINT(google-explicit-constructor): the point of the test
    if (s_conversions.fetch_add(1, std::memory_order_relaxed) == s_throw_at) throw test_error();
    return v;
  }
};

TEST_P(AlgorithmTest, ComparatorsWhoseResultIsNotABool) {
  const std::vector<std::string> input = scrambled_items(70'000);
  std::vector<std::string> sorted = input;
  std::sort(sorted.begin(), sorted.end());
  auto plain = [](const std::string& a, const std::string& b) { return explicit_verdict{a < b}; };
  auto quiet = [](const std::string& a, const std::string& b) noexcept { return explicit_verdict{a < b}; };
  rt.run([&] {
    auto v = input;
    weft::sort(v, plain);
    EXPECT_TRUE(v == sorted);
    v = input;
    weft::stable_sort(v, quiet);
    EXPECT_TRUE(v == sorted);
    v = input;
    weft::nth_element(v, v.begin() + 100, plain);
    EXPECT_EQ(v[100], sorted[100]);
    v = input;
    weft::nth_element(v, v.begin() + 100, quiet);
    EXPECT_EQ(v[100], sorted[100]);
    std::vector<bool> bits{true, false, true, false};
    weft::sort(bits, [](bool a, bool b) { return explicit_verdict{a < b}; });
    EXPECT_TRUE((bits == std::vector<bool>{false, false, true, true}));
  });
  auto converts = [](const std::string& a, const std::string& b) noexcept { return throwing_verdict{a < b}; };
  for (const long throw_at : {0L, 10L, 1000L, 100'000L}) {
    for (const int kind : {0, 1, 2}) {
      SCOPED_TRACE("algorithm " + std::to_string(kind) + ", throw at conversion " + std::to_string(throw_at));
      throwing_verdict::s_conversions = 0;
      throwing_verdict::s_throw_at = throw_at;
      auto v = input;
      int caught = 0;
      rt.run([&] {
        try {
          if (kind == 0) weft::sort(v, converts);
          if (kind == 1) weft::stable_sort(v, converts);
          if (kind == 2) weft::nth_element(v, v.begin() + 100, converts);
        } catch (const test_error&) {
          ++caught;
        }
      });
      EXPECT_EQ(caught, 1);
      std::sort(v.begin(), v.end());
      EXPECT_TRUE(v == sorted) << "items lost or duplicated";
    }
  }
  throwing_verdict::s_throw_at = -1;
}

// Items that count how many of them are alive, for the iterator below.
struct counted {
  static inline std::atomic<long> s_alive{0};
  std::int64_t key = 0;
  counted() noexcept { s_alive.fetch_add(1, std::memory_order_relaxed); }
  explicit counted(std::int64_t k) noexcept : key(k) { s_alive.fetch_add(1, std::memory_order_relaxed); }
  counted(const counted& o) noexcept : key(o.key) { s_alive.fetch_add(1, std::memory_order_relaxed); }
  counted(counted&& o) noexcept : key(o.key) { s_alive.fetch_add(1, std::memory_order_relaxed); }
  counted& operator=(const counted&) noexcept = default;
  counted& operator=(counted&&) noexcept = default;
  ~counted() { s_alive.fetch_sub(1, std::memory_order_relaxed); }
};

// A random-access iterator over counted items whose dereference throws once
// (test_error) when more than `limit` counted items are alive: while an
// algorithm has moved a part of the range into a buffer of its own.
struct throwing_it {
  struct trigger {
    long limit;
    std::atomic<bool> fired{false};
  };
  using iterator_category = std::random_access_iterator_tag;
  using value_type = counted;
  using difference_type = std::ptrdiff_t;
  using pointer = counted*;
  using reference = counted&;

  counted* p = nullptr;
  trigger* t = nullptr;

  counted& operator*() const {
    if (counted::s_alive.load(std::memory_order_relaxed) > t->limit && !t->fired.exchange(true)) throw test_error();
    return *p;
  }
  counted* operator->() const { return &**this; }
  counted& operator[](std::ptrdiff_t k) const { return *(*this + k); }
  throwing_it& operator++() {
    ++p;
    return *this;
  }
  throwing_it operator++(int) {
    throwing_it old = *this;
    ++p;
    return old;
  }
  throwing_it& operator--() {
    --p;
    return *this;
  }
  throwing_it operator--(int) {
    throwing_it old = *this;
    --p;
    return old;
  }
  throwing_it& operator+=(std::ptrdiff_t k) {
    p += k;
    return *this;
  }
  throwing_it& operator-=(std::ptrdiff_t k) {
    p -= k;
    return *this;
  }
  friend throwing_it operator+(throwing_it a, std::ptrdiff_t k) { return a += k; }
  friend throwing_it operator+(std::ptrdiff_t k, throwing_it a) { return a += k; }
  friend throwing_it operator-(throwing_it a, std::ptrdiff_t k) { return a -= k; }
  friend std::ptrdiff_t operator-(const throwing_it& a, const throwing_it& b) { return a.p - b.p; }
  friend bool operator==(const throwing_it& a, const throwing_it& b) { return a.p == b.p; }
  friend auto operator<=>(const throwing_it& a, const throwing_it& b) { return a.p <=> b.p; }
};
static_assert(std::random_access_iterator<throwing_it>);

// An iterator that throws while an algorithm holds a part of the range in a
// buffer of its own: the algorithm rethrows it and leaves no item alive in
// the buffer, nor the buffer allocated (LeakSanitizer). The sort's first pass
// (moving the items into its buffer), the gather of remove_if and unique and
// the partition rounds of nth_element allocated their buffers with no guard:
// at 2 and 4 workers the items moved so far (and the buffer) were never
// freed.
TEST_P(AlgorithmTest, IteratorsThatThrowLeaveNoBufferBehind) {
  // Not scaled down under a sanitizer: the gather and the partition rounds
  // take a buffer only past 32 768 kept and 65 536 items.
  const std::size_t n = 200'000;
  weft_test::seeded_rng rng;
  const auto in = make_input(rng, n, shape::random);
  for (int algorithm = 0; algorithm < 4; ++algorithm) {
    SCOPED_TRACE(::testing::Message() << "algorithm " << algorithm);
    const long base = counted::s_alive.load();
    {
      std::vector<counted> v;
      v.reserve(n);
      for (const std::int64_t x : in) v.emplace_back(x);
      // Half as many items again as the range holds alive: a buffer holds
      // them, some of its blocks complete.
      throwing_it::trigger t{base + static_cast<long>(n + n / 2)};
      const throwing_it first{v.data(), &t};
      const throwing_it last{v.data() + n, &t};
      auto less = [](const counted& a, const counted& b) noexcept { return a.key < b.key; };
      int caught = 0;
      rt.run([&] {
        try {
          switch (algorithm) {
            case 0: weft::sort(first, last, less); break;
            case 1: weft::stable_sort(first, last, less); break;
            case 2: weft::remove_if(first, last, [](const counted& x) { return x.key % 3 == 0; }); break;
            default: weft::nth_element(first, first + static_cast<std::ptrdiff_t>(n / 3), last, less); break;
          }
        } catch (const test_error&) {
          ++caught;
        }
      });
      // Where no buffer was used (one worker), nothing threw.
      EXPECT_EQ(caught, t.fired.load() ? 1 : 0);
      if (GetParam() > 1) {
        EXPECT_EQ(caught, 1);
      }
      EXPECT_EQ(counted::s_alive.load(), base + static_cast<long>(n)) << "items of a buffer left alive";
    }
    EXPECT_EQ(counted::s_alive.load(), base);
  }
}

// The algorithms inside parallelize items, and one inside another.
TEST_P(AlgorithmTest, NestInsideParallelCode) {
  weft_test::seeded_rng rng;
  constexpr int k_items = 8;
  const std::size_t n = static_cast<std::size_t>(weft_test::scaled(100'003));
  std::vector<std::vector<std::int64_t>> inputs(k_items);
  for (auto& in : inputs) in = make_input(rng, n, shape::random);
  std::vector<std::vector<std::int64_t>> sorted(k_items);
  std::vector<std::vector<std::int64_t>> scanned(k_items);
  std::vector<std::int64_t> counts(k_items);
  rt.run([&] {
    weft::parallelize(k_items, [&](int i) {
      const auto idx = static_cast<std::size_t>(i);
      sorted[idx] = inputs[idx];
      weft::sort(sorted[idx]);
      scanned[idx].resize(n);
      weft::inclusive_scan(inputs[idx], scanned[idx].begin());
      counts[idx] = weft::count_if(inputs[idx], [&](std::int64_t x) {
        return weft::any_of(inputs[idx].begin(), inputs[idx].begin() + 3, [x](std::int64_t y) { return y == x; });
      });
    });
  });
  for (std::size_t i = 0; i < k_items; ++i) {
    auto want = inputs[i];
    std::sort(want.begin(), want.end());
    EXPECT_EQ(sorted[i], want);
    std::inclusive_scan(inputs[i].begin(), inputs[i].end(), want.begin());
    EXPECT_EQ(scanned[i], want);
    const auto& in = inputs[i];
    EXPECT_EQ(counts[i], std::count_if(in.begin(), in.end(), [&](std::int64_t x) {
                return std::find(in.begin(), in.begin() + 3, x) != in.begin() + 3;
              }));
  }
  // And an exception from a nested algorithm reaches the outer caller.
  EXPECT_THROW(rt.run([&] {
    weft::parallelize(k_items, [&](int i) {
      weft::for_each(inputs[static_cast<std::size_t>(i)], [i](std::int64_t) {
        if (i == 5) throw test_error();
      });
    });
  }),
               test_error);
}

// std::vector<bool>: its items are bits of shared words, so two workers
// writing neighbouring items race on a word (bits were lost, and sorts and
// packs went wrong, at 2 and 4 workers). Algorithms that write through its
// iterators run serially; reading ones stay parallel. Many rounds: a lost bit
// needs two writes to meet in one word.
TEST_P(AlgorithmTest, PackedBitsMatchStd) {
  weft_test::seeded_rng rng;
  const std::size_t n = 200'003;
  const int rounds = static_cast<int>(weft_test::scaled(30, 3));
  for (int round = 0; round < rounds; ++round) {
    std::vector<bool> in(n);
    for (std::size_t i = 0; i < n; ++i) in[i] = (rng() % 3) == 0;
    const auto count = static_cast<std::size_t>(std::count(in.begin(), in.end(), true));
    rt.run([&] {
      std::vector<bool> a(n), b(n);
      weft::transform(in.begin(), in.end(), a.begin(), [](bool x) { return !x; });
      std::transform(in.begin(), in.end(), b.begin(), [](bool x) { return !x; });
      ASSERT_EQ(a, b) << "transform, round " << round;
      weft::copy(in.begin(), in.end(), a.begin());
      ASSERT_EQ(a, in) << "copy, round " << round;
      weft::fill(a.begin() + 1, a.end() - 1, true);
      ASSERT_EQ(static_cast<std::size_t>(weft::count_if(a.begin(), a.end(), [](bool x) { return x; })),
                n - 2 + (in.front() ? 1 : 0) + (in.back() ? 1 : 0))
          << "fill, round " << round;
      weft::for_each(a.begin(), a.end(), [](auto&& x) { x = !x; });
      ASSERT_EQ(static_cast<std::size_t>(std::count(a.begin(), a.end(), true)),
                (in.front() ? 0 : 1) + (in.back() ? 0 : 1))
          << "for_each, round " << round;
      std::vector<bool> kept(n);
      auto end = weft::copy_if(in.begin(), in.end(), kept.begin(), [](bool x) { return x; });
      ASSERT_EQ(static_cast<std::size_t>(end - kept.begin()), count) << "copy_if, round " << round;
      ASSERT_EQ(static_cast<std::size_t>(std::count(kept.begin(), end, true)), count) << "copy_if, round " << round;
      a = in;
      weft::sort(a.begin(), a.end());
      b = in;
      std::sort(b.begin(), b.end());
      ASSERT_EQ(a, b) << "sort, round " << round;
      a = in;
      weft::stable_sort(a.begin(), a.end(), std::greater<>{});
      b = in;
      std::stable_sort(b.begin(), b.end(), std::greater<>{});
      ASSERT_EQ(a, b) << "stable_sort, round " << round;
      a = in;
      b = in;
      a.erase(weft::unique(a.begin(), a.end()), a.end());
      b.erase(std::unique(b.begin(), b.end()), b.end());
      ASSERT_EQ(a, b) << "unique, round " << round;
      a = in;
      b = in;
      a.erase(weft::remove_if(a.begin(), a.end(), [](bool x) { return !x; }), a.end());
      b.erase(std::remove_if(b.begin(), b.end(), [](bool x) { return !x; }), b.end());
      ASSERT_EQ(a, b) << "remove_if, round " << round;
      std::vector<bool> sorted = in;
      std::sort(sorted.begin(), sorted.end());
      std::vector<bool> m(2 * n), ms(2 * n);
      weft::merge(sorted.begin(), sorted.end(), sorted.begin(), sorted.end(), m.begin());
      std::merge(sorted.begin(), sorted.end(), sorted.begin(), sorted.end(), ms.begin());
      ASSERT_EQ(m, ms) << "merge, round " << round;
      a = in;
      b = in;
      weft::nth_element(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(n / 2), a.end());
      std::nth_element(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n / 2), b.end());
      ASSERT_EQ(a[n / 2], b[n / 2]) << "nth_element, round " << round;
      weft::inclusive_scan(in.begin(), in.end(), a.begin(), std::bit_or<>{});
      // (libstdc++'s std::inclusive_scan keeps a proxy to the first item and
      // writes through it: the expected result by hand.)
      for (std::size_t i = 0; i < n; ++i) b[i] = in[i] || (i > 0 && b[i - 1]);
      ASSERT_EQ(a, b) << "inclusive_scan, round " << round;
      weft::exclusive_scan(in.begin(), in.end(), a.begin(), false, std::bit_xor<>{});
      std::exclusive_scan(in.begin(), in.end(), b.begin(), false, std::bit_xor<>{});
      ASSERT_EQ(a, b) << "exclusive_scan, round " << round;
    });
  }
}

// An item whose assignment passes through a value no item ever has (-1),
// correct on its own (it reads its source first). Assigned to itself, it
// stays at -1 until another assignment has read it meanwhile, or 200 ms.
struct passing_through {
  static inline std::atomic<int> s_reads_meanwhile{0};
  std::atomic<long> m_value{0};
  std::atomic<bool> m_self_assigning{false};

  passing_through() = default;
  passing_through(const passing_through& o) : m_value(o.m_value.load()) {}
  passing_through& operator=(const passing_through& o) {
    const long v = o.m_value.load();
    if (&o != this) {
      if (o.m_self_assigning.load()) s_reads_meanwhile.fetch_add(1);
      m_value.store(v);
      return *this;
    }
    m_value.store(-1);
    m_self_assigning.store(true);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
    while (s_reads_meanwhile.load() == 0 && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
    m_self_assigning.store(false);
    m_value.store(v);
    return *this;
  }
};

// weft::fill(v, v[k]) fills with v[k]'s value, as std::fill does: the value
// is read once, before any item is assigned. (Each chunk read the value
// through the reference while the chunk holding v[k] assigned it: with two
// workers the items of other chunks got -1.)
TEST_P(AlgorithmTest, FillWithAnItemOfItsOwnRange) {
  rt.run([] {
    constexpr std::size_t n = std::size_t{1} << 16;
    constexpr std::size_t k = n / 2;
    std::vector<passing_through> v(n);
    v[k].m_value.store(7);
    passing_through::s_reads_meanwhile.store(0);
    weft::fill(v.begin(), v.end(), v[k]);
    std::size_t wrong = 0;
    for (const passing_through& x : v) wrong += x.m_value.load() != 7 ? 1 : 0;
    EXPECT_EQ(wrong, 0U) << "items not 7 after weft::fill(v, v[k]); read from v[k] while it was assigned: "
                         << passing_through::s_reads_meanwhile.load();
  });
}

// A large accumulator (a histogram), whose block lanes are kept on the heap
// (more than 256 bytes), gives std's result for blocks of every length.
TEST_P(AlgorithmTest, ReductionsOfLargeValuesMatchStd) {
  using histogram = std::array<std::uint64_t, 256>;
  auto add = [](histogram a, const histogram& b) {
    for (std::size_t k = 0; k < a.size(); ++k) a[k] += b[k];
    return a;
  };
  auto spread = [](std::uint64_t x) {
    histogram h{};
    h[x * 13 % h.size()] = x;
    return h;
  };
  for (const std::size_t n : {std::size_t{1}, std::size_t{3}, std::size_t{7}, std::size_t{8}, std::size_t{20},
                              std::size_t{5000}, std::size_t{70'001}}) {
    SCOPED_TRACE(::testing::Message() << "n = " << n);
    std::vector<std::uint64_t> in(n);
    std::iota(in.begin(), in.end(), std::uint64_t{1});
    const histogram got =
        rt.run([&] { return weft::transform_reduce(in.begin(), in.end(), histogram{}, add, spread); });
    EXPECT_EQ(got, std::transform_reduce(in.begin(), in.end(), histogram{}, add, spread));
  }
}

TEST(AlgorithmOutside, CallsFromOutsideARuntimeUseTheDefault) {
  std::vector<int> v{5, 3, 9, 1, 7};
  weft::sort(v);
  EXPECT_EQ(v, (std::vector<int>{1, 3, 5, 7, 9}));
  EXPECT_EQ(weft::reduce(v), 25);
}

TEST(AlgorithmArguments, BadArgumentsThrowInvalidArgument) {
  std::vector<int> v(10);
  auto expect_names = [](auto&& call, const char* name) {
    try {
      call();
      ADD_FAILURE() << "no exception";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  };
  expect_names([&] { weft::sort(v.end(), v.begin()); }, "last");
  // Each names itself: reduce's named transform_reduce, which it calls.
  expect_names([&] { weft::reduce(v.end(), v.begin()); }, "weft::reduce: last");
  expect_names([&] { weft::reduce(v.end(), v.begin(), 0L); }, "weft::reduce: last");
  expect_names([&] { weft::transform_reduce(v.end(), v.begin(), 0L, std::plus<>{}, std::identity{}); },
               "weft::transform_reduce: last");
  expect_names([&] { weft::inclusive_scan(v.end(), v.begin(), v.begin()); }, "last");
  expect_names([&] { weft::copy_if(v.end(), v.begin(), v.begin(), [](int) { return true; }); }, "last");
  expect_names([&] { weft::for_each_n(v.begin(), -1, [](int) {}); }, "n");
  // Beyond the iterator's difference type: named as for_each_n's n, not as a
  // reversed range of for_each (which it became once cast).
  expect_names([&] { weft::for_each_n(v.begin(), SIZE_MAX, [](int) {}); }, "for_each_n: n");
  int a[10] = {};
  expect_names([&] { weft::nth_element(a + 2, a + 1, a + 10); }, "nth");
  expect_names([&] { weft::merge(v.begin(), v.end(), v.end(), v.begin(), v.begin()); }, "last2");
  // These named the algorithm they call (any_of, transform_*_scan) before.
  const auto yes = [](int) { return true; };
  expect_names([&] { weft::all_of(v.end(), v.begin(), yes); }, "weft::all_of: last");
  expect_names([&] { weft::none_of(v.end(), v.begin(), yes); }, "weft::none_of: last");
  expect_names([&] { weft::any_of(v.end(), v.begin(), yes); }, "weft::any_of: last");
  expect_names([&] { weft::exclusive_scan(v.end(), v.begin(), v.begin(), 0); }, "weft::exclusive_scan: last");
  expect_names([&] { weft::exclusive_scan(v.end(), v.begin(), v.begin(), 0, std::plus<>{}); },
               "weft::exclusive_scan: last");
  expect_names([&] { weft::inclusive_scan(v.end(), v.begin(), v.begin(), std::plus<>{}, 0); },
               "weft::inclusive_scan: last");
  expect_names(
      [&] { weft::transform_exclusive_scan(v.end(), v.begin(), v.begin(), 0, std::plus<>{}, std::identity{}); },
      "weft::transform_exclusive_scan: last");
}

// A pointer to a data member as transform_reduce's transform, which its
// constraint (std::invocable) accepts: the call did not compile (a plain
// call, where std::invoke is needed), while weft::transform took it.
TEST(AlgorithmArguments, TransformReduceTakesAPointerToMember) {
  struct item {
    long x;
  };
  std::vector<item> v{{1}, {2}, {3}, {4}};
  EXPECT_EQ(weft::transform_reduce(v.begin(), v.end(), 0L, std::plus<>{}, &item::x), 10);
  std::list<item> l(v.begin(), v.end());  // the serial overload
  EXPECT_EQ(weft::transform_reduce(l.begin(), l.end(), 0L, std::plus<>{}, &item::x), 10);
}

}  // namespace
