// SPDX-License-Identifier: MIT
// weft: compiled entry points that the public templates call. Not for users.
#pragma once

#include <cstdint>
#include <type_traits>

#include "weft/detail/export.hpp"
#include "weft/detail/job.hpp"
#include "weft/detail/job_memory.hpp"
#include "weft/detail/result.hpp"
#include "weft/detail/worker_view.hpp"

namespace weft::detail {

struct runtime_state;  // a runtime's scheduler, opaque to the public headers

// ---- spawning and joining (called on a worker, by the fiber that joins) ----

enum class push_status : int {
  pushed,         // t is on the calling worker's queue
  not_on_worker,  // the caller is not a worker: nothing was pushed
  stack_low,      // the current fiber stack is nearly full, or the caller runs a measured
                  // strand (ws_spawn_measured() says which): nothing was pushed
};

// Pushes t onto the calling worker's queue, where other workers may take it.
// Inline when t can go onto the private ring without a publication (a push
// needs one when the public deque looks empty: docs/protocols/deque.md,
// rules 8 and 10);
// push_slow() does the rest, and the whole push off a worker or on a nearly
// full or measured stack.
WEFT_API push_status push_slow(job* t) noexcept;
inline push_status push(job* t) noexcept {
  if (worker_view* view = this_thread_view(); view != nullptr && stack_pointer_here() >= view->m_spawn_limit) {
    if (view->private_push_ok()) {
      view->m_ring.push_counted(t);
      return push_status::pushed;
    }
  }
  return push_slow(t);
}
// The same, stack_low only when the stack is nearly full: the push of a
// measured spawn. Always in the library.
WEFT_API push_status push_plain(job* t) noexcept;

// Pops t back if it is still the newest task on the calling worker's queue.
// True: the caller owns t again and runs it itself (uncounted; counted as a
// task run by this worker). Inline when t is the newest private task;
// pop_slow() looks in the public deque. The caller is a worker (it pushed t;
// its fiber may run on another worker since, whose queue is then searched).
WEFT_API bool pop_slow(job* t) noexcept;
inline bool pop_from(worker_view& view, job* t) noexcept {
  job_ring& ring = view.m_ring;
  if (!ring.empty()) {
    if (ring.newest() != t) return false;  // a newer task, or t taken: never in the public part then
    ring.drop_newest_counted();
    return true;
  }
  return pop_slow(t);
}
inline bool pop(job* t) noexcept { return pop_from(*this_thread_view(), t); }
// The same where the caller may be off every worker (a coroutine resumed by
// a thread outside every runtime, by an awaitable of another kind): false
// there, and t stays queued where it is, for that worker or a thief to run.
inline bool pop_anywhere(job* t) noexcept {
  worker_view* view = this_thread_view();
  return view != nullptr && pop_from(*view, t);
}

// Publishes the calling worker's private tasks now, oldest first, and wakes
// a sleeping worker: work that other workers should find at once rather
// than at the caller's next scheduling point (a loop's split, a reduction's
// eager pieces). Nothing off a worker.
WEFT_API void offer_queued() noexcept;
// Before a wait that would run the caller's own spawns one after another (a
// group's wait, a when_all's children, an await of a spawn that is not the
// newest): publishes as many of the calling worker's oldest private tasks as
// other workers look for work (parked or searching, or one when a thief
// found nothing here), never the `keep` newest (what the caller runs next
// itself), and wakes a sleeping worker. A burst of long spawns then runs on
// the idle workers at once, not one after another on the caller while they
// sleep. Nothing off a worker, or with at most `keep` tasks private.
WEFT_API void offer_spawns(std::uint32_t keep) noexcept;
// offer_spawns(keep) where another worker may be looking for work (parked,
// searching, or asking this one): inline loads of three lines that change
// when a worker parks or wakes, starts or ends a search, or finds this
// worker's deque empty; a load and a compare in a runtime of one worker.
inline void offer_spawns_if_idle(std::uint32_t keep) noexcept {
  if (const worker_view* view = this_thread_view(); view != nullptr && view->m_ring.others_may_be_idle()) {
    offer_spawns(keep);
  }
}

// Waits until `taken` uncounted children and every counted child of f have
// completed. On a worker it suspends the calling fiber (never the thread);
// elsewhere it blocks the thread without spinning. Leaves f reusable.
WEFT_API void wait(join_counter& f, std::int64_t taken) noexcept;

// A child that was taken (not popped back by its parent) has finished: its
// last access to f. Any thread.
WEFT_API void complete(join_counter& f) noexcept;

// The caller's read-modify-write of f.m_pending observed k_waiting, so the
// party waiting in wait(f, ...) is the caller's to resume: resumes it (the
// notification half of complete(), for a child that did its own RMW). The
// caller's last access to f. Any thread.
WEFT_API void resume_waiter(join_counter& f) noexcept;

// ---- running elsewhere ----

// Runs fn(arg) as a root task of rt (the default runtime when rt is null) and
// waits for it, suspending the calling fiber or blocking the calling thread.
// Runs it inline when the caller already is a worker of rt. Rethrows what fn
// threw.
WEFT_API void run_root(runtime_state* rt, void (*fn)(void*), void* arg);
// The same; `site` names the call in the WEFT_WORKSPAN report (the code of
// the user's call: fn itself for run_root).
WEFT_API void run_root_at(runtime_state* rt, void (*fn)(void*), void* arg, const void* site);

// Runs fn(arg) on a fresh fiber stack of the calling worker and returns when
// it returned; rethrows what fn threw. The caller must be a worker.
WEFT_API void run_on_fresh_stack(void (*fn)(void*), void* arg);

// Runs f on a fresh fiber stack of the calling worker and returns its result.
template <class F>
std::invoke_result_t<F&> invoke_on_fresh_stack(F& f) {
  using result_type = std::invoke_result_t<F&>;
  struct call {
    F& fn;
    result<result_type> value;
    static void run(void* p) {
      auto* c = static_cast<call*>(p);
      c->value.emplace(c->fn);
    }
  } c{f, {}};
  run_on_fresh_stack(&call::run, &c);
  return c.value.take();
}

// True when the calling thread is a worker of rt.
WEFT_API bool on_runtime(const runtime_state* rt) noexcept;

// True when the calling worker's current fiber stack is nearly full (false
// outside a worker), measured or not.
WEFT_API bool stack_low() noexcept;

// Makes t runnable on the calling worker (uncounted: a continuation, not a
// spawn), or in the default runtime when called outside any worker.
WEFT_API void defer(job* t) noexcept;

// Makes t runnable in rt (uncounted, as defer()): on the calling worker when
// it is one of rt's, else through rt's injection queue. For a coroutine that
// must resume in its own runtime; whoever waits for t keeps rt alive.
WEFT_API void defer_to(runtime_state* rt, job* t) noexcept;

// The runtime of the calling worker, or null outside any runtime.
WEFT_API runtime_state* current_runtime() noexcept;

// Queues t behind the other ready work of the calling worker (a coroutine
// that yields). False, and nothing queued, when the caller is not a worker or
// the worker has nothing else to run.
WEFT_API bool yield_job(job* t) noexcept;

// Task memory (allocate_job, free_job): <weft/detail/job_memory.hpp>.

// ---- errors ----

// Throws std::invalid_argument(message): out of line, so that the checks of
// the public templates stay small.
[[noreturn]] WEFT_API void throw_invalid_argument(const char* message);

}  // namespace weft::detail
