// SPDX-License-Identifier: MIT
// weft: parallel loops over integer ranges.
#pragma once

#include "weft/detail/cxx20.hpp"

#include <atomic>
#include <concepts>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "weft/detail/entry.hpp"
#include "weft/detail/export.hpp"
#include "weft/detail/workspan.hpp"
#include "weft/join.hpp"
#include "weft/runtime.hpp"
#include "weft/this_fiber.hpp"

namespace weft {

namespace detail {

// The offsets a call of a loop's body runs: m_next is the first offset not
// started, m_stop where to stop. The body starts offset k by storing k + 1
// into m_next before it calls the user's function on k, and reads m_stop
// again after each call: when an item waits (its fiber suspends), the runtime
// lowers m_stop to m_next and hands the offsets not started to other workers,
// so that no item of a loop waits behind another one that waits. Compilers
// keep both in registers in a loop whose items make no call they cannot see
// into (nothing there can suspend), so the loop stays as tight as a plain one.
// Offsets are stored as loop_offset, a type of their own: by the aliasing
// rules a store to the cursor then changes no integer of the user's (an
// offset captured by the item), so the compiler may sink it out of the loop
// and vectorise (with std::uint64_t, GCC reloads every captured integer
// after each store and keeps the loop scalar).
enum class loop_offset : std::uint64_t {};
constexpr loop_offset to_offset(std::uint64_t k) noexcept { return static_cast<loop_offset>(k); }
constexpr std::uint64_t from_offset(loop_offset k) noexcept { return static_cast<std::uint64_t>(k); }
struct loop_cursor {
  loop_offset m_next;
  loop_offset m_stop;
};

// A loop over the offsets [0, m_count), handed to the runtime. m_body runs the
// items of the cursor in a tight loop that the compiler sees whole.
struct loop {
  void (*m_body)(void* ctx, loop_cursor& items);
  void* m_ctx;
  std::uint64_t m_count;
  // At most this many calls of m_body run at once; 0: no limit.
  std::uint64_t m_max_concurrency;
};

// Runs the loop; rethrows the first exception of the body after the running
// chunks finished (chunks not started by then are skipped). From outside a
// runtime it runs in default_runtime().
WEFT_API void run_loop(loop& l);

// On a worker, at a poll point of a divisible computation: true when a thief
// asked this worker for work and it had no queued task to offer instead (it
// offers one if it had), so the caller should split its work now.
WEFT_API bool split_wanted() noexcept;

// How a reduction splits its blocks, as the runtime decides it from the
// time of one block: forked eagerly down `m_depth` levels (about one piece
// per worker), below that only where a thief asks (split_wanted()), and never
// into halves of fewer than m_min_blocks blocks (0: never split).
struct reduce_plan {
  int m_depth = 0;
  std::uint64_t m_min_blocks = 0;
};

// The plan for `blocks` blocks of a reduction on the calling worker's
// runtime: runs sample(ctx) (one block) and times it, unless the runtime has
// one worker or there is one block (then sample is not called and the plan
// is never to split). Rethrows what sample throws.
WEFT_API reduce_plan plan_reduction(void (*sample)(void*), void* ctx, std::uint64_t blocks);

// An index type the loops can count in (each call's static_assert names it).
template <class I>
inline constexpr bool k_index_fits = sizeof(I) <= sizeof(std::uint64_t);

// J is an integral type other than I: the bounds of a loop that runs over
// their common type.
template <class J, class I>
concept other_integral = std::integral<J> && !std::same_as<J, I>;

// G is integral, and I, J and G are not all the same type.
template <class G, class I, class J>
concept integral_unless_same = std::integral<G> && !(std::same_as<I, J> && std::same_as<J, G>);

// The common type of the bounds of a loop whose bounds have different
// integral types, or void when they have none.
template <class... Is>
constexpr auto common_index_of() {
  if constexpr (requires { typename std::common_type_t<Is...>; }) {
    return std::type_identity<std::common_type_t<Is...>>{};
  } else {
    return std::type_identity<void>{};
  }
}
template <class... Is>
using common_index_t = typename decltype(common_index_of<Is...>())::type;

// True when C, the common type of a loop's bounds, can serve as its index
// type (the static_asserts of the mixed-type overloads say why when not).
template <class C>
inline constexpr bool k_usable_common_index = std::integral<C> && sizeof(C) <= sizeof(std::uint64_t);

// x converted to the common index type C; throws std::invalid_argument with
// message when x is negative and C unsigned (the only conversion to a common
// type that changes an integral value).
template <class C, class X>
C to_common_index(X x, const char* message) {
  if constexpr (std::is_signed_v<X> && std::is_unsigned_v<C>) {
    if (x < 0) throw_invalid_argument(message);
  }
  return static_cast<C>(x);
}

// The body of parallelize: fn(i) for the offsets of the cursor, one at a time
// (see loop_cursor).
template <class I, class F>
void run_items(void* ctx, loop_cursor& items) {
  auto& f = *static_cast<std::remove_reference_t<F>*>(ctx);
  std::uint64_t k = from_offset(items.m_next);
  while (k < from_offset(items.m_stop)) {
    items.m_next = to_offset(k + 1);
    static_cast<void>(f(static_cast<I>(k)));  // a result is dropped, [[nodiscard]] or not
    ++k;
  }
}

// The checks of parallelize's item count n.
template <class I>
void check_item_count(I n) {
  static_assert(k_index_fits<I>, "weft::parallelize: index types wider than 64 bits are not supported");
  if constexpr (std::is_signed_v<I>) {
    if (n < 0) throw_invalid_argument("weft::parallelize: n must not be negative");
  }
}

// The loop of both parallelize overloads, n checked: at most cap calls at a
// time (0: no cap).
template <class I, class F>
void parallelize_loop(I n, std::uint64_t cap, std::remove_reference_t<F>& fn) {
  if (n == 0) return;
  if constexpr (std::is_function_v<std::remove_reference_t<F>>) {
    // A function (parallelize(n, item)): called through a pointer, an
    // object whose address the loop can hold.
    auto* call = &fn;
    parallelize_loop<I, decltype(call)&>(n, cap, call);
  } else {
    loop l{&run_items<I, F>, const_cast<void*>(static_cast<const volatile void*>(&fn)), static_cast<std::uint64_t>(n),
           cap};
    run_loop(l);
  }
}

}  // namespace detail

// Calls fn(i) once for every i in [0, n), in parallel, and returns when all
// calls have returned. Throws std::invalid_argument if n is negative. May
// suspend the calling fiber; from outside a runtime it runs in
// default_runtime(). The first exception thrown by fn is rethrown after the
// running calls returned; calls not started by then are skipped.
template <std::integral I, class F>
requires std::invocable<F&, I>
void parallelize(I n, F&& fn) {
  detail::check_item_count(n);
  detail::parallelize_loop<I, F>(n, 0, fn);
}

// The same, with at most num_workers calls of fn running at the same time.
// Throws std::invalid_argument if n is negative or num_workers < 1.
template <std::integral I, class F>
requires std::invocable<F&, I>
void parallelize(I n, int num_workers, F&& fn) {
  detail::check_item_count(n);
  if (num_workers < 1) detail::throw_invalid_argument("weft::parallelize: num_workers must be at least 1");
  detail::parallelize_loop<I, F>(n, static_cast<std::uint64_t>(num_workers), fn);
}

namespace detail {

// A count of workers: an integer type, __int128 and unsigned __int128
// included (std::integral leaves them out under strict -std=c++20, where
// such a count would otherwise be narrowed to the int overload's).
#if defined(__SIZEOF_INT128__)
__extension__ using int128 = __int128;
__extension__ using uint128 = unsigned __int128;
template <class W>
concept worker_count =
    std::integral<W> || std::same_as<std::remove_cv_t<W>, int128> || std::same_as<std::remove_cv_t<W>, uint128>;
#else
template <class W>
concept worker_count = std::integral<W>;
#endif

}  // namespace detail

// The same for a num_workers of another integer type, taken as it is: a
// std::size_t count is not narrowed to an int (2^32 read as 0, 2^32 + 1 as 1),
// nor an __int128 one (a count past 64 bits caps nothing).
template <std::integral I, detail::worker_count W, class F>
requires(!std::same_as<W, int> && std::invocable<F&, I>) void parallelize(I n, W num_workers, F&& fn) {
  detail::check_item_count(n);
  if (num_workers < W{1}) detail::throw_invalid_argument("weft::parallelize: num_workers must be at least 1");
  std::uint64_t cap = ~std::uint64_t{0};
  if constexpr (sizeof(W) > sizeof(std::uint64_t)) {
    if (num_workers <= static_cast<W>(cap)) cap = static_cast<std::uint64_t>(num_workers);
  } else {
    cap = static_cast<std::uint64_t>(num_workers);
  }
  detail::parallelize_loop<I, F>(n, cap, fn);
}

// A floating-point num_workers is refused: converted to the int overload's
// int it would be truncated, or undefined past INT_MAX.
template <std::integral I, std::floating_point W, class F>
void parallelize(I, W, F&&) {
  static_assert(!std::floating_point<W>, "weft::parallelize: num_workers must be an integer, not floating-point");
}

// Calls fn(begin, end) on disjoint chunks that together cover [first, last),
// in parallel. Chunk sizes are chosen automatically. Throws
// std::invalid_argument if last < first.
template <std::integral I, class F>
requires std::invocable<F&, I, I>
void parallel_for(I first, I last, F&& fn);

// The same with chunks of exactly grain items from first (the last one may
// be shorter): [first, first + grain), [first + grain, first + 2 grain), ...
// Chunks may wait for each other as the items of parallelize do. Throws
// std::invalid_argument if last < first or grain < 1.
template <std::integral I, class F>
requires std::invocable<F&, I, I>
void parallel_for(I first, I last, I grain, F&& fn);

// parallel_for and parallel_reduce also take first and last (and grain) of
// different integral types, as in parallel_for(0, v.size(), fn): the loop
// runs over their common type (std::common_type_t, std::size_t there), and
// fn or map is called with it. A negative bound of a signed type whose common
// type with the others is unsigned (parallel_for(-1, v.size(), fn)) throws
// std::invalid_argument: use a signed type for both then. A common type wider
// than 64 bits, or none, is a compile error (a static_assert naming the call).

namespace detail {

template <class I, class F>
void parallel_for_impl(I first, I last, std::uint64_t grain, F& fn) {
  static_assert(k_index_fits<I>, "weft::parallel_for: index types wider than 64 bits are not supported");
  if (last < first) throw_invalid_argument("weft::parallel_for: last must not be less than first");
  if (first == last) return;
  // Modular arithmetic: exact for every integral I, signed or not.
  const std::uint64_t count = static_cast<std::uint64_t>(last) - static_cast<std::uint64_t>(first);
  const std::uint64_t base = static_cast<std::uint64_t>(first);
  if (grain == 0) {
    // Chunks chosen by the runtime: one call of fn per call of the body.
    struct ctx {
      F& fn;
      std::uint64_t base;
      static void run(void* p, loop_cursor& items) {
        auto* c = static_cast<ctx*>(p);
        const std::uint64_t begin = from_offset(items.m_next);
        const std::uint64_t end = from_offset(items.m_stop);
        items.m_next = items.m_stop;  // the whole chunk starts at once
        static_cast<void>(c->fn(static_cast<I>(c->base + begin), static_cast<I>(c->base + end)));
      }
    } c{fn, base};
    loop l{&ctx::run, &c, count, 0};
    run_loop(l);
    return;
  }
  // Chunks of exactly `grain` items from first (the last one may be
  // shorter): the loop's items are the chunks, so chunks may wait for each
  // other as items do.
  struct chunks {
    F& fn;
    std::uint64_t base;
    std::uint64_t count;
    std::uint64_t grain;
    static void run(void* p, loop_cursor& items) {
      auto* c = static_cast<chunks*>(p);
      std::uint64_t k = from_offset(items.m_next);
      while (k < from_offset(items.m_stop)) {
        items.m_next = to_offset(k + 1);
        const std::uint64_t begin = k * c->grain;  // at most count - 1: no overflow
        const std::uint64_t end = c->count - begin <= c->grain ? c->count : begin + c->grain;
        static_cast<void>(c->fn(static_cast<I>(c->base + begin), static_cast<I>(c->base + end)));
        ++k;
      }
    }
  } c{fn, base, count, grain};
  loop l{&chunks::run, &c, count / grain + (count % grain != 0 ? 1 : 0), 0};
  run_loop(l);
}

}  // namespace detail

template <std::integral I, class F>
requires std::invocable<F&, I, I>
void parallel_for(I first, I last, F&& fn) { detail::parallel_for_impl(first, last, 0, fn); }

template <std::integral I, class F>
requires std::invocable<F&, I, I>
void parallel_for(I first, I last, I grain, F&& fn) {
  if (grain < 1) detail::throw_invalid_argument("weft::parallel_for: grain must be at least 1");
  detail::parallel_for_impl(first, last, static_cast<std::uint64_t>(grain), fn);
}

// parallel_for(first, last, fn) with first and last of different integral
// types: over their common type (see the declarations above).
template <std::integral I, detail::other_integral<I> J, class F>
void parallel_for(I first, J last, F&& fn) {
  using index_type = detail::common_index_t<I, J>;
  static_assert(std::integral<index_type>,
                "weft::parallel_for: first and last have no common integral type; convert one to the type of the "
                "other");
  if constexpr (std::integral<index_type>) {
    static_assert(sizeof(index_type) <= sizeof(std::uint64_t),
                  "weft::parallel_for: the common type of first and last is wider than 64 bits; index types wider "
                  "than 64 bits are not supported");
    static_assert(std::invocable<F&, index_type, index_type>,
                  "weft::parallel_for: fn must be callable as fn(begin, end) with the common type of first and last "
                  "(std::common_type_t)");
    if constexpr (detail::k_usable_common_index<index_type> && std::invocable<F&, index_type, index_type>) {
      weft::parallel_for(
          detail::to_common_index<index_type>(first,
                                              "weft::parallel_for: first is negative, and its common type with last "
                                              "is unsigned; use a signed type for both"),
          detail::to_common_index<index_type>(last,
                                              "weft::parallel_for: last is negative, and its common type with first "
                                              "is unsigned; use a signed type for both"),
          std::forward<F>(fn));
    }
  }
}

// parallel_for(first, last, grain, fn) with first, last and grain not all of
// the same integral type: over their common type.
template <std::integral I, std::integral J, detail::integral_unless_same<I, J> G, class F>
void parallel_for(I first, J last, G grain, F&& fn) {
  using index_type = detail::common_index_t<I, J, G>;
  static_assert(std::integral<index_type>,
                "weft::parallel_for: first, last and grain have no common integral type; convert them to one type");
  if constexpr (std::integral<index_type>) {
    static_assert(sizeof(index_type) <= sizeof(std::uint64_t),
                  "weft::parallel_for: the common type of first, last and grain is wider than 64 bits; index types "
                  "wider than 64 bits are not supported");
    static_assert(std::invocable<F&, index_type, index_type>,
                  "weft::parallel_for: fn must be callable as fn(begin, end) with the common type of first, last "
                  "and grain (std::common_type_t)");
    if constexpr (detail::k_usable_common_index<index_type> && std::invocable<F&, index_type, index_type>) {
      if (grain < 1) detail::throw_invalid_argument("weft::parallel_for: grain must be at least 1");
      weft::parallel_for(
          detail::to_common_index<index_type>(first,
                                              "weft::parallel_for: first is negative, and the common type of first, "
                                              "last and grain is unsigned; use a signed type for all three"),
          detail::to_common_index<index_type>(last,
                                              "weft::parallel_for: last is negative, and the common type of first, "
                                              "last and grain is unsigned; use a signed type for all three"),
          static_cast<index_type>(grain), std::forward<F>(fn));
    }
  }
}

namespace detail {

// The combination tree of parallel_reduce: the range of n items is cut into
// blocks of reduce_leaf_size(n) items; blocks are combined along a balanced
// binary tree over block indices (a node over blocks [lo, hi) splits at
// lo + (hi - lo) / 2);
// a block is reduced as four contiguous lanes combined as ((l0, l1), (l2, l3)).
// Everything depends on n alone.
//
// n may be anything up to 2^64 - 1, so no expression here may wrap: ceilings
// are taken as a / b + (a % b != 0), which equals (a + b - 1) / b wherever
// that does not wrap (so the tree of every such n is what it always was).

// ceil(a / b) for b > 0, for every a.
constexpr std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) noexcept { return a / b + (a % b != 0 ? 1 : 0); }

inline std::uint64_t reduce_leaf_size(std::uint64_t n) noexcept {
  if (n <= 64) return 1;
  if (n < 16384) return ceil_div(n, 64);         // 64 blocks
  const std::uint64_t size = ceil_div(n, 4096);  // at most 4096 blocks...
  return size < 256 ? 256 : size;                // ...of at least 256 items
}

// Where a reduction keeps its partial results (a block's lanes, the halves
// of a node of parallel_reduce's tree): the T itself when it is small, else a
// T on the heap (an allocation per lane and per leaf), so that a level of the
// tree takes a few words of the fiber's stack whatever T's size. Held in
// place, a histogram of 512 doubles took about five T per level, and the
// levels that are not forked do not pass through join's stack check: a
// reduction over a million items (13 levels) overflowed the default stack.
// Both kinds hold the same values and combine them in the same order.
inline constexpr std::size_t k_reduce_in_place_size = 256;

template <class T, bool = (sizeof(T) > k_reduce_in_place_size)>
struct reduce_partial {
  using type = T;
  // The T that f() returns.
  template <class F>
  static type make(F&& f) {
    return f();
  }
  static T& value(type& p) noexcept { return p; }
  static T take(type&& p) noexcept(std::is_nothrow_move_constructible_v<T>) { return std::move(p); }
  // combine(a, b) as a partial. By reference: a and b take no stack of
  // their own here (the caller's are moved into combine's arguments).
  template <class Combine>
  static type combine(Combine& c, type&& a, type&& b) {
    return std::invoke(c, std::move(a), std::move(b));
  }
  // acc = combine(acc, next()), inlined.
  template <class Combine, class F>
  static void fold(T& acc, Combine& c, F&& next) {
    acc = std::invoke(c, std::move(acc), next());
  }
};

// What parallel_reduce calls: map(i) gives a value a T is made from, and
// combine takes two Ts as rvalues and gives one back. Both are called as
// lvalues.
template <class Map, class Combine, class I, class T>
concept reduce_callables = std::invocable<Map&, I> && std::convertible_to<std::invoke_result_t<Map&, I>, T> &&
    std::invocable<Combine&, T, T> && std::convertible_to<std::invoke_result_t<Combine&, T, T>, T>;

// Frees a partial with the global delete: a class's own operator new and
// delete (deleted, private, or a pool) are not the reduction's to use.
struct reduce_partial_delete {
  template <class T>
  void operator()(T* p) const noexcept {
    ::delete p;
  }
};

template <class T>
struct reduce_partial<T, true> {
  using type = std::unique_ptr<T, reduce_partial_delete>;
  template <class F>
  static type make(F&& f) {
    return type(::new T(f()));  // f()'s prvalue initialises the heap object
  }
  static T& value(type& p) noexcept { return *p; }
  static T take(type&& p) noexcept(std::is_nothrow_move_constructible_v<T>) { return std::move(*p); }
  // Into a's object; b's is freed. A call of its own, as fold.
  template <class Combine>
  [[gnu::noinline]] static type combine(Combine& c, type&& a, type&& b) {
    *a = std::invoke(c, std::move(*a), std::move(*b));
    return std::move(a);
  }
  // A call of its own: its temporaries (next()'s result, combine's argument
  // and result) take the stack one step at a time, where inlined into a
  // block each lane's step kept its own.
  template <class Combine, class F>
  [[gnu::noinline]] static void fold(T& acc, Combine& c, F&& next) {
    acc = std::invoke(c, std::move(acc), next());
  }
};

template <class I, class T, class Map, class Combine>
struct reducer {
  using partial = reduce_partial<T>;
  using part = typename partial::type;

