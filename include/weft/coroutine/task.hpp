// SPDX-License-Identifier: MIT
// weft: weft::task<T>, a lazily started coroutine on weft's workers, with
// its promise and the join state that when_all and spawn share
// (docs/protocols/coroutine-resumption.md). Part of <weft/coroutine.hpp>.
#pragma once

#include "weft/detail/cxx20.hpp"

#include <coroutine>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <type_traits>
#include <utility>
#include <variant>

#include "weft/detail/entry.hpp"
#include "weft/detail/job.hpp"
#include "weft/detail/result.hpp"
#include "weft/detail/workspan.hpp"

namespace weft {
template <class T = void>
class [[nodiscard]] task;

namespace detail {

// A task descriptor that resumes a coroutine when a worker runs it.
// m_ws: the strand the coroutine goes on with where it resumes, null when
// not measured (<weft/workspan.hpp>); set by whoever queues this descriptor
// (transfer_to, the awaitables), so not initialised here.
struct coroutine_resumption : job {
  std::coroutine_handle<> m_handle;
  ws_strand* m_ws;

  coroutine_resumption() noexcept : job{&execute, nullptr} {}
  static void execute(job* t) noexcept {
    auto* self = static_cast<coroutine_resumption*>(t);
    if (self->m_ws != nullptr) [[unlikely]] {
      ws_restart(*self->m_ws);
    }
    self->m_handle.resume();
  }
};

// Runs a coroutine_resumption that transfer_to() deferred (its execute, out
// of line in the library): a join near the bottom of a full stack, which
// runs no other task there, tells such a continuation of existing work by
// this address (docs/architecture.md, "Stacks and fibers").
WEFT_API void resume_deferred(job* t) noexcept;

// Where control goes next: straight to `next` by symmetric transfer, or, when
// the stack is nearly full, through the worker's queue (the stack then
// unwinds); off any worker (a coroutine resumed on a plain thread by an
// awaitable of another library), the thread's own stack is checked, and
// the coroutine goes on in the default runtime. Symmetric transfer is a tail call only where the compiler makes
// it one (not in unoptimised or sanitizer builds), so every transfer checks.
// via: a descriptor that no queue holds, made whole here (a child's own
// m_resume once it is ours again: docs/protocols/coroutine-resumption.md).
inline std::coroutine_handle<> transfer_to(std::coroutine_handle<> next, coroutine_resumption& via) noexcept {
  if (!stack_low_here()) return next;
  via.m_execute = &resume_deferred;
  via.m_handle = next;
  via.m_ws = ws_suspend_point();
  defer(&via);
  return std::noop_coroutine();
}

struct join_state;

// Writes one line to stderr and aborts: misuse that a destructor finds and
// cannot report by an exception. Out of line, so the callers' paths stay short.
[[noreturn, gnu::cold, gnu::noinline]] inline void abort_with(const char* line) noexcept {
  std::fputs(line, stderr);
  std::abort();
}

// How far a task's coroutine has got: what the awaits check to refuse a task
// that another coroutine awaits, and ~task to refuse destroying it. A plain
// field, written by whoever starts or finishes the coroutine; a check sees
// the latest write when the program orders the check after it (a second
// await racing with the first one is not caught).
enum class stage : unsigned char {
  unstarted,  // not started, and no co_await has committed to start it
  started,    // a co_await committed to start it, or it has started: it runs,
              // or is suspended inside, and someone awaits it
  finished,   // at its final suspension point (done())
};

// What every task<T> promise has, whatever T.
struct promise_base {
  std::coroutine_handle<> m_continuation;              // who awaits this task with a plain co_await
  coroutine_resumption* m_continuation_via = nullptr;  // descriptor for a deferred transfer to it
  join_state* m_join = nullptr;                        // set when a when_all / spawn awaits it
  ws_strand* m_ws = nullptr;                           // its own strand, as a measured child of m_join
  bool m_taken = false;                                // a worker took it from a queue (it ran as a stolen child)
  stage m_stage = stage::unstarted;
  std::exception_ptr m_error;

  // Coroutine frames come from the per-worker recycling cache.
  static void* operator new(std::size_t size) { return allocate_job(size); }
  static void operator delete(void* p, std::size_t size) noexcept { free_job(p, size); }

