// SPDX-License-Identifier: MIT
// weft::rt: what AddressSanitizer (and its LeakSanitizer) must be told about
// fiber stacks, in a build of weft with it and in a plain build whose program
// runs with it.
// Owns: nothing. Used by context.cpp (switches), stack.cpp (stack memory, the
// leak check at exit) and caller.cpp (a caller's own stack while on loan).
#pragma once

#include <cstddef>

#include "platform.hpp"

#if WEFT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/lsan_interface.h>
#else
// A program built with -fsanitize=address against a plain libweft: the
// sanitizer's runtime, in the program or loaded with it, defines these, and
// the weak references find them; in any other process they stay null. Without
// the annotations the sanitizer took a fiber's stack for a part of its
// thread's: an exception thrown there was not unwound in its shadow memory
// ("ignoring requested __asan_handle_no_return"), and the stale redzones
// were reported as stack overflows in the next frames that used that memory.
// The sanitizer's names, as its own headers declare them.
// NOLINTBEGIN(readability-identifier-naming, bugprone-reserved-identifier)
extern "C" {
__attribute__((weak, visibility("default"))) void __sanitizer_start_switch_fiber(void** fake_stack_save,
                                                                                 const void* bottom, std::size_t size);
__attribute__((weak, visibility("default"))) void __sanitizer_finish_switch_fiber(void* fake_stack_save,
                                                                                  const void** bottom_old,
                                                                                  std::size_t* size_old);
__attribute__((weak, visibility("default"))) void __asan_unpoison_memory_region(const volatile void* addr,
                                                                                std::size_t size);
__attribute__((weak, visibility("default"))) void __lsan_register_root_region(const void* p, std::size_t size);
__attribute__((weak, visibility("default"))) void __lsan_unregister_root_region(const void* p, std::size_t size);
}
// NOLINTEND(readability-identifier-naming, bugprone-reserved-identifier)
#endif

namespace weft::rt::asan {

// AddressSanitizer runs in this process: always in a build of weft with it;
// in a plain build, when the program has its runtime (fixed when the process
// loads libweft: a weak reference's address, relocated at load time). A
// plain process pays a load and a branch where a sanitizer would be told
// something: once per fiber switch and per fiber's first run.
inline bool active() noexcept {
#if WEFT_ASAN
  return true;
#else
  return __sanitizer_start_switch_fiber != nullptr;  // its runtime defines the others with it
#endif
}

// LeakSanitizer's root regions can be registered: with AddressSanitizer
// (whose runtime has LeakSanitizer's interface, checking or not), or with
// LeakSanitizer alone (-fsanitize=leak, whose runtime has no switches to
// annotate).
inline bool leak_check_active() noexcept {
#if WEFT_ASAN
  return true;
#else
  return __lsan_register_root_region != nullptr;     // and __lsan_unregister_root_region
#endif
}

// Only where active(): the calls that tell the sanitizer about a switch
// (protocol: docs/reliability.md, "What is annotated").
inline void start_switch(void** fake_stack_save, const void* bottom, std::size_t size) noexcept {
  __sanitizer_start_switch_fiber(fake_stack_save, bottom, size);
}
inline void finish_switch(void* fake_stack_save, const void** bottom_old, std::size_t* size_old) noexcept {
  __sanitizer_finish_switch_fiber(fake_stack_save, bottom_old, size_old);
}

// Clears the shadow of [p, p + n) (a stack's memory before and after use).
// Nothing where the sanitizer does not run.
inline void unpoison(void* p, std::size_t n) noexcept {
  if (active()) __asan_unpoison_memory_region(p, n);
}

// Only where leak_check_active().
inline void register_root(const void* p, std::size_t n) noexcept { __lsan_register_root_region(p, n); }
inline void unregister_root(const void* p, std::size_t n) noexcept { __lsan_unregister_root_region(p, n); }

}  // namespace weft::rt::asan
