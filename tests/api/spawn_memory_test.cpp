// SPDX-License-Identifier: MIT
// Memory for spawns, taken inline (weft/detail/job_memory.hpp): task_group
// closures of every size class, closures whose construction throws, spawns
// from other fibers and threads while the owner waits, groups outside any
// runtime, groups destroyed without wait, coroutine frames that are freed on
// another worker (or off any worker) than the one that allocated them, frames
// of a borrowed slot freed after the slot went back, runtimes destroyed with
// cached blocks, concurrent threads on the default runtime, deep fork-join.
// Corruption of a recycled block shows up as a wrong payload (every closure
// checks its bytes) and under ASan.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <weft/coroutine.hpp>
#include <weft/weft.hpp>
#include <weft/workspan.hpp>

#include "sanitizers.hpp"
#include "worker_count.hpp"

namespace {

class SpawnMemoryTest : public weft_test::WorkerCount {};

// A callable whose closure (group_closure<payload<N>>) holds N bytes that
// must read back as written when it runs.
template <std::size_t N>
struct payload {
  std::array<unsigned char, N> bytes;
  std::atomic<long>* sum;
  std::atomic<int>* bad;
  unsigned char seed;

  payload(std::atomic<long>* s, std::atomic<int>* b, unsigned char sd) : sum(s), bad(b), seed(sd) {
    for (std::size_t i = 0; i < N; ++i) bytes[i] = static_cast<unsigned char>(seed + i * 7);
  }
  void operator()() const {
    for (std::size_t i = 0; i < N; ++i) {
      if (bytes[i] != static_cast<unsigned char>(seed + i * 7)) {
        bad->fetch_add(1, std::memory_order_relaxed);
        break;
      }
    }
    sum->fetch_add(seed, std::memory_order_relaxed);
  }
};

constexpr std::size_t k_base = sizeof(weft::detail::group_closure<payload<1>>);

// The payload size whose closure is `Target` bytes (or the smallest above it,
// for padding): searched in a small window below the estimate.
template <std::size_t Target, std::size_t N = (Target > k_base + 16 ? Target - k_base - 16 : 1)>
constexpr std::size_t payload_for() {
  if constexpr (sizeof(weft::detail::group_closure<payload<N>>) >= Target) {
    return N;
  } else {
    return payload_for<Target, N + 1>();
  }
}

template <std::size_t N>
void spawn_many(weft::task_group& g, int count, std::atomic<long>& sum, std::atomic<int>& bad, long& expect) {
  for (int i = 0; i < count; ++i) {
    const auto seed = static_cast<unsigned char>(i * 31 + N);
    g.spawn(payload<N>(&sum, &bad, seed));
    expect += seed;
  }
}

// Tiny, 64, 65, 128, 129, 1024, 1025 and huge closures, mixed in one group,
// over many rounds of the same group.
void every_size_class(int rounds, int per_size) {
  weft::task_group g;
  for (int round = 0; round < rounds; ++round) {
    std::atomic<long> sum{0};
    std::atomic<int> bad{0};
    long expect = 0;
    spawn_many<1>(g, per_size, sum, bad, expect);
    spawn_many<payload_for<64>()>(g, per_size, sum, bad, expect);
    spawn_many<payload_for<65>()>(g, per_size, sum, bad, expect);
    spawn_many<payload_for<128>()>(g, per_size, sum, bad, expect);
    spawn_many<payload_for<129>()>(g, per_size, sum, bad, expect);
    spawn_many<payload_for<1024>()>(g, per_size, sum, bad, expect);
    spawn_many<payload_for<1025>()>(g, per_size, sum, bad, expect);
    spawn_many<20000>(g, per_size / 4 + 1, sum, bad, expect);
    g.wait();
    ASSERT_EQ(bad.load(), 0) << "round " << round << ": a closure's bytes changed before it ran";
    ASSERT_EQ(sum.load(), expect) << "round " << round;
  }
}

static_assert(sizeof(weft::detail::group_closure<payload<payload_for<64>()>>) <= 64);
static_assert(sizeof(weft::detail::group_closure<payload<payload_for<65>()>>) > 64);
static_assert(sizeof(weft::detail::group_closure<payload<payload_for<1024>()>>) <= 1024);
static_assert(sizeof(weft::detail::group_closure<payload<payload_for<1025>()>>) > 1024);

TEST_P(SpawnMemoryTest, ClosuresOfEverySizeClassOnAWorker) {
  rt.run([] { every_size_class(60, 40); });
}

TEST_P(SpawnMemoryTest, ClosuresOfEverySizeClassOutsideAnyRuntime) {
  // The group is made on this thread (no runtime): counted spawns into the
  // default runtime; the memory comes from the heap here, is freed by workers.
  every_size_class(20, 20);
}

TEST_P(SpawnMemoryTest, ClosuresOfEverySizeClassFromABorrowedSlot) {
  weft::runtime lender{weft::config{.workers = workers(), .caller = weft::caller_policy::take_part}};
  for (int i = 0; i < 20; ++i) {
    lender.run([] { every_size_class(3, 20); });
  }
}

// ---- closures whose construction throws ----

struct copy_bomb {
  static inline std::atomic<int> copies{0};
  static inline std::atomic<int> live{0};
  int throw_at;  // the copy number that throws
  std::array<char, 200> pad{};
  std::atomic<int>* calls;

