// SPDX-License-Identifier: MIT
// C++20 coroutines on the scheduler (weft/coroutine.hpp): task<T>, when_all,
// spawn, sync_wait, and the awaitables for weft's loops, yield, mutex and
// latch. Parameterised over worker counts.
#include <gtest/gtest.h>
#include <ucontext.h>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdio>
#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include <weft/coroutine.hpp>
#include <weft/weft.hpp>

#include "call_site.hpp"
#include "foreign_coroutine.hpp"
#include "sanitizers.hpp"
#include "seeded_rng.hpp"
#include "together.hpp"
#include "worker_count.hpp"

namespace {

long fib_serial(int n) { return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2); }

weft::task<long> fib(int n) {
  if (n < 2) co_return n;
  auto [a, b] = co_await weft::when_all(fib(n - 1), fib(n - 2));
  co_return a + b;
}

weft::task<long> fib_spawn(int n) {
  if (n < 2) co_return n;
  auto a = weft::spawn(fib_spawn(n - 1));
  const long b = co_await fib_spawn(n - 2);
  co_return co_await a + b;
}

struct boom : std::runtime_error {
  int value;
  explicit boom(int v) : std::runtime_error("boom " + std::to_string(v)), value(v) {}
};

weft::task<int> maybe_throw(int i, int bad) {
  if (i == bad) throw boom(i);
  co_return i;
}

class CoroutineTest : public weft_test::WorkerCount {};

TEST_P(CoroutineTest, FibWithWhenAllMatchesSerial) {
  for (int n : {0, 1, 2, 10, 22}) {
    EXPECT_EQ(rt.run([n] { return weft::sync_wait(fib(n)); }), fib_serial(n)) << "n=" << n;
  }
}

TEST_P(CoroutineTest, FibWithSpawnMatchesSerial) {
  EXPECT_EQ(rt.run([] { return weft::sync_wait(fib_spawn(22)); }), fib_serial(22));
}

TEST_P(CoroutineTest, SyncWaitFromOutsideUsesTheDefaultRuntime) { EXPECT_EQ(weft::sync_wait(fib(15)), fib_serial(15)); }

TEST_P(CoroutineTest, ExceptionsCrossCoAwait) {
  auto direct = []() -> weft::task<int> { co_return co_await maybe_throw(3, 3); };
  EXPECT_THROW(rt.run([&] { return weft::sync_wait(direct()); }), boom);
  // One child of a when_all throws: the others finish, the exception arrives.
  auto group = []() -> weft::task<int> {
    auto [a, b, c] = co_await weft::when_all(maybe_throw(1, 2), maybe_throw(2, 2), maybe_throw(3, 2));
    co_return a + b + c;
  };
  try {
    rt.run([&] { return weft::sync_wait(group()); });
    ADD_FAILURE() << "no exception";
  } catch (const boom& e) {
    EXPECT_EQ(e.value, 2);
  }
  // Caught inside a coroutine (the language forbids co_await in a handler:
  // the coroutine suspends after it).
  auto catcher = []() -> weft::task<int> {
    int caught = 0;
    try {
      co_await maybe_throw(7, 7);
    } catch (const boom& e) {
      caught = e.value;
    }
    co_await weft::yield_async();
    co_return caught * 10;
  };
  EXPECT_EQ(rt.run([&] { return weft::sync_wait(catcher()); }), 70);
  // The runtime stays usable.
  EXPECT_EQ(rt.run([] { return weft::sync_wait(fib(12)); }), fib_serial(12));
}

TEST_P(CoroutineTest, ResultsOfEveryKind) {
  auto text = []() -> weft::task<std::string> { co_return std::string(100, 'x'); };
  auto owned = []() -> weft::task<std::unique_ptr<int>> { co_return std::make_unique<int>(42); };
  auto nothing = []() -> weft::task<void> { co_return; };
  static int global = 5;
  auto ref = []() -> weft::task<int&> { co_return global; };
  rt.run([&] {
    EXPECT_EQ(weft::sync_wait(text()).size(), 100u);
    EXPECT_EQ(*weft::sync_wait(owned()), 42);
    weft::sync_wait(nothing());
    EXPECT_EQ(&weft::sync_wait(ref()), &global);
    auto both = [&]() -> weft::task<int> {
      auto [v, p] = co_await weft::when_all(nothing(), owned());
      (void)v;  // std::monostate
      co_return *p;
    };
    EXPECT_EQ(weft::sync_wait(both()), 42);
  });
}

// co_return copy-initialises the result, as return does: braces make one,
// implicit conversions are taken, explicit ones are refused (they compiled
// before: `co_return 5` made a vector of five items, `co_return p` a
// unique_ptr owning a raw pointer), and a reference result never binds a
// temporary (it dangled).
template <class T>
using promise_of = typename std::coroutine_traits<weft::task<T>>::promise_type;
template <class T, class U>
concept co_returnable = requires(promise_of<T>& p, U&& v) {
  p.return_value(std::forward<U>(v));
};
static_assert(!co_returnable<std::vector<int>, int>);
static_assert(!co_returnable<std::unique_ptr<int>, int*>);
static_assert(!co_returnable<std::chrono::seconds, int>);
static_assert(!co_returnable<const std::string&, const char (&)[4]>);
static_assert(!co_returnable<const std::string&, std::string>);
static_assert(!co_returnable<int&, int>);
static_assert(co_returnable<std::string, const char (&)[4]>);
static_assert(co_returnable<long, int>);
static_assert(co_returnable<const std::string&, std::string&>);
static_assert(co_returnable<std::unique_ptr<int>, std::unique_ptr<int>>);

TEST_P(CoroutineTest, CoReturnCopyInitialisesTheResult) {
  auto pair = []() -> weft::task<std::pair<int, int>> { co_return {1, 2}; };
  auto empty = []() -> weft::task<std::vector<int>> { co_return {}; };
  auto list = []() -> weft::task<std::vector<int>> { co_return {5}; };
  auto text = []() -> weft::task<std::string> { co_return "abc"; };
  static std::string global = "g";
  auto ref = []() -> weft::task<const std::string&> { co_return global; };
  rt.run([&] {
    EXPECT_EQ(weft::sync_wait(pair()), std::make_pair(1, 2));
    EXPECT_TRUE(weft::sync_wait(empty()).empty());
    EXPECT_EQ(weft::sync_wait(list()), std::vector<int>{5});
    EXPECT_EQ(weft::sync_wait(text()), "abc");
    EXPECT_EQ(&weft::sync_wait(ref()), &global);
  });
}

// when_all of a vector of tasks returning references, const values or
// nothing: a vector holds std::reference_wrapper for a reference and the
// plain type for a const one (a vector of references or of const elements
// did not compile).
TEST_P(CoroutineTest, WhenAllOfAVectorOfEveryKind) {
  static int global = 5;
  auto ref = []() -> weft::task<int&> { co_return global; };
  auto text = []() -> weft::task<const std::string> { co_return std::string(3, 'y'); };
  auto nothing = []() -> weft::task<void> { co_return; };
  auto all = [&]() -> weft::task<std::size_t> {
    std::vector<weft::task<int&>> refs;
    for (int i = 0; i < 3; ++i) refs.push_back(ref());
    std::vector<std::reference_wrapper<int>> r = co_await weft::when_all(std::move(refs));
    std::vector<weft::task<const std::string>> texts;
    for (int i = 0; i < 4; ++i) texts.push_back(text());
    std::vector<std::string> t = co_await weft::when_all(std::move(texts));
    std::vector<weft::task<void>> nothings;
    nothings.push_back(nothing());
    std::vector<std::monostate> n = co_await weft::when_all(std::move(nothings));
    for (int& x : r) EXPECT_EQ(&x, &global);
    for (const std::string& x : t) EXPECT_EQ(x, "yyy");
    co_return r.size() + t.size() + n.size();
  };
  EXPECT_EQ(rt.run([&] { return weft::sync_wait(all()); }), 8u);
}

