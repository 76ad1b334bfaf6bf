// SPDX-License-Identifier: MIT
// parallel_for and parallel_reduce with first and last (and grain) of
// different integral types, as in parallel_for(0, v.size(), fn): they run
// over the common type of the bounds, call fn or map with it, give the same
// chunks and the same bits as a call with both bounds of that type, and
// reject a negative bound whose common type is unsigned.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include <weft/weft.hpp>

#include "expect_names.hpp"
#include "worker_count.hpp"

namespace {

using weft_test::expect_invalid_argument;

// The overloads exist for mixed bounds and not only for equal ones.
constexpr auto k_chunk_fn = [](std::size_t, std::size_t) {};
constexpr auto k_map = [](std::size_t i) { return static_cast<double>(i); };
static_assert(requires { weft::parallel_for(0, std::size_t{1}, k_chunk_fn); });
static_assert(requires { weft::parallel_for(0, std::size_t{1}, 4, k_chunk_fn); });
static_assert(requires { weft::parallel_for(std::size_t{0}, std::size_t{1}, 4, k_chunk_fn); });
static_assert(requires { weft::parallel_reduce(0, std::size_t{1}, 0.0, k_map, std::plus<>{}); });
static_assert(std::is_same_v<weft::detail::common_index_t<int, std::size_t>, std::size_t>);
static_assert(std::is_same_v<weft::detail::common_index_t<short, long long>, long long>);
static_assert(std::is_same_v<weft::detail::common_index_t<std::uint8_t, int, long>, long>);

template <class I>
using chunks = std::vector<std::pair<I, I>>;

// The chunks of a parallel_for with the given bounds (grain 0: none), sorted;
// fn must receive the index type I.
template <class I, class A, class B, class G = int>
chunks<I> chunks_of(weft::runtime& rt, A first, B last, G grain = 0) {
  std::mutex m;
  chunks<I> out;
  auto record = [&](auto b, auto e) {
    static_assert(std::is_same_v<decltype(b), I> && std::is_same_v<decltype(e), I>, "fn receives the common type");
    std::lock_guard lock(m);
    out.emplace_back(b, e);
  };
  rt.run([&] {
    if (grain != 0) {
      weft::parallel_for(first, last, grain, record);
    } else {
      weft::parallel_for(first, last, record);
    }
  });
  std::sort(out.begin(), out.end());
  return out;
}

// The chunks are non-empty, disjoint and cover [first, last) exactly.
template <class I>
void expect_cover(const chunks<I>& c, I first, I last) {
  ASSERT_FALSE(c.empty());
  EXPECT_EQ(c.front().first, first);
  EXPECT_EQ(c.back().second, last);
  for (std::size_t k = 0; k < c.size(); ++k) {
    EXPECT_LT(c[k].first, c[k].second);
    if (k + 1 < c.size()) {
      EXPECT_EQ(c[k].second, c[k + 1].first);
    }
  }
}

class MixedBoundsTest : public weft_test::WorkerCount {};

TEST_P(MixedBoundsTest, ParallelForFromLiteralZeroToSize) {
  std::vector<int> v(10'007, 0);
  rt.run([&] {
    weft::parallel_for(0, v.size(), [&](std::size_t b, std::size_t e) {
      for (std::size_t i = b; i < e; ++i) ++v[i];
    });
  });
  EXPECT_EQ(std::count(v.begin(), v.end(), 1), static_cast<long>(v.size()));
  expect_cover(chunks_of<std::size_t>(rt, 0, v.size()), std::size_t{0}, v.size());
}

TEST_P(MixedBoundsTest, ParallelForWithGrainGivesExactChunks) {
  const std::size_t n = 1000;
  const auto c = chunks_of<std::size_t>(rt, 0, n, 64);
  expect_cover(c, std::size_t{0}, n);
  for (std::size_t k = 0; k < c.size(); ++k) {
    EXPECT_EQ(c[k].first, 64 * k);
    EXPECT_EQ(c[k].second, std::min(n, 64 * (k + 1)));
  }
  // The same chunks as with all three of the common type.
  EXPECT_EQ(c, chunks_of<std::size_t>(rt, std::size_t{0}, n, std::size_t{64}));
  // Equal bounds and a grain of another type.
  EXPECT_EQ(c, chunks_of<std::size_t>(rt, std::size_t{0}, n, 64u));
}

TEST_P(MixedBoundsTest, ParallelForOverSignedCommonType) {
  // short and long long: long long, negative bounds allowed.
  expect_cover(chunks_of<long long>(rt, short{-300}, 5000LL), -300LL, 5000LL);
  // unsigned char and int: int.
  expect_cover(chunks_of<int>(rt, static_cast<unsigned char>(3), -1 + 200), 3, 199);
  // int and a 64-bit signed type with a grain of a third type.
  const auto c = chunks_of<std::int64_t>(rt, -1000, std::int64_t{1000}, short{7});
  expect_cover(c, std::int64_t{-1000}, std::int64_t{1000});
  EXPECT_EQ(c.size(), 286u);  // ceil(2000 / 7)
}

TEST_P(MixedBoundsTest, ParallelForEmptyRangeCallsNothing) {
  std::atomic<int> calls{0};
  rt.run([&] {
    weft::parallel_for(0, std::size_t{0}, [&](std::size_t, std::size_t) { calls.fetch_add(1); });
    weft::parallel_for(5L, 5, 3, [&](long, long) { calls.fetch_add(1); });
  });
  EXPECT_EQ(calls.load(), 0);
}

TEST_P(MixedBoundsTest, ParallelReduceFromLiteralZeroToSize) {
  std::vector<double> v(100'003);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = 1.0 / static_cast<double>(i + 1);
  const auto mixed = rt.run([&] {
    return weft::parallel_reduce(
        0, v.size(), 0.0, [&](std::size_t i) { return v[i]; }, std::plus<>{});
  });
  const auto same = rt.run([&] {
    return weft::parallel_reduce(
        std::size_t{0}, v.size(), 0.0, [&](std::size_t i) { return v[i]; }, std::plus<>{});
  });
  EXPECT_EQ(mixed, same);  // the same tree: the same bits
  const auto count = rt.run([] {
    return weft::parallel_reduce(
        -50, 100L, 0L, [](long i) { return i; }, std::plus<>{});
  });
  EXPECT_EQ(count, (99 * 100) / 2 - (50 * 51) / 2);
}

TEST_P(MixedBoundsTest, NegativeBoundWithUnsignedCommonTypeThrows) {
  std::atomic<int> calls{0};
  expect_invalid_argument(
      [&] { rt.run([&] { weft::parallel_for(-1, std::size_t{10}, [&](std::size_t, std::size_t) { ++calls; }); }); },
      "first");
  expect_invalid_argument([&] { rt.run([&] { weft::parallel_for(0u, -1, [&](unsigned, unsigned) { ++calls; }); }); },
                          "last");
  expect_invalid_argument(
      [&] { rt.run([&] { weft::parallel_for(-8, std::size_t{10}, 2, [&](std::size_t, std::size_t) { ++calls; }); }); },
      "first");
  expect_invalid_argument(
      [&] { rt.run([&] { weft::parallel_for(0, std::size_t{10}, -2, [&](std::size_t, std::size_t) { ++calls; }); }); },
      "grain");
  expect_invalid_argument(
      [&] {
        rt.run([&] {
          return weft::parallel_reduce(
              -3, std::size_t{10}, 0, [&](std::size_t) { return ++calls; }, std::plus<>{});
        });
      },
      "first");
  // last < first keeps its own message.
  expect_invalid_argument(
      [&] { rt.run([&] { weft::parallel_for(10, std::size_t{3}, [&](std::size_t, std::size_t) { ++calls; }); }); },
      "last");
  EXPECT_EQ(calls.load(), 0);
}

WEFT_INSTANTIATE_WORKER_COUNTS(MixedBoundsTest);

TEST(MixedBoundsOutsideTest, CallsFromOutsideAnyRuntimeUseTheDefaultRuntime) {
  std::vector<std::uint64_t> v(4096);
  weft::parallel_for(0, v.size(), [&](std::size_t b, std::size_t e) {
    for (std::size_t i = b; i < e; ++i) v[i] = i;
  });
  const auto sum = weft::parallel_reduce(
      0, v.size(), std::uint64_t{0}, [&](std::size_t i) { return v[i]; }, std::plus<>{});
  EXPECT_EQ(sum, std::uint64_t{4095} * 4096 / 2);
}

}  // namespace
