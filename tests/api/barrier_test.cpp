// SPDX-License-Identifier: MIT
// weft::barrier: fibers, coroutines and outside threads meeting for many
// phases; the completion step runs once per phase, after every arrival and
// before any waiter of the phase returns; arrive_and_drop; split arrive and
// wait; 10 000 tasks at one barrier; a barrier destroyed as soon as its last
// wait returns; bad arguments; destruction while waited on; a barrier that
// breaks when a waiter cannot get a fiber.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <new>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <weft/coroutine.hpp>
#include <weft/weft.hpp>

#include "child_process.hpp"
#include "expect_names.hpp"
#include "sanitizers.hpp"
#include "seeded_rng.hpp"
#include "worker_count.hpp"

namespace {

using namespace std::chrono_literals;

// Checks a run of phases. The completion step counts the phases and checks
// that every arrival of its phase came before it; every party checks, before
// each arrival, that the barrier is at its phase, and after each wait that
// the completion step of its phase has run. m_completed is a plain int,
// written by the completion step and read by the parties: the barrier's
// ordering alone keeps that race-free (ThreadSanitizer checks it).
struct phase_check {
  explicit phase_check(int parties) : m_parties(parties) {}

  int m_parties;
  int m_completed = 0;             // phases completed; written by the completion step only
  std::atomic<int> m_arrivals{0};  // arrivals so far, every phase
  std::atomic<int> m_bad_completion{0};
  std::atomic<int> m_early{0};  // a party passed its phase before the completion step
  std::atomic<int> m_late{0};   // a party arrived after its phase was over

  void complete() noexcept {
    // relaxed: each increment comes before its party's arrival, which the
    // barrier orders before this step.
    if (m_arrivals.load(std::memory_order_relaxed) != m_parties * (m_completed + 1)) m_bad_completion.fetch_add(1);
    ++m_completed;
  }
  void before_arrival(int phase) {
    if (m_completed != phase) m_late.fetch_add(1);
    m_arrivals.fetch_add(1, std::memory_order_relaxed);
  }
  void after_wait(int phase) {
    if (m_completed != phase + 1) m_early.fetch_add(1);
  }
  void expect_phases(int phases) const {
    EXPECT_EQ(m_completed, phases);
    EXPECT_EQ(m_arrivals.load(), m_parties * phases);
    EXPECT_EQ(m_bad_completion.load(), 0) << "a completion step ran before every arrival of its phase";
    EXPECT_EQ(m_early.load(), 0) << "a wait returned before the completion step of its phase";
    EXPECT_EQ(m_late.load(), 0) << "a phase completed before one of its parties arrived";
  }
};

// The completion function of these tests.
struct count_phase {
  phase_check* m_check;
  void operator()() const noexcept { m_check->complete(); }
};

using checked_barrier = weft::barrier<count_phase>;

// A fiber party: `phases` phases, arrive_and_wait or, every other phase,
// arrive, some work, wait.
void fiber_party(checked_barrier& b, phase_check& c, int phases, int salt) {
  for (int p = 0; p < phases; ++p) {
    c.before_arrival(p);
    if ((p + salt) % 2 == 0) {
      b.arrive_and_wait();
    } else {
      auto token = b.arrive();
      weft::yield();
      b.wait(std::move(token));
    }
    c.after_wait(p);
  }
}

// A coroutine party: the same with the awaitables.
weft::task<int> coroutine_party(checked_barrier& b, phase_check& c, int phases, int salt) {
  for (int p = 0; p < phases; ++p) {
    c.before_arrival(p);
    if ((p + salt) % 2 == 0) {
      co_await weft::arrive_and_wait_async(b);
    } else {
      auto token = b.arrive();
      co_await weft::yield_async();
      co_await weft::wait_async(b, std::move(token));
    }
    c.after_wait(p);
  }
  co_return 1;
}

weft::task<int> all_of(std::vector<weft::task<int>> tasks) {
  int sum = 0;
  for (int v : co_await weft::when_all(std::move(tasks))) sum += v;
  co_return sum;
}

// `n` coroutine parties, run to completion from a fiber.
int run_coroutine_parties(checked_barrier& b, phase_check& c, int n, int phases) {
  std::vector<weft::task<int>> tasks;
  for (int i = 0; i < n; ++i) tasks.push_back(coroutine_party(b, c, phases, i));
  return weft::sync_wait(all_of(std::move(tasks)));
}

template <class T>
T copy_of(const T& t) {
  return t;
}

class BarrierTest : public weft_test::WorkerCount {};

// ---- parties of each kind ----

// Tasks of a task_group, more than there are workers, for many phases.
TEST_P(BarrierTest, FibersMeetForManyPhases) {
  const int n = 3 * workers() + 5;
  const int phases = static_cast<int>(weft_test::scaled(300, 4));
  phase_check c(n);
  checked_barrier b(n, count_phase{&c});
  rt.run([&] {
    weft::task_group g;
    for (int i = 0; i < n; ++i) g.spawn([&, i] { fiber_party(b, c, phases, i); });
    g.wait();
  });
  c.expect_phases(phases);
}

// Coroutines of a when_all, awaiting arrive_and_wait_async and wait_async.
TEST_P(BarrierTest, CoroutinesMeetForManyPhases) {
  const int n = 3 * workers() + 5;
  const int phases = static_cast<int>(weft_test::scaled(300, 4));
  phase_check c(n);
  checked_barrier b(n, count_phase{&c});
  EXPECT_EQ(rt.run([&] { return run_coroutine_parties(b, c, n, phases); }), n);
  c.expect_phases(phases);
}

// Threads outside any runtime: they block without a runtime at all.
TEST_P(BarrierTest, OutsideThreadsMeetForManyPhases) {
  constexpr int n = 4;
  const int phases = static_cast<int>(weft_test::scaled(300, 4));
  phase_check c(n);
  checked_barrier b(n, count_phase{&c});
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) threads.emplace_back([&, i] { fiber_party(b, c, phases, i); });
  for (auto& t : threads) t.join();
  c.expect_phases(phases);
}

