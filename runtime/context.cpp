// SPDX-License-Identifier: MIT
// The only file of weft that includes Boost.Context. It uses the fcontext layer
// (make_fcontext / jump_fcontext), the cheapest switch Boost offers, and
// annotates every switch for the sanitizers.
#include "context.hpp"

#include <boost/context/detail/fcontext.hpp>

#if WEFT_ASAN
#include <sanitizer/asan_interface.h>
#endif
#if WEFT_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace weft::rt {

namespace fctx = boost::context::detail;

namespace {

// Runs on the resumed side right after a switch. self: the context now running
// (null for one that runs for the first time).
jump_header* finish_jump(fctx::transfer_t t, context* self) noexcept {
  auto* rec = static_cast<jump_header*>(t.data);
#if WEFT_ASAN
  // Learns the bounds of the stack we came from (how a thread's own stack
  // becomes known) and restores our fake stack.
  __sanitizer_finish_switch_fiber(self != nullptr ? self->m_fake_stack : nullptr, &rec->m_from->m_stack_bottom,
                                  &rec->m_from->m_stack_size);
#else
  (void)self;
#endif
  rec->m_from->m_handle = t.fctx;
  return rec;
}

void trampoline(fctx::transfer_t t) noexcept { context_entry(finish_jump(t, nullptr)); }

}  // namespace

void make_context(context& ctx, void* bottom, std::size_t size) noexcept {
  ctx.m_handle = fctx::make_fcontext(static_cast<char*>(bottom) + size, size, &trampoline);
#if WEFT_ASAN
  ctx.m_stack_bottom = bottom;
  ctx.m_stack_size = size;
#endif
#if WEFT_TSAN
  ctx.m_tsan_fiber = __tsan_create_fiber(0);
  ctx.m_owns_tsan_fiber = true;
#endif
}

void adopt_thread_context(context& ctx) noexcept {
  ctx.m_handle = nullptr;  // filled in by the first jump away from it
#if WEFT_TSAN
  ctx.m_tsan_fiber = __tsan_get_current_fiber();
  ctx.m_owns_tsan_fiber = false;
#else
  (void)ctx;
#endif
}

void destroy_context(context& ctx) noexcept {
#if WEFT_TSAN
  if (ctx.m_owns_tsan_fiber && ctx.m_tsan_fiber != nullptr) __tsan_destroy_fiber(ctx.m_tsan_fiber);
  ctx.m_tsan_fiber = nullptr;
#endif
  ctx.m_handle = nullptr;
}

jump_header* jump(context& to, jump_header* rec, bool from_dies) noexcept {
  context& from = *rec->m_from;
#if WEFT_ASAN
  __sanitizer_start_switch_fiber(from_dies ? nullptr : &from.m_fake_stack, to.m_stack_bottom, to.m_stack_size);
#else
  (void)from_dies;
#endif
#if WEFT_TSAN
  __tsan_switch_to_fiber(to.m_tsan_fiber, 0);
#endif
  const fctx::transfer_t t = fctx::jump_fcontext(to.m_handle, rec);
  return finish_jump(t, &from);
}

}  // namespace weft::rt