  std::uint64_t m_base;
  std::uint64_t m_count;
  std::uint64_t m_leaf;
  std::uint64_t m_blocks;
  const T& m_identity;
  Map& m_map;
  Combine& m_combine;
  std::uint64_t m_min_split = 0;  // the fewest blocks a forked half holds; 0: never split
  std::optional<part> m_first{};  // block 0, reduced first as a sample
  // map or combine threw: blocks not started are skipped (the result is
  // dropped; the exception reaches the caller through the joins). Relaxed: a
  // hint, read once per block.
  std::atomic<bool> m_failed{false};

  T item(std::uint64_t k) { return m_map(static_cast<I>(m_base + k)); }
  part identity() {
    return partial::make([&]() -> T { return m_identity; });
  }

  // f(), marking the reduction failed if it throws.
  template <class F>
  part guarded(F&& f) {
    try {
      return f();
    } catch (...) {
      m_failed.store(true, std::memory_order_relaxed);
      throw;
    }
  }

  // combine(a, b), marking the reduction failed if it throws.
  part combined(part&& a, part&& b) {
    try {
      return partial::combine(m_combine, std::move(a), std::move(b));
    } catch (...) {
      m_failed.store(true, std::memory_order_relaxed);
      throw;
    }
  }

  // Block i, or identity (to be dropped) once the reduction failed. A call
  // of its own: a block's lanes and temporaries take the stack at the leaf
  // only, not in every level of the tree that the recursion inlines it into.
  [[gnu::noinline]] part leaf(std::uint64_t i) {
    if (m_failed.load(std::memory_order_relaxed)) return identity();
    return guarded([&] { return block_at(i); });
  }

