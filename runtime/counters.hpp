// SPDX-License-Identifier: MIT
// weft::rt: a worker's counters and the time it spends busy, searching and
// parked.
// Owns: one worker's counters. Touched by: the worker's owner (bumps, any
// part running on it, a borrowing caller among them); read and reset by any
// thread (runtime::stats and reset_stats, runtime.cpp).
#pragma once

#include <atomic>
#include <cstdint>

#include "clock.hpp"
#include "platform.hpp"
#include "weft/stats.hpp"

#ifndef WEFT_INSTRUMENTATION
#define WEFT_INSTRUMENTATION 1
#endif

namespace weft::rt {

// False in a build configured with -Dinstrumentation=false: counters, time
// accounting and tracing are compiled out.
inline constexpr bool k_instrumented = WEFT_INSTRUMENTATION != 0;

// What a worker is doing, for time accounting.
enum class activity : std::uint32_t { busy = 0, searching = 1, parked = 2 };

// Counters of one worker. Written by the owner only, as a relaxed load and
// store (a plain add, no locked instruction); read by anyone.
struct counters {
  std::atomic<std::uint64_t> tasks_run{0};
  std::atomic<std::uint64_t> spawns{0};
  std::atomic<std::uint64_t> steals{0};
  std::atomic<std::uint64_t> failed_steals{0};
  std::atomic<std::uint64_t> suspensions{0};
  std::atomic<std::uint64_t> fiber_switches{0};
  std::atomic<std::uint64_t> fibers_created{0};
  std::atomic<std::uint64_t> parks{0};
  std::atomic<std::uint64_t> injected{0};
  std::atomic<std::uint64_t> lent{0};
  std::atomic<std::uint64_t> steal_attempts{0};
  std::atomic<std::uint64_t> fibers_reused{0};
  std::atomic<std::uint64_t> wakeups{0};
  std::atomic<std::uint64_t> ticks[3] = {0, 0, 0};  // per activity, finished intervals
  std::atomic<std::uint32_t> current{0};            // activity now (an activity value)
  std::atomic<std::uint64_t> since{0};              // ticks when it began
  // A sequence lock over ticks, current and since, for snapshot(): odd while
  // enter() ends an interval (two plain stores for the owner). Without it a
  // snapshot could read the finished intervals before the owner added one
  // and the activity after, and lose that interval (a worker's time went
  // back by milliseconds). What is left (a snapshot's clock read a little
  // after the owner's, as the interval ended) runtime::stats() clamps.
  std::atomic<std::uint32_t> time_sequence{0};

  static void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
    if constexpr (k_instrumented) c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  // The same, for an outcome counter (steals, failed_steals) whose event was
  // counted before in another counter (steal_attempts): release, paired with
  // the acquire in snapshot(), so that a snapshot never shows more outcomes
  // than attempts (while no reset_stats() runs: a reset meanwhile zeroes
  // the counters one by one). A plain store on x86.
  static void bump_outcome(std::atomic<std::uint64_t>& c) noexcept {
    if constexpr (k_instrumented) c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }

  // Owner: the worker now does `a`; the interval of the previous activity ends.
  void enter(activity a) noexcept {
    if constexpr (k_instrumented) {
      const std::uint32_t sequence = time_sequence.load(std::memory_order_relaxed);
      time_sequence.store(sequence + 1, std::memory_order_relaxed);
      // The odd value before the stores below, for a snapshot that reads one
      // of them (pairs with its acquire fence; no instruction on x86).
      std::atomic_thread_fence(std::memory_order_release);
      const std::uint64_t now = rt::ticks();
      const std::uint32_t was = current.load(std::memory_order_relaxed);
      // A reset() from another thread may have moved `since` past `now`:
      // then the interval counts nothing (as in snapshot()), never a wrapped
      // length.
      const std::uint64_t began = since.load(std::memory_order_relaxed);
      if (now > began) bump(ticks[was], now - began);
      current.store(static_cast<std::uint32_t>(a), std::memory_order_relaxed);
      since.store(now, std::memory_order_relaxed);
      time_sequence.store(sequence + 2, std::memory_order_release);  // pairs with snapshot()'s acquire
    }
  }

  worker_stats snapshot() const noexcept;
  void reset() noexcept;
};

}  // namespace weft::rt
