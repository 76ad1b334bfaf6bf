// SPDX-License-Identifier: MIT
// weft: the building blocks of <weft/algorithm.hpp>: fixed block plans,
// deterministic blocked reduction, early-exit search, blocked scans, packing
// and parallel merge / merge sort. Everything here runs on a worker (the public
// algorithms enter the runtime first) and uses only weft's public primitives.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <iterator>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/join.hpp"
#include "weft/parallelize.hpp"
#include "weft/runtime.hpp"
#include "weft/this_fiber.hpp"

namespace weft::detail {

// Runs f() on a worker, with room on the stack as at every entry point:
// when called on one, directly, or on a fresh stack when this one is nearly
// full (with_stack_room); else as a task of this_runtime() (the default
// runtime from outside). Every algorithm enters here before it calls the
// user's code: a callable that calls an algorithm again recursed on one
// stack until it overflowed, where the algorithm ran serially (small
// ranges, one worker) or called the callable before any join (a sort's
// sample, a merge's split).
template <class F>
decltype(auto) on_runtime(F&& f) {
  if (weft::on_worker()) return with_stack_room(f);
  return weft::this_runtime().run(f);
}

// Runs f(), an algorithm's serial call of the std:: one, on the calling
// fiber or thread with room on the stack (with_stack_room), as on_runtime
// does: such a call is an entry point too.
template <class F>
decltype(auto) serially(F f) {
  return with_stack_room(f);
}

// last - first as a count; throws std::invalid_argument naming `last` when
// the range is reversed.
template <class It>
std::size_t range_size(It first, It last, const char* message) {
  const auto d = last - first;
  if (d < 0) throw_invalid_argument(message);
  return static_cast<std::size_t>(d);
}

// A count as It's difference type, and it + k and it[k] for a count k: the
// conversion written out in this one place (every count here lies within a
// range whose size that type holds), so that the algorithms compile clean
// under -Wsign-conversion (and clang's -Wconversion).
template <class It>
constexpr std::iter_difference_t<It> diff(std::size_t k) {
  return static_cast<std::iter_difference_t<It>>(k);
}
template <class It>
constexpr It offset_by(It it, std::size_t k) {
  return it + diff<It>(k);
}
template <class It>
constexpr decltype(auto) item_at(const It& it, std::size_t k) {
  return it[diff<It>(k)];
}

// It is a random-access iterator to the classic algorithms (std::find_if,
// std::lower_bound, ...), not only to C++20's concepts. Not so, for one,
// std::views::iota over a 64-bit type under strict -std=c++20: its difference
// type is __int128, not an integral type there, so it has no classic
// iterator category.
template <class It>
concept classic_random_access =
    std::derived_from<typename std::iterator_traits<It>::iterator_category, std::random_access_iterator_tag>;

// It's difference type is one that std::sort, std::stable_sort and
// std::nth_element can use (their depth limit takes a built-in integer no
// wider than long long; __int128 is ambiguous there, in either dialect).
template <class It>
concept classic_difference = std::is_integral_v<std::iter_difference_t<It>> &&
                             sizeof(std::iter_difference_t<It>) <= sizeof(long long);

// The items of a C++20 random-access iterator whose difference type the
// classic sorts cannot use, through an iterator that they take: its base
// indexed with std::ptrdiff_t (every count of a range fits).
template <class It>
class indexed {
 public:
  using iterator_category = std::random_access_iterator_tag;
  using value_type = std::iter_value_t<It>;
  using difference_type = std::ptrdiff_t;
  using reference = std::iter_reference_t<It>;
  using pointer = void;

  indexed() = default;
  indexed(It base, std::ptrdiff_t i) : m_base(std::move(base)), m_i(i) {}

  reference operator*() const { return m_base[static_cast<std::iter_difference_t<It>>(m_i)]; }
  reference operator[](std::ptrdiff_t k) const { return m_base[static_cast<std::iter_difference_t<It>>(m_i + k)]; }
  indexed& operator++() {
    ++m_i;
    return *this;
  }
  indexed operator++(int) {
    indexed old = *this;
    ++m_i;
    return old;
  }
  indexed& operator--() {
    --m_i;
    return *this;
  }
  indexed operator--(int) {
    indexed old = *this;
    --m_i;
    return old;
  }
  indexed& operator+=(std::ptrdiff_t k) {
    m_i += k;
    return *this;
  }
  indexed& operator-=(std::ptrdiff_t k) {
    m_i -= k;
    return *this;
  }
  friend indexed operator+(indexed a, std::ptrdiff_t k) { return a += k; }
  friend indexed operator+(std::ptrdiff_t k, indexed a) { return a += k; }
  friend indexed operator-(indexed a, std::ptrdiff_t k) { return a -= k; }
  friend std::ptrdiff_t operator-(const indexed& a, const indexed& b) { return a.m_i - b.m_i; }
  friend bool operator==(const indexed& a, const indexed& b) { return a.m_i == b.m_i; }
  friend auto operator<=>(const indexed& a, const indexed& b) { return a.m_i <=> b.m_i; }

 private:
  It m_base{};
  std::ptrdiff_t m_i = 0;
};

// std::find_if over [first, last), for any random-access iterator.
template <class It, class Pred>
It find_first(It first, It last, Pred& pred) {
  if constexpr (classic_random_access<It>) {
    return std::find_if(first, last, pred);
  } else {
    for (; first != last; ++first) {
      if (pred(*first)) break;
    }
    return first;
  }
}

// std::lower_bound (Upper: std::upper_bound) over [first, first + n), for any
// random-access iterator.
template <bool Upper, class It, class T, class Comp>
It bound_of(It first, std::size_t n, const T& value, Comp& comp) {
  if constexpr (classic_random_access<It>) {
    if constexpr (Upper) {
      return std::upper_bound(first, detail::offset_by(first, n), value, comp);
    } else {
      return std::lower_bound(first, detail::offset_by(first, n), value, comp);
    }
  } else {
    while (n > 0) {  // the same halving as the standard's
      const std::size_t half = n / 2;
      const It middle = first + half;
      if (Upper ? !comp(value, *middle) : comp(*middle, value)) {
        first = middle + 1;
        n -= half + 1;
      } else {
        n = half;
      }
    }
    return first;
  }
}

// A cut of [0, n) into m_count blocks of m_size items (the last may be
// shorter). It depends on n alone, so results built block by block do not
// depend on the number of workers.
struct block_plan {
  std::size_t m_n;
  std::size_t m_size;
  std::size_t m_count;

