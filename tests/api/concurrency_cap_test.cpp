// SPDX-License-Identifier: MIT
// weft::parallelize(n, k, fn): never more than k calls of fn in flight, and
// still every index exactly once.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include <weft/weft.hpp>

#include "index_types.hpp"
#include "sanitizers.hpp"
#include "seeded_rng.hpp"
#include "worker_count.hpp"

namespace {

// Measures the largest number of calls in flight at once.
class in_flight_meter {
 public:
  class scope {
   public:
    explicit scope(in_flight_meter& m) : m_meter(m) {
      const int now = m.m_now.fetch_add(1, std::memory_order_acq_rel) + 1;
      int seen = m.m_max.load(std::memory_order_relaxed);
      while (now > seen && !m.m_max.compare_exchange_weak(seen, now, std::memory_order_relaxed)) {
      }
    }
    ~scope() { m_meter.m_now.fetch_sub(1, std::memory_order_acq_rel); }
    scope(const scope&) = delete;
    scope& operator=(const scope&) = delete;

   private:
    in_flight_meter& m_meter;
  };

  int max() const { return m_max.load(); }
  int now() const { return m_now.load(); }

 private:
  std::atomic<int> m_now{0};
  std::atomic<int> m_max{0};
};

// Keeps a call busy long enough that calls overlap when they may: a short
// spin, then a short sleep (the worker thread blocks, others get the cores).
void linger(int i) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(20);
  while (std::chrono::steady_clock::now() < until) {
  }
  if (i % 2 == 0) std::this_thread::sleep_for(std::chrono::microseconds(100));
}

class ConcurrencyCapTest : public weft_test::WorkerCount {};

TEST_P(ConcurrencyCapTest, NeverMoreThanCapCallsInFlight) {
  for (const int cap : {1, 2, 3}) {
    for (const int n : {1, 2, 3, 7, 64, 200}) {
      SCOPED_TRACE(::testing::Message() << "cap " << cap << ", n " << n);
      in_flight_meter meter;
      std::vector<std::atomic<int>> runs(static_cast<std::size_t>(n));
      rt.run([&] {
        weft::parallelize(n, cap, [&](int i) {
          in_flight_meter::scope s(meter);
          runs[static_cast<std::size_t>(i)].fetch_add(1);
          linger(i);
        });
      });
      EXPECT_LE(meter.max(), cap);
      EXPECT_GE(meter.max(), 1);
      EXPECT_EQ(meter.now(), 0) << "a call was still running when parallelize returned";
      for (int i = 0; i < n; ++i) EXPECT_EQ(runs[static_cast<std::size_t>(i)].load(), 1) << "index " << i;
    }
  }
}

TEST_P(ConcurrencyCapTest, CapAboveWorkerCountRunsEveryIndexOnce) {
  for (const int cap : {workers(), workers() + 1, 64, 1 << 30}) {
    SCOPED_TRACE(::testing::Message() << "cap " << cap);
    in_flight_meter meter;
    constexpr int n = 5000;
    std::vector<std::atomic<int>> runs(n);
    rt.run([&] {
      weft::parallelize(n, cap, [&](int i) {
        in_flight_meter::scope s(meter);
        runs[static_cast<std::size_t>(i)].fetch_add(1);
      });
    });
    EXPECT_LE(meter.max(), cap);
    for (int i = 0; i < n; ++i) ASSERT_EQ(runs[static_cast<std::size_t>(i)].load(), 1) << "index " << i;
  }
}

// Calls that suspend (a nested parallel call, a yield) still count as in
// flight: the cap must hold while they wait.
TEST_P(ConcurrencyCapTest, CapHoldsWhileCallsSuspend) {
  for (const int cap : {1, 2, 3}) {
    SCOPED_TRACE(::testing::Message() << "cap " << cap);
    in_flight_meter meter;
    constexpr int n = 48;
    std::atomic<int> inner{0};
    std::vector<std::atomic<int>> runs(n);
    rt.run([&] {
      weft::parallelize(n, cap, [&](int i) {
        in_flight_meter::scope s(meter);
        runs[static_cast<std::size_t>(i)].fetch_add(1);
        weft::parallelize(16, [&](int) {
          inner.fetch_add(1);
          linger(1);
        });
        weft::yield();
        weft::join([] { linger(1); }, [] { linger(0); });
      });
    });
    EXPECT_LE(meter.max(), cap);
    EXPECT_EQ(inner.load(), n * 16);
    for (int i = 0; i < n; ++i) EXPECT_EQ(runs[static_cast<std::size_t>(i)].load(), 1) << "index " << i;
  }
}

TEST_P(ConcurrencyCapTest, CapHoldsForEveryIndexType) {
  weft_test::for_each_index_type([&]<class I>(const char* type) {
    SCOPED_TRACE(type);
    for (const int cap : {1, 2}) {
      in_flight_meter meter;
      constexpr int n = 100;
      std::vector<std::atomic<int>> runs(n);
      rt.run([&] {
        weft::parallelize(static_cast<I>(n), cap, [&](I i) {
          in_flight_meter::scope s(meter);
          runs[static_cast<std::size_t>(i)].fetch_add(1);
          linger(1);  // odd: spin only, keeps the type test quick
        });
      });
      EXPECT_LE(meter.max(), cap) << "cap " << cap;
      for (int i = 0; i < n; ++i) EXPECT_EQ(runs[static_cast<std::size_t>(i)].load(), 1) << "index " << i;
    }
  });
}

// Several capped loops at once, from external threads: each loop keeps its
// own cap.
TEST_P(ConcurrencyCapTest, EachOfConcurrentCappedLoopsKeepsItsCap) {
  weft_test::seeded_rng rng;
  constexpr int threads = 4;
  constexpr int n = 60;
  std::vector<int> caps(threads);
  for (int& c : caps) c = rng.uniform(1, 3);
  std::vector<in_flight_meter> meters(threads);
  std::vector<std::atomic<int>> calls(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      rt.run([&] {
        weft::parallelize(n, caps[static_cast<std::size_t>(t)], [&](int i) {
          in_flight_meter::scope s(meters[static_cast<std::size_t>(t)]);
          calls[static_cast<std::size_t>(t)].fetch_add(1);
          linger(i);
        });
      });
    });
  }
  for (auto& th : pool) th.join();
  for (int t = 0; t < threads; ++t) {
    EXPECT_LE(meters[static_cast<std::size_t>(t)].max(), caps[static_cast<std::size_t>(t)]) << "loop " << t;
    EXPECT_EQ(calls[static_cast<std::size_t>(t)].load(), n) << "loop " << t;
  }
}

WEFT_INSTANTIATE_WORKER_COUNTS(ConcurrencyCapTest);

TEST(ConcurrencyCapOutsideTest, CapHoldsFromOutsideAnyRuntime) {
  for (const int cap : {1, 2, 3}) {
    SCOPED_TRACE(::testing::Message() << "cap " << cap);
    in_flight_meter meter;
    constexpr int n = 100;
    std::vector<std::atomic<int>> runs(n);
    weft::parallelize(n, cap, [&](int i) {
      in_flight_meter::scope s(meter);
      runs[static_cast<std::size_t>(i)].fetch_add(1);
      linger(i);
    });
    EXPECT_LE(meter.max(), cap);
    for (int i = 0; i < n; ++i) EXPECT_EQ(runs[static_cast<std::size_t>(i)].load(), 1) << "index " << i;
  }
}

}  // namespace
