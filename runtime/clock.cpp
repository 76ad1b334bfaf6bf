// SPDX-License-Identifier: MIT
#include "clock.hpp"

#include <atomic>
#include <chrono>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace weft::rt {

namespace {

std::uint64_t now_ns() noexcept {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

std::uint64_t calibrate() noexcept {
#if defined(__x86_64__)
  const std::uint64_t n0 = now_ns();
  const std::uint64_t t0 = __rdtsc();
  std::uint64_t n1 = n0;
  while (n1 - n0 < 500'000) n1 = now_ns();
  const std::uint64_t t1 = __rdtsc();
  const std::uint64_t per_us = (t1 - t0) * 1000 / (n1 - n0);
  return per_us == 0 ? 1 : per_us;
#else
  return 1000;
#endif
}

}  // namespace

std::uint64_t ticks() noexcept {
#if defined(__x86_64__)
  return __rdtsc();
#else
  return now_ns();
#endif
}

// Not a function-local static: its initialisation guard, held by a thread in
// the 0.5 ms calibration when another thread forks, would stay held in the
// child forever. Threads that find 0 calibrate at once; the first result to
// be stored is the one every thread uses.
std::uint64_t ticks_per_us() noexcept {
  static constinit std::atomic<std::uint64_t> cached{0};
  std::uint64_t value = cached.load(std::memory_order_relaxed);  // a plain number: no data hangs off it
  if (value != 0) return value;
  const std::uint64_t mine = calibrate();
  return cached.compare_exchange_strong(value, mine, std::memory_order_relaxed) ? mine : value;
}

}  // namespace weft::rt