  std::size_t begin(std::size_t b) const noexcept { return b * m_size; }
  std::size_t end(std::size_t b) const noexcept { return m_n - b * m_size <= m_size ? m_n : (b + 1) * m_size; }
};

// At most max_blocks blocks of at least min_size items.
inline block_plan make_plan(std::size_t n, std::size_t min_size, std::size_t max_blocks) noexcept {
  std::size_t size = n / max_blocks + (n % max_blocks != 0 ? 1 : 0);
  if (size < min_size) size = min_size;
  const std::size_t count = n == 0 ? 0 : n / size + (n % size != 0 ? 1 : 0);
  return {n, size, count};
}

// Blocks for reductions and searches, and for the passes of scans and packing.
inline constexpr std::size_t k_reduce_min_block = 2048;
inline constexpr std::size_t k_reduce_max_blocks = 1024;
inline constexpr std::size_t k_scan_min_block = 16384;
inline constexpr std::size_t k_scan_max_blocks = 1024;
inline constexpr std::size_t k_search_block = 4096;

// Calls fn(b) for every block index b in [0, count), in parallel.
template <class F>
void for_blocks(std::size_t count, F&& fn) {
  if (count == 1) {
    fn(std::size_t{0});
    return;
  }
  weft::parallel_for(std::size_t{0}, count, [&](std::size_t lo, std::size_t hi) {
    for (std::size_t b = lo; b < hi; ++b) fn(b);
  });
}

// Storage for one value per block, for types without a default constructor.
template <class T>
using block_values = std::vector<std::optional<T>>;

// Reduces leaf(begin, end) over the blocks of plan, in parallel, and folds the
// block results left to right with combine: the order of every combination
// depends on the plan alone. plan.m_count must be at least 1.
// The block results folded left to right. A call of its own: its values
// (the fold and combine's temporaries) take no stack while the blocks run.
template <class T, class Combine>
[[gnu::noinline]] T fold_left(block_values<T>& parts, Combine& combine) {
  T acc = std::move(*parts[0]);
  for (std::size_t b = 1; b < parts.size(); ++b) acc = combine(std::move(acc), std::move(*parts[b]));
  return acc;
}

template <class T, class Leaf, class Combine>
T blocked_reduce(const block_plan& plan, Leaf& leaf, Combine& combine) {
  if (plan.m_count == 1) return leaf(std::size_t{0}, plan.m_n);
  block_values<T> parts(plan.m_count);
  for_blocks(plan.m_count, [&](std::size_t b) { parts[b].emplace(leaf(plan.begin(b), plan.end(b))); });
  return fold_left(parts, combine);
}

// The fold of item(i) for i in [b, e) (e > b) with reduce, as four contiguous
// lanes combined as ((l0, l1), (l2, l3)) so that the processor overlaps the
// chains; needs associativity only. A large T's lanes are on the heap
// (reduce_partial).
template <class T, class Reduce, class Item>
T fold_block(std::size_t b, std::size_t e, Reduce& reduce, Item& item) {
  using partial = reduce_partial<T>;
  const std::size_t len = e - b;
  if (len < 8) {
    auto acc = partial::make([&] { return item(b); });
    for (std::size_t i = b + 1; i < e; ++i) {
      partial::fold(partial::value(acc), reduce, [&] { return item(i); });
    }
    return partial::take(std::move(acc));
  }
  const std::size_t q = len / 4;
  auto p0 = partial::make([&] { return item(b); });
  auto p1 = partial::make([&] { return item(b + q); });
  auto p2 = partial::make([&] { return item(b + 2 * q); });
  auto p3 = partial::make([&] { return item(b + 3 * q); });
  T& a0 = partial::value(p0);
  T& a1 = partial::value(p1);
  T& a2 = partial::value(p2);
  T& a3 = partial::value(p3);
  for (std::size_t k = 1; k < q; ++k) {
    partial::fold(a0, reduce, [&] { return item(b + k); });
    partial::fold(a1, reduce, [&] { return item(b + q + k); });
    partial::fold(a2, reduce, [&] { return item(b + 2 * q + k); });
    partial::fold(a3, reduce, [&] { return item(b + 3 * q + k); });
  }
  for (std::size_t i = b + 4 * q; i < e; ++i) {
    partial::fold(a3, reduce, [&] { return item(i); });
  }
  return partial::take(partial::combine(reduce, partial::combine(reduce, std::move(p0), std::move(p1)),
                                        partial::combine(reduce, std::move(p2), std::move(p3))));
}

// reduce(init, fold of item(i) over [0, n)), with a tree that depends on n
// only.
template <class T, class Reduce, class Item>
T transform_reduce_impl(std::size_t n, T init, Reduce& reduce, Item& item) {
  if (n == 0) return init;
  const block_plan plan = make_plan(n, k_reduce_min_block, k_reduce_max_blocks);
  auto leaf = [&](std::size_t b, std::size_t e) { return fold_block<T>(b, e, reduce, item); };
  T total = blocked_reduce<T>(plan, leaf, reduce);
  return reduce(std::move(init), std::move(total));
}

// The smallest i in [0, n) with leaf finding it, where leaf(b, e) returns the
// first hit in [b, e) or e, calling the predicate in order. The blocks are
// searched in segments, each a parallel loop over its blocks: the first of
// k_search_segment blocks, each next one as long as all before it. Blocks
// starting after a hit already found are skipped, every block stops at its
// first hit, and a segment with a hit ends the search: the blocks looked at
// stay within about twice the hit's position (plus the first segment)
// whatever n is (one loop over all blocks would still hand out every run of
// them after the hit).
//
// Exceptions as std::find_if's: the predicate's exception reaches the caller
// exactly when no item before the one that threw is a hit. A block whose
// leaf throws counts as an event at its start (no hit can precede the throw
// in its own block), like a hit: blocks after the first event are skipped,
// and the search rethrows when that event is an exception. An exception of a
// block after the first hit is dropped (std's never calls the predicate
// there); a hit after an exception does not hide it.
inline constexpr std::size_t k_search_segment = 64;

// The exception of the earliest block that threw in a search.
class search_error {
 public:
  // Block b threw the exception being handled: kept if b is the earliest.
  void capture(std::size_t b) noexcept {
    while (m_lock.test_and_set(std::memory_order_acquire)) {
    }
    if (b < m_block) {
      m_block = b;
      m_error = std::current_exception();
    }
    m_lock.clear(std::memory_order_release);
  }
  // After the search's loops: rethrows if the first event, at `found`, was
  // the earliest exception.
  void rethrow_if_first(std::size_t found) {
    if (m_error != nullptr && m_block == found) std::rethrow_exception(m_error);
  }