  // acc = combine(acc, map(k)).
  void fold(T& acc, std::uint64_t k) {
    partial::fold(acc, m_combine, [&] { return item(k); });
  }

  part block(std::uint64_t b, std::uint64_t e) {
    const std::uint64_t len = e - b;
    if (len < 8) {
      part acc = identity();
      for (std::uint64_t k = b; k < e; ++k) fold(partial::value(acc), k);
      return acc;
    }
    // Four independent chains over contiguous lanes: the processor overlaps
    // them, and only associativity is needed (no commutativity).
    const std::uint64_t q = len / 4;
    part p0 = identity();
    part p1 = identity();
    part p2 = identity();
    part p3 = identity();
    T& a0 = partial::value(p0);
    T& a1 = partial::value(p1);
    T& a2 = partial::value(p2);
    T& a3 = partial::value(p3);
    for (std::uint64_t k = 0; k < q; ++k) {
      fold(a0, b + k);
      fold(a1, b + q + k);
      fold(a2, b + 2 * q + k);
      fold(a3, b + 3 * q + k);
    }
    for (std::uint64_t k = b + 4 * q; k < e; ++k) fold(a3, k);
    return partial::combine(m_combine, partial::combine(m_combine, std::move(p0), std::move(p1)),
                            partial::combine(m_combine, std::move(p2), std::move(p3)));
  }

