// SPDX-License-Identifier: MIT
// The waiting side of weft::latch's state word (runtime/latch_word.hpp): a
// waiter takes the guard only while the counter is not zero, so the guard of
// an open latch is its opener's alone. (A waiter that took it on an open
// latch, as the plain guard acquisition did, made try_wait() false for a
// party whose wait() had returned: seen 2 times in 15 000 rounds of a loop
// whose items met at a latch, on a loaded machine.)
#include "latch_word.hpp"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <new>
#include <thread>

#include "watchdog.hpp"

namespace {

using namespace weft::rt::latch_word;

constexpr std::uintptr_t counter(std::uintptr_t c) { return c << k_shift; }

// Not even for a moment: the word lies in a read-only page, where taking the
// guard (and letting go of it at once, as the plain acquisition did) faults.
TEST(LatchWordTest, AnOpenLatchIsNeverGuardedByAWaiter) {
  const auto page_size = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  for (std::uintptr_t open : {std::uintptr_t{0}, k_broken}) {
    void* page = mmap(nullptr, page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(page, MAP_FAILED);
    auto* state = new (page) std::atomic<std::uintptr_t>{open};
    ASSERT_EQ(mprotect(page, page_size, PROT_READ), 0);
    std::uintptr_t word = 12345;
    EXPECT_FALSE(guard_unless_open(*state, word));
    EXPECT_EQ(state->load(), open);
    EXPECT_EQ(word, 12345u);
    munmap(page, page_size);
  }
}

TEST(LatchWordTest, AClosedLatchIsGuardedInOneStep) {
  for (std::uintptr_t closed : {counter(1), counter(7) | k_broken}) {
    std::atomic<std::uintptr_t> state{closed};
    std::uintptr_t word = 0;
    ASSERT_TRUE(guard_unless_open(state, word));
    EXPECT_EQ(word, closed | k_guard);
    EXPECT_EQ(state.load(), closed | k_guard);
  }
}

// The guard held by the opener (counter zero, the queue being taken): the
// waiter waits until it lets go, then finds the latch open and takes nothing.
TEST(LatchWordTest, AWaiterWaitsForTheOpenerToLetGo) {
  std::atomic<std::uintptr_t> state{k_guard};
  std::atomic<bool> returned{false};
  std::atomic<bool> started{false};
  std::thread waiter([&] {
    started.store(true);
    std::uintptr_t word = 0;
    EXPECT_FALSE(guard_unless_open(state, word));
    returned.store(true);
  });
  while (!started.load()) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(returned.load());  // the opener still holds the guard
  state.store(0, std::memory_order_release);
  waiter.join();
  EXPECT_TRUE(returned.load());
  EXPECT_EQ(state.load(), 0u);
}

// The guard held by another waiter queueing on a closed latch: taken once
// that waiter lets go; a decrement meanwhile (which keeps the guard) is seen.
TEST(LatchWordTest, AWaiterTakesTheGuardAfterAnotherWaiter) {
  std::atomic<std::uintptr_t> state{counter(2) | k_guard};
  std::uintptr_t word = 0;
  std::atomic<bool> started{false};
  std::thread waiter([&] {
    started.store(true);
    EXPECT_TRUE(guard_unless_open(state, word));
  });
  while (!started.load()) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // it spins on the held guard meanwhile
  state.fetch_sub(counter(1));                                 // a count_down that leaves 1: keeps the guard
  state.fetch_and(~k_guard);                                   // the other waiter lets go
  waiter.join();
  EXPECT_EQ(word, counter(1) | k_guard);
  EXPECT_EQ(state.load(), counter(1) | k_guard);
}

}  // namespace
