// SPDX-License-Identifier: MIT
// weft: sync_wait, which runs a task to completion from ordinary code (a
// fiber, or a thread outside any runtime). Part of <weft/coroutine.hpp>.
#pragma once

#include "weft/detail/cxx20.hpp"

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <type_traits>
#include <utility>

#include "weft/coroutine/task.hpp"
#include "weft/detail/entry.hpp"
#include "weft/detail/job.hpp"
#include "weft/detail/result.hpp"
#include "weft/detail/workspan.hpp"
#include "weft/runtime.hpp"
#include "weft/this_fiber.hpp"

namespace weft {

namespace detail {

// A coroutine that runs one task and signals a join frame when it ends:
// the bridge from a fiber or a thread into coroutines (sync_wait).
struct signal_task {
  struct promise_type {
    join_frame* m_frame = nullptr;
    static void* operator new(std::size_t size) { return allocate_job(size); }
    static void operator delete(void* p, std::size_t size) noexcept { free_job(p, size); }
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
signal_task signal_on_end(weft::task<T>& t, result<T>& out, join_frame& frame) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(t);
    } else {
      std::remove_cv_t<T> value = co_await std::move(t);  // a const move-only result is moved on
      auto get = [&]() -> T { return static_cast<std::remove_cv_t<T>&&>(value); };
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
  detail::signal_task runner = detail::signal_on_end(owned, out, frame);
  runner.m_handle.promise().m_frame = &frame;
  frame.m_pending.store(1, std::memory_order_relaxed);  // counted: the runner signals once
  // Measured: the chain goes on with the caller's strand, wherever it
  // resumes; this fiber holds none while it waits (ws_chain_returned keeps
  // the work of a chain that an awaitable of another library suspended).
  detail::ws_strand* strand = detail::ws_chain_begin();
  runner.m_handle.resume();  // runs inline until it first waits
  if (strand != nullptr) [[unlikely]] {
    detail::ws_chain_returned(*strand);
  }
  detail::wait(frame, 0);
  if (strand != nullptr) [[unlikely]] {
    detail::ws_restart(*strand);
  }
  runner.m_handle.destroy();
  frame.rethrow_if_failed();
  return out.take();
}

}  // namespace weft