  part block_at(std::uint64_t i) {
    if (i == 0 && m_first) {  // only the leftmost path reaches block 0: never shared
      part v = std::move(*m_first);
      m_first.reset();
      return v;
    }
    const std::uint64_t b = i * m_leaf;  // i < m_blocks = ceil(m_count / m_leaf): b < m_count, no wrap
    return block(b, m_count - b < m_leaf ? m_count : b + m_leaf);
  }

  // Blocks [lo, hi): forks the right half when it is worth a steal and either
  // depth lasts (eager split) or a thief asks.
  part run(std::uint64_t lo, std::uint64_t hi, int depth) {
    // The levels that are not forked pass no join's stack check: a subtree
    // that starts near the end of the stack (below the last forked level)
    // goes on on a fresh stack, as a join there would (or, where no fiber
    // can be had, on this one: run_here does not ask again). Not through
    // with_stack_room: a reduction runs on a worker, and its other branch,
    // inlined into every node, cost about 6% of a reduction's instructions.
    if (stack_low_here()) [[unlikely]] {
      auto here = [&] { return run_here(lo, hi, depth); };
      return invoke_on_fresh_stack(here);
    }
    return run_here(lo, hi, depth);
  }

  part run_here(std::uint64_t lo, std::uint64_t hi, int depth) {
    if (hi - lo == 1) return leaf(lo);
    const std::uint64_t mid = lo + (hi - lo) / 2;
    const bool worth = m_min_split != 0 && (hi - lo) / 2 >= m_min_split;
    if (worth && (depth > 0 || split_wanted())) {
      // The eager levels (up to one piece per worker) offer their right half
      // at once: pushed behind an earlier piece, it waited in the private
      // ring while the left half ran (with K workers the pieces spread in
      // about log2(K) rounds of a leaf's time).
      auto halves = weft::join(
          [&] {
            if (depth > 0) detail::offer_queued();
            return run(lo, mid, depth - 1);
          },
          [&] { return run(mid, hi, depth - 1); });
      return combined(std::move(halves.first), std::move(halves.second));
    }
    part a = run(lo, mid, 0);
    part b = run(mid, hi, 0);
    return combined(std::move(a), std::move(b));
  }

