// SPDX-License-Identifier: MIT
// weft::rt: a worker's queue of tasks: a private stack in front of a public
// Chase-Lev deque.
// Owns: the private ring and the deque. Touched by: the owner (push, pop,
// pop_if, serve_demand: worker.cpp, join.cpp, task_group.cpp, loop.cpp) and
// thieves (steal, from worker.cpp's steal rounds).
#pragma once

#include <atomic>
#include <cstdint>

#include "assert.hpp"
#include "deque.hpp"
#include "platform.hpp"
#include "weft/detail/job.hpp"

namespace weft::rt {

// The owner's newest tasks live in a private ring that only the owner touches
// (plain loads and stores, no fence); older tasks live in a public Chase-Lev
// deque that thieves steal from. A task moves from private to public
// ("publication") only at the owner's scheduling points:
//   - push() finds the public deque empty: the oldest private task (or the new
//     one, when none is private) is published, so that one task is always
//     available to thieves while the owner has any;
//   - serve_demand() at a poll point, after a thief found the public deque
//     empty and raised the demand flag.
// Invariant: every public task is older than every private task, so thieves
// still take the oldest (largest) work, and a join whose child was stolen
// finds the private part empty. Popping a private task costs no fence; only
// popping a public one pays the deque's seq_cst fence (see
// docs/decisions/0002-split-queue.md).
class job_queue {
 public:
  using job = detail::job;
  static constexpr std::uint32_t k_private_capacity = 256;

  // stealable: false for a runtime of one worker (nothing is ever published,
  // except private overflow, which the owner takes back itself).
  explicit job_queue(bool stealable) : m_stealable(stealable) {}
  job_queue(const job_queue&) = delete;
  job_queue& operator=(const job_queue&) = delete;

  // Owner only. Returns the task that became visible to thieves (t or an
  // older one; the caller then wakes a sleeper if needed), or null. Throws
  // std::bad_alloc only when the public deque must grow and cannot.
  job* push(job* t) {
    if ((!m_stealable || !m_public.looks_empty()) && m_hi - m_lo != k_private_capacity) {
      put_private(t);
      return nullptr;
    }
    return push_slow(t);
  }

  // Owner only: moves t to the public deque (used for injected work, which
  // the owner wants spread at once). Precondition: the private part is empty.
  void push_public(job* t) {
    WEFT_ASSERT(m_hi == m_lo, "push_public: the private part is empty (else t would be stolen before older tasks)");
    m_public.push(t);
  }

  // Owner only. The newest task, or nullptr.
  job* pop() noexcept {
    if (m_hi != m_lo) return m_private[--m_hi % k_private_capacity];
    if (m_public.looks_empty()) return nullptr;  // exact for the owner: top only grows
    return m_public.take();
  }

  // Owner only. Takes t back if it is the newest task; true on success.
  bool pop_if(job* t) noexcept {
    if (m_hi != m_lo) {
      if (m_private[(m_hi - 1) % k_private_capacity] != t) return false;
      --m_hi;
      return true;
    }
    return pop_public_if(t);
  }

  // Owner only: a thief asked for work since the last publication.
  bool has_demand() const noexcept { return m_demand.load(std::memory_order_relaxed); }
  // Owner only: answers a demand by publishing the oldest private task, which
  // it returns; null when nothing was private (the caller may split its own
  // work instead). Clears the demand either way.
  job* serve_demand() {
    m_demand.store(false, std::memory_order_relaxed);
    if (m_lo == m_hi) return nullptr;
    job* t = m_private[m_lo++ % k_private_capacity];
    m_public.push(t);
    return t;
  }

  // Any thread; a hint: tasks in the public part.
  std::int64_t public_size() const noexcept { return m_public.size_hint(); }

  // Owner only: nothing at all to pop.
  bool empty() const noexcept { return m_lo == m_hi && m_public.looks_empty(); }

  // Any thread. Steals the oldest public task; raises the demand flag when
  // there is none, so that the owner publishes at its next scheduling point.
  deque<job*>::steal_result steal() noexcept {
    auto r = m_public.steal();
    if (r.status == deque<job*>::steal_status::empty && !m_demand.load(std::memory_order_relaxed)) {
      m_demand.store(true, std::memory_order_relaxed);
    }
    return r;
  }

  // Any thread; a hint: some public task may be stealable.
  bool public_nonempty() const noexcept { return !m_public.looks_empty(); }

 private:
  void put_private(job* t) noexcept { m_private[m_hi++ % k_private_capacity] = t; }

  // Publication at push (the public part is empty) or private overflow.
  __attribute__((noinline)) job* push_slow(job* t) {
    if (m_stealable && m_public.looks_empty()) {
      job* published = t;
      if (m_lo != m_hi) {  // the oldest private task goes public, t stays private
        published = m_private[m_lo++ % k_private_capacity];
        m_public.push(published);
        put_private(t);
      } else {
        m_public.push(t);
      }
      if (m_demand.load(std::memory_order_relaxed)) m_demand.store(false, std::memory_order_relaxed);
      return published;
    }
    // Full: the oldest private task goes public.
    job* oldest = m_private[m_lo++ % k_private_capacity];
    m_public.push(oldest);
    put_private(t);
    return m_stealable ? oldest : nullptr;
  }

  __attribute__((noinline)) bool pop_public_if(job* t) noexcept {
    if (m_public.looks_empty()) return false;
    job* x = m_public.take();
    if (x == t) return true;
    if (x != nullptr) m_public.push(x);  // not ours: put it back where it was (cannot grow)
    return false;
  }

  // Owner-only part.
  std::uint32_t m_lo = 0;  // oldest private task (counters wrap; the capacity divides 2^32)
  std::uint32_t m_hi = 0;  // one past the newest private task
  const bool m_stealable;
  job* m_private[k_private_capacity];

  deque<job*> m_public;

  // Written by thieves (rarely: only when it is false), read by the owner.
  alignas(k_false_sharing) std::atomic<bool> m_demand{false};
};

}  // namespace weft::rt
