// SPDX-License-Identifier: MIT
// weft: C++20 coroutines on the same workers and queues as fibers.
//
//   weft::task<long> fib(int n) {
//     if (n < 2) co_return n;
//     auto [a, b] = co_await weft::when_all(fib(n - 1), fib(n - 2));
//     co_return a + b;
//   }
//   long r = weft::sync_wait(fib(30));
//
// A weft::task<T> is a lazily started coroutine. Awaiting it runs it inline (by
// symmetric transfer, so long chains of co_await do not grow the stack);
// when_all() and spawn() offer tasks to other workers. A coroutine never
// blocks a worker: it awaits weft's latch, barrier, mutex, loops and yields
// without holding a fiber. Protocol: docs/protocols/coroutine-resumption.md.
#pragma once

#include <climits>
#include <coroutine>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "weft/detail/entry.hpp"
#include "weft/detail/result.hpp"
#include "weft/detail/task.hpp"
#include "weft/detail/waiter.hpp"
#include "weft/detail/workspan.hpp"
#include "weft/parallelize.hpp"
#include "weft/runtime.hpp"
#include "weft/sync.hpp"
#include "weft/this_fiber.hpp"

namespace weft {

template <class T = void>
class [[nodiscard]] task;

namespace detail {

// A task descriptor that resumes a coroutine when a worker runs it.
// m_ws: the strand the coroutine goes on with where it resumes, null when
// not measured (<weft/workspan.hpp>); set by whoever queues this descriptor
// (transfer_to, the awaitables), so not initialised here.
struct coroutine_resumption : task {
  std::coroutine_handle<> m_handle;
  ws_strand* m_ws;

  coroutine_resumption() noexcept : task{&execute, nullptr} {}
  static void execute(task* t) noexcept {
    auto* self = static_cast<coroutine_resumption*>(t);
    if (self->m_ws != nullptr) [[unlikely]] {
      ws_restart(*self->m_ws);
    }
    self->m_handle.resume();
  }
};

// Where control goes next: straight to `next` by symmetric transfer, or, when
// the fiber stack is nearly full, through the worker's queue (the stack then
// unwinds). Symmetric transfer is a tail call only where the compiler makes
// it one (not in unoptimised or sanitizer builds), so every transfer checks.
inline std::coroutine_handle<> transfer_to(std::coroutine_handle<> next, coroutine_resumption& via) noexcept {
  if (!stack_low()) return next;
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
  static void* operator new(std::size_t size) { return allocate_task(size); }
  static void operator delete(void* p, std::size_t size) noexcept { free_task(p, size); }

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
  void unhandled_exception() noexcept { m_error = std::current_exception(); }
};

// A child of a when_all / spawn, offered to other workers.
struct child_slot {
  struct resumption : coroutine_resumption {
    promise_base* m_promise = nullptr;
    resumption() noexcept { m_execute = &run; }
    // Run by a worker that took the child from a queue.
    static void run(task* t) noexcept {
      auto* self = static_cast<resumption*>(t);
      self->m_promise->m_taken = true;
      self->m_handle.resume();
    }
  } m_resume;
  coroutine_resumption m_defer;  // a deferred inline start (not "taken")
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
  std::coroutine_handle<> m_parent;   // null: a spawned handle's destructor waits in wait(m_frame, 1)
  coroutine_resumption m_parent_via;  // for a deferred transfer to the parent
  child_slot* m_slots = nullptr;      // slots 1 .. m_count-1 were pushed; slot 0 runs inline
  int m_count = 0;
  int m_next = 0;  // next slot to pop back
  std::int64_t m_taken = 0;
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
    return transfer_to(slots[0].m_resume.m_handle, slots[0].m_defer);
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
    return transfer_to(m_slots[0].m_resume.m_handle, m_slots[0].m_defer);
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
        if (m_parent) return transfer_to(m_parent, m_parent_via);
        resume_waiter(m_frame);  // ~spawned waits: its fiber may destroy this state and the child at once
      }
      return std::noop_coroutine();
    }
    // The inline chain: run the next child that is still ours.
    while (m_next >= 1) {
      child_slot& s = m_slots[m_next--];
      if (!s.m_pushed || pop(&s.m_resume)) return transfer_to(s.m_resume.m_handle, s.m_defer);
      ++m_taken;  // a worker took it: it counts down when it finishes
    }
    if (m_taken == 0) return transfer_to(m_parent, m_parent_via);  // nothing was taken: no atomic operation
    const std::int64_t add = m_taken + join_frame::k_waiting;
    if (m_frame.m_pending.fetch_add(add, std::memory_order_acq_rel) + add == join_frame::k_waiting) {
      return transfer_to(m_parent, m_parent_via);
    }
    return std::noop_coroutine();  // the last taken child transfers to the parent
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

template <class T>
struct promise : promise_base {
  result<T> m_value;
  bool m_has_value = false;

