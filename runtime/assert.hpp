// SPDX-License-Identifier: MIT
// weft::rt: WEFT_ASSERT, checks of the runtime's protocol steps (a
// precondition, a state a transition expects). Compiled in when
// WEFT_ASSERTIONS is 1: meson sets it in debug and debugoptimized builds (the
// sanitizer builds of .ci/run among them) and leaves it 0 in release, where a
// check costs nothing and its condition is not evaluated.
// Owns: nothing. Used by every part of the runtime.
#pragma once

#include "platform.hpp"

#ifndef WEFT_ASSERTIONS
#define WEFT_ASSERTIONS 0
#endif

namespace weft::rt {

// Writes "weft: assertion failed: <what> [<condition>] at <file>:<line>" on
// stderr and aborts. Async-signal-safe (the checks may run on any thread,
// with any lock held).
[[noreturn]] void assertion_failed(const char* condition, const char* what, const char* file, int line) noexcept;

}  // namespace weft::rt

// WEFT_ASSERT(condition, what): what is a string literal that says the rule
// in words.
#if WEFT_ASSERTIONS
#define WEFT_ASSERT(condition, what) \
  (WEFT_LIKELY(condition) ? static_cast<void>(0) : ::weft::rt::assertion_failed(#condition, what, __FILE__, __LINE__))
#else
#define WEFT_ASSERT(condition, what) static_cast<void>(sizeof(!(condition)))
#endif