 private:
  std::atomic_flag m_lock = ATOMIC_FLAG_INIT;  // held only to compare and swap the two fields
  std::size_t m_block = std::numeric_limits<std::size_t>::max();
  std::exception_ptr m_error;
};

template <class Leaf>
std::size_t find_index(std::size_t n, Leaf&& leaf) {
  if (n <= k_search_block) return leaf(std::size_t{0}, n);
  std::atomic<std::size_t> found{n};
  // An event (a hit, or a block that threw at its start `at`): the first
  // one's position is kept. relaxed: parallel_for's completion orders these
  // stores before the loads after it.
  auto record = [&](std::size_t at) {
    std::size_t cur = found.load(std::memory_order_relaxed);
    while (at < cur && !found.compare_exchange_weak(cur, at, std::memory_order_relaxed)) {
    }
  };
  search_error error;
  const std::size_t blocks = n / k_search_block + (n % k_search_block != 0 ? 1 : 0);
  auto search = [&](std::size_t lo, std::size_t hi) {
    for (std::size_t blk = lo; blk < hi; ++blk) {
      const std::size_t b = blk * k_search_block;
      // relaxed: only a hint for skipping; the result is the minimum below.
      if (found.load(std::memory_order_relaxed) <= b) return;
      const std::size_t e = n - b <= k_search_block ? n : b + k_search_block;
      std::size_t hit = e;
      try {
        hit = leaf(b, e);
      } catch (...) {
        error.capture(b);
        record(b);
        return;
      }
      if (hit != e) {
        record(hit);
        return;
      }
    }
  };
  for (std::size_t lo = 0, length = k_search_segment; lo < blocks; length = lo) {
    const std::size_t hi = blocks - lo <= length ? blocks : lo + length;
    weft::parallel_for(lo, hi, search);
    // An event here is the first (the segments before had none).
    if (found.load(std::memory_order_relaxed) != n) break;
    lo = hi;
  }
  const std::size_t first = found.load(std::memory_order_relaxed);
  error.rethrow_if_first(first);
  return first;
}

// ---- scans ------------------------------------------------------------------

// A scan of transform(first[i]) over [0, n) into out with op. Exclusive: out[i]
// holds init op x0 op ... op x(i-1). Inclusive: out[i] holds [init op] x0 op
// ... op xi. The blocks of a fixed plan are scanned from their carry (init and
// the totals of the blocks before, folded left to right), so the arithmetic
// depends on n alone: on one worker one fused pass computes the block totals
// and the outputs together; on more, pass 1 does the same for the leading
// blocks (while their carry is known) and computes the totals of the others
// in parallel, pass 2 their carries, pass 3 their outputs. out may equal
// first (in place): every item is read before its output is written.
template <class T, bool Exclusive, class In, class Out, class Op, class Uop>
void scan_impl(In first, std::size_t n, Out out, Op& op, Uop& uop, std::optional<T> init) {
  if (n == 0) return;
  const block_plan plan = make_plan(n, k_scan_min_block, k_scan_max_blocks);
  // The block's outputs from carry c; with total, also its total (a separate
  // chain from the first item, as pass 1 computes it).
  auto scan_block = [&](std::size_t b, std::size_t e, std::optional<T>& c, std::optional<T>* total) {
    std::size_t i = b;
    if constexpr (Exclusive) {
      T acc = std::move(*c);
      if (total) {
        T x = uop(detail::item_at(first, i));
        detail::item_at(out, i) = acc;
        acc = op(std::move(acc), x);
        T s = std::move(x);
        for (++i; i < e; ++i) {
          T y = uop(detail::item_at(first, i));
          detail::item_at(out, i) = acc;
          acc = op(std::move(acc), y);
          s = op(std::move(s), std::move(y));
        }
        total->emplace(std::move(s));
      } else {
        for (; i < e; ++i) {
          T y = uop(detail::item_at(first, i));
          detail::item_at(out, i) = acc;
          acc = op(std::move(acc), std::move(y));
        }
      }
    } else {
      if (!c) {  // the first block of a scan without init: no carry
        T acc = uop(detail::item_at(first, i));
        detail::item_at(out, i) = acc;
        for (++i; i < e; ++i) {
          acc = op(std::move(acc), uop(detail::item_at(first, i)));
          detail::item_at(out, i) = acc;
        }
        if (total) total->emplace(std::move(acc));
        return;
      }
      T acc = std::move(*c);
      if (total) {
        T x = uop(detail::item_at(first, i));
        acc = op(std::move(acc), x);
        detail::item_at(out, i) = acc;
        T s = std::move(x);
        for (++i; i < e; ++i) {
          T y = uop(detail::item_at(first, i));
          acc = op(std::move(acc), y);
          detail::item_at(out, i) = acc;
          s = op(std::move(s), std::move(y));
        }
        total->emplace(std::move(s));
      } else {
        for (; i < e; ++i) {
          acc = op(std::move(acc), uop(detail::item_at(first, i)));
          detail::item_at(out, i) = acc;
        }
      }
    }
  };
  // carry(b + 1) from carry(b) and the total of block b.
  auto advance = [&](std::optional<T>& c, std::optional<T>& total) {
    if (c) {
      // Assigned, not emplaced: an op that returns a reference to its first
      // argument (a running maximum returning const T&) would be read after
      // emplace destroyed *c.
      *c = op(std::move(*c), std::move(*total));
    } else {
      c.emplace(std::move(*total));
    }
  };
  if (plan.m_count == 1 || weft::num_workers() <= 1) {
    std::optional<T> carry = std::move(init);
    for (std::size_t b = 0; b < plan.m_count; ++b) {
      std::optional<T> carry_in = carry;
      std::optional<T> total;
      const bool last = b + 1 == plan.m_count;
      scan_block(plan.begin(b), plan.end(b), carry_in, last ? nullptr : &total);
      if (!last) advance(carry, total);
    }
    return;
  }
  // Pass 1, over all blocks in parallel. The blocks [0, frontier) are done:
  // their outputs are written and carries[frontier] is the carry into the
  // next. A block reached while it is the frontier (the caller walks the
  // blocks from the left, so the leading ones usually are) is scanned in one
  // fused pass from its carry, and moves the frontier on. Any other block
  // computes only its total, as one chain from its first item (as the fused
  // pass computes it), into carries[b + 1]; the last block needs none.
  block_values<T> carries(plan.m_count + 1);
  carries[0] = std::move(init);
  std::atomic<std::size_t> frontier{0};
  const std::size_t count = plan.m_count;
  for_blocks(count, [&](std::size_t b) {
    // acquire: pairs with the release below, so carries[b] is visible.
    if (frontier.load(std::memory_order_acquire) == b) {
      std::optional<T> carry = carries[b];
      std::optional<T> total;
      const bool last = b + 1 == count;
      scan_block(plan.begin(b), plan.end(b), carry, last ? nullptr : &total);
      if (!last) {
        std::optional<T> next = std::move(carries[b]);  // no longer needed: block b is done
        advance(next, total);
        carries[b + 1] = std::move(next);
      }
      // release: publishes carries[b + 1] to the block b + 1's task.
      frontier.store(b + 1, std::memory_order_release);
      return;
    }
    if (b + 1 == count) return;
    const std::size_t e = plan.end(b);
    T s = uop(detail::item_at(first, plan.begin(b)));
    for (std::size_t i = plan.begin(b) + 1; i < e; ++i) s = op(std::move(s), uop(detail::item_at(first, i)));
    carries[b + 1].emplace(std::move(s));
  });
  // for_blocks has returned: every store above happened before this load.
  const std::size_t done = frontier.load(std::memory_order_relaxed);
  if (done == count) return;
  // Pass 2: the carries of the blocks after the frontier, left to right.
  for (std::size_t b = done + 1; b < count; ++b) {
    std::optional<T> total = std::move(carries[b]);
    std::optional<T> c = carries[b - 1];
    advance(c, total);
    carries[b] = std::move(c);
  }
  // Pass 3: the outputs of the blocks after the frontier.
  for_blocks(count - done, [&](std::size_t k) {
    const std::size_t b = done + k;
    scan_block(plan.begin(b), plan.end(b), carries[b], nullptr);
  });
}

// ---- buffers of items -------------------------------------------------------------
//
// The parallel sort, the gather of packing and the rounds of selection move a
// range's items into a buffer of their own and back. Those items' moves do not
// throw (the serial std:: algorithms take the others), but the range's
// iterators may: these helpers then leave no item alive in the buffer, and
// the buffer's memory is freed, before the exception goes on.

// The fewest items a block of a move into or out of a buffer holds.
inline constexpr std::size_t k_move_block = 4096;

// Memory for n items of T (none constructed), freed on the way out.
template <class T>
struct item_buffer {
  std::allocator<T> m_alloc;
  std::size_t m_n;
  T* m_items;

