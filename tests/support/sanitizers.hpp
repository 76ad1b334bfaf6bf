// SPDX-License-Identifier: MIT
// Whether the tests run under a sanitizer, and sizes scaled down for it.
#pragma once

#include <cstdint>

namespace weft_test {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool k_sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
inline constexpr bool k_sanitized = true;
#else
inline constexpr bool k_sanitized = false;
#endif
#else
inline constexpr bool k_sanitized = false;
#endif

#if defined(__SANITIZE_THREAD__)
inline constexpr bool k_tsan = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool k_tsan = true;
#else
inline constexpr bool k_tsan = false;
#endif
#else
inline constexpr bool k_tsan = false;
#endif

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool k_asan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool k_asan = true;
#else
inline constexpr bool k_asan = false;
#endif
#else
inline constexpr bool k_asan = false;
#endif

// A repetition count or problem size: n normally, n / divisor (at least 1)
// under a sanitizer, which slows everything down several times.
constexpr std::int64_t scaled(std::int64_t n, std::int64_t divisor = 8) {
  if (!k_sanitized) return n;
  return n / divisor > 0 ? n / divisor : 1;
}

}  // namespace weft_test
