// SPDX-License-Identifier: MIT
// Runs a callable where the calling stack counts as nearly full (weft's own
// check, detail::stack_low_here()): on a worker's fiber, or on a thread's own
// stack. Needs no GoogleTest (a program of its own may use it).
#pragma once

#include <weft/weft.hpp>

namespace weft_test {

// Calls itself, a frame of over 1 KiB each time, until the stack counts as
// nearly full, then calls f() there. Not a tail call: each level keeps its
// frame.
template <class F>
[[gnu::noinline]] int on_a_nearly_full_stack(F& f) {
  volatile char frame[1024] = {};
  if (!weft::detail::stack_low_here()) return on_a_nearly_full_stack(f) + frame[0];
  f();
  return frame[1];
}

}  // namespace weft_test
