// SPDX-License-Identifier: MIT
#include "fiber.hpp"

#include <cxxabi.h>

#include <atomic>
#include <new>

#include "scheduler.hpp"
#include "suspend.hpp"
#include "worker.hpp"

namespace weft::rt {

namespace {

// The per-thread exception globals of the Itanium C++ ABI (libstdc++ and
// libc++abi): the stack of caught exceptions and the count of uncaught ones.
// A fiber that suspends inside a catch block or a destructor during unwinding
// takes them along, so that they follow it to another thread and do not leak
// into the fibers that run meanwhile.
struct eh_globals {
  void* m_caught;
  unsigned int m_uncaught;
};

void save_eh(const worker& w, fiber* f) noexcept {
  auto* g = static_cast<eh_globals*>(w.m_eh_globals);
  if (g->m_caught == nullptr && g->m_uncaught == 0) return;
  f->m_eh_caught = g->m_caught;
  f->m_eh_uncaught = g->m_uncaught;
  f->m_has_eh = true;
  g->m_caught = nullptr;
  g->m_uncaught = 0;
}

void restore_eh(const worker& w, fiber* f) noexcept {
  if (!f->m_has_eh) return;
  auto* g = static_cast<eh_globals*>(w.m_eh_globals);
  g->m_caught = f->m_eh_caught;
  g->m_uncaught = f->m_eh_uncaught;
  f->m_has_eh = false;
}

struct switch_record {
  jump_header m_jump;  // first: the context layer reads it
  worker* m_worker;    // the switching thread's worker: the thread that runs m_to next
  fiber* m_from;
  fiber* m_to;
  switch_action m_fn;
  void* m_arg;
};

// The resumed side of every switch: bookkeeping, then the switcher's action.
void after_switch(const switch_record* rec) noexcept {
  fiber* self = rec->m_to;
  fiber* prev = rec->m_from;
  const switch_action fn = rec->m_fn;
  void* arg = rec->m_arg;  // rec lives on prev's stack: read it before fn publishes prev
  // A jump continues on the thread that made it: the worker is the switcher's.
  worker& w = *rec->m_worker;
  w.set_current(self);
  counters::bump(w.m_counters.fiber_switches);
  restore_eh(w, self);
  if constexpr (k_instrumented) {
    if (w.m_trace != nullptr && self->m_in_job) {
      w.m_trace->record(trace_kind::run_resume, reinterpret_cast<std::uintptr_t>(self));
    }
  }
  if (fn != nullptr) fn(w, prev, arg);
}

std::size_t header_size() noexcept { return (sizeof(fiber) + 63) / 64 * 64; }

}  // namespace

fiber* create_fiber(scheduler& s) {
  stack_memory mem = allocate_stack(s.cfg().stack_size, header_size(), s.guards());
  auto* f = ::new (mem.top()) fiber{};
  f->m_sched = &s;
  f->m_activation = first_activation();
  f->m_stack = mem;
  f->m_resume.m_execute = &resume_fiber;
  f->m_real_limit = reinterpret_cast<std::uintptr_t>(mem.m_bottom) + stack_reserve(mem.m_size);
  f->m_stack_limit = f->m_real_limit;
  make_context(f->m_ctx, mem.m_bottom, mem.m_size);
  s.m_live_fibers.fetch_add(1, std::memory_order_relaxed);
  if (worker* w = current_worker()) counters::bump(w->m_counters.fibers_created);
  return f;
}

void destroy_fiber(fiber* f) noexcept {
  WEFT_ASSERT(current_worker() == nullptr || current_worker()->m_current != f, "destroy_fiber: f is not running");
  WEFT_ASSERT(!f->m_suspended, "destroy_fiber: f is not suspended in a job");
  scheduler& s = *f->m_sched;
  // Relaxed: a count. When it drops under the bound, stealing may resume:
  // wake a worker that parked over the bound (see worker::work_visible); the
  // full fence in notify_one() orders this decrement before its check for
  // parked workers (pairs with the fence in prepare_park(), before the
  // parker's over_fiber_bound()).
  if (s.m_live_fibers.fetch_sub(1, std::memory_order_relaxed) == s.fiber_bound()) s.sleepers().notify_one();
  destroy_context(f->m_ctx);
  stack_memory mem = f->m_stack;
  f->~fiber();
  free_stack(mem);
}

namespace {

// The activations a thread takes from the process's count at a time: a call
// from outside takes a fresh one for its thread's stack (adopt_thread), and
// so makes no read-modify-write of a shared counter but one per block.
constexpr std::uintptr_t k_activation_block = 64;
std::atomic<std::uintptr_t> g_activations{0};
// The thread's block: the values in (t_next, t_end] not handed out yet.
constinit thread_local std::uintptr_t t_next_activation __attribute__((tls_model("initial-exec"))) = 0;
constinit thread_local std::uintptr_t t_end_activation __attribute__((tls_model("initial-exec"))) = 0;

}  // namespace

// Out of line: it reads thread-locals, and its callers may run on fibers
// that change threads (see this_thread_worker()).
WEFT_NOINLINE std::uintptr_t first_activation() noexcept {
  // Multiples of 4, never 0: never those of worker::begin_activation (2 mod 4).
  if (t_next_activation == t_end_activation) {
    t_next_activation = g_activations.fetch_add(k_activation_block, std::memory_order_relaxed);
    t_end_activation = t_next_activation + k_activation_block;
  }
  return ++t_next_activation << 2;
}

void adopt_thread(fiber& f, scheduler& s) noexcept {
  f.m_sched = &s;
  f.m_activation = first_activation();
  f.m_stack_limit = 0;
  f.m_real_limit = 0;
  adopt_thread_context(f.m_ctx);
}

void* this_thread_eh_globals() noexcept { return abi::__cxa_get_globals(); }

namespace {

// The switch itself: rec lives where the resumed side reads it.
inline void switch_with(worker& w, switch_record& rec, bool from_dies) noexcept {
  WEFT_ASSERT(current_worker() == &w, "switch_to: w is the calling thread's worker");
  WEFT_ASSERT(rec.m_to != rec.m_from && rec.m_to != nullptr, "switch_to: to is another fiber");
  WEFT_ASSERT(rec.m_to->m_pinned == nullptr || rec.m_to->m_pinned == w.m_caller,
              "switch_to: a borrowing thread's own stack resumes only on that thread");
  save_eh(w, rec.m_from);
  if constexpr (k_instrumented) {
    if (w.m_trace != nullptr && rec.m_from->m_in_job) w.m_trace->record(trace_kind::run_end);
  }
  after_switch(reinterpret_cast<const switch_record*>(jump(rec.m_to->m_ctx, &rec.m_jump, from_dies)));
}

// The running fiber of w leaves for `to` for good (it is never resumed).
// The record lives in the thread, not on the dying fiber's stack: the jump
// frees that fiber's AddressSanitizer fake stack, where a local whose
// address is taken lives when stack-use-after-return detection is on, before
// the resumed side reads the record. One per thread is enough: that side
// reads it at once, on this thread.
[[noreturn]] void leave_for_good(worker& w, fiber* to, switch_action fn, void* arg) noexcept {
  static thread_local switch_record t_leaving;
  fiber* from = w.m_current;
  t_leaving = switch_record{{&from->m_ctx}, &w, from, to, fn, arg};
  switch_with(w, t_leaving, true);
  __builtin_unreachable();
}

}  // namespace

void switch_to(worker& w, fiber* to, switch_action fn, void* arg) noexcept {
  fiber* from = w.m_current;
  switch_record rec{{&from->m_ctx}, &w, from, to, fn, arg};
  switch_with(w, rec, false);
}

void context_entry(jump_header* rec) noexcept {
  after_switch(reinterpret_cast<const switch_record*>(rec));
  scheduling_loop();
  // Shutdown: leave for the worker thread's own stack, for good.
  worker* w = current_worker();
  leave_for_good(*w, &w->m_native, &retire_fiber, nullptr);
}

}  // namespace weft::rt