  // Blocks [lo, hi), every node forked: how a measured reduction runs
  // (<weft/workspan.hpp>: its span is that of the whole tree).
  part run_forked(std::uint64_t lo, std::uint64_t hi) {
    if (hi - lo == 1) return leaf(lo);
    const std::uint64_t mid = lo + (hi - lo) / 2;
    auto halves = weft::join([&] { return run_forked(lo, mid); }, [&] { return run_forked(mid, hi); });
    return combined(std::move(halves.first), std::move(halves.second));
  }

  part top_part() {
    // Block 0 runs below as the sample, on this stack, before any join: a
    // recursion through item 0 (a map that reduces again) would pass no
    // stack check. Started on a fresh stack when this one is nearly full.
    if (stack_low_here()) [[unlikely]] {
      auto here = [&] { return top_part_here(); };
      return invoke_on_fresh_stack(here);
    }
    return top_part_here();
  }

  part top_part_here() {
    if (ws_active()) [[unlikely]] {
      return run_forked(0, m_blocks);
    }
    // Block 0, timed by the runtime as a sample (and kept for the tree), then
    // up to one piece per worker of what is worth a steal.
    const reduce_plan plan = plan_reduction(
        [](void* self) {
          auto& r = *static_cast<reducer*>(self);
          r.m_first.emplace(r.block_at(0));
        },
        this, m_blocks);
    m_min_split = plan.m_min_blocks;
    return run(0, m_blocks, plan.m_depth);
  }

