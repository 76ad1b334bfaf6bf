// SPDX-License-Identifier: MIT
// weft::measure_workspan (<weft/workspan.hpp>, docs/protocols/workspan.md):
// the work and span of computations whose shape is known, built from every
// kind of strand (a serial chain, join, loops and nested loops, a capped
// loop, task_group, parallel_reduce, coroutine when_all and spawn), the work
// against the time the leaves spun, waiting that is not work, exceptions,
// nested measurements, and results that do not depend on the worker count.
//
// Times are wall-clock: one interruption of the process (another process, a
// timer interrupt: some tens of microseconds every few hundred on some
// virtual machines) on the critical path inflates the span, and only lowers
// the parallelism. So every assertion on a span or a parallelism takes the
// best of several measurements (the first that passes; see best_of) and
// prints every value seen when none does. What the model fixes exactly (span
// <= work, burdened span >= span, the number of strands) is checked on every
// measurement.
//
// The model tests run on runtimes of 1 and 2 workers, not on the usual
// {1, 2, 3, 8}: with more busy workers than cores, workers preempt one
// another in the middle of strands, and a preempted strand's time slice lands
// on the span every time (noise that no number of attempts removes).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <weft/coroutine.hpp>
#include <weft/weft.hpp>
#include <weft/workspan.hpp>

#include "child_process.hpp"
#include "counters.hpp"
#include "nearly_full_stack.hpp"
#include "sanitizers.hpp"
#include "scheduler.hpp"
#include "worker_count.hpp"
#include "workspan.hpp"

namespace {

using namespace std::chrono_literals;
using std::chrono::nanoseconds;

constexpr int k_attempts = 10;

// Spins until d has passed on the steady clock. Time-based, so a preemption
// in the middle lengthens it only when it outlasts the rest of d.
void spin(nanoseconds d) {
  const auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
  }
}

// The same, and returns how long it spun.
nanoseconds timed_spin(nanoseconds d) {
  const auto start = std::chrono::steady_clock::now();
  spin(d);
  return std::chrono::duration_cast<nanoseconds>(std::chrono::steady_clock::now() - start);
}

double us(nanoseconds t) { return static_cast<double>(t.count()) / 1e3; }

std::string describe(const weft::workspan& ws) {
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "work %.1f us, span %.1f us, burdened span %.1f us, burden %.3f us, strands %llu, "
                "parallelism %.2f, burdened %.2f",
                us(ws.work), us(ws.span), us(ws.burdened_span), us(ws.burden),
                static_cast<unsigned long long>(ws.strands), ws.parallelism(), ws.burdened_parallelism());
  return buf;
}

// What holds for every measurement, whatever the noise: 0 < span <= work,
// span <= burdened span, a positive burden, at least the call's own strand.
::testing::AssertionResult sane(const weft::workspan& ws) {
  if (ws.span.count() > 0 && ws.span <= ws.work && ws.burdened_span >= ws.span && ws.burden.count() > 0 &&
      ws.strands >= 1) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "implausible measurement: " << describe(ws);
}

// Measures with measure() until ok(result) holds: at least k_attempts times,
// and more (up to k_max_attempts) while the attempts together took less than
// k_budget, so that a measurement gets through a busy moment of the machine
// (other tests running beside this one preempt its workers for milliseconds).
// Fails at once on a measurement that is not sane(); otherwise, when no
// attempt passes, lists the results seen (the first 30).
constexpr int k_max_attempts = 200;
constexpr auto k_budget = std::chrono::seconds(weft_test::k_sanitized ? 20 : 5);

// False while the runtime's workers fill every processor: then the test's own
// thread (and anything else on the machine) time-shares a core with a worker,
// a descheduled strand's whole time slice (4 ms) shows in the span, and the
// timing bounds are not asserted (one attempt: the structural checks inside
// ok() and sane() still are). On a machine with a processor to spare they
// are, as they always are with one worker.
bool g_timing_checked = true;

// The least work measured for fn on runtime `one`, divided by the least on
// `two`, with every measurement listed (the first 30 rounds). Each round
// measures fn once on each runtime and checks the strands (expected
// `strands`); noise only adds to the work, so the least of each side only
// falls. k_attempts rounds at least; more, while the ratio of the least
// works lies outside (lo, hi), up to k_max_attempts and while the rounds
// together took less than k_budget, so that a busy moment of the machine (a
// worker preempted for milliseconds inside a strand) does not decide the
// result. Empty bounds (lo >= hi): k_attempts rounds, only the strands
// checked.
template <class Fn>
std::pair<double, std::string> least_work_ratio(weft::runtime& one, weft::runtime& two, Fn&& fn, std::uint64_t strands,
                                                double lo, double hi) {
  weft::workspan least[2];
  std::string seen;
  double ratio = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < k_max_attempts && (i < k_attempts || std::chrono::steady_clock::now() - start < k_budget); ++i) {
    int r = 0;
    for (weft::runtime* rt : {&one, &two}) {
      const weft::workspan ws = rt->run([&] { return weft::measure_workspan(fn); });
      EXPECT_TRUE(sane(ws));
      EXPECT_EQ(ws.strands, strands) << describe(ws);
      if (i == 0 || ws.work < least[r].work) least[r] = ws;
      if (i < 30) seen += "\n  " + std::to_string(r + 1) + (r == 0 ? " worker:  " : " workers: ") + describe(ws);
      ++r;
    }
    if (::testing::Test::HasFailure()) break;
    ratio = static_cast<double>(least[0].work.count()) / static_cast<double>(least[1].work.count());
    if (i + 1 >= k_attempts && (lo >= hi || (ratio > lo && ratio < hi))) break;
  }
  return {ratio, seen};
}

