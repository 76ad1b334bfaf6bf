// SPDX-License-Identifier: MIT
// weft::rt: saving and resuming execution contexts (stack switching).
// Owns: a saved execution context. Touched by: fiber.cpp; runtime.cpp and
// stack.cpp (call_on_stack).
#pragma once

#include <cstddef>

#include "platform.hpp"

namespace weft::rt {

// The registers and stack pointer of a suspended fiber, or of a worker
// thread's own stack while it runs fibers. context.cpp is the only file that
// includes Boost.Context; it also tells AddressSanitizer (where it runs) and
// ThreadSanitizer (in a build of weft with it) about every switch.
struct context {
  void* m_handle = nullptr;  // Boost.Context fcontext_t while suspended
  // For AddressSanitizer, where it runs (asan::active(): also a plain build
  // in a program built with it).
  void* m_fake_stack = nullptr;          // its fake stack of the suspended side
  const void* m_stack_bottom = nullptr;  // lowest usable address
  std::size_t m_stack_size = 0;
#if WEFT_TSAN
  void* m_tsan_fiber = nullptr;
  bool m_owns_tsan_fiber = false;
#endif
};

// Prepares ctx to run context_entry() on the stack [bottom, bottom + size) the
// first time it is resumed.
void make_context(context& ctx, void* bottom, std::size_t size) noexcept;

// Makes ctx stand for the calling thread's own stack, so that fibers can
// switch back to it.
void adopt_thread_context(context& ctx) noexcept;

// Releases what make_context() acquired. ctx must not be running.
void destroy_context(context& ctx) noexcept;

// What a jump hands to the resumed side: where to save the jumping side's
// registers. Callers embed it first in their own record of the switch.
struct jump_header {
  context* m_from;
};

// Saves the running context in *rec->m_from and resumes `to`, handing it rec.
// Returns in the saved context, when something resumes it, the header that
// resumer handed over. from_dies: the saved context is never resumed again
// (lets ASan free its state).
jump_header* jump(context& to, jump_header* rec, bool from_dies = false) noexcept;

// Calls fn(arg) on the stack [bottom, bottom + size), on the calling thread,
// and returns when it returns: for work that needs more room than the
// calling stack has left and must stay on this thread. fn must not leave by
// unwinding (an exception, a thread cancellation): it would unwind off the
// stack's first frame.
void call_on_stack(void* bottom, std::size_t size, void (*fn)(void*) noexcept, void* arg) noexcept;

// Defined by fiber.cpp: the first code of a context made by make_context(),
// called with the header of the jump that started it. Never returns.
[[noreturn]] void context_entry(jump_header* rec) noexcept;

}  // namespace weft::rt