  weft::task<T> get_return_object() noexcept;
  final_awaiter final_suspend() const noexcept { return {}; }
  template <class U>
  void return_value(U&& v) {
    auto make = [&]() -> T { return static_cast<T>(std::forward<U>(v)); };
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

template <class T>
using when_all_value = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

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

  bool valid() const noexcept { return static_cast<bool>(m_handle); }

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
      detail::coroutine_resumption m_start_via;   // a deferred start of the child
      detail::coroutine_resumption m_return_via;  // a deferred return to the parent
      bool await_ready() const noexcept { return false; }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<> parent) noexcept {
        m_child.promise().m_continuation = parent;
        m_child.promise().m_continuation_via = &m_return_via;
        m_child.promise().m_stage = detail::stage::started;  // also while its start is deferred
        return detail::transfer_to(m_child, m_start_via);    // the child runs now, on this thread
      }
      T await_resume() { return m_child.promise().take(); }
    };
    return awaiter{m_handle, {}, {}};
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

template <class T>
when_all_value<T> take_value(promise<T>& p) {
  if constexpr (std::is_void_v<T>) {
    p.take();
    return {};
  } else {
    return p.take();
  }
}

// Where a when_all awaitable stands: it is awaited once, and not after it was
// moved from.
enum class awaitable_state : unsigned char { ready, awaited, moved_from };

[[noreturn, gnu::cold, gnu::noinline]] inline void throw_when_all_misuse(awaitable_state s) {
  throw_invalid_argument(s == awaitable_state::moved_from
                             ? "weft::when_all: the awaitable was moved from (await the one it was moved into)"
                             : "weft::when_all: the awaitable was already awaited (a when_all is awaited once)");
}

inline constexpr const char* k_when_all_no_coroutine =
    "weft::when_all: one of tasks has no coroutine (moved from, default-constructed or already awaited)";
inline constexpr const char* k_when_all_being_awaited =
    "weft::when_all: one of tasks is being awaited by another coroutine (a task is awaited once)";

// The awaiter of when_all: owns the tasks; in the awaiting coroutine's frame.
template <class... T>
class [[nodiscard]] when_all_awaiter {
 public:
  explicit when_all_awaiter(weft::task<T>&&... tasks) : m_tasks(std::move(tasks)...) {}
  when_all_awaiter(const when_all_awaiter&) = delete;
  when_all_awaiter& operator=(const when_all_awaiter&) = delete;
  when_all_awaiter(when_all_awaiter&& o) noexcept
      : m_tasks(std::move(o.m_tasks)), m_state(std::exchange(o.m_state, awaitable_state::moved_from)) {}

  // Throws std::invalid_argument, before anything starts, if this awaitable
  // was moved from or awaited before.
  bool await_ready() {
    if (m_state != awaitable_state::ready) [[unlikely]] {
      throw_when_all_misuse(m_state);
    }
    m_state = awaitable_state::awaited;
    return false;
  }

  std::coroutine_handle<> await_suspend(std::coroutine_handle<> parent) noexcept {
    m_join.init(parent, m_slots, static_cast<int>(sizeof...(T)));
    wire(std::index_sequence_for<T...>{});
    return m_join.start(m_slots, static_cast<int>(sizeof...(T)));
  }

  std::tuple<when_all_value<T>...> await_resume() {
    m_join.end_measured();
    m_join.m_frame.rethrow_if_failed();
    return collect(std::index_sequence_for<T...>{});
  }

 private:
  template <std::size_t... I>
  void wire(std::index_sequence<I...>) noexcept {
    (m_join.wire(m_slots[I], std::get<I>(m_tasks).handle(), std::get<I>(m_tasks).handle().promise()), ...);
  }
  template <std::size_t... I>
  std::tuple<when_all_value<T>...> collect(std::index_sequence<I...>) {
    return std::tuple<when_all_value<T>...>(take_value(std::get<I>(m_tasks).handle().promise())...);
  }

