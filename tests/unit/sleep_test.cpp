// SPDX-License-Identifier: MIT
// Unit tests of runtime/sleep.hpp, the parking protocol: the searching count
// through start_search / found_work / prepare_park / cancel_park /
// commit_park, and who notify_one() and notify_all() wake. Threads that park
// for real do so under a watchdog: a wake-up that never comes fails the test
// (and the watchdog unparks everyone) instead of hanging it.
// The racing protocol is in tests/stress/sleep_stress_test.cpp.
#include "sleep.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "watchdog.hpp"

namespace {

using namespace std::chrono_literals;
using weft::rt::sleep_set;
using clock_type = std::chrono::steady_clock;

// Fails the test when not disarmed within `limit`, then keeps calling
// notify_all() so that every parked thread comes back and can be joined.
class wake_watchdog {
 public:
  wake_watchdog(sleep_set& s, std::chrono::milliseconds limit)
      : m_thread([this, &s, limit] {
          std::unique_lock lock(m_mutex);
          if (m_cv.wait_for(lock, limit, [this] { return m_disarmed; })) return;
          m_fired = true;
          while (!m_disarmed) {
            lock.unlock();
            s.notify_all();
            lock.lock();
            m_cv.wait_for(lock, 10ms, [this] { return m_disarmed; });
          }
        }) {}
  ~wake_watchdog() { disarm(); }
  wake_watchdog(const wake_watchdog&) = delete;
  wake_watchdog& operator=(const wake_watchdog&) = delete;

  // Stops the watchdog; true if it fired.
  bool disarm() {
    {
      std::lock_guard lock(m_mutex);
      m_disarmed = true;
    }
    m_cv.notify_all();
    if (m_thread.joinable()) m_thread.join();
    return m_fired;
  }
  bool fired() {
    std::lock_guard lock(m_mutex);
    return m_fired;
  }

 private:
  std::mutex m_mutex;
  std::condition_variable m_cv;
  bool m_disarmed = false;
  bool m_fired = false;
  std::thread m_thread;
};

// Waits until pred() holds or `limit` passes; true if it holds.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 5000ms) {
  const auto deadline = clock_type::now() + limit;
  while (!pred()) {
    if (clock_type::now() > deadline) return false;
    std::this_thread::sleep_for(100us);
  }
  return true;
}

// A thread that parks as worker w (start_search, prepare_park, commit_park)
// and records when it comes back.
class parker {
 public:
  parker(sleep_set& s, int w)
      : m_thread([this, &s, w] {
          s.start_search();
          s.prepare_park(w);
          m_prepared.store(true, std::memory_order_release);
          s.commit_park(w);
          m_woken.store(true, std::memory_order_release);
        }) {}
  ~parker() {
    if (m_thread.joinable()) m_thread.join();
  }
  parker(const parker&) = delete;
  parker& operator=(const parker&) = delete;

  bool prepared() const { return m_prepared.load(std::memory_order_acquire); }
  bool woken() const { return m_woken.load(std::memory_order_acquire); }
  void join() { m_thread.join(); }

 private:
  std::atomic<bool> m_prepared{false};
  std::atomic<bool> m_woken{false};
  std::thread m_thread;
};

// Waits until every parker registered, and gives them a moment to reach the
// futex (not needed for correctness: a notify that comes earlier must still
// be delivered).
void wait_prepared(const std::vector<parker*>& ps) {
  for (parker* p : ps) ASSERT_TRUE(eventually([p] { return p->prepared(); }));
  std::this_thread::sleep_for(20ms);
}

int count_woken(const std::vector<parker*>& ps) {
  int n = 0;
  for (parker* p : ps) n += p->woken() ? 1 : 0;
  return n;
}

TEST(SleepSet, NewSetHasNoSearchers) {
  sleep_set s(4);
  EXPECT_EQ(s.searching(), 0);
  s.notify_one();  // nobody parked: nothing happens
  s.notify_all();
  EXPECT_EQ(s.searching(), 0);
}

TEST(SleepSet, SearchingCountFollowsSearchers) {
  sleep_set s(4);
  s.start_search();
  s.start_search();
  EXPECT_EQ(s.searching(), 2);
  s.found_work();
  EXPECT_EQ(s.searching(), 1);
  s.found_work();  // the last searcher: its notify_one finds nobody parked
  EXPECT_EQ(s.searching(), 0);
  s.start_search();
  s.stop_search();
  EXPECT_EQ(s.searching(), 0);
}