  // Lazy start: whoever resumes the coroutine first (a co_await, a when_all
  // or spawn child run inline or taken, sync_wait's runner) starts the body,
  // and the resumption marks it started.
  struct initial_awaiter {
    promise_base& m_promise;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<>) const noexcept {}
    void await_resume() const noexcept {
      m_promise.m_stage = stage::started;
      if (m_promise.m_ws != nullptr) [[unlikely]] {
        ws_restart(*m_promise.m_ws);
      }
    }
  };
  initial_awaiter initial_suspend() noexcept { return {*this}; }
  void unhandled_exception() noexcept { m_error = current_exception_or_bad(); }
};

// A child of a when_all / spawn, offered to other workers.
struct child_slot {
  // The descriptor a thief takes. Once no queue holds it (never pushed,
  // popped back, or run by a thief whose child has finished), transfer_to()
  // may remake it into a plain deferred resumption: of the child's inline
  // start (not "taken"), or, in slot 0, of the parent after the last child.
  struct resumption : coroutine_resumption {
    promise_base* m_promise = nullptr;
    resumption() noexcept { m_execute = &run; }
    // Run by a worker that took the child from a queue.
    static void run(job* t) noexcept {
      auto* self = static_cast<resumption*>(t);
      self->m_promise->m_taken = true;
      self->m_handle.resume();  // last access: a deferred transfer may remake *self
    }
  } m_resume;
  bool m_pushed = false;
  ws_strand m_strand;  // the child's strand when measured
};

// The join of children of one when_all / spawn, in the awaiting coroutine's
// frame. Same counter protocol as a fiber join (docs/protocols/join.md): the
// child that runs inline pops the next pushed child back and transfers to it
// (no atomic operation while nothing was stolen); children that were taken
// count down when they finish; whoever brings the count to "waiting"
// transfers to the parent. The one exception: the destructor of a spawned
// handle that was never awaited waits for its taken child with
// wait(m_frame, 1), suspending its fiber; m_parent stays null then, and the
// child wakes that fiber instead (resume_waiter).
struct join_state {
  join_frame m_frame;
  std::coroutine_handle<> m_parent;  // null: a spawned handle's destructor waits in wait(m_frame, 1)
  child_slot* m_slots = nullptr;     // slots 1 .. m_count-1 were pushed; slot 0 runs inline
  int m_count = 0;
  int m_next = 0;  // next slot to pop back
  std::int64_t m_taken = 0;
  // The runtime of the coroutine that awaits a spawned child another worker
  // took (set before the await's fetch_add; null for a when_all, whose
  // children are taken by workers of the awaiter's runtime). A child made in
  // another runtime finishes there, and the parent resumes in its own.
  runtime_state* m_parent_runtime = nullptr;
  // Measured (<weft/workspan.hpp>): the awaiting coroutine's strand, paused
  // while it waits, and the children's sums.
  ws_strand* m_ws_parent = nullptr;
  ws_sync_slot m_ws;

  // Takes the `count` children in `slots` for the awaiting coroutine
  // `parent` (null for a spawned handle until it is awaited); wire() each.
  void init(std::coroutine_handle<> parent, child_slot* slots, int count) noexcept {
    m_parent = parent;
    m_slots = slots;
    m_count = count;
    m_next = count - 1;
  }
  // The child in `slot` (one of m_slots) is the coroutine h, whose promise
  // is p.
  void wire(child_slot& slot, std::coroutine_handle<> h, promise_base& p) noexcept {
    p.m_join = this;
    slot.m_resume.m_handle = h;
    slot.m_resume.m_promise = &p;
  }
  // Starts the children of a when_all: offers children 1.. to other workers,
  // oldest first, and runs child 0 now. slots and count: m_slots and
  // m_count, passed so that they are not read back from memory after each
  // push (and a when_all of a fixed count unrolls).
  std::coroutine_handle<> start(child_slot* slots, int count) noexcept {
    for (int i = 1; i < count; ++i) {
      slots[i].m_pushed = push(&slots[i].m_resume) == push_status::pushed;
      if (!slots[i].m_pushed && i == 1 && ws_spawn_measured()) [[unlikely]] {
        return start_measured();  // nothing pushed yet
      }
    }
    // Children 1.. offered to idle workers at once while child 0 runs here,
    // not one at a time after it (offer_spawns). A when_all of two pushes
    // one, published by the push itself when the deque looked empty: no
    // more to offer.
    if (count > 2) offer_spawns_if_idle(0);
    return transfer_to(slots[0].m_resume.m_handle, slots[0].m_resume);
  }

