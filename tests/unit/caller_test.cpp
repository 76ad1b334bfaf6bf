// SPDX-License-Identifier: MIT
// Unit tests of runtime/caller.cpp, a thread from outside that takes part in
// its own call: what the scheduler counts while such a call waits for a slot,
// and the limits of the stack the calling thread lends its call.
#include <gtest/gtest.h>

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>

#include "caller.hpp"
#include "runtime_access.hpp"
#include "scheduler.hpp"
#include "watchdog.hpp"
#include "weft/weft.hpp"
#include "worker.hpp"

namespace {

using weft::detail::runtime_access;

// A call from outside that waits for a slot (the only one is lent to
// another thread's call) is in flight: the runtime counts it as a root, as
// the destructor's wait requires ("the destructor waits for work in flight,
// calls from other threads"). It used to be counted only once it had a slot
// or was handed over, so that a runtime destroyed meanwhile stopped its
// workers under it (a worker then slept for good in its park, or two threads
// used one slot).
TEST(CallerSlots, ACallWaitingForASlotIsInFlight) {
  weft::runtime rt(weft::config{.workers = 1});
  weft::rt::scheduler& s = runtime_access::scheduler_of(rt);
  int seen = 0;
  // A call waits for a slot for 200 µs at most before it is handed over:
  // rounds until that wait was seen a few times.
  for (int round = 0; round < 200 && seen < 3; ++round) {
    std::atomic<bool> inside{false};
    std::atomic<bool> release{false};
    std::thread holder([&] {
      rt.run([&] {
        inside.store(true);
        while (!release.load()) std::this_thread::yield();
      });
    });
    while (!inside.load()) std::this_thread::yield();
    std::atomic<bool> ran{false};
    std::thread caller([&] { rt.run([&] { ran.store(true); }); });
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
    while (std::chrono::steady_clock::now() < give_up) {
      // seq_cst: the waiter counted its call before it said that it waits.
      if (s.m_slot_waiters.load(std::memory_order_seq_cst) > 0) {
        EXPECT_GE(s.roots_in_flight(), 2) << "round " << round << ": the waiting call is not counted";
        ++seen;
        break;
      }
    }
    release.store(true);
    holder.join();
    caller.join();
    EXPECT_TRUE(ran.load()) << "round " << round;
    EXPECT_EQ(s.roots_in_flight(), 0) << "round " << round;
  }
  EXPECT_GE(seen, 1) << "no call was seen waiting for a slot in 200 rounds";
}

// The same from the destructor's side: a runtime destroyed while a call
// waits for its slot waits for that call, which then runs. Before, the
// destructor's wait ended with the call that held the slot, and the waiting
// call went on in a runtime that stopped under it (a hang in the
// destructor, or, in debug builds, a wake-up of a worker that was not
// parked).
TEST(CallerSlots, TheDestructorWaitsForACallWaitingForASlot) {
  for (int round = 0; round < 50; ++round) {
    auto rt = std::make_unique<weft::runtime>(weft::config{.workers = 1});
    weft::runtime* const r = rt.get();  // the threads' calls read no unique_ptr that the destroyer resets
    weft::rt::scheduler& s = runtime_access::scheduler_of(*r);
    std::atomic<bool> inside{false};
    std::atomic<bool> release{false};
    std::atomic<int> ran{0};
    std::thread holder([&] {
      r->run([&] {
        inside.store(true);
        while (!release.load()) std::this_thread::yield();
        ran.fetch_add(1);
      });
    });
    while (!inside.load()) std::this_thread::yield();
    std::thread caller([&] { r->run([&] { ran.fetch_add(1); }); });
    // The second call is in run(): waiting for the slot, or handed over
    // after 200 µs; either way in flight.
    while (s.m_slot_waiters.load(std::memory_order_seq_cst) == 0 && s.roots_in_flight() < 2) {
      std::this_thread::yield();
    }
    std::thread destroyer([&] { rt.reset(); });  // waits for both calls
    release.store(true);
    destroyer.join();
    holder.join();
    caller.join();
    EXPECT_EQ(ran.load(), 2) << "round " << round;
  }
}

// The calling thread's own stack, which runs its call when no fiber can be
// had (run_on_fresh_stack), counts as nearly full near its low end, as a
// fiber's does: a join there then starts no more tasks on it. It had no
// limit (0: never low), and joins without a fiber nested the tasks they
// stole on the caller's stack until it overflowed.
TEST(CallerSlots, TheCallersOwnStackHasALimitNearItsEnd) {
  weft::runtime rt(weft::config{.workers = 1});
  constexpr std::size_t k_size = std::size_t{1} << 20;
  struct seen_t {
    weft::runtime* rt;
    std::uintptr_t low = 0;
    std::uintptr_t stack_limit = 0;
    std::uintptr_t real_limit = 0;
    bool lent = false;
  } seen{&rt};
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, k_size), 0);
  pthread_t thread;
  const auto body = [](void* p) -> void* {
    auto& s = *static_cast<seen_t*>(p);
    pthread_attr_t own;
    if (pthread_getattr_np(pthread_self(), &own) == 0) {
      void* low = nullptr;
      std::size_t size = 0;
      if (pthread_attr_getstack(&own, &low, &size) == 0) s.low = reinterpret_cast<std::uintptr_t>(low);
      pthread_attr_destroy(&own);
    }
    // A call is handed over when no worker parks in time (a loaded
    // machine): again, until one takes part on a lent slot.
    for (int attempt = 0; attempt < 1000 && !s.lent; ++attempt) {
      s.rt->run([&s] {
        const weft::rt::worker* w = weft::rt::current_worker();
        if (w == nullptr || w->m_caller == nullptr) return;  // handed over: no slot was lent
        s.lent = true;
        s.stack_limit = w->m_caller->m_native.m_stack_limit;
        s.real_limit = w->m_caller->m_native.m_real_limit;
      });
    }
    return nullptr;
  };
  ASSERT_EQ(pthread_create(&thread, &attr, body, &seen), 0);
  pthread_attr_destroy(&attr);
  ASSERT_EQ(pthread_join(thread, nullptr), 0);
  ASSERT_NE(seen.low, 0u);
  ASSERT_TRUE(seen.lent) << "1000 calls were handed over (no parked worker in time)";
  EXPECT_EQ(seen.stack_limit, seen.real_limit);
  EXPECT_EQ(seen.real_limit, seen.low + 64 * 1024) << "the reserve of a fiber: a quarter, at most 64 KiB";
}

}  // namespace
