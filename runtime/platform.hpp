// SPDX-License-Identifier: MIT
// weft::rt: compiler and processor facts the runtime relies on.
// Owns: nothing. Used by every part.
#pragma once

#include <sched.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "weft/detail/worker_view.hpp"

// Sanitizers, detected from the compiler's own macros (ThreadSanitizer by
// the public headers' detection, which the inline spawn paths need too).
#define WEFT_TSAN WEFT_DETAIL_TSAN

#if defined(__SANITIZE_ADDRESS__)
#define WEFT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT_ASAN 1
#endif
#endif
#ifndef WEFT_ASAN
#define WEFT_ASAN 0
#endif

#define WEFT_NOINLINE __attribute__((noinline))
#if defined(__clang__)
#define WEFT_NOIPA __attribute__((noinline))
#else
#define WEFT_NOIPA __attribute__((noinline, noipa))
#endif
#define WEFT_LIKELY(x) __builtin_expect(!!(x), 1)
#define WEFT_UNLIKELY(x) __builtin_expect(!!(x), 0)

namespace weft::rt {

// Size that keeps independently written data on separate cache lines (two
// lines: adjacent-line prefetch pairs them on x86).
inline constexpr std::size_t k_cache_line = 64;
inline constexpr std::size_t k_false_sharing = 128;

// The current stack pointer (approximately: an address in the caller's frame).
inline std::uintptr_t stack_pointer() noexcept { return detail::stack_pointer_here(); }

// Tells the processor that this is a spin-wait loop. About 19 ns on the
// AMD EPYC development machine (measured: 10^7 pauses); Intel processors since
// Skylake take about 140 cycles.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Rounds of a wait for a section of a few instructions held by another
// thread (a guard bit, a completion in progress) that pause the core: 64
// pauses, about 1.2 µs on the development machine, far longer than the few
// pointer moves such a section holds; a holder still not done by then was
// most likely preempted.
inline constexpr unsigned k_spin_relaxes = 64;

// Round `round` (from 0) of such a wait: a pause, then, past k_spin_relaxes,
// sched_yield(), which lets a preempted holder run (and returns at once where
// nothing else is runnable).
inline void spin_backoff(unsigned round) noexcept {
  if (round < k_spin_relaxes) {
    cpu_relax();
  } else {
    sched_yield();
  }
}

#if WEFT_TSAN
// ThreadSanitizer ignores std::atomic_thread_fence; in TSan builds a full fence
// is a seq_cst read-modify-write of one shared word, which TSan understands.
inline std::atomic<int> g_tsan_fence_word{0};
#endif

// A full (store-load) fence: orders every earlier store before every later
// load, as std::atomic_thread_fence(seq_cst) does. On x86-64 a locked
// read-modify-write of the top of the stack is cheaper than mfence and orders
// the same (it is what Linux uses for smp_mb()).
inline void full_fence() noexcept {
#if WEFT_TSAN
  g_tsan_fence_word.fetch_add(0, std::memory_order_seq_cst);
#elif defined(__x86_64__)
  asm volatile("lock {addl $0, -4(%%rsp)| add DWORD PTR [rsp-4], 0}" ::: "memory", "cc");
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

// A release fence; in TSan builds the operations it orders are release
// stores themselves (k_relaxed_or_release), so it is left out there.
inline void release_fence() noexcept {
#if !WEFT_TSAN
  std::atomic_thread_fence(std::memory_order_release);
#endif
}

// Orderings that TSan needs spelled out on the operation instead of through a
// fence: release/acquire in TSan builds, relaxed (made safe by a fence next to
// it) in normal builds.
#if WEFT_TSAN
inline constexpr std::memory_order k_relaxed_or_release = std::memory_order_release;
inline constexpr std::memory_order k_relaxed_or_acquire = std::memory_order_acquire;
#else
inline constexpr std::memory_order k_relaxed_or_release = std::memory_order_relaxed;
inline constexpr std::memory_order k_relaxed_or_acquire = std::memory_order_relaxed;
#endif

}  // namespace weft::rt
