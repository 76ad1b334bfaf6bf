// SPDX-License-Identifier: MIT
// weft: scheduler counters of a runtime.
#pragma once

#include "weft/detail/cxx20.hpp"

#include <cstdint>
#include <string>
#include <vector>

#include "weft/detail/export.hpp"

namespace weft {

// Counters of one worker (or their sum). Every field counts events since the
// runtime started or since the last runtime::reset_stats().
struct worker_stats {
  std::uint64_t tasks_run = 0;       // tasks executed (spawned, stolen, injected)
  std::uint64_t spawns = 0;          // tasks pushed onto this worker's queue
  std::uint64_t steals = 0;          // tasks taken from another worker
  std::uint64_t failed_steals = 0;   // steal attempts that found nothing
  std::uint64_t suspensions = 0;     // fibers that suspended (join, yield, sync)
  std::uint64_t fiber_switches = 0;  // stack switches performed
  std::uint64_t fibers_created = 0;  // fiber stacks allocated
  std::uint64_t parks = 0;           // times the worker went to sleep
  std::uint64_t injected = 0;        // tasks taken from the injection queue
  std::uint64_t lent = 0;            // calls from outside run on this worker's slot by their own thread
  std::uint64_t steal_attempts = 0;  // victims probed (steals + failed_steals + lost races)
  std::uint64_t fibers_reused = 0;   // fibers taken from a pool instead of created
  std::uint64_t wakeups = 0;         // times another thread woke this worker up
  std::uint64_t busy_ns = 0;         // time running tasks and switching fibers
  std::uint64_t search_ns = 0;       // time looking for work
  std::uint64_t parked_ns = 0;       // time asleep

  worker_stats& operator+=(const worker_stats& o) noexcept {
    tasks_run += o.tasks_run;
    spawns += o.spawns;
    steals += o.steals;
    failed_steals += o.failed_steals;
    suspensions += o.suspensions;
    fiber_switches += o.fiber_switches;
    fibers_created += o.fibers_created;
    parks += o.parks;
    injected += o.injected;
    lent += o.lent;
    steal_attempts += o.steal_attempts;
    fibers_reused += o.fibers_reused;
    wakeups += o.wakeups;
    busy_ns += o.busy_ns;
    search_ns += o.search_ns;
    parked_ns += o.parked_ns;
    return *this;
  }
};

// A snapshot of a runtime's counters: one entry per worker and their sum.
// Counters are read while the workers run, so a snapshot taken during work is
// approximate (a worker's counters are not read at one instant), but none of
// a worker's counters, its times included, is smaller than in an earlier
// snapshot of the same runtime unless reset_stats() ran between them. One
// taken while the runtime is idle is exact (the times then include each
// worker's current interval up to the snapshot). All zero in a build
// configured with -Dinstrumentation=false.
struct stats {
  std::vector<worker_stats> workers;
  worker_stats total;

  // A printable table: one row per worker and a total row.
  WEFT_API std::string summary() const;
};

}  // namespace weft
