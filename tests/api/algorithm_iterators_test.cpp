// SPDX-License-Identifier: MIT
// <weft/algorithm.hpp> over iterators that are not random-access: a
// std::list's, a std::forward_list's, a std::set's, std::istream_iterator,
// std::back_inserter and std::ostream_iterator as outputs, and ranges that
// are not random-access (a std::list, a filter view). Each call gives what
// its std:: counterpart gives, calling the user's callables in order on the
// calling thread (serially); from outside a runtime, on a worker, and inside
// a parallelize item. (Before, none of these calls compiled: every overload
// took random-access iterators only.)
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <forward_list>
#include <functional>
#include <iterator>
#include <list>
#include <numeric>
#include <ranges>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <weft/algorithm.hpp>
#include <weft/weft.hpp>

#include "watchdog.hpp"  // every test has a time limit

namespace {

// Where a call runs: outside any runtime, on a worker of a 2-worker
// runtime, or inside an item of a loop there.
enum class place { outside, worker, item };

class AlgorithmIteratorsTest : public ::testing::TestWithParam<place> {
 protected:
  // Runs f() at the test's place.
  template <class F>
  void at_place(F f) {
    switch (GetParam()) {
      case place::outside: f(); break;
      case place::worker: m_rt.run(f); break;
      case place::item: m_rt.run([&] { weft::parallelize(1, [&](int) { f(); }); }); break;
    }
  }

