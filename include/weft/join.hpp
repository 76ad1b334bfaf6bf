// SPDX-License-Identifier: MIT
// weft: fork-join of two calls.
#pragma once

#include "weft/detail/cxx20.hpp"

#include <exception>
#include <functional>
#include <type_traits>
#include <utility>
#include <variant>

#include "weft/detail/entry.hpp"
#include "weft/detail/job.hpp"
#include "weft/detail/result.hpp"
#include "weft/detail/workspan.hpp"
#include "weft/runtime.hpp"

// Built without GCC's SLP vectorizer: the one function that makes a join's
// pair of doubles (join_fp_result below). The attribute adds
// the option to those given on the command line; GCC does not inline a
// function that carries it into one that does not.
#if defined(__GNUC__) && !defined(__clang__)
#define WEFT_DETAIL_NO_SLP __attribute__((optimize("no-tree-slp-vectorize")))
#else
#define WEFT_DETAIL_NO_SLP
#endif

namespace weft {

namespace detail {

// The half of a join that other workers may take: g, as a task descriptor in
// the joining frame, with the join's counter and g's result beside it (one
// address for the thief to reach them by).
template <class G, class R>
struct join_child : job {
  G& m_fn;
  join_frame m_frame;
  result<R> m_result;

  explicit join_child(G& fn) noexcept : job{&execute, nullptr}, m_fn(fn) {}