// A task of a const move-only type through every way of awaiting it:
// sync_wait, when_all of a pack and of a vector did not compile (each moved
// the result on as a const value, which needs a copy); co_await and spawn did.
TEST_P(CoroutineTest, ConstMoveOnlyResultsThroughEveryAwait) {
  using owned = std::unique_ptr<int>;
  auto make = [](int v) -> weft::task<const owned> { co_return std::make_unique<int>(v); };
  auto all = [&]() -> weft::task<int> {
    const owned a = co_await make(1);
    auto s = weft::spawn(make(2));
    const owned b = co_await s;
    auto [c, d] = co_await weft::when_all(make(3), make(4));
    std::vector<weft::task<const owned>> tasks;
    tasks.push_back(make(5));
    tasks.push_back(make(6));
    std::vector<owned> e = co_await weft::when_all(std::move(tasks));
    co_return *a + *b + *c + *d + *e[0] + *e[1];
  };
  EXPECT_EQ(rt.run([&] { return weft::sync_wait(all()); }), 21);
  const owned direct = rt.run([&] { return weft::sync_wait(make(7)); });
  EXPECT_EQ(*direct, 7);
}

// A result type that counts the objects alive.
struct counted_result {
  static inline std::atomic<int> s_alive{0};
  int m_value;
  explicit counted_result(int v) : m_value(v) { s_alive.fetch_add(1); }
  counted_result(const counted_result& o) : m_value(o.m_value) { s_alive.fetch_add(1); }
  counted_result& operator=(const counted_result&) = default;
  ~counted_result() { s_alive.fetch_sub(1); }
};

// An awaitable of on_fiber_async or parallelize_async kept and awaited again
// calls its callable again, and yields that call's outcome: every later
// await rethrew the first await's exception, and each await of
// on_fiber_async made its result over the last one's without destroying it.
TEST_P(CoroutineTest, AwaitablesAwaitedAgainCallAgain) {
  counted_result::s_alive.store(0);
  auto coro = []() -> weft::task<int> {
    int calls = 0;
    auto on_fiber = weft::on_fiber_async([&calls] {
      if (++calls == 1) throw std::runtime_error("first call");
      return counted_result(calls);
    });
    int sum = 0;
    for (int i = 0; i < 4; ++i) {
      try {
        sum += (co_await on_fiber).m_value;
      } catch (const std::runtime_error& e) {
        EXPECT_EQ(i, 0) << e.what();
      }
    }
    EXPECT_EQ(sum, 2 + 3 + 4);
    std::atomic<int> rounds{0};
    auto loop = weft::parallelize_async(50, [&rounds](int i) {
      if (i == 7 && rounds.load() == 0) throw std::runtime_error("first round");
    });
    for (int i = 0; i < 3; ++i) {
      try {
        co_await loop;
      } catch (const std::runtime_error& e) {
        EXPECT_EQ(i, 0) << e.what();
      }
      rounds.fetch_add(1);
    }
    co_return sum;
  };
  EXPECT_EQ(rt.run([&] { return weft::sync_wait(coro()); }), 9);
  EXPECT_EQ(counted_result::s_alive.load(), 0);
}

// A million co_await in a chain: symmetric transfer keeps the stack flat.
TEST_P(CoroutineTest, LongChainsDoNotGrowTheStack) {
  struct chain {
    static weft::task<long> down(long n) {
      if (n == 0) co_return 0;
      co_return 1 + co_await down(n - 1);
    }
  };
  EXPECT_EQ(rt.run([] { return weft::sync_wait(chain::down(1'000'000)); }), 1'000'000);
}

// Chains of when_all and spawn, each awaiting the next level. Where
// symmetric transfer is no tail call (unoptimised and sanitizer builds) the
// stack fills, and the transfers then go through the worker's queue on the
// children's own descriptors: a child's start, the popped-back child's, and
// the return to the parent on slot 0's (docs/protocols/coroutine-resumption.md).
TEST_P(CoroutineTest, LongChainsOfWhenAllAndSpawnDoNotGrowTheStack) {
  struct chain {
    static weft::task<long> one() { co_return 1; }
    static weft::task<long> all(long n) {
      if (n == 0) co_return 0;
      auto [a, b] = co_await weft::when_all(all(n - 1), one());
      co_return a + b;
    }
    static weft::task<long> spawned(long n) {
      if (n == 0) co_return 0;
      auto s = weft::spawn(spawned(n - 1));
      const long below = co_await s;
      co_return below + 1;
    }
  };
  constexpr long n = 50'000;
  EXPECT_EQ(rt.run([] { return weft::sync_wait(chain::all(n)); }), n);
  EXPECT_EQ(rt.run([] { return weft::sync_wait(chain::spawned(n)); }), n);
}

// Awaits of spawns that finished elsewhere: the coroutine yields, so that its
// worker runs (takes) the queued children to their end, then awaits every
// handle. Each await finds its child done and goes straight on; where that
// transfer is no tail call, the stack must still stay bounded (it overflowed
// after a few hundred awaits in sanitizer builds).
TEST_P(CoroutineTest, AwaitsOfSpawnsThatFinishedElsewhereDoNotGrowTheStack) {
  struct chain {
    static weft::task<int> one() { co_return 1; }
    static weft::task<long> parent(int n) {
      std::deque<weft::spawned<int>> handles;
      for (int i = 0; i < n; ++i) handles.emplace_back(one());
      co_await weft::yield_async();
      long sum = 0;
      for (auto& h : handles) sum += co_await h;
      co_return sum;
    }
  };
  constexpr int n = 50'000;
  EXPECT_EQ(rt.run([] { return weft::sync_wait(chain::parent(n)); }), n);
}

// A coroutine awaiting parallelize_async whose items themselves use fibers
// (nested parallel calls, joins) and a weft::mutex.
TEST_P(CoroutineTest, ParallelizeAsyncWithFibersAndMutexInside) {
  weft::mutex m;
  long guarded = 0;
  std::atomic<long> nested{0};
  auto body = [&]() -> weft::task<long> {
    co_await weft::parallelize_async(200, [&](int i) {
      weft::parallelize(50, [&](int) { nested.fetch_add(1, std::memory_order_relaxed); });
      auto [a, b] = weft::join([&] { return i; }, [&] { return 2 * i; });
      std::lock_guard lock(m);
      guarded += a + b;
      if (i % 17 == 0) weft::yield();
    });
    co_return guarded;
  };
  const long expect = 3L * (199 * 200 / 2);
  EXPECT_EQ(rt.run([&] { return weft::sync_wait(body()); }), expect);
  EXPECT_EQ(nested.load(), 200 * 50);
  // n == 0 completes at once; a negative n is a clear error.
  auto none = []() -> weft::task<void> { co_await weft::parallelize_async(0, [](int) { FAIL(); }); };
  rt.run([&] { weft::sync_wait(none()); });
  EXPECT_THROW((void)weft::parallelize_async(-1, [](int) {}), std::invalid_argument);
}