  // Starts the children of a measured when_all, each as a strand of its own:
  // child 0 inline, the others offered to other workers. Out of line and
  // cold: the awaits that are not measured stay as short as before.
  [[gnu::noinline, gnu::cold]] std::coroutine_handle<> start_measured() noexcept {
    ws_strand* parent = ws_spawn_point(true);
    m_ws_parent = parent;
    m_ws.start();
    for (int i = 0; i < m_count; ++i) {
      child_slot& c = m_slots[i];
      ws_child_init(c.m_strand, *parent, i != 0);
      c.m_resume.m_promise->m_ws = &c.m_strand;
      if (i != 0) c.m_pushed = push_plain(&c.m_resume) == push_status::pushed;
    }
    return transfer_to(m_slots[0].m_resume.m_handle, m_slots[0].m_resume);
  }
  // The awaiting coroutine resumes: its strand goes on after the children.
  void end_measured() noexcept {
    if (m_ws_parent != nullptr) [[unlikely]] {
      join_measured();
    }
  }
  [[gnu::noinline, gnu::cold]] void join_measured() noexcept { ws_join(*m_ws_parent, m_ws.get()); }
  // A spawned child `slot` of a measured spawner, before it is offered:
  // a strand of its own from here; the spawner's goes on.
  [[gnu::noinline, gnu::cold]] void spawn_measured(child_slot& slot) noexcept {
    ws_strand* parent = ws_spawn_point(false);
    m_ws_parent = parent;
    m_ws.start();
    ws_child_init(slot.m_strand, *parent, true);
    slot.m_resume.m_promise->m_ws = &slot.m_strand;
    slot.m_pushed = push_plain(&slot.m_resume) == push_status::pushed;
  }

  // A child finished (its final suspension point): where to continue.
  std::coroutine_handle<> child_done(promise_base& p) noexcept {
    if (p.m_error) m_frame.capture(p.m_error);
    if (p.m_taken) {
      // acq_rel: publishes this child's result; the last one sees the others'.
      // Partner: the waiter's fetch_add (the chain's below, spawned's, or
      // publish_join's in wait()), which wrote m_parent or m_frame.m_waiter
      // before it: read here only after observing k_waiting.
      if (m_frame.m_pending.fetch_sub(1, std::memory_order_acq_rel) - 1 == join_frame::k_waiting) {
        if (m_parent) {
          if (m_parent_runtime != nullptr && m_parent_runtime != this_thread_runtime()) [[unlikely]] {
            return to_parent_in(m_parent_runtime);
          }
          return to_parent();
        }
        resume_waiter(m_frame);  // ~spawned waits: its fiber may destroy this state and the child at once
      }
      return std::noop_coroutine();
    }
    // The inline chain: run the next child that is still ours.
    while (m_next >= 1) {
      child_slot& s = m_slots[m_next--];
      if (!s.m_pushed || pop_anywhere(&s.m_resume)) return transfer_to(s.m_resume.m_handle, s.m_resume);
      ++m_taken;  // a worker took it: it counts down when it finishes
    }
    if (m_taken == 0) return to_parent();  // nothing was taken: no atomic operation
    const std::int64_t add = m_taken + join_frame::k_waiting;
    if (m_frame.m_pending.fetch_add(add, std::memory_order_acq_rel) + add == join_frame::k_waiting) {
      return to_parent();
    }
    return std::noop_coroutine();  // the last taken child transfers to the parent
  }
  // Every child has finished: slot 0's descriptor is in no queue (child 0
  // ran inline in a when_all; a spawned child's was popped back or run) and
  // carries a deferred transfer to the parent.
  std::coroutine_handle<> to_parent() noexcept { return transfer_to(m_parent, m_slots[0].m_resume); }
  // The same, for a parent that awaits in runtime rt while this child ran in
  // another (a spawn handle made in one runtime and awaited in another): the
  // parent resumes in rt, which its own root keeps alive, so that it never
  // waits on behalf of a runtime that may be destroyed meanwhile.
  [[gnu::noinline, gnu::cold]] std::coroutine_handle<> to_parent_in(runtime_state* rt) noexcept {
    coroutine_resumption& via = m_slots[0].m_resume;
    via.m_execute = &coroutine_resumption::execute;
    via.m_handle = m_parent;
    via.m_ws = nullptr;  // not this thread's strand: the parent's own goes on in end_measured()
    defer_to(rt, &via);
    return std::noop_coroutine();
  }
};

struct final_awaiter {
  bool await_ready() const noexcept { return false; }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
    promise_base& p = h.promise();
    p.m_stage = stage::finished;  // before the transfer: the awaiter may destroy the frame at once
    if (p.m_ws != nullptr) [[unlikely]] {
      ws_child_end(*p.m_ws, p.m_join->m_ws.get());  // before child_done() publishes this child's end
    }
    if (p.m_join != nullptr) return p.m_join->child_done(p);
    if (p.m_continuation) return transfer_to(p.m_continuation, *p.m_continuation_via);
    return std::noop_coroutine();
  }
  void await_resume() const noexcept {}
};

