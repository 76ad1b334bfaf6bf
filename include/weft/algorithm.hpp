// SPDX-License-Identifier: MIT
// weft: the std:: algorithms, parallel on weft (docs/algorithms.md).
//
// Every algorithm has the semantics of its std:: counterpart without an
// execution policy, for iterator pairs and for ranges. Over random-access
// iterators (output iterators included) and std::ranges::random_access_range
// it runs in parallel, with these rules; over other iterators and ranges,
// serially (see "iterators that are not random-access" below):
// - It may suspend the calling fiber; from outside a runtime it runs in
//   default_runtime(). It nests in any weft code (inside parallelize items,
//   join branches, task_group spawns, other algorithms).
// - Callables may be called concurrently and in any order, so they must not
//   race with each other (as with std::execution::par).
// - The first exception a callable throws is rethrown to the caller after the
//   running calls returned; the output holds valid but unspecified values then.
// - A reversed range (last before first) or a negative count throws
//   std::invalid_argument naming the parameter.
// - reduce, transform_reduce and the scans combine in an order that depends on
//   the length of the range only: the result is bit-for-bit the same on any
//   number of workers (also for floating point), like parallel_reduce.
// - The searches (find_if, any_of, all_of, none_of) skip the rest of the work
//   once the first hit is known; the predicate's exception reaches the caller
//   exactly when std's would (no item before the one that threw is a hit).
#pragma once

#include "weft/detail/cxx20.hpp"

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <limits>
#include <memory>
#include <numeric>
#include <optional>
#include <ranges>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/detail/algorithm_core.hpp"
#include "weft/parallelize.hpp"

