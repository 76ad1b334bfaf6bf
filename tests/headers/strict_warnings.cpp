// SPDX-License-Identifier: MIT
// The public templates instantiated under the strict warnings a user's
// project may turn into errors (tests/headers/meson.build adds -Wconversion,
// -Wsign-conversion, -Wshadow and -Werror to this unit): a warning from a
// weft header, which only an instantiation shows, breaks the build here.
// Every algorithm in its iterator and range forms over containers whose
// iterators are classes (std::vector, std::deque), raw pointers and an iota
// view, with trivially copyable, floating-point and class element types; the
// loops with every index type; fork-join, coroutines and the fibers'
// synchronisation; callables whose [[nodiscard]] results weft drops. Compiled, never run: the tests that run them are
// elsewhere.
#include <weft/algorithm.hpp>
#include <weft/coroutine.hpp>
#include <weft/weft.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <ranges>
#include <string>
#include <vector>

namespace weft_strict {

// Default is false for an element type that std::plus<> promotes (a small
// integer type): the default operations' results convert back to it, a
// conversion the caller's types ask for, warned as in the caller's own code.
template <class C, bool Default = true>
void algorithms_over(C& c, C& out) {
  using T = typename C::value_type;
  auto first = c.begin();
  auto last = c.end();
  auto less = std::less<>{};
  auto plus = [](const T& a, const T& b) { return static_cast<T>(a + b); };
  weft::for_each(first, last, [](T&) {});
  (void)weft::for_each_n(first, 3, [](T&) {});
  (void)weft::transform(first, last, out.begin(), [](const T& x) { return x; });
  (void)weft::transform(first, last, c.begin(), out.begin(), [](const T& x, const T&) { return x; });
  weft::fill(first, last, T{});
  (void)weft::copy(first, last, out.begin());
  weft::generate(first, last, [] { return T{}; });
  if constexpr (Default) {
    (void)weft::reduce(first, last);
  }
  if constexpr (Default) {
    (void)weft::reduce(first, last, T{});
  }
  (void)weft::reduce(first, last, T{}, plus);
  (void)weft::transform_reduce(first, last, T{}, plus, [](const T& x) { return x; });
  (void)weft::transform_reduce(first, last, c.begin(), T{}, plus, [](const T& x, const T&) { return x; });
  (void)weft::count_if(first, last, [](const T&) { return true; });
  (void)weft::find_if(first, last, [](const T&) { return false; });
  (void)weft::any_of(first, last, [](const T&) { return false; });
  (void)weft::all_of(first, last, [](const T&) { return true; });
  (void)weft::none_of(first, last, [](const T&) { return false; });
  (void)weft::min_element(first, last);
  (void)weft::max_element(first, last, less);
  (void)weft::minmax_element(first, last);
  if constexpr (Default) {
    (void)weft::inclusive_scan(first, last, out.begin());
  }
  (void)weft::inclusive_scan(first, last, out.begin(), plus);
  (void)weft::inclusive_scan(first, last, out.begin(), plus, T{});
  if constexpr (Default) {
    (void)weft::exclusive_scan(first, last, out.begin(), T{});
  }
  (void)weft::exclusive_scan(first, last, out.begin(), T{}, plus);
  (void)weft::transform_inclusive_scan(first, last, out.begin(), plus, [](const T& x) { return x; });
  (void)weft::transform_inclusive_scan(
      first, last, out.begin(), plus, [](const T& x) { return x; }, T{});
  (void)weft::transform_exclusive_scan(first, last, out.begin(), T{}, plus, [](const T& x) { return x; });
  (void)weft::copy_if(first, last, out.begin(), [](const T&) { return true; });
  (void)weft::remove_if(first, last, [](const T&) { return false; });
  (void)weft::unique(first, last);
  weft::sort(first, last);
  weft::sort(first, last, less);
  weft::stable_sort(first, last);
  weft::stable_sort(first, last, less);
  (void)weft::merge(first, last, c.begin(), c.end(), out.begin());
  weft::nth_element(first, first, last);
  weft::nth_element(first, first, last, less);

  weft::for_each(c, [](T&) {});
  (void)weft::transform(c, out.begin(), [](const T& x) { return x; });
  (void)weft::transform(c, c, out.begin(), [](const T& x, const T&) { return x; });
  weft::fill(c, T{});
  (void)weft::copy(c, out.begin());
  weft::generate(c, [] { return T{}; });
  if constexpr (Default) {
    (void)weft::reduce(c);
  }
  if constexpr (Default) {
    (void)weft::reduce(c, T{});
  }
  (void)weft::reduce(c, T{}, plus);
  (void)weft::transform_reduce(c, T{}, plus, [](const T& x) { return x; });
  (void)weft::transform_reduce(c, c, T{}, plus, [](const T& x, const T&) { return x; });
  (void)weft::count_if(c, [](const T&) { return true; });
  (void)weft::find_if(c, [](const T&) { return false; });
  (void)weft::any_of(c, [](const T&) { return false; });
  (void)weft::all_of(c, [](const T&) { return true; });
  (void)weft::none_of(c, [](const T&) { return false; });
  (void)weft::min_element(c);
  (void)weft::max_element(c);
  (void)weft::minmax_element(c, less);
  if constexpr (Default) {
    (void)weft::inclusive_scan(c, out.begin());
  }
  (void)weft::inclusive_scan(c, out.begin(), plus, T{});
  if constexpr (Default) {
    (void)weft::exclusive_scan(c, out.begin(), T{});
  }
  (void)weft::transform_inclusive_scan(c, out.begin(), plus, [](const T& x) { return x; });
  (void)weft::transform_inclusive_scan(
      c, out.begin(), plus, [](const T& x) { return x; }, T{});
  (void)weft::transform_exclusive_scan(c, out.begin(), T{}, plus, [](const T& x) { return x; });
  (void)weft::copy_if(c, out.begin(), [](const T&) { return true; });
  (void)weft::remove_if(c, [](const T&) { return false; });
  (void)weft::unique(c);
  weft::sort(c);
  weft::stable_sort(c, less);
  (void)weft::merge(c, c, out.begin());
  weft::nth_element(c, c.begin());
}

template <class T>
void algorithms_over_pointers(T* first, T* last, T* out) {
  weft::sort(first, last);
  weft::stable_sort(first, last);
  weft::nth_element(first, first, last);
  (void)weft::inclusive_scan(first, last, out, [](const T& a, const T& b) { return static_cast<T>(a + b); });
  (void)weft::copy_if(first, last, out, [](const T&) { return true; });
  (void)weft::merge(first, last, first, last, out);
}

template <class I>
void loops_with_index() {
  weft::parallelize(I{10}, [](I) {});
  weft::parallelize(I{10}, 2, [](I) {});
  weft::parallel_for(I{0}, I{10}, [](I, I) {});
  weft::parallel_for(I{0}, I{10}, I{2}, [](I, I) {});
  (void)weft::parallel_reduce(
      I{0}, I{10}, I{0}, [](I i) { return i; }, [](I a, I b) { return static_cast<I>(a + b); });
}

// Callables whose results the loops, task_group and for_each drop: a
// [[nodiscard]] result type or operator() warned (-Wunused-result, on by
// default) inside weft's headers.
struct [[nodiscard]] status {
  int code = 0;
};
struct nodiscard_item {
  [[nodiscard]] int operator()(int) const { return 1; }
};

weft::task<int> discarded_in_coroutines() {
  co_await weft::parallelize_async(10, [](int) { return status{}; });
  co_await weft::parallelize_async(10, nodiscard_item{});
  co_return 0;
}

void discarded_results() {
  std::vector<int> v(10);
  weft::parallelize(10, [](int) { return status{}; });
  weft::parallelize(10, 2, [](int) { return status{}; });
  weft::parallelize(10, nodiscard_item{});
  weft::parallel_for(0, 10, [](int, int) { return status{}; });
  weft::parallel_for(0, 10, 3, [](int, int) { return status{}; });
  weft::task_group g;
  g.spawn([] { return status{}; });
  g.wait();
  weft::for_each(v.begin(), v.end(), [](int&) { return status{}; });
  (void)weft::for_each_n(v.begin(), 3, [](int&) { return status{}; });
  weft::for_each(v, [](int&) { return status{}; });
  (void)weft::sync_wait(discarded_in_coroutines());
  // measure_workspan drops f's result; a barrier its completion's (as
  // std::barrier does): both warned.
  (void)weft::measure_workspan([] { return status{}; });
  weft::barrier<status (*)() noexcept> b(1, []() noexcept { return status{}; });
  b.arrive_and_wait();
}

// parallelize_async takes the callables parallelize takes, called as
// lvalues: it refused one callable only as an lvalue, and took one callable
// only as an rvalue and then failed inside its body.
struct lvalue_only_item {
  void operator()(int) & {}
};
struct rvalue_only_item {
  void operator()(int) && {}
};
template <class F>
concept loop_takes = requires(F f) {
  weft::parallelize(10, std::move(f));
};
template <class F>
concept async_loop_takes = requires(F f) {
  weft::parallelize_async(10, std::move(f));
};
static_assert(loop_takes<lvalue_only_item> && async_loop_takes<lvalue_only_item>);
static_assert(!loop_takes<rvalue_only_item> && !async_loop_takes<rvalue_only_item>);

// task_group::spawn takes what it can call as an lvalue, and a requires
// clause sees a refusal: it took anything, then failed inside its body.
struct lvalue_only_call {
  void operator()() & {}
};
struct rvalue_only_call {
  void operator()() && {}
};
template <class F>
concept group_takes = requires(weft::task_group& g, F f) {
  g.spawn(std::move(f));
};
// A destructor that may throw does not make a callable unfit (std::destructible,
// in std::constructible_from, would refuse it).
struct throwing_destructor_call {
  void operator()() {}
  ~throwing_destructor_call() noexcept(false) {}  // NOLINT(bugprone-exception-escape)
};
static_assert(group_takes<lvalue_only_call> && group_takes<void (*)()> && group_takes<throwing_destructor_call>);
static_assert(!group_takes<rvalue_only_call> && !group_takes<int> && !group_takes<void (*)(int)>);

weft::task<int> leaf(int v) { co_return v; }

// Plain functions given to the awaitables (referred to; a function type has
// no alignment to check).
void plain_item(int) {}
int plain_value() { return 1; }
weft::task<int> functions_awaited() {
  co_await weft::parallelize_async(4, plain_item);
  co_return co_await weft::on_fiber_async(plain_value);
}

weft::task<int> forks() {
  auto [a, b] = co_await weft::when_all(leaf(1), leaf(2));
  auto h = weft::spawn(leaf(3));
  const int c = co_await h;
  auto one = [] { return 1; };
  const int d = co_await weft::on_fiber_async(one) + co_await weft::on_fiber_async([] { return 1; });
  auto item = [](int) {};
  co_await weft::parallelize_async(10, item);
  co_await weft::parallelize_async(std::size_t{10}, [](std::size_t) {});
  co_return a + b + c + d;
}

void everything() {
  std::vector<int> vi(100);
  std::vector<int> vo(100);
  algorithms_over(vi, vo);
  std::deque<double> di(100);
  std::deque<double> dout(100);
  algorithms_over(di, dout);
  std::vector<std::string> si(100);
  std::vector<std::string> so(100);
  algorithms_over(si, so);
  std::vector<std::uint8_t> bi(100);
  std::vector<std::uint8_t> bo(100);
  algorithms_over<std::vector<std::uint8_t>, false>(bi, bo);
  algorithms_over_pointers(vi.data(), vi.data() + vi.size(), vo.data());
  algorithms_over_pointers(bi.data(), bi.data() + bi.size(), bo.data());

  // clang 14 cannot compile libstdc++ 12's iota_view (a compiler limit, not
  // weft's); later clangs and every GCC take these.
#if !defined(__clang__) || __clang_major__ >= 15
  auto iota = std::views::iota(std::int64_t{0}, std::int64_t{100});
  (void)weft::reduce(iota, std::int64_t{0});
  (void)weft::count_if(iota, [](std::int64_t x) { return x % 2 == 0; });
  (void)weft::transform(iota, vo.begin(), [](std::int64_t x) { return static_cast<int>(x); });
  (void)weft::for_each_n(iota.begin(), 10, [](std::int64_t) {});
  auto small = std::views::iota(0U, 100U);
  std::vector<unsigned> uo(100);
  (void)weft::reduce(small, 0U);
  (void)weft::inclusive_scan(small, uo.begin());
#endif

  loops_with_index<int>();
  loops_with_index<unsigned>();
  loops_with_index<short>();
  loops_with_index<std::int64_t>();
  loops_with_index<std::size_t>();
  loops_with_index<std::uint8_t>();

  (void)weft::join([] { return 1; }, [] { return 2; });
  weft::task_group g;
  g.spawn([] {});
  g.wait();
  (void)weft::sync_wait(forks());
  (void)weft::sync_wait(functions_awaited());
  weft::latch l(2);
  l.count_down(2);
  l.wait();
  weft::mutex m;
  m.lock();
  m.unlock();
  weft::barrier<> b(1);
  b.arrive_and_wait();
  discarded_results();
}

}  // namespace weft_strict

// An entry point the library's linker sees: the unit is compiled into a
// static library that nothing runs.
void weft_strict_warnings_instantiations() { weft_strict::everything(); }