// 100 000 coroutines wait on one latch that a fiber releases.
TEST_P(CoroutineTest, HundredThousandCoroutinesAwaitOneLatch) {
  constexpr int n = 100'000;
  weft::latch gate(1);
  std::atomic<int> passed{0};
  auto waiter = [&]() -> weft::task<int> {
    co_await gate;
    passed.fetch_add(1, std::memory_order_relaxed);
    co_return 1;
  };
  rt.run([&] {
    weft::task_group g;
    g.spawn([&] {
      std::vector<weft::task<int>> tasks;
      tasks.reserve(n);
      for (int i = 0; i < n; ++i) tasks.push_back(waiter());
      auto all = [&]() -> weft::task<long> {
        auto results = co_await weft::when_all(std::move(tasks));
        long sum = 0;
        for (int r : results) sum += r;
        co_return sum;
      };
      EXPECT_EQ(weft::sync_wait(all()), n);
    });
    g.spawn([&] {
      // Let the waiters queue up first (not required for correctness).
      for (int i = 0; i < 50; ++i) weft::yield();
      gate.count_down();
    });
    g.wait();
  });
  EXPECT_EQ(passed.load(), n);
}

// Yielded fibers and yielded coroutines take turns in one order: a fiber
// that polls with weft::yield() for a flag that a yielding coroutine sets
// lets that coroutine run (the fiber used to be resumed ahead of it for ever
// at 1 worker).
TEST_P(CoroutineTest, AFiberPollingWithYieldLetsAYieldingCoroutineRun) {
  std::atomic<bool> flag{false};
  auto setter = [&]() -> weft::task<int> {
    for (int i = 0; i < 3; ++i) co_await weft::yield_async();
    flag.store(true);
    co_return 1;
  };
  const int r = rt.run([&] {
    auto [polled, set] = weft::join(
        [&] {
          while (!flag.load()) weft::yield();
          return 1;
        },
        [&] { return weft::sync_wait(setter()); });
    return polled + set;
  });
  EXPECT_EQ(r, 2);
}

// Work injected from outside (here a fiber resumed by a thread from outside
// through a latch) runs while fibers or coroutines of its worker poll with a
// yield: with one worker nobody else takes it (a yield used to look only at
// its worker's queue and yielded work, so the pollers spun for ever).
TEST_P(CoroutineTest, PollingWithYieldLetsWorkFromOutsideRun) {
  for (const bool coroutines : {false, true}) {
    std::atomic<bool> flag{false};
    weft::latch opened(1);
    auto poll = [&]() -> weft::task<int> {
      while (!flag.load()) co_await weft::yield_async();
      co_return 1;
    };
    auto both = [&]() -> weft::task<int> {
      auto [a, b] = co_await weft::when_all(poll(), poll());
      co_return a + b;
    };
    std::thread outside([&] {
      // Late enough that the waiter has suspended (correct either way).
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      opened.count_down();
    });
    const int r = rt.run([&] {
      auto [polled, waited] = weft::join(
          [&] {
            if (coroutines) return weft::sync_wait(both());
            while (!flag.load()) weft::yield();
            return 2;
          },
          [&] {
            opened.wait();
            flag.store(true);
            return 1;
          });
      return polled + waited;
    });
    outside.join();
    EXPECT_EQ(r, 3) << (coroutines ? "coroutines" : "fibers");
  }
}

TEST_P(CoroutineTest, LockAsyncExcludes) {
  weft::mutex m;
  long counter = 0;
  auto add = [&](int times) -> weft::task<void> {
    for (int i = 0; i < times; ++i) {
      co_await weft::lock_async(m);
      std::unique_lock lock(m, std::adopt_lock);
      const long seen = counter;
      if (i % 7 == 0) co_await weft::yield_async();  // holding the mutex across a suspension
      counter = seen + 1;
    }
  };
  auto many = [&]() -> weft::task<void> { co_await weft::when_all(add(300), add(300), add(300), add(300)); };
  std::thread outside([&] {  // a thread outside the runtime contends too
    for (int i = 0; i < 300; ++i) {
      std::lock_guard lock(m);
      ++counter;
    }
  });
  rt.run([&] { weft::sync_wait(many()); });
  outside.join();
  EXPECT_EQ(counter, 5 * 300);
}

TEST_P(CoroutineTest, OnFiberRunsBlockingCodeWithARealStack) {
  weft::latch ready(1);
  auto deep = [](auto& self, int n) -> int { return n == 0 ? 0 : 1 + self(self, n - 1); };
  auto coro = [&]() -> weft::task<int> {
    const int depth = co_await weft::on_fiber_async([&] { return deep(deep, 2000); });
    // Blocking weft calls inside: a latch released by another task.
    co_await weft::on_fiber_async([&] { ready.wait(); });
    co_return depth;
  };
  rt.run([&] {
    weft::task_group g;
    g.spawn([&] { EXPECT_EQ(weft::sync_wait(coro()), 2000); });
    g.spawn([&] { ready.count_down(); });
    g.wait();
  });
  auto thrower = []() -> weft::task<void> { co_await weft::on_fiber_async([] { throw boom(1); }); };
  EXPECT_THROW(rt.run([&] { weft::sync_wait(thrower()); }), boom);
}

// A callable with a move-only capture, named first (g++ 12 destroys a
// capturing lambda written inside the co_await expression twice: guide.md,
// "Rules for coroutines"), runs once and is destroyed once, by its owner.
TEST_P(CoroutineTest, OnFiberAsyncTakesANamedMoveOnlyCallableByReference) {
  auto coro = []() -> weft::task<int> {
    auto fn = [p = std::make_unique<int>(41)] { return *p + 1; };
    const int a = co_await weft::on_fiber_async(fn);  // by reference: fn keeps its capture
    const int b = co_await weft::on_fiber_async(fn);
    co_return a + b;
  };
  EXPECT_EQ(rt.run([&] { return weft::sync_wait(coro()); }), 84);
}

// A callable that notes its own destruction, and whether it was called after
// it: it stands for a lambda whose captures die with it.
struct noting_callable {
  static inline std::atomic<const void*> s_destroyed{nullptr};
  static inline std::atomic<int> s_calls_after_destruction{0};
  int m_value;
  explicit noting_callable(int value) : m_value(value) {}
  noting_callable(noting_callable&& other) noexcept : m_value(other.m_value) {}
  noting_callable(const noting_callable&) = delete;
  noting_callable& operator=(const noting_callable&) = delete;
  noting_callable& operator=(noting_callable&&) = delete;
  ~noting_callable() { s_destroyed.store(this); }
  void note_call() const {
    if (s_destroyed.load() == this) s_calls_after_destruction.fetch_add(1);
  }
  int operator()() const {
    note_call();
    return m_value;
  }
  void operator()(int) const { note_call(); }
};

// An awaitable of on_fiber_async or parallelize_async made from a temporary
// callable and awaited after that full expression: it holds the callable
// (moved in), where it referred to the temporary, destroyed by then, and
// called it (a use after its end: a crash under AddressSanitizer, wrong
// captures without).
TEST_P(CoroutineTest, AwaitablesKeptPastTheirFullExpressionHoldTheirCallables) {
  noting_callable::s_calls_after_destruction.store(0);
  auto coro = []() -> weft::task<int> {
    auto on_fiber = weft::on_fiber_async(noting_callable(7));
    const int a = co_await on_fiber;
    auto loop = weft::parallelize_async(100, noting_callable(0));
    co_await loop;
    co_return a;
  };
  EXPECT_EQ(rt.run([&] { return weft::sync_wait(coro()); }), 7);
  EXPECT_EQ(noting_callable::s_calls_after_destruction.load(), 0);
}

