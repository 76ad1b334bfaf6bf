// weft::rt: whoever waits for a join or a synchronisation object.
#pragma once

#include <atomic>
#include <cstdint>

#include "fiber.hpp"
#include "futex.hpp"
#include "worker.hpp"

namespace weft::rt {

// A waiting party: a suspended fiber (resumed with make_ready) or a thread
// outside the runtime, blocked on a futex. Lives on the waiter's stack.
struct waiter {
  fiber* m_fiber = nullptr;
  std::atomic<std::uint32_t> m_flag{0};  // threads only: 1 once notified

  // Any thread. The waiter may be gone as soon as this returns.
  void notify() noexcept {
    if (m_fiber != nullptr) {
      make_ready(m_fiber);
      return;
    }
    m_flag.store(1, std::memory_order_release);  // pairs with the acquire in block()
    futex_wake(m_flag, 1);  // may touch the waiter's stack after it left: harmless for futex
  }

  // The waiting thread: returns once notify() ran. Without spinning.
  void block() noexcept {
    while (m_flag.load(std::memory_order_acquire) == 0) futex_wait(m_flag, 0);
  }
};

}  // namespace weft::rt