template <class Measure, class Ok>
::testing::AssertionResult best_of(Measure&& measure, Ok&& ok) {
  std::string seen;
  int attempts = 0;
  const auto start = std::chrono::steady_clock::now();
  while (attempts < k_max_attempts && (attempts < k_attempts || std::chrono::steady_clock::now() - start < k_budget)) {
    const weft::workspan ws = measure();
    ++attempts;
    if (auto s = sane(ws); !s) return s << " (attempt " << attempts << ")";
    if (ok(ws) || !g_timing_checked) return ::testing::AssertionSuccess();
    if (attempts <= 30) seen += "\n  attempt " + std::to_string(attempts) + ": " + describe(ws);
  }
  return ::testing::AssertionFailure() << "none of " << attempts << " attempts passed; seen:" << seen;
}

std::uint64_t fib_join(int n) {
  if (n < 2) return static_cast<std::uint64_t>(n);
  auto [a, b] = weft::join([n] { return fib_join(n - 1); }, [n] { return fib_join(n - 2); });
  return a + b;
}

constexpr std::uint64_t fib_serial(int n) {
  return n < 2 ? static_cast<std::uint64_t>(n) : fib_serial(n - 1) + fib_serial(n - 2);
}

// The joins of fib_join(n): one per call with n >= 2, fib(n + 1) - 1 in all.
constexpr std::uint64_t fib_joins(int n) { return fib_serial(n + 1) - 1; }

// Overwrites the stack below the caller with a pattern that depends on
// `round`: whatever lay there (a measured call's state) is garbage after.
[[gnu::noinline]] void scribble_stack(int round) {
  volatile unsigned char bytes[32 * 1024];
  for (std::size_t i = 0; i < sizeof bytes; ++i) bytes[i] = static_cast<unsigned char>(0x5a + 0x25 * round);
}

weft::task<void> spin_task(nanoseconds d) {
  spin(d);
  co_return;
}

weft::task<long> fib_spawn(int n) {
  if (n < 2) co_return n;
  auto a = weft::spawn(fib_spawn(n - 1));
  const long b = co_await fib_spawn(n - 2);
  co_return co_await a + b;
}

struct boom : std::runtime_error {
  boom() : std::runtime_error("boom") {}
};

// ---- what the header computes from the numbers ----

TEST(WorkspanValues, NothingMeasuredReadsZero) {
  const weft::workspan ws{};
  EXPECT_EQ(ws.parallelism(), 0);
  EXPECT_EQ(ws.burdened_parallelism(), 0);
  EXPECT_EQ(ws.speedup_bound(4), 0);
  EXPECT_EQ(ws.burdened_speedup(4), 0);
  EXPECT_EQ(ws.strands, 0u);
}

TEST(WorkspanValues, RatiosAndBounds) {
  weft::workspan ws;
  ws.work = 1000ns;
  ws.span = 100ns;
  ws.burdened_span = 200ns;
  ws.burden = 10ns;
  EXPECT_DOUBLE_EQ(ws.parallelism(), 10);
  EXPECT_DOUBLE_EQ(ws.burdened_parallelism(), 5);
  EXPECT_DOUBLE_EQ(ws.speedup_bound(4), 4);
  EXPECT_DOUBLE_EQ(ws.speedup_bound(100), 10);
  EXPECT_DOUBLE_EQ(ws.speedup_bound(0), 1);  // p < 1 counts as 1
  EXPECT_DOUBLE_EQ(ws.speedup_bound(-3), 1);
  EXPECT_DOUBLE_EQ(ws.burdened_speedup(1), 1000.0 / 1200.0);
  EXPECT_DOUBLE_EQ(ws.burdened_speedup(4), 1000.0 / 450.0);
  EXPECT_DOUBLE_EQ(ws.burdened_speedup(0), ws.burdened_speedup(1));
}

// ---- the model, on runtimes of 1 and 2 workers ----

class WorkspanTest : public weft_test::WorkerCount {
 protected:
  void SetUp() override {
    weft_test::WorkerCount::SetUp();
    g_timing_checked = static_cast<unsigned>(GetParam()) < std::thread::hardware_concurrency();
  }
  void TearDown() override {
    g_timing_checked = true;
    weft_test::WorkerCount::TearDown();
  }

  // measure_workspan(f) run inside rt.
  template <class F>
  weft::workspan measure(F f) {
    return rt.run([&] { return weft::measure_workspan(f); });
  }
};

TEST_P(WorkspanTest, SerialChainHasParallelismOne) {
  EXPECT_TRUE(best_of([&] { return measure([] { spin(1ms); }); },
                      [](const weft::workspan& ws) {
                        return ws.strands == 1 && ws.parallelism() >= 0.9 && ws.parallelism() <= 1.1 &&
                               ws.work >= 900us;
                      }));
}

// fib(22) through join: its spawns alone. Every strand is counted; its leaves
// do next to nothing, so the work is mostly what the 28656 spawns cost (a
// few hundred microseconds in all), and one interruption of some tens of
// microseconds anywhere (a timer interrupt) is the whole span: the bound on
// the parallelism stays low here, the one below checks the figure.
TEST_P(WorkspanTest, FibThroughJoin) {
  constexpr int n = 22;
  std::uint64_t result = 0;
  EXPECT_TRUE(best_of([&] { return measure([&] { result = fib_join(n); }); },
                      [&](const weft::workspan& ws) {
                        // The call, and both sides of every join.
                        EXPECT_EQ(ws.strands, 1 + 2 * fib_joins(n)) << describe(ws);
                        return ws.parallelism() > 5;
                      }));
  EXPECT_EQ(result, fib_serial(n));
}