  explicit item_buffer(std::size_t n) : m_n(n), m_items(m_alloc.allocate(n)) {}
  item_buffer(const item_buffer&) = delete;
  item_buffer& operator=(const item_buffer&) = delete;
  ~item_buffer() { m_alloc.deallocate(m_items, m_n); }
};

// Calls make(r) for every region r in [0, regions), in parallel: make(r)
// constructs the items [region(r).first, region(r).second) of buf, and
// destroys those it made if it throws (as std::uninitialized_move does).
// When one throws, the items of the regions made are destroyed before the
// exception goes on.
template <class T, class Region, class Make>
void construct_regions(T* buf, std::size_t regions, Region&& region, Make&& make) {
  std::vector<char> made(regions, 0);
  try {
    for_blocks(regions, [&](std::size_t r) {
      make(r);
      made[r] = 1;
    });
  } catch (...) {
    for (std::size_t r = 0; r < regions; ++r) {
      if (made[r] != 0) std::destroy(buf + region(r).first, buf + region(r).second);
    }
    throw;
  }
}

// What move_out_of() needs besides the items: made before the items go into
// the buffer, so that running out of memory for it leaves them where they
// were (the range keeps its items).
struct move_out_plan {
  block_plan m_plan;
  std::vector<char> m_gone;  // m_gone[b]: block b has moved out
  explicit move_out_plan(std::size_t n)
      : m_plan(make_plan(n, k_move_block, k_scan_max_blocks)), m_gone(m_plan.m_count, 0) {}
};

// Moves the n items of buf to out[0, n) and destroys them, in parallel (p:
// made for those n). When a move through out throws, every item of buf still
// alive is destroyed before the exception goes on.
template <class T, class Out>
void move_out_of(T* buf, Out out, move_out_plan& p) {
  const block_plan& plan = p.m_plan;
  std::vector<char>& gone = p.m_gone;
  try {
    for_blocks(plan.m_count, [&](std::size_t b) {
      std::move(buf + plan.begin(b), buf + plan.end(b), detail::offset_by(out, plan.begin(b)));
      std::destroy(buf + plan.begin(b), buf + plan.end(b));
      gone[b] = 1;
    });
  } catch (...) {
    for (std::size_t b = 0; b < plan.m_count; ++b) {
      if (gone[b] == 0) std::destroy(buf + plan.begin(b), buf + plan.end(b));
    }
    throw;
  }
}

// ---- packing ------------------------------------------------------------------

// Moves the kept items of every block, [kept[b].first, kept[b].second) as
// offsets into first, to the front of [first, first + n), in block order, and
// returns their number. The kept items of a block lie at or after the block's
// start. With more than one worker and nothrow moves they go through a buffer
// in parallel; else they are moved serially.
template <class It>
std::size_t gather_kept(It first, const std::vector<std::pair<std::size_t, std::size_t>>& kept) {
  using T = std::iter_value_t<It>;  // NOLINT(readability-identifier-naming)
  const std::size_t blocks = kept.size();
  std::vector<std::size_t> offset(blocks + 1);
  offset[0] = 0;
  for (std::size_t b = 0; b < blocks; ++b) offset[b + 1] = offset[b] + (kept[b].second - kept[b].first);
  const std::size_t total = offset[blocks];
  if constexpr (std::is_nothrow_move_constructible_v<T> && std::is_nothrow_move_assignable_v<T> &&
                std::is_nothrow_destructible_v<T>) {
    if (weft::num_workers() > 1 && total >= 2 * k_scan_min_block) {
      item_buffer<T> buffer(total);
      move_out_plan out_plan(total);
      T* buf = buffer.m_items;
      construct_regions(
          buf, blocks,
          [&](std::size_t b) {
            return std::pair<std::size_t, std::size_t>{offset[b], offset[b + 1]};
          },
          [&](std::size_t b) {
            std::uninitialized_move(detail::offset_by(first, kept[b].first), detail::offset_by(first, kept[b].second),
                                    buf + offset[b]);
          });
      move_out_of(buf, first, out_plan);
      return total;
    }
  }
  for (std::size_t b = 0; b < blocks; ++b) {
    if (offset[b] != kept[b].first) {
      std::move(detail::offset_by(first, kept[b].first), detail::offset_by(first, kept[b].second),
                detail::offset_by(first, offset[b]));
    }
  }
  return total;
}

// Moves the items for which keep(b, e) returns the kept [lo, hi) of block
// [b, e) (compacted in place, lo >= b) to the front; returns their number.
template <class It, class Compact>
std::size_t pack_in_place(It first, std::size_t n, Compact&& compact) {
  const block_plan plan = make_plan(n, k_scan_min_block, k_scan_max_blocks);
  std::vector<std::pair<std::size_t, std::size_t>> kept(plan.m_count);
  for_blocks(plan.m_count, [&](std::size_t b) { kept[b] = compact(plan.begin(b), plan.end(b)); });
  return gather_kept(first, kept);
}

// ---- merge and sort -------------------------------------------------------------

inline constexpr std::size_t k_merge_leaf = 8192;
inline constexpr std::size_t k_sort_min_leaf = 4096;

// Serial merge of [a, ae) and [b, be) into out; on ties the item of the first
// range goes first. Moves when Move, else copies.
template <bool Move, class It1, class It2, class Out, class Comp>
Out merge_serial(It1 a, It1 ae, It2 b, It2 be, Out out, Comp& comp) {
  // The item at `it`, moved or copied: an iterator whose operator* returns
  // a value (a proxy, a view's) is taken as std::sort takes it.
  auto put = [](const auto& it) -> decltype(auto) {
    if constexpr (Move) {
      return std::ranges::iter_move(it);
    } else {
      return *it;
    }
  };
  using V1 = std::iter_value_t<It1>;  // NOLINT(readability-identifier-naming)
  if constexpr (std::is_arithmetic_v<V1> && std::is_same_v<V1, std::iter_value_t<It2>>) {
    // Branch-free selection: no mispredicted branch per item.
    while (a != ae && b != be) {
      const V1 x = *a;
      const V1 y = *b;
      const bool take_b = static_cast<bool>(comp(y, x));
      *out = take_b ? y : x;
      ++out;
      b += take_b;
      a += !take_b;
    }
  } else if (a != ae && b != be) {
    while (true) {
      if (comp(*b, *a)) {
        *out = put(b);
        ++out;
        if (++b == be) break;
      } else {
        *out = put(a);
        ++out;
        if (++a == ae) break;
      }
    }
  }
  if constexpr (Move) {
    out = std::move(a, ae, out);
    return std::move(b, be, out);
  } else {
    out = std::copy(a, ae, out);
    return std::copy(b, be, out);
  }
}

// Parallel stable merge: splits the longer range at its middle, finds the
// matching cut of the other by binary search, and merges both halves in
// parallel. Work O(n), depth O(log^2 n).
template <bool Move, class It1, class It2, class Out, class Comp>
void merge_parallel(It1 a, std::size_t na, It2 b, std::size_t nb, Out out, Comp& comp) {
  if (na + nb <= k_merge_leaf) {
    merge_serial<Move>(a, detail::offset_by(a, na), b, detail::offset_by(b, nb), out, comp);
    return;
  }
  std::size_t ma;
  std::size_t mb;
  if (na >= nb) {
    ma = na / 2;
    // Items of b before a[ma]: those less than it (ties go after: stable).
    mb = static_cast<std::size_t>(bound_of<false>(b, nb, detail::item_at(a, ma), comp) - b);
  } else {
    mb = nb / 2;
    // Items of a before b[mb]: those not greater than it.
    ma = static_cast<std::size_t>(bound_of<true>(a, na, detail::item_at(b, mb), comp) - a);
  }
  weft::join([&] { merge_parallel<Move>(a, ma, b, mb, out, comp); },
             [&] {
               merge_parallel<Move>(detail::offset_by(a, ma), na - ma, detail::offset_by(b, mb), nb - mb,
                                    detail::offset_by(out, ma + mb), comp);
             });
}

// Items that sort by the bits of a key when compared with a plain less:
// integers, and (for an unstable sort, which may order -0.0 and 0.0 either
// way) floating point.
template <bool Stable, class T, class Comp>
inline constexpr bool radix_sortable =  // NOLINT(readability-identifier-naming)
    (std::is_same_v<Comp, std::less<>> || std::is_same_v<Comp, std::less<T>> ||
     std::is_same_v<Comp, std::ranges::less>)&&((std::is_integral_v<T> && !std::is_same_v<T, bool>) ||
                                                (!Stable && (std::is_same_v<T, float> || std::is_same_v<T, double>)));

// An unsigned key whose order is the order of x.
template <class T>
auto radix_key(T x) noexcept {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;  // NOLINT(readability-identifier-naming)
    U u = static_cast<U>(x);
    if constexpr (std::is_signed_v<T>) u ^= static_cast<U>(U{1} << (sizeof(U) * 8 - 1));
    return u;
  } else {
    // NOLINTNEXTLINE(readability-identifier-naming)
    using U = std::conditional_t<sizeof(T) == 8, std::uint64_t, std::uint32_t>;
    const U u = std::bit_cast<U>(x);
    const U sign = U{1} << (sizeof(U) * 8 - 1);
    return (u & sign) != 0 ? static_cast<U>(~u) : static_cast<U>(u | sign);
  }
}