  T top() { return partial::take(top_part()); }
};

// parallel_reduce over [first, last), first < last, on the calling worker.
// identity by reference: a large T is not copied into an argument on the
// worker's stack (GCC makes room for a by-value argument with one move of the
// stack pointer, which no stack-clash probe checks, so a T larger than the
// stack's guard could skip over it).
template <class I, class T, class Map, class Combine>
T reduce_on_worker(I first, I last, const T& identity, Map& map, Combine& combine) {
  const std::uint64_t count = static_cast<std::uint64_t>(last) - static_cast<std::uint64_t>(first);
  const std::uint64_t leaf = reduce_leaf_size(count);
  reducer<I, T, Map, Combine> r{
      static_cast<std::uint64_t>(first), count, leaf, ceil_div(count, leaf), identity, map, combine};
  return r.top();
}

// What parallel_reduce needs of T, the identity's type.
template <class T>
constexpr void check_reduce_type() noexcept {
  static_assert(std::copy_constructible<T>,
                "weft::parallel_reduce: the identity's type T must be copy-constructible (every block of the "
                "reduction starts from a copy of identity)");
  static_assert(std::is_move_assignable_v<T>,
                "weft::parallel_reduce: the identity's type T must be move-assignable (a block folds its items "
                "into its value: acc = combine(std::move(acc), item), as std::reduce requires too)");
}

// The checks of parallel_reduce's range: false when it is empty (the caller
// returns its identity, moved).
template <class I>
bool reduce_range_nonempty(I first, I last) {
  static_assert(k_index_fits<I>, "weft::parallel_reduce: index types wider than 64 bits are not supported");
  if (last < first) throw_invalid_argument("weft::parallel_reduce: last must not be less than first");
  return first != last;
}

// parallel_reduce over a range that is not empty, after its checks, from any
// thread or fiber.
template <class I, class T, class Map, class Combine>
T reduce_nonempty(I first, I last, const T& identity, Map& map, Combine& combine) {
  if (!weft::on_worker()) {
    return default_runtime().run([&] { return reduce_on_worker(first, last, identity, map, combine); });
  }
  return reduce_on_worker(first, last, identity, map, combine);
}

}  // namespace detail