// What `co_return v` (v of type U&&) may hand to a task<T>.
template <class T, class U>
concept returnable = (!std::is_reference_v<T> && std::is_convertible_v<U&&, T>) ||
                     (std::is_reference_v<T> && std::is_lvalue_reference_v<T> == std::is_lvalue_reference_v<U> &&
                      std::is_convertible_v<std::remove_reference_t<U>*, std::remove_reference_t<T>*>);

template <class T>
struct promise : promise_base {
  // The promise lives in the coroutine's frame, which operator new above
  // allocates with the default alignment (g++ 12 passes no alignment to it).
  static_assert(alignof(result<T>) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__,
                "weft::task<T>: over-aligned result types are not supported (coroutine frames get the default "
                "alignment); return a pointer or a wrapper with the default alignment");

  result<T> m_value;
  bool m_has_value = false;

  weft::task<T> get_return_object() noexcept;
  final_awaiter final_suspend() const noexcept { return {}; }
  // co_return v: T copy-initialised from v, as a plain return would (no
  // explicit conversion; `co_return {...}` makes a T). A reference result
  // binds only to an object of its type or a derived one, never to a
  // temporary that would be gone when the awaiter reads it.
  template <class U = T>
  requires(returnable<T, U>) void return_value(U&& v) {
    auto make = [&]() -> T { return std::forward<U>(v); };
    m_value.emplace(make);
    m_has_value = true;
  }
  T take() {
    if (m_error) std::rethrow_exception(m_error);
    return m_value.take();
  }
};

template <>
struct promise<void> : promise_base {
  weft::task<void> get_return_object() noexcept;
  final_awaiter final_suspend() const noexcept { return {}; }
  void return_void() const noexcept {}
  void take() {
    if (m_error) std::rethrow_exception(m_error);
  }
};

// A task's result as an element of what when_all returns: void as
// std::monostate, a const value without its const (a const move-only
// element could not be moved into the tuple or the vector), as a join's.
template <class T>
using when_all_value = std::conditional_t<std::is_void_v<T>, std::monostate, std::remove_cv_t<T>>;

// True when t can be awaited: it holds a coroutine that has not started (a
// task awaited to completion is finished, one that another coroutine awaits
// has started) and that no co_await has committed to start.
template <class T>
bool awaitable(const weft::task<T>& t) noexcept {
  return t.handle() && t.handle().promise().m_stage == stage::unstarted;
}

// Throws std::invalid_argument for a task that awaitable() refused:
// `no_coroutine` when it has none or its coroutine has finished,
// `being_awaited` when its coroutine has started and not finished.
template <class T>
[[noreturn, gnu::cold, gnu::noinline]] void throw_not_awaitable(const weft::task<T>& t, const char* no_coroutine,
                                                                const char* being_awaited) {
  const bool started = t.handle() && t.handle().promise().m_stage == stage::started;
  throw_invalid_argument(started ? being_awaited : no_coroutine);
}