// Callables that the awaitable does not move into itself are referred to,
// as every callable was before: not movable at all, const (with a move-only
// capture), moved only explicitly, or polymorphic (moved through a reference
// to its base, a copy would be sliced); they compile, and run as themselves,
// awaited in their full expression.
struct unmovable_callable {
  unmovable_callable() = default;
  unmovable_callable(unmovable_callable&&) = delete;
  int operator()() const { return 1; }
  void operator()(int) const {}
};
struct explicitly_movable_callable {
  explicitly_movable_callable() = default;
  explicit explicitly_movable_callable(explicitly_movable_callable&&) = default;
  int operator()() const { return 1; }
};
struct base_callable {
  base_callable() = default;
  base_callable(const base_callable&) = default;
  base_callable(base_callable&&) = default;
  base_callable& operator=(const base_callable&) = default;
  base_callable& operator=(base_callable&&) = default;
  virtual ~base_callable() = default;
  virtual int operator()() const { return 0; }
};
struct derived_callable : base_callable {
  int operator()() const override { return 1; }
};

TEST_P(CoroutineTest, AwaitablesReferToCallablesThatCannotBeMoved) {
  auto coro = []() -> weft::task<int> {
    const auto fn = [p = std::make_unique<int>(2)] { return *p; };
    const int a = co_await weft::on_fiber_async(std::move(fn));  // NOLINT(performance-move-const-arg)
    std::atomic<int> calls{0};
    const auto item = [p = std::make_unique<int>(1), &calls](int) { calls.fetch_add(*p); };
    co_await weft::parallelize_async(5, std::move(item));  // NOLINT(performance-move-const-arg)
    const int b = co_await weft::on_fiber_async(unmovable_callable{});
    co_await weft::parallelize_async(3, unmovable_callable{});
    const int c = co_await weft::on_fiber_async(explicitly_movable_callable{});
    derived_callable derived;
    base_callable& base = derived;
    const int d = co_await weft::on_fiber_async(std::move(base));  // derived's, not a sliced copy's
    co_return a + b + calls.load() + c + d;
  };
  EXPECT_EQ(rt.run([&] { return weft::sync_wait(coro()); }), 10);
}

// std::move of a named callable moves it into the awaitable, as a
// temporary is: the name is left moved from.
struct owning_callable {
  std::unique_ptr<int> m_p;
  int operator()() const { return *m_p; }
  void operator()(int) const { (void)*m_p; }
};

TEST_P(CoroutineTest, AwaitablesTakeOverACallableMovedIntoThem) {
  auto coro = []() -> weft::task<int> {
    owning_callable fn{std::make_unique<int>(42)};
    const int a = co_await weft::on_fiber_async(std::move(fn));
    const bool fn_taken = fn.m_p == nullptr;  // NOLINT(bugprone-use-after-move): what is checked
    owning_callable item{std::make_unique<int>(1)};
    co_await weft::parallelize_async(4, std::move(item));
    const bool item_taken = item.m_p == nullptr;  // NOLINT(bugprone-use-after-move)
    co_return fn_taken&& item_taken ? a : -1;
  };
  EXPECT_EQ(rt.run([&] { return weft::sync_wait(coro()); }), 42);
}

// on_fiber, the first name of on_fiber_async, still compiles (deprecated) and
// does the same, with lvalue and temporary callables.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
TEST_P(CoroutineTest, OnFiberIsStillTheOldNameOfOnFiberAsync) {
  auto twice = [](int x) { return 2 * x; };
  auto coro = [&]() -> weft::task<int> {
    auto named = [&] { return twice(20); };
    const int a = co_await weft::on_fiber(named);
    const int b = co_await weft::on_fiber([&] { return twice(1); });
    co_return a + b;
  };
  EXPECT_EQ(rt.run([&] { return weft::sync_wait(coro()); }), 42);
  auto thrower = []() -> weft::task<void> { co_await weft::on_fiber([] { throw boom(2); }); };
  EXPECT_THROW(rt.run([&] { weft::sync_wait(thrower()); }), boom);
}
#pragma GCC diagnostic pop

TEST_P(CoroutineTest, YieldAsyncLetsOtherWorkRun) {
  std::atomic<int> turns{0};
  auto spinner = [&](int id) -> weft::task<int> {
    int mine = 0;
    for (int i = 0; i < 100; ++i) {
      turns.fetch_add(1);
      ++mine;
      co_await weft::yield_async();
    }
    co_return mine + id * 0;
  };
  auto two = [&]() -> weft::task<int> {
    auto [a, b] = co_await weft::when_all(spinner(1), spinner(2));
    co_return a + b;
  };
  EXPECT_EQ(rt.run([&] { return weft::sync_wait(two()); }), 200);
  EXPECT_EQ(turns.load(), 200);
}

// A tree walk: the same problem as fiber code in the guide, with coroutines.
struct node {
  int value;
  std::vector<std::unique_ptr<node>> children;
};

std::unique_ptr<node> make_tree(int depth, int& next) {
  auto n = std::make_unique<node>();
  n->value = next++;
  if (depth > 0) {
    for (int i = 0; i < 3; ++i) n->children.push_back(make_tree(depth - 1, next));
  }
  return n;
}

weft::task<long> sum_tree(const node& n) {
  std::vector<weft::task<long>> kids;
  for (const auto& c : n.children) kids.push_back(sum_tree(*c));
  long s = n.value;
  if (!kids.empty()) {
    for (long x : co_await weft::when_all(std::move(kids))) s += x;
  }
  co_return s;
}

TEST_P(CoroutineTest, TreeWalk) {
  int next = 0;
  const auto root = make_tree(7, next);  // 3280 nodes, values 0 .. 3279
  const long expect = static_cast<long>(next) * (next - 1) / 2;
  EXPECT_EQ(rt.run([&] { return weft::sync_wait(sum_tree(*root)); }), expect);
}

TEST_P(CoroutineTest, UnawaitedTaskIsDestroyedUnstarted) {
  std::atomic<bool> ran{false};
  {
    auto t = [&]() -> weft::task<void> {
      ran = true;
      co_return;
    }();
    EXPECT_TRUE(t.valid());
  }
  EXPECT_FALSE(ran.load());
}

// std::invalid_argument whose message names the call and the mistake.
void expect_no_coroutine_message(const std::string& what, std::string_view call) {
  EXPECT_NE(what.find(call), std::string::npos) << "the message \"" << what << "\" does not name " << call;
  EXPECT_NE(what.find("no coroutine"), std::string::npos) << "the message \"" << what << "\" does not name the mistake";
}

template <class F>
void expect_no_coroutine(F&& f, std::string_view call, weft_test::call_site where = {}) {
  ::testing::ScopedTrace trace(where.m_file, where.m_line, std::string(call));
  try {
    f();
    ADD_FAILURE() << "no exception was thrown";
  } catch (const std::invalid_argument& e) {
    expect_no_coroutine_message(e.what(), call);
  } catch (...) {
    ADD_FAILURE() << "threw something that is not std::invalid_argument";
  }
}

