// SPDX-License-Identifier: MIT
// weft::mutex, weft::condition_variable, weft::latch: mutual exclusion, no
// lost notification, no deadlock when waiting fibers suspend, with 1 worker
// and with many, and together with threads outside any runtime.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <vector>

#include <weft/weft.hpp>

#include "sanitizers.hpp"
#include "worker_count.hpp"

namespace {

// Notes when two holders of a lock overlap.
struct exclusion_check {
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  void enter() {
    if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
  }
  void leave() { inside.fetch_sub(1); }
};

class SyncTest : public weft_test::WorkerCount {};

// ---- mutex ----

TEST_P(SyncTest, MutexExcludesUnderContention) {
  weft::mutex m;
  exclusion_check check;
  std::int64_t counter = 0;  // guarded by m; deliberately not atomic
  // Every item that finds the mutex held suspends on its own fiber while the
  // loop's other items go on (loops protocol), so up to n fibers wait at once:
  // fewer under ThreadSanitizer, which tracks at most 8128 threads and fibers.
  const int n = weft_test::k_tsan ? 4'000 : 20'000;
  rt.run([&] {
    weft::parallelize(n, [&](int i) {
      std::lock_guard lock(m);
      check.enter();
      ++counter;
      if (i % 64 == 0) weft::yield();  // suspend while holding it, now and then
      check.leave();
    });
  });
  EXPECT_EQ(counter, n);
  EXPECT_EQ(check.overlaps.load(), 0);
}

TEST_P(SyncTest, TryLockFailsWhileHeld) {
  weft::mutex m;
  rt.run([&] {
    ASSERT_TRUE(m.try_lock());
    std::atomic<bool> other_got_it{true};
    std::thread outside([&] { other_got_it = m.try_lock(); });
    outside.join();
    EXPECT_FALSE(other_got_it.load());
    m.unlock();
    EXPECT_TRUE(m.try_lock());
    m.unlock();
  });
}

TEST_P(SyncTest, MutexWorksWithStandardLockTypes) {
  weft::mutex a;
  weft::mutex b;
  std::int64_t x = 0;
  rt.run([&] {
    weft::parallelize(2000, [&](int i) {
      if (i % 2 == 0) {
        std::scoped_lock lock(a, b);
        ++x;
      } else {
        std::unique_lock lock(b);
        std::unique_lock lock2(a);
        ++x;
      }
    });
  });
  EXPECT_EQ(x, 2000);
}

// A task holds the mutex across a nested parallel call: the others wait for
// it (suspended), the nested call still runs, even on one worker.
TEST_P(SyncTest, MutexHeldAcrossANestedParallelCall) {
  weft::mutex m;
  exclusion_check check;
  std::atomic<int> inner{0};
  rt.run([&] {
    weft::parallelize(32, [&](int) {
      std::lock_guard lock(m);
      check.enter();
      weft::parallelize(50, [&](int) { inner.fetch_add(1); });
      auto [a, b] = weft::join([] { return 1; }, [] { return 2; });
      inner.fetch_add(a + b - 3);
      check.leave();
    });
  });
  EXPECT_EQ(inner.load(), 32 * 50);
  EXPECT_EQ(check.overlaps.load(), 0);
}

// Fibers of the runtime and threads outside it share one mutex.
TEST_P(SyncTest, MutexSharedByFibersAndOutsideThreads) {
  weft::mutex m;
  exclusion_check check;
  std::int64_t counter = 0;
  constexpr int per_caller = 2000;
  std::vector<std::thread> outside;
  for (int t = 0; t < 3; ++t) {
    outside.emplace_back([&] {
      for (int i = 0; i < per_caller; ++i) {
        std::lock_guard lock(m);
        check.enter();
        ++counter;
        check.leave();
      }
    });
  }
  rt.run([&] {
    weft::parallelize(per_caller, [&](int) {
      std::lock_guard lock(m);
      check.enter();
      ++counter;
      check.leave();
    });
  });
  for (auto& th : outside) th.join();
  EXPECT_EQ(counter, 4 * per_caller);
  EXPECT_EQ(check.overlaps.load(), 0);
}

// ---- condition_variable ----

// Producers and consumers, all tasks: every item is consumed exactly once.
TEST_P(SyncTest, ProducersAndConsumersLoseNothing) {
  weft::mutex m;
  weft::condition_variable cv;
  std::deque<int> queue;
  bool closed = false;
  constexpr int producers = 4;
  constexpr int per_producer = 2000;
  std::vector<std::atomic<int>> consumed(producers * per_producer);
  rt.run([&] {
    weft::task_group consumers;
    for (int c = 0; c < 3; ++c) {
      consumers.spawn([&] {
        for (;;) {
          std::unique_lock lock(m);
          cv.wait(lock, [&] { return !queue.empty() || closed; });
          if (queue.empty()) return;
          const int v = queue.front();
          queue.pop_front();
          lock.unlock();
          consumed[static_cast<std::size_t>(v)].fetch_add(1);
        }
      });
    }
    weft::parallelize(producers, [&](int p) {
      for (int i = 0; i < per_producer; ++i) {
        {
          std::lock_guard lock(m);
          queue.push_back(p * per_producer + i);
        }
        cv.notify_one();
      }
    });
    {
      std::lock_guard lock(m);
      closed = true;
    }
    cv.notify_all();
    consumers.wait();
  });
  for (std::size_t i = 0; i < consumed.size(); ++i) ASSERT_EQ(consumed[i].load(), 1) << "item " << i;
}

// Two tasks hand a token back and forth: a lost notification would hang.
TEST_P(SyncTest, PingPongNeverLosesANotification) {
  weft::mutex m;
  weft::condition_variable cv;
  int turn = 0;
  constexpr int rounds = static_cast<int>(weft_test::scaled(2000, 4));
  rt.run([&] {
    weft::join(
        [&] {
          for (int r = 0; r < rounds; ++r) {
            std::unique_lock lock(m);
            cv.wait(lock, [&] { return turn == 0; });
            turn = 1;
            cv.notify_one();
          }
        },
        [&] {
          for (int r = 0; r < rounds; ++r) {
            std::unique_lock lock(m);
            cv.wait(lock, [&] { return turn == 1; });
            turn = 0;
            cv.notify_one();
          }
        });
  });
  EXPECT_EQ(turn, 0);
}

TEST_P(SyncTest, NotifyAllWakesEveryWaiter) {
  weft::mutex m;
  weft::condition_variable cv;
  bool go = false;
  std::atomic<int> waiting{0};
  std::atomic<int> woken{0};
  constexpr int waiters = 20;
  std::thread outside_waiter([&] {
    std::unique_lock lock(m);
    waiting.fetch_add(1);
    cv.wait(lock, [&] { return go; });
    woken.fetch_add(1);
  });
  rt.run([&] {
    weft::task_group g;
    for (int i = 0; i < waiters; ++i) {
      g.spawn([&] {
        std::unique_lock lock(m);
        waiting.fetch_add(1);
        cv.wait(lock, [&] { return go; });
        woken.fetch_add(1);
      });
    }
    g.spawn([&] {
      while (waiting.load() < waiters + 1) weft::yield();
      {
        std::lock_guard lock(m);
        go = true;
      }
      cv.notify_all();
    });
    g.wait();
  });
  outside_waiter.join();
  EXPECT_EQ(woken.load(), waiters + 1);
}

TEST_P(SyncTest, WaitWithoutOwningTheLockThrows) {
  weft::mutex m;
  weft::condition_variable cv;
  rt.run([&] {
    std::unique_lock<weft::mutex> lock(m, std::defer_lock);
    EXPECT_THROW(cv.wait(lock), std::invalid_argument);
  });
}

// ---- latch ----

TEST_P(SyncTest, LatchReleasesWaitersWhenCountReachesZero) {
  constexpr int n = 64;
  weft::latch done(n);
  std::atomic<int> before{0};
  rt.run([&] {
    weft::task_group g;
    for (int i = 0; i < n; ++i) {
      g.spawn([&] {
        before.fetch_add(1);
        done.count_down();
      });
    }
    done.wait();
    EXPECT_EQ(before.load(), n);
    EXPECT_TRUE(done.try_wait());
    g.wait();
  });
}

// Every task waits for all of them: they must all be able to suspend.
TEST_P(SyncTest, ArriveAndWaitWithMoreTasksThanWorkers) {
  constexpr int n = 40;
  weft::latch all(n);
  std::atomic<int> arrived{0};
  std::atomic<int> early{0};
  rt.run([&] {
    weft::task_group g;
    for (int i = 0; i < n; ++i) {
      g.spawn([&] {
        arrived.fetch_add(1);
        all.arrive_and_wait();
        if (arrived.load() != n) early.fetch_add(1);
      });
    }
    g.wait();
  });
  EXPECT_EQ(early.load(), 0);
}

TEST_P(SyncTest, LatchWaitedOnFromOutside) {
  weft::latch done(3);
  std::thread caller([&] { rt.run([&] { weft::parallelize(3, [&](int) { done.count_down(); }); }); });
  done.wait();
  EXPECT_TRUE(done.try_wait());
  caller.join();
}

TEST_P(SyncTest, LatchArgumentsAreChecked) {
  EXPECT_THROW(weft::latch(-1), std::invalid_argument);
  EXPECT_THROW(weft::latch(weft::latch::max() + 1), std::invalid_argument);
  {
    weft::latch most(weft::latch::max());
    EXPECT_FALSE(most.try_wait());
  }
  weft::latch l(2);
  EXPECT_FALSE(l.try_wait());
  EXPECT_THROW(l.count_down(-1), std::invalid_argument);
  EXPECT_THROW(l.count_down(3), std::invalid_argument);
  l.count_down(2);
  EXPECT_TRUE(l.try_wait());
  weft::latch zero(0);
  EXPECT_TRUE(zero.try_wait());
  zero.wait();
}

WEFT_INSTANTIATE_WORKER_COUNTS(SyncTest);

// An unlock that wakes a waiting fiber leaves the mutex free: the woken
// fiber competes for it, and a newcomer does not queue behind it. One
// worker, so the woken fiber cannot run before the unlocking one lets it:
// before, the unlock handed the mutex to the waiter, and the try_lock below
// failed (and a loop whose items took one mutex, once contended, queued
// every later item behind a woken waiter that no worker ran yet: one
// suspension and one fiber per item, 0.3-2 s for loops of 20 000-200 000
// items that otherwise take 0.2 ms).
TEST(MutexWakeTest, AWokenWaiterCompetesWithNewcomers) {
  weft::runtime rt{weft::config{.workers = 1}};
  weft::mutex m;
  std::atomic<bool> waiting{false};
  bool newcomer_took_it = false;
  bool waiter_took_it = false;
  rt.run([&] {
    weft::join(
        [&] {
          m.lock();
          while (!waiting.load()) weft::yield();  // the other side runs, and queues on m
          m.unlock();                             // wakes it: ready on this worker, not running
          newcomer_took_it = m.try_lock();
          if (newcomer_took_it) m.unlock();
        },
        [&] {
          waiting.store(true);
          m.lock();  // suspends: the mutex is held
          waiter_took_it = true;
          m.unlock();
        });
  });
  EXPECT_TRUE(newcomer_took_it);
  EXPECT_TRUE(waiter_took_it);
}

// The same for a thread from outside that waits: woken, it competes (and
// gets the mutex once it is free), and the mutex counts right throughout.
TEST(MutexWakeTest, ThreadsThatWaitCompeteAndLoseNothing) {
  weft::runtime rt{weft::config{.workers = 2}};
  weft::mutex m;
  long count = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        std::lock_guard<weft::mutex> hold(m);
        ++count;
      }
    });
  }
  rt.run([&] {
    weft::parallelize(20'000, [&](int) {
      std::lock_guard<weft::mutex> hold(m);
      ++count;
    });
  });
  for (auto& t : threads) t.join();
  EXPECT_EQ(count, 4 * 2000 + 20'000);
}