// A measured loop is shared between workers as an unmeasured one is (its
// pieces are pushed past the measured stack limit).
TEST_P(WorkspanTest, MeasuredLoopIsShared) {
  bool shared = false;
  for (int attempt = 0; attempt < 10 && !shared; ++attempt) {
    std::vector<std::atomic<int>> ran(static_cast<std::size_t>(GetParam()));
    measure([&] {
      weft::parallelize(200, [&](int) {
        spin(100us);
        ran[static_cast<std::size_t>(weft::worker_index())].fetch_add(1, std::memory_order_relaxed);
      });
    });
    int workers_used = 0;
    for (auto& r : ran) workers_used += r.load() > 0 ? 1 : 0;
    shared = workers_used == GetParam();
  }
  EXPECT_TRUE(shared) << "a measured parallelize ran on fewer than " << GetParam() << " workers in 10 attempts";
}

// fib(22) whose 28657 leaves spin 0.5 us each: about 15 ms of work over a
// span of 22 levels (short: each attempt has a chance between preemptions).
TEST_P(WorkspanTest, FibWithLeavesThroughJoin) {
  constexpr int n = 22;
  std::function<std::uint64_t(int)> fib = [&](int k) -> std::uint64_t {
    if (k < 2) {
      spin(500ns);
      return static_cast<std::uint64_t>(k);
    }
    auto [a, b] = weft::join([&] { return fib(k - 1); }, [&] { return fib(k - 2); });
    return a + b;
  };
  std::uint64_t result = 0;
  EXPECT_TRUE(best_of([&] { return measure([&] { result = fib(n); }); },
                      [&](const weft::workspan& ws) {
                        EXPECT_EQ(ws.strands, 1 + 2 * fib_joins(n)) << describe(ws);
                        return ws.parallelism() > 50;
                      }));
  EXPECT_EQ(result, fib_serial(n));
}

// Fine-grained spawns show in the burdened span: every potential steal on
// the path costs the burden. Strictly larger only while no preempted strand
// makes a path with fewer burdens the longest (seen under ThreadSanitizer on
// a loaded machine: both spans 140.8 us): a timing bound, so the best of
// several; the model's own bounds hold on every measurement.
TEST_P(WorkspanTest, FineSpawnsAreBurdened) {
  EXPECT_TRUE(best_of([this] { return measure([] { fib_join(16); }); },
                      [](const weft::workspan& ws) {
                        EXPECT_GT(ws.burdened_speedup(64), 0) << describe(ws);
                        EXPECT_LE(ws.burdened_speedup(64), ws.speedup_bound(64) + 1e-9) << describe(ws);
                        return ws.burdened_span > ws.span && ws.burdened_parallelism() < ws.parallelism();
                      }));
}

TEST_P(WorkspanTest, ParallelizeOfEqualItems) {
  constexpr int n = 1000;
  std::atomic<int> calls{0};
  EXPECT_TRUE(best_of(
      [&] {
        calls = 0;
        return measure([&] {
          weft::parallelize(n, [&](int) {
            spin(200us);
            calls.fetch_add(1, std::memory_order_relaxed);
          });
        });
      },
      [&](const weft::workspan& ws) {
        EXPECT_EQ(calls.load(), n);
        EXPECT_EQ(ws.strands, static_cast<std::uint64_t>(n + 1)) << describe(ws);  // the call and every item
        EXPECT_GE(ws.work, n * 200us * 9 / 10) << describe(ws);
        return ws.parallelism() > 250 && ws.parallelism() < 1100;
      }));
}

// parallel_for without a grain counts as split down to single items; with
// one, down to chunks of the grain (100 chunks of 10 items here).
TEST_P(WorkspanTest, ParallelForItemsAndGrain) {
  EXPECT_TRUE(
      best_of([&] { return measure([] { weft::parallel_for(0, 400, [](int b, int e) { spin((e - b) * 100us); }); }); },
              [](const weft::workspan& ws) {
                EXPECT_EQ(ws.strands, 1u + 400) << describe(ws);
                return ws.parallelism() > 100 && ws.parallelism() < 440;
              }));
  EXPECT_TRUE(best_of(
      [&] { return measure([] { weft::parallel_for(0, 1000, 10, [](int b, int e) { spin((e - b) * 20us); }); }); },
      [](const weft::workspan& ws) {
        EXPECT_EQ(ws.strands, 1u + 100) << describe(ws);
        return ws.parallelism() > 25 && ws.parallelism() < 110;
      }));
}

// parallelize(n, k, fn) runs at most k items at a time: no more than k of
// parallelism, however many items.
TEST_P(WorkspanTest, CappedLoopHasAtMostItsCap) {
  EXPECT_TRUE(best_of([&] { return measure([] { weft::parallelize(100, 4, [](int) { spin(200us); }); }); },
                      [](const weft::workspan& ws) {
                        EXPECT_EQ(ws.strands, 1u + 100) << describe(ws);
                        return ws.parallelism() > 2.5 && ws.parallelism() < 4.4;
                      }));
}

// A cap bounds the items in flight, not the parallelism inside each: one
// item at a time, each a loop of 100 items of 20 us, has about the inner
// loop's parallelism (it measured exactly 1, the items' work laid end to end,
// before).
TEST_P(WorkspanTest, CappedLoopOfParallelItemsKeepsTheirParallelism) {
  EXPECT_TRUE(best_of(
      [&] {
        return measure([] { weft::parallelize(2, 1, [](int) { weft::parallelize(100, [](int) { spin(20us); }); }); });
      },
      [](const weft::workspan& ws) {
        EXPECT_EQ(ws.strands, 1u + 2 * (1 + 100)) << describe(ws);
        return ws.parallelism() > 10 && ws.parallelism() <= 100;
      }));
}