  std::tuple<weft::task<T>...> m_tasks;
  join_state m_join;
  child_slot m_slots[sizeof...(T)];
  awaitable_state m_state = awaitable_state::ready;
};

}  // namespace detail

// Runs the tasks, the first inline and the others offered to other workers,
// and resumes the awaiting coroutine when all have finished, with a tuple of
// their results (std::monostate for weft::task<void>). If tasks throw, the first
// exception is rethrown after all have finished. Awaiting it costs no atomic
// operation when no other worker took a task. Throws std::invalid_argument if
// a task has no coroutine (moved from, default-constructed or already awaited)
// or another coroutine awaits it. The awaitable is awaited once; awaiting it
// again, or after it was moved from, throws std::invalid_argument.
template <class... T>
requires(sizeof...(T) >= 1) [[nodiscard]] detail::when_all_awaiter<T...> when_all(weft::task<T>&&... tasks) {
  (detail::checked(std::move(tasks), detail::k_when_all_no_coroutine, detail::k_when_all_being_awaited), ...);
  return detail::when_all_awaiter<T...>(std::move(tasks)...);
}

namespace detail {

// when_all over a vector of tasks: the same protocol with slots allocated once.
template <class T>
class [[nodiscard]] when_all_vector_awaiter {
 public:
  explicit when_all_vector_awaiter(std::vector<weft::task<T>>&& tasks)
      : m_tasks(std::move(tasks)), m_slots(m_tasks.size()) {}

  // Throws std::invalid_argument, before anything starts, if this awaitable
  // was awaited before (it cannot be moved).
  bool await_ready() {
    if (m_state != awaitable_state::ready) [[unlikely]] {
      throw_when_all_misuse(m_state);
    }
    m_state = awaitable_state::awaited;
    return m_tasks.empty();
  }

  std::coroutine_handle<> await_suspend(std::coroutine_handle<> parent) noexcept {
    m_join.init(parent, m_slots.data(), static_cast<int>(m_tasks.size()));
    for (std::size_t i = 0; i < m_tasks.size(); ++i) {
      m_join.wire(m_slots[i], m_tasks[i].handle(), m_tasks[i].handle().promise());
    }
    return m_join.start(m_slots.data(), static_cast<int>(m_slots.size()));
  }

  std::vector<when_all_value<T>> await_resume() {
    m_join.end_measured();
    m_join.m_frame.rethrow_if_failed();
    std::vector<when_all_value<T>> out;
    out.reserve(m_tasks.size());
    for (auto& t : m_tasks) out.push_back(take_value(t.handle().promise()));
    return out;
  }

 private:
  std::vector<weft::task<T>> m_tasks;
  std::vector<child_slot> m_slots;
  join_state m_join;
  awaitable_state m_state = awaitable_state::ready;
};

}  // namespace detail

// The same over a vector of tasks (at most INT_MAX): a vector of results.
template <class T>
[[nodiscard]] detail::when_all_vector_awaiter<T> when_all(std::vector<weft::task<T>>&& tasks) {
  if (tasks.size() > static_cast<std::size_t>(INT_MAX)) {
    detail::throw_invalid_argument("weft::when_all: tasks must hold at most INT_MAX tasks");
  }
  for (const auto& t : tasks) {
    if (!detail::awaitable(t)) [[unlikely]] {
      detail::throw_not_awaitable(t, detail::k_when_all_no_coroutine, detail::k_when_all_being_awaited);
    }
  }
  return detail::when_all_vector_awaiter<T>(std::move(tasks));
}

// A task already offered to other workers: spawn() starts it (a thief may
// take it at once) and co_await joins it, running it inline if nobody took it.
// Awaited at most once (a second co_await throws std::invalid_argument), by
// the coroutine that spawned it; not movable (its descriptor is queued). A
// handle destroyed without being awaited (an exception between spawn() and
// co_await, a discarded spawn()) takes its child back if nobody started it,
// and the child is destroyed unstarted; otherwise the destructor waits until
// the child has finished, suspending the calling fiber (never the thread),
// and drops what the child threw.
template <class T>
class [[nodiscard]] spawned {
 public:
  // Offers t to other workers. Throws std::invalid_argument, and offers
  // nothing, if t has no coroutine (moved from, default-constructed or
  // already awaited) or another coroutine awaits it.
  explicit spawned(weft::task<T>&& t)
      : m_task(detail::checked(std::move(t),
                               "weft::spawn: t has no coroutine (moved from, default-constructed or already awaited)",
                               "weft::spawn: t is being awaited by another coroutine (a task is awaited once)")) {
    m_join.init({}, &m_slot, 1);
    m_join.wire(m_slot, m_task.handle(), m_task.handle().promise());
    m_slot.m_pushed = detail::push(&m_slot.m_resume) == detail::push_status::pushed;
    if (!m_slot.m_pushed && detail::ws_spawn_measured()) [[unlikely]] {
      m_join.spawn_measured(m_slot);
    }
  }
  spawned(const spawned&) = delete;
  spawned& operator=(const spawned&) = delete;

