// SPDX-License-Identifier: MIT
// weft: a party waiting for a join or a synchronisation object. Plumbing for
// the public templates (coroutine awaiters embed one).
#pragma once

#include <atomic>
#include <cstdint>

#include "weft/detail/job.hpp"

namespace weft::detail {

struct runtime_state;

// Exactly one kind of waiter: a suspended fiber (m_fiber), a task to make
// runnable in runtime m_runtime (a coroutine's resumption: m_job), or a
// thread outside any runtime blocked on the futex word m_flag. It lives with
// the waiter (its stack or coroutine frame) until it is notified. (A
// coroutine's node woken by a mutex carries other values in m_fiber and
// m_next while it is out of every queue: runtime/sync.cpp, parked_retry.)
struct waiter {
  void* m_fiber = nullptr;
  job* m_job = nullptr;
  runtime_state* m_runtime = nullptr;
  std::atomic<std::uint32_t> m_flag{0};
};

// A waiter in a wait queue (mutex, condition variable, latch).
struct wait_node {
  waiter m_waiter;
  wait_node* m_next = nullptr;
};

}  // namespace weft::detail