TEST_P(WorkspanTest, NestedLoopsMultiply) {
  // One level of 20 items, each 20 x 200 us in series: at most 20.
  weft::workspan flat;
  EXPECT_TRUE(best_of(
      [&] {
        return flat = measure([] {
                 weft::parallelize(20, [](int) {
                   for (int j = 0; j < 20; ++j) spin(200us);
                 });
               });
      },
      [](const weft::workspan& ws) { return ws.parallelism() > 5 && ws.parallelism() < 20.5; }));
  // The same 400 spins as 20 x 20 items.
  EXPECT_TRUE(best_of(
      [&] {
        return measure([] { weft::parallelize(20, [](int) { weft::parallelize(20, [](int) { spin(200us); }); }); });
      },
      [&](const weft::workspan& ws) {
        EXPECT_EQ(ws.strands, 1u + 20 + 400) << describe(ws);
        return ws.parallelism() > 100 && ws.parallelism() > 5 * flat.parallelism();
      }));
}

TEST_P(WorkspanTest, TaskGroupSpawns) {
  std::atomic<int> calls{0};
  EXPECT_TRUE(best_of(
      [&] {
        calls = 0;
        return measure([&] {
          weft::task_group g;
          for (int i = 0; i < 100; ++i) {
            g.spawn([&] {
              spin(200us);
              calls.fetch_add(1, std::memory_order_relaxed);
            });
          }
          g.wait();
        });
      },
      [&](const weft::workspan& ws) {
        EXPECT_EQ(calls.load(), 100);
        EXPECT_EQ(ws.strands, 101u) << describe(ws);
        return ws.parallelism() > 30 && ws.parallelism() < 101;
      }));
}

// Spawns of a measured group that are all done before the group's wait (the
// caller yields until they are) are joined all the same: their work and
// strands count.
TEST_P(WorkspanTest, TaskGroupSpawnsDoneBeforeTheWait) {
  EXPECT_TRUE(best_of(
      [&] {
        return measure([&] {
          weft::task_group g;
          std::atomic<int> done{0};
          for (int i = 0; i < 4; ++i) {
            g.spawn([&] {
              spin(2ms);
              done.fetch_add(1, std::memory_order_release);
            });
          }
          while (done.load(std::memory_order_acquire) != 4) weft::yield();
          g.wait();
        });
      },
      [&](const weft::workspan& ws) {
        EXPECT_EQ(ws.strands, 5u) << describe(ws);
        return ws.work >= 7900us;
      }));
}

// Spawns k calls into g that each spin for d and count themselves, then waits.
void spawn_spins_and_wait(weft::task_group& g, int k, nanoseconds d, std::atomic<int>& calls) {
  for (int i = 0; i < k; ++i) {
    g.spawn([d, &calls] {
      spin(d);
      calls.fetch_add(1, std::memory_order_relaxed);
    });
  }
  g.wait();
}

// A group made before the measured call and used inside it is measured as if
// made inside: its spawns are strands of their own, whether they are popped
// back or taken; the same group is an ordinary one again afterwards.
TEST_P(WorkspanTest, TaskGroupMadeBeforeTheCall) {
  std::atomic<int> calls{0};
  rt.run([&] {
    weft::task_group g;
    const auto round = [&] { spawn_spins_and_wait(g, 50, 200us, calls); };
    round();  // used before, unmeasured
    EXPECT_TRUE(best_of([&] { return weft::measure_workspan(round); },
                        [&](const weft::workspan& ws) {
                          EXPECT_EQ(ws.strands, 51u) << describe(ws);
                          return ws.work >= 9900us && ws.parallelism() > 15 && ws.parallelism() < 51;
                        }));
    calls = 0;
    round();  // and after
    EXPECT_EQ(calls.load(), 50);
    if (GetParam() == 1) {
      // Its owner is back: on one worker the owner's spawn is popped back
      // and runs on the owner's own stack (a counted one would run on another
      // fiber's, at least a stack size away).
      const char here = 0;
      std::ptrdiff_t distance = 0;
      g.spawn([&] {
        const char there = 0;
        distance = &there - &here;
      });
      g.wait();
      EXPECT_LT(std::abs(distance), 16 * 1024);
    }
    const weft::workspan again = weft::measure_workspan(round);  // and measured again
    EXPECT_EQ(again.strands, 51u) << describe(again);
  });
}

// A group made outside any runtime (on the test's thread), used inside a
// measured call, is measured as one made inside: each spawn is a strand of
// the call, joined by the wait. Its spawns ran unmeasured and the wait joined
// none of them: work and span 0, 1 strand. Afterwards it is an ordinary
// group again.
TEST_P(WorkspanTest, TaskGroupMadeOutsideAnyRuntime) {
  weft::task_group g;
  std::atomic<int> calls{0};
  const auto round = [&] { spawn_spins_and_wait(g, 4, 500us, calls); };
  EXPECT_TRUE(best_of([&] { return measure(round); },
                      [](const weft::workspan& ws) {
                        EXPECT_EQ(ws.strands, 1u + 4) << describe(ws);  // the call, and every spawn
                        return ws.work >= 1900us && ws.parallelism() >= 3 && ws.parallelism() <= 4.4;
                      }));
  calls = 0;
  rt.run(round);  // unmeasured
  EXPECT_EQ(calls.load(), 4);
  EXPECT_FALSE(rt.run([] { return weft::detail::ws_active(); }));
}