// Reduces map(i) for i in [first, last) with combine, starting from identity.
// combine must be associative and identity its neutral element (commutativity
// is not needed). The combination tree depends only on last - first (see
// docs/guide.md), so the result is bit-for-bit the same whatever the number of
// workers and the timing, also for floating point. Throws
// std::invalid_argument if last < first; rethrows what map or combine throw.
// May suspend the calling fiber; from outside a runtime it runs in
// default_runtime().
template <std::integral I, class T, class Map, class Combine>
requires detail::reduce_callables<Map, Combine, I, T> T parallel_reduce(I first, I last, T identity, Map&& map,
                                                                        Combine&& combine) {
  detail::check_reduce_type<T>();
  if (!detail::reduce_range_nonempty(first, last)) return identity;
  return detail::reduce_nonempty(first, last, identity, map, combine);
}

// parallel_reduce with first and last of different integral types, as in
// parallel_reduce(0, v.size(), ...): over their common type (see
// parallel_for above); map is called with it.
template <std::integral I, detail::other_integral<I> J, class T, class Map, class Combine>
T parallel_reduce(I first, J last, T identity, Map&& map, Combine&& combine) {
  using index_type = detail::common_index_t<I, J>;
  static_assert(std::integral<index_type>,
                "weft::parallel_reduce: first and last have no common integral type; convert one to the type of the "
                "other");
  if constexpr (std::integral<index_type>) {
    static_assert(sizeof(index_type) <= sizeof(std::uint64_t),
                  "weft::parallel_reduce: the common type of first and last is wider than 64 bits; index types wider "
                  "than 64 bits are not supported");
    static_assert(std::invocable<Map&, index_type>,
                  "weft::parallel_reduce: map must be callable as map(i) with the common type of first and last "
                  "(std::common_type_t)");
    static_assert(!std::invocable<Map&, index_type> || detail::reduce_callables<Map, Combine, index_type, T>,
                  "weft::parallel_reduce: map(i) must give a value convertible to the identity's type T, and "
                  "combine(T, T) must be callable with two T rvalues and give a value convertible to T");
    detail::check_reduce_type<T>();
    if constexpr (detail::k_usable_common_index<index_type> && detail::reduce_callables<Map, Combine, index_type, T>) {
      const index_type from = detail::to_common_index<index_type>(
          first,
          "weft::parallel_reduce: first is negative, and its common type with last is unsigned; use a signed type "
          "for both");
      const index_type to = detail::to_common_index<index_type>(
          last,
          "weft::parallel_reduce: last is negative, and its common type with first is unsigned; use a signed type "
          "for both");
      if (!detail::reduce_range_nonempty(from, to)) return identity;
      return detail::reduce_nonempty(from, to, identity, map, combine);
    } else {
      return identity;
    }
  } else {
    return identity;
  }
}

}  // namespace weft
