// SPDX-License-Identifier: MIT
// weft: when_all (of a pack or a vector of tasks) and spawn: children
// offered to other workers, joined by the awaiting coroutine. Part of
// <weft/coroutine.hpp>.
#pragma once

#include "weft/detail/cxx20.hpp"

#include <climits>
#include <coroutine>
#include <cstddef>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/coroutine/task.hpp"
#include "weft/detail/entry.hpp"
#include "weft/detail/workspan.hpp"

namespace weft {

namespace detail {

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
  if constexpr (sizeof...(T) >= 2) {
    // The same task twice (when_all(std::move(t), std::move(t))): the second
    // would be moved from by the time the awaiter took it.
    const void* const coroutines[] = {tasks.handle().address()...};
    for (std::size_t i = 1; i < sizeof...(T); ++i) {
      for (std::size_t j = 0; j < i; ++j) {
        if (coroutines[i] == coroutines[j]) [[unlikely]] {
          detail::throw_invalid_argument("weft::when_all: the same task is passed twice (a task is awaited once)");
        }
      }
    }
  }
  return detail::when_all_awaiter<T...>(std::move(tasks)...);
}

namespace detail {

// An element of the vector when_all returns: the result, std::monostate for
// void, std::reference_wrapper<U> for a reference U& (a vector cannot hold
// references), and U for a const U (nor const elements).
template <class T>
using when_all_element = std::conditional_t<std::is_reference_v<T>, std::reference_wrapper<std::remove_reference_t<T>>,
                                            std::remove_cv_t<when_all_value<T>>>;

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

  std::vector<when_all_element<T>> await_resume() {
    m_join.end_measured();
    m_join.m_frame.rethrow_if_failed();
    std::vector<when_all_element<T>> out;
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

// The same over a vector of tasks (at most INT_MAX): a vector of results
// (std::reference_wrapper<U> for weft::task<U&>, U for weft::task<const U>).
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
  // A handle destroyed while a coroutine awaits it (awaited by another
  // coroutine than the one that destroys it, before its await returned)
  // aborts with one line, as ~task does: the awaiter could never be resumed.
  ~spawned() {
    if (m_join.m_parent) {
      if (!m_resumed) [[unlikely]] {
        detail::abort_with(
            "weft: a weft::spawn handle was destroyed while a coroutine awaited it (keep the handle alive until "
            "its co_await has returned)\n");
      }
      return;
    }
    if (!m_slot.m_pushed) return;
    if (detail::pop_anywhere(&m_slot.m_resume)) return;  // nobody started it: ~task destroys it unstarted
    detail::wait(m_join.m_frame, 1);                     // m_frame.m_error (the child's exception) is dropped
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
    if (!m_slot.m_pushed || detail::pop_anywhere(&m_slot.m_resume)) {
      return detail::transfer_to(m_slot.m_resume.m_handle, m_slot.m_resume);  // run it inline now
    }
    // Taken by another worker, or newer spawns are queued above it: those
    // are offered to idle workers (offer_spawns), rather than run one after
    // another here while this coroutine waits. Then wait for it (it may be
    // done already), and resume in this runtime whoever finishes it.
    detail::offer_spawns_if_idle(0);
    m_join.m_parent_runtime = detail::this_thread_runtime();
    const std::int64_t add = 1 + detail::join_frame::k_waiting;
    if (m_join.m_frame.m_pending.fetch_add(add, std::memory_order_acq_rel) + add == detail::join_frame::k_waiting) {
      // The child is done: its descriptor is in no queue, and carries the
      // transfer back when the stack is nearly full (no tail call where
      // symmetric transfer is none: awaits of finished spawns in a row).
      return detail::transfer_to(parent, m_slot.m_resume);
    }
    return std::noop_coroutine();
  }
  T await_resume() {
    m_resumed = true;
    m_join.end_measured();
    m_join.m_frame.rethrow_if_failed();
    return m_task.handle().promise().take();
  }

 private:
  weft::task<T> m_task;
  detail::join_state m_join;
  detail::child_slot m_slot;
  bool m_resumed = false;  // the await returned (or is returning): the join is over
};

// Starts t, offering it to other workers, and returns the handle to await.
// Throws std::invalid_argument if t has no coroutine or another coroutine
// awaits it (see spawned).
template <class T>
[[nodiscard]] spawned<T> spawn(weft::task<T>&& t) {
  return spawned<T>(std::move(t));
}

}  // namespace weft
