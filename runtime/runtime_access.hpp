// SPDX-License-Identifier: MIT
// weft::detail::runtime_access: the scheduler behind a weft::runtime, for the
// runtime's own code and its internal tests.
// Owns: nothing. Used by runtime.cpp and the unit tests of callers and
// workers.
#pragma once

#include "scheduler.hpp"
#include "weft/runtime.hpp"

namespace weft::detail {

// Grants the runtime's internals access to a runtime's scheduler.
struct runtime_access {
  static rt::scheduler& scheduler_of(runtime& r) noexcept { return rt::scheduler::of(r.m_state); }
};

}  // namespace weft::detail