// Spawns into a group inside a measured call that does not wait for them:
// they may end after it returned, where its state was (on the caller's
// stack, scribbled over here), and a wait inside the next measured call must
// not join them (they are in neither result). The strands read that state
// after it was gone, and the next call joined them: 5 strands, and work and
// span read from the scribbled frame (negative work, spans of hours).
TEST_P(WorkspanTest, TaskGroupSpawnsThatOutliveTheirMeasuredCall) {
  rt.run([&] {
    for (int round = 0; round < 3; ++round) {
      weft::task_group g;
      std::atomic<int> calls{0};
      const weft::workspan first = weft::measure_workspan([&] {
        for (int i = 0; i < 4; ++i) {
          g.spawn([&] {
            spin(1ms);
            calls.fetch_add(1, std::memory_order_relaxed);
          });
        }
      });
      EXPECT_EQ(first.strands, 1u) << describe(first);  // none joined in the call
      scribble_stack(round);
      const weft::workspan second = weft::measure_workspan([&] { g.wait(); });
      EXPECT_EQ(calls.load(), 4);
      EXPECT_EQ(second.strands, 1u) << describe(second);
      EXPECT_GE(second.work.count(), 0) << describe(second);
      EXPECT_LE(second.span, second.work) << describe(second);
      // Used again in a third call, it gathers that call's spawns only.
      const weft::workspan third = weft::measure_workspan([&] {
        g.spawn([] { spin(100us); });
        g.wait();
      });
      EXPECT_EQ(third.strands, 2u) << describe(third);
      EXPECT_GE(third.work, 90us) << describe(third);
    }
  });
}

TEST_P(WorkspanTest, CoroutineWhenAll) {
  EXPECT_TRUE(best_of(
      [&] {
        return measure([] {
          weft::sync_wait([]() -> weft::task<void> {
            co_await weft::when_all(spin_task(500us), spin_task(500us), spin_task(500us), spin_task(500us));
          }());
        });
      },
      [](const weft::workspan& ws) {
        EXPECT_EQ(ws.strands, 1u + 4) << describe(ws);  // the call, and every task
        return ws.parallelism() >= 3 && ws.parallelism() <= 4.4;
      }));
}

// An awaitable of another library that resumes the awaiting coroutine on a
// thread of its own (the test joins it afterwards).
struct resume_on_a_thread {
  std::thread& m_thread;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const {
    // This awaiter lives in the coroutine's frame, which the new thread may
    // destroy at once: read the reference before the thread starts.
    std::thread& out = m_thread;
    out = std::thread([h] { h.resume(); });
  }
  void await_resume() const noexcept {}
};

weft::task<void> spin_then_go_to_a_thread(std::thread& plain) {
  spin(2ms);
  co_await resume_on_a_thread{plain};
  spin(500us);  // on the plain thread: not measured
}

// A measured task that an awaitable of another library resumes on a plain
// thread: the work it did on the worker before it suspended is kept, as a
// piece of the caller's strand. sync_wait dropped the piece still open when
// the chain returned to it: work 0.
TEST_P(WorkspanTest, CoroutineResumedOnAPlainThreadKeepsItsWorkBefore) {
  EXPECT_TRUE(best_of(
      [&] {
        std::thread plain;
        const weft::workspan ws = measure([&] { weft::sync_wait(spin_then_go_to_a_thread(plain)); });
        plain.join();
        return ws;
      },
      [](const weft::workspan& ws) {
        EXPECT_EQ(ws.strands, 1u) << describe(ws);
        return ws.work >= 1900us && ws.parallelism() >= 0.9 && ws.parallelism() <= 1.1;
      }));
  EXPECT_FALSE(rt.run([] { return weft::detail::ws_active(); }));
}

weft::task<void> spin_go_to_a_thread_then_spin(std::thread& plain, nanoseconds after) {
  spin(500us);
  co_await resume_on_a_thread{plain};
  spin(after);
}

weft::task<void> when_all_with_a_child_on_a_thread(std::thread& plain, nanoseconds there, nanoseconds here) {
  co_await weft::when_all(spin_go_to_a_thread_then_spin(plain, there), spin_task(here));
}

// A measured when_all whose first child an awaitable of another library
// resumes on a plain thread, where it ends, first or last (then the awaiting
// coroutine goes on there too): the children are strands of the call all the
// same, and nothing stays measured. Ending the child (and joining the parent)
// there took the plain thread for a worker and read its null fiber: a crash.
TEST_P(WorkspanTest, CoroutineChildEndsOnAPlainThread) {
  for (const auto& times : {std::pair<nanoseconds, nanoseconds>{0us, 2ms}, {2ms, 0us}}) {
    const nanoseconds there = times.first;  // not structured bindings: clang 14 cannot capture those
    const nanoseconds here = times.second;
    std::thread plain;
    const weft::workspan ws = measure([&] { weft::sync_wait(when_all_with_a_child_on_a_thread(plain, there, here)); });
    plain.join();
    EXPECT_TRUE(sane(ws));
    EXPECT_EQ(ws.strands, 1u + 2) << describe(ws);  // the call, and both children
    EXPECT_FALSE(rt.run([] { return weft::detail::ws_active(); }));
  }
}

