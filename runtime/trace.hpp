// SPDX-License-Identifier: MIT
// weft::rt: the event trace (docs/tracing.md).
// Owns: the trace rings. Touched by: each worker (its own ring), the
// scheduler (writes the file when it stops).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "clock.hpp"

namespace weft::rt {

enum class trace_kind : std::uint32_t {
  run_task,      // a task taken from a queue starts; arg: task; extra: 0 local, 1 injected, 2 + victim stolen
  run_resume,    // a suspended fiber resumes; arg: fiber
  run_end,       // the running task or fiber segment ends (finished, suspended or yielded)
  search_begin,  // no local work: the worker starts looking
  search_end,    // it found work
  park_begin,    // it goes to sleep
  park_end,      // it was woken up
  publish,       // a task became stealable; arg: task; extra: public deque depth after it
};

// One worker's events, newest kept (a ring). Written by its worker only, with
// no lock and no allocation; read by anyone (snapshot()), where an event being
// overwritten meanwhile is dropped, and so is the oldest slot of a full ring
// (the owner may be writing it): it keeps size - 1 events then.
class trace_ring {
 public:
  struct event {
    std::uint64_t m_ticks;
    std::uint64_t m_arg;
    trace_kind m_kind;
    std::uint32_t m_extra;
  };

  explicit trace_ring(std::size_t capacity);

  // Owner only.
  void record(trace_kind kind, std::uint64_t arg = 0, std::uint32_t extra = 0) noexcept {
    const std::uint64_t i = m_next.load(std::memory_order_relaxed);
    // Release fence: the store of m_next = i (the previous record) comes
    // before the overwrite of index i - size below; pairs with the acquire
    // fence in snapshot(), which then sees the overwrite and drops the index.
    // Free on x86 (a compiler barrier).
    std::atomic_thread_fence(std::memory_order_release);
    slot& s = m_slots[i & m_mask];
    s.m_ticks.store(ticks(), std::memory_order_relaxed);
    s.m_arg.store(arg, std::memory_order_relaxed);
    s.m_kind_extra.store(static_cast<std::uint64_t>(kind) << 32 | extra, std::memory_order_relaxed);
    m_next.store(i + 1, std::memory_order_release);  // pairs with the acquire in snapshot()
  }

  // Any thread: the events kept, oldest first.
  std::vector<event> snapshot() const;

 private:
  struct slot {
    std::atomic<std::uint64_t> m_ticks{0};
    std::atomic<std::uint64_t> m_arg{0};
    std::atomic<std::uint64_t> m_kind_extra{0};
  };
  std::unique_ptr<slot[]> m_slots;
  std::uint64_t m_mask;
  std::atomic<std::uint64_t> m_next{0};
};

// Writes the events of every worker (index = worker) as Chrome trace-event
// JSON: one track per worker, a complete slice per task run / fiber run
// segment / search / park, flow arrows from a publication to the run of the
// task a thief stole, and a counter track of the public deque depth. Times in
// microseconds from `origin`. Throws std::system_error if the file cannot be
// written.
void write_chrome_trace(const std::string& path, const std::vector<std::vector<trace_ring::event>>& workers,
                        std::uint64_t origin);

// fork(): the atfork handlers (scheduler.cpp) hold the lock of trace writes
// across the fork, so that a child forked while another thread writes a
// trace can write its own.
void lock_trace_writes_for_fork() noexcept;
void unlock_trace_writes_after_fork() noexcept;

}  // namespace weft::rt