// LSD radix sort of n items at a, one byte per pass, with t (n items) as
// scratch; passes where all items share the byte are skipped. The result is in
// t when to_buffer, else in a.
template <class T, class A, class B>
void radix_sort(A a, B t, std::size_t n, bool to_buffer) {
  constexpr std::size_t bytes = sizeof(T);  // NOLINT(readability-identifier-naming)
  std::vector<std::size_t> count(bytes * 256, 0);
  for (std::size_t i = 0; i < n; ++i) {
    const auto k = radix_key(static_cast<T>(detail::item_at(a, i)));
    for (std::size_t d = 0; d < bytes; ++d) ++count[d * 256 + ((k >> (8 * d)) & 0xff)];
  }
  bool in_a = true;
  for (std::size_t d = 0; d < bytes; ++d) {
    std::size_t* c = count.data() + d * 256;
    const auto first_key = radix_key(static_cast<T>(in_a ? a[0] : t[0]));
    if (c[(first_key >> (8 * d)) & 0xff] == n) continue;
    std::size_t sum = 0;
    for (std::size_t v = 0; v < 256; ++v) {
      const std::size_t k = c[v];
      c[v] = sum;
      sum += k;
    }
    auto pass = [&](auto src, auto dst) {
      for (std::size_t i = 0; i < n; ++i) {
        const T x = detail::item_at(src, i);
        detail::item_at(dst, c[(radix_key(x) >> (8 * d)) & 0xff]++) = x;
      }
    };
    if (in_a) {
      pass(a, t);
    } else {
      pass(t, a);
    }
    in_a = !in_a;
  }
  if (in_a == to_buffer) {
    if (to_buffer) {
      std::copy(a, detail::offset_by(a, n), t);
    } else {
      std::copy(t, detail::offset_by(t, n), a);
    }
  }
}

