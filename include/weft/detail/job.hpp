// SPDX-License-Identifier: MIT
// weft: jobs (the descriptors of queued tasks) and join frames, the plumbing
// shared by the public templates and the compiled runtime.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>

namespace weft::detail {

struct job;

// Runs a job that a worker took from a queue: one that its spawner did not
// pop back. Never throws: a job captures its exceptions where its spawner
// will find them.
using job_fn = void (*)(job* self) noexcept;

// A job is what the queues hold: the descriptor of one task (a join's second
// half, a task_group spawn, a loop's upper half, a coroutine's resumption).
// Named apart from weft::task<T>, the coroutine type. It is a function
// pointer and a link, never a fiber and never a heap object of the runtime: it
// lives in the frame of its spawner (or in memory the spawner owns) and
// outlives its execution because the spawner joins it before that memory goes
// away.
struct job {
  job_fn m_execute = nullptr;
  job* m_next = nullptr;  // link while in an injection queue; owned by the queue
};

// std::bad_exception as an exception_ptr: what a frame records for an
// exception it cannot hold. Out of line and cold: never on a spawn's path.
[[gnu::noinline, gnu::cold]] inline std::exception_ptr bad_exception_ptr() noexcept {
  return std::make_exception_ptr(std::bad_exception());
}

// In a handler: the exception being handled, or std::bad_exception when
// std::current_exception() cannot hold it (another language's, raised
// through the unwinder), so that a failure is never stored as a null
// exception_ptr and dropped.
inline std::exception_ptr current_exception_or_bad() noexcept {
  std::exception_ptr e = std::current_exception();
  return e ? e : bad_exception_ptr();
}

// The counter of a join frame (docs/protocols/join.md).
//
// Protocol: children the parent popped back and ran itself are never
// counted. A child taken by another worker or fiber decrements m_pending when
// it finishes (complete()). A child spawned by someone other than the waiting
// parent ("counted") increments m_pending before it becomes visible. The
// parent, at its join, adds the number of its uncounted children it could not
// pop back plus k_waiting; whoever brings the counter to exactly k_waiting
// (the parent's add or the last completion) owns the resumption of the
// parent. So a join whose children were all popped back performs no atomic
// read-modify-write.
struct join_counter {
  static constexpr std::int64_t k_waiting = std::int64_t{1} << 62;
  // An open frame's wait is complete and one party owns its resumption
  // (docs/protocols/join.md, "Open frames").
  static constexpr std::int64_t k_claimed = std::int64_t{1} << 61;
  // In a task_group's counter (an open frame), the parity of its rounds:
  // flipped by each wait that ends a round (docs/protocols/join.md, "Open
  // frames"). Other frames never set it. The rest of the counter stays
  // within 2^58 of 0, of k_claimed or of k_waiting, so the bit reads back
  // unambiguously (round_bit()).
  static constexpr std::int64_t k_round = std::int64_t{1} << 59;

  std::atomic<std::int64_t> m_pending{0};
  void* m_waiter;  // who to resume; written by the parent before its add (never read before)

  // k_round when v, a value of an open frame's counter, has its round bit
  // set, else 0; v - round_bit(v) is the count without it.
  static constexpr std::int64_t round_bit(std::int64_t v) noexcept {
    return ((v + (k_round >> 1)) >> 59 & 1) != 0 ? k_round : 0;
  }
  // What to add to v to flip its round bit.
  static constexpr std::int64_t round_flip(std::int64_t v) noexcept { return round_bit(v) != 0 ? -k_round : k_round; }
};

// A join frame: its counter and its first exception.
struct join_frame : join_counter {
  std::atomic<bool> m_failed{false};
  std::exception_ptr m_error;

  // Records e if it is the first exception of this frame. Any thread. A null
  // e (an exception of another language, which std::current_exception()
  // cannot hold) is recorded as std::bad_exception: the failure is never
  // dropped.
  void capture(std::exception_ptr e) noexcept {
    // acq_rel: one winner; the parent reads m_error only after the join, which
    // every capture happens-before (via m_pending or program order).
    if (!m_failed.exchange(true, std::memory_order_acq_rel)) {
      m_error = e ? std::move(e) : bad_exception_ptr();
    }
  }
  bool failed() const noexcept { return m_failed.load(std::memory_order_relaxed); }
  void rethrow_if_failed() {
    if (m_failed.load(std::memory_order_acquire) && m_error) std::rethrow_exception(m_error);
  }
};

}  // namespace weft::detail