// Fibers, coroutines and outside threads at one barrier; the runtime is
// entered from two outside threads at once.
TEST_P(BarrierTest, FibersCoroutinesAndThreadsMeetTogether) {
  const int fibers = 2 * workers() + 1;
  const int coroutines = 2 * workers() + 2;
  constexpr int threads = 2;
  const int n = fibers + coroutines + threads;
  const int phases = static_cast<int>(weft_test::scaled(200, 4));
  phase_check c(n);
  checked_barrier b(n, count_phase{&c});
  std::vector<std::thread> callers;
  callers.emplace_back([&] {
    rt.run([&] {
      weft::task_group g;
      for (int i = 0; i < fibers; ++i) g.spawn([&, i] { fiber_party(b, c, phases, i); });
      g.wait();
    });
  });
  std::atomic<int> coroutine_sum{0};
  callers.emplace_back(
      [&] { coroutine_sum = rt.run([&] { return run_coroutine_parties(b, c, coroutines, phases); }); });
  for (int i = 0; i < threads; ++i) callers.emplace_back([&, i] { fiber_party(b, c, phases, i); });
  for (auto& t : callers) t.join();
  EXPECT_EQ(coroutine_sum.load(), coroutines);
  c.expect_phases(phases);
}

// ---- phases, tokens, counts ----