// Merge sort of n items at a, with t as a buffer of n items: sorts the halves
// in parallel, then merges them in parallel; leaves of at most leaf items are
// sorted with std::sort or std::stable_sort. The result is in t when
// to_buffer, else in a.
template <bool Stable, class It, class Buf, class Comp>
void merge_sort(It a, Buf t, std::size_t n, std::size_t leaf, Comp& comp, bool to_buffer) {
  if (n <= leaf) {
    using T = std::iter_value_t<It>;  // NOLINT(readability-identifier-naming)
    if constexpr (radix_sortable<Stable, T, Comp> && std::is_same_v<T, std::iter_value_t<Buf>>) {
      radix_sort<T>(a, t, n, to_buffer);
      return;
    }
    if constexpr (Stable) {
      std::stable_sort(a, detail::offset_by(a, n), comp);
    } else {
      std::sort(a, detail::offset_by(a, n), comp);
    }
    if (to_buffer) std::move(a, detail::offset_by(a, n), t);
    return;
  }
  const std::size_t m = n / 2;
  weft::join(
      [&] { merge_sort<Stable>(a, t, m, leaf, comp, !to_buffer); },
      [&] { merge_sort<Stable>(detail::offset_by(a, m), detail::offset_by(t, m), n - m, leaf, comp, !to_buffer); });
  if (to_buffer) {
    merge_parallel<true>(a, m, detail::offset_by(a, m), n - m, t, comp);
  } else {
    merge_parallel<true>(t, m, detail::offset_by(t, m), n - m, a, comp);
  }
}

// A comparator that may throw, for the parallel sorts: the first exception
// is kept and every later comparison answers false (all items equivalent),
// so the sort runs to its end with the items a permutation of the input, and
// the caller rethrows the exception. False is the answer on which every
// search of a sort stops (the unguarded loops of std::sort included).
template <class Comp>
struct guarded_less {
  Comp& m_comp;
  std::atomic<bool>& m_failed;
  std::exception_ptr& m_error;  // written by the comparison that set m_failed

  template <class A, class B>
  bool operator()(A&& a, B&& b) const noexcept {
    // relaxed: a hint; the sort's joins order m_error before the caller's read.
    if (m_failed.load(std::memory_order_relaxed)) return false;
    try {
      return static_cast<bool>(m_comp(std::forward<A>(a), std::forward<B>(b)));  // the conversion may throw too
    } catch (...) {
      if (!m_failed.exchange(true, std::memory_order_relaxed)) m_error = current_exception_or_bad();
      return false;
    }
  }
};

