// SPDX-License-Identifier: MIT
// weft::rt: fiber stacks carved out of slabs, with guard regions, the
// reserve that makes a stack nearly full (also a thread's own), and the
// stack-overflow report.
// Owns: slabs and the stacks carved from them, and each thread's record of
// its own stack's bounds (read once). Touched by: fiber.cpp (allocate, free,
// the reserve), scheduler.cpp (the slab pool), caller.cpp (the limit of a
// call run on its thread's own stack), the signal handler.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "asan.hpp"
#include "platform.hpp"

namespace weft::rt {

// Bytes of inaccessible memory below every fiber stack. Larger than one page
// so that a frame with a big local array still lands in it.
inline constexpr std::size_t k_guard_size = 64 * 1024;

// How the guard region below every stack is made inaccessible.
enum class stack_guards : std::uint8_t {
  // Guard markers (madvise MADV_GUARD_INSTALL, Linux 6.13 and later) where the
  // kernel has them: they live in the page tables and cost no memory mapping.
  // Else mprotect, as below.
  automatic,
  // mprotect(PROT_NONE): splits the slab's mapping, two mappings per stack, so
  // vm.max_map_count bounds the stacks of the process (about 32 000 with the
  // default limit). Chosen with WEFT_STACK_GUARDS=mprotect (tests).
  mprotect,
};

// A slab: one mapping cut into slots of one size, each a guard region and a
// stack (stack.cpp).
struct stack_slab;

// One stack: the guard region [m_guard, m_bottom), then m_size usable bytes
// from m_bottom, then the caller's header bytes, all in slot m_slot of m_slab.
// Empty (m_slab null) for a thread's own stack.
struct stack_memory {
  char* m_guard = nullptr;
  char* m_bottom = nullptr;
  std::size_t m_size = 0;
  stack_slab* m_slab = nullptr;
  unsigned m_slot = 0;
  char* top() const noexcept { return m_bottom + m_size; }
};

std::size_t page_size() noexcept;

// The reserve at the low end of a stack of `size` usable bytes: entry points
// count the stack as nearly full (and switch to a fresh one, or start no more
// tasks on it) when less than this is left. Room for the deepest run of
// frames between two checks (a loop's or a join's entry and the user code
// under it): a quarter of the stack, at most 64 KiB; half where
// AddressSanitizer runs (also a plain build in a program built with it),
// whose redzones about double those frames. When a fiber is made or a
// thread's limit read, not on a spawn.
inline std::size_t stack_reserve(std::size_t size) noexcept {
  const std::size_t share = asan::active() ? 2 : 4;
  return std::min<std::size_t>(64 * 1024, size / share);
}

// Where the calling thread's own stack counts as nearly full: its lowest
// address plus stack_reserve() of its size; 0 when its bounds cannot be read
// (then it never counts as nearly full). Read once per thread.
std::uintptr_t own_stack_limit() noexcept;

// True when the caller runs on its thread's own stack with less than
// `bytes` of it left; false on any other stack, or when the thread's bounds
// cannot be read.
bool own_stack_left_below(std::size_t bytes) noexcept;

// Carves a stack of at least `usable` bytes with `header` bytes above it out
// of a slab of the process (slabs are shared by every runtime, guarded by one
// lock; a new slab is mapped when every slot of that size is taken). Any
// thread. Throws std::system_error (std::errc::not_enough_memory) whose
// message names what ran out: vm.max_map_count, or memory; one with
// std::errc::resource_unavailable_try_again naming RLIMIT_MEMLOCK where the
// process's memory is locked (mlockall with MCL_FUTURE); or std::bad_alloc.
stack_memory allocate_stack(std::size_t usable, std::size_t header, stack_guards guards);

// Gives s's pages back to the system (its guard stays) and its slot back to
// its slab; a slab left empty is unmapped, except one kept per stack size and kind of guard
// (at most four in all).
// Any thread; s must not be running. Leaves s empty.
void free_stack(stack_memory& s) noexcept;

// A stack of `usable` bytes (rounded up to pages) under a guard page, in a
// mapping of its own: for code that runs where the calling stack is nearly
// full, so it calls nothing but mmap and mprotect (no allocation, nothing
// that a library may bind lazily). Empty, with errno set, when the kernel
// refuses it. Any thread.
stack_memory map_lone_stack(std::size_t usable) noexcept;
// Unmaps a stack of map_lone_stack(); s must not be running. Leaves s empty.
void unmap_lone_stack(stack_memory& s) noexcept;

// The message of the last failure of allocate_stack() in this process that
// named a shortage (vm.max_map_count or memory); empty when there was none.
// Any thread. Throws std::bad_alloc.
std::string last_stack_shortage();

// Whether this kernel has guard markers (probed once per process, without a
// lock or an initialisation guard).
bool guard_markers_available() noexcept;

// The probe behind it, run again: 1 when the kernel installs guard markers
// (Linux 6.13 and later, also for a process that locks its memory with
// mlockall, where the markers go only to unlocked mappings), 0 when it does
// not know them, -1 when it could not tell (no memory to probe). For tests.
int probe_guard_markers() noexcept;

// fork(): the atfork handlers (scheduler.cpp) hold the slab lock across the
// fork, so that the child gets the slabs consistent and the lock free.
void lock_stacks_for_fork() noexcept;
void unlock_stacks_after_fork() noexcept;

// An alternate signal stack for the calling thread, so that the overflow
// report can run when the fiber stack is exhausted.
class signal_stack {
 public:
  signal_stack() = default;
  signal_stack(const signal_stack&) = delete;
  signal_stack& operator=(const signal_stack&) = delete;
  ~signal_stack() { leave(); }
  void enter() noexcept;  // calling thread; failure leaves the thread without one
  void leave() noexcept;  // calling thread (the one that entered)

 private:
  void* m_memory = nullptr;
  std::size_t m_size = 0;
};

// Installs (once per process) a SIGSEGV handler that recognises a fault in the
// guard region of the running fiber, prints one line naming the fiber stack
// overflow and the setting that raises the stack size, and aborts. Faults it
// does not recognise go to the handler that was installed before.
void install_overflow_handler() noexcept;

// Unblocks SIGSEGV for the calling thread (a worker's own thread: weft does
// not change the mask of a thread from outside). A thread inherits its
// creator's mask, and a fault while SIGSEGV is blocked kills the process
// without running any handler: a program that blocked every signal in main
// before its first weft call (to sigwait for them on one thread) lost the
// overflow report of its workers.
void unblock_overflow_signal() noexcept;

}  // namespace weft::rt