// Busy until flag is set, for at most `most`; false when it was not.
bool spin_until(const std::atomic<bool>& flag, std::chrono::seconds most) {
  const auto start = std::chrono::steady_clock::now();
  while (!flag.load()) {
    if (std::chrono::steady_clock::now() - start >= most) return false;
  }
  return true;
}

// The other worker of a runtime of two, held busy: hold() spawns into g a
// task that the other worker takes and spins in until release(); true once
// it spins.
struct other_worker_held {
  std::atomic<bool> busy{false};
  std::atomic<bool> released{false};
  bool hold(weft::task_group& g) {
    g.spawn([this] {
      busy.store(true);
      spin_until(released, std::chrono::seconds(10));
    });
    return spin_until(busy, std::chrono::seconds(10));
  }
  void release() { released.store(true); }
};

// A waiter woken by code that goes on with its own work (an unlock, a
// notify_one, a latch that opened, a barrier's last arrival) runs on an idle
// worker while the waker is busy. Two workers: the other one is held busy
// while the root makes the waiter wait (on its own worker, through a yield)
// and queues a task for it to steal; the root then wakes the waiter, lets the
// other worker go, and stays busy until the waiter has run. The woken waiter
// went to the root's private ring (its public deque held that task), where
// the other worker, once it had taken the task, could not see it: it ran
// only when the root stopped spinning (each case waited out the spin before;
// with a mutex, a notify_all's waiters queued on it met this in turn).
TEST(WakeTest, AWaiterWokenByCodeThatGoesOnRunsOnAnIdleWorker) {
  for (const char* how : {"mutex", "condition_variable", "latch", "barrier"}) {
    SCOPED_TRACE(how);
    const std::string_view kind = how;
    weft::runtime rt{weft::config{.workers = 2}};
    weft::mutex m;
    weft::condition_variable cv;
    bool notified = false;
    weft::latch gate(1);
    weft::barrier<> phase(2);
    other_worker_held other;
    std::atomic<bool> waiter_started{false};
    std::atomic<bool> waiter_ran{false};
    bool other_was_busy = false;
    bool ran_while_busy = false;
    rt.run([&] {
      weft::task_group g;
      other_was_busy = other.hold(g);
      if (kind == "mutex") m.lock();
      g.spawn([&] {
        waiter_started.store(true);
        if (kind == "mutex") {
          m.lock();
          m.unlock();
        } else if (kind == "condition_variable") {
          std::unique_lock<weft::mutex> lock(m);
          cv.wait(lock, [&] { return notified; });
        } else if (kind == "latch") {
          gate.wait();
        } else {
          phase.arrive_and_wait();
        }
        waiter_ran.store(true);
      });
      while (!waiter_started.load()) weft::yield();  // runs it here: it waits now
      g.spawn([] {});                                // public: the other worker's to steal
      if (kind == "mutex") {
        m.unlock();
      } else if (kind == "condition_variable") {
        {
          std::lock_guard<weft::mutex> hold(m);
          notified = true;
        }
        cv.notify_one();
      } else if (kind == "latch") {
        gate.count_down();
      } else {
        (void)phase.arrive();
      }
      other.release();
      ran_while_busy = spin_until(waiter_ran, std::chrono::seconds(3));  // 4 cases within the watchdog's 30 s
      g.wait();
    });
    EXPECT_TRUE(other_was_busy);
    EXPECT_TRUE(ran_while_busy) << "the woken waiter waited for its waker's next scheduling point";
    EXPECT_TRUE(waiter_ran.load());
  }
}

