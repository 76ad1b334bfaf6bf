// SPDX-License-Identifier: MIT
// weft::rt: the queue through which threads that are not workers hand tasks to
// a runtime.
// Owns: the tasks injected and not yet taken. Touched by: any thread
// (push, through scheduler::inject), workers (take_all, worker.cpp).
#pragma once

#include <atomic>

#include "platform.hpp"
#include "weft/detail/job.hpp"

namespace weft::rt {

// A lock-free multi-producer queue (a Treiber stack drained whole). Producers:
// any thread. Consumers: workers, each taking everything at once (no ABA: the
// consumer never pops single nodes). Not on the spawn path: only calls from
// outside a runtime, and resumptions of fibers by outside threads, come here.
class injection_queue {
 public:
  using job = detail::job;

  // Any thread. t->m_next belongs to the queue until t is taken.
  void push(job* t) noexcept {
    job* head = m_head.load(std::memory_order_relaxed);
    do {
      t->m_next = head;
    } while (!m_head.compare_exchange_weak(head, t, std::memory_order_release,  // pairs with take_all()
                                           std::memory_order_relaxed));
  }

  // Any thread. Everything pushed so far, oldest first, linked by m_next; or
  // nullptr.
  job* take_all() noexcept {
    if (m_head.load(std::memory_order_relaxed) == nullptr) return nullptr;
    job* t = m_head.exchange(nullptr, std::memory_order_acquire);  // pairs with push()
    job* fifo = nullptr;
    while (t != nullptr) {
      job* next = t->m_next;
      t->m_next = fifo;
      fifo = t;
      t = next;
    }
    return fifo;
  }

  bool looks_empty() const noexcept { return m_head.load(std::memory_order_relaxed) == nullptr; }

 private:
  alignas(k_false_sharing) std::atomic<job*> m_head{nullptr};
};

}  // namespace weft::rt
