// SPDX-License-Identifier: MIT
// weft::rt: the waiting side of weft::latch's state word, counter << 2 |
// broken | guard (docs/protocols/sync.md, latch).
// Owns: nothing (the word is the latch's). Used by sync.cpp; its unit test
// (tests/unit/latch_word_test.cpp) drives it directly.
#pragma once

#include <atomic>
#include <cstdint>

#include "platform.hpp"

namespace weft::rt::latch_word {

inline constexpr std::uintptr_t k_guard = 1;   // the wait queue is being changed
inline constexpr std::uintptr_t k_broken = 2;  // a waiter could not get a fiber
inline constexpr int k_shift = 2;              // the counter's place

// A waiter about to queue: takes the guard while the counter is not zero,
// in the same CAS, and returns true with `word` the value it left (guard
// set); returns false, taking nothing, once the latch is open (counter zero,
// guard free). Never takes the guard of an open latch, where try_wait()
// would read it as an opener not yet done. Waits while another holds the
// guard: a waiter queueing, or the opener finishing its count_down().
// Acquire: pairs with the release that cleared the guard or opened the latch.
inline bool guard_unless_open(std::atomic<std::uintptr_t>& state, std::uintptr_t& word) noexcept {
  std::uintptr_t s = state.load(std::memory_order_acquire);
  for (unsigned spins = 0;; ++spins) {
    if ((s & k_guard) == 0) {
      if ((s >> k_shift) == 0) return false;
      if (state.compare_exchange_weak(s, s | k_guard, std::memory_order_acquire, std::memory_order_acquire)) {
        word = s | k_guard;
        return true;
      }
      continue;
    }
    spin_backoff(spins);
    s = state.load(std::memory_order_acquire);
  }
}

}  // namespace weft::rt::latch_word
