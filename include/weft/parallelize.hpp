// weft: parallel loops over integer ranges.
#pragma once

#include <concepts>
#include <cstdint>
#include <type_traits>

#include "weft/detail/export.hpp"

namespace weft {

namespace detail {

// A loop over the offsets [0, m_count), handed to the runtime. m_body runs the
// items of [begin, end) in a tight loop that the compiler sees whole.
struct loop {
  void (*m_body)(void* ctx, std::uint64_t begin, std::uint64_t end);
  void* m_ctx;
  std::uint64_t m_count;
  // Every call of m_body covers at least m_grain offsets, except when m_count
  // itself is smaller. Only meaningful when m_exact_chunks.
  std::uint64_t m_grain;
  // At most this many calls of m_body run at once; 0: no limit.
  std::uint64_t m_max_concurrency;
  // True when m_body's chunk boundaries are visible to the user (parallel_for):
  // the runtime then never cuts a chunk below m_grain.
  bool m_exact_chunks;
};

// Runs the loop; rethrows the first exception of the body after the running
// chunks finished (chunks not started by then are skipped). From outside a
// runtime it runs in default_runtime().
WEFT_API void run_loop(loop& l);

[[noreturn]] WEFT_API void throw_invalid_argument(const char* message);

template <class I>
constexpr void check_index_type() {
  static_assert(sizeof(I) <= sizeof(std::uint64_t), "weft: index types wider than 64 bits are not supported");
}

}  // namespace detail

// Calls fn(i) once for every i in [0, n), in parallel, and returns when all
// calls have returned. Throws std::invalid_argument if n is negative. May
// suspend the calling fiber; from outside a runtime it runs in
// default_runtime(). The first exception thrown by fn is rethrown after the
// running calls returned; calls not started by then are skipped.
template <std::integral I, std::invocable<I> F>
void parallelize(I n, F&& fn) {
  detail::check_index_type<I>();
  if constexpr (std::is_signed_v<I>) {
    if (n < 0) detail::throw_invalid_argument("weft::parallelize: n must not be negative");
  }
  if (n == 0) return;
  struct body {
    static void run(void* ctx, std::uint64_t begin, std::uint64_t end) {
      auto& f = *static_cast<std::remove_reference_t<F>*>(ctx);
      for (std::uint64_t k = begin; k < end; ++k) f(static_cast<I>(k));
    }
  };
  detail::loop l{&body::run, const_cast<void*>(static_cast<const volatile void*>(&fn)),
                 static_cast<std::uint64_t>(n), 1, 0, false};
  detail::run_loop(l);
}

// The same, with at most num_workers calls of fn running at the same time.
// Throws std::invalid_argument if n is negative or num_workers < 1.
template <std::integral I, std::invocable<I> F>
void parallelize(I n, int num_workers, F&& fn) {
  detail::check_index_type<I>();
  if constexpr (std::is_signed_v<I>) {
    if (n < 0) detail::throw_invalid_argument("weft::parallelize: n must not be negative");
  }
  if (num_workers < 1) detail::throw_invalid_argument("weft::parallelize: num_workers must be at least 1");
  if (n == 0) return;
  struct body {
    static void run(void* ctx, std::uint64_t begin, std::uint64_t end) {
      auto& f = *static_cast<std::remove_reference_t<F>*>(ctx);
      for (std::uint64_t k = begin; k < end; ++k) f(static_cast<I>(k));
    }
  };
  detail::loop l{&body::run, const_cast<void*>(static_cast<const volatile void*>(&fn)),
                 static_cast<std::uint64_t>(n), 1, static_cast<std::uint64_t>(num_workers), false};
  detail::run_loop(l);
}

// Calls fn(begin, end) on disjoint chunks that together cover [first, last),
// in parallel. Chunk sizes are chosen automatically. Throws
// std::invalid_argument if last < first.
template <std::integral I, std::invocable<I, I> F>
void parallel_for(I first, I last, F&& fn);

// The same; every chunk but the last holds at least grain items. Throws
// std::invalid_argument if last < first or grain < 1.
template <std::integral I, std::invocable<I, I> F>
void parallel_for(I first, I last, I grain, F&& fn);

namespace detail {

template <class I, class F>
void parallel_for_impl(I first, I last, std::uint64_t grain, bool exact, F& fn) {
  check_index_type<I>();
  if (last < first) throw_invalid_argument("weft::parallel_for: last must not be less than first");
  if (first == last) return;
  struct ctx {
    F& fn;
    std::uint64_t base;
    static void run(void* p, std::uint64_t begin, std::uint64_t end) {
      auto* c = static_cast<ctx*>(p);
      // Modular arithmetic: exact for every integral I, signed or not.
      c->fn(static_cast<I>(c->base + begin), static_cast<I>(c->base + end));
    }
  } c{fn, static_cast<std::uint64_t>(first)};
  const std::uint64_t count = static_cast<std::uint64_t>(last) - static_cast<std::uint64_t>(first);
  loop l{&ctx::run, &c, count, grain, 0, exact};
  run_loop(l);
}

}  // namespace detail

template <std::integral I, std::invocable<I, I> F>
void parallel_for(I first, I last, F&& fn) {
  detail::parallel_for_impl(first, last, 1, false, fn);
}

template <std::integral I, std::invocable<I, I> F>
void parallel_for(I first, I last, I grain, F&& fn) {
  if (grain < 1) detail::throw_invalid_argument("weft::parallel_for: grain must be at least 1");
  detail::parallel_for_impl(first, last, static_cast<std::uint64_t>(grain), true, fn);
}

}  // namespace weft
