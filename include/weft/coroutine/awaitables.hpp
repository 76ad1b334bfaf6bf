// SPDX-License-Identifier: MIT
// weft: awaitables for the rest of weft: yield, a call on a fiber, loops,
// and weft's mutex, latch and barrier, awaited without holding a fiber.
// Part of <weft/coroutine.hpp>.
#pragma once

#include "weft/detail/cxx20.hpp"

#include <concepts>
#include <coroutine>
#include <exception>
#include <type_traits>
#include <utility>

#include "weft/coroutine/task.hpp"
#include "weft/detail/entry.hpp"
#include "weft/detail/waiter.hpp"
#include "weft/detail/workspan.hpp"
#include "weft/parallelize.hpp"
#include "weft/sync.hpp"
#include "weft/this_fiber.hpp"

namespace weft {

// Gives way to the other ready work of this worker; resumes at once when
// there is none.
[[nodiscard]] inline auto yield_async() noexcept {
  struct [[nodiscard]] awaiter {
    detail::coroutine_resumption m_resume;
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      m_resume.m_handle = h;
      m_resume.m_ws = detail::ws_suspend_point();
      return detail::yield_job(&m_resume);  // false: nothing else to run, go on now
    }
    void await_resume() const noexcept {}
  };
  return awaiter{};
}

namespace detail {

// Whether an awaitable moves the callable it was given into itself: an
// rvalue (a temporary, or std::move of a named one) of a type that is not
// const, not polymorphic (a base's reference moved in would be sliced) and
// implicitly move-constructible. The awaitable may then be kept and awaited
// after the full expression that made it. Any other callable, an lvalue
// above all, is referred to: its owner keeps it, and it must outlive the
// await.
template <class F, class C = std::remove_reference_t<F>>
inline constexpr bool k_holds_by_value =
    !std::is_lvalue_reference_v<F> && !std::is_const_v<C> && !std::is_volatile_v<C> && !std::is_polymorphic_v<C> &&
    std::is_convertible_v<C&&, C> && std::constructible_from<C, C&&>;

// How an awaitable holds the callable it was given (see k_holds_by_value).
template <class F>
using held_callable = std::conditional_t<k_holds_by_value<F>, std::remove_cvref_t<F>, std::remove_reference_t<F>&>;

// What initialises a held_callable<F> from fn, the parameter F&& fn: fn
// itself when it is held by reference, else fn as an rvalue (moved in).
template <class F>
constexpr decltype(auto) hold(std::remove_reference_t<F>& fn) noexcept {
  if constexpr (k_holds_by_value<F>) {
    return static_cast<std::remove_reference_t<F>&&>(fn);
  } else {
    return (fn);
  }
}

// An awaitable lives in the awaiting coroutine's frame, which gets the default
// alignment of operator new (g++ 12 passes no alignment to a promise's
// operator new): a callable held there by value may not need more. Asked
// only of one held by value (a function, always referred to, has no alignof).
template <class F>
consteval bool held_aligned() {
  if constexpr (k_holds_by_value<F>) {
    return alignof(std::remove_cvref_t<F>) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__;
  } else {
    return true;
  }
}
template <class F>
inline constexpr bool k_held_aligned = held_aligned<F>();

}  // namespace detail

// Runs fn() as ordinary code with a real stack (it may call any weft function,
// block on weft's mutex, condition variable, latch, use deep recursion) and
// resumes with its result. A coroutine of weft always runs on a worker's fiber,
// so fn runs right there; if it waits, that fiber waits and the worker runs
// other work. fn gets the part of the fiber's stack the coroutines above it
// left: all but a few frames where symmetric transfer is a tail call (an
// optimised build), but in an unoptimised or sanitizer build each co_await of
// a chain keeps its frames, down to the stack's last 64 KiB (less for stacks
// below 256 KiB; then the chain goes on through the queue, on an empty
// stack). An rvalue fn (a temporary, or std::move(fn)) is moved into the
// awaitable; an lvalue is referred to, and must outlive the await (see
// detail::k_holds_by_value for the rvalues that are referred to as well).
template <class F>
[[nodiscard]] auto on_fiber_async(F&& fn) {
  using result_type = std::invoke_result_t<F&>;
  static_assert(alignof(detail::result<result_type>) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__,
                "weft::on_fiber_async: over-aligned result types are not supported (the awaitable keeps the result "
                "in the coroutine's frame, which gets the default alignment); return a pointer or a wrapper with "
                "the default alignment");
  static_assert(detail::k_held_aligned<F>,
                "weft::on_fiber_async: an over-aligned callable given as an rvalue would be moved into the "
                "coroutine's frame, which gets the default alignment; pass a named callable that lives outside "
                "the frame, or one that holds its over-aligned state by pointer");
  struct [[nodiscard]] awaiter {
    detail::held_callable<F> m_fn;
    detail::result<result_type> m_value;
    std::exception_ptr m_error;
    // Each await calls fn again: what an earlier await left (its result,
    // moved from or not, and its exception) goes first.
    bool await_ready() {
      m_error = nullptr;
      m_value.reset();
      try {
        m_value.emplace(m_fn);
      } catch (...) {
        m_error = detail::current_exception_or_bad();
      }
      return true;
    }
    void await_suspend(std::coroutine_handle<>) const noexcept {}
    result_type await_resume() {
      if (m_error) std::rethrow_exception(m_error);
      return m_value.take();
    }
  };
  return awaiter{detail::hold<F>(fn), {}, {}};
}

