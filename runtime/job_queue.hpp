// SPDX-License-Identifier: MIT
// weft::rt: a worker's queue of tasks: a private stack in front of a public
// Chase-Lev deque.
// Owns: the private ring and the deque. Touched by: the owner (push, pop,
// pop_if, serve_demand, take_newest_such for a join on a full stack, and
// publish_all_private / publish_oldest_private through
// worker::give_away_private / give_away_oldest: worker.cpp, join.cpp,
// task_group.cpp, loop.cpp, sync.cpp) and
// thieves (steal, from worker.cpp's steal rounds).
#pragma once

#include <atomic>
#include <cstdint>
#include <new>

#include "assert.hpp"
#include "deque.hpp"
#include "platform.hpp"
#include "weft/detail/job.hpp"
#include "weft/detail/worker_view.hpp"

namespace weft::rt {

// The owner's newest tasks live in a private ring that only the owner touches
// (plain loads and stores, no fence): detail::job_ring, kept in the worker's
// view so that the public templates push and pop it inline (entry.hpp) when
// no publication is due; older tasks live in a public Chase-Lev
// deque that thieves steal from. A task moves from private to public
// ("publication") only at the owner's scheduling points:
//   - push() finds the public deque empty: the oldest private task (or the new
//     one, when none is private) is published, so that one task is always
//     available to thieves while the owner has any;
//   - serve_demand() at a poll point, after a thief found the public deque
//     empty and raised the demand flag;
//   - publish_all_private(): every private task, for a join that may start
//     none of them, and after the push of a loop's piece that is to be
//     shared at once (a spread loop, a capped loop's runners, a reduction's
//     eager pieces), or of a waiter that a mutex, condition variable, latch
//     or barrier woke (worker::give_away_private);
//   - publish_oldest_private(): the oldest ones, as many as workers look for
//     work, before a wait that would run its owner's spawns one after
//     another (detail::offer_spawns).
// Invariant: every public task is older than every private task, so thieves
// still take the oldest (largest) work, and a join whose child was stolen
// finds the private part empty. Popping a private task costs no fence; only
// popping a public one pays the deque's seq_cst fence (see
// docs/decisions/0002-split-queue.md).
class job_queue {
 public:
  using job = detail::job;
  static constexpr std::uint32_t k_private_capacity = detail::job_ring::k_capacity;

  // stealable: false for a runtime of one worker (nothing is ever published,
  // except private overflow, which the owner takes back itself). ring: the
  // private part, which outlives the queue; its view of the public deque is
  // set here (constants that never read empty when not stealable, so that the
  // inline push never publishes).
  job_queue(bool stealable, detail::job_ring& ring) : m_stealable(stealable), m_ring(ring) {
    m_ring.m_public = stealable ? &m_public.ends() : &k_never_empty;
    if (stealable) m_ring.m_demand = &m_demand;
  }
  job_queue(const job_queue&) = delete;
  job_queue& operator=(const job_queue&) = delete;

  // Owner only. Returns the task that became visible to thieves (t or an
  // older one; the caller then wakes a sleeper if needed), or null. Throws
  // std::bad_alloc only when the public deque must grow and cannot; the queue
  // is then as it was (t is not in it, every other task still is).
  job* push(job* t) {
    if ((!m_stealable || !m_public.looks_empty()) && !m_ring.full()) {
      put_private(t);
      return nullptr;
    }
    return push_slow(t);
  }

  // Owner only: moves t to the public deque (used for injected work, which
  // the owner wants spread at once). Precondition: the private part is empty.
  void push_public(job* t) {
    WEFT_ASSERT(m_ring.empty(), "push_public: the private part is empty (else t would be stolen before older tasks)");
    m_public.push(t);
  }

  // Owner only. The newest task, or nullptr.
  job* pop() noexcept {
    if (!m_ring.empty()) return m_ring.m_slots[--m_ring.m_hi % k_private_capacity];
    if (m_public.looks_empty()) return nullptr;  // exact for the owner: top only grows
    return m_public.take();
  }

  // Owner only. Takes t back if it is the newest task; true on success.
  bool pop_if(job* t) noexcept {
    if (!m_ring.empty()) {
      if (m_ring.newest() != t) return false;
      --m_ring.m_hi;
      return true;
    }
    return pop_public_if(t);
  }

  // Owner only: takes the newest task for which wanted(t) holds, from the
  // private part or the public one, or returns nullptr; the other tasks keep
  // their order. Public tasks that are newer than the one taken leave the
  // deque for the time of the search (a thief does not see them then) and go
  // back where they were: the deque held them, so it need not grow. Sets
  // held_aside when some did: a thief that found the deque empty meanwhile
  // may have parked, so the caller wakes a sleeper (the re-check of a park
  // cannot see tasks put back after it). For a worker that may start no task
  // (join.cpp, wait_without_fiber); costs a pass over the queue.
  template <class Wanted>
  job* take_newest_such(Wanted wanted, bool& held_aside) noexcept {
    held_aside = false;
    for (std::uint32_t i = m_ring.m_hi; i != m_ring.m_lo; --i) {
      job* t = m_ring.m_slots[(i - 1) % k_private_capacity];
      if (!wanted(t)) continue;
      for (std::uint32_t j = i; j != m_ring.m_hi; ++j) {  // the newer ones move down one slot
        m_ring.m_slots[(j - 1) % k_private_capacity] = m_ring.m_slots[j % k_private_capacity];
      }
      --m_ring.m_hi;
      return t;
    }
    if (m_public.looks_empty()) return nullptr;
    constexpr int k_looked_at = 64;  // a bound on the tasks held aside
    job* aside[k_looked_at];
    int n = 0;
    job* found = nullptr;
    while (n < k_looked_at) {
      job* t = m_public.take();
      if (t == nullptr) break;
      if (wanted(t)) {
        found = t;
        break;
      }
      aside[n++] = t;
    }
    held_aside = n > 0;
    while (n > 0) m_public.push_back_taken(aside[--n]);
    return found;
  }

