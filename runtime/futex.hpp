// SPDX-License-Identifier: MIT
// weft::rt: blocking a thread on a 32-bit word (Linux futex).
// Owns: nothing. Used by sleep.cpp, waiter.hpp, caller.cpp, scheduler.cpp.
#pragma once

#include <atomic>
#include <cstdint>

namespace weft::rt {

// Blocks the calling thread while *word == expected (may return spuriously:
// callers re-check in a loop). Any thread.
void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected) noexcept;

// As futex_wait, for at most `timeout_ns` nanoseconds.
void futex_wait_for(std::atomic<std::uint32_t>& word, std::uint32_t expected, std::uint64_t timeout_ns) noexcept;

// Wakes up to n threads blocked in futex_wait on word. Any thread. Harmless on
// memory nobody waits on.
void futex_wake(std::atomic<std::uint32_t>& word, int n) noexcept;

}  // namespace weft::rt