  copy_bomb(int t, std::atomic<int>* c) : throw_at(t), calls(c) { live.fetch_add(1); }
  copy_bomb(const copy_bomb& o) : throw_at(o.throw_at), pad(o.pad), calls(o.calls) {
    if (copies.fetch_add(1) + 1 == throw_at) throw std::runtime_error("copy");
    live.fetch_add(1);
  }
  ~copy_bomb() { live.fetch_sub(1); }
  void operator()() const { calls->fetch_add(1); }
};

template <std::size_t N>
struct throwing_copy {
  std::array<char, N> pad{};
  std::atomic<int>* calls;
  bool explode;
  throwing_copy(std::atomic<int>* c, bool e) : calls(c), explode(e) {}
  throwing_copy(const throwing_copy& o) : pad(o.pad), calls(o.calls), explode(o.explode) {
    if (explode) throw std::runtime_error("copy " + std::to_string(N));
  }
  void operator()() const { calls->fetch_add(1); }
};

template <std::size_t N>
void throwing_round(weft::task_group& g, std::atomic<int>& calls, int& good) {
  for (int i = 0; i < 50; ++i) {
    const throwing_copy<N> f(&calls, i % 3 == 0);
    if (i % 3 == 0) {
      EXPECT_THROW(g.spawn(f), std::runtime_error);
    } else {
      g.spawn(f);  // an lvalue: copied into the closure
      ++good;
    }
  }
}

void throwing_copies(int rounds) {
  weft::task_group g;
  for (int round = 0; round < rounds; ++round) {
    std::atomic<int> calls{0};
    int good = 0;
    throwing_round<1>(g, calls, good);
    throwing_round<40>(g, calls, good);
    throwing_round<100>(g, calls, good);
    throwing_round<1000>(g, calls, good);
    throwing_round<1100>(g, calls, good);
    throwing_round<50000>(g, calls, good);
    g.wait();
    ASSERT_EQ(calls.load(), good) << "round " << round;
  }
}

TEST_P(SpawnMemoryTest, ClosureConstructorsThatThrowOnAWorker) {
  rt.run([] { throwing_copies(30); });
}

TEST_P(SpawnMemoryTest, ClosureConstructorsThatThrowOutsideAnyRuntime) { throwing_copies(5); }

TEST_P(SpawnMemoryTest, ClosureConstructorsThatThrowInsideSpawnedCalls) {
  std::atomic<int> calls{0};
  std::atomic<int> thrown{0};
  std::atomic<int> good{0};
  rt.run([&] {
    weft::task_group g;
    for (int i = 0; i < 200; ++i) {
      g.spawn([&, i] {
        // Spawns from inside a spawned call: counted (another fiber than the owner).
        const throwing_copy<300> f(&calls, i % 2 == 0);
        try {
          g.spawn(f);
          good.fetch_add(1);
        } catch (const std::runtime_error&) {
          thrown.fetch_add(1);
        }
      });
    }
    g.wait();
  });
  EXPECT_EQ(thrown.load(), 100);
  EXPECT_EQ(good.load(), 100);
  EXPECT_EQ(calls.load(), 100);
}

TEST_P(SpawnMemoryTest, CopyThrowsMidwayLeaksNothing) {
  copy_bomb::copies = 0;
  std::atomic<int> calls{0};
  int good = 0;
  rt.run([&] {
    weft::task_group g;
    for (int i = 0; i < 500; ++i) {
      const copy_bomb b(static_cast<int>(copy_bomb::copies.load()) + 1 + (i % 2), &calls);
      try {
        g.spawn(b);
        ++good;
      } catch (const std::runtime_error&) {
      }
    }
    g.wait();
  });
  EXPECT_EQ(calls.load(), good);
  EXPECT_EQ(copy_bomb::live.load(), 0);
}

// ---- exceptions from spawned calls, reusing the group ----

template <std::size_t N>
struct thrower {
  std::array<char, N> pad{};
  int i;
  std::atomic<int>* calls;
  void operator()() const {
    calls->fetch_add(1);
    if (i % 17 == 5) throw std::runtime_error("call " + std::to_string(i));
  }
};

TEST_P(SpawnMemoryTest, ExceptionsFromSpawnedCallsOverManyRounds) {
  rt.run([] {
    weft::task_group g;
    for (int round = 0; round < 200; ++round) {
      std::atomic<int> calls{0};
      const bool fail = round % 2 == 0;
      for (int i = 0; i < 100; ++i) {
        const int k = fail ? i : 0;
        switch (i % 4) {
          case 0: g.spawn(thrower<8>{{}, k, &calls}); break;
          case 1: g.spawn(thrower<100>{{}, k, &calls}); break;
          case 2: g.spawn(thrower<1000>{{}, k, &calls}); break;
          default: g.spawn(thrower<3000>{{}, k, &calls}); break;
        }
      }
      if (fail) {
        EXPECT_THROW(g.wait(), std::runtime_error) << "round " << round;
        EXPECT_LE(calls.load(), 100);
      } else {
        EXPECT_NO_THROW(g.wait()) << "round " << round;
        EXPECT_EQ(calls.load(), 100) << "round " << round;
      }
    }
  });
}

// ---- groups destroyed without wait ----

TEST_P(SpawnMemoryTest, GroupsDestroyedWithoutWait) {
  std::atomic<long> sum{0};
  std::atomic<int> bad{0};
  long expect = 0;
  rt.run([&] {
    for (int round = 0; round < 300; ++round) {
      weft::task_group g;
      spawn_many<payload_for<65>()>(g, 10, sum, bad, expect);
      spawn_many<payload_for<1025>()>(g, 3, sum, bad, expect);
      if (round % 3 == 0) {
        // Nobody waits: the exception is dropped (and calls of this group not
        // started by then are skipped: uncounted).
        weft::task_group failing;
        std::atomic<long> ignored{0};
        long ignored_expect = 0;
        spawn_many<payload_for<1024>()>(failing, 5, ignored, bad, ignored_expect);
        failing.spawn([] { throw std::runtime_error("dropped"); });
        spawn_many<payload_for<64>()>(failing, 5, ignored, bad, ignored_expect);
      }
    }
  });
  for (int round = 0; round < 20; ++round) {
    weft::task_group g;  // outside any runtime
    spawn_many<payload_for<129>()>(g, 10, sum, bad, expect);
  }
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(sum.load(), expect);
}

// ---- spawns from other threads and fibers while the owner waits ----

TEST_P(SpawnMemoryTest, OtherThreadsSpawnWhileTheOwnerWaits) {
  constexpr int k_threads = 3;
  constexpr int k_each = 300;
  for (int round = 0; round < 10; ++round) {
    std::atomic<int> spawned{0};
    std::atomic<long> sum{0};
    std::atomic<int> bad{0};
    std::atomic<bool> go{false};
    weft::task_group* group = nullptr;
    std::vector<std::thread> threads;
    long expect_threads = 0;
    for (int i = 0; i < k_each; ++i) expect_threads += static_cast<unsigned char>(i * 13);
    rt.run([&] {
      weft::task_group g;
      group = &g;
      // Keeps the group open until every thread has spawned all its calls.
      g.spawn([&] {
        while (spawned.load(std::memory_order_acquire) != k_threads * k_each) std::this_thread::yield();
      });
      for (int t = 0; t < k_threads; ++t) {
        threads.emplace_back([&, t] {
          while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
          for (int i = 0; i < k_each; ++i) {
            const auto seed = static_cast<unsigned char>(i * 13);
            switch ((i + t) % 3) {
              case 0: group->spawn(payload<8>(&sum, &bad, seed)); break;
              case 1: group->spawn(payload<payload_for<1000>()>(&sum, &bad, seed)); break;
              default: group->spawn(payload<5000>(&sum, &bad, seed)); break;
            }
            spawned.fetch_add(1, std::memory_order_release);
          }
        });
      }
      go.store(true, std::memory_order_release);
      g.wait();
      EXPECT_EQ(sum.load(), expect_threads * k_threads) << "round " << round;
    });
    for (auto& th : threads) th.join();
    EXPECT_EQ(bad.load(), 0);
  }
}

TEST_P(SpawnMemoryTest, OtherFibersSpawnWhileTheOwnerWaits) {
  rt.run([&] {
    for (int round = 0; round < 50; ++round) {
      std::atomic<long> sum{0};
      std::atomic<int> bad{0};
      std::atomic<long> expect{0};
      weft::task_group g;
      weft::parallelize(64, [&](int i) {
        // Another fiber (or the owner's fiber, for items it runs itself).
        for (int k = 0; k < 10; ++k) {
          const auto seed = static_cast<unsigned char>(i + k);
          if (k % 2 == 0) {
            g.spawn(payload<payload_for<64>()>(&sum, &bad, seed));
          } else {
            g.spawn(payload<payload_for<513>()>(&sum, &bad, seed));
          }
          expect.fetch_add(seed);
        }
      });
      g.wait();
      ASSERT_EQ(bad.load(), 0);
      ASSERT_EQ(sum.load(), expect.load()) << "round " << round;
    }
  });
}

// ---- coroutine frames that move between workers ----

template <std::size_t N>
weft::task<long> locker(weft::mutex& m, long& counter, int i) {
  std::array<unsigned char, N> local{};
  for (std::size_t k = 0; k < N; ++k) local[k] = static_cast<unsigned char>(i + k);
  co_await weft::yield_async();
  co_await weft::lock_async(m);
  {
    std::unique_lock<weft::mutex> hold(m, std::adopt_lock);
    counter += 1;
  }
  co_await weft::yield_async();
  long s = 0;
  for (std::size_t k = 0; k < N; ++k) {
    if (local[k] != static_cast<unsigned char>(i + k)) co_return -1;
    s += local[k];
  }
  co_return s;
}

template <std::size_t N>
long locker_expect(int i) {
  long s = 0;
  for (std::size_t k = 0; k < N; ++k) s += static_cast<unsigned char>(i + k);
  return s;
}

weft::task<long> many_lockers(weft::mutex& m, long& counter, int n) {
  std::vector<weft::task<long>> tasks;
  for (int i = 0; i < n; ++i) {
    switch (i % 4) {
      case 0: tasks.push_back(locker<1>(m, counter, i)); break;
      case 1: tasks.push_back(locker<200>(m, counter, i)); break;
      case 2: tasks.push_back(locker<900>(m, counter, i)); break;
      default: tasks.push_back(locker<4000>(m, counter, i)); break;
    }
  }
  auto results = co_await weft::when_all(std::move(tasks));
  long total = 0;
  for (long r : results) {
    if (r < 0) co_return -1;
    total += r;
  }
  co_return total;
}

long many_lockers_expect(int n) {
  long total = 0;
  for (int i = 0; i < n; ++i) {
    switch (i % 4) {
      case 0: total += locker_expect<1>(i); break;
      case 1: total += locker_expect<200>(i); break;
      case 2: total += locker_expect<900>(i); break;
      default: total += locker_expect<4000>(i); break;
    }
  }
  return total;
}

TEST_P(SpawnMemoryTest, CoroutineFramesResumedOnOtherWorkers) {
  weft::mutex m;
  long counter = 0;
  for (int round = 0; round < 20; ++round) {
    const long got = rt.run([&] { return weft::sync_wait(many_lockers(m, counter, 200)); });
    ASSERT_EQ(got, many_lockers_expect(200)) << "round " << round;
  }
  EXPECT_EQ(counter, 20 * 200);
}

TEST_P(SpawnMemoryTest, CoroutineFramesFromABorrowedSlot) {
  weft::runtime lender{weft::config{.workers = workers(), .caller = weft::caller_policy::take_part}};
  weft::mutex m;
  long counter = 0;
  for (int round = 0; round < 30; ++round) {
    const long got = lender.run([&] { return weft::sync_wait(many_lockers(m, counter, 40)); });
    ASSERT_EQ(got, many_lockers_expect(40)) << "round " << round;
    // sync_wait directly from this thread: the default runtime.
    ASSERT_EQ(weft::sync_wait(many_lockers(m, counter, 20)), many_lockers_expect(20));
  }
}

// A task made on a borrowed slot (its frame from the slot's lists), carried
// out of run() after the slot went back, then destroyed (never started) or
// awaited elsewhere.
weft::task<long> later(int i) {
  std::array<char, 300> buf{};
  buf[0] = static_cast<char>(i);
  co_await weft::yield_async();
  co_return buf[0] + 1;
}

TEST_P(SpawnMemoryTest, FramesOutliveTheSlotTheyWereMadeOn) {
  weft::runtime lender{weft::config{.workers = workers(), .caller = weft::caller_policy::take_part}};
  for (int round = 0; round < 50; ++round) {
    std::vector<weft::task<long>> tasks = lender.run([] {
      std::vector<weft::task<long>> out;
      for (int i = 0; i < 20; ++i) out.push_back(later(i));
      return out;
    });
    // Half destroyed here, unstarted, off any worker.
    tasks.resize(10);
    // Half awaited from the default runtime (freed there).
    for (int i = 0; i < 5; ++i) ASSERT_EQ(weft::sync_wait(std::move(tasks[static_cast<std::size_t>(i)])), i + 1);
    // The rest awaited back on the lender.
    for (int i = 5; i < 10; ++i) {
      auto& t = tasks[static_cast<std::size_t>(i)];
      ASSERT_EQ(lender.run([&] { return weft::sync_wait(std::move(t)); }), i + 1);
    }
    // Made here (heap), run on a worker, freed there.
    auto here = later(7);
    ASSERT_EQ(rt.run([&] { return weft::sync_wait(std::move(here)); }), 8);
  }
}

// ---- runtimes destroyed with cached blocks ----

TEST_P(SpawnMemoryTest, RuntimesDestroyedWithCachedBlocks) {
  for (int round = 0; round < 15; ++round) {
    std::optional<weft::runtime> local;
    local.emplace(weft::config{.workers = workers()});
    std::vector<weft::task<long>> carried;
    local->run([&] {
      every_size_class(2, 30);
      weft::mutex m;
      long counter = 0;
      EXPECT_EQ(weft::sync_wait(many_lockers(m, counter, 30)), many_lockers_expect(30));
      for (int i = 0; i < 10; ++i) carried.push_back(later(i));
    });
    if (round % 2 == 0) {
      // Run on the default runtime, after the runtime they were made on.
      local.reset();
      for (int i = 0; i < 10; ++i) {
        ASSERT_EQ(weft::sync_wait(std::move(carried[static_cast<std::size_t>(i)])), i + 1);
      }
    }
  }
}

// ---- threads on the default runtime at once ----

TEST_P(SpawnMemoryTest, ThreadsUseTheDefaultRuntimeConcurrently) {
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 10; ++round) {
        {
          weft::task_group g;
          std::atomic<long> sum{0};
          std::atomic<int> bad{0};
          long expect = 0;
          spawn_many<payload_for<64>()>(g, 20, sum, bad, expect);
          spawn_many<payload_for<1025>()>(g, 5, sum, bad, expect);
          g.wait();
          if (bad.load() != 0 || sum.load() != expect) failures.fetch_add(1);
        }
        weft::mutex m;
        long counter = 0;
        if (weft::sync_wait(many_lockers(m, counter, 12)) != many_lockers_expect(12)) failures.fetch_add(1);
        std::atomic<long> s{0};
        weft::parallelize(1000, [&](int i) { s.fetch_add(i); });
        if (s.load() != 999L * 1000 / 2) failures.fetch_add(1);
        if (weft::default_runtime().run([&] { return weft::sync_wait(later(t)); }) != t + 1) failures.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

// ---- deep fork-join ----

// A chain: each level spawns the next into its own group and waits (popped
// back on the same stack, so the stack fills and waits move to fresh stacks).
long chain(int depth) {
  if (depth == 0) return 0;
  long below = 0;
  weft::task_group g;
  g.spawn([&] { below = chain(depth - 1); });
  g.wait();
  return below + 1;
}

long tree(int depth) {
  if (depth == 0) return 1;
  long a = 0;
  long b = 0;
  weft::task_group g;
  g.spawn([&] { a = tree(depth - 1); });
  g.spawn([&, depth] {
    std::array<char, 700> pad{};
    pad[static_cast<std::size_t>(depth)] = 1;
    b = tree(depth - 1) + pad[static_cast<std::size_t>(depth)] - 1;
  });
  g.wait();
  return a + b;
}

TEST_P(SpawnMemoryTest, DeepForkJoin) {
  const int deep = weft_test::k_sanitized ? 20000 : 100000;
  EXPECT_EQ(rt.run([&] { return chain(deep); }), deep);
  EXPECT_EQ(rt.run([] { return tree(16); }), 1L << 16);
}

TEST_P(SpawnMemoryTest, DeepForkJoinThatThrows) {
  std::function<void(int)> dive = [&](int d) {
    weft::task_group g;
    g.spawn([&, d] {
      if (d == 0) throw std::runtime_error("bottom");
      dive(d - 1);
    });
    g.wait();
  };
  EXPECT_THROW(rt.run([&] { dive(20000); }), std::runtime_error);
  EXPECT_EQ(rt.run([] { return chain(1000); }), 1000);
}

// ---- measured groups (no owner) ----

TEST_P(SpawnMemoryTest, MeasuredGroupsOfEverySizeClass) {
  rt.run([] {
    for (int i = 0; i < 3; ++i) {
      const weft::workspan ws = weft::measure_workspan([] { every_size_class(3, 10); });
      EXPECT_GT(ws.strands, 0u);
    }
  });
}

// ---- spawns that fail after the closure was made ----

// A group whose runtime is gone refuses every spawn, also from a fiber of
// another runtime that sits at the address of the dead runtime's fiber that
// made the group (fiber stacks are recycled across runtimes): the owner is
// known by its fiber and its runtime's sequence number. Failed before that
// check after what another test leaves (the spawns from rt passed as the
// owner's and ran):
//   spawn_memory_test
//     --gtest_filter='*RuntimesDestroyedWithCachedBlocks/Workers8:*SpawnsIntoAGroupOfADestroyedRuntime/Workers1'
TEST_P(SpawnMemoryTest, SpawnsIntoAGroupOfADestroyedRuntime) {
  std::atomic<int> calls{0};
  auto local = std::make_unique<weft::runtime>(weft::config{.workers = workers()});
  auto g = local->run([] { return std::make_unique<weft::task_group>(); });
  local.reset();
  for (int i = 0; i < 20; ++i) {
    // The closure is made (heap, off any worker), then spawn fails: freed.
    EXPECT_THROW(g->spawn(thrower<8>{{}, 0, &calls}), std::logic_error);
    EXPECT_THROW(g->spawn(thrower<900>{{}, 0, &calls}), std::logic_error);
    EXPECT_THROW(g->spawn(thrower<5000>{{}, 0, &calls}), std::logic_error);
    // And from a worker of another runtime (its lists).
    rt.run([&] {
      EXPECT_THROW(g->spawn(thrower<8>{{}, 0, &calls}), std::logic_error);
      EXPECT_THROW(g->spawn(thrower<900>{{}, 0, &calls}), std::logic_error);
    });
  }
  g.reset();
  EXPECT_EQ(calls.load(), 0);
}

// The same with the dead runtime's successor made likely at its addresses:
// each round's group is made on a fresh runtime that is destroyed at once,
// and the spawn comes from the next fresh runtime, whose scheduler and first
// fibers tend to take the memory just given back. Failed at 3 and at all 4
// worker counts (two runs) before the counted spawn compared the runtime's
// sequence number as well as its address (the spawn went into the
// successor); fails at 1 worker when the inline spawn (task_group.hpp) skips
// the same comparison.
TEST_P(SpawnMemoryTest, SpawnsIntoAGroupOfADestroyedRuntimeFromItsSuccessor) {
  std::atomic<int> calls{0};
  int refused = 0;
  for (int round = 0; round < 20; ++round) {
    auto made = std::make_unique<weft::runtime>(weft::config{.workers = workers()});
    auto g = made->run([] { return std::make_unique<weft::task_group>(); });
    made.reset();
    weft::runtime next{weft::config{.workers = workers()}};
    next.run([&] {
      try {
        g->spawn(thrower<8>{{}, 0, &calls});
      } catch (const std::logic_error&) {
        ++refused;
      }
    });
    g.reset();
  }
  EXPECT_EQ(refused, 20);
  EXPECT_EQ(calls.load(), 0);
}

// A group of one runtime fed from the workers of another: closures taken
// from the spawner's lists are freed by the group runtime's workers.
TEST_P(SpawnMemoryTest, SpawnsFromAnotherRuntime) {
  weft::runtime other{weft::config{.workers = 2}};
  for (int round = 0; round < 20; ++round) {
    std::atomic<long> sum{0};
    std::atomic<int> bad{0};
    std::atomic<long> expect{0};
    rt.run([&] {
      weft::task_group g;
      std::atomic<bool> done{false};
      g.spawn([&] {
        while (!done.load(std::memory_order_acquire)) std::this_thread::yield();
      });
      std::thread feeder([&] {
        other.run([&] {
          weft::parallelize(8, [&](int i) {
            long e = 0;
            for (int k = 0; k < 20; ++k) {
              const auto seed = static_cast<unsigned char>(i * 20 + k);
              if (k % 2 == 0) {
                g.spawn(payload<payload_for<256>()>(&sum, &bad, seed));
              } else {
                g.spawn(payload<payload_for<1025>()>(&sum, &bad, seed));
              }
              e += seed;
            }
            expect.fetch_add(e);
          });
        });
        done.store(true, std::memory_order_release);
      });
      g.wait();
      feeder.join();
    });
    ASSERT_EQ(bad.load(), 0);
    ASSERT_EQ(sum.load(), expect.load()) << "round " << round;
  }
}

// Closures that block on a weft::mutex (their fiber suspends and may resume
// on another thread) and then are freed there, by the inline free_job.
TEST_P(SpawnMemoryTest, ClosuresFreedAfterTheirFiberMoved) {
  weft::mutex m;
  long counter = 0;
  std::atomic<long> sum{0};
  std::atomic<int> bad{0};
  long expect = 0;
  rt.run([&] {
    weft::task_group g;
    for (int round = 0; round < 20; ++round) {
      for (int i = 0; i < 100; ++i) {
        const auto seed = static_cast<unsigned char>(i + round);
        g.spawn([&, p = payload<payload_for<512>()>(&sum, &bad, seed)] {
          {
            std::lock_guard<weft::mutex> hold(m);
            for (int k = 0; k < 200; ++k) {
              asm volatile("" ::: "memory");
            }
            ++counter;
          }
          p();
        });
        expect += seed;
      }
      g.wait();
    }
  });
  EXPECT_EQ(counter, 2000);
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(sum.load(), expect);
}

}  // namespace

WEFT_INSTANTIATE_WORKER_COUNTS(SpawnMemoryTest);