// t itself; throws std::invalid_argument when it cannot be awaited (before
// anything is moved).
template <class T>
weft::task<T>&& checked(weft::task<T>&& t, const char* no_coroutine, const char* being_awaited) {
  if (!awaitable(t)) [[unlikely]] {
    throw_not_awaitable(t, no_coroutine, being_awaited);
  }
  return std::move(t);
}

// Destroys a task's coroutine; aborts if it has started and not finished.
template <class P>
void destroy_unless_awaited(std::coroutine_handle<P> h) noexcept {
  if (h.promise().m_stage == stage::started) [[unlikely]] {
    abort_with(
        "weft: a weft::task was destroyed while it was awaited (its coroutine had started and not finished, "
        "and whoever awaits it could never be resumed)\n");
  }
  h.destroy();
}

}  // namespace detail

// A lazily started coroutine returning T. Move-only; destroying a task that
// was not awaited destroys its coroutine unstarted. Awaiting it (once) runs it
// inline and yields its result or rethrows its exception. Awaiting a task
// that has no coroutine (moved from, default-constructed, or already awaited:
// its coroutine has finished), or one that another coroutine is awaiting (its
// coroutine has started and not finished), throws std::invalid_argument:
// co_await, sync_wait, when_all and spawn all check. Destroying (or assigning
// over) a task while it is awaited aborts the process with a `weft:` line.
template <class T>
class [[nodiscard]] task {
 public:
  using promise_type = detail::promise<T>;
  using handle_type = std::coroutine_handle<promise_type>;

  task() noexcept = default;
  explicit task(handle_type h) noexcept : m_handle(h) {}
  task(task&& o) noexcept : m_handle(std::exchange(o.m_handle, {})) {}
  task& operator=(task&& o) noexcept {
    if (this != &o) {
      if (m_handle) detail::destroy_unless_awaited(m_handle);
      m_handle = std::exchange(o.m_handle, {});
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() {
    if (m_handle) detail::destroy_unless_awaited(m_handle);
  }

  // True when this task holds a coroutine that has not finished: false when
  // it was default-constructed, moved from, or awaited to completion (all of
  // which awaiting refuses as "no coroutine"). Still true while another
  // coroutine awaits it.
  bool valid() const noexcept { return m_handle && m_handle.promise().m_stage != detail::stage::finished; }

  // Throws std::invalid_argument, before anything suspends, if this task has
  // no coroutine, its coroutine has finished, or another coroutine awaits it.
  auto operator co_await() && {
    if (!detail::awaitable(*this)) [[unlikely]] {
      detail::throw_not_awaitable(
          *this,
          "weft::task: co_await on a task that has no coroutine (moved from, default-constructed or already "
          "awaited)",
          "weft::task: co_await on a task that is being awaited by another coroutine (a task is awaited once)");
    }
    struct awaiter {
      handle_type m_child;
      // A deferred start of the child, then a deferred return to the parent
      // (the child has run by then).
      detail::coroutine_resumption m_via;
      bool await_ready() const noexcept { return false; }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<> parent) noexcept {
        m_child.promise().m_continuation = parent;
        m_child.promise().m_continuation_via = &m_via;
        m_child.promise().m_stage = detail::stage::started;  // also while its start is deferred
        return detail::transfer_to(m_child, m_via);          // the child runs now, on this thread
      }
      T await_resume() { return m_child.promise().take(); }
    };
    return awaiter{m_handle, {}};
  }
  auto operator co_await() & { return std::move(*this).operator co_await(); }

  handle_type handle() const noexcept { return m_handle; }

 private:
  handle_type m_handle;
};

namespace detail {

template <class T>
weft::task<T> promise<T>::get_return_object() noexcept {
  return weft::task<T>(std::coroutine_handle<promise<T>>::from_promise(*this));
}
inline weft::task<void> promise<void>::get_return_object() noexcept {
  return weft::task<void>(std::coroutine_handle<promise<void>>::from_promise(*this));
}

}  // namespace detail
}  // namespace weft
