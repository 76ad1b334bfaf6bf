// SPDX-License-Identifier: MIT
// weft::rt: notifying and blocking waiters (detail::waiter).
// Owns: nothing. Used by sync.cpp and join.cpp (notify, block).
#pragma once

#include <atomic>
#include <cstdint>

#include "fiber.hpp"
#include "futex.hpp"
#include "suspend.hpp"
#include "weft/detail/waiter.hpp"

namespace weft::rt {

using waiter = detail::waiter;

// Resumes whoever waits. Any thread. The waiter may be gone as soon as this
// returns (its fields are read before the resumption).
inline void notify(waiter& w) noexcept {
  if (w.m_fiber != nullptr) {
    make_ready(static_cast<fiber*>(w.m_fiber));
    return;
  }
  if (w.m_job != nullptr) {
    make_runnable(w.m_job, w.m_runtime);
    return;
  }
  w.m_flag.store(1, std::memory_order_release);  // pairs with the acquire in block()
  futex_wake(w.m_flag, 1);                       // may touch the waiter's stack after it left: harmless for futex
}

// The waiting thread (a thread waiter): returns once notify() ran, without
// spinning.
inline void block(waiter& w) noexcept {
  while (w.m_flag.load(std::memory_order_acquire) == 0) futex_wait(w.m_flag, 0);
}

}  // namespace weft::rt
