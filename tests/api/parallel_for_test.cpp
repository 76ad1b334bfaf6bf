// SPDX-License-Identifier: MIT
// weft::parallel_for(first, last[, grain], fn): the chunks are disjoint, cover
// [first, last) exactly, respect the grain, and the splitting code does not
// overflow near the ends of the index type.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <weft/weft.hpp>

#include "index_types.hpp"
#include "seeded_rng.hpp"
#include "worker_count.hpp"

namespace {

__extension__ using wide = __int128;

template <class I>
using chunk = std::pair<I, I>;

// Items in [b, e) of an index type I, as an unsigned count (modular, exact).
template <class I>
std::uint64_t items(I b, I e) {
  return static_cast<std::uint64_t>(e) - static_cast<std::uint64_t>(b);
}

// Runs parallel_for on rt and returns the chunks it made, sorted.
template <class I>
std::vector<chunk<I>> chunks_of(weft::runtime& rt, I first, I last, std::optional<I> grain) {
  std::mutex m;
  std::vector<chunk<I>> out;
  auto record = [&](auto b, auto e) {
    static_assert(std::is_same_v<decltype(b), I> && std::is_same_v<decltype(e), I>, "fn receives two I");
    std::lock_guard lock(m);
    out.emplace_back(b, e);
  };
  rt.run([&] {
    if (grain) {
      weft::parallel_for(first, last, *grain, record);
    } else {
      weft::parallel_for(first, last, record);
    }
  });
  std::sort(out.begin(), out.end());
  return out;
}

// The chunks are non-empty, disjoint and cover [first, last) exactly; with a
// grain, every chunk but the one ending at last holds at least grain items.
template <class I>
void expect_valid_chunks(const std::vector<chunk<I>>& chunks, I first, I last, std::optional<I> grain) {
  if (first == last) {
    EXPECT_TRUE(chunks.empty()) << "first == last must call nothing";
    return;
  }
  ASSERT_FALSE(chunks.empty());
  EXPECT_EQ(chunks.front().first, first) << "the first chunk must start at first";
  EXPECT_EQ(chunks.back().second, last) << "the last chunk must end at last";
  std::size_t empty = 0;
  std::size_t gaps = 0;
  std::size_t runts = 0;
  for (std::size_t k = 0; k < chunks.size(); ++k) {
    const auto [b, e] = chunks[k];
    if (!(b < e)) ++empty;
    if (k + 1 < chunks.size() && e != chunks[k + 1].first) ++gaps;
    if (grain && e != last && items(b, e) < static_cast<std::uint64_t>(*grain)) ++runts;
  }
  EXPECT_EQ(empty, 0u) << "empty or reversed chunks";
  EXPECT_EQ(gaps, 0u) << "chunks that overlap or leave a gap";
  EXPECT_EQ(runts, 0u) << "chunks (other than the one ending at last) smaller than the grain";
}

// Ranges to try for index type I, clipped to the type: from zero, negative
// first, and the ends of the type.
template <class I>
std::vector<chunk<I>> ranges_for() {
  constexpr wide lo = std::numeric_limits<I>::min();
  constexpr wide hi = std::numeric_limits<I>::max();
  const std::pair<wide, wide> wanted[] = {
      {0, 1},          {0, 2},        {0, 3},          {0, 100},        {0, 1021},
      {0, 65536},      {-5000, 3000}, {-1, 1},         {lo, lo + 1},    {lo, lo + 1000},
      {lo, lo + 5000}, {hi - 1, hi},  {hi - 1000, hi}, {hi - 5000, hi}, {hi - 4093, hi - 3},
      {lo, hi},  // whole type (only where small, see below)
  };
  std::vector<chunk<I>> out;
  for (auto [a, b] : wanted) {
    a = std::clamp(a, lo, hi);
    b = std::clamp(b, lo, hi);
    if (a > b || b - a > 1'000'000) continue;
    out.emplace_back(static_cast<I>(a), static_cast<I>(b));
  }
  return out;
}

template <class I>
std::vector<std::optional<I>> grains_for() {
  std::vector<std::optional<I>> out{std::nullopt};
  for (wide g : {1, 2, 7, 64, 1000, 5000}) {
    if (g <= static_cast<wide>(std::numeric_limits<I>::max())) out.emplace_back(static_cast<I>(g));
  }
  return out;
}

template <class I>
std::string show(I v) {
  std::ostringstream os;
  if constexpr (std::is_signed_v<I>) {
    os << static_cast<long long>(v);
  } else {
    os << static_cast<unsigned long long>(v);
  }
  return os.str();
}

template <class I>
std::string show_range(I first, I last, std::optional<I> grain) {
  std::ostringstream os;
  os << "[" << show(first) << ", " << show(last) << ") grain " << (grain ? show(*grain) : "none");
  return os.str();
}

class ParallelForTest : public weft_test::WorkerCount {};

TEST_P(ParallelForTest, ChunksCoverRangeForEveryIndexType) {
  weft_test::for_each_index_type([&]<class I>(const char* type) {
    for (const auto& [first, last] : ranges_for<I>()) {
      for (const auto& grain : grains_for<I>()) {
        SCOPED_TRACE(::testing::Message() << "index type " << type << ", " << show_range(first, last, grain));
        expect_valid_chunks(chunks_of(rt, first, last, grain), first, last, grain);
      }
    }
  });
}

TEST_P(ParallelForTest, ChunksCoverBriefRanges) {
  // The ranges named in the test plan, spelled out.
  constexpr int imax = std::numeric_limits<int>::max();
  constexpr std::uint64_t umax = std::numeric_limits<std::uint64_t>::max();
  constexpr std::int64_t smin = std::numeric_limits<std::int64_t>::min();
  for (const auto& grain : {std::optional<int>{}, std::optional<int>{1}, std::optional<int>{100}}) {
    SCOPED_TRACE(show_range(imax - 1000, imax, grain));
    expect_valid_chunks(chunks_of(rt, imax - 1000, imax, grain), imax - 1000, imax, grain);
  }
  for (const auto& grain :
       {std::optional<std::uint64_t>{}, std::optional<std::uint64_t>{1}, std::optional<std::uint64_t>{333}}) {
    SCOPED_TRACE(show_range(umax - 5000, umax, grain));
    expect_valid_chunks(chunks_of(rt, umax - 5000, umax, grain), umax - 5000, umax, grain);
  }
  for (const auto& grain : {std::optional<std::int64_t>{}, std::optional<std::int64_t>{17}}) {
    SCOPED_TRACE(show_range(smin, smin + 5000, grain));
    expect_valid_chunks(chunks_of(rt, smin, smin + 5000, grain), smin, smin + 5000, grain);
    SCOPED_TRACE(show_range<std::int64_t>(-3000, -7, grain));
    expect_valid_chunks<std::int64_t>(chunks_of<std::int64_t>(rt, -3000, -7, grain), -3000, -7, grain);
  }
}

TEST_P(ParallelForTest, WholeRangeOfWideTypesWithLargeGrain) {
  // 2^64 - 1 items in a few dozen chunks: the chunks are recorded, never
  // iterated, so only the splitting arithmetic is exercised.
  constexpr std::int64_t smin = std::numeric_limits<std::int64_t>::min();
  constexpr std::int64_t smax = std::numeric_limits<std::int64_t>::max();
  constexpr std::uint64_t umax = std::numeric_limits<std::uint64_t>::max();
  for (int shift : {57, 58, 60, 62}) {
    const std::optional<std::int64_t> sg = std::int64_t{1} << shift;
    SCOPED_TRACE(show_range(smin, smax, sg));
    expect_valid_chunks(chunks_of(rt, smin, smax, sg), smin, smax, sg);
    const std::optional<std::uint64_t> ug = std::uint64_t{1} << shift;
    SCOPED_TRACE(show_range<std::uint64_t>(0, umax, ug));
    expect_valid_chunks<std::uint64_t>(chunks_of<std::uint64_t>(rt, 0, umax, ug), 0, umax, ug);
  }
  // The largest signed grain over the whole signed range.
  SCOPED_TRACE(show_range(smin, smax, std::optional<std::int64_t>{smax}));
  expect_valid_chunks(chunks_of(rt, smin, smax, std::optional<std::int64_t>{smax}), smin, smax,
                      std::optional<std::int64_t>{smax});
}

// A grain larger than half of a range of 2^64 - 1 items: chunks hold exactly
// a grain from first, so a full chunk and the shorter last one when the
// grain fits once, one chunk when it is the whole range (every policy).
TEST_P(ParallelForTest, GrainAboveHalfOfFullUnsignedRangeGivesOneOrTwoChunks) {
  constexpr std::uint64_t umax = std::numeric_limits<std::uint64_t>::max();
  for (const std::uint64_t grain : {std::uint64_t{1} << 63, (std::uint64_t{1} << 63) + 12345, umax}) {
    SCOPED_TRACE(show_range<std::uint64_t>(0, umax, grain));
    const auto chunks = chunks_of<std::uint64_t>(rt, 0, umax, grain);
    expect_valid_chunks(chunks, std::uint64_t{0}, umax, std::optional<std::uint64_t>{grain});
    EXPECT_EQ(chunks.size(), grain < umax ? 2u : 1u);
  }
}

// With a grain the chunks are exactly [first + k grain, first + (k + 1)
// grain), the last one shorter: the user's boundaries.
TEST_P(ParallelForTest, GrainGivesChunksOfExactlyTheGrainFromFirst) {
  for (const std::int64_t grain : {1, 3, 64, 1000}) {
    for (const std::int64_t first : {-1000, 0, 7}) {
      const std::int64_t last = first + 10'007;
      const auto chunks = chunks_of<std::int64_t>(rt, first, last, std::optional<std::int64_t>{grain});
      for (const auto& [b, e] : chunks) {
        EXPECT_EQ((b - first) % grain, 0) << "chunk [" << b << ", " << e << ") of grain " << grain;
        EXPECT_TRUE(e - b == grain || e == last) << "chunk [" << b << ", " << e << ") of grain " << grain;
      }
      EXPECT_EQ(chunks.size(), static_cast<std::size_t>((last - first + grain - 1) / grain));
    }
  }
}

TEST_P(ParallelForTest, FirstEqualsLastCallsNothing) {
  weft_test::for_each_index_type([&]<class I>(const char* type) {
    SCOPED_TRACE(type);
    for (const I v : {std::numeric_limits<I>::min(), I{0}, I{1}, std::numeric_limits<I>::max()}) {
      std::atomic<int> calls{0};
      rt.run([&] {
        weft::parallel_for(v, v, [&](I, I) { calls.fetch_add(1); });
        weft::parallel_for(v, v, I{1}, [&](I, I) { calls.fetch_add(1); });
        weft::parallel_for(v, v, std::numeric_limits<I>::max(), [&](I, I) { calls.fetch_add(1); });
      });
      EXPECT_EQ(calls.load(), 0) << "at " << show(v);
    }
  });
}

TEST_P(ParallelForTest, ChunksCoverRandomRanges) {
  weft_test::seeded_rng rng;
  for (int round = 0; round < 30; ++round) {
    const auto first = rng.uniform<std::int64_t>(-1'000'000, 1'000'000);
    const auto last = first + rng.uniform<std::int64_t>(0, 200'000);
    std::optional<std::int64_t> grain;
    if (rng.uniform(0, 3) != 0) grain = rng.uniform<std::int64_t>(1, 5000);
    SCOPED_TRACE(show_range(first, last, grain));
    expect_valid_chunks(chunks_of(rt, first, last, grain), first, last, grain);
  }
}

TEST_P(ParallelForTest, GrainLargerThanRangeGivesOneChunk) {
  for (const int n : {1, 2, 10, 999}) {
    SCOPED_TRACE(n);
    const auto chunks = chunks_of(rt, 5, 5 + n, std::optional<int>{1000});
    ASSERT_EQ(chunks.size(), 1u);
    EXPECT_EQ(chunks.front(), (chunk<int>{5, 5 + n}));
  }
}

WEFT_INSTANTIATE_WORKER_COUNTS(ParallelForTest);

TEST(ParallelForOutsideTest, ChunksCoverRangeFromOutsideAnyRuntime) {
  std::mutex m;
  std::vector<chunk<long>> chunks;
  weft::parallel_for(-70'000L, 30'001L, 128L, [&](long b, long e) {
    std::lock_guard lock(m);
    chunks.emplace_back(b, e);
  });
  std::sort(chunks.begin(), chunks.end());
  expect_valid_chunks(chunks, -70'000L, 30'001L, std::optional<long>{128});
}

}  // namespace