TEST_P(WorkspanTest, CoroutineWhenAllOfAVector) {
  EXPECT_TRUE(best_of(
      [&] {
        return measure([] {
          weft::sync_wait([]() -> weft::task<void> {
            std::vector<weft::task<void>> tasks;
            for (int i = 0; i < 8; ++i) tasks.push_back(spin_task(300us));
            co_await weft::when_all(std::move(tasks));
          }());
        });
      },
      [](const weft::workspan& ws) {
        EXPECT_EQ(ws.strands, 1u + 8) << describe(ws);
        return ws.parallelism() >= 6 && ws.parallelism() <= 8.5;
      }));
}

TEST_P(WorkspanTest, CoroutineSpawnFib) {
  long result = 0;
  EXPECT_TRUE(best_of([&] { return measure([&] { result = weft::sync_wait(fib_spawn(16)); }); },
                      [](const weft::workspan& ws) {
                        // The call, and every spawned task (one per call with n >= 2;
                        // what is co_awaited directly runs on the awaiting strand).
                        // Under a sanitizer the compiler may not turn the transfers
                        // between coroutines into tail calls: the stack grows along
                        // a chain of them, and a spawn where it is nearly full runs
                        // inline on the spawner's strand (a few strands fewer).
                        if (weft_test::k_sanitized) {
                          EXPECT_LE(ws.strands, 1 + fib_joins(16)) << describe(ws);
                          EXPECT_GE(ws.strands, (1 + fib_joins(16)) * 9 / 10) << describe(ws);
                        } else {
                          EXPECT_EQ(ws.strands, 1 + fib_joins(16)) << describe(ws);
                        }
                        return ws.parallelism() > 10;
                      }));
  EXPECT_EQ(result, static_cast<long>(fib_serial(16)));
}

TEST_P(WorkspanTest, ParallelReduce) {
  std::vector<int> v(1'000'000);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int>(i % 1000) - 300;
  const long expected = std::accumulate(v.begin(), v.end(), 0L);
  long sum = 0;
  EXPECT_TRUE(best_of(
      [&] {
        sum = 0;
        return measure([&] {
          sum = weft::parallel_reduce(
              std::size_t{0}, v.size(), 0L, [&](std::size_t i) { return long{v[i]}; }, std::plus<>{});
        });
      },
      [&](const weft::workspan& ws) {
        EXPECT_EQ(sum, expected);
        // The call, and both sides of every fork of the blocks' tree.
        const std::uint64_t blocks =
            (v.size() + weft::detail::reduce_leaf_size(v.size()) - 1) / weft::detail::reduce_leaf_size(v.size());
        EXPECT_EQ(ws.strands, 1 + 2 * (blocks - 1)) << describe(ws);
        return ws.parallelism() > 5;
      }));
  EXPECT_EQ(sum, expected);
}

// A join tree of 64 leaves that spin 300 us each: the work is what the leaves
// spun (plus the spawns), the span one leaf (plus six levels of spawns).
TEST_P(WorkspanTest, WorkIsTheSerialTime) {
  constexpr int leaves = 64;
  constexpr auto leaf = 300us;
  std::atomic<std::int64_t> spun_ns{0};
  std::function<void(int)> tree = [&](int n) {
    if (n == 1) {
      spun_ns.fetch_add(timed_spin(leaf).count(), std::memory_order_relaxed);
      return;
    }
    weft::join([&] { tree(n / 2); }, [&] { tree(n - n / 2); });
  };
  EXPECT_TRUE(best_of(
      [&] {
        spun_ns = 0;
        return measure([&] { tree(leaves); });
      },
      [&](const weft::workspan& ws) {
        const auto spun = nanoseconds(spun_ns.load());
        EXPECT_EQ(ws.strands, 1u + 2 * (leaves - 1)) << describe(ws);
        EXPECT_GE(spun, leaves * leaf);
        return ws.work >= spun * 8 / 10 && ws.work <= spun * 3 / 2 && ws.span >= leaf * 8 / 10 &&
               ws.span <= 3 * leaf + 100us;
      }));
}

// Waiting for a latch is not work: the side that waits while the other spins
// adds (almost) nothing.
TEST_P(WorkspanTest, WaitingIsNotWork) {
  EXPECT_TRUE(best_of(
      [&] {
        return measure([] {
          weft::latch done(1);
          weft::join([&] { done.wait(); },
                     [&] {
                       spin(2ms);
                       done.count_down();
                     });
        });
      },
      [](const weft::workspan& ws) { return ws.work >= 1800us && ws.work < 2600us && ws.parallelism() <= 1.1; }));
}

// A call into another runtime is not measured: the calling strand waits for
// it, and waiting is not work. 100 calls that each sleep 200 us, from a
// runtime of 2 workers (whose waits watch in place before they suspend): the
// watch counted as work, 8-10 us a call (825-1060 us in all), before.
TEST(WorkspanOtherRuntime, WaitingForItIsNotWork) {
  weft::runtime rt{weft::config{.workers = 2}};
  weft::runtime other{weft::config{.workers = 1}};
  EXPECT_TRUE(best_of(
      [&] {
        return rt.run([&] {
          return weft::measure_workspan([&] {
            for (int i = 0; i < 100; ++i) other.run([] { std::this_thread::sleep_for(200us); });
          });
        });
      },
      [](const weft::workspan& ws) { return ws.work < 250us; }));
}

