// SPDX-License-Identifier: MIT
// weft::rt: a cheap monotonic clock for scheduling decisions.
// Owns: nothing. Used by loops, the scheduler, callers, counters, trace.
#pragma once

#include <cstdint>

namespace weft::rt {

// A monotonic tick count: the time-stamp counter on x86-64 (constant rate on
// every processor weft targets; about 12 ns to read, against about 30 ns for
// steady_clock), nanoseconds elsewhere. Only differences are meaningful.
std::uint64_t ticks() noexcept;

// Sharing work costs a steal, a wake-up and a join: about a microsecond or
// two. Work estimated below this stays where it is.
inline constexpr std::uint64_t k_split_us = 2;

// Ticks per microsecond, measured once per process (the first call takes
// about half a millisecond).
std::uint64_t ticks_per_us() noexcept;

}  // namespace weft::rt