// A task that was moved from, default-constructed or already awaited has no
// coroutine to run: every way of awaiting it says so (it used to crash).
TEST_P(CoroutineTest, AwaitingATaskWithoutACoroutineThrows) {
  weft::task<int> moved = maybe_throw(4, -1);
  weft::task<int> kept = std::move(moved);
  EXPECT_FALSE(moved.valid());
  EXPECT_TRUE(kept.valid());
  EXPECT_FALSE(weft::task<void>{}.valid());
  expect_no_coroutine([&] { rt.run([&] { return weft::sync_wait(std::move(moved)); }); }, "weft::sync_wait");
  expect_no_coroutine([&] { (void)weft::sync_wait(std::move(moved)); }, "weft::sync_wait");  // outside any runtime
  expect_no_coroutine([&] { rt.run([] { weft::sync_wait(weft::task<void>{}); }); }, "weft::sync_wait");
  EXPECT_EQ(rt.run([&] { return weft::sync_wait(std::move(kept)); }), 4);

  // Awaited to completion: co_await and sync_wait refuse it, and valid()
  // says so (it used to answer true for the finished coroutine).
  weft::task<int> once = maybe_throw(5, -1);
  std::string second_await;
  bool valid_after = true;
  auto twice = [&]() -> weft::task<int> {
    const int first = co_await once;
    valid_after = once.valid();
    try {
      (void)co_await once;
    } catch (const std::invalid_argument& e) {
      second_await = e.what();
    }
    co_return first;
  };
  EXPECT_EQ(rt.run([&] { return weft::sync_wait(twice()); }), 5);
  EXPECT_FALSE(valid_after);
  EXPECT_FALSE(once.valid());
  expect_no_coroutine_message(second_await, "co_await");
  expect_no_coroutine([&] { rt.run([&] { return weft::sync_wait(std::move(once)); }); }, "weft::sync_wait");

  // when_all (both forms) and spawn, inside a coroutine that catches.
  std::vector<std::string> messages;
  auto misuse = [&]() -> weft::task<int> {
    weft::task<int> good = maybe_throw(1, -1);
    weft::task<int> gone = maybe_throw(2, -1);
    weft::task<int> taker = std::move(gone);
    try {
      auto [a, b] = co_await weft::when_all(std::move(good), std::move(gone));
      co_return a + b;
    } catch (const std::invalid_argument& e) {
      messages.emplace_back(e.what());
    }
    std::vector<weft::task<int>> tasks;
    tasks.push_back(std::move(good));  // still valid: when_all moved nothing before it threw
    tasks.emplace_back();
    try {
      (void)co_await weft::when_all(std::move(tasks));
    } catch (const std::invalid_argument& e) {
      messages.emplace_back(e.what());
    }
    try {
      auto s = weft::spawn(std::move(gone));
      (void)co_await s;
    } catch (const std::invalid_argument& e) {
      messages.emplace_back(e.what());
    }
    co_return co_await tasks[0] + co_await std::move(taker);
  };
  EXPECT_EQ(rt.run([&] { return weft::sync_wait(misuse()); }), 3);
  ASSERT_EQ(messages.size(), 3u);
  expect_no_coroutine_message(messages[0], "weft::when_all");
  expect_no_coroutine_message(messages[1], "weft::when_all");
  expect_no_coroutine_message(messages[2], "weft::spawn");
  // The runtime stays usable.
  EXPECT_EQ(rt.run([] { return weft::sync_wait(fib(12)); }), fib_serial(12));
}

WEFT_INSTANTIATE_WORKER_COUNTS(CoroutineTest);

// ---- a spawn handle destroyed before it is awaited ----

void spin_for(std::chrono::microseconds d) {
  const auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
  }
}

// Counts the destruction of the coroutine frame that holds it: as a
// parameter it lives in the frame, and dies with it also when the coroutine
// never started.
class frame_token {
 public:
  explicit frame_token(std::atomic<int>& destroyed) : m_destroyed(&destroyed) {}
  frame_token(frame_token&& o) noexcept : m_destroyed(std::exchange(o.m_destroyed, nullptr)) {}
  frame_token& operator=(frame_token&&) = delete;
  ~frame_token() {
    if (m_destroyed != nullptr) m_destroyed->fetch_add(1, std::memory_order_relaxed);
  }

 private:
  std::atomic<int>* m_destroyed;
};

struct child_log {
  std::atomic<int> started{0};
  std::atomic<int> finished{0};
};

weft::task<int> logged_child(child_log& log, frame_token token, int spin_us, bool fail) {
  (void)token;
  log.started.fetch_add(1);
  spin_for(std::chrono::microseconds(spin_us));  // long enough that a thief may be running it
  log.finished.fetch_add(1);
  if (fail) throw boom(-1);
  co_return spin_us;
}

// How the parent leaves its two spawned children unawaited.
enum class drop_mode : int {
  throw_at_once,      // children still queued: taken back unstarted, or just stolen
  throw_after_work,   // stolen children are running or done
  throw_after_yield,  // this worker ran them meanwhile (taken, done)
  throw_after_gate,   // the parent resumes on the worker that opened the gate: its pop may fail
  discard,            // weft::spawn(...) as a statement, no exception
};
constexpr int k_drop_modes = 5;

struct drop_case {
  child_log logs[2];
  std::atomic<int> frames_destroyed{0};
  int unfinished_at_destruction = 0;  // the parent's locals write these; read after the run
  int running_at_throw = 0;
  int unstarted_at_throw = 0;
};

// The parent's first local, destroyed after every spawned handle: each child
// that started must have finished by then.
struct finished_check {
  drop_case& c;
  ~finished_check() {
    for (auto& l : c.logs) {
      if (l.started.load() != l.finished.load()) ++c.unfinished_at_destruction;
    }
  }
};

weft::task<int> drop_spawns(drop_case& c, drop_mode mode, int child_us, int parent_us, const weft::latch& gate) {
  finished_check check{c};
  if (mode == drop_mode::discard) {
    (void)weft::spawn(logged_child(c.logs[0], frame_token(c.frames_destroyed), child_us, false));
    (void)weft::spawn(logged_child(c.logs[1], frame_token(c.frames_destroyed), child_us, true));
    spin_for(std::chrono::microseconds(parent_us));
    co_return 0;
  }
  auto a = weft::spawn(logged_child(c.logs[0], frame_token(c.frames_destroyed), child_us, false));
  auto b = weft::spawn(logged_child(c.logs[1], frame_token(c.frames_destroyed), child_us, true));  // dropped
  switch (mode) {
    case drop_mode::throw_after_work: spin_for(std::chrono::microseconds(parent_us)); break;
    case drop_mode::throw_after_yield: co_await weft::yield_async(); break;
    case drop_mode::throw_after_gate: co_await gate; break;
    default: break;
  }
  for (auto& l : c.logs) {
    if (l.started.load() == 0) {
      ++c.unstarted_at_throw;
    } else if (l.finished.load() == 0) {
      ++c.running_at_throw;
    }
  }
  if (parent_us >= 0) throw boom(1000 + static_cast<int>(mode));
  co_return co_await a + co_await b;
}

// Idle workers search for 2 ms before they park: between rounds they stay
// ready to steal, so children are taken and running when handles die.
class SpawnHandleTest : public ::testing::TestWithParam<int> {
 protected:
  weft::runtime rt{weft::config{.workers = GetParam(), .spin_us = 2000}};
};

