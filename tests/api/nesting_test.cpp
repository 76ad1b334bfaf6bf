// SPDX-License-Identifier: MIT
// Nested parallel calls: three and more levels deep with exact counts, and
// recursion thousands of levels deep through parallelize, join and
// task_group, with 1 worker and with many: no deadlock, no stack overflow.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iterator>
#include <list>
#include <string>
#include <utility>
#include <vector>

#include <weft/algorithm.hpp>
#include <weft/weft.hpp>

#include "child_process.hpp"
#include "sanitizers.hpp"
#include "worker_count.hpp"

namespace {

class NestingTest : public weft_test::WorkerCount {};

TEST_P(NestingTest, ThreeLevelsOfParallelizeAreExact) {
  constexpr int a = 7;
  constexpr int b = 11;
  constexpr int c = 13;
  std::vector<std::atomic<int>> counts(a * b * c);
  rt.run([&] {
    weft::parallelize(a, [&](int i) {
      weft::parallelize(b, [&](int j) {
        weft::parallelize(c, [&](int k) { counts[static_cast<std::size_t>((i * b + j) * c + k)].fetch_add(1); });
      });
    });
  });
  for (std::size_t x = 0; x < counts.size(); ++x) ASSERT_EQ(counts[x].load(), 1) << "cell " << x;
}

TEST_P(NestingTest, FourLevelsMixingEveryPrimitiveAreExact) {
  std::atomic<std::int64_t> leaves{0};
  std::atomic<std::int64_t> sum{0};
  rt.run([&] {
    weft::parallelize(6, [&](int i) {
      weft::task_group g;
      for (int j = 0; j < 5; ++j) {
        g.spawn([&, i, j] {
          weft::join(
              [&] {
                weft::parallel_for(0, 100, 7, [&](int lo, int hi) {
                  for (int k = lo; k < hi; ++k) {
                    leaves.fetch_add(1);
                    sum.fetch_add(i * 1000 + j * 100 + k);
                  }
                });
              },
              [&] { weft::parallelize(10, 2, [&](int) { leaves.fetch_add(1); }); });
        });
      }
      g.wait();
    });
  });
  EXPECT_EQ(leaves.load(), 6 * 5 * (100 + 10));
  std::int64_t expected = 0;
  for (int i = 0; i < 6; ++i) {
    for (int j = 0; j < 5; ++j) {
      for (int k = 0; k < 100; ++k) expected += i * 1000 + j * 100 + k;
    }
  }
  EXPECT_EQ(sum.load(), expected);
}

// Each level calls parallelize(width, ...): index 0 recurses into the next
// level, the other indices are leaves. Returns the depth reached.
int descend_parallelize(int depth, int width, std::atomic<int>& leaves) {
  if (depth == 0) return 0;
  std::atomic<int> below{0};
  weft::parallelize(width, [&](int i) {
    if (i == 0) {
      below.store(descend_parallelize(depth - 1, width, leaves) + 1);
    } else {
      leaves.fetch_add(1);
    }
  });
  return below.load();
}

// The same through parallelize(2, 1, ...): at most one call in flight.
int descend_capped(int depth) {
  if (depth == 0) return 0;
  std::atomic<int> below{0};
  weft::parallelize(2, 1, [&](int i) {
    if (i == 0) below.store(descend_capped(depth - 1) + 1);
  });
  return below.load();
}

// Through join, recursing in f (the caller's half).
int descend_join(int depth) {
  if (depth == 0) return 0;
  auto [rest, one] = weft::join([depth] { return descend_join(depth - 1); }, [] { return 1; });
  return rest + one;
}

// Through runtime::run on a worker of that runtime (which calls f there),
// recursing in f: it never checked the stack, and 2 000 levels overflowed.
int descend_run(weft::runtime& rt, int depth) {
  if (depth == 0) return 0;
  return rt.run([&rt, depth] { return descend_run(rt, depth - 1) + 1; });
}

// Through join, recursing in g (the half other workers may take).
int descend_join_second(int depth) {
  if (depth == 0) return 0;
  auto [one, rest] = weft::join([] { return 1; }, [depth] { return descend_join_second(depth - 1); });
  return rest + one;
}

// Through a task_group of one spawned call per level.
int descend_group(int depth) {
  if (depth == 0) return 0;
  int below = 0;
  weft::task_group g;
  g.spawn([&below, depth] { below = descend_group(depth - 1) + 1; });
  g.wait();
  return below;
}

// Through parallel_reduce of two items, recursing in item 0: the block a
// reduction runs as its sample, on the calling stack, before any join.
int descend_reduce(int depth) {
  if (depth == 0) return 0;
  return static_cast<int>(weft::parallel_reduce(
      0, 2, 0L, [depth](int i) -> long { return i == 0 ? descend_reduce(depth - 1) + 1 : 0; }, std::plus<>{}));
}

// Through weft::transform_reduce over two items: one block, which runs
// inline.
int descend_transform_reduce(int depth) {
  if (depth == 0) return 0;
  const int items[2] = {0, 1};
  return static_cast<int>(
      weft::transform_reduce(std::begin(items), std::end(items), 0L, std::plus<>{},
                             [depth](int i) -> long { return i == 0 ? descend_transform_reduce(depth - 1) + 1 : 0; }));
}

// Through weft::find_if over two items: a small search, which runs inline.
int descend_find(int depth) {
  if (depth == 0) return 0;
  const int items[2] = {0, 1};
  int below = 0;
  const int* hit = weft::find_if(std::begin(items), std::end(items), [&](int i) {
    if (i == 0) below = descend_find(depth - 1) + 1;
    return i == 1;
  });
  return hit == items + 1 ? below : -1;
}

// Through weft::transform_inclusive_scan over two items: a scan of one
// block runs serially, inline.
int descend_scan(int depth) {
  if (depth == 0) return 0;
  const int items[2] = {0, 1};
  long out[2] = {};
  weft::transform_inclusive_scan(std::begin(items), std::end(items), std::begin(out), std::plus<>{},
                                 [depth](int i) -> long { return i == 0 ? descend_scan(depth - 1) + 1 : 0; });
  return static_cast<int>(out[1]);
}

// Through an algorithm whose callable (a predicate, a comparator, a
// function) calls through<Run> again at its first call: Run runs the
// algorithm over a few items, calling `visit` from each call of its callable.
// Each of these ran the callable on the calling stack with no stack check
// (a small range runs the std:: algorithm serially; so does one worker; a
// sort's sample and a merge's split call the comparator before any join),
// and the recursion overflowed its stack. Now every algorithm checks at its
// entry; the serial calls over iterators that are not random-access too.
using visit_fn = std::function<void()>;

template <void (*Run)(const visit_fn&)>
int through(int depth) {
  if (depth == 0) return 0;
  int below = -1;
  bool first = true;
  Run([&] {
    if (std::exchange(first, false)) below = through<Run>(depth - 1) + 1;
  });
  return below;
}

std::vector<int> four_items() { return {3, 1, 2, 0}; }

void run_copy_if(const visit_fn& visit) {
  const std::vector<int> v = four_items();
  std::vector<int> out(v.size());
  weft::copy_if(v.begin(), v.end(), out.begin(), [&](int) {
    visit();
    return true;
  });
}
void run_remove_if(const visit_fn& visit) {
  std::vector<int> v = four_items();
  weft::remove_if(v.begin(), v.end(), [&](int) {
    visit();
    return false;
  });
}
void run_unique(const visit_fn& visit) {
  std::vector<int> v = four_items();
  weft::unique(v.begin(), v.end(), [&](int a, int b) {
    visit();
    return a == b;
  });
}
void run_sort(const visit_fn& visit) {
  std::vector<int> v = four_items();
  weft::sort(v.begin(), v.end(), [&](int a, int b) {
    visit();
    return a < b;
  });
}
void run_stable_sort(const visit_fn& visit) {
  std::vector<int> v = four_items();
  weft::stable_sort(v.begin(), v.end(), [&](int a, int b) {
    visit();
    return a < b;
  });
}
void run_nth_element(const visit_fn& visit) {
  std::vector<int> v = four_items();
  weft::nth_element(v.begin(), v.begin() + 2, v.end(), [&](int a, int b) {
    visit();
    return a < b;
  });
}
void run_merge(const visit_fn& visit) {
  const std::vector<int> a{0, 2};
  const std::vector<int> b{1, 3};
  std::vector<int> out(4);
  weft::merge(a.begin(), a.end(), b.begin(), b.end(), out.begin(), [&](int x, int y) {
    visit();
    return x < y;
  });
}
void run_for_each_over_a_list(const visit_fn& visit) {
  std::list<int> l{0, 1};
  weft::for_each(l.begin(), l.end(), [&](int) { visit(); });
}
void run_copy_if_into_a_back_inserter(const visit_fn& visit) {
  const std::vector<int> v = four_items();
  std::vector<int> out;
  weft::copy_if(v.begin(), v.end(), std::back_inserter(out), [&](int) {
    visit();
    return true;
  });
}
void run_sort_of_bits(const visit_fn& visit) {  // std::vector<bool>: serial
  std::vector<bool> v{true, false, true};
  weft::sort(v.begin(), v.end(), [&](bool a, bool b) {
    visit();
    return a < b;
  });
}

// The depths reached through each algorithm above, k_depth for each that
// completed.
std::vector<int> through_every_algorithm(int depth) {
  return {through<run_copy_if>(depth),
          through<run_remove_if>(depth),
          through<run_unique>(depth),
          through<run_sort>(depth),
          through<run_stable_sort>(depth),
          through<run_nth_element>(depth),
          through<run_merge>(depth),
          through<run_for_each_over_a_list>(depth),
          through<run_copy_if_into_a_back_inserter>(depth),
          through<run_sort_of_bits>(depth)};
}

int through_every_algorithm_reached(int depth) {
  const std::vector<int> reached = through_every_algorithm(depth);
  for (std::size_t i = 0; i < reached.size(); ++i) {
    if (reached[i] != depth) {
      std::fprintf(stderr, "algorithm %zu reached depth %d of %d\n", i, reached[i], depth);
      return reached[i];
    }
  }
  return depth;
}

constexpr int k_depth = 2000;

// Runs `descend` on a runtime of its own in a child process and expects it to
// return k_depth. A stack overflow kills its process: in a child it fails this
// test alone, with the overflow report in the message, instead of ending the
// whole executable.
void expect_deep_recursion_completes(int workers, std::size_t stack_size, int (*descend)(weft::runtime&)) {
  SCOPED_TRACE(::testing::Message() << workers << " workers, stack_size " << stack_size);
  const auto r = weft_test::run_in_child([&] {
    weft::runtime rt{weft::config{.workers = workers, .stack_size = stack_size}};
    const int reached = descend(rt);
    if (reached != k_depth) {
      std::fprintf(stderr, "recursion reached depth %d of %d\n", reached, k_depth);
      return 1;
    }
    return 0;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

class DeepRecursionTest : public ::testing::TestWithParam<int> {};

TEST_P(DeepRecursionTest, ThroughParallelizeOfOne) {
  for (std::size_t stack : {weft::config{}.stack_size, weft::k_min_stack_size}) {
    expect_deep_recursion_completes(GetParam(), stack, [](weft::runtime& rt) {
      std::atomic<int> leaves{0};
      const int depth = rt.run([&] { return descend_parallelize(k_depth, 1, leaves); });
      return leaves.load() == 0 ? depth : -1;
    });
  }
}

TEST_P(DeepRecursionTest, ThroughParallelizeOfTwo) {
  for (std::size_t stack : {weft::config{}.stack_size, weft::k_min_stack_size}) {
    expect_deep_recursion_completes(GetParam(), stack, [](weft::runtime& rt) {
      std::atomic<int> leaves{0};
      const int depth = rt.run([&] { return descend_parallelize(k_depth, 2, leaves); });
      return leaves.load() == k_depth ? depth : -1;
    });
  }
}

TEST_P(DeepRecursionTest, ThroughCappedParallelize) {
  for (std::size_t stack : {weft::config{}.stack_size, weft::k_min_stack_size}) {
    expect_deep_recursion_completes(GetParam(), stack,
                                    [](weft::runtime& rt) { return rt.run([] { return descend_capped(k_depth); }); });
  }
}

TEST_P(DeepRecursionTest, ThroughJoin) {
  for (std::size_t stack : {weft::config{}.stack_size, weft::k_min_stack_size}) {
    expect_deep_recursion_completes(GetParam(), stack,
                                    [](weft::runtime& rt) { return rt.run([] { return descend_join(k_depth); }); });
  }
}

TEST_P(DeepRecursionTest, ThroughRunOnItsOwnWorker) {
  for (std::size_t stack : {weft::config{}.stack_size, weft::k_min_stack_size}) {
    expect_deep_recursion_completes(
        GetParam(), stack, [](weft::runtime& rt) { return rt.run([&rt] { return descend_run(rt, k_depth); }); });
  }
}

TEST_P(DeepRecursionTest, ThroughSecondHalfOfJoin) {
  for (std::size_t stack : {weft::config{}.stack_size, weft::k_min_stack_size}) {
    expect_deep_recursion_completes(
        GetParam(), stack, [](weft::runtime& rt) { return rt.run([] { return descend_join_second(k_depth); }); });
  }
}

TEST_P(DeepRecursionTest, ThroughTaskGroup) {
  for (std::size_t stack : {weft::config{}.stack_size, weft::k_min_stack_size}) {
    expect_deep_recursion_completes(GetParam(), stack,
                                    [](weft::runtime& rt) { return rt.run([] { return descend_group(k_depth); }); });
  }
}

TEST_P(DeepRecursionTest, ThroughParallelReduce) {
  for (std::size_t stack : {weft::config{}.stack_size, weft::k_min_stack_size}) {
    expect_deep_recursion_completes(GetParam(), stack,
                                    [](weft::runtime& rt) { return rt.run([] { return descend_reduce(k_depth); }); });
  }
}

TEST_P(DeepRecursionTest, ThroughAlgorithmsOverSmallRanges) {
  for (std::size_t stack : {weft::config{}.stack_size, weft::k_min_stack_size}) {
    expect_deep_recursion_completes(GetParam(), stack, [](weft::runtime& rt) {
      return rt.run([] {
        const int a = descend_transform_reduce(k_depth);
        const int b = descend_find(k_depth);
        const int c = descend_scan(k_depth);
        return a == b && b == c ? a : -1;
      });
    });
  }
}

// Under AddressSanitizer, twice the smallest stack: there an algorithm's own
// frames between its entry's check and the callable take up to 6.7 KB
// (nth_element; 0.4 KB in a release build), more than the reserve the check
// leaves on a 16 KiB stack once this test's own frames are added.
constexpr std::size_t k_smallest_stack_here = (weft_test::k_asan ? 2 : 1) * weft::k_min_stack_size;

TEST_P(DeepRecursionTest, ThroughEveryAlgorithm) {
  for (std::size_t stack : {weft::config{}.stack_size, k_smallest_stack_here}) {
    expect_deep_recursion_completes(GetParam(), stack, [](weft::runtime& rt) {
      return rt.run([] { return through_every_algorithm_reached(k_depth); });
    });
  }
}

// From a thread outside any runtime: the calls go to the default runtime (of
// the child: GetParam() workers through WEFT_NUM_WORKERS).
TEST_P(DeepRecursionTest, FromOutsideAnyRuntime) {
  const int workers = GetParam();
  const auto r = weft_test::run_in_child([workers] {
    ::setenv("WEFT_NUM_WORKERS", std::to_string(workers).c_str(), 1);
    std::atomic<int> leaves{0};
    const int a = descend_parallelize(k_depth, 2, leaves);
    const int b = descend_join(k_depth);
    const int c = descend_reduce(k_depth);
    const int d = descend_transform_reduce(k_depth);
    if (a != k_depth || b != k_depth || c != k_depth || d != k_depth || leaves.load() != k_depth) {
      std::fprintf(stderr, "depths %d, %d, %d and %d, leaves %d, of %d\n", a, b, c, d, leaves.load(), k_depth);
      return 1;
    }
    if (through_every_algorithm_reached(k_depth) != k_depth) return 2;
    return 0;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

INSTANTIATE_TEST_SUITE_P(Workers, DeepRecursionTest, ::testing::ValuesIn(weft_test::k_worker_counts),
                         weft_test::worker_count_name);

// Many deep recursions at once.
TEST_P(NestingTest, ParallelDeepRecursions) {
  std::atomic<int> total{0};
  rt.run([&] { weft::parallelize(8, [&](int) { total.fetch_add(descend_join(500)); }); });
  EXPECT_EQ(total.load(), 8 * 500);
}

WEFT_INSTANTIATE_WORKER_COUNTS(NestingTest);

}  // namespace
