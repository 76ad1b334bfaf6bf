// SPDX-License-Identifier: MIT
// The only file of weft that includes Boost.Context. It uses the fcontext layer
// (make_fcontext / jump_fcontext), the cheapest switch Boost offers, and
// annotates every switch for the sanitizers (AddressSanitizer's where it runs,
// also with a plain build of weft: asan.hpp).
#include "context.hpp"

#include <boost/context/detail/fcontext.hpp>

#include "asan.hpp"

#if WEFT_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace weft::rt {

namespace fctx = boost::context::detail;

namespace {

// Runs on the resumed side right after a switch, annotated or not: where the
// jumping side is saved.
jump_header* land(fctx::transfer_t t) noexcept {
  auto* rec = static_cast<jump_header*>(t.data);
  rec->m_from->m_handle = t.fctx;
  return rec;
}

// The same where AddressSanitizer runs. self: the context now running (null
// for one that runs for the first time).
jump_header* land_annotated(fctx::transfer_t t, context* self) noexcept {
  auto* rec = static_cast<jump_header*>(t.data);
  // Learns the bounds of the stack we came from (how a thread's own stack
  // becomes known) and restores our fake stack.
  asan::finish_switch(self != nullptr ? self->m_fake_stack : nullptr, &rec->m_from->m_stack_bottom,
                      &rec->m_from->m_stack_size);
  return land(t);
}

void trampoline(fctx::transfer_t t) noexcept { context_entry(asan::active() ? land_annotated(t, nullptr) : land(t)); }

// jump() where AddressSanitizer runs: whether it runs is fixed for the
// process, so the side resumed here also jumped away through this function
// (or starts in the trampoline).
WEFT_NOINLINE jump_header* jump_annotated(context& to, jump_header* rec, bool from_dies) noexcept {
  context& from = *rec->m_from;
  asan::start_switch(from_dies ? nullptr : &from.m_fake_stack, to.m_stack_bottom, to.m_stack_size);
  if (from_dies) from.m_fake_stack = nullptr;  // freed by that call: destroy_context must not free it again
#if WEFT_TSAN
  __tsan_switch_to_fiber(to.m_tsan_fiber, 0);
#endif
  return land_annotated(fctx::jump_fcontext(to.m_handle, rec), &from);
}

// The record of a call_on_stack(): the jump onto the stack hands over
// m_there (m_from: the caller's context), the jump back m_back (m_from:
// m_done, the stack's context, never resumed). In the caller's frame: nothing
// that the jump back writes lives on the stack it leaves.
struct stack_call {
  jump_header m_there;
  void (*m_fn)(void*) noexcept;
  void* m_arg;
  context m_done;
  jump_header m_back;
};

[[noreturn]] void stack_call_entry(fctx::transfer_t t) noexcept {
  auto* call = reinterpret_cast<stack_call*>(asan::active() ? land_annotated(t, nullptr) : land(t));
  call->m_fn(call->m_arg);
  jump(*call->m_there.m_from, &call->m_back, true);
  __builtin_unreachable();  // never resumed
}

// make_context() with the first code `entry`.
void make_context_entering(context& ctx, void* bottom, std::size_t size, void (*entry)(fctx::transfer_t)) noexcept {
  ctx.m_handle = fctx::make_fcontext(static_cast<char*>(bottom) + size, size, entry);
  ctx.m_stack_bottom = bottom;
  ctx.m_stack_size = size;
#if WEFT_TSAN
  ctx.m_tsan_fiber = __tsan_create_fiber(0);
  ctx.m_owns_tsan_fiber = true;
#endif
}

}  // namespace

void call_on_stack(void* bottom, std::size_t size, void (*fn)(void*) noexcept, void* arg) noexcept {
  context caller;
  adopt_thread_context(caller);
  context callee;
  make_context_entering(callee, bottom, size, &stack_call_entry);
  stack_call call{{&caller}, fn, arg, {}, {&call.m_done}};
  jump(callee, &call.m_there);
  destroy_context(callee);
}

void make_context(context& ctx, void* bottom, std::size_t size) noexcept {
  make_context_entering(ctx, bottom, size, &trampoline);
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
  if (ctx.m_fake_stack != nullptr && asan::active()) {
    // A context suspended for good (a fiber dropped from a pool, or never
    // finished) keeps the fake stack that stack-use-after-return detection
    // gave it, about 1.4 MB: the sanitizer frees a fake stack only at a
    // switch away from it that saves none. So this thread makes one, on its
    // own stack: it takes ctx's fake stack as its current one (a switch to
    // ctx's stack that never leaves this one), then leaves it for good and
    // takes its own back. Uninstrumented code in between (or, in a sanitizer
    // build of weft, none that takes a local's address).
    void* mine = nullptr;
    const void* bottom = nullptr;
    std::size_t size = 0;
    asan::start_switch(&mine, ctx.m_stack_bottom, ctx.m_stack_size);
    asan::finish_switch(ctx.m_fake_stack, &bottom, &size);  // this stack's bounds: bottom, size
    asan::start_switch(nullptr, bottom, size);              // frees ctx's fake stack
    asan::finish_switch(mine, nullptr, nullptr);
    ctx.m_fake_stack = nullptr;
  }
#if WEFT_TSAN
  if (ctx.m_owns_tsan_fiber && ctx.m_tsan_fiber != nullptr) __tsan_destroy_fiber(ctx.m_tsan_fiber);
  ctx.m_tsan_fiber = nullptr;
#endif
  ctx.m_handle = nullptr;
}

jump_header* jump(context& to, jump_header* rec, bool from_dies) noexcept {
  if (asan::active()) [[unlikely]] {
    return jump_annotated(to, rec, from_dies);
  }
#if WEFT_TSAN
  __tsan_switch_to_fiber(to.m_tsan_fiber, 0);
#endif
  return land(fctx::jump_fcontext(to.m_handle, rec));
}

}  // namespace weft::rt