// An exception between spawn() and co_await, or a discarded spawn(), used to
// leave the child's descriptor queued, pointing into the destroyed handle.
TEST_P(SpawnHandleTest, DestroyedBeforeAwaitLeavesNothingBehind) {
  weft_test::seeded_rng rng;
  const auto rounds = static_cast<int>(weft_test::scaled(3000, 4));
  std::uniform_int_distribution<int> pick_mode(0, k_drop_modes - 1);
  std::uniform_int_distribution<int> pick_short(0, 20);   // the handle dies while the children are queued...
  std::uniform_int_distribution<int> pick_long(20, 300);  // ...or after a thief woke up and took them
  std::bernoulli_distribution pick_kind;
  auto pick_us = [&](auto& rng) { return pick_kind(rng) ? pick_short(rng) : pick_long(rng); };
  int ran = 0;
  int taken_back = 0;
  int running_at_throw = 0;
  int ran_after_throw = 0;
  for (int round = 0; round < rounds; ++round) {
    drop_case c;
    weft::latch gate(1);
    const auto mode = static_cast<drop_mode>(pick_mode(rng));
    const int child_us = pick_us(rng);
    const int parent_us = pick_us(rng);
    int caught = -1;
    rt.run([&] {
      weft::task_group g;
      g.spawn([&] {
        try {
          (void)weft::sync_wait(drop_spawns(c, mode, child_us, parent_us, gate));
        } catch (const boom& e) {
          caught = e.value;
        }
      });
      g.spawn([&] {
        spin_for(std::chrono::microseconds(parent_us));
        gate.count_down();
      });
      g.wait();
    });
    SCOPED_TRACE(::testing::Message() << "round " << round << ", mode " << static_cast<int>(mode) << ", child "
                                      << child_us << " us, parent " << parent_us << " us");
    ASSERT_EQ(c.unfinished_at_destruction, 0) << "a child was still running when its handle was gone";
    for (const auto& l : c.logs) {
      ASSERT_LE(l.started.load(), 1);
      ASSERT_EQ(l.started.load(), l.finished.load());
      if (l.started.load() == 1) {
        ++ran;
      } else {
        ++taken_back;
      }
    }
    ASSERT_EQ(c.frames_destroyed.load(), 2) << "each child's frame is destroyed exactly once";
    ASSERT_EQ(caught, mode == drop_mode::discard ? -1 : 1000 + static_cast<int>(mode))
        << "the parent's exception, not the dropped child's";
    if (GetParam() == 1 && mode != drop_mode::throw_after_yield) {
      // Nobody else can take them: both are popped back, newest first.
      ASSERT_EQ(c.logs[0].started.load() + c.logs[1].started.load(), 0);
    }
    if (mode != drop_mode::discard) {
      // Unstarted when the parent threw, yet run: stolen meanwhile, or queued on another worker.
      running_at_throw += c.running_at_throw;
      ran_after_throw += c.unstarted_at_throw - (2 - c.logs[0].started.load() - c.logs[1].started.load());
    }
  }
  std::printf(
      "[spawn-drop] %d workers, %d rounds: %d children ran (%d running when the parent threw, %d started "
      "after it), %d taken back unstarted\n",
      GetParam(), rounds, ran, running_at_throw, ran_after_throw, taken_back);
}

INSTANTIATE_TEST_SUITE_P(Workers, SpawnHandleTest, ::testing::Values(1, 2, 4), weft_test::worker_count_name);

// A coroutine of another library's kind (started at once, run by whoever
// resumes it), on a plain thread, awaits a weft::mutex, a latch and a barrier.
// The party that releases it resumes it in the default runtime, as a deferral
// from outside one (it was resumed in a null runtime: the releasing call
// crashed).
using weft_test::eager;

struct resumed_at {
  std::atomic<bool> done{false};
  bool on_worker = false;
  bool owned = false;  // a mutex waiter: it owned the mutex when it resumed
  int order = 0;       // a mutex waiter: 1 + how many such waiters took a mutex before it
};

std::atomic<int> g_lock_order{0};

eager lock_then_unlock(weft::mutex& m, resumed_at& r) {
  co_await weft::lock_async(m);
  r.on_worker = weft::on_worker();
  r.order = g_lock_order.fetch_add(1) + 1;
  r.owned = !m.try_lock();  // held by this coroutine: nobody can take it
  m.unlock();               // lock_async's, or try_lock's when it was not held
  r.done.store(true);
}

eager pass_latch(weft::latch& l, resumed_at& r) {
  co_await l;
  r.on_worker = weft::on_worker();
  r.done.store(true);
}

eager pass_barrier(weft::barrier<>& b, resumed_at& r) {
  co_await weft::arrive_and_wait_async(b);
  r.on_worker = weft::on_worker();
  r.done.store(true);
}

void wait_done(const resumed_at& r) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!r.done.load() && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
}

TEST(CoroutineOffAWorker, IsResumedInTheDefaultRuntime) {
  weft::mutex m;
  weft::latch l(1);
  weft::barrier<> b(2);
  resumed_at at_mutex;
  resumed_at at_latch;
  resumed_at at_barrier;
  m.lock();
  std::thread([&] {
    lock_then_unlock(m, at_mutex);
    pass_latch(l, at_latch);
    pass_barrier(b, at_barrier);
  }).join();  // all three wait now, their thread gone
  EXPECT_FALSE(at_mutex.done.load() || at_latch.done.load() || at_barrier.done.load());
  m.unlock();
  l.count_down();
  b.arrive_and_wait();
  for (const resumed_at* r : {&at_mutex, &at_latch, &at_barrier}) {
    wait_done(*r);
    EXPECT_TRUE(r->done.load());
    EXPECT_TRUE(r->on_worker);
  }
  EXPECT_TRUE(m.try_lock());  // unlocked by the coroutine
  m.unlock();
}

// A coroutine woken by an unlock competes for the mutex, as a woken fiber
// does (MutexWakeTest in sync_test.cpp). One worker, so the coroutine's
// resumption cannot run before the unlocking root lets it. Before, the
// unlock handed the mutex to the coroutine, which held it while its
// resumption waited for the worker: the newcomer's try_lock failed (and
// every newcomer queued behind such a coroutine). The mutex outlives the
// runtime, whose destructor waits for the coroutine.
TEST(LockAsyncWakeTest, AWokenCoroutineCompetesWithNewcomers) {
  weft::mutex m;
  weft::runtime rt{weft::config{.workers = 1}};
  resumed_at r;
  bool newcomer_took_it = false;
  rt.run([&] {
    m.lock();
    lock_then_unlock(m, r);  // runs to its lock_async, which queues it
    m.unlock();              // wakes it: runnable on this worker, not running
    newcomer_took_it = m.try_lock();
    if (newcomer_took_it) m.unlock();
  });
  wait_done(r);
  ASSERT_TRUE(r.done.load());
  EXPECT_TRUE(newcomer_took_it);
  EXPECT_TRUE(r.owned);
  EXPECT_TRUE(r.on_worker);
  EXPECT_TRUE(m.try_lock());
  m.unlock();
}

// A woken coroutine that finds the mutex taken again queues again at the
// head, and takes the mutex at the next unlock, before the coroutine queued
// behind it: the newcomer holds the mutex while the first one's resumption
// runs (the yields), then lets it go.
TEST(LockAsyncWakeTest, ACoroutineThatLosesKeepsItsTurn) {
  weft::mutex m;
  weft::runtime rt{weft::config{.workers = 1}};
  resumed_at first;
  resumed_at second;
  rt.run([&] {
    m.lock();
    lock_then_unlock(m, first);
    lock_then_unlock(m, second);  // queued behind the first
    m.unlock();                   // wakes the first
    if (!m.try_lock()) {          // a newcomer takes it first
      ADD_FAILURE() << "the newcomer did not get the mutex";
      return;
    }
    for (int i = 0; i < 10; ++i) weft::yield();  // the first's resumption runs, loses, queues at the head
    EXPECT_FALSE(first.done.load());
    EXPECT_FALSE(second.done.load());
    m.unlock();  // wakes the first again
  });
  wait_done(first);
  wait_done(second);
  ASSERT_TRUE(first.done.load() && second.done.load());
  EXPECT_LT(first.order, second.order);  // queued again at the tail, the first came last
  EXPECT_TRUE(first.owned);
  EXPECT_TRUE(second.owned);
  EXPECT_TRUE(m.try_lock());
  m.unlock();
}

// Coroutines that lock with lock_async, fibers that lock with lock() and
// threads from outside, on one mutex at once, with some work while they hold
// it: no two hold it at once, nothing is lost, and the coroutines did wait
// (rounds are repeated until they have).
struct contended_counter {
  weft::mutex m;
  long count = 0;
  std::atomic<int> inside{0};
  std::atomic<bool> overlapped{false};
  std::atomic<long> coroutine_waits{0};
  volatile long m_sink = 0;

  void add() {  // with m held
    if (inside.fetch_add(1) != 0) overlapped.store(true);
    for (int k = 0; k < 50; ++k) m_sink = m_sink + k;  // some work while held
    ++count;
    inside.fetch_sub(1);
  }
};