  // Awaited: the child has finished (the coroutine resumed after the join).
  // Not awaited: the child, if it was offered, is either still queued where
  // this worker can pop it back (newest first), or someone else has it
  // (another worker's queue when the coroutine has moved since spawn(), a
  // thief, or done). Then wait: the child's final step, a taken child's
  // fetch_sub in join_state::child_done, sees m_parent null and resumes this
  // fiber (resume_waiter) if it observes k_waiting; wait()'s own add observes
  // it when the child finished first. Either way the child is suspended at
  // its final point when this returns, and ~task destroys it.
  ~spawned() {
    if (m_join.m_parent || !m_slot.m_pushed) return;
    if (detail::pop(&m_slot.m_resume)) return;  // nobody started it: ~task destroys it unstarted
    detail::wait(m_join.m_frame, 1);            // m_frame.m_error (the child's exception) is dropped
    m_join.end_measured();
  }

  // Throws std::invalid_argument if this handle was awaited before (its join
  // is over: m_parent is set once, by the first await).
  bool await_ready() const {
    if (m_join.m_parent) [[unlikely]] {
      detail::throw_invalid_argument("weft::spawn: the handle was already awaited (a spawn handle is awaited once)");
    }
    return false;
  }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> parent) noexcept {
    m_join.m_parent = parent;
    if (m_join.m_ws_parent != nullptr) [[unlikely]] {
      detail::ws_spawn_point(true);  // the spawner's strand waits for the child
    }
    if (!m_slot.m_pushed || detail::pop(&m_slot.m_resume)) {
      return detail::transfer_to(m_slot.m_resume.m_handle, m_slot.m_defer);  // run it inline now
    }
    // Taken by another worker: wait for it (it may be done already).
    const std::int64_t add = 1 + detail::join_frame::k_waiting;
    if (m_join.m_frame.m_pending.fetch_add(add, std::memory_order_acq_rel) + add == detail::join_frame::k_waiting) {
      return parent;
    }
    return std::noop_coroutine();
  }
  T await_resume() {
    m_join.end_measured();
    m_join.m_frame.rethrow_if_failed();
    return m_task.handle().promise().take();
  }

 private:
  weft::task<T> m_task;
  detail::join_state m_join;
  detail::child_slot m_slot;
};

// Starts t, offering it to other workers, and returns the handle to await.
// Throws std::invalid_argument if t has no coroutine or another coroutine
// awaits it (see spawned).
template <class T>
[[nodiscard]] spawned<T> spawn(weft::task<T>&& t) {
  return spawned<T>(std::move(t));
}

namespace detail {

// A coroutine that runs one task and signals a join frame when it ends:
// the bridge from a fiber or a thread into coroutines (sync_wait).
struct signal_task {
  struct promise_type {
    join_frame* m_frame = nullptr;
    static void* operator new(std::size_t size) { return allocate_task(size); }
    static void operator delete(void* p, std::size_t size) noexcept { free_task(p, size); }
    signal_task get_return_object() noexcept {
      return signal_task{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() const noexcept { return {}; }
    auto final_suspend() const noexcept {
      struct signal {
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<promise_type> h) const noexcept {
          ws_suspend_point();              // measured: the chain's last piece ends here
          complete(*h.promise().m_frame);  // last access: the waiter may destroy this frame now
        }
        void await_resume() const noexcept {}
      };
      return signal{};
    }
    void return_void() const noexcept {}
    void unhandled_exception() const noexcept {}  // the body catches everything
  };
  std::coroutine_handle<promise_type> m_handle;
};

template <class T>
signal_task run_task(weft::task<T>& t, result<T>& out, join_frame& frame) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(t);
    } else {
      T value = co_await std::move(t);
      auto get = [&]() -> T { return static_cast<T&&>(value); };
      out.emplace(get);
    }
  } catch (...) {
    frame.capture(std::current_exception());
  }
}

}  // namespace detail