// The first name of on_fiber_async, kept for code written against it.
template <class F>
[[deprecated("weft::on_fiber is now weft::on_fiber_async")]] [[nodiscard]] auto on_fiber(F&& fn) {
  return on_fiber_async(std::forward<F>(fn));
}

// co_await parallelize_async(n, fn): parallelize(n, fn) without holding the
// awaiting coroutine's fiber: the loop runs as a task of this worker (other
// workers share it as usual) and resumes the coroutine when it is done. An
// rvalue fn (a temporary, or std::move(fn)) is moved into the awaitable; an
// lvalue is referred to, and must outlive the await (see
// detail::k_holds_by_value for the rvalues that are referred to as well).
// fn is called as an lvalue, as parallelize calls it: the same callables.
template <std::integral I, class F>
requires std::invocable<F&, I>
[[nodiscard]] auto parallelize_async(I n, F&& fn) {
  static_assert(detail::k_held_aligned<F>,
                "weft::parallelize_async: an over-aligned callable given as an rvalue would be moved into the "
                "coroutine's frame, which gets the default alignment; pass a named callable that lives outside "
                "the frame, or one that holds its over-aligned state by pointer");
  struct [[nodiscard]] awaiter : detail::job {
    I m_n;
    detail::held_callable<F> m_fn;
    std::coroutine_handle<> m_handle;
    std::exception_ptr m_error;

    awaiter(I count, F&& callable) noexcept(!detail::k_holds_by_value<F> ||
                                            std::is_nothrow_constructible_v<std::remove_cvref_t<F>, F&&>)
        : detail::job{&execute, nullptr}, m_n(count), m_fn(detail::hold<F>(callable)) {}
    static void execute(detail::job* t) noexcept {
      auto* self = static_cast<awaiter*>(t);
      try {
        weft::parallelize(self->m_n, self->m_fn);
      } catch (...) {
        self->m_error = detail::current_exception_or_bad();
      }
      self->m_handle.resume();  // on this fiber: the coroutine goes on here
    }
    // Each await runs the loop again: an earlier await's exception goes first.
    bool await_ready() noexcept {
      m_error = nullptr;
      return m_n == 0;
    }
    bool await_suspend(std::coroutine_handle<> h) {
      m_handle = h;
      if (detail::push(this) == detail::push_status::pushed) return true;
      // Not queued (off every worker, or the stack nearly full): run it here,
      // as a plain call of parallelize from this thread or fiber would.
      weft::parallelize(m_n, m_fn);
      return false;
    }
    void await_resume() const {
      if (m_error) std::rethrow_exception(m_error);
    }
  };
  if constexpr (std::is_signed_v<I>) {
    if (n < 0) detail::throw_invalid_argument("weft::parallelize_async: n must not be negative");
  }
  return awaiter(n, std::forward<F>(fn));
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
    m_node.m_waiter.m_job = &m_resume;
    m_node.m_waiter.m_runtime = current_runtime();
    return m_node;
  }
};

}  // namespace detail

// co_await lock_async(m): locks m without holding a fiber while it waits
// (queued in arrival order with mutex::lock()'s waiters; the unlock that
// reaches it wakes it with m free, and it competes for m as they do, going
// back to the head of the queue if a newcomer took m first). The coroutine
// owns m afterwards and must unlock it (std::unique_lock<weft::mutex>
// lock(m, std::adopt_lock)).
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