// Calls f(c): c is comp when neither a comparison of two T nor the
// conversion of its result to bool can throw, else a guarded_less of it,
// after which the first exception it caught is rethrown. A sort or selection
// that ends with a std:: one (which holds an item in a temporary while it
// shifts others) so leaves the items a permutation of the input when a
// comparison throws.
template <class T, class Comp, class F>
void with_guarded_less(Comp& comp, F&& f) {
  if constexpr (std::is_nothrow_invocable_r_v<bool, Comp&, T&, T&>) {  // the call and its conversion
    f(comp);
  } else {
    std::atomic<bool> failed{false};
    std::exception_ptr error;
    guarded_less<Comp> guarded{comp, failed, error};
    f(guarded);
    if (error) std::rethrow_exception(error);
  }
}

// The merge sort of sort_impl: about 2 leaves per worker (a power of 4, so
// that the leaves sort in place), one on one worker.
template <bool Stable, class It, class Comp>
void sort_parallel(It first, std::size_t n, int workers, Comp& comp) {
  using T = std::iter_value_t<It>;  // NOLINT(readability-identifier-naming)
  std::size_t leaves = 1;
  if (workers > 1) {
    while (leaves < 2 * static_cast<std::size_t>(workers)) leaves *= 4;
  }
  std::size_t leaf = n / leaves + (n % leaves != 0 ? 1 : 0);
  if (leaf < k_sort_min_leaf) leaf = k_sort_min_leaf;
  item_buffer<T> buffer(n);
  T* buf = buffer.m_items;
  if constexpr (std::is_trivially_copyable_v<T> && std::is_trivially_default_constructible_v<T>) {
    merge_sort<Stable>(first, buf, n, leaf, comp, false);
  } else {
    // The buffer holds live objects throughout: the items move into it first,
    // and the sort runs from it back into the range; its items are destroyed
    // at the end, also when an iterator of the range throws.
    const block_plan plan = make_plan(n, k_move_block, k_scan_max_blocks);
    construct_regions(
        buf, plan.m_count,
        [&](std::size_t b) {
          return std::pair<std::size_t, std::size_t>{plan.begin(b), plan.end(b)};
        },
        [&](std::size_t b) {
          std::uninitialized_move(detail::offset_by(first, plan.begin(b)), detail::offset_by(first, plan.end(b)),
                                  buf + plan.begin(b));
        });
    struct destroy_items {
      T* buf;
      std::size_t n;
      ~destroy_items() {
        weft::parallel_for(std::size_t{0}, n,
                           [&](std::size_t lo, std::size_t hi) { std::destroy(buf + lo, buf + hi); });
      }
    } live{buf, n};
    merge_sort<Stable>(buf, first, n, leaf, comp, true);
  }
}

// Sorts [first, first + n): with std::sort / std::stable_sort for small n,
// for element types whose moves may throw, and on one worker unless the keys
// radix sort; else by sort_parallel.
template <bool Stable, class It, class Comp>
void sort_any(It first, std::size_t n, Comp& comp) {
  using T = std::iter_value_t<It>;  // NOLINT(readability-identifier-naming)
  const int workers = weft::num_workers();
  // NOLINTNEXTLINE(readability-identifier-naming)
  constexpr bool parallel_ok = std::is_nothrow_move_constructible_v<T> && std::is_nothrow_move_assignable_v<T> &&
                               std::is_nothrow_destructible_v<T>;
  // On one worker, only keys that radix sort take the buffer (one leaf).
  if (!parallel_ok || n < 2 * k_sort_min_leaf || (workers <= 1 && !radix_sortable<Stable, T, Comp>)) {
    if constexpr (Stable) {
      std::stable_sort(first, detail::offset_by(first, n), comp);
    } else {
      std::sort(first, detail::offset_by(first, n), comp);
    }
    return;
  }
  if constexpr (parallel_ok) sort_parallel<Stable>(first, n, workers, comp);
}

// sort_any, through guarded_less when the comparator may throw: the items
// stay a permutation of the input (the parallel merge sort's buffer, and
// std::stable_sort's, would otherwise keep some of them), and the first
// exception is rethrown once the sort is done. Radix-sorted keys use no
// comparator.
template <bool Stable, class It, class Comp>
void sort_impl(It first, std::size_t n, Comp& comp) {
  using T = std::iter_value_t<It>;  // NOLINT(readability-identifier-naming)
  if constexpr (radix_sortable<Stable, T, Comp>) {
    sort_any<Stable>(first, n, comp);
  } else {
    with_guarded_less<T>(comp, [&](auto& c) { sort_any<Stable>(first, n, c); });
  }
}

// ---- selection -------------------------------------------------------------------

inline constexpr std::size_t k_select_serial = std::size_t{1} << 16;