// Runs t to completion from ordinary code and returns its result (or
// rethrows). Takes t over (sync_wait(f(...)), sync_wait(std::move(t))). On a
// worker it suspends the calling fiber, never the thread; outside any runtime
// it runs t in default_runtime() and blocks the thread. Throws
// std::invalid_argument, and leaves t as it was, if t has no coroutine (moved
// from, default-constructed or already awaited) or another coroutine awaits
// it.
template <class T>
T sync_wait(weft::task<T>&& t) {
  weft::task<T> owned = detail::checked(
      std::move(t), "weft::sync_wait: t has no coroutine (moved from, default-constructed or already awaited)",
      "weft::sync_wait: t is being awaited by another coroutine (a task is awaited once)");
  if (!weft::on_worker()) {
    return default_runtime().run([&]() -> T { return weft::sync_wait(std::move(owned)); });
  }
  detail::join_frame frame;
  detail::result<T> out;
  detail::signal_task runner = detail::run_task(owned, out, frame);
  runner.m_handle.promise().m_frame = &frame;
  frame.m_pending.store(1, std::memory_order_relaxed);  // counted: the runner signals once
  // Measured: the chain goes on with the caller's strand, wherever it
  // resumes; this fiber holds none while it waits.
  detail::ws_strand* strand = detail::ws_suspend_point();
  runner.m_handle.resume();  // runs inline until it first waits
  if (strand != nullptr) [[unlikely]] {
    detail::ws_set_current(nullptr);
  }
  detail::wait(frame, 0);
  if (strand != nullptr) [[unlikely]] {
    detail::ws_restart(*strand);
  }
  runner.m_handle.destroy();
  frame.rethrow_if_failed();
  return out.take();
}

// ---- awaitables for the rest of weft ----

// Gives way to the other ready work of this worker; resumes at once when
// there is none.
[[nodiscard]] inline auto yield_async() noexcept {
  struct [[nodiscard]] awaiter {
    detail::coroutine_resumption m_resume;
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      m_resume.m_handle = h;
      m_resume.m_ws = detail::ws_suspend_point();
      return detail::yield_task(&m_resume);  // false: nothing else to run, go on now
    }
    void await_resume() const noexcept {}
  };
  return awaiter{};
}

// Runs fn() as ordinary code with a real stack (it may call any weft function,
// block on weft's mutex, condition variable, latch, use deep recursion) and
// resumes with its result. A coroutine of weft always runs on a worker's fiber,
// so fn runs right there; if it waits, that fiber waits and the worker runs
// other work.
template <class F>
[[nodiscard]] auto on_fiber(F&& fn) {
  using result_type = std::invoke_result_t<F&>;
  struct [[nodiscard]] awaiter {
    F& m_fn;
    detail::result<result_type> m_value;
    std::exception_ptr m_error;
    bool await_ready() {
      try {
        m_value.emplace(m_fn);
      } catch (...) {
        m_error = std::current_exception();
      }
      return true;
    }
    void await_suspend(std::coroutine_handle<>) const noexcept {}
    result_type await_resume() {
      if (m_error) std::rethrow_exception(m_error);
      return m_value.take();
    }
  };
  return awaiter{fn, {}, {}};
}

// co_await parallelize_async(n, fn): parallelize(n, fn) without holding the
// awaiting coroutine's fiber: the loop runs as a task of this worker (other
// workers share it as usual) and resumes the coroutine when it is done.
template <std::integral I, std::invocable<I> F>
[[nodiscard]] auto parallelize_async(I n, F&& fn) {
  struct [[nodiscard]] awaiter : detail::task {
    I m_n;
    F& m_fn;
    std::coroutine_handle<> m_handle;
    std::exception_ptr m_error;

    awaiter(I n, F& fn) noexcept : detail::task{&execute, nullptr}, m_n(n), m_fn(fn) {}
    static void execute(detail::task* t) noexcept {
      auto* self = static_cast<awaiter*>(t);
      try {
        weft::parallelize(self->m_n, self->m_fn);
      } catch (...) {
        self->m_error = std::current_exception();
      }
      self->m_handle.resume();  // on this fiber: the coroutine goes on here
    }
    bool await_ready() const noexcept { return m_n == 0; }
    bool await_suspend(std::coroutine_handle<> h) {
      m_handle = h;
      if (detail::push(this) == detail::push_status::pushed) return true;
      weft::parallelize(m_n, m_fn);  // cannot queue it (stack nearly full): run it here
      return false;
    }
    void await_resume() const {
      if (m_error) std::rethrow_exception(m_error);
    }
  };
  if constexpr (std::is_signed_v<I>) {
    if (n < 0) detail::throw_invalid_argument("weft::parallelize_async: n must not be negative");
  }
  return awaiter(n, fn);
}