TEST_P(WorkspanTest, ExceptionsPropagateAndMeasuringGoesOn) {
  EXPECT_THROW(measure([] { throw boom(); }), boom);
  EXPECT_THROW(measure([] {
                 weft::parallelize(200, [](int i) {
                   if (i == 57) throw boom();
                   spin(5us);
                 });
               }),
               boom);
  EXPECT_THROW(measure([] { weft::join([] { spin(50us); }, [] { throw boom(); }); }), boom);
  EXPECT_THROW(measure([] {
                 weft::task_group g;
                 for (int i = 0; i < 10; ++i) {
                   g.spawn([i] {
                     if (i == 3) throw boom();
                   });
                 }
                 g.wait();
               }),
               boom);
  EXPECT_THROW(measure([] {
                 weft::sync_wait([]() -> weft::task<void> {
                   co_await weft::when_all(spin_task(10us), []() -> weft::task<void> {
                     throw boom();
                     co_return;
                   }());
                 }());
               }),
               boom);
  // Nothing is left measured on the worker...
  EXPECT_FALSE(rt.run([] { return weft::detail::ws_active(); }));
  // ...and the next measurements are whole.
  EXPECT_TRUE(best_of(
      [&] { return measure([] { spin(1ms); }); },
      [](const weft::workspan& ws) { return ws.strands == 1 && ws.parallelism() >= 0.9 && ws.parallelism() <= 1.1; }));
  const weft::workspan ws = measure([] { fib_join(12); });
  EXPECT_TRUE(sane(ws));
  EXPECT_EQ(ws.strands, 1 + 2 * fib_joins(12)) << describe(ws);
}

// A measured strand is the fiber's, during the call only.
TEST_P(WorkspanTest, MeasuredOnlyDuringTheCall) {
  bool inside = false;
  bool in_item = true;
  bool after = true;
  rt.run([&] {
    (void)weft::measure_workspan([&] {
      inside = weft::detail::ws_active();
      weft::parallelize(8, [&](int i) {
        if (i == 5 && !weft::detail::ws_active()) in_item = false;
      });
    });
    after = weft::detail::ws_active();
  });
  EXPECT_TRUE(inside);
  EXPECT_TRUE(in_item);
  EXPECT_FALSE(after);
}

// The costs that the model charges are measured once per process: a
// measured call of nothing spawns nothing of its own (each call timed 1 024
// joins of its own first, about 40 us whatever it measured), and every call
// is charged the same burden.
TEST_P(WorkspanTest, ACallOfNothingSpawnsNothingOfItsOwn) {
  const weft::workspan first = measure([] {});
  const std::uint64_t before = rt.stats().total.spawns;
  for (int i = 0; i < 10; ++i) {
    const weft::workspan ws = measure([] {});
    EXPECT_EQ(ws.burden, first.burden);
    EXPECT_EQ(ws.strands, 1u);
  }
  if (!weft::rt::k_instrumented) GTEST_SKIP() << "no counters in this build (the burdens were checked)";
  EXPECT_EQ(rt.stats().total.spawns, before);
}

// The spawn cost timed by a first measured call on a nearly full stack (where
// each join moves its call to a fresh stack) is not kept: the next measured
// call with room times it again. It was kept for the rest of the process.
TEST_P(WorkspanTest, ASpawnCostTimedOnANearlyFullStackIsNotKept) {
  if (!weft::rt::k_instrumented) GTEST_SKIP() << "the spawns are counted by the counters, absent from this build";
  bool low = false;
  rt.run([&] {
    weft::rt::forget_join_ticks();
    auto deep = [&] {
      low = weft::detail::stack_low_here();
      (void)weft::measure_workspan([] {});
    };
    (void)weft_test::on_a_nearly_full_stack(deep);
  });
  ASSERT_TRUE(low);
  const std::uint64_t before = rt.stats().total.spawns;
  (void)measure([] {});
  EXPECT_GE(rt.stats().total.spawns - before, 1024u) << "the call with room timed no joins of its own";
  const std::uint64_t after = rt.stats().total.spawns;
  (void)measure([] {});
  EXPECT_EQ(rt.stats().total.spawns, after) << "the value timed with room is kept";
}

// A measurement inside a measured call measures its own part, which the
// outer one counts whole.
TEST_P(WorkspanTest, NestedMeasurement) {
  weft::workspan inner;
  EXPECT_TRUE(best_of(
      [&] {
        return measure([&] {
          spin(200us);
          inner = weft::measure_workspan([] { weft::parallelize(100, [](int) { spin(100us); }); });
          spin(200us);
        });
      },
      [&](const weft::workspan& outer) {
        EXPECT_TRUE(sane(inner));
        EXPECT_GE(inner.strands, 101u) << describe(inner);
        EXPECT_GE(outer.strands, inner.strands + 1) << describe(outer);
        EXPECT_GE(outer.work, inner.work + 360us) << describe(outer) << "\ninner: " << describe(inner);
        EXPECT_GE(outer.span, inner.span + 360us) << describe(outer) << "\ninner: " << describe(inner);
        return inner.parallelism() > 20 && outer.parallelism() > 5;
      }));
}

// Measurements inside the items of a measured loop, each on its own item's
// strand (which may move between workers while it waits).
TEST_P(WorkspanTest, NestedMeasurementsInLoopItems) {
  std::vector<weft::workspan> inner(6);
  const weft::workspan outer = measure([&] {
    weft::parallelize(6, [&](int i) {
      inner[static_cast<std::size_t>(i)] =
          weft::measure_workspan([] { weft::join([] { spin(100us); }, [] { spin(100us); }); });
    });
  });
  EXPECT_TRUE(sane(outer));
  for (const auto& ws : inner) {
    EXPECT_TRUE(sane(ws));
    EXPECT_EQ(ws.strands, 3u) << describe(ws);
    EXPECT_GE(ws.work, 180us) << describe(ws);
  }
  EXPECT_GE(outer.work, 6 * 180us) << describe(outer);
}

