// SPDX-License-Identifier: MIT
// weft::rt: reading and resetting a worker's counters (any thread).
#include "counters.hpp"

#include <atomic>
#include <cstdint>
#include <thread>

namespace weft::rt {

namespace {

__extension__ using u128 = unsigned __int128;

// t ticks in nanoseconds, without overflow (t * 1000 overflows 64 bits after
// about 71 days at 3 GHz); saturates at UINT64_MAX.
std::uint64_t ticks_to_ns(std::uint64_t t, std::uint64_t per_us) noexcept {
  const u128 ns = static_cast<u128>(t) * 1000 / per_us;
  return ns > UINT64_MAX ? UINT64_MAX : static_cast<std::uint64_t>(ns);
}

}  // namespace

namespace {

// How often snapshot() reads the times again before it takes them as they
// are (a worker thread stopped between its two stores: ptrace, SIGSTOP of
// one thread; it is never blocked there).
constexpr int k_max_tries = 10000;

}  // namespace

worker_stats counters::snapshot() const noexcept {
  worker_stats s;
  s.tasks_run = tasks_run.load(std::memory_order_relaxed);
  s.spawns = spawns.load(std::memory_order_relaxed);
  // acquire: pairs with bump_outcome(); steal_attempts is read after these.
  s.steals = steals.load(std::memory_order_acquire);
  s.failed_steals = failed_steals.load(std::memory_order_acquire);
  s.suspensions = suspensions.load(std::memory_order_relaxed);
  s.fiber_switches = fiber_switches.load(std::memory_order_relaxed);
  s.fibers_created = fibers_created.load(std::memory_order_relaxed);
  s.parks = parks.load(std::memory_order_relaxed);
  s.injected = injected.load(std::memory_order_relaxed);
  s.lent = lent.load(std::memory_order_relaxed);
  s.steal_attempts = steal_attempts.load(std::memory_order_relaxed);
  s.fibers_reused = fibers_reused.load(std::memory_order_relaxed);
  s.wakeups = wakeups.load(std::memory_order_relaxed);
  if constexpr (k_instrumented) {
    std::uint64_t t[3];
    std::uint32_t now_doing = 0;
    std::uint64_t began = 0;
    std::uint64_t now = 0;
    // A consistent read of the times (counters::time_sequence): retried while
    // the owner ends an interval, a few instructions; after many tries (the
    // owner's thread preempted there) the last read is taken as it is.
    for (int tries = 0;; ++tries) {
      const std::uint32_t sequence = time_sequence.load(std::memory_order_acquire);
      for (int i = 0; i < 3; ++i) t[i] = ticks[i].load(std::memory_order_relaxed);
      now_doing = current.load(std::memory_order_relaxed);
      began = since.load(std::memory_order_relaxed);
      now = rt::ticks();
      std::atomic_thread_fence(std::memory_order_acquire);
      if (((sequence & 1) == 0 && time_sequence.load(std::memory_order_relaxed) == sequence) || tries == k_max_tries) {
        break;
      }
      if (tries >= 64) std::this_thread::yield();
    }
    // The interval in progress counts up to now.
    if (now_doing < 3 && now > began) t[now_doing] += now - began;
    const std::uint64_t per_us = ticks_per_us();
    s.busy_ns = ticks_to_ns(t[0], per_us);
    s.search_ns = ticks_to_ns(t[1], per_us);
    s.parked_ns = ticks_to_ns(t[2], per_us);
  }
  return s;
}

void counters::reset() noexcept {
  for (auto* c : {&tasks_run, &spawns, &steals, &failed_steals, &suspensions, &fiber_switches, &fibers_created, &parks,
                  &injected, &lent, &steal_attempts, &fibers_reused, &wakeups, &ticks[0], &ticks[1], &ticks[2]}) {
    c->store(0, std::memory_order_relaxed);
  }
  since.store(rt::ticks(), std::memory_order_relaxed);
}

}  // namespace weft::rt