  weft::runtime m_rt{weft::config{.workers = 2}};
};

INSTANTIATE_TEST_SUITE_P(Places, AlgorithmIteratorsTest, ::testing::Values(place::outside, place::worker, place::item),
                         [](const ::testing::TestParamInfo<place>& info) {
                           switch (info.param) {
                             case place::outside: return std::string("Outside");
                             case place::worker: return std::string("OnAWorker");
                             case place::item: return std::string("InAnItem");
                           }
                           return std::string("Unknown");
                         });

std::list<int> some_list(int n) {
  std::list<int> l;
  for (int i = 0; i < n; ++i) l.push_back((i * 7919) % 101 - 50);
  return l;
}

// Records the order of the calls of a callable and the threads they ran on.
struct call_log {
  std::vector<int> m_items;
  std::vector<std::thread::id> m_threads;
  void add(int x) {
    m_items.push_back(x);
    m_threads.push_back(std::this_thread::get_id());
  }
  // Every call on one thread, the one that made the algorithm's call.
  bool on_one_thread(std::thread::id caller) const {
    return std::all_of(m_threads.begin(), m_threads.end(), [&](std::thread::id t) { return t == caller; });
  }
};

TEST_P(AlgorithmIteratorsTest, ElementWiseCallsRunInOrderOnTheCallingThread) {
  at_place([] {
    const auto caller = std::this_thread::get_id();
    std::list<int> l = some_list(1000);
    const std::vector<int> want(l.begin(), l.end());

    call_log log;
    weft::for_each(l.begin(), l.end(), [&](int& x) {
      log.add(x);
      x += 1;
    });
    EXPECT_EQ(log.m_items, want);  // in order, each item once
    EXPECT_TRUE(log.on_one_thread(caller));
    weft::for_each(l, [](int& x) { x -= 1; });
    EXPECT_TRUE(std::equal(l.begin(), l.end(), want.begin(), want.end()));

    call_log first_n;
    const auto it = weft::for_each_n(l.begin(), 10, [&](int x) { first_n.add(x); });
    EXPECT_EQ(first_n.m_items, std::vector<int>(want.begin(), want.begin() + 10));
    EXPECT_EQ(it, std::next(l.begin(), 10));
    EXPECT_EQ(weft::for_each_n(l.begin(), 2.9, [](int) {}), std::next(l.begin(), 2));  // truncated, as std::
    EXPECT_THROW(weft::for_each_n(l.begin(), -1, [](int) {}), std::invalid_argument);

    std::forward_list<int> f(5);
    weft::fill(f.begin(), f.end(), 7);
    EXPECT_EQ(std::vector<int>(f.begin(), f.end()), std::vector<int>(5, 7));
    weft::fill(f, 3);
    EXPECT_EQ(std::vector<int>(f.begin(), f.end()), std::vector<int>(5, 3));
    int next = 0;
    weft::generate(f.begin(), f.end(), [&] { return next++; });
    EXPECT_EQ(std::vector<int>(f.begin(), f.end()), (std::vector<int>{0, 1, 2, 3, 4}));
    weft::generate(f, [&] { return next++; });
    EXPECT_EQ(std::vector<int>(f.begin(), f.end()), (std::vector<int>{5, 6, 7, 8, 9}));
  });
}

TEST_P(AlgorithmIteratorsTest, OutputsThatAreNotRandomAccess) {
  at_place([] {
    const std::vector<int> v = [] {
      std::list<int> l = some_list(500);
      return std::vector<int>(l.begin(), l.end());
    }();
    auto even = [](int x) { return x % 2 == 0; };
    auto twice = [](int x) { return 2 * x; };

    // A random-access input with a back_inserter: the documented form of
    // copy_if with a common output iterator.
    std::vector<int> got;
    std::vector<int> want;
    std::copy_if(v.begin(), v.end(), std::back_inserter(want), even);
    auto out_end = weft::copy_if(v.begin(), v.end(), std::back_inserter(got), even);
    static_cast<void>(out_end);
    EXPECT_EQ(got, want);
    got.clear();
    weft::copy_if(v, std::back_inserter(got), even);
    EXPECT_EQ(got, want);

    got.clear();
    want.clear();
    std::transform(v.begin(), v.end(), std::back_inserter(want), twice);
    weft::transform(v.begin(), v.end(), std::back_inserter(got), twice);
    EXPECT_EQ(got, want);
    got.clear();
    weft::transform(v, std::back_inserter(got), twice);
    EXPECT_EQ(got, want);
    got.clear();
    weft::transform(v.begin(), v.end(), v.begin(), std::back_inserter(got), std::plus<>{});
    EXPECT_EQ(got, want);
    got.clear();
    weft::transform(v, v, std::back_inserter(got), std::plus<>{});
    EXPECT_EQ(got, want);

    got.clear();
    weft::copy(v.begin(), v.end(), std::back_inserter(got));
    EXPECT_EQ(got, v);
    std::ostringstream text;
    weft::copy(v.begin(), v.begin() + 3, std::ostream_iterator<int>(text, ","));
    EXPECT_EQ(text.str(), std::to_string(v[0]) + "," + std::to_string(v[1]) + "," + std::to_string(v[2]) + ",");

    // The scans, into a back_inserter: as std::.
    auto scans_match = [&](auto weft_scan, auto std_scan) {
      std::vector<long> a;
      std::vector<long> b;
      weft_scan(std::back_inserter(a));
      std_scan(std::back_inserter(b));
      EXPECT_EQ(a, b);
    };
    scans_match([&](auto o) { weft::inclusive_scan(v.begin(), v.end(), o); },
                [&](auto o) { std::inclusive_scan(v.begin(), v.end(), o); });
    scans_match([&](auto o) { weft::inclusive_scan(v, o, std::plus<>{}); },
                [&](auto o) { std::inclusive_scan(v.begin(), v.end(), o, std::plus<>{}); });
    scans_match([&](auto o) { weft::inclusive_scan(v.begin(), v.end(), o, std::plus<>{}, 100L); },
                [&](auto o) { std::inclusive_scan(v.begin(), v.end(), o, std::plus<>{}, 100L); });
    scans_match([&](auto o) { weft::exclusive_scan(v.begin(), v.end(), o, 5L); },
                [&](auto o) { std::exclusive_scan(v.begin(), v.end(), o, 5L); });
    scans_match([&](auto o) { weft::exclusive_scan(v, o, 5L, std::plus<>{}); },
                [&](auto o) { std::exclusive_scan(v.begin(), v.end(), o, 5L, std::plus<>{}); });
    scans_match([&](auto o) { weft::transform_inclusive_scan(v.begin(), v.end(), o, std::plus<>{}, twice); },
                [&](auto o) { std::transform_inclusive_scan(v.begin(), v.end(), o, std::plus<>{}, twice); });
    scans_match([&](auto o) { weft::transform_inclusive_scan(v, o, std::plus<>{}, twice, 1L); },
                [&](auto o) { std::transform_inclusive_scan(v.begin(), v.end(), o, std::plus<>{}, twice, 1L); });
    scans_match([&](auto o) { weft::transform_exclusive_scan(v.begin(), v.end(), o, 3L, std::plus<>{}, twice); },
                [&](auto o) { std::transform_exclusive_scan(v.begin(), v.end(), o, 3L, std::plus<>{}, twice); });

    std::vector<int> a(v.begin(), v.begin() + 200);
    std::vector<int> b(v.begin() + 200, v.end());
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    got.clear();
    want.clear();
    std::merge(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(want));
    weft::merge(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(got));
    EXPECT_EQ(got, want);
    got.clear();
    weft::merge(a, b, std::back_inserter(got));
    EXPECT_EQ(got, want);
  });
}

TEST_P(AlgorithmIteratorsTest, ReductionsFoldFromLeftToRight) {
  at_place([] {
    std::list<int> l = some_list(1000);
    const std::vector<int> v(l.begin(), l.end());
    EXPECT_EQ(weft::reduce(l.begin(), l.end()), std::accumulate(v.begin(), v.end(), 0));
    EXPECT_EQ(weft::reduce(l), std::accumulate(v.begin(), v.end(), 0));
    EXPECT_EQ(weft::reduce(l.begin(), l.end(), 10L), std::accumulate(v.begin(), v.end(), 10L));
    EXPECT_EQ(weft::reduce(l, 10L), std::accumulate(v.begin(), v.end(), 10L));

    // An associative operation that is not commutative: the order shows.
    std::list<std::string> words{"a", "b", "c", "d"};
    EXPECT_EQ(weft::reduce(words.begin(), words.end(), std::string(">"), std::plus<>{}), ">abcd");
    EXPECT_EQ(weft::reduce(words, std::string(">"), std::plus<>{}), ">abcd");
    auto upper = [](const std::string& s) { return std::string(1, static_cast<char>(s[0] - 'a' + 'A')); };
    EXPECT_EQ(weft::transform_reduce(words.begin(), words.end(), std::string(), std::plus<>{}, upper), "ABCD");
    EXPECT_EQ(weft::transform_reduce(words, std::string("-"), std::plus<>{}, upper), "-ABCD");

    std::forward_list<long> f(v.begin(), v.end());
    const long dot = std::inner_product(v.begin(), v.end(), v.begin(), 0L);
    EXPECT_EQ(weft::transform_reduce(f.begin(), f.end(), v.begin(), 0L), dot);
    EXPECT_EQ(weft::transform_reduce(f, v, 0L), dot);
    EXPECT_EQ(weft::transform_reduce(f.begin(), f.end(), v.begin(), 0L, std::plus<>{}, std::multiplies<>{}), dot);
    EXPECT_EQ(weft::transform_reduce(f, v, 0L, std::plus<>{}, std::multiplies<>{}), dot);

    auto negative = [](int x) { return x < 0; };
    EXPECT_EQ(weft::count_if(l.begin(), l.end(), negative), std::count_if(v.begin(), v.end(), negative));
    EXPECT_EQ(weft::count_if(l, negative), std::count_if(v.begin(), v.end(), negative));

    // A single-pass input.
    std::istringstream in("1 2 3 4 5");
    EXPECT_EQ(weft::reduce(std::istream_iterator<int>(in), std::istream_iterator<int>()), 15);
  });
}

TEST_P(AlgorithmIteratorsTest, SearchesAndExtremesAsStd) {
  at_place([] {
    std::list<int> l = some_list(1000);
    const std::vector<int> v(l.begin(), l.end());
    auto is = [](int k) { return [k](int x) { return x == k; }; };
    for (int k : {v.front(), v[500], v.back(), 1000}) {
      const auto want = std::find_if(v.begin(), v.end(), is(k)) - v.begin();
      EXPECT_EQ(std::distance(l.begin(), weft::find_if(l.begin(), l.end(), is(k))), want);
      EXPECT_EQ(std::distance(l.begin(), weft::find_if(l, is(k))), want);
      EXPECT_EQ(weft::any_of(l.begin(), l.end(), is(k)), k != 1000);
      EXPECT_EQ(weft::any_of(l, is(k)), k != 1000);
      EXPECT_EQ(weft::none_of(l.begin(), l.end(), is(k)), k == 1000);
      EXPECT_EQ(weft::none_of(l, is(k)), k == 1000);
    }
    EXPECT_TRUE(weft::all_of(l.begin(), l.end(), [](int x) { return x >= -50; }));
    EXPECT_FALSE(weft::all_of(l, [](int x) { return x > -50; }));

    // The searches stop at the answer, as std:: does.
    int calls = 0;
    EXPECT_TRUE(weft::any_of(l, [&](int x) {
      ++calls;
      return x == v[10];
    }));
    EXPECT_EQ(calls, static_cast<int>(std::find(v.begin(), v.end(), v[10]) - v.begin()) + 1);

    const std::set<int> s(v.begin(), v.end());
    EXPECT_EQ(*weft::min_element(s.begin(), s.end()), *s.begin());
    EXPECT_EQ(*weft::max_element(s), *s.rbegin());
    const auto [lo, hi] = weft::minmax_element(s, std::greater<>{});
    EXPECT_EQ(*lo, *s.rbegin());
    EXPECT_EQ(*hi, *s.begin());
    // The first smallest and the last largest, as std::minmax_element.
    const auto want = std::minmax_element(v.begin(), v.end());
    const auto [first_min, last_max] = weft::minmax_element(l.begin(), l.end());
    EXPECT_EQ(std::distance(l.begin(), first_min), want.first - v.begin());
    EXPECT_EQ(std::distance(l.begin(), last_max), want.second - v.begin());
    EXPECT_EQ(weft::min_element(l.end(), l.end()), l.end());
  });
}

TEST_P(AlgorithmIteratorsTest, PackingAsStd) {
  at_place([] {
    std::list<int> l = some_list(1000);
    std::vector<int> v(l.begin(), l.end());
    auto odd = [](int x) { return x % 2 != 0; };

    const auto l_end = weft::remove_if(l.begin(), l.end(), odd);
    const auto v_end = std::remove_if(v.begin(), v.end(), odd);
    EXPECT_TRUE(std::equal(l.begin(), l_end, v.begin(), v_end));
    l.erase(l_end, l.end());
    v.erase(v_end, v.end());

    std::list<int> runs{1, 1, 2, 2, 2, 3, 1, 1};
    const auto u = weft::unique(runs);
    EXPECT_EQ(std::vector<int>(runs.begin(), u), (std::vector<int>{1, 2, 3, 1}));
    std::list<int> near{1, 2, 4, 5, 9};
    const auto n = weft::unique(near.begin(), near.end(), [](int a, int b) { return b - a == 1; });
    EXPECT_EQ(std::vector<int>(near.begin(), n), (std::vector<int>{1, 4, 9}));

    std::list<int> kept;
    weft::copy_if(l, std::back_inserter(kept), [](int x) { return x > 0; });
    std::vector<int> want;
    std::copy_if(v.begin(), v.end(), std::back_inserter(want), [](int x) { return x > 0; });
    EXPECT_TRUE(std::equal(kept.begin(), kept.end(), want.begin(), want.end()));
  });
}

TEST_P(AlgorithmIteratorsTest, RangesThatAreNotRandomAccess) {
  at_place([] {
    const std::vector<int> v = [] {
      std::list<int> l = some_list(1000);
      return std::vector<int>(l.begin(), l.end());
    }();
    auto positive = [](int x) { return x > 0; };
    auto kept = v | std::views::filter(positive);  // bidirectional, not random-access
    std::vector<int> want;
    std::copy_if(v.begin(), v.end(), std::back_inserter(want), positive);

    EXPECT_EQ(weft::reduce(kept), std::accumulate(want.begin(), want.end(), 0));
    EXPECT_EQ(weft::count_if(kept, [](int x) { return x > 10; }),
              std::count_if(want.begin(), want.end(), [](int x) { return x > 10; }));
    std::vector<int> got;
    weft::copy(kept, std::back_inserter(got));
    EXPECT_EQ(got, want);
    std::vector<int> sums(want.size());
    weft::inclusive_scan(kept, sums.begin());  // a random-access output
    std::vector<int> want_sums(want.size());
    std::inclusive_scan(want.begin(), want.end(), want_sums.begin());
    EXPECT_EQ(sums, want_sums);
    EXPECT_EQ(*weft::max_element(kept), *std::max_element(want.begin(), want.end()));

    // Two ranges of different lengths: the shorter sets the length.
    std::list<int> shorter(want.begin(), want.begin() + 10);
    got.clear();
    weft::transform(kept, shorter, std::back_inserter(got), std::minus<>{});
    EXPECT_EQ(got, std::vector<int>(10, 0));
    EXPECT_EQ(weft::transform_reduce(shorter, kept, 0),
              std::inner_product(want.begin(), want.begin() + 10, want.begin(), 0));
  });
}

TEST_P(AlgorithmIteratorsTest, ExceptionsReachTheCaller) {
  at_place([] {
    std::list<int> l = some_list(100);
    int calls = 0;
    auto throw_at_10 = [&](int) {
      if (++calls == 10) throw std::runtime_error("at 10");
    };
    EXPECT_THROW(weft::for_each(l.begin(), l.end(), throw_at_10), std::runtime_error);
    EXPECT_EQ(calls, 10);  // nothing after the throw
    EXPECT_THROW(weft::count_if(l, [](int x) -> bool { throw std::logic_error(std::to_string(x)); }), std::logic_error);
    std::vector<int> out;
    EXPECT_THROW(weft::transform(l.begin(), l.end(), std::back_inserter(out),
                                 [](int x) -> int { throw std::length_error(std::to_string(x)); }),
                 std::length_error);
  });
}

// A random-access call stays parallel: it may call its callable on any
// worker. Only checked where both workers get a share: 2 workers, items
// that each take a while, called from a worker.
TEST(AlgorithmIteratorsParallel, RandomAccessCallsStayParallel) {
  weft::runtime rt{weft::config{.workers = 2}};
  std::vector<int> v(64);
  bool both = false;
  for (int attempt = 0; attempt < 50 && !both; ++attempt) {
    std::vector<int> seen(v.size(), -1);
    rt.run([&] {
      weft::for_each(v.begin(), v.end(), [&](int& x) {
        seen[static_cast<std::size_t>(&x - v.data())] = weft::worker_index();
        const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
        while (std::chrono::steady_clock::now() < until) {
        }
      });
    });
    both = std::find(seen.begin(), seen.end(), 0) != seen.end() && std::find(seen.begin(), seen.end(), 1) != seen.end();
  }
  EXPECT_TRUE(both) << "weft::for_each over a vector never ran on both workers in 50 attempts";
}

}  // namespace
