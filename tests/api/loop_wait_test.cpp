// SPDX-License-Identifier: MIT
// Items of one loop that wait for each other (docs/protocols/loops.md): when
// an item's fiber suspends, the items of its loop not started yet go to
// other workers and to its own worker's next fiber, so any item may wait for
// any other item of the same loop, with any number of workers from 1.
// Every primitive that suspends (latch, barrier, mutex, condition_variable,
// a coroutine await, weft::yield() in a polling loop, by one item or by
// every item until all have arrived) x loops (parallelize,
// parallel_for with chunks of one item, a capped parallelize whose cap is
// the item count) x workers {1, 2, 4} x items {2, 8, 1000}.
#include <alloca.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <weft/coroutine.hpp>
#include <weft/detail/worker_view.hpp>
#include <weft/weft.hpp>

#include "child_process.hpp"
#include "sanitizers.hpp"
#include "watchdog.hpp"

// Under AddressSanitizer the replacement below is left out (with the two
// cases that use it): memory that its own operator new gave a library is
// freed here by this program's operator delete, which it reports as a
// mismatch.
#if !defined(__SANITIZE_ADDRESS__)
#define WEFT_TEST_REFUSES_ALLOCATIONS 1
namespace {

// While set, every allocation fails: memory has run out.
std::atomic<bool> g_refuse_allocations{false};

}  // namespace

void* operator new(std::size_t size) {
  if (g_refuse_allocations.load(std::memory_order_relaxed)) throw std::bad_alloc();
  if (void* p = std::malloc(size != 0 ? size : 1)) return p;
  throw std::bad_alloc();
}
// Out of line: inlined where a delete-expression frees what operator new
// returned, its free() would look mismatched to the compiler.
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#else
#define WEFT_TEST_REFUSES_ALLOCATIONS 0
namespace {
std::atomic<bool> g_refuse_allocations{false};  // never read: allocations are not refused
}  // namespace
#endif