// The same for a mutex's waiter woken by the unlock of a condition
// variable's wait (in its switch action), when the worker's next fiber is a
// yielded one that then runs long: B queues on the mutex the root holds, Y
// yields, the root waits on the condition variable (its unlock wakes B, and
// the worker resumes Y), and Y stays busy until B has run. An unlock there
// that left B in the private ring kept it from the idle worker.
TEST(WakeTest, AMutexWaiterWokenByAConditionVariableWaitRunsOnAnIdleWorker) {
  weft::runtime rt{weft::config{.workers = 2}};
  weft::mutex m;
  weft::condition_variable cv;
  bool notified = false;
  other_worker_held other;
  std::atomic<bool> b_started{false};
  std::atomic<bool> y_started{false};
  std::atomic<bool> b_ran{false};
  bool other_was_busy = false;
  bool ran_while_busy = false;
  rt.run([&] {
    weft::task_group g;
    other_was_busy = other.hold(g);
    std::unique_lock<weft::mutex> lock(m);
    g.spawn([&] {  // B: queues on m
      b_started.store(true);
      m.lock();
      m.unlock();
      b_ran.store(true);
    });
    while (!b_started.load()) weft::yield();
    g.spawn([&] {  // Y: yields once, then stays busy until B has run
      y_started.store(true);
      weft::yield();
      other.release();
      ran_while_busy = spin_until(b_ran, std::chrono::seconds(3));
      {
        std::lock_guard<weft::mutex> hold(m);
        notified = true;
      }
      cv.notify_one();
    });
    while (!y_started.load()) weft::yield();
    g.spawn([] {});  // public: the other worker's to steal
    cv.wait(lock, [&] { return notified; });
    lock.unlock();
    g.wait();
  });
  EXPECT_TRUE(other_was_busy);
  EXPECT_TRUE(ran_while_busy) << "the mutex's waiter waited for the yielded fiber";
}

