// SPDX-License-Identifier: MIT
// weft: configuration of a runtime, a plain value type.
#pragma once

#include "weft/detail/cxx20.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

namespace weft {

// Smallest accepted config::stack_size (usable bytes per fiber stack).
inline constexpr std::size_t k_min_stack_size = 16 * 1024;

// Largest accepted worker count (config::workers and WEFT_NUM_WORKERS).
inline constexpr int k_max_workers = 4096;

// Which worker a thief tries first (see docs/policies.md).
enum class victim_policy : std::uint8_t {
  automatic,    // WEFT_VICTIM_POLICY if set, else random
  random,       // every round starts at a random worker (the default)
  round_robin,  // every round starts one worker further than the last
  last_victim,  // the worker of the last successful steal first, then the next ones
};

// How parallelize / parallel_for cut their range (see docs/policies.md).
// parallel_reduce always uses its fixed, deterministic tree.
enum class split_policy : std::uint8_t {
  automatic,  // WEFT_SPLIT_POLICY if set, else adaptive
  adaptive,   // split where and when work is worth a steal (the default)
  eager,      // halve down to split_grain items at once, like a simple partitioner
  fixed,      // cut into chunks of exactly split_grain items (the last may be shorter)
};

// How a call from a thread outside the runtime runs (see docs/policies.md).
enum class caller_policy : std::uint8_t {
  automatic,  // WEFT_CALLER_POLICY if set, else take_part
  take_part,  // the calling thread runs its call as a worker, on the slot of a
              // parked worker whose thread stays parked meanwhile (the default)
  hand_over,  // the call goes to the workers through the injection queue and
              // the calling thread waits
};

// How a runtime is built. Every field has a reasoned default; a runtime
// validates its config in its constructor and throws std::invalid_argument
// naming the field when a value is out of range.
struct config {
  // Worker threads. 0: the environment variable WEFT_NUM_WORKERS if set (a
  // positive integer, anything else is an error), else the CPUs the
  // constructing thread may use: hardware threads, within its affinity mask
  // and its cgroups' CPU quota (rounded up). Must be in [0, k_max_workers].
  int workers = 0;

  // Usable bytes of every fiber stack (a 64 KiB guard region is added below
  // it; stacks are carved out of shared mappings, docs/architecture.md).
  // Rounded up to the page size; at least k_min_stack_size. Deep recursion
  // inside a work item needs more; weft switches to a fresh stack on its own
  // when one of its entry points finds the current stack nearly full.
  std::size_t stack_size = 256 * 1024;

  // How long an idle worker keeps looking for work before it parks, in
  // microseconds. Longer: lower latency for bursts of small parallel calls;
  // shorter: less CPU burnt between bursts. An idle runtime uses no CPU once
  // this time has passed. At most 1'000'000.
  std::uint32_t spin_us = 50;

  // Soft bound on the fibers alive, per worker on average: the runtime holds
  // at most max_fibers x workers fibers (running, suspended or pooled; a
  // worker keeps at most min(64, max_fibers / 2) idle ones) before its workers
  // stop stealing, the source of new suspensions, until some fibers finish.
  // Work from outside is still taken and the bound never fails a suspension
  // (only the system's limits do: docs/guide.md, "Limits"). At least 4.
  std::size_t max_fibers = 1024;

  // Scheduling policies: seams for experiments; the defaults are the fastest.
  victim_policy victim = victim_policy::automatic;
  split_policy split = split_policy::automatic;
  caller_policy caller = caller_policy::automatic;
  // Items per leaf (eager) or per chunk (fixed); 0: count / (4 x workers),
  // at least 1. Never below the grain of a parallel_for. Ignored by adaptive.
  std::uint64_t split_grain = 0;

  // Event trace (docs/tracing.md): when non-empty, every worker records
  // its task runs, steals, searches and parks, and the runtime writes them as
  // Chrome trace-event JSON to this path when it is destroyed, or at the
  // process's exit when it is still alive then. Empty: the environment
  // variable WEFT_TRACE if set, else no tracing at all. A path that holds a
  // NUL byte or names a directory ("dir/", or an existing directory) is an
  // error.
  std::string trace_file{};
  // Size of each worker's ring of events while tracing, rounded up to a power
  // of two: the newest survive, one fewer than the ring holds once it is
  // full. From 1024 to 2^26 (about 1.5 GiB per worker, allocated when the
  // runtime is constructed).
  std::size_t trace_events = std::size_t{1} << 16;
};

}  // namespace weft