  // Owner only: publishes the `most` oldest private tasks (all of them when
  // fewer), oldest first, calling published(t) for each (noexcept). Returns
  // how many; stops early when the public deque cannot grow (the rest stay
  // private).
  template <class Published>
  std::uint32_t publish_oldest_private(std::uint32_t most, Published&& published) noexcept {
    if (!m_stealable) return 0;
    std::uint32_t n = 0;
    try {
      for (; n < most && !m_ring.empty(); ++n) {
        job* t = oldest_private();
        publish_oldest_private();
        published(t);
      }
    } catch (const std::bad_alloc&) {
      // no memory to grow the deque: the rest stay private
    }
    if (n != 0 && m_demand.load(std::memory_order_relaxed)) m_demand.store(false, std::memory_order_relaxed);
    return n;
  }
  // Owner only: every private task, the same way.
  template <class Published>
  std::uint32_t publish_all_private(Published&& published) noexcept {
    return publish_oldest_private(k_private_capacity, published);
  }
  std::uint32_t publish_all_private() noexcept {
    return publish_all_private([](job*) noexcept {});
  }

  // Owner only: no private task (nothing that serve_demand() could publish).
  bool private_empty() const noexcept { return m_ring.empty(); }
  // Owner only: how many private tasks.
  std::uint32_t private_size() const noexcept { return m_ring.m_hi - m_ring.m_lo; }
  // Owner only: a count that changes whenever a task goes into the private
  // part and only then, as long as nothing is popped (compare two readings
  // with no pop between them).
  std::uint32_t private_puts() const noexcept { return m_ring.m_hi; }

  // Owner only: a thief asked for work since the last publication.
  bool has_demand() const noexcept { return m_demand.load(std::memory_order_relaxed); }
  // Owner only: answers a demand by publishing the oldest private task, which
  // it returns; null when nothing was private (the caller may split its own
  // work instead). Clears the demand either way. Throws std::bad_alloc when
  // the public deque must grow and cannot: the task stays private.
  job* serve_demand() {
    m_demand.store(false, std::memory_order_relaxed);
    if (m_ring.empty()) return nullptr;
    job* t = oldest_private();
    publish_oldest_private();
    return t;
  }

  // Any thread; a hint: tasks in the public part.
  std::int64_t public_size() const noexcept { return m_public.size_hint(); }

  // Owner only: nothing at all to pop.
  bool empty() const noexcept { return m_ring.empty() && m_public.looks_empty(); }

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

  // Any thread: true when a public task may be stealable; else raises the
  // demand flag, as a failed steal does, so that the owner publishes at its
  // next scheduling point.
  bool public_nonempty_or_ask() noexcept {
    if (!m_public.looks_empty()) return true;
    if (!m_demand.load(std::memory_order_relaxed)) m_demand.store(true, std::memory_order_relaxed);
    return false;
  }

 private:
  void put_private(job* t) noexcept { m_ring.put(t); }
  job* oldest_private() const noexcept { return m_ring.m_slots[m_ring.m_lo % k_private_capacity]; }
  // Moves the oldest private task to the public deque. It leaves the ring
  // only once the push succeeded (only the owner reads the ring, so a thief
  // may take it from the deque meanwhile): when the deque cannot grow, the
  // push throws std::bad_alloc and the task stays private, never lost.
  void publish_oldest_private() {
    m_public.push(oldest_private());
    ++m_ring.m_lo;
  }

  // Publication at push (the public part is empty) or private overflow.
  __attribute__((noinline)) job* push_slow(job* t) {
    if (m_stealable && m_public.looks_empty()) {
      job* published = t;
      if (!m_ring.empty()) {  // the oldest private task goes public, t stays private
        published = oldest_private();
        publish_oldest_private();
        put_private(t);
      } else {
        m_public.push(t);
      }
      if (m_demand.load(std::memory_order_relaxed)) m_demand.store(false, std::memory_order_relaxed);
      return published;
    }
    // Full: the oldest private task goes public.
    job* oldest = oldest_private();
    publish_oldest_private();
    put_private(t);
    return m_stealable ? oldest : nullptr;
  }

  __attribute__((noinline)) bool pop_public_if(job* t) noexcept {
    if (m_public.looks_empty()) return false;
    job* x = m_public.take();
    if (x == t) return true;
    if (x != nullptr) m_public.push_back_taken(x);  // not ours: put it back where it was
    return false;
  }

  // What the ring reads of the public deque when nobody steals: never empty.
  static inline constinit const detail::deque_ends k_never_empty{0, 1};

  // Owner-only part.
  const bool m_stealable;
  detail::job_ring& m_ring;

  deque<job*> m_public;

  // Written by thieves (rarely: only when it is false), read by the owner.
  alignas(k_false_sharing) std::atomic<bool> m_demand{false};
};

}  // namespace weft::rt