weft::task<void> add_under(contended_counter& c, int times) {
  for (int i = 0; i < times; ++i) {
    if (!c.m.try_lock()) {
      c.coroutine_waits.fetch_add(1);
      co_await weft::lock_async(c.m);
    }
    std::unique_lock<weft::mutex> hold(c.m, std::adopt_lock);
    c.add();
  }
}

weft::task<void> sixteen_adding_under(contended_counter& c) {
  std::vector<weft::task<void>> tasks;
  for (int k = 0; k < 16; ++k) tasks.push_back(add_under(c, 100));
  co_await weft::when_all(std::move(tasks));
}

TEST(LockAsyncWakeTest, CoroutinesFibersAndThreadsLoseNothing) {
  contended_counter c;
  weft::runtime rt{weft::config{.workers = 2}};
  long expected = 0;
  // Rounds until the coroutines waited often enough: on a loaded machine the
  // threads and workers that contend may seldom run at once (one wait in 200
  // rounds was seen with two builds running beside the tests; 18 waits in
  // 2 000 rounds of 0.5 ms with a sanitizer build beside them), so the bound
  // is a time of 10 s, not a number of rounds.
  const auto start = std::chrono::steady_clock::now();
  while (c.coroutine_waits.load() < 100 && std::chrono::steady_clock::now() - start < std::chrono::seconds(10)) {
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < 500; ++i) {
          std::lock_guard<weft::mutex> hold(c.m);
          c.add();
        }
      });
    }
    rt.run([&] {
      weft::join([&] { weft::sync_wait(sixteen_adding_under(c)); },
                 [&] {
                   weft::parallelize(2'000, [&](int) {
                     std::lock_guard<weft::mutex> hold(c.m);
                     c.add();
                   });
                 });
    });
    for (auto& t : threads) t.join();
    expected += 2 * 500 + 16 * 100 + 2'000;
    ASSERT_EQ(c.count, expected);
  }
  EXPECT_FALSE(c.overlapped.load());
  EXPECT_GE(c.coroutine_waits.load(), 100);
}

// A weft::task resumed on a plain thread by an awaitable of another kind (a
// timer's, an I/O completion's) goes on there: it pops back, takes back or
// waits for the children it spawned on a worker. Those paths took the
// calling thread for a worker and read its null view (a crash, every time).
struct resume_on_a_new_thread {
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const {
    std::thread([h] {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      h.resume();
    }).detach();
  }
  void await_resume() const noexcept {}
};

weft::task<int> value_of(int i) { co_return i; }

weft::task<int> resumed_on_a_thread_then_returns(int i) {
  co_await resume_on_a_new_thread{};
  co_return i;
}

enum class off_worker_case { when_all_chain, spawn_awaited, spawn_dropped };

weft::task<int> resumed_off_a_worker(off_worker_case c) {
  switch (c) {
    case off_worker_case::when_all_chain: {  // child 0 ends on the plain thread, child 1 was pushed
      auto [a, b] = co_await weft::when_all(resumed_on_a_thread_then_returns(1), value_of(2));
      co_return a + b;
    }
    case off_worker_case::spawn_awaited: {
      auto s = weft::spawn(value_of(2));
      co_await resume_on_a_new_thread{};
      co_return 1 + co_await s;
    }
    case off_worker_case::spawn_dropped: {
      {
        auto s = weft::spawn(value_of(2));
        co_await resume_on_a_new_thread{};
      }  // dropped on the plain thread: waits for its child there, or finds it done
      co_return 3;
    }
  }
  co_return 0;
}

class CoroutineResumedOffAWorker : public ::testing::TestWithParam<int> {};

TEST_P(CoroutineResumedOffAWorker, GoesOnWithTheChildrenItSpawned) {
  weft::runtime rt{{.workers = GetParam()}};
  for (int round = 0; round < 50; ++round) {
    for (off_worker_case c :
         {off_worker_case::when_all_chain, off_worker_case::spawn_awaited, off_worker_case::spawn_dropped}) {
      EXPECT_EQ(rt.run([c] { return weft::sync_wait(resumed_off_a_worker(c)); }), 3)
          << "case " << static_cast<int>(c) << ", round " << round;
    }
  }
}

// A chain of 100 000 co_awaits continued on a plain thread. Where symmetric
// transfer is not a tail call (unoptimised and sanitizer builds), each
// transfer there used to grow the thread's stack, unchecked off a worker,
// until it overflowed (a crash; AddressSanitizer's stack-overflow report);
// the thread's own stack is now checked and the chain goes on in the
// default runtime when it runs low.
weft::task<long> chain_of(int n) {
  if (n == 0) co_return 0;
  co_return 1 + co_await chain_of(n - 1);
}

weft::task<long> deep_chain_resumed_on_a_thread(int n) {
  co_await resume_on_a_new_thread{};
  co_return co_await chain_of(n);
}

TEST(CoroutineOffAWorker, ADeepChainOnAPlainThreadDoesNotOverflowItsStack) {
  // ThreadSanitizer records at most 65 536 frames of a stack: more than the
  // thread's 8 MiB hold of this chain's frames before its reserve.
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer cannot record a stack this deep";
  EXPECT_EQ(weft::sync_wait(deep_chain_resumed_on_a_thread(100000)), 100000);
}

// A coroutine resumed on another library's stack (here a ucontext stack of
// 1 MiB from the heap, on the main thread) goes on there: a stack that is not
// the thread's own is never taken for a nearly full one. Before, every
// transfer below the thread's own stack counted as "low" and went through the
// default runtime, so the child and the parent went on on its workers.
std::coroutine_handle<> g_parked;
std::atomic<bool> g_is_parked{false};  // release: g_parked is written before it

struct park_here {
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const noexcept {
    g_parked = h;
    g_is_parked.store(true, std::memory_order_release);
  }
  void await_resume() const noexcept {}
};

weft::task<bool> on_a_worker_now() { co_return weft::on_worker(); }

weft::task<int> parks_then_awaits_a_child(bool& child_on_worker, bool& parent_on_worker) {
  co_await park_here{};
  child_on_worker = co_await on_a_worker_now();
  parent_on_worker = weft::on_worker();
  co_return 7;
}

ucontext_t g_main_context;
ucontext_t g_foreign_context;

void resume_parked() { g_parked.resume(); }

TEST(CoroutineOffAWorker, AChainOnAnotherLibrarysStackGoesOnThere) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer does not follow swapcontext";
  bool child_on_worker = true;
  bool parent_on_worker = true;
  int result = 0;
  g_is_parked.store(false);  // from an earlier repetition (--gtest_repeat)
  std::thread waiter([&] { result = weft::sync_wait(parks_then_awaits_a_child(child_on_worker, parent_on_worker)); });
  while (!g_is_parked.load(std::memory_order_acquire)) std::this_thread::yield();
  std::vector<char> stack(1 << 20);
  ASSERT_EQ(getcontext(&g_foreign_context), 0);
  g_foreign_context.uc_stack.ss_sp = stack.data();
  g_foreign_context.uc_stack.ss_size = stack.size();
  g_foreign_context.uc_link = &g_main_context;
  makecontext(&g_foreign_context, &resume_parked, 0);
  ASSERT_EQ(swapcontext(&g_main_context, &g_foreign_context), 0);
  waiter.join();
  EXPECT_EQ(result, 7);
  EXPECT_FALSE(child_on_worker) << "the child went to a worker";
  EXPECT_FALSE(parent_on_worker) << "the parent went on on a worker";
}