TEST(SleepSet, PrepareThenCancelLeavesSearchingUnchanged) {
  sleep_set s(4);
  s.start_search();
  s.start_search();
  ASSERT_EQ(s.searching(), 2);
  s.prepare_park(1);
  EXPECT_EQ(s.searching(), 1);  // a parking worker does not search
  s.cancel_park(1);
  EXPECT_EQ(s.searching(), 2);
  // Repeatable: the cancelled park left no stale bit behind.
  for (int i = 0; i < 100; ++i) {
    s.prepare_park(1);
    s.cancel_park(1);
  }
  EXPECT_EQ(s.searching(), 2);
  s.stop_search();
  s.stop_search();
  EXPECT_EQ(s.searching(), 0);
  s.notify_one();  // no stale bit: nothing to hand over
  EXPECT_EQ(s.searching(), 0);
}

// A notify between prepare_park and cancel_park wins the bit: cancel_park
// then takes the hand-over instead of returning its own bit, and the worker
// is counted as searching exactly once.
TEST(SleepSet, NotifyBetweenPrepareAndCancelIsHandedOver) {
  sleep_set s(4);
  wake_watchdog dog(s, 5000ms);
  s.start_search();
  s.prepare_park(2);
  EXPECT_EQ(s.searching(), 0);
  s.notify_one();
  EXPECT_EQ(s.searching(), 1);  // the waker counts the sleeper as searching
  s.cancel_park(2);             // returns at once: the hand-over is done
  EXPECT_EQ(s.searching(), 1);
  EXPECT_FALSE(dog.disarm());
  s.stop_search();
  s.notify_one();
  EXPECT_EQ(s.searching(), 0);
}

TEST(SleepSet, NotifyBetweenPrepareAndCommitIsNotLost) {
  sleep_set s(4);
  wake_watchdog dog(s, 5000ms);
  s.start_search();
  s.prepare_park(3);
  s.notify_one();
  s.commit_park(3);  // returns at once: the hand-over came before the commit
  EXPECT_FALSE(dog.disarm());
  EXPECT_EQ(s.searching(), 1);
}

TEST(SleepSet, NotifyWithASearcherDoesNotWake) {
  sleep_set s(4);
  wake_watchdog dog(s, 10000ms);
  parker p(s, 0);
  wait_prepared({&p});
  EXPECT_EQ(s.searching(), 0);
  s.start_search();  // someone else is searching: it will find the work
  s.notify_one();
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(p.woken());
  EXPECT_EQ(s.searching(), 1);
  s.stop_search();
  s.notify_one();  // nobody searching now: hands over to the parked slot
  EXPECT_TRUE(eventually([&] { return p.woken(); }));
  EXPECT_EQ(s.searching(), 1);  // the woken worker searches
  p.join();
  EXPECT_FALSE(dog.disarm()) << "a parked thread missed its wake-up";
}

TEST(SleepSet, NotifyOneWakesExactlyOne) {
  sleep_set s(4);
  wake_watchdog dog(s, 10000ms);
  parker a(s, 0);
  parker b(s, 3);
  wait_prepared({&a, &b});
  s.notify_one();
  EXPECT_TRUE(eventually([&] { return count_woken({&a, &b}) == 1; }));
  s.notify_one();  // the woken one counts as searching: no second wake-up
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(count_woken({&a, &b}), 1);
  EXPECT_EQ(s.searching(), 1);
  s.stop_search();  // the woken one stops searching
  s.notify_one();
  EXPECT_TRUE(eventually([&] { return count_woken({&a, &b}) == 2; }));
  EXPECT_EQ(s.searching(), 1);
  a.join();
  b.join();
  EXPECT_FALSE(dog.disarm()) << "a parked thread missed its wake-up";
}

// Rule 2 of the protocol: the last searcher to find work wakes another.
TEST(SleepSet, LastSearcherFindingWorkWakesAnother) {
  sleep_set s(4);
  wake_watchdog dog(s, 10000ms);
  parker a(s, 1);
  parker b(s, 2);
  wait_prepared({&a, &b});
  s.notify_one();
  ASSERT_TRUE(eventually([&] { return count_woken({&a, &b}) == 1; }));
  EXPECT_EQ(s.searching(), 1);
  s.found_work();  // the woken worker found work and was the last searcher
  EXPECT_TRUE(eventually([&] { return count_woken({&a, &b}) == 2; }));
  EXPECT_EQ(s.searching(), 1);
  a.join();
  b.join();
  EXPECT_FALSE(dog.disarm()) << "a parked thread missed its wake-up";
}