// arrive(n) counts n arrivals; the completion step runs once per phase, in
// the arrival that completes it; tokens of a phase that is over (also of
// phases long gone, and copies) return at once.
TEST_P(BarrierTest, ArrivalsCountAndOldTokensReturnAtOnce) {
  int completions = 0;
  auto count = [&completions]() noexcept { ++completions; };
  weft::barrier b(5, count);
  auto t0 = b.arrive(2);
  EXPECT_EQ(completions, 0);
  auto t1 = b.arrive(3);  // completes phase 0 here
  EXPECT_EQ(completions, 1);
  b.wait(std::move(t1));
  b.wait(std::move(t0));
  auto t2 = b.arrive(5);  // phase 1, alone
  EXPECT_EQ(completions, 2);
  const auto copy = t2;
  b.wait(std::move(t2));
  b.wait(copy_of(copy));
  b.wait(copy_of(copy));  // waiting twice on a token is fine
  std::vector<weft::barrier<decltype(count)>::arrival_token> old;
  for (int p = 0; p < 100; ++p) old.push_back(b.arrive(5));
  EXPECT_EQ(completions, 102);
  for (auto& t : old) b.wait(std::move(t));

  // Waited by a fiber while another fiber and a thread complete the phase.
  weft::barrier<> plain(3);
  auto mine = plain.arrive();
  std::thread other([&] { plain.arrive_and_wait(); });
  rt.run([&] {
    weft::task_group g;
    g.spawn([&] { plain.arrive_and_wait(); });
    plain.wait(copy_of(mine));
    g.wait();
  });
  plain.wait(std::move(mine));
  other.join();
}