// The same past the fiber bound (config::max_fibers x workers fibers alive),
// where no worker steals: a latch's or a mutex's waiters, made ready by a
// fiber that then stays busy, run on the other worker, which takes them from
// the injection queue. They went to the waker's queue, published or not,
// where nobody took them before the waker stopped spinning (20 of 20 waiters
// waited out the spin).
TEST(WakeTest, WaitersWokenPastTheFiberBoundRunOnAnIdleWorker) {
  constexpr int k_waiters = 20;  // past the bound of 2 workers x 4 fibers
  for (const char* how : {"latch", "mutex"}) {
    SCOPED_TRACE(how);
    const std::string_view kind = how;
    weft::runtime rt{weft::config{.workers = 2, .max_fibers = 4}};
    weft::latch gate(1);
    weft::mutex m;
    std::atomic<int> waiting{0};
    std::atomic<int> ran{0};
    bool ran_while_busy = false;
    rt.run([&] {
      weft::task_group g;
      if (kind == "mutex") m.lock();
      for (int i = 0; i < k_waiters; ++i) {
        g.spawn([&] {
          waiting.fetch_add(1);
          if (kind == "latch") {
            gate.wait();
          } else {
            std::lock_guard<weft::mutex> hold(m);
          }
          ran.fetch_add(1);
        });
      }
      while (waiting.load() < k_waiters) weft::yield();
      // A waiter counted but not yet waiting (on the other worker) would run
      // without being woken: let it get there.
      weft::yield();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      if (kind == "latch") {
        gate.count_down();
      } else {
        m.unlock();
      }
      const auto start = std::chrono::steady_clock::now();
      while (ran.load() == 0 && std::chrono::steady_clock::now() - start < std::chrono::seconds(3)) {
      }
      ran_while_busy = ran.load() > 0;
      g.wait();
    });
    EXPECT_TRUE(ran_while_busy) << "no woken waiter ran while its waker was busy";
    EXPECT_EQ(ran.load(), k_waiters);
  }
}

}  // namespace