namespace {

enum class primitive { latch_all, latch_first_last, barrier_phases, mutex, condvar, coroutine, yield_poll, yield_all };
enum class loop_kind { parallelize, parallel_for, capped };

const char* name_of(primitive p) {
  switch (p) {
    case primitive::latch_all: return "LatchAll";
    case primitive::latch_first_last: return "LatchFirstLast";
    case primitive::barrier_phases: return "BarrierPhases";
    case primitive::mutex: return "Mutex";
    case primitive::condvar: return "Condvar";
    case primitive::coroutine: return "Coroutine";
    case primitive::yield_poll: return "YieldPoll";
    case primitive::yield_all: return "YieldAll";
  }
  return "?";
}
const char* name_of(loop_kind k) {
  switch (k) {
    case loop_kind::parallelize: return "Parallelize";
    case loop_kind::parallel_for: return "ParallelFor";
    case loop_kind::capped: return "Capped";
  }
  return "?";
}

// Runs fn(i) for every i in [0, n) through the loop of that kind.
void loop_over(loop_kind k, int n, const std::function<void(int)>& fn) {
  switch (k) {
    case loop_kind::parallelize: weft::parallelize(n, fn); break;
    case loop_kind::parallel_for:
      weft::parallel_for(0, n, 1, [&](int b, int e) {
        for (int i = b; i < e; ++i) fn(i);
      });
      break;
    case loop_kind::capped: weft::parallelize(n, n, fn); break;
  }
}

// One loop of n items whose items wait for other items of the same loop.
// Returns a description of what went wrong, or an empty string.
std::string run_case(primitive p, loop_kind k, int n) {
  std::vector<std::atomic<int>> ran(static_cast<std::size_t>(n));
  std::atomic<int> after_wait{0};
  switch (p) {
    case primitive::latch_all: {
      // Every item arrives and waits: a barrier of n.
      weft::latch l(n);
      loop_over(k, n, [&](int i) {
        ran[static_cast<std::size_t>(i)].fetch_add(1);
        l.arrive_and_wait();
        after_wait.fetch_add(1);
      });
      break;
    }
    case primitive::latch_first_last: {
      // Item 0 waits for the last item.
      weft::latch l(1);
      loop_over(k, n, [&](int i) {
        ran[static_cast<std::size_t>(i)].fetch_add(1);
        if (i == 0) l.wait();
        if (i == n - 1) l.count_down();
        after_wait.fetch_add(1);
      });
      break;
    }
    case primitive::barrier_phases: {
      // Every item meets the others at a barrier of n for three phases; the
      // completion function counts the phases. An item that passes phase k
      // must see k + 1 completions, and none may pass before all arrived.
      constexpr int k_phases = 3;
      std::atomic<int> completions{0};
      std::atomic<int> arrived{0};
      std::atomic<int> early{0};
      weft::barrier b(n, [&]() noexcept {
        if (arrived.load() != n * (completions.load() + 1)) early.fetch_add(1);
        completions.fetch_add(1);
      });
      loop_over(k, n, [&](int i) {
        ran[static_cast<std::size_t>(i)].fetch_add(1);
        for (int phase = 0; phase < k_phases; ++phase) {
          arrived.fetch_add(1);
          if (phase == 1 && i % 2 == 0) {
            auto token = b.arrive();  // split: arrive, then wait
            b.wait(std::move(token));
          } else {
            b.arrive_and_wait();
          }
          if (completions.load() < phase + 1) early.fetch_add(1);
        }
        after_wait.fetch_add(1);
      });
      if (early.load() != 0) return "an item passed the barrier before every item of its phase arrived";
      if (completions.load() != k_phases) return std::to_string(completions.load()) + " phases completed";
      break;
    }
    case primitive::mutex: {
      // Item 0 takes the mutex and keeps it until the last item opened a
      // latch; every other item queues on the mutex meanwhile.
      weft::mutex m;
      weft::latch release(1);
      std::atomic<bool> first_holds{false};
      std::atomic<int> inside{0};
      loop_over(k, n, [&](int i) {
        ran[static_cast<std::size_t>(i)].fetch_add(1);
        if (i == 0) {
          std::lock_guard g(m);
          first_holds.store(true);
          release.wait();
        } else if (i == n - 1) {
          release.count_down();
        }
        if (i != 0) {
          std::lock_guard g(m);
          inside.fetch_add(1);
        }
        after_wait.fetch_add(1);
      });
      if (inside.load() != n - 1) return "not every item got the mutex";
      break;
    }
    case primitive::condvar: {
      weft::mutex m;
      weft::condition_variable cv;
      bool set = false;
      loop_over(k, n, [&](int i) {
        ran[static_cast<std::size_t>(i)].fetch_add(1);
        if (i == 0) {
          std::unique_lock lock(m);
          cv.wait(lock, [&] { return set; });
        }
        if (i == n - 1) {
          {
            std::lock_guard g(m);
            set = true;
          }
          cv.notify_all();
        }
        after_wait.fetch_add(1);
      });
      break;
    }
    case primitive::coroutine: {
      // Every item waits on a latch through a coroutine: co_await.
      weft::latch l(n);
      auto meet = [&]() -> weft::task<int> {
        l.count_down();
        co_await l;
        co_return 1;
      };
      loop_over(k, n, [&](int i) {
        ran[static_cast<std::size_t>(i)].fetch_add(1);
        after_wait.fetch_add(weft::sync_wait(meet()));
      });
      break;
    }
    case primitive::yield_poll: {
      // Item 0 polls a flag that the last item sets, yielding in between.
      std::atomic<bool> flag{false};
      loop_over(k, n, [&](int i) {
        ran[static_cast<std::size_t>(i)].fetch_add(1);
        if (i == 0) {
          while (!flag.load()) weft::yield();
        }
        if (i == n - 1) flag.store(true);
        after_wait.fetch_add(1);
      });
      break;
    }
    case primitive::yield_all: {
      // Every item polls, yielding, until all items have arrived: the
      // fibers that yield must not hand the worker only to each other while
      // items not started wait on its queue.
      std::atomic<int> arrived{0};
      loop_over(k, n, [&](int i) {
        ran[static_cast<std::size_t>(i)].fetch_add(1);
        arrived.fetch_add(1);
        while (arrived.load() < n) weft::yield();
        after_wait.fetch_add(1);
      });
      break;
    }
  }
  for (int i = 0; i < n; ++i) {
    if (ran[static_cast<std::size_t>(i)].load() != 1) {
      return "item " + std::to_string(i) + " ran " + std::to_string(ran[static_cast<std::size_t>(i)].load()) + " times";
    }
  }
  if (after_wait.load() != n) return std::to_string(after_wait.load()) + " of " + std::to_string(n) + " items finished";
  return {};
}

using params = std::tuple<primitive, loop_kind, int /*workers*/, int /*items*/>;

class LoopWaitTest : public ::testing::TestWithParam<params> {};

TEST_P(LoopWaitTest, ItemsWaitForOtherItemsOfTheirLoop) {
  const auto& param = GetParam();  // named copies below, not structured bindings: clang 14 cannot capture those
  const auto p = std::get<0>(param);
  const auto k = std::get<1>(param);
  const auto workers = std::get<2>(param);
  const auto items = std::get<3>(param);
  // ThreadSanitizer creates each fiber slowly (about 10 ms): fewer of the
  // large counts there (the small ones stay: the first-last cases need 2).
  const int n = weft_test::k_tsan && items > 100 ? static_cast<int>(weft_test::scaled(items, 10)) : items;
  // 16 KiB stacks: 1000 items may all be suspended at once.
  weft::runtime rt{weft::config{.workers = workers, .stack_size = weft::k_min_stack_size}};
  for (int round = 0; round < 3; ++round) {
    const std::string problem = rt.run([&] { return run_case(p, k, n); });
    ASSERT_TRUE(problem.empty()) << problem << " (round " << round << ")";
  }
  // From outside any runtime too (the calling thread takes part).
  weft::config c{.workers = workers, .stack_size = weft::k_min_stack_size};
  weft::runtime outside{c};
  const std::string problem = outside.run([&] { return run_case(p, k, n); });
  EXPECT_TRUE(problem.empty()) << problem;
}

INSTANTIATE_TEST_SUITE_P(
    All, LoopWaitTest,
    ::testing::Combine(::testing::Values(primitive::latch_all, primitive::latch_first_last, primitive::barrier_phases,
                                         primitive::mutex, primitive::condvar, primitive::coroutine,
                                         primitive::yield_poll, primitive::yield_all),
                       ::testing::Values(loop_kind::parallelize, loop_kind::parallel_for, loop_kind::capped),
                       ::testing::Values(1, 2, 4), ::testing::Values(2, 8, 1000)),
    [](const ::testing::TestParamInfo<params>& info) {
      return std::string(name_of(std::get<0>(info.param))) + name_of(std::get<1>(info.param)) + "Workers" +
             std::to_string(std::get<2>(info.param)) + "Items" + std::to_string(std::get<3>(info.param));
    });

// Nested: the items of an inner loop wait for each other while the items of
// the outer loop wait for each other too (each outer item meets the others
// after its inner loop).
TEST(LoopWaitNestedTest, InnerAndOuterItemsWait) {
  for (int workers : {1, 2, 4}) {
    weft::runtime rt{weft::config{.workers = workers, .stack_size = weft::k_min_stack_size}};
    std::atomic<int> inner_done{0};
    rt.run([&] {
      constexpr int outer = 8;
      constexpr int inner = 16;
      weft::latch all_outer(outer);
      weft::parallelize(outer, [&](int) {
        weft::latch all_inner(inner);
        weft::parallelize(inner, [&](int) {
          all_inner.arrive_and_wait();
          inner_done.fetch_add(1);
        });
        all_outer.arrive_and_wait();
      });
    });
    EXPECT_EQ(inner_done.load(), 8 * 16) << workers << " workers";
  }
}

// Items that each yield once, not polling: a yield hands the loop's items
// not started off only when the same item yields again. Before, every yield
// handed them to the worker's queue, which the yielding fiber runs after, so
// each yield took a fresh fiber for the rest of the loop and held its own
// until the loop's last item had started: 100 000 items yielding every 13th
// created 7 695 fibers at 1 worker (10^6 items: 76 924 fibers, 310 MB).
TEST(LoopWaitYieldTest, ItemsThatYieldOnceHoldNoFiberEach) {
  constexpr long n = 100'000;
  constexpr long every = 13;
  for (int workers : {1, 2, 4}) {
    weft::runtime rt{weft::config{.workers = workers}};
    std::atomic<long> sum{0};
    rt.run([&] {
      weft::parallelize(n, [&](long i) {
        if (i % every == 0) weft::yield();
        sum.fetch_add(i, std::memory_order_relaxed);
      });
    });
    EXPECT_EQ(sum.load(), n * (n - 1) / 2) << workers << " workers";
    // A yield that finds other work queued (a stolen piece's neighbours)
    // still runs it on a fiber of its own: a few per worker, never one per
    // yield (n / every = 7 693 yields).
    const std::uint64_t created = rt.stats().total.fibers_created;
    EXPECT_LT(created, static_cast<std::uint64_t>(n / every / 10)) << workers << " workers";
  }
}

// An item that polls in a coroutine, with co_await weft::yield_async(), for
// the last item of its loop: its second yield hands the items not started
// off, as a fiber's yield() does. Before, a coroutine's yield never did, and
// with nothing else queued it went on at once: the poll spun for ever (a
// hang at 1 and 2 workers).
weft::task<int> poll_for(const std::atomic<bool>& done) {
  while (!done.load()) co_await weft::yield_async();
  co_return 1;
}

TEST(LoopWaitYieldTest, AnItemPollsInACoroutineForTheLastItem) {
  constexpr int n = 1000;
  for (int workers : {1, 2, 4}) {
    weft::runtime rt{weft::config{.workers = workers}};
    std::atomic<bool> last_done{false};
    std::atomic<int> ran{0};
    rt.run([&] {
      weft::parallelize(n, [&](int i) {
        if (i == 0) {
          EXPECT_EQ(weft::sync_wait(poll_for(last_done)), 1);
        }
        if (i == n - 1) last_done.store(true);
        ran.fetch_add(1);
      });
    });
    EXPECT_EQ(ran.load(), n) << workers << " workers";
  }
}

// A loop whose items throw while others wait: the exception reaches the
// caller once every started item finished; the waiting items are released
// by the ones that run.
TEST(LoopWaitExceptionTest, ThrowingItemBesideWaitingOnes) {
  for (int workers : {1, 2, 4}) {
    weft::runtime rt{weft::config{.workers = workers}};
    std::atomic<int> waited{0};
    EXPECT_THROW(rt.run([&] {
      weft::latch l(1);
      weft::parallelize(64, [&](int i) {
        if (i == 0) {
          l.wait();
          waited.fetch_add(1);
        }
        if (i == 63) {
          l.count_down();
          throw std::runtime_error("item 63");
        }
      });
    }),
                 std::runtime_error);
    EXPECT_EQ(waited.load(), 1) << workers << " workers";
  }
}

// An item that waits when memory has run out: the items not started go to
// the worker's queue, whose public deque (holding the group's spawns) must
// grow to take them and cannot, so they are injected instead; every task
// queued before must still run. The queue lost its oldest private task there,
// and the group's wait waited for ever. From a full private ring on each
// spawn publishes one task, so some count of queued spawns makes the push
// grow the deque.
TEST(LoopWaitMemoryTest, AnItemThatWaitsWhenTheQueueCannotGrowLosesNoTask) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer kills a child that starts threads after a fork";
  if (WEFT_TEST_REFUSES_ALLOCATIONS == 0) GTEST_SKIP() << "operator new is not replaced under AddressSanitizer";
  const auto r = weft_test::run_in_child([] {
    weft::runtime rt{weft::config{.workers = 1}};
    int status = 0;
    rt.run([&] {
      const int most = 3 * static_cast<int>(weft::detail::job_ring::k_capacity);
      for (int queued = 0; queued <= most && status == 0; ++queued) {
        std::atomic<int> ran{0};
        std::atomic<int> items{0};
        weft::task_group g;
        for (int i = 0; i < queued; ++i) g.spawn([&] { ran.fetch_add(1); });
        g_refuse_allocations.store(true);
        weft::latch l(1);
        weft::parallelize(2, [&](int i) {
          if (i == 0) {
            l.wait();
          } else {
            l.count_down();
          }
          items.fetch_add(1);
        });
        g_refuse_allocations.store(false);
        g.wait();
        if (items.load() != 2 || ran.load() != queued) {
          std::fprintf(stderr, "%d queued spawns: %d ran, %d items\n", queued, ran.load(), items.load());
          status = 11;
        }
      }
    });
    return status;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

// Items of a capped loop that wait when memory has run out: a hand-off that
// finds fewer runners than the cap alive starts another runner, for which no
// memory can be had. With one worker nobody else could take the items handed
// back, and the loop waited for ever.
TEST(LoopWaitMemoryTest, ItemsOfACappedLoopWaitWhenNoRunnerCanBeAllocated) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer kills a child that starts threads after a fork";
  if (WEFT_TEST_REFUSES_ALLOCATIONS == 0) GTEST_SKIP() << "operator new is not replaced under AddressSanitizer";
  const auto r = weft_test::run_in_child([] {
    int status = 0;
    for (int round = 0; round < 10 && status == 0; ++round) {
      for (const int workers : {1, 2}) {
        weft::runtime rt{weft::config{.workers = workers}};
        rt.run([&] {
          for (const int n : {2, 3, 8, 100}) {
            std::atomic<int> items{0};
            weft::latch last(1);
            weft::latch all(8);
            weft::latch first_half(1);
            weft::latch second_half(1);
            g_refuse_allocations.store(true);
            weft::parallelize(n, 2, [&](int i) {  // the first item waits for the last
              if (i == 0 && n > 1) last.wait();
              if (i == n - 1) last.count_down();
              items.fetch_add(1);
            });
            weft::parallelize(8, 8, [&](int) {  // all at once
              all.arrive_and_wait();
              items.fetch_add(1);
            });
            weft::parallelize(100, 3, [&](int i) {  // at most two wait at once
              if (i == 0) first_half.wait();
              if (i == 50) second_half.wait();
              if (i == 49) first_half.count_down();
              if (i == 99) second_half.count_down();
              items.fetch_add(1);
            });
            g_refuse_allocations.store(false);
            if (items.load() != n + 108) {
              std::fprintf(stderr, "%d workers, %d items: %d ran\n", workers, n, items.load() - 108);
              status = 11;
            }
          }
        });
      }
    }
    return status;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

// Loops started a few frames above the stack's reserve: the loop's entry
// finds room, the push of its first split a little deeper does not. The split
// then goes on a fresh stack, where the upper part is offered as usual; run
// after the lower part on the same fiber instead, an item of the lower part
// that waits for the upper part would wait for ever (every worker parked).
// The start is moved down the stack in steps of 32 bytes, from just above the
// reserve to 8 KiB above it, under every split policy and with 2 and 8
// workers.
[[gnu::noinline]] std::string loop_at_depth(std::size_t pad, loop_kind k, primitive p, int n) {
  char* used = static_cast<char*>(alloca(pad));
  asm volatile("" : : "r"(used) : "memory");
  std::string problem = run_case(p, k, n);
  asm volatile("" : : "r"(used) : "memory");
  return problem;
}

TEST(LoopWaitStackTest, LoopsStartedJustAboveTheStackReserve) {
  constexpr std::size_t k_span = 8 * 1024;
  const std::size_t step = weft_test::k_tsan ? 128 : 32;
  for (const weft::split_policy policy :
       {weft::split_policy::adaptive, weft::split_policy::eager, weft::split_policy::fixed}) {
    for (const int workers : {2, 8}) {
      weft::runtime rt{weft::config{.workers = workers, .split = policy, .split_grain = 1}};
      for (const loop_kind k : {loop_kind::parallelize, loop_kind::capped}) {
        for (const primitive p : {primitive::latch_all, primitive::latch_first_last}) {
          const std::string problem = rt.run([&]() -> std::string {
            for (std::size_t above = 0; above <= k_span; above += step) {
              // Room left above the reserve here, less `above`: filled before the loop starts.
              const std::uintptr_t sp = weft::detail::stack_pointer_here();
              const std::uintptr_t limit = weft::detail::this_thread_view()->m_stack_limit;
              if (sp < limit + k_span + 4096) return "the test starts too deep in the stack";
              const std::size_t pad = sp - limit - 256 - above;
              std::string problem = loop_at_depth(pad, k, p, 2 * workers);
              if (!problem.empty()) return problem + " (" + std::to_string(above) + " bytes above the reserve)";
            }
            return {};
          });
          EXPECT_TRUE(problem.empty()) << problem << ": " << name_of(p) << name_of(k) << ", " << workers
                                       << " workers, policy " << static_cast<int>(policy);
        }
      }
    }
  }
}

}  // namespace