// Without a completion function, parties that arrive again and again without
// waiting (allowed: each arrival counts in the phase that is open) never see
// an error, also when an arrival comes while the previous phase completes.
TEST_P(BarrierTest, ArrivalsWithoutWaitingCountInTheOpenPhase) {
  constexpr int n = 4;
  const int rounds = static_cast<int>(weft_test::scaled(20000, 8));
  weft::barrier<> b(n);
  std::atomic<int> errors{0};
  auto arrive_often = [&] {
    for (int r = 0; r < rounds; ++r) {
      try {
        (void)b.arrive();
      } catch (const std::exception&) {
        errors.fetch_add(1);
      }
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) threads.emplace_back(arrive_often);
  rt.run([&] {
    weft::task_group g;
    for (int i = 2; i < n; ++i) g.spawn(arrive_often);
    g.wait();
  });
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  // n * rounds arrivals: whole phases, so the barrier is at the start of one.
  auto last = b.arrive(n);
  b.wait(std::move(last));
}

// Parties leave one by one: party i waits through phases 0 .. i-1 and drops
// out in phase i. Each phase expects one party fewer; the last drop leaves
// the barrier expecting none, and an arrival then throws.
TEST_P(BarrierTest, PartiesLeaveOneByOne) {
  constexpr int n = 12;
  struct state {
    int completed = 0;
    std::atomic<int> arrivals{0};
    std::atomic<int> bad{0};
  } s;
  auto complete = [&s]() noexcept {
    // Phase p had n - p arrivals: n + (n-1) + ... + (n-p) in all.
    const int p = s.completed;
    if (s.arrivals.load(std::memory_order_relaxed) != (p + 1) * n - p * (p + 1) / 2) s.bad.fetch_add(1);
    ++s.completed;
  };
  weft::barrier b(n, complete);
  std::atomic<int> early{0};
  rt.run([&] {
    weft::task_group g;
    for (int i = 0; i < n; ++i) {
      g.spawn([&, i] {
        for (int p = 0; p < i; ++p) {
          s.arrivals.fetch_add(1, std::memory_order_relaxed);
          b.arrive_and_wait();
          if (s.completed != p + 1) early.fetch_add(1);
        }
        s.arrivals.fetch_add(1, std::memory_order_relaxed);
        b.arrive_and_drop();
      });
    }
    g.wait();
  });
  EXPECT_EQ(s.completed, n);
  EXPECT_EQ(s.bad.load(), 0);
  EXPECT_EQ(early.load(), 0);
  EXPECT_THROW((void)b.arrive(), std::invalid_argument);
  EXPECT_THROW(b.arrive_and_drop(), std::invalid_argument);
  EXPECT_EQ(s.completed, n);

  // One party dropping out of a barrier of one: the completion runs, and the
  // barrier expects nobody.
  int once = 0;
  auto count = [&once]() noexcept { ++once; };
  weft::barrier single(1, count);
  single.arrive_and_drop();
  EXPECT_EQ(once, 1);
  EXPECT_THROW(single.arrive_and_wait(), std::invalid_argument);

  // Dropping from a coroutine, while others wait in it.
  weft::barrier<> mixed(3);
  auto coro = [&]() -> weft::task<int> {
    co_await weft::arrive_and_wait_async(mixed);  // phase 0
    mixed.arrive_and_drop();                      // phase 1, and gone
    co_return 1;
  };
  auto waiter = [&]() -> weft::task<int> {
    for (int p = 0; p < 3; ++p) co_await weft::arrive_and_wait_async(mixed);  // phase 2: the two of them
    co_return 1;
  };
  auto both = [&]() -> weft::task<int> {
    auto [a, c, d] = co_await weft::when_all(waiter(), coro(), waiter());
    co_return a + c + d;
  };
  EXPECT_EQ(rt.run([&] { return weft::sync_wait(both()); }), 3);
}

// Split arrive and wait with work in between: what every party wrote before
// its arrival is visible to each after its wait (two buffers: a party
// rewrites its slot of one two phases later, after every reader of it
// arrived again).
TEST_P(BarrierTest, SplitArriveAndWaitWithWorkInBetween) {
  const int n = 2 * workers() + 3;
  const int phases = static_cast<int>(weft_test::scaled(200, 4));
  std::vector<int> data[2] = {std::vector<int>(static_cast<std::size_t>(n), -1),
                              std::vector<int>(static_cast<std::size_t>(n), -1)};
  weft::barrier<> b(n);
  std::atomic<int> stale{0};
  std::atomic<long long> work{0};
  rt.run([&] {
    weft::task_group g;
    for (int i = 0; i < n; ++i) {
      g.spawn([&, i] {
        std::vector<weft::barrier<>::arrival_token> old;
        for (int p = 0; p < phases; ++p) {
          data[p % 2][static_cast<std::size_t>(i)] = p * 1000 + i;
          auto token = b.arrive();
          long long sum = 0;  // work that does not depend on the others
          for (int k = 0; k < 200 + i; ++k) sum += k * p;
          work.fetch_add(sum, std::memory_order_relaxed);
          if (i % 3 == 0) weft::yield();
          old.push_back(token);
          b.wait(std::move(token));
          for (int j = 0; j < n; ++j) {
            if (data[p % 2][static_cast<std::size_t>(j)] != p * 1000 + j) stale.fetch_add(1);
          }
          if (p >= 2) b.wait(std::move(old[static_cast<std::size_t>(p - 2)]));  // over: returns at once
        }
      });
    }
    g.wait();
  });
  EXPECT_EQ(stale.load(), 0);
  EXPECT_GT(work.load(), 0);
}

// 10 000 tasks with 16 KiB stacks meeting at one barrier for a few phases:
// all but the last of each phase suspend at once.
TEST_P(BarrierTest, TenThousandTasksMeetForAFewPhases) {
  // ThreadSanitizer counts every fiber against its limit of 8128 threads,
  // and takes milliseconds to create one.
  const int n = weft_test::k_tsan ? 1000 : 10000;
  constexpr int phases = 3;
  weft::runtime small{weft::config{.workers = workers(), .stack_size = 16 * 1024}};
  phase_check c(n);
  checked_barrier b(n, count_phase{&c});
  std::vector<std::atomic<int>> runs(static_cast<std::size_t>(n));
  small.run([&] {
    weft::task_group g;
    for (int i = 0; i < n; ++i) {
      g.spawn([&, i] {
        runs[static_cast<std::size_t>(i)].fetch_add(1, std::memory_order_relaxed);
        fiber_party(b, c, phases, 0);  // salt 0: arrive_and_wait, then split, then arrive_and_wait
      });
    }
    g.wait();
  });
  c.expect_phases(phases);
  int wrong = 0;
  for (auto& r : runs) wrong += r.load() != 1;
  EXPECT_EQ(wrong, 0) << "tasks that did not run exactly once";
}

// ---- lifetime ----

// A barrier destroyed by its only waiter as soon as its wait returns, while
// the party that completed the phase (an outside thread, running a
// completion function) may still be on its way out of arrive(): the
// completer's last access is the store that starts the next phase. The waiter
// is the test's thread, a fiber or a coroutine; the memory is overwritten at
// once, as a reuse would. Randomised over the printed seed; rounds for about
// half a second per kind.
TEST_P(BarrierTest, DestroyedAsSoonAsTheLastWaitReturns) {
  weft_test::seeded_rng rng;
  std::mt19937_64 gen(rng.seed());
  int completions = 0;  // written by the completion steps only
  struct completion {
    int* m_count;
    void operator()() const noexcept { ++*m_count; }
  };
  using barrier_type = weft::barrier<completion>;
  struct slot {
    alignas(64) unsigned char bytes[sizeof(barrier_type)];
  };
  std::atomic<barrier_type*> next{nullptr};
  std::atomic<int> picked{0};
  barrier_type* const stop = reinterpret_cast<barrier_type*>(&next);
  std::thread opener([&] {
    for (bool drop = false;; drop = !drop) {
      barrier_type* b;
      for (int spins = 0; (b = next.exchange(nullptr)) == nullptr; ++spins) {
        if (spins < 1000) {
          std::this_thread::yield();  // rounds follow one another closely: do not sleep at once
        } else {
          next.wait(nullptr);
        }
      }
      if (b == stop) return;
      picked.fetch_add(1);
      if (drop) {
        b->arrive_and_drop();
      } else {
        (void)b->arrive();
      }
    }
  });
  enum class waiter_kind { thread, fiber, coroutine };
  int rounds = 0;
  for (waiter_kind kind : {waiter_kind::thread, waiter_kind::fiber, waiter_kind::coroutine}) {
    const int rounds_before = rounds;
    const int max_rounds = static_cast<int>(weft_test::scaled(200000, 100));
    const auto budget = std::chrono::steady_clock::now() + 500ms;
    for (int r = 0; r < max_rounds && std::chrono::steady_clock::now() < budget; ++r) {
      ++rounds;
      auto* memory = new slot;
      auto* b = new (memory->bytes) barrier_type(2, completion{&completions});
      next.store(b);
      next.notify_one();
      while (picked.load() != rounds) {
      }
      const int delay = std::uniform_int_distribution<int>(0, 64)(gen);
      for (int i = 0; i < delay; ++i) std::atomic_signal_fence(std::memory_order_seq_cst);
      auto destroy = [memory, b] {
        b->~barrier_type();
        std::memset(memory->bytes, 0xff, sizeof memory->bytes);  // what a reuse of the memory might write
        delete memory;
      };
      switch (kind) {
        case waiter_kind::thread:
          if (r % 2 == 0) {
            b->arrive_and_wait();
          } else {
            b->wait(b->arrive());
          }
          destroy();
          break;
        case waiter_kind::fiber:
          rt.run([&] {
            b->arrive_and_wait();
            destroy();
          });
          break;
        case waiter_kind::coroutine: {
          auto coro = [&]() -> weft::task<int> {
            if (r % 2 == 0) {
              co_await weft::arrive_and_wait_async(*b);
            } else {
              co_await weft::wait_async(*b, b->arrive());
            }
            destroy();
            co_return 0;
          };
          (void)rt.run([&] { return weft::sync_wait(coro()); });
          break;
        }
      }
    }
    std::printf("waiter kind %d: %d rounds\n", static_cast<int>(kind), rounds - rounds_before);
  }
  next.store(stop);
  next.notify_one();
  opener.join();
  EXPECT_EQ(completions, rounds);
}

// ---- misuse ----

// Bad arguments throw std::invalid_argument naming the parameter; nothing is
// counted.
TEST(BarrierArguments, BadArgumentsThrowNamingTheParameter) {
  using weft_test::expect_invalid_argument;
  expect_invalid_argument([] { weft::barrier<> b(-1); }, "expected");
  expect_invalid_argument([] { weft::barrier<> b(weft::barrier<>::max() + 1); }, "expected");
  EXPECT_GE(weft::barrier<>::max(), std::ptrdiff_t{1} << 30);
  int completions = 0;
  auto count = [&completions]() noexcept { ++completions; };
  weft::barrier b(2, count);
  expect_invalid_argument([&] { (void)b.arrive(0); }, "n");
  expect_invalid_argument([&] { (void)b.arrive(-1); }, "n");
  expect_invalid_argument([&] { (void)b.arrive(3); }, "n");
  auto t = b.arrive();
  expect_invalid_argument([&] { (void)b.arrive(2); }, "n");
  weft::barrier<> other(1);
  expect_invalid_argument([&] { b.wait(other.arrive()); }, "arrival");
  expect_invalid_argument([&] { b.wait(weft::barrier<>::arrival_token{}); }, "arrival");
  EXPECT_EQ(completions, 0);
  (void)b.arrive();  // counts: nothing was counted by the calls that threw
  EXPECT_EQ(completions, 1);
  b.wait(std::move(t));

  weft::barrier<> none(0);  // legal, and nobody may arrive
  EXPECT_THROW((void)none.arrive(), std::invalid_argument);
  EXPECT_THROW(none.arrive_and_wait(), std::invalid_argument);
  EXPECT_THROW(none.arrive_and_drop(), std::invalid_argument);

  // The awaitables check the same, before anything suspends.
  weft::runtime rt{weft::config{.workers = 1}};
  auto coro = [&]() -> weft::task<int> {
    try {
      co_await weft::arrive_and_wait_async(none);
      co_return 1;
    } catch (const std::invalid_argument&) {
    }
    try {
      co_await weft::wait_async(b, other.arrive());
      co_return 2;
    } catch (const std::invalid_argument& e) {
      if (!weft_test::names_word(e.what(), "arrival")) co_return 3;
    }
    co_return 0;
  };
  EXPECT_EQ(rt.run([&] { return weft::sync_wait(coro()); }), 0);
}

// An arrival while a completion function runs (undefined for std::barrier)
// throws std::invalid_argument; the phase then completes normally.
TEST(BarrierArguments, ArrivalDuringTheCompletionStepThrows) {
  std::atomic<bool> in_step{false};
  std::atomic<int> tried{0};
  auto step = [&]() noexcept {
    in_step.store(true);
    while (tried.load() != 3) std::this_thread::yield();
  };
  weft::barrier b(1, step);
  std::thread other([&] {
    while (!in_step.load()) std::this_thread::yield();
    weft_test::expect_invalid_argument([&] { (void)b.arrive(); }, "n");
    tried.fetch_add(1);
    EXPECT_THROW(b.arrive_and_wait(), std::invalid_argument);
    tried.fetch_add(1);
    EXPECT_THROW(b.arrive_and_drop(), std::invalid_argument);
    tried.fetch_add(1);
  });
  b.arrive_and_wait();  // completes the phase: runs the step here
  other.join();
  in_step.store(false);
  b.arrive_and_wait();  // the next phase still expects one
  EXPECT_TRUE(in_step.load());
}

// A barrier destroyed while a thread, a fiber or a coroutine waits on it:
// one `weft:` line naming the barrier, and an abort (std::barrier makes this
// undefined; the waiter would never resume).
TEST(BarrierMisuse, DestroyedWhileWaitedOnAborts) {
  enum class waiter_kind : int { thread, fiber, coroutine };
  for (waiter_kind kind : {waiter_kind::thread, waiter_kind::fiber, waiter_kind::coroutine}) {
    SCOPED_TRACE(::testing::Message() << "waiter kind " << static_cast<int>(kind));
    const auto r = weft_test::run_in_child([kind] {
      auto* rt = new weft::runtime{{.workers = 2}};  // left alive: its run never returns
      auto* entered = new weft::latch(1);
      auto b = std::make_unique<weft::barrier<>>(2);
      weft::barrier<>& ref = *b;
      std::thread([rt, entered, &ref, kind] {
        if (kind == waiter_kind::thread) {
          entered->count_down();
          ref.arrive_and_wait();
        } else if (kind == waiter_kind::fiber) {
          rt->run([&] {
            entered->count_down();
            ref.arrive_and_wait();
          });
        } else {
          auto coro = [&]() -> weft::task<int> {
            entered->count_down();
            co_await weft::arrive_and_wait_async(ref);
            co_return 0;
          };
          (void)rt->run([&] { return weft::sync_wait(coro()); });
        }
      }).detach();
      entered->wait();
      std::this_thread::sleep_for(30ms);  // the waiter is queued
      b.reset();
      std::fprintf(stderr, "the barrier was destroyed with a waiter, without a word\n");
      return 3;
    });
    EXPECT_TRUE(r.lines_with("Sanitizer").empty()) << r.describe();
    EXPECT_TRUE(r.killed_by(SIGABRT)) << r.describe();
    const auto lines = r.lines_with("weft:");
    ASSERT_EQ(lines.size(), 1u) << r.describe();
    EXPECT_NE(lines[0].find("barrier"), std::string::npos) << r.describe();
    EXPECT_NE(lines[0].find("destroyed"), std::string::npos) << r.describe();
  }
}

// ---- no fiber to wait on ----

long address_space_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmSize:", 0) == 0) return std::stol(line.substr(7)) * 1024;
  }
  return -1;
}