// Places the item of rank k of [first, first + n) at first + k, smaller-or-
// equal items before it and greater-or-equal after (std::nth_element). On
// more than one worker, large ranges are narrowed by rounds of a parallel
// three-way partition around two pivots from a sorted sample that bracket
// rank k: the classes of the items are stored (one byte each), the items are
// moved by class into a buffer at offsets from a blocked count and scan, and
// back; the round keeps only the class holding rank k. Then std::nth_element.
// comp: guarded_less when comparisons may throw (select_impl).
template <class It, class Comp>
void select_any(It first, std::size_t n, std::size_t k, Comp& comp) {
  using T = std::iter_value_t<It>;  // NOLINT(readability-identifier-naming)
  // NOLINTNEXTLINE(readability-identifier-naming)
  constexpr bool parallel_ok = std::is_nothrow_move_constructible_v<T> && std::is_nothrow_move_assignable_v<T> &&
                               std::is_nothrow_destructible_v<T>;
  if constexpr (parallel_ok) {
    if (weft::num_workers() > 1) {
      for (int round = 0; round < 8 && n >= k_select_serial; ++round) {
        // Two pivots around rank k in a sorted sample of evenly spaced items.
        constexpr std::size_t samples = 1023;  // NOLINT(readability-identifier-naming)
        constexpr std::size_t spread = 32;     // NOLINT(readability-identifier-naming)
        std::vector<std::size_t> sample(samples);
        for (std::size_t j = 0; j < samples; ++j) sample[j] = j * (n / samples);
        std::sort(sample.begin(), sample.end(), [&](std::size_t x, std::size_t y) {
          return comp(detail::item_at(first, x), detail::item_at(first, y));
        });
        const std::size_t r = static_cast<std::size_t>(static_cast<double>(k) / static_cast<double>(n) * samples);
        std::size_t lo_i = sample[r >= spread ? r - spread : 0];
        std::size_t hi_i = sample[r + spread < samples ? r + spread : samples - 1];
        // The pivots go to positions 0 and 1 and stay there while the others
        // are classified.
        std::iter_swap(first, detail::offset_by(first, lo_i));
        if (hi_i == 0) hi_i = lo_i;
        std::iter_swap(first + 1, detail::offset_by(first, hi_i));
        const bool distinct = static_cast<bool>(comp(first[0], first[1]));
        const std::size_t m = n - 2;
        It rest = first + 2;
        std::vector<unsigned char> cls(m);
        const block_plan plan = make_plan(m, k_scan_min_block, k_scan_max_blocks);
        std::vector<std::size_t> counts(3 * plan.m_count);
        for_blocks(plan.m_count, [&](std::size_t b) {
          std::size_t c[3] = {0, 0, 0};
          const std::size_t e = plan.end(b);
          for (std::size_t i = plan.begin(b); i < e; ++i) {
            const unsigned char v =
                comp(detail::item_at(rest, i), first[0]) ? 0 : (comp(first[1], detail::item_at(rest, i)) ? 2 : 1);
            cls[i] = v;
            ++c[v];
          }
          for (int v = 0; v < 3; ++v) counts[3 * b + static_cast<std::size_t>(v)] = c[v];
        });
        // Offsets in the buffer: class 0 | the two pivots | class 1 | class 2.
        std::size_t totals[3] = {0, 0, 0};
        for (std::size_t b = 0; b < plan.m_count; ++b) {
          for (std::size_t v = 0; v < 3; ++v) totals[v] += counts[3 * b + v];
        }
        std::size_t base[3] = {0, totals[0] + 2, totals[0] + 2 + totals[1]};
        for (std::size_t b = 0; b < plan.m_count; ++b) {
          for (std::size_t v = 0; v < 3; ++v) {
            const std::size_t c = counts[3 * b + v];
            counts[3 * b + v] = base[v];
            base[v] += c;
          }
        }
        item_buffer<T> buffer(n);
        T* buf = buffer.m_items;
        // The items of block b fill [counts[3 b + v], ends[3 b + v]) of each
        // class v; made[b] once they all did. An iterator of the range that
        // throws leaves none of them alive.
        std::vector<std::size_t> ends(3 * plan.m_count);
        std::vector<char> made(plan.m_count, 0);
        move_out_plan out_plan(n);
        int pivots = 0;
        try {
          for_blocks(plan.m_count, [&](std::size_t b) {
            std::size_t at[3] = {counts[3 * b], counts[3 * b + 1], counts[3 * b + 2]};
            const std::size_t e = plan.end(b);
            try {
              for (std::size_t i = plan.begin(b); i < e; ++i) {
                auto&& item = detail::item_at(rest, i);  // may throw: no slot taken yet
                const unsigned char v = cls[i];
                ::new (static_cast<void*>(buf + at[v])) T(std::move(item));
                ++at[v];
              }
            } catch (...) {
              for (std::size_t v = 0; v < 3; ++v) std::destroy(buf + counts[3 * b + v], buf + at[v]);
              throw;
            }
            for (std::size_t v = 0; v < 3; ++v) ends[3 * b + v] = at[v];
            made[b] = 1;
          });
          for (; pivots < 2; ++pivots) {
            auto&& pivot = first[pivots];
            ::new (static_cast<void*>(buf + totals[0] + static_cast<std::size_t>(pivots))) T(std::move(pivot));
          }
        } catch (...) {
          for (std::size_t b = 0; b < plan.m_count; ++b) {
            if (made[b] == 0) continue;
            for (std::size_t v = 0; v < 3; ++v) std::destroy(buf + counts[3 * b + v], buf + ends[3 * b + v]);
          }
          std::destroy(buf + totals[0], buf + totals[0] + pivots);
          throw;
        }
        move_out_of(buf, first, out_plan);
        // [0, lo_end): less than the low pivot; [lo_end, hi_end): between the
        // pivots (both included); [hi_end, n): greater than the high pivot.
        const std::size_t lo_end = totals[0];
        const std::size_t hi_end = totals[0] + 2 + totals[1];
        if (k < lo_end) {
          n = lo_end;
        } else if (k < hi_end) {
          if (!distinct) return;  // the middle class is all equal to the pivots
          first = detail::offset_by(first, lo_end);
          k -= lo_end;
          n = hi_end - lo_end;
        } else {
          first = detail::offset_by(first, hi_end);
          k -= hi_end;
          n -= hi_end;
        }
      }
    }
  }
  std::nth_element(first, detail::offset_by(first, k), detail::offset_by(first, n), comp);
}

// select_any, through guarded_less when the comparator may throw: the items
// stay a permutation of the input, and the first exception is rethrown once
// the selection is done.
template <class It, class Comp>
void select_impl(It first, std::size_t n, std::size_t k, Comp& comp) {
  with_guarded_less<std::iter_value_t<It>>(comp, [&](auto& c) { select_any(first, n, k, c); });
}

}  // namespace weft::detail