namespace detail {

// The waiting part of an awaitable on a weft::mutex, latch or barrier: the
// awaiting coroutine's resumption and its node in the object's wait queue.
struct async_waiter {
  coroutine_resumption m_resume;
  wait_node m_node;

  // The node that resumes the awaiting coroutine h, for the object's
  // *_async call (which queues it, or returns false when h goes on now).
  wait_node& node_for(std::coroutine_handle<> h) noexcept {
    m_resume.m_handle = h;
    m_resume.m_ws = ws_suspend_point();
    m_node.m_waiter.m_task = &m_resume;
    m_node.m_waiter.m_runtime = current_runtime();
    return m_node;
  }
};

}  // namespace detail

// co_await lock_async(m): locks m without holding a fiber while it waits (FIFO
// hand-off, as mutex::lock()). The coroutine owns m afterwards and must
// unlock it (std::unique_lock<weft::mutex> lock(m, std::adopt_lock)).
[[nodiscard]] inline auto lock_async(mutex& m) noexcept {
  struct [[nodiscard]] awaiter {
    mutex& m_mutex;
    detail::async_waiter m_wait;
    bool await_ready() noexcept { return m_mutex.try_lock(); }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      return detail::mutex_lock_async(m_mutex, m_wait.node_for(h));  // false: taken now
    }
    void await_resume() const noexcept {}
  };
  return awaiter{m, {}};
}

// co_await wait_async(l): waits until l's counter is zero without holding a
// fiber (also `co_await l`).
[[nodiscard]] inline auto wait_async(const latch& l) noexcept {
  struct [[nodiscard]] awaiter {
    const latch& m_latch;
    detail::async_waiter m_wait;
    bool await_ready() const noexcept { return m_latch.try_wait(); }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      return detail::latch_wait_async(m_latch, m_wait.node_for(h));  // false: open now
    }
    void await_resume() const noexcept {}
  };
  return awaiter{l, {}};
}

[[nodiscard]] inline auto operator co_await(const latch& l) noexcept { return wait_async(l); }

// co_await arrive_and_wait_async(b): b.arrive_and_wait() without holding a
// fiber while it waits. The arrival happens when the co_await begins; the
// arrival that completes the phase runs the completion step right there, and
// the coroutine goes on without touching b again. Throws what
// arrive_and_wait() throws (std::invalid_argument when no arrival is
// expected), before anything suspends. Awaited once.
template <class F>
[[nodiscard]] auto arrive_and_wait_async(barrier<F>& b) noexcept {
  struct [[nodiscard]] awaiter {
    barrier<F>& m_barrier;
    detail::barrier_token m_token;
    detail::async_waiter m_wait;
    bool await_ready() {
      m_token = detail::barrier_access::arrive(m_barrier, "weft::arrive_and_wait_async");
      return detail::barrier_core::completed(m_token) || detail::barrier_access::core(m_barrier).passed(m_token);
    }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      return detail::barrier_wait_async(detail::barrier_access::core(m_barrier), m_token,
                                        m_wait.node_for(h));  // false: over
    }
    void await_resume() const noexcept {}
  };
  return awaiter{b, {}, {}};
}

// co_await wait_async(b, std::move(arrival)): b.wait(std::move(arrival))
// without holding a fiber. Throws std::invalid_argument naming `arrival`,
// before anything suspends, if it comes from another barrier.
template <class F>
[[nodiscard]] auto wait_async(const barrier<F>& b, typename barrier<F>::arrival_token&& arrival) {
  const detail::barrier_core& core = detail::barrier_access::core(b);
  core.check_token(arrival, "weft::wait_async");
  struct [[nodiscard]] awaiter {
    const detail::barrier_core& m_core;
    detail::barrier_token m_token;
    detail::async_waiter m_wait;
    bool await_ready() const noexcept { return detail::barrier_core::completed(m_token) || m_core.passed(m_token); }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      return detail::barrier_wait_async(m_core, m_token, m_wait.node_for(h));  // false: over now
    }
    void await_resume() const noexcept {}
  };
  return awaiter{core, arrival, {}};
}

}  // namespace weft