// A spawn handle made on a worker and destroyed on a plain thread (the run
// that made it returned): it waits for its child there (the child ran, or
// runs, on the worker that queued it).
TEST_P(CoroutineResumedOffAWorker, ASpawnHandleDestroyedOnAPlainThread) {
  weft::runtime rt{{.workers = GetParam()}};
  for (int round = 0; round < 50; ++round) {
    std::atomic<int> ran{0};
    auto child = [&ran]() -> weft::task<int> {
      ran.fetch_add(1);
      co_return 1;
    };
    std::unique_ptr<weft::spawned<int>> h;
    rt.run([&] { h = std::make_unique<weft::spawned<int>>(child()); });
    h.reset();
    EXPECT_LE(ran.load(), 1);  // taken back unstarted, or run once and waited for
  }
}

INSTANTIATE_TEST_SUITE_P(Workers, CoroutineResumedOffAWorker, ::testing::Values(1, 2), weft_test::worker_count_name);

enum class wait_kind { mutex, latch, barrier };

// A weft::mutex (locked at first), a latch and a barrier of `parties`, for
// coroutines that wait on one of them and a party that releases them.
struct wait_objects {
  explicit wait_objects(wait_kind kind, std::ptrdiff_t parties) : m_kind(kind), m_meet(parties) {
    if (kind == wait_kind::mutex) m_mutex.lock();
  }
  // Waits as a coroutine waits: holding no fiber.
  weft::task<void> wait() {
    switch (m_kind) {
      case wait_kind::mutex:
        co_await weft::lock_async(m_mutex);
        m_mutex.unlock();
        break;
      case wait_kind::latch: co_await m_gate; break;
      case wait_kind::barrier: co_await weft::arrive_and_wait_async(m_meet); break;
    }
  }
  void release() {
    switch (m_kind) {
      case wait_kind::mutex: m_mutex.unlock(); break;
      case wait_kind::latch: m_gate.count_down(); break;
      case wait_kind::barrier: m_meet.arrive_and_wait(); break;
    }
  }
  wait_kind m_kind;
  weft::mutex m_mutex;
  weft::latch m_gate{1};
  weft::barrier<> m_meet;
};

// A runtime destroyed while a coroutine of one of its spawned children waits
// on a weft::mutex, a latch or a barrier (the spawn handle outlives the
// run): the coroutine holds no fiber, and was counted nowhere, so the
// destructor returned at once, and the release made it runnable in the freed
// runtime (a use after free; with a latch, the handle's await then hung). The
// wait now counts as work in flight: the destructor waits for the release,
// the coroutine ends there, and the handle is awaited in another runtime.
TEST(CoroutineWaitLifetime, ARuntimeDestroyedWhileACoroutineWaitsWaitsForIt) {
  for (wait_kind kind : {wait_kind::mutex, wait_kind::latch, wait_kind::barrier}) {
    SCOPED_TRACE(::testing::Message() << "wait kind " << static_cast<int>(kind));
    wait_objects objects(kind, 2);
    weft::latch started(1);
    std::atomic<bool> released{false};
    auto waiter = [&]() -> weft::task<int> {
      started.count_down();
      co_await objects.wait();
      co_return released.load() ? 41 : -1;
    };
    auto a = std::make_unique<weft::runtime>(weft::config{.workers = 1});
    std::unique_ptr<weft::spawned<int>> h;
    a->run([&] {
      h = std::make_unique<weft::spawned<int>>(waiter());
      started.wait();  // the child runs (on this worker's next fiber) and waits
    });
    std::thread releaser([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      released.store(true);
      objects.release();
    });
    a.reset();  // waits for the coroutine, released by the thread above
    const bool waited = released.load();
    releaser.join();
    EXPECT_TRUE(waited) << "the destructor returned before the waiting coroutine was released";
    weft::runtime b{{.workers = 1}};
    auto await_it = [](weft::spawned<int>& s) -> weft::task<int> { co_return co_await s; };
    EXPECT_EQ(b.run([&] { return weft::sync_wait(await_it(*h)); }), 41);
    h.reset();
  }
}

// Spawned children whose handles outlive their run start waiting (on a
// mutex, a latch, a barrier) only after the runtime's destructor began (its
// wait for work found none: queued tasks are not counted), and a thread from
// outside, or a worker of another runtime, releases them: the injection of
// each resumption ends its count last, on that thread, which woke nobody,
// and the workers could stay parked while the destructor waited for them to
// leave. A race: before the fix, 2 000 rounds hung in about half the runs on
// the 2-core machine.
TEST(CoroutineWaitLifetime, WaitsThatBeginWhileTheRuntimeStops) {
  std::mt19937 rng(1);
  weft::runtime other{{.workers = 1}};
  const auto rounds = static_cast<int>(weft_test::scaled(900, 30));
  for (int round = 0; round < rounds; ++round) {
    const auto kind = static_cast<wait_kind>(round % 3);
    SCOPED_TRACE(::testing::Message() << "round " << round << ", wait kind " << static_cast<int>(kind));
    constexpr int k_children = 4;
    wait_objects objects(kind, k_children + 1);
    std::atomic<int> resumed{0};
    auto waiter = [&]() -> weft::task<int> {
      co_await objects.wait();
      resumed.fetch_add(1);
      co_return 1;
    };
    auto a = std::make_unique<weft::runtime>(weft::config{.workers = 2});
    std::vector<std::unique_ptr<weft::spawned<int>>> handles;
    a->run([&] {
      for (int i = 0; i < k_children; ++i) handles.push_back(std::make_unique<weft::spawned<int>>(waiter()));
    });
    const auto delay = std::chrono::microseconds(rng() % 3000);
    const bool from_another_runtime = rng() % 2 == 0;
    std::thread releaser([&] {
      std::this_thread::sleep_for(delay);
      if (from_another_runtime) {
        other.run([&] { objects.release(); });
      } else {
        objects.release();
      }
    });
    a.reset();  // waits for every child, released by the thread above
    const int resumed_at_destruction = resumed.load();
    releaser.join();
    ASSERT_EQ(resumed_at_destruction, k_children);
    weft::runtime b{{.workers = 1}};
    auto await_it = [](weft::spawned<int>& s) -> weft::task<int> { co_return co_await s; };
    for (auto& h : handles) ASSERT_EQ(b.run([&] { return weft::sync_wait(await_it(*h)); }), 1);
  }
}

// A burst of long children (one per worker, each busy without calling weft
// until all have started), through when_all of a vector and through spawn
// then co_await of each, runs on every worker at once. The children stayed
// in the awaiting worker's private ring, run there one after another: 3 of
// 4 gave up on 4 workers, 7 of 8 on 8.
weft::task<int> busy_child(std::atomic<int>& reached, int together) {
  co_return weft_test::busy_until(reached, together) ? 0 : 1;
}

TEST(CoroutineBurstTest, ALongBurstRunsOnEveryWorkerAtOnce) {
  for (const int workers : {4, 8}) {
    SCOPED_TRACE(::testing::Message() << workers << " workers");
    weft::runtime rt{weft::config{.workers = workers}};
    for (const bool spawned : {false, true}) {
      SCOPED_TRACE(spawned ? "spawn" : "when_all");
      std::atomic<int> reached{0};
      const int gave_up = rt.run([&] {
        return weft::sync_wait([&]() -> weft::task<int> {
          int out = 0;
          if (spawned) {
            std::deque<weft::spawned<int>> handles;
            for (int k = 0; k < workers; ++k) handles.emplace_back(busy_child(reached, workers));
            for (auto& h : handles) out += co_await h;
          } else {
            std::vector<weft::task<int>> children;
            for (int k = 0; k < workers; ++k) children.push_back(busy_child(reached, workers));
            for (const int r : co_await weft::when_all(std::move(children))) out += r;
          }
          co_return out;
        }());
      });
      EXPECT_EQ(gave_up, 0);
    }
  }
}

}  // namespace