INSTANTIATE_TEST_SUITE_P(Workers, WorkspanTest, ::testing::Values(1, 2), ::weft_test::worker_count_name);

// ---- from outside any runtime, and across runtimes ----

// From outside, the call runs in the default runtime.
TEST(WorkspanOutside, MeasuresInTheDefaultRuntime) {
  std::uint64_t result = 0;
  EXPECT_TRUE(best_of([&] { return weft::measure_workspan([&] { result = fib_join(18); }); },
                      [](const weft::workspan& ws) {
                        EXPECT_EQ(ws.strands, 1 + 2 * fib_joins(18)) << describe(ws);
                        return ws.parallelism() > 20;
                      }));
  EXPECT_EQ(result, fib_serial(18));
}

TEST(WorkspanOutside, ExceptionsPropagateAndMeasuringGoesOn) {
  EXPECT_THROW((void)weft::measure_workspan([] { throw boom(); }), boom);
  EXPECT_THROW((void)weft::measure_workspan([] { weft::join([] {}, [] { throw boom(); }); }), boom);
  EXPECT_TRUE(best_of([] { return weft::measure_workspan([] { spin(1ms); }); },
                      [](const weft::workspan& ws) { return ws.parallelism() >= 0.9 && ws.parallelism() <= 1.1; }));
}

TEST(WorkspanOutside, NestedMeasurement) {
  weft::workspan inner;
  const weft::workspan outer = weft::measure_workspan(
      [&] { inner = weft::measure_workspan([] { weft::parallelize(10, [](int) { spin(50us); }); }); });
  EXPECT_TRUE(sane(inner));
  EXPECT_TRUE(sane(outer));
  EXPECT_GE(outer.work, inner.work) << describe(outer) << "\ninner: " << describe(inner);
  EXPECT_GE(outer.span, inner.span) << describe(outer) << "\ninner: " << describe(inner);
}

// The same computation measured on 1 and on 2 workers: the same strands,
// and about the same work. Noise only adds to the work, so each runtime's
// least work of several measurements is compared.
TEST(WorkspanWorkers, ResultsDoNotDependOnTheWorkerCount) {
  weft::runtime one{weft::config{.workers = 1}};
  weft::runtime two{weft::config{.workers = 2}};
  // fib(16) whose leaves spin 2 us: the program's work (about 3.2 ms) is
  // what is compared. (With empty leaves the work is nearly all spawn cost,
  // which stealing on two workers makes dearer: docs/guide.md says so.)
  std::function<std::uint64_t(int)> fib = [&](int k) -> std::uint64_t {
    if (k < 2) {
      spin(2us);
      return static_cast<std::uint64_t>(k);
    }
    auto [a, b] = weft::join([&] { return fib(k - 1); }, [&] { return fib(k - 2); });
    return a + b;
  };
  auto fib16 = [&] { fib(16); };
  if (weft_test::k_tsan) {
    // ThreadSanitizer's cost on the synchronisation of stolen work inflates
    // the work measured at 2 workers: about 1.6x that at 1 worker there, on
    // either side of the bound from run to run. The strands are checked.
    const std::string seen = least_work_ratio(one, two, fib16, 1 + 2 * fib_joins(16), 0, 0).second;
    GTEST_SKIP() << "work ratio not compared under ThreadSanitizer; seen:" << seen;
  }
  const auto [ratio, seen] = least_work_ratio(one, two, fib16, 1 + 2 * fib_joins(16), 1.0 / 1.5, 1.5);
  EXPECT_TRUE(ratio > 1.0 / 1.5 && ratio < 1.5)
      << "the least work on 1 worker is " << ratio << " times that on 2 workers; seen:" << seen;
}

// The same with leaves that do something (a join tree of 32 leaves of
// 100 us): the spawns are a small part of the work, and the work is the
// same on either runtime.
TEST(WorkspanWorkers, WorkOfLeavesDoesNotDependOnTheWorkerCount) {
  weft::runtime one{weft::config{.workers = 1}};
  weft::runtime two{weft::config{.workers = 2}};
  std::function<void(int)> tree = [&](int n) {
    if (n == 1) {
      spin(100us);
      return;
    }
    weft::join([&] { tree(n / 2); }, [&] { tree(n - n / 2); });
  };
  const auto [ratio, seen] = least_work_ratio(
      one, two, [&] { tree(32); }, 1u + 2 * 31, 0.9, 1.1);
  EXPECT_TRUE(ratio > 0.9 && ratio < 1.1)
      << "the least work on 1 worker is " << ratio << " times that on 2 workers; seen:" << seen;
}

// fork() while another thread records a measured call under WEFT_WORKSPAN
// (its report's lock held): the child gets the lock free and can record its
// own calls (the atfork handlers hold the lock across the fork). The other
// thread holds it for 200 ms here, where a recording thread holds it for an
// instant: a child forked then waited for it forever.
TEST(WorkspanReportFork, ChildGetsTheReportLockFree) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer: a fork of a multi-threaded process";
  weft::rt::register_fork_handlers();
  std::atomic<bool> held{false};
  std::thread recorder([&] {
    weft::rt::lock_workspan_report_for_fork();
    held.store(true);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    weft::rt::unlock_workspan_report_after_fork();
  });
  while (!held.load()) std::this_thread::yield();
  const auto r = weft_test::run_in_child(
      [] {
        weft::rt::lock_workspan_report_for_fork();  // as the child's first recorded call does
        weft::rt::unlock_workspan_report_after_fork();
        return 0;
      },
      std::chrono::seconds(5));
  recorder.join();
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

}  // namespace
