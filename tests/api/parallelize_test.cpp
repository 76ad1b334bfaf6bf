// SPDX-License-Identifier: MIT
// weft::parallelize(n, fn): every index in [0, n) runs exactly once, for every
// integral index type, and nothing outside is touched.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <vector>

#include <weft/weft.hpp>

#include "index_types.hpp"
#include "sanitizers.hpp"
#include "seeded_rng.hpp"
#include "together.hpp"
#include "worker_count.hpp"

namespace {

// Counts the calls of every index of [0, n) and notes any index outside it.
class coverage {
 public:
  explicit coverage(std::uint64_t n) : m_n(n), m_counts(std::make_unique<std::atomic<std::uint8_t>[]>(n)) {}

  template <class I>
  void hit(I i) {
    static_assert(std::is_integral_v<I>);
    if constexpr (std::is_signed_v<I>) {
      if (i < 0) {
        m_outside.fetch_add(1, std::memory_order_relaxed);
        return;
      }
    }
    const auto u = static_cast<std::uint64_t>(i);
    if (u >= m_n) {
      m_outside.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    m_counts[u].fetch_add(1, std::memory_order_relaxed);
  }

  // Checks that every index ran exactly once and no other was seen.
  void expect_exactly_once() const {
    std::uint64_t wrong = 0;
    std::uint64_t first_wrong = 0;
    unsigned first_count = 0;
    for (std::uint64_t i = 0; i < m_n; ++i) {
      const unsigned c = m_counts[i].load(std::memory_order_relaxed);
      if (c != 1) {
        if (wrong == 0) {
          first_wrong = i;
          first_count = c;
        }
        ++wrong;
      }
    }
    EXPECT_EQ(wrong, 0u) << "indices not run exactly once; the first is " << first_wrong << ", run " << first_count
                         << " times";
    EXPECT_EQ(m_outside.load(), 0u) << "calls with an index outside [0, " << m_n << ")";
  }

 private:
  std::uint64_t m_n;
  std::unique_ptr<std::atomic<std::uint8_t>[]> m_counts;
  std::atomic<std::uint64_t> m_outside{0};
};

// The counts to try for index type I: small ones, primes, powers of two and
// their neighbours, the largest value of small types, and 1e6.
template <class I>
std::vector<std::uint64_t> counts_for() {
  const std::uint64_t max = static_cast<std::uint64_t>(std::numeric_limits<I>::max());
  std::vector<std::uint64_t> out;
  for (std::uint64_t n : {0ULL,    1ULL,    2ULL,    3ULL,    4ULL,     5ULL,     7ULL,     8ULL,    13ULL,
                          16ULL,   31ULL,   64ULL,   97ULL,   127ULL,   128ULL,   255ULL,   256ULL,  257ULL,
                          1021ULL, 1024ULL, 4093ULL, 4096ULL, 32767ULL, 65521ULL, 65535ULL, 65536ULL}) {
    if (n <= max) out.push_back(n);
  }
  if (max < 65536) out.push_back(max);  // the whole range of the type
  if (max >= 1'000'000 && (!weft_test::k_sanitized || sizeof(I) == 8)) out.push_back(1'000'000);
  return out;
}

class ParallelizeTest : public weft_test::WorkerCount {};

TEST_P(ParallelizeTest, RunsEveryIndexOnceForEveryIndexType) {
  weft_test::for_each_index_type([&]<class I>(const char* type) {
    for (const std::uint64_t n : counts_for<I>()) {
      SCOPED_TRACE(::testing::Message() << "index type " << type << ", n = " << n);
      coverage seen(n);
      rt.run([&] {
        weft::parallelize(static_cast<I>(n), [&](auto i) {
          static_assert(std::is_same_v<decltype(i), I>, "fn receives an I");
          seen.hit(i);
        });
      });
      seen.expect_exactly_once();
    }
  });
}

TEST_P(ParallelizeTest, RunsEveryIndexOnceForFixedWidthTypes) {
  weft_test::for_each_fixed_width_type([&]<class I>(const char* type) {
    const std::uint64_t max = static_cast<std::uint64_t>(std::numeric_limits<I>::max());
    for (const std::uint64_t n : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{3}, std::uint64_t{100},
                                  max < 5000 ? max : std::uint64_t{5000}}) {
      SCOPED_TRACE(::testing::Message() << "index type " << type << ", n = " << n);
      coverage seen(n);
      rt.run([&] { weft::parallelize(static_cast<I>(n), [&](I i) { seen.hit(i); }); });
      seen.expect_exactly_once();
    }
  });
}

TEST_P(ParallelizeTest, RunsEveryIndexOnceForRandomCounts) {
  weft_test::seeded_rng rng;
  for (int round = 0; round < 20; ++round) {
    const auto n = rng.uniform<std::int64_t>(0, 200'000);
    SCOPED_TRACE(::testing::Message() << "n = " << n);
    coverage seen(static_cast<std::uint64_t>(n));
    rt.run([&] { weft::parallelize(n, [&](std::int64_t i) { seen.hit(i); }); });
    seen.expect_exactly_once();
  }
}

TEST_P(ParallelizeTest, ZeroCountCallsNothing) {
  weft_test::for_each_index_type([&]<class I>(const char* type) {
    SCOPED_TRACE(type);
    std::atomic<int> calls{0};
    rt.run([&] {
      weft::parallelize(I{0}, [&](I) { calls.fetch_add(1); });
      weft::parallelize(I{0}, 1, [&](I) { calls.fetch_add(1); });
      weft::parallelize(I{0}, 3, [&](I) { calls.fetch_add(1); });
    });
    EXPECT_EQ(calls.load(), 0);
  });
}

TEST_P(ParallelizeTest, BoolCountRunsIndexFalseOnce) {
  std::atomic<int> true_calls{0};
  std::atomic<int> false_calls{0};
  auto fn = [&](bool b) { (b ? true_calls : false_calls).fetch_add(1); };
  rt.run([&] {
    weft::parallelize(false, fn);
    weft::parallelize(true, fn);
  });
  EXPECT_EQ(false_calls.load(), 1);
  EXPECT_EQ(true_calls.load(), 0);
}

TEST_P(ParallelizeTest, AcceptsEveryKindOfCallable) {
  constexpr int n = 1000;
  static std::atomic<int> free_calls{0};
  free_calls = 0;
  struct counter {
    std::atomic<int>* calls;
    void operator()(int) const { calls->fetch_add(1); }
  };
  std::atomic<int> object_calls{0};
  std::atomic<int> function_calls{0};
  std::atomic<int> mutable_calls{0};
  const counter constant{&object_calls};
  std::function<void(int)> wrapped = [&](int) { function_calls.fetch_add(1); };
  rt.run([&] {
    weft::parallelize(n, constant);                // const lvalue
    weft::parallelize(n, counter{&object_calls});  // rvalue
    weft::parallelize(n, wrapped);                 // std::function lvalue
    weft::parallelize(
        n, +[](int) { free_calls.fetch_add(1); });  // function pointer
    // A callable with a non-const call operator. parallelize calls the one
    // object from several workers at once, so it must not write its own
    // state without synchronisation (this one only reads it).
    weft::parallelize(n, [&, step = 1](int) mutable { mutable_calls.fetch_add(step); });
  });
  EXPECT_EQ(object_calls.load(), 2 * n);
  EXPECT_EQ(function_calls.load(), n);
  EXPECT_EQ(free_calls.load(), n);
  EXPECT_EQ(mutable_calls.load(), n);
}

// A function object whose call operator takes only an lvalue object (`&`):
// the loop calls the one object as an lvalue, so it is accepted also as a
// temporary (the constraint asked for an rvalue call, and refused it), and
// parallel_for the same, with common and mixed bounds.
struct lvalue_only_item {
  std::atomic<int>* calls;
  void operator()(int) & { calls->fetch_add(1); }
  void operator()(int) && = delete;
};
struct lvalue_only_chunk {
  std::atomic<int>* items;
  void operator()(int b, int e) & { items->fetch_add(e - b); }
  void operator()(long b, long e) & { items->fetch_add(static_cast<int>(e - b)); }
  void operator()(int, int) && = delete;
  void operator()(long, long) && = delete;
};

TEST_P(ParallelizeTest, AcceptsATemporaryCallableOnlyAsAnLvalue) {
  constexpr int n = 1000;
  std::atomic<int> calls{0};
  std::atomic<int> items{0};
  rt.run([&] {
    weft::parallelize(n, lvalue_only_item{&calls});
    weft::parallelize(n, 2, lvalue_only_item{&calls});
    weft::parallelize(n, 2u, lvalue_only_item{&calls});
    weft::parallel_for(0, n, lvalue_only_chunk{&items});
    weft::parallel_for(0, n, 7, lvalue_only_chunk{&items});
    weft::parallel_for(0, static_cast<long>(n), lvalue_only_chunk{&items});
    weft::parallel_for(0, static_cast<long>(n), 7, lvalue_only_chunk{&items});
  });
  EXPECT_EQ(calls.load(), 3 * n);
  EXPECT_EQ(items.load(), 4 * n);
}

std::atomic<int> g_plain_function_calls{0};
void plain_function_item(int) { g_plain_function_calls.fetch_add(1); }

// A function named as it is (not a pointer to it): F is a function
// reference, whose address the loop took as an object's (it did not compile,
// with and without a cap).
TEST_P(ParallelizeTest, AcceptsAFunctionByName) {
  constexpr int n = 1000;
  g_plain_function_calls = 0;
  rt.run([&] {
    weft::parallelize(n, plain_function_item);
    weft::parallelize(n, 2, plain_function_item);
    weft::parallelize(n, 2u, plain_function_item);
  });
  EXPECT_EQ(g_plain_function_calls.load(), 3 * n);
}

// A count at the top of its type must not overflow the splitting code: the
// body throws at once, so only a few of the items ever start.
TEST_P(ParallelizeTest, CountAtTopOfTypeCutShortByException) {
  weft_test::for_each_index_type([&]<class I>(const char* type) {
    SCOPED_TRACE(type);
    constexpr I n = std::numeric_limits<I>::max();
    for (int cap : {0, 1, 2, 3}) {
      SCOPED_TRACE(::testing::Message() << "cap " << cap);
      std::atomic<std::uint64_t> calls{0};
      std::atomic<std::uint64_t> outside{0};
      auto body = [&](I i) {
        calls.fetch_add(1);
        if constexpr (std::is_signed_v<I>) {
          if (i < 0) outside.fetch_add(1);
        }
        if (i >= n) outside.fetch_add(1);
        throw std::runtime_error("stop");
      };
      EXPECT_THROW(rt.run([&] {
        if (cap == 0) {
          weft::parallelize(n, body);
        } else {
          weft::parallelize(n, cap, body);
        }
      }),
                   std::runtime_error);
      EXPECT_GE(calls.load(), 1u);
      // Unstarted items are skipped: at most a few per worker ever start.
      EXPECT_LT(calls.load(), 10'000u);
      EXPECT_EQ(outside.load(), 0u);
    }
  });
}

WEFT_INSTANTIATE_WORKER_COUNTS(ParallelizeTest);

// A loop of a few items on a runtime of `workers` workers, each item busy
// (never yielding, never waiting on weft) for at least 2 ms and until another
// item of the same call has started beside it, or until 10 s have passed:
// returns how many items gave up waiting. `warm`: items that only spin for
// 2 ms, for a call that shows the runtime what the loop's items cost (every
// call uses the same loop body, which is what the runtime remembers).
int items_alone(weft::runtime& rt, int n, bool warm) {
  std::atomic<int> started{0};
  std::atomic<int> alone{0};
  rt.run([&] {
    weft::parallelize(n, [&](int) {
      started.fetch_add(1);
      const auto start = std::chrono::steady_clock::now();
      for (;;) {
        const auto spent = std::chrono::steady_clock::now() - start;
        if (spent >= std::chrono::milliseconds(2) && (warm || started.load() >= 2)) return;
        if (spent >= std::chrono::seconds(10)) break;
      }
      alone.fetch_add(1);
    });
  });
  return alone.load();
}

// A loop of one item per worker (parallelize(num_workers(), fn), the SPMD
// shape) whose items are long, and one of two items per worker run again:
// the items run on several workers at once. Before, the loop ran its first
// item alone to time it, and only then shared the rest: two items on two
// workers ran one after the other (items_alone: the first item gave up after
// 10 s every time).
TEST(ParallelizeSmallLoopTest, ItemsOfASmallLoopRunBesideEachOther) {
  for (const int workers : {2, 4}) {
    SCOPED_TRACE(::testing::Message() << workers << " workers");
    weft::runtime rt{weft::config{.workers = workers, .split = weft::split_policy::adaptive}};
    EXPECT_EQ(items_alone(rt, workers, false), 0);  // nothing known of the loop yet
    EXPECT_EQ(items_alone(rt, workers, false), 0);
    items_alone(rt, 2 * workers, true);  // shows that its items are long
    EXPECT_EQ(items_alone(rt, 2 * workers, false), 0);
  }
}

// A loop of n items on rt (at most `cap` at once when cap > 0), each busy
// (never yielding, never waiting on weft) until `together` items have
// started, or until 10 s have passed: returns how many items gave up.
int items_apart(weft::runtime& rt, int n, int cap, int together) {
  std::atomic<int> started{0};
  std::atomic<int> gave_up{0};
  auto item = [&](int) {
    if (!weft_test::busy_until(started, together)) gave_up.fetch_add(1);
  };
  rt.run([&] {
    if (cap > 0) {
      weft::parallelize(n, cap, item);
    } else {
      weft::parallelize(n, item);
    }
  });
  return gave_up.load();
}

// A small loop of long items, and a capped loop, on 4 and 8 workers and
// under every split policy: as many items run at once as there are workers. The pieces of a loop spread at
// once that its pushes left private stayed there until the caller's first
// item ended: on 4 workers the second item waited for the first, with a
// worker idle (items_apart: 1 to 3 items gave up every time).
TEST(ParallelizeSmallLoopTest, ASmallLoopRunsAnItemOnEveryWorkerAtOnce) {
  for (const auto policy : {weft::split_policy::adaptive, weft::split_policy::eager, weft::split_policy::fixed}) {
    for (const int workers : {4, 8}) {
      SCOPED_TRACE(::testing::Message() << workers << " workers, policy " << static_cast<int>(policy));
      weft::runtime rt{weft::config{.workers = workers, .split = policy}};
      EXPECT_EQ(items_apart(rt, workers, 0, workers), 0);  // nothing known of the loop yet
      EXPECT_EQ(items_apart(rt, workers, 0, workers), 0);  // known to be long
      EXPECT_EQ(items_apart(rt, workers, workers, workers), 0);
      EXPECT_EQ(items_apart(rt, 2 * workers, workers, workers), 0);
      if (policy != weft::split_policy::adaptive) {  // (adaptive times a first item of more: guide)
        EXPECT_EQ(items_apart(rt, 2 * workers, 0, workers), 0);
      }
    }
  }
}

// One item per worker that all wait at a latch, at a barrier, or for a
// notify_all, then stay busy until every item is past it: the fibers made
// ready together run on every worker at once. The worker that opened the
// latch kept them in its private ring, offering them one at a time (16
// items past a latch on 16 workers ran about two at a time): 3 of 4 items
// gave up waiting after a latch on 4 workers before.
TEST(ParallelizeSmallLoopTest, ItemsMadeReadyTogetherRunOnEveryWorkerAtOnce) {
  for (const int workers : {4, 8}) {
    SCOPED_TRACE(::testing::Message() << workers << " workers");
    weft::runtime rt{weft::config{.workers = workers}};
    for (const char* how : {"latch", "barrier", "notify_all"}) {
      SCOPED_TRACE(how);
      weft::latch gate(workers);
      weft::barrier<> phase(workers);
      weft::mutex m;
      weft::condition_variable cv;
      int waiting = 0;
      std::atomic<int> past{0};
      std::atomic<int> gave_up{0};
      rt.run([&] {
        weft::parallelize(workers, [&](int) {
          if (std::string_view(how) == "latch") {
            gate.arrive_and_wait();
          } else if (std::string_view(how) == "barrier") {
            phase.arrive_and_wait();
          } else {
            std::unique_lock<weft::mutex> lock(m);
            if (++waiting == workers) {
              cv.notify_all();
            } else {
              cv.wait(lock, [&] { return waiting == workers; });
            }
          }
          if (!weft_test::busy_until(past, workers)) gave_up.fetch_add(1);
        });
      });
      EXPECT_EQ(gave_up.load(), 0);
    }
  }
}

// A parallel_reduce of one long item per worker: after item 0, which the
// reduction runs first alone as its sample (busy for 20 ms), every item
// runs at once. The eager levels of its tree kept their right halves in the
// private ring behind a running leaf, spreading in about log2(workers)
// rounds: 2-3 of 8 items gave up waiting on 8 workers before.
TEST(ParallelizeSmallLoopTest, AReductionOfLongItemsRunsAnItemOnEveryWorkerAtOnce) {
  for (const int workers : {4, 8}) {
    SCOPED_TRACE(::testing::Message() << workers << " workers");
    weft::runtime rt{weft::config{.workers = workers}};
    for (int round = 0; round < 2; ++round) {
      std::atomic<int> started{0};
      const int done = rt.run([&] {
        return weft::parallel_reduce(
            0, workers, 0,
            [&](int i) {
              if (i == 0) {
                const auto start = std::chrono::steady_clock::now();
                while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(20)) {
                }
                return 1;
              }
              return weft_test::busy_until(started, workers - 1) ? 1 : 0;
            },
            std::plus<>{});
      });
      EXPECT_EQ(done, workers) << "round " << round;
    }
  }
}

// From outside any runtime, parallelize runs in the default runtime.
TEST(ParallelizeOutsideTest, RunsEveryIndexOnceFromOutsideAnyRuntime) {
  for (const std::uint64_t n : {0ULL, 1ULL, 2ULL, 3ULL, 7ULL, 1024ULL, 100'003ULL}) {
    SCOPED_TRACE(::testing::Message() << "n = " << n);
    coverage seen(n);
    weft::parallelize(static_cast<std::uint32_t>(n), [&](std::uint32_t i) { seen.hit(i); });
    seen.expect_exactly_once();
  }
}

}  // namespace
