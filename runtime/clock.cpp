#include "clock.hpp"

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

std::uint64_t ticks_per_us() noexcept {
  static const std::uint64_t value = calibrate();
  return value;
}

}  // namespace weft::rt