  static void execute(job* t) noexcept {
    auto* self = static_cast<join_child*>(t);
    join_frame& frame = self->m_frame;
    if (!frame.failed()) {
      try {
        self->m_result.emplace(self->m_fn);
      } catch (...) {
        frame.capture(std::current_exception());
      }
    }
    complete(frame);  // last access: the parent may return right after it
  }
};

// A result as a member of the pair a join returns: void as std::monostate, a
// const value without its const (a pair with a const move-only member could
// not be moved, nor returned through a run).
template <class T>
using join_value = std::conditional_t<std::is_void_v<T>, std::monostate, std::remove_cv_t<T>>;

template <class F, class G>
using join_result_t =
    std::conditional_t<std::is_void_v<std::invoke_result_t<F&>> && std::is_void_v<std::invoke_result_t<G&>>, void,
                       std::pair<join_value<std::invoke_result_t<F&>>, join_value<std::invoke_result_t<G&>>>>;

template <class T>
join_value<T> take_join_value(result<T>& r) {
  if constexpr (std::is_void_v<T>) {
    return {};
  } else {
    return r.take();
  }
}

// Runs f() with room on the stack, as an entry point of weft does: on a
// fresh fiber stack when the calling one is nearly full (on a worker), or in
// the default runtime (a thread's own stack, nearly full). At the entry of
// every algorithm of <weft/algorithm.hpp>, which may call the user's code
// with no other entry point between (one block, one worker, a sort's
// sample): a recursion through them stayed on one stack until it
// overflowed. On a worker that can get no fiber, f runs on the same
// nearly full stack: f must not reach with_stack_room again without making
// progress (a smaller part of its work), or it asks again without end.
template <class F>
std::invoke_result_t<F&> with_stack_room(F& f) {
  if (!stack_low_here()) [[likely]] {
    return f();
  }
  if (this_thread_view() == nullptr) return weft::default_runtime().run(f);
  return invoke_on_fresh_stack(f);
}

}  // namespace detail

namespace detail {

template <class F, class G>
join_result_t<F, G> join_measured(F& f, G& g);

// Both results are doubles: the pair is returned in two vector registers.
template <class R>
inline constexpr bool k_fp_pair = false;
template <>
inline constexpr bool k_fp_pair<std::pair<double, double>> = true;

// The pair of double results of a join, made out of line. Made in
// join_impl, at -O3 GCC's SLP vectorizer merged the two stores of a
// std::pair<double, double> into one 16-byte store, then reloaded it as two
// 8-byte halves to return them in two registers; the upper half cannot be
// forwarded from that store, and the stall (about 4 ns per join) made
// integrate at 1 worker about 1.35x slower (docs/benchmarks.md). Only this
// function goes without the vectorizer: the user's calls, inlined into
// join_impl, keep it.
template <class R, class A, class B>
[[gnu::noinline]] WEFT_DETAIL_NO_SLP R join_fp_result(result<A>& a, result<B>& b) {
  return R(a.take(), b.take());
}

// Both calls on the caller's stack, f first (g is skipped if f throws): a
// join that could not push g even from the fresh stack it moved to.
template <class F, class G>
join_result_t<F, G> join_here(F& f, G& g) {
  result<std::invoke_result_t<F&>> rf;
  rf.emplace(f);
  result<std::invoke_result_t<G&>> rg;
  rg.emplace(g);
  if constexpr (!std::is_void_v<join_result_t<F, G>>) {
    return join_result_t<F, G>(take_join_value(rf), take_join_value(rg));
  }
}

// The body of join(). Plain: the push of a measured join's own child, which
// carries its own accounting (push_plain()). Moved: the call runs where a
// join that could not push moved it (invoke_on_fresh_stack), which is the
// same nearly full stack when no fiber could be had.
template <bool Plain, bool Moved = false, class F, class G>
join_result_t<F, G> join_impl(F& f, G& g) {
  using rf_type = std::invoke_result_t<F&>;
  using rg_type = std::invoke_result_t<G&>;
  using return_type = join_result_t<F, G>;

  join_child<G, rg_type> child(g);
  join_frame& frame = child.m_frame;
  result<rg_type>& rg = child.m_result;
  const push_status pushed = Plain ? push_plain(&child) : push(&child);
  if (pushed != push_status::pushed) {
    if constexpr (!Plain) {  // the sides of a measured join run on a worker, never measured again
      if (pushed == push_status::not_on_worker) {
        auto again = [&]() -> return_type { return join_impl<false>(f, g); };
        return default_runtime().run(again);
      }
      if (ws_spawn_measured()) return join_measured(f, g);
    }
    if constexpr (Moved) {
      // Still no push after the move: no fiber could be had (the call runs on
      // the nearly full stack), or no memory for the deque. Asking again
      // would recurse without end: both calls here.
      return join_here(f, g);
    } else {
      auto again = [&]() -> return_type { return join_impl<Plain, true>(f, g); };  // the stack is nearly full
      return invoke_on_fresh_stack(again);
    }
  }

  result<rf_type> rf;
  bool f_threw = false;
  try {
    rf.emplace(f);
  } catch (...) {
    frame.capture(std::current_exception());
    f_threw = true;
  }
  // After the handler: a wait may run other tasks on this stack (no fiber to
  // be had), which must not see f's exception as theirs.
  if (f_threw) [[unlikely]] {
    // g is skipped unless it was taken: then the exception waits for it.
    // Always throws: f's capture failed the frame and stored an exception.
    if (!pop(&child)) wait(frame, 1);
    frame.rethrow_if_failed();
  }
  if (pop(&child)) {
    // Nobody else saw g: the frame is untouched, and an exception of g leaves
    // nothing behind it.
    rg.emplace(g);
  } else {
    wait(frame, 1);
    frame.rethrow_if_failed();
  }
  if constexpr (k_fp_pair<return_type>) {
    return join_fp_result<return_type>(rf, rg);
  } else if constexpr (!std::is_void_v<return_type>) {
    return return_type(take_join_value(rf), take_join_value(rg));
  }
}

// Runs one side of a measured join as its own strand.
struct ws_side {
  ws_strand& m_strand;
  ws_strand* m_previous;
  explicit ws_side(ws_strand& s) noexcept : m_strand(s), m_previous(ws_enter(s)) {}
  ws_side(const ws_side&) = delete;
  ws_side& operator=(const ws_side&) = delete;
  ~ws_side() { ws_leave(m_strand, m_previous); }
};

// A join on a measured strand (<weft/workspan.hpp>): each side a strand of its
// own, joined into the caller's when both are done.
template <class F, class G>
join_result_t<F, G> join_measured(F& f, G& g) {
  ws_fork fork;
  ws_fork_begin(fork);
  struct end_fork {
    ws_fork& m_fork;
    ~end_fork() { ws_fork_end(m_fork); }
  } end{fork};
  auto left = [&]() -> std::invoke_result_t<F&> {
    ws_side side(fork.m_left);
    return f();
  };
  auto right = [&]() -> std::invoke_result_t<G&> {
    ws_side side(fork.m_right);
    return g();
  };
  return join_impl<true>(left, right);
}

}  // namespace detail

// Runs f() and g(), possibly in parallel, and returns when both have returned.
// Returns void when both return void, else std::pair of both results (a void
// result is std::monostate, a const one is held without its const). g is offered to other workers while the caller
// runs f; if nobody took g the caller runs it next, with no atomic
// read-modify-write. If f throws, g is skipped unless it already started; the
// first exception is rethrown after both are done. May suspend the calling
// fiber (never failing for lack of one: see task_group::wait()); from outside
// a runtime it runs in default_runtime().
template <class F, class G>
detail::join_result_t<F, G> join(F&& f, G&& g) {
  return detail::join_impl<false>(f, g);
}

}  // namespace weft
