// SPDX-License-Identifier: MIT
// weft::rt: a thread from outside a runtime that takes part in its own call
// as a worker, on the slot of a parked worker (docs/protocols/callers.md).
// Owns: a caller_state per thread that calls from outside (thread_local; one
// on the stack of a call made after that one is gone: the thread ends, or
// the process exits).
// Touched by: worker.cpp (m_caller: the loop switches back to the caller),
// suspend.cpp (make_pinned_ready), join.cpp (roots from outside).
#pragma once

#include <atomic>

#include "fiber.hpp"
#include "stack.hpp"

namespace weft::rt {

class scheduler;
class worker;

// What a thread needs to hold a borrowed slot: one per thread (thread_local),
// touched only by that thread, except m_native_ready.
struct caller_state {
  // The thread's own stack, as a fiber: it runs the call. It never migrates:
  // make_ready() on it sets m_native_ready and wakes this thread, and only the
  // loop of the slot this thread holds resumes it.
  fiber m_native;
  std::atomic<bool> m_native_ready{false};
  int m_entry = -1;  // this thread's parking entry while it holds a slot

  // The lending worker's own values, put back when the slot is returned.
  fiber* m_saved_current = nullptr;
  void* m_saved_eh = nullptr;
  int m_saved_entry = -1;

  signal_stack m_signal_stack;  // for the stack-overflow report on this thread
  bool m_signal_stack_checked = false;
  // Where this thread's own stack counts as nearly full (own_stack_limit(),
  // read at the first call): m_native's limits while the thread holds a
  // slot, for a call that runs on that stack when no fiber can be had.
  std::uintptr_t m_stack_limit = 0;
  // This thread's exception globals (this_thread_eh_globals(), read at the
  // first call): the worker's while the thread holds its slot.
  void* m_eh_globals = nullptr;
};

// Runs fn(arg) on the calling thread, which is not a worker of any runtime, as
// a worker of s on the slot of a parked worker, and returns true; false (and
// nothing done) when no slot could be had in time. Rethrows what fn throws,
// after the slot is back. The caller counted its call as a root of s
// (begin_root) before: the call is in flight while it waits for a slot too,
// so that s's destructor waits for it. When this returns true the root has
// ended (end_root, the last access to s, after the slot's return); when
// false it is still the caller's.
bool call_on_borrowed_slot(scheduler& s, void (*fn)(void*), void* arg);

// make_ready() of a caller's native fiber (f->m_pinned): flags it and wakes
// its thread. Any thread.
void make_pinned_ready(fiber* f) noexcept;

}  // namespace weft::rt