namespace weft {

namespace detail {

template <class R>
using range_it = std::ranges::borrowed_iterator_t<R>;

// A count that is not of an integral type but converts to It's difference
// type: what std::for_each_n takes besides integers.
template <class Size, class It>
concept convertible_count = !std::integral<Size> && std::convertible_to<Size, std::iter_difference_t<It>>;

template <class R>
inline constexpr bool k_is_take = false;
template <class V>
inline constexpr bool k_is_take<std::ranges::take_view<V>> = true;

template <class R>
struct take_while_base {
  using type = void;
};
template <class V, class P>
struct take_while_base<std::ranges::take_while_view<V, P>> {
  using type = V;
};

// r's end can be found, and is reached: its end is an iterator, or its size
// is known, or its sentinel gives the distance; or it is a take of any range
// (std::views::iota(0) | std::views::take(n)), or a take_while of such a
// range. Conservative: a transform of an unbounded range never ends, and
// looks no different from a transform of a bounded one that is not sized.
template <class R>
constexpr bool ends_knowably() {
  using range = std::remove_cvref_t<R>;
  if constexpr (std::ranges::common_range<range> || std::ranges::sized_range<range> ||
                std::sized_sentinel_for<std::ranges::sentinel_t<range>, std::ranges::iterator_t<range>>) {
    return true;
  } else if constexpr (k_is_take<range>) {
    return true;
  } else if constexpr (!std::is_void_v<typename take_while_base<range>::type>) {
    return ends_knowably<typename take_while_base<range>::type>();
  } else {
    return false;
  }
}

// Refuses, at compile time, a range whose end may never come
// (std::views::iota(0), or a transform of it): see ends_knowably().
template <class R>
constexpr void require_knowable_end() {
  static_assert(ends_knowably<R>(),
                "weft: a range must end where its end can be found: its end an iterator, its size known, or a take "
                "or take_while of such a range (std::views::iota(0) never ends; bound it: std::views::iota(0, n))");
}

// An iterator to the end of r: its end itself for a common range, else found
// from its sentinel: at once when the sentinel gives the distance
// (std::views::iota(0, 1000L)), by walking to it for a take or take_while.
template <class R>
auto range_last(R& r) {
  require_knowable_end<R>();
  return std::ranges::next(std::ranges::begin(r), std::ranges::end(r));
}

// An iterator into r1 as far from its begin as the shorter of r1 and r2 is
// long.
template <class R1, class R2>
auto shorter_last(R1& r1, R2& r2) {
  require_knowable_end<R1>();
  require_knowable_end<R2>();
  const auto n1 = std::ranges::distance(r1);
  const auto n2 = std::ranges::distance(r2);
  return std::ranges::next(std::ranges::begin(r1), n1 < n2 ? n1 : static_cast<decltype(n1)>(n2));
}

// Items written through It are bits packed into shared words
// (std::vector<bool>): two workers writing neighbouring items would race on a
// word, so an algorithm that writes through such an iterator runs serially
// (the std:: one, after the same argument checks).
template <class It>
inline constexpr bool k_packed_bits =
    std::is_same_v<std::remove_cvref_t<std::iter_reference_t<It>>, std::vector<bool>::reference>;

// Calls body(b, e) on chunks covering [0, n), in parallel; in one call when
// Serial.
template <bool Serial = false, class F>
void for_chunks(std::size_t n, F&& body) {
  if (n == 0) return;
  if constexpr (Serial) {
    body(std::size_t{0}, n);
  } else {
    weft::parallel_for(std::size_t{0}, n, body);
  }
}

}  // namespace detail

// ---- element-wise -----------------------------------------------------------------

// f(x) for every item x (a reference: f may modify it). Returns nothing (unlike
// std::for_each, which returns f).
template <std::random_access_iterator It, class F>
void for_each(It first, It last, F f) {
  const std::size_t n = detail::range_size(first, last, "weft::for_each: last must not be before first");
  detail::on_runtime([&] {
    detail::for_chunks<detail::k_packed_bits<It>>(n, [&](std::size_t b, std::size_t e) {
      const It end = detail::offset_by(first, e);
      for (It it = detail::offset_by(first, b); it != end; ++it) static_cast<void>(f(*it));
    });
  });
}

namespace detail {

// The end of both for_each_n: n checked, of the difference type. Not through
// for_each_n again: a difference type that is not std::integral (__int128,
// that of std::views::iota over a 64-bit type under strict -std=c++20)
// would pick the overload of convertible counts again, for ever.
template <class It, class F>
It for_each_first(It first, std::iter_difference_t<It> n, F f) {
  if constexpr (std::random_access_iterator<It>) {
    const It last = first + n;
    weft::for_each(first, last, std::move(f));
    return last;
  } else {
    // Serially, as every algorithm over such iterators (see below).
    auto walk = [&] {
      for (; n > 0; --n, ++first) static_cast<void>(f(*first));
      return std::move(first);
    };
    return with_stack_room(walk);
  }
}

}  // namespace detail

// f(x) for the first n items; returns first + n. Throws std::invalid_argument if n
// is negative or beyond the iterator's difference type. Serially where It is
// not random-access.
template <std::input_iterator It, std::integral Size, class F>
It for_each_n(It first, Size n, F f) {
  if constexpr (std::is_signed_v<Size>) {
    if (n < 0) detail::throw_invalid_argument("weft::for_each_n: n must not be negative");
  }
  // n >= 0 here. Compared in Size when it holds every difference (std::cmp_greater
  // takes no __int128: a difference type of std::views::iota under strict -std=c++20).
  using difference = std::iter_difference_t<It>;
  if constexpr (std::numeric_limits<Size>::digits > std::numeric_limits<difference>::digits) {
    if (n > static_cast<Size>(std::numeric_limits<difference>::max())) {
      detail::throw_invalid_argument("weft::for_each_n: n must not exceed the largest difference of the iterator type");
    }
  }
  return detail::for_each_first(first, static_cast<difference>(n), std::move(f));
}

// The same with a count of any type that converts to the iterator's
// difference type, as std::for_each_n takes (a class with an operator long, a
// double: truncated toward zero, as the standard libraries do; __int128 under
// strict -std=c++20, which is not std::integral there). Throws
// std::invalid_argument if n is negative, not a number, or too large for the
// difference type.
template <std::input_iterator It, detail::convertible_count<It> Size, class F>
It for_each_n(It first, Size n, F f) {
  using difference = std::iter_difference_t<It>;
  if constexpr (requires { static_cast<long double>(n); }) {
    // Converted once, to a type that holds every 64-bit integer exactly and
    // every double: a conversion of a value outside the difference type is
    // undefined (a double, a class that converts through one), or wraps
    // silently (an __int128), so the value is checked before it is narrowed.
    const long double v = static_cast<long double>(n);
    if (!(v > -1.0L)) detail::throw_invalid_argument("weft::for_each_n: n must be a number, not negative");
    // The largest difference as a long double: exact up to 64 bits; wider,
    // rounded up to a power of two that the difference type does not hold.
    constexpr auto k_max = static_cast<long double>(std::numeric_limits<difference>::max());
    constexpr bool k_exact = std::numeric_limits<difference>::digits <= std::numeric_limits<long double>::digits;
    if (k_exact ? !(v <= k_max) : !(v < k_max)) {
      detail::throw_invalid_argument("weft::for_each_n: n must not exceed the largest difference of the iterator type");
    }
    return detail::for_each_first(first, static_cast<difference>(v), std::move(f));
  } else {
    // No single conversion to a floating-point type (a class with several
    // conversion functions): the one to the difference type, unchecked but
    // for its sign.
    const auto d = static_cast<difference>(n);
    if (d < 0) detail::throw_invalid_argument("weft::for_each_n: n must not be negative");
    return detail::for_each_first(first, d, std::move(f));
  }
}

// out[i] = op(first[i]); returns out + n. out may equal first. op takes one
// item: two C arrays of one element type, which would match here decayed to
// pointers, with a binary op are the two ranges of the ranges form below.
template <std::random_access_iterator In, std::random_access_iterator Out, class Op>
requires std::invocable<Op&, std::iter_reference_t<In>> Out transform(In first, In last, Out out, Op op) {
  const std::size_t n = detail::range_size(first, last, "weft::transform: last must not be before first");
  detail::on_runtime([&] {
    detail::for_chunks<detail::k_packed_bits<Out>>(n, [&](std::size_t b, std::size_t e) {
      std::transform(detail::offset_by(first, b), detail::offset_by(first, e), detail::offset_by(out, b), std::ref(op));
    });
  });
  return detail::offset_by(out, n);
}

// out[i] = op(first1[i], first2[i]); returns out + n.
template <std::random_access_iterator In1, std::random_access_iterator In2, std::random_access_iterator Out, class Op>
Out transform(In1 first1, In1 last1, In2 first2, Out out, Op op) {
  const std::size_t n = detail::range_size(first1, last1, "weft::transform: last1 must not be before first1");
  detail::on_runtime([&] {
    detail::for_chunks<detail::k_packed_bits<Out>>(n, [&](std::size_t b, std::size_t e) {
      std::transform(detail::offset_by(first1, b), detail::offset_by(first1, e), detail::offset_by(first2, b),
                     detail::offset_by(out, b), std::ref(op));
    });
  });
  return detail::offset_by(out, n);
}

// Assigns value to every item. value may be an item of the range (as for
// std::fill): a copy made before any assignment is what every chunk
// assigns, when T can be copied.
template <std::random_access_iterator It, class T>
void fill(It first, It last, const T& value) {
  const std::size_t n = detail::range_size(first, last, "weft::fill: last must not be before first");
  auto fill_with = [&](const T& v) {
    detail::on_runtime([&] {
      detail::for_chunks<detail::k_packed_bits<It>>(n, [&](std::size_t b, std::size_t e) {
        std::fill(detail::offset_by(first, b), detail::offset_by(first, e), v);
      });
    });
  };
  if constexpr (std::is_copy_constructible_v<T>) {
    if (n == 0) return;
    const T copy(value);
    fill_with(copy);
  } else {
    fill_with(value);
  }
}

// out[i] = first[i]; returns out + n. The ranges must not overlap.
template <std::random_access_iterator In, std::random_access_iterator Out>
Out copy(In first, In last, Out out) {
  const std::size_t n = detail::range_size(first, last, "weft::copy: last must not be before first");
  detail::on_runtime([&] {
    detail::for_chunks<detail::k_packed_bits<Out>>(n, [&](std::size_t b, std::size_t e) {
      std::copy(detail::offset_by(first, b), detail::offset_by(first, e), detail::offset_by(out, b));
    });
  });
  return detail::offset_by(out, n);
}

// Assigns g() to every item; the calls of g may run concurrently.
template <std::random_access_iterator It, class G>
void generate(It first, It last, G g) {
  const std::size_t n = detail::range_size(first, last, "weft::generate: last must not be before first");
  detail::on_runtime([&] {
    detail::for_chunks<detail::k_packed_bits<It>>(n, [&](std::size_t b, std::size_t e) {
      std::generate(detail::offset_by(first, b), detail::offset_by(first, e), std::ref(g));
    });
  });
}

// ---- reductions ---------------------------------------------------------------------

// reduce(init, transform(x0) ⊕ ... ⊕ transform(xn-1)) with an associative
// reduce (commutativity is not needed); deterministic (see the top).
// transform takes one item (as for transform above: two C arrays with a
// binary transform are two ranges).
template <std::random_access_iterator It, class T, class Reduce, class Transform>
requires std::invocable<Transform&, std::iter_reference_t<It>> T transform_reduce(It first, It last, T init,
                                                                                  Reduce reduce, Transform transform) {
  const std::size_t n = detail::range_size(first, last, "weft::transform_reduce: last must not be before first");
  return detail::on_runtime([&]() -> T {
    auto item = [&](std::size_t i) -> T { return std::invoke(transform, detail::item_at(first, i)); };
    return detail::transform_reduce_impl<T>(n, std::move(init), reduce, item);
  });
}

// The same of transform(first1[i], first2[i]).
template <std::random_access_iterator It1, std::random_access_iterator It2, class T, class Reduce, class Transform>
T transform_reduce(It1 first1, It1 last1, It2 first2, T init, Reduce reduce, Transform transform) {
  const std::size_t n = detail::range_size(first1, last1, "weft::transform_reduce: last1 must not be before first1");
  return detail::on_runtime([&]() -> T {
    auto item = [&](std::size_t i) -> T { return transform(detail::item_at(first1, i), detail::item_at(first2, i)); };
    return detail::transform_reduce_impl<T>(n, std::move(init), reduce, item);
  });
}

// init + sum of first1[i] * first2[i].
template <std::random_access_iterator It1, std::random_access_iterator It2, class T>
T transform_reduce(It1 first1, It1 last1, It2 first2, T init) {
  return weft::transform_reduce(first1, last1, first2, std::move(init), std::plus<>{}, std::multiplies<>{});
}

template <std::random_access_iterator It, class T, class Op>
T reduce(It first, It last, T init, Op op) {
  (void)detail::range_size(first, last, "weft::reduce: last must not be before first");  // its own name
  return weft::transform_reduce(first, last, std::move(init), std::move(op), std::identity{});
}

template <std::random_access_iterator It, class T>
T reduce(It first, It last, T init) {
  return weft::reduce(first, last, std::move(init), std::plus<>{});
}

template <std::random_access_iterator It>
std::iter_value_t<It> reduce(It first, It last) {
  return weft::reduce(first, last, std::iter_value_t<It>{}, std::plus<>{});
}

// The number of items x with pred(x).
template <std::random_access_iterator It, class Pred>
std::iter_difference_t<It> count_if(It first, It last, Pred pred) {
  const std::size_t n = detail::range_size(first, last, "weft::count_if: last must not be before first");
  if (n == 0) return 0;
  return detail::on_runtime([&] {
    const detail::block_plan plan = detail::make_plan(n, detail::k_reduce_min_block, detail::k_reduce_max_blocks);
    auto leaf = [&](std::size_t b, std::size_t e) {
      return std::count_if(detail::offset_by(first, b), detail::offset_by(first, e), pred);
    };
    std::plus<> plus;
    return detail::blocked_reduce<std::iter_difference_t<It>>(plan, leaf, plus);
  });
}

// ---- searches ---------------------------------------------------------------------------

namespace detail {
// The position of the first item x of [first, first + n) with pred(x), or n.
template <std::random_access_iterator It, class Pred>
std::size_t first_hit(It first, std::size_t n, Pred& pred) {
  return detail::on_runtime([&] {
    return detail::find_index(n, [&](std::size_t b, std::size_t e) {
      return static_cast<std::size_t>(
          detail::find_first(detail::offset_by(first, b), detail::offset_by(first, e), pred) - first);
    });
  });
}
}  // namespace detail

// The first item x with pred(x), or last.
template <std::random_access_iterator It, class Pred>
It find_if(It first, It last, Pred pred) {
  const std::size_t n = detail::range_size(first, last, "weft::find_if: last must not be before first");
  if (n == 0) return last;
  return first + detail::diff<It>(detail::first_hit(first, n, pred));
}

namespace detail {
// any_of, with the message of a reversed range naming the caller.
template <std::random_access_iterator It, class Pred>
bool any_of_named(It first, It last, Pred& pred, const char* reversed) {
  const std::size_t n = detail::range_size(first, last, reversed);
  if (n == 0) return false;
  return detail::first_hit(first, n, pred) != n;
}
}  // namespace detail

template <std::random_access_iterator It, class Pred>
bool any_of(It first, It last, Pred pred) {
  return detail::any_of_named(first, last, pred, "weft::any_of: last must not be before first");
}

template <std::random_access_iterator It, class Pred>
bool none_of(It first, It last, Pred pred) {
  return !detail::any_of_named(first, last, pred, "weft::none_of: last must not be before first");
}

template <std::random_access_iterator It, class Pred>
bool all_of(It first, It last, Pred pred) {
  auto fails = [&](auto&& x) { return !static_cast<bool>(pred(std::forward<decltype(x)>(x))); };
  return !detail::any_of_named(first, last, fails, "weft::all_of: last must not be before first");
}

namespace detail {

// The index of the first item that no other item precedes under `before`
// (min_element's rule); `who` names the call in errors.
template <class It, class Before>
It first_best(It first, It last, Before before, const char* who) {
  const std::size_t n = range_size(first, last, who);
  if (n == 0) return last;
  return first + diff<It>(on_runtime([&] {
           const block_plan plan = make_plan(n, k_reduce_min_block, k_reduce_max_blocks);
           auto leaf = [&](std::size_t b, std::size_t e) {
             return static_cast<std::size_t>(std::min_element(first + diff<It>(b), first + diff<It>(e), before) -
                                             first);
           };
           auto pick = [&](std::size_t a, std::size_t b) {
             return before(first[diff<It>(b)], first[diff<It>(a)]) ? b : a;
           };
           return blocked_reduce<std::size_t>(plan, leaf, pick);
         }));
}

}  // namespace detail

// The first smallest item (first when empty).
template <std::random_access_iterator It, class Comp = std::less<>>
It min_element(It first, It last, Comp comp = {}) {
  return detail::first_best(first, last, comp, "weft::min_element: last must not be before first");
}

// The first largest item (first when empty): the first smallest under the
// reversed comparison.
template <std::random_access_iterator It, class Comp = std::less<>>
It max_element(It first, It last, Comp comp = {}) {
  return detail::first_best(
      first, last, [&comp](const auto& a, const auto& b) { return comp(b, a); },
      "weft::max_element: last must not be before first");
}

// The first smallest and the last largest item ({first, first} when empty).
template <std::random_access_iterator It, class Comp = std::less<>>
std::pair<It, It> minmax_element(It first, It last, Comp comp = {}) {
  const std::size_t n = detail::range_size(first, last, "weft::minmax_element: last must not be before first");
  if (n == 0) return {first, first};
  using index_pair = std::pair<std::size_t, std::size_t>;
  const index_pair r = detail::on_runtime([&] {
    const detail::block_plan plan = detail::make_plan(n, detail::k_reduce_min_block, detail::k_reduce_max_blocks);
    auto leaf = [&](std::size_t b, std::size_t e) {
      const auto [lo, hi] = std::minmax_element(detail::offset_by(first, b), detail::offset_by(first, e), comp);
      return index_pair{static_cast<std::size_t>(lo - first), static_cast<std::size_t>(hi - first)};
    };
    auto pick = [&](index_pair a, index_pair b) {
      return index_pair{comp(detail::item_at(first, b.first), detail::item_at(first, a.first)) ? b.first : a.first,
                        comp(detail::item_at(first, b.second), detail::item_at(first, a.second)) ? a.second : b.second};
    };
    return detail::blocked_reduce<index_pair>(plan, leaf, pick);
  });
  return {detail::offset_by(first, r.first), detail::offset_by(first, r.second)};
}

// ---- scans ------------------------------------------------------------------------------
// All scans allow out == first (in place); deterministic (see the top). They
// return out + n.

namespace detail {
// The scans with an initial value (inclusive or exclusive), with the message
// of a reversed range naming the caller (inclusive_scan and exclusive_scan
// call it too).
template <bool Exclusive, class In, class Out, class Op, class Uop, class T>
Out scan_from(In first, In last, Out out, Op& op, Uop& uop, T init, const char* reversed) {
  const std::size_t n = detail::range_size(first, last, reversed);
  if constexpr (detail::k_packed_bits<Out>) {
    return detail::serially([&] {
      if constexpr (Exclusive)
        return std::transform_exclusive_scan(first, last, out, init, op, uop);
      else
        return std::transform_inclusive_scan(first, last, out, op, uop, init);
    });
  }
  detail::on_runtime([&] {
    auto u = [&](auto&& x) -> T { return uop(std::forward<decltype(x)>(x)); };
    detail::scan_impl<T, Exclusive>(first, n, out, op, u, std::optional<T>(std::move(init)));
  });
  return detail::offset_by(out, n);
}
}  // namespace detail

template <std::random_access_iterator In, std::random_access_iterator Out, class Op, class Uop, class T>
Out transform_inclusive_scan(In first, In last, Out out, Op op, Uop uop, T init) {
  return detail::scan_from<false>(first, last, out, op, uop, std::move(init),
                                  "weft::transform_inclusive_scan: last must not be before first");
}

template <std::random_access_iterator In, std::random_access_iterator Out, class Op, class Uop>
Out transform_inclusive_scan(In first, In last, Out out, Op op, Uop uop) {
  // NOLINTNEXTLINE(readability-identifier-naming)
  using T = std::decay_t<std::invoke_result_t<Uop&, std::iter_reference_t<In>>>;
  const std::size_t n =
      detail::range_size(first, last, "weft::transform_inclusive_scan: last must not be before first");
  auto u = [&](auto&& x) -> T { return uop(std::forward<decltype(x)>(x)); };
  if constexpr (detail::k_packed_bits<Out>)
    return detail::serially([&] { return std::transform_inclusive_scan(first, last, out, op, u); });
  detail::on_runtime([&] { detail::scan_impl<T, false>(first, n, out, op, u, std::optional<T>()); });
  return detail::offset_by(out, n);
}

template <std::random_access_iterator In, std::random_access_iterator Out, class T, class Op, class Uop>
Out transform_exclusive_scan(In first, In last, Out out, T init, Op op, Uop uop) {
  return detail::scan_from<true>(first, last, out, op, uop, std::move(init),
                                 "weft::transform_exclusive_scan: last must not be before first");
}

template <std::random_access_iterator In, std::random_access_iterator Out, class Op, class T>
Out inclusive_scan(In first, In last, Out out, Op op, T init) {
  std::identity same;
  return detail::scan_from<false>(first, last, out, op, same, std::move(init),
                                  "weft::inclusive_scan: last must not be before first");
}

template <std::random_access_iterator In, std::random_access_iterator Out, class Op>
Out inclusive_scan(In first, In last, Out out, Op op) {
  using T = std::iter_value_t<In>;  // NOLINT(readability-identifier-naming)
  const std::size_t n = detail::range_size(first, last, "weft::inclusive_scan: last must not be before first");
  // The first item as a value: std::inclusive_scan would keep a
  // std::vector<bool> proxy to it and write through it.
  auto u = [](const auto& x) -> T { return x; };
  if constexpr (detail::k_packed_bits<Out>)
    return detail::serially([&] { return std::transform_inclusive_scan(first, last, out, op, u); });
  detail::on_runtime([&] { detail::scan_impl<T, false>(first, n, out, op, u, std::optional<T>()); });
  return detail::offset_by(out, n);
}

template <std::random_access_iterator In, std::random_access_iterator Out>
Out inclusive_scan(In first, In last, Out out) {
  return weft::inclusive_scan(first, last, out, std::plus<>{});
}

template <std::random_access_iterator In, std::random_access_iterator Out, class T, class Op>
Out exclusive_scan(In first, In last, Out out, T init, Op op) {
  std::identity same;
  return detail::scan_from<true>(first, last, out, op, same, std::move(init),
                                 "weft::exclusive_scan: last must not be before first");
}

template <std::random_access_iterator In, std::random_access_iterator Out, class T>
Out exclusive_scan(In first, In last, Out out, T init) {
  return weft::exclusive_scan(first, last, out, std::move(init), std::plus<>{});
}

// ---- packing --------------------------------------------------------------------------

// Copies the items x with pred(x) to out, in order; returns the end of the
// output. pred is called once per item. Past one block: a blocked pass that
// stores pred's answer per item (one bit each, in words of the block's own)
// and counts per block, a scan of the counts, then a parallel pass that
// copies every block's items to its offset (without a branch per item for
// trivially copyable items, so an unpredictable pred costs no
// mispredictions). The ranges must not overlap.
template <std::random_access_iterator In, std::random_access_iterator Out, class Pred>
Out copy_if(In first, In last, Out out, Pred pred) {
  const std::size_t n = detail::range_size(first, last, "weft::copy_if: last must not be before first");
  if (n == 0) return out;
  if constexpr (detail::k_packed_bits<Out>)
    return detail::serially([&] { return std::copy_if(first, last, out, pred); });
  return detail::on_runtime([&]() -> Out {
    const detail::block_plan plan = detail::make_plan(n, detail::k_scan_min_block, detail::k_scan_max_blocks);
    if (plan.m_count == 1) return std::copy_if(first, last, out, pred);
    // Block b's answers: bit i % 64 of word b * words + (i - begin(b)) / 64
    // (no word is shared by two blocks).
    const std::size_t words = (plan.m_size + 63) / 64;
    std::unique_ptr<std::uint64_t[]> keep(new std::uint64_t[plan.m_count * words]);
    std::vector<std::size_t> offset(plan.m_count + 1);
    detail::for_blocks(plan.m_count, [&](std::size_t b) {
      std::size_t c = 0;
      const std::size_t begin = plan.begin(b);
      const std::size_t e = plan.end(b);
      std::uint64_t* bits = keep.get() + b * words;
      for (std::size_t w = begin; w < e; w += 64) {
        const std::size_t stop = e - w < 64 ? e : w + 64;
        std::uint64_t word = 0;
        for (std::size_t i = w; i < stop; ++i) {
          const std::uint64_t k = pred(detail::item_at(first, i)) ? 1 : 0;
          word |= k << (i - w);
          c += k;
        }
        bits[(w - begin) / 64] = word;
      }
      offset[b + 1] = c;
    });
    offset[0] = 0;
    for (std::size_t b = 0; b < plan.m_count; ++b) offset[b + 1] += offset[b];
    detail::for_blocks(plan.m_count, [&](std::size_t b) {
      std::size_t j = offset[b];
      const std::size_t stop = offset[b + 1];
      const std::size_t begin = plan.begin(b);
      const std::size_t e = plan.end(b);
      const std::uint64_t* bits = keep.get() + b * words;
      auto kept = [&](std::size_t i) { return (bits[(i - begin) / 64] >> ((i - begin) % 64)) & 1; };
      using V = std::iter_value_t<In>;  // NOLINT(readability-identifier-naming)
      if constexpr (std::is_trivially_copyable_v<V> && std::is_same_v<V, std::iter_value_t<Out>> &&
                    std::is_assignable_v<std::iter_reference_t<Out>, const V&>) {
        // Every item is written at the next free slot, which only a kept item
        // advances; the slot past the block's last kept item is never written.
        for (std::size_t i = begin; i < e && j < stop; ++i) {
          detail::item_at(out, j) = detail::item_at(first, i);
          j += kept(i);
        }
      } else {
        for (std::size_t i = begin; i < e; ++i) {
          if (kept(i) != 0) detail::item_at(out, j++) = detail::item_at(first, i);
        }
      }
    });
    return detail::offset_by(out, offset[plan.m_count]);
  });
}

// Removes the items x with pred(x), keeping the order of the others; returns
// the new end. Each block is compacted in parallel, then the kept items are
// gathered (through a buffer when there is more than one worker).
template <std::random_access_iterator It, class Pred>
It remove_if(It first, It last, Pred pred) {
  const std::size_t n = detail::range_size(first, last, "weft::remove_if: last must not be before first");
  if (n == 0) return last;
  if constexpr (detail::k_packed_bits<It>) return detail::serially([&] { return std::remove_if(first, last, pred); });
  return first + detail::diff<It>(detail::on_runtime([&] {
           return detail::pack_in_place(first, n, [&](std::size_t b, std::size_t e) {
             // std::remove_if's moves, by index: the classic algorithm does
             // not take every C++20 random-access iterator (an iota over a
             // 64-bit type, whose difference type is __int128).
             std::size_t end = b;
             for (std::size_t i = b; i < e; ++i) {
               if (pred(detail::item_at(first, i))) continue;
               if (end != i) detail::item_at(first, end) = std::move(detail::item_at(first, i));
               ++end;
             }
             return std::pair<std::size_t, std::size_t>{b, end};
           });
         }));
}

// Removes all but the first of every run of consecutive equivalent items;
// returns the new end. pred must be an equivalence relation.
template <std::random_access_iterator It, class Pred = std::equal_to<>>
It unique(It first, It last, Pred pred = {}) {
  const std::size_t n = detail::range_size(first, last, "weft::unique: last must not be before first");
  if (n == 0) return last;
  if constexpr (detail::k_packed_bits<It>) return detail::serially([&] { return std::unique(first, last, pred); });
  return first + detail::diff<It>(detail::on_runtime([&] {
           const detail::block_plan plan = detail::make_plan(n, detail::k_scan_min_block, detail::k_scan_max_blocks);
           // Whether a block's first item repeats the item before it, decided
           // before any block moves its items.
           std::vector<char> repeats(plan.m_count, 0);
           for (std::size_t b = 1; b < plan.m_count; ++b) {
             const std::size_t i = plan.begin(b);
             repeats[b] = pred(detail::item_at(first, i - 1), detail::item_at(first, i)) ? 1 : 0;
           }
           std::vector<std::pair<std::size_t, std::size_t>> kept(plan.m_count);
           detail::for_blocks(plan.m_count, [&](std::size_t b) {
             const std::size_t lo = plan.begin(b);
             It end = std::unique(detail::offset_by(first, lo), detail::offset_by(first, plan.end(b)), pred);
             kept[b] = {lo + static_cast<std::size_t>(repeats[b]), static_cast<std::size_t>(end - first)};
           });
           return detail::gather_kept(first, kept);
         }));
}

// ---- sorting and merging ------------------------------------------------------------------

// Sorts by comp (not stable): parallel merge sort whose leaves are radix
// sorted for integer and floating-point keys under a plain less, else sorted
// with std::sort (std::sort itself on one worker for such other keys).
template <std::random_access_iterator It, class Comp = std::less<>>
void sort(It first, It last, Comp comp = {}) {
  const std::size_t n = detail::range_size(first, last, "weft::sort: last must not be before first");
  if (n < 2) return;
  if constexpr (!detail::classic_difference<It>) {
    const detail::indexed<It> from(first, 0);
    return weft::sort(from, from + static_cast<std::ptrdiff_t>(n), std::move(comp));
  } else if constexpr (detail::k_packed_bits<It>) {
    return detail::serially(
        [&] { detail::with_guarded_less<bool>(comp, [&](auto& c) { std::sort(first, last, c); }); });
  } else {
    detail::on_runtime([&] { detail::sort_impl<false>(first, n, comp); });
  }
}

// Sorts by comp, keeping the order of equivalent items: parallel merge sort
// with radix sorted leaves for integer keys under a plain less, else
// std::stable_sort at the leaves.
template <std::random_access_iterator It, class Comp = std::less<>>
void stable_sort(It first, It last, Comp comp = {}) {
  const std::size_t n = detail::range_size(first, last, "weft::stable_sort: last must not be before first");
  if (n < 2) return;
  if constexpr (!detail::classic_difference<It>) {
    const detail::indexed<It> from(first, 0);
    return weft::stable_sort(from, from + static_cast<std::ptrdiff_t>(n), std::move(comp));
  } else if constexpr (detail::k_packed_bits<It>) {
    return detail::serially(
        [&] { detail::with_guarded_less<bool>(comp, [&](auto& c) { std::stable_sort(first, last, c); }); });
  } else {
    detail::on_runtime([&] { detail::sort_impl<true>(first, n, comp); });
  }
}

// Merges two sorted ranges into out (stable: ties take the first range's item
// first); returns the end of the output. out must not overlap the inputs.
template <std::random_access_iterator It1, std::random_access_iterator It2, std::random_access_iterator Out,
          class Comp = std::less<>>
Out merge(It1 first1, It1 last1, It2 first2, It2 last2, Out out, Comp comp = {}) {
  const std::size_t n1 = detail::range_size(first1, last1, "weft::merge: last1 must not be before first1");
  const std::size_t n2 = detail::range_size(first2, last2, "weft::merge: last2 must not be before first2");
  if constexpr (detail::k_packed_bits<Out>)
    return detail::serially([&] { return std::merge(first1, last1, first2, last2, out, comp); });
  detail::on_runtime([&] { detail::merge_parallel<false>(first1, n1, first2, n2, out, comp); });
  return detail::offset_by(out, n1 + n2);
}

// Rearranges so that nth holds the item sorted order puts there, with no item
// after it less than it and none before it greater. Throws
// std::invalid_argument if nth is outside [first, last].
template <std::random_access_iterator It, class Comp = std::less<>>
void nth_element(It first, It nth, It last, Comp comp = {}) {
  const std::size_t n = detail::range_size(first, last, "weft::nth_element: last must not be before first");
  if (nth - first < 0 || last - nth < 0)
    detail::throw_invalid_argument("weft::nth_element: nth must lie in [first, last]");
  const std::size_t k = static_cast<std::size_t>(nth - first);
  if (k == n) return;
  if constexpr (!detail::classic_difference<It>) {
    const detail::indexed<It> from(first, 0);
    return weft::nth_element(from, from + static_cast<std::ptrdiff_t>(k), from + static_cast<std::ptrdiff_t>(n),
                             std::move(comp));
  } else if constexpr (detail::k_packed_bits<It>) {
    return detail::serially(
        [&] { detail::with_guarded_less<bool>(comp, [&](auto& c) { std::nth_element(first, nth, last, c); }); });
  } else {
    detail::on_runtime([&] { detail::select_impl(first, n, k, comp); });
  }
}

// ---- iterators that are not random-access -----------------------------------------------
// Where an iterator of a call, an output one included, is not random-access
// (a std::list's or a std::set's, a std::back_insert_iterator, a
// std::istream_iterator), the call runs its std:: counterpart serially on
// the calling fiber or thread, with room on the stack as at every entry
// point: the same results, but no check that last is not before first
// (such iterators cannot tell), and the reductions fold from left to right,
// init first. The sorts and nth_element take random-access iterators only,
// as their std:: counterparts do.

namespace detail {

// Not every one of Its is random-access: the call is a serial one.
template <class... Its>
concept some_not_random_access = !(std::random_access_iterator<Its> && ...);

// An iterator the classic std:: algorithms write through: copyable, and
// `*out++ = x` makes sense (a random-access iterator is one too). A
// move-only output iterator is not: libstdc++'s algorithms copy theirs.
template <class Out>
concept output_iterator = std::input_or_output_iterator<Out> && std::copyable<Out> && requires(Out o) {
  *o++;
};

// A left fold of init and transform(x) for the items x of [first, last).
template <class It, class T, class Reduce, class Transform>
T fold_left_serial(It first, It last, T init, Reduce& reduce, Transform& transform) {
  auto fold = [&]() -> T {
    for (; first != last; ++first) init = reduce(std::move(init), std::invoke(transform, *first));
    return std::move(init);
  };
  return with_stack_room(fold);
}

}  // namespace detail

template <std::input_iterator It, class F>
requires detail::some_not_random_access<It>
void for_each(It first, It last, F f) {
  detail::serially([&] {
    for (; first != last; ++first) static_cast<void>(f(*first));
  });
}

template <std::input_iterator In, detail::output_iterator Out, class Op>
requires detail::some_not_random_access<In, Out> && std::invocable<Op&, std::iter_reference_t<In>> Out
transform(In first, In last, Out out, Op op) {
  return detail::serially([&] { return std::transform(first, last, std::move(out), std::ref(op)); });
}

template <std::input_iterator In1, std::input_iterator In2, detail::output_iterator Out, class Op>
requires detail::some_not_random_access<In1, In2, Out> Out transform(In1 first1, In1 last1, In2 first2, Out out,
                                                                     Op op) {
  return detail::serially([&] { return std::transform(first1, last1, first2, std::move(out), std::ref(op)); });
}

template <std::forward_iterator It, class T>
requires detail::some_not_random_access<It> && std::indirectly_writable<It, const T&>
void fill(It first, It last, const T& value) {
  detail::serially([&] { std::fill(first, last, value); });
}

template <std::input_iterator In, detail::output_iterator Out>
requires detail::some_not_random_access<In, Out> Out copy(In first, In last, Out out) {
  return detail::serially([&] { return std::copy(first, last, std::move(out)); });
}

template <std::forward_iterator It, class G>
requires detail::some_not_random_access<It> && std::indirectly_writable<It, std::invoke_result_t<G&>>
void generate(It first, It last, G g) {
  detail::serially([&] { std::generate(first, last, std::ref(g)); });
}

template <std::input_iterator It, class T, class Reduce, class Transform>
requires detail::some_not_random_access<It> && std::invocable<Transform&, std::iter_reference_t<It>> T
transform_reduce(It first, It last, T init, Reduce reduce, Transform transform) {
  return detail::fold_left_serial(first, last, std::move(init), reduce, transform);
}

template <std::input_iterator It1, std::input_iterator It2, class T, class Reduce, class Transform>
requires detail::some_not_random_access<It1, It2> T transform_reduce(It1 first1, It1 last1, It2 first2, T init,
                                                                     Reduce reduce, Transform transform) {
  auto fold = [&]() -> T {
    for (; first1 != last1; ++first1, ++first2) init = reduce(std::move(init), transform(*first1, *first2));
    return std::move(init);
  };
  return detail::with_stack_room(fold);
}

template <std::input_iterator It1, std::input_iterator It2, class T>
requires detail::some_not_random_access<It1, It2> T transform_reduce(It1 first1, It1 last1, It2 first2, T init) {
  return weft::transform_reduce(first1, last1, first2, std::move(init), std::plus<>{}, std::multiplies<>{});
}

template <std::input_iterator It, class T, class Op>
requires detail::some_not_random_access<It> T reduce(It first, It last, T init, Op op) {
  std::identity same;
  return detail::fold_left_serial(first, last, std::move(init), op, same);
}

template <std::input_iterator It, class T>
requires detail::some_not_random_access<It> T reduce(It first, It last, T init) {
  return weft::reduce(first, last, std::move(init), std::plus<>{});
}

template <std::input_iterator It>
requires detail::some_not_random_access<It> std::iter_value_t<It> reduce(It first, It last) {
  return weft::reduce(first, last, std::iter_value_t<It>{}, std::plus<>{});
}

template <std::input_iterator It, class Pred>
requires detail::some_not_random_access<It> std::iter_difference_t<It> count_if(It first, It last, Pred pred) {
  return detail::serially([&] { return std::count_if(first, last, std::ref(pred)); });
}

template <std::input_iterator It, class Pred>
requires detail::some_not_random_access<It> It find_if(It first, It last, Pred pred) {
  return detail::serially([&] { return std::find_if(first, last, std::ref(pred)); });
}

template <std::input_iterator It, class Pred>
requires detail::some_not_random_access<It>
bool any_of(It first, It last, Pred pred) {
  return detail::serially([&] { return std::any_of(first, last, std::ref(pred)); });
}

template <std::input_iterator It, class Pred>
requires detail::some_not_random_access<It>
bool none_of(It first, It last, Pred pred) {
  return detail::serially([&] { return std::none_of(first, last, std::ref(pred)); });
}

template <std::input_iterator It, class Pred>
requires detail::some_not_random_access<It>
bool all_of(It first, It last, Pred pred) {
  return detail::serially([&] { return std::all_of(first, last, std::ref(pred)); });
}

template <std::forward_iterator It, class Comp = std::less<>>
requires detail::some_not_random_access<It> It min_element(It first, It last, Comp comp = {}) {
  return detail::serially([&] { return std::min_element(first, last, std::ref(comp)); });
}

template <std::forward_iterator It, class Comp = std::less<>>
requires detail::some_not_random_access<It> It max_element(It first, It last, Comp comp = {}) {
  return detail::serially([&] { return std::max_element(first, last, std::ref(comp)); });
}

template <std::forward_iterator It, class Comp = std::less<>>
requires detail::some_not_random_access<It> std::pair<It, It> minmax_element(It first, It last, Comp comp = {}) {
  return detail::serially([&] { return std::minmax_element(first, last, std::ref(comp)); });
}

template <std::input_iterator In, detail::output_iterator Out, class Op, class Uop, class T>
requires detail::some_not_random_access<In, Out> Out transform_inclusive_scan(In first, In last, Out out, Op op,
                                                                              Uop uop, T init) {
  return detail::serially([&] {
    return std::transform_inclusive_scan(first, last, std::move(out), std::ref(op), std::ref(uop), std::move(init));
  });
}

template <std::input_iterator In, detail::output_iterator Out, class Op, class Uop>
requires detail::some_not_random_access<In, Out> Out transform_inclusive_scan(In first, In last, Out out, Op op,
                                                                              Uop uop) {
  return detail::serially(
      [&] { return std::transform_inclusive_scan(first, last, std::move(out), std::ref(op), std::ref(uop)); });
}

template <std::input_iterator In, detail::output_iterator Out, class T, class Op, class Uop>
requires detail::some_not_random_access<In, Out> Out transform_exclusive_scan(In first, In last, Out out, T init, Op op,
                                                                              Uop uop) {
  return detail::serially([&] {
    return std::transform_exclusive_scan(first, last, std::move(out), std::move(init), std::ref(op), std::ref(uop));
  });
}

template <std::input_iterator In, detail::output_iterator Out, class Op, class T>
requires detail::some_not_random_access<In, Out> Out inclusive_scan(In first, In last, Out out, Op op, T init) {
  return detail::serially(
      [&] { return std::inclusive_scan(first, last, std::move(out), std::ref(op), std::move(init)); });
}

template <std::input_iterator In, detail::output_iterator Out, class Op = std::plus<>>
requires detail::some_not_random_access<In, Out> Out inclusive_scan(In first, In last, Out out, Op op = {}) {
  return detail::serially([&] { return std::inclusive_scan(first, last, std::move(out), std::ref(op)); });
}

template <std::input_iterator In, detail::output_iterator Out, class T, class Op = std::plus<>>
requires detail::some_not_random_access<In, Out> Out exclusive_scan(In first, In last, Out out, T init, Op op = {}) {
  return detail::serially(
      [&] { return std::exclusive_scan(first, last, std::move(out), std::move(init), std::ref(op)); });
}

template <std::input_iterator In, detail::output_iterator Out, class Pred>
requires detail::some_not_random_access<In, Out> Out copy_if(In first, In last, Out out, Pred pred) {
  return detail::serially([&] { return std::copy_if(first, last, std::move(out), std::ref(pred)); });
}

template <std::forward_iterator It, class Pred>
requires detail::some_not_random_access<It> && std::permutable<It> It remove_if(It first, It last, Pred pred) {
  return detail::serially([&] { return std::remove_if(first, last, std::ref(pred)); });
}

template <std::forward_iterator It, class Pred = std::equal_to<>>
requires detail::some_not_random_access<It> && std::permutable<It> It unique(It first, It last, Pred pred = {}) {
  return detail::serially([&] { return std::unique(first, last, std::ref(pred)); });
}

template <std::input_iterator It1, std::input_iterator It2, detail::output_iterator Out, class Comp = std::less<>>
requires detail::some_not_random_access<It1, It2, Out> Out merge(It1 first1, It1 last1, It2 first2, It2 last2, Out out,
                                                                 Comp comp = {}) {
  return detail::serially([&] { return std::merge(first1, last1, first2, last2, std::move(out), std::ref(comp)); });
}

// ---- ranges overloads -------------------------------------------------------------------
// The shorter of two ranges sets the length of an algorithm over both, as
// for std::ranges::transform. A range's end is an iterator here even where
// its sentinel has another type (std::views::iota(0, 1000L)). A range that
// is not random-access (a std::list, a filter view) runs serially, as its
// iterators do above; ranges that can be walked only once (an istream view)
// are not taken.

template <std::ranges::forward_range R, class F>
void for_each(R&& r, F f) {
  weft::for_each(std::ranges::begin(r), detail::range_last(r), std::move(f));
}

template <std::ranges::forward_range R, detail::output_iterator Out, class Op>
Out transform(R&& r, Out out, Op op) {
  return weft::transform(std::ranges::begin(r), detail::range_last(r), out, std::move(op));
}

template <std::ranges::forward_range R1, std::ranges::forward_range R2, detail::output_iterator Out, class Op>
Out transform(R1&& r1, R2&& r2, Out out, Op op) {
  return weft::transform(std::ranges::begin(r1), detail::shorter_last(r1, r2), std::ranges::begin(r2), out,
                         std::move(op));
}

template <std::ranges::forward_range R, class T>
void fill(R&& r, const T& value) {
  weft::fill(std::ranges::begin(r), detail::range_last(r), value);
}

template <std::ranges::forward_range R, detail::output_iterator Out>
Out copy(R&& r, Out out) {
  return weft::copy(std::ranges::begin(r), detail::range_last(r), out);
}

template <std::ranges::forward_range R, class G>
void generate(R&& r, G g) {
  weft::generate(std::ranges::begin(r), detail::range_last(r), std::move(g));
}

template <std::ranges::forward_range R, class T, class Reduce, class Transform>
T transform_reduce(R&& r, T init, Reduce reduce, Transform transform) {
  return weft::transform_reduce(std::ranges::begin(r), detail::range_last(r), std::move(init), std::move(reduce),
                                std::move(transform));
}

template <std::ranges::forward_range R1, std::ranges::forward_range R2, class T, class Reduce, class Transform>
T transform_reduce(R1&& r1, R2&& r2, T init, Reduce reduce, Transform transform) {
  return weft::transform_reduce(std::ranges::begin(r1), detail::shorter_last(r1, r2), std::ranges::begin(r2),
                                std::move(init), std::move(reduce), std::move(transform));
}

template <std::ranges::forward_range R1, std::ranges::forward_range R2, class T>
T transform_reduce(R1&& r1, R2&& r2, T init) {
  return weft::transform_reduce(std::ranges::begin(r1), detail::shorter_last(r1, r2), std::ranges::begin(r2),
                                std::move(init));
}

template <std::ranges::forward_range R, class T, class Op>
T reduce(R&& r, T init, Op op) {
  return weft::reduce(std::ranges::begin(r), detail::range_last(r), std::move(init), std::move(op));
}

template <std::ranges::forward_range R, class T>
T reduce(R&& r, T init) {
  return weft::reduce(std::ranges::begin(r), detail::range_last(r), std::move(init));
}

template <std::ranges::forward_range R>
std::ranges::range_value_t<R> reduce(R&& r) {
  return weft::reduce(std::ranges::begin(r), detail::range_last(r));
}

template <std::ranges::forward_range R, detail::output_iterator Out, class Op = std::plus<>>
Out inclusive_scan(R&& r, Out out, Op op = {}) {
  return weft::inclusive_scan(std::ranges::begin(r), detail::range_last(r), out, std::move(op));
}

template <std::ranges::forward_range R, detail::output_iterator Out, class Op, class T>
Out inclusive_scan(R&& r, Out out, Op op, T init) {
  return weft::inclusive_scan(std::ranges::begin(r), detail::range_last(r), out, std::move(op), std::move(init));
}

template <std::ranges::forward_range R, detail::output_iterator Out, class T, class Op = std::plus<>>
Out exclusive_scan(R&& r, Out out, T init, Op op = {}) {
  return weft::exclusive_scan(std::ranges::begin(r), detail::range_last(r), out, std::move(init), std::move(op));
}

template <std::ranges::forward_range R, detail::output_iterator Out, class Op, class Uop>
Out transform_inclusive_scan(R&& r, Out out, Op op, Uop uop) {
  return weft::transform_inclusive_scan(std::ranges::begin(r), detail::range_last(r), out, std::move(op),
                                        std::move(uop));
}

template <std::ranges::forward_range R, detail::output_iterator Out, class Op, class Uop, class T>
Out transform_inclusive_scan(R&& r, Out out, Op op, Uop uop, T init) {
  return weft::transform_inclusive_scan(std::ranges::begin(r), detail::range_last(r), out, std::move(op),
                                        std::move(uop), std::move(init));
}

template <std::ranges::forward_range R, detail::output_iterator Out, class T, class Op, class Uop>
Out transform_exclusive_scan(R&& r, Out out, T init, Op op, Uop uop) {
  return weft::transform_exclusive_scan(std::ranges::begin(r), detail::range_last(r), out, std::move(init),
                                        std::move(op), std::move(uop));
}

template <std::ranges::forward_range R, detail::output_iterator Out, class Pred>
Out copy_if(R&& r, Out out, Pred pred) {
  return weft::copy_if(std::ranges::begin(r), detail::range_last(r), out, std::move(pred));
}

template <std::ranges::forward_range R, class Pred>
detail::range_it<R> remove_if(R&& r, Pred pred) {
  return weft::remove_if(std::ranges::begin(r), detail::range_last(r), std::move(pred));
}

template <std::ranges::forward_range R, class Pred = std::equal_to<>>
detail::range_it<R> unique(R&& r, Pred pred = {}) {
  return weft::unique(std::ranges::begin(r), detail::range_last(r), std::move(pred));
}

template <std::ranges::random_access_range R, class Comp = std::less<>>
void sort(R&& r, Comp comp = {}) {
  weft::sort(std::ranges::begin(r), detail::range_last(r), std::move(comp));
}

template <std::ranges::random_access_range R, class Comp = std::less<>>
void stable_sort(R&& r, Comp comp = {}) {
  weft::stable_sort(std::ranges::begin(r), detail::range_last(r), std::move(comp));
}

template <std::ranges::forward_range R1, std::ranges::forward_range R2, detail::output_iterator Out,
          class Comp = std::less<>>
Out merge(R1&& r1, R2&& r2, Out out, Comp comp = {}) {
  return weft::merge(std::ranges::begin(r1), detail::range_last(r1), std::ranges::begin(r2), detail::range_last(r2),
                     out, std::move(comp));
}

template <std::ranges::random_access_range R, class Comp = std::less<>>
void nth_element(R&& r, std::ranges::iterator_t<R> nth, Comp comp = {}) {
  weft::nth_element(std::ranges::begin(r), nth, detail::range_last(r), std::move(comp));
}

template <std::ranges::forward_range R, class Pred>
std::ranges::range_difference_t<R> count_if(R&& r, Pred pred) {
  return weft::count_if(std::ranges::begin(r), detail::range_last(r), std::move(pred));
}

template <std::ranges::forward_range R, class Pred>
detail::range_it<R> find_if(R&& r, Pred pred) {
  return weft::find_if(std::ranges::begin(r), detail::range_last(r), std::move(pred));
}

template <std::ranges::forward_range R, class Pred>
bool any_of(R&& r, Pred pred) {
  return weft::any_of(std::ranges::begin(r), detail::range_last(r), std::move(pred));
}

template <std::ranges::forward_range R, class Pred>
bool all_of(R&& r, Pred pred) {
  return weft::all_of(std::ranges::begin(r), detail::range_last(r), std::move(pred));
}

template <std::ranges::forward_range R, class Pred>
bool none_of(R&& r, Pred pred) {
  return weft::none_of(std::ranges::begin(r), detail::range_last(r), std::move(pred));
}

template <std::ranges::forward_range R, class Comp = std::less<>>
detail::range_it<R> min_element(R&& r, Comp comp = {}) {
  return weft::min_element(std::ranges::begin(r), detail::range_last(r), std::move(comp));
}

template <std::ranges::forward_range R, class Comp = std::less<>>
detail::range_it<R> max_element(R&& r, Comp comp = {}) {
  return weft::max_element(std::ranges::begin(r), detail::range_last(r), std::move(comp));
}

template <std::ranges::forward_range R, class Comp = std::less<>>
std::pair<detail::range_it<R>, detail::range_it<R>> minmax_element(R&& r, Comp comp = {}) {
  return weft::minmax_element(std::ranges::begin(r), detail::range_last(r), std::move(comp));
}

}  // namespace weft