TEST(SleepSet, NotifyAllWakesEveryone) {
  sleep_set s(8);
  wake_watchdog dog(s, 10000ms);
  parker a(s, 0);
  parker b(s, 5);
  parker c(s, 7);
  wait_prepared({&a, &b, &c});
  s.start_search();  // notify_all ignores searchers
  s.notify_all();
  EXPECT_TRUE(eventually([&] { return count_woken({&a, &b, &c}) == 3; }));
  a.join();
  b.join();
  c.join();
  EXPECT_EQ(s.searching(), 4);
  EXPECT_FALSE(dog.disarm()) << "a parked thread missed its wake-up";
}

// Slots in every word of the parked bitmap (more than 64 workers).
TEST(SleepSet, WorkersBeyondSixtyFour) {
  sleep_set s(130);
  wake_watchdog dog(s, 10000ms);
  for (const int w : {0, 63, 64, 100, 127, 128, 129}) {
    SCOPED_TRACE("worker " + std::to_string(w));
    s.start_search();
    s.prepare_park(w);
    s.notify_one();
    s.commit_park(w);
    EXPECT_EQ(s.searching(), 1);
    s.stop_search();
  }
  // Two parked in different words: one notify wakes one of them, and the
  // other cancels with its own bit.
  s.start_search();
  s.start_search();
  s.prepare_park(64);
  s.prepare_park(129);
  EXPECT_EQ(s.searching(), 0);
  s.notify_one();
  EXPECT_EQ(s.searching(), 1);
  s.cancel_park(129);
  s.cancel_park(64);
  EXPECT_EQ(s.searching(), 2);
  s.stop_search();
  s.stop_search();
  s.notify_one();
  EXPECT_EQ(s.searching(), 0);
  // And a real thread parked in the last slot.
  parker p(s, 129);
  wait_prepared({&p});
  s.notify_one();
  EXPECT_TRUE(eventually([&] { return p.woken(); }));
  p.join();
  EXPECT_FALSE(dog.disarm()) << "a parked thread missed its wake-up";
}

// One slot parks and is woken over and over: every wake-up is delivered to
// the right park, none is left over for the next one.
TEST(SleepSet, ParkAndWakeRepeatedly) {
  constexpr int rounds = 500;
  sleep_set s(2);
  wake_watchdog dog(s, 20000ms);
  std::atomic<int> parks{0};
  std::thread t([&] {
    s.start_search();
    for (int i = 0; i < rounds; ++i) {
      s.prepare_park(1);
      parks.store(i + 1, std::memory_order_release);
      s.commit_park(1);  // comes back searching
    }
    s.stop_search();
  });
  for (int i = 1; i <= rounds && !dog.fired(); ++i) {
    // Wait until the thread registered its i-th park, then notify: the notify
    // lands before, during or after its commit_park.
    while (parks.load(std::memory_order_acquire) < i && !dog.fired()) std::this_thread::yield();
    while (s.searching() != 0 && !dog.fired()) std::this_thread::yield();
    s.notify_one();
  }
  t.join();
  EXPECT_FALSE(dog.disarm()) << "a parked thread missed its wake-up";
  EXPECT_EQ(s.searching(), 0);
}

}  // namespace

namespace {

// In builds with protocol checks (runtime/assert.hpp): a worker that parks
// twice without waking, and a slot given back that nobody borrowed, stop the
// process with the rule's words.
TEST(SleepSetChecks, BrokenParkingStepsAreCaught) {
  if (!WEFT_ASSERTIONS) GTEST_SKIP() << "protocol checks are compiled out of this build (release)";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        sleep_set s(2);
        s.start_search();
        s.prepare_park(0);
        s.start_search();
        s.prepare_park(0);
      },
      "assertion failed: prepare_park: w is awake");
  EXPECT_DEATH(
      {
        sleep_set s(2);
        s.start_search();
        s.prepare_park(1);
        s.give_back(1, false);
      },
      "assertion failed: give_back: the borrower held w's parked bit");
}

}  // namespace