// Tasks meeting at a barrier beyond the stacks memory allows (a child whose
// address space is capped just above what it uses: the runtime's slab has
// room for 63 more fibers): the wait that cannot get a fiber throws
// std::system_error naming memory and breaks the barrier, so that the fibers
// waiting on it throw too instead of waiting for tasks the failed group
// skips. No hang; the runtime stays usable.
TEST(BarrierMemory, WaitPastTheMemoryLimitBreaksTheBarrier) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer kills a child that starts threads after a fork";
  const auto r = weft_test::run_in_child([] {
    weft::runtime rt{weft::config{.workers = 1, .stack_size = 64 * 1024}};
    // Warm up what maps memory on first use (malloc arena, frames, queue).
    rt.run([] {
      weft::task_group g;
      for (int i = 0; i < 600; ++i) g.spawn([] {});
      g.wait();
    });
    const long now = address_space_bytes();
    const rlimit cap{static_cast<rlim_t>(now + (1 << 20)), static_cast<rlim_t>(now + (1 << 20))};
    if (now <= 0 || setrlimit(RLIMIT_AS, &cap) != 0) return 10;
    constexpr int n = 200;
    weft::barrier<> b(n);
    std::atomic<int> failed{0};
    std::atomic<int> passed{0};
    try {
      rt.run([&] {
        weft::task_group g;
        for (int i = 0; i < n; ++i) {
          g.spawn([&] {
            try {
              b.arrive_and_wait();
            } catch (const std::system_error&) {
              failed.fetch_add(1);
              throw;
            }
            passed.fetch_add(1);
          });
        }
        g.wait();
      });
      std::fprintf(stderr, "no error with a capped address space\n");
      return 11;
    } catch (const std::system_error& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      if (std::strstr(e.what(), "out of memory") == nullptr && std::strstr(e.what(), "memory") == nullptr) return 12;
    }
    std::fprintf(stderr, "%d failed, %d passed\n", failed.load(), passed.load());
    if (failed.load() < 2 || passed.load() != 0) return 13;
    // A later wait on the broken barrier's open phase throws too.
    try {
      b.arrive_and_wait();
      return 14;
    } catch (const std::system_error&) {
    }
    // Usable: a new barrier the stacks left suffice for.
    weft::barrier<> small(20);
    rt.run([&] {
      weft::task_group g;
      for (int i = 0; i < 20; ++i) g.spawn([&] { small.arrive_and_wait(); });
      g.wait();
    });
    return 0;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
  std::fputs(r.err.c_str(), stdout);  // what the child saw, for the log
}

WEFT_INSTANTIATE_WORKER_COUNTS(BarrierTest);

}  // namespace
