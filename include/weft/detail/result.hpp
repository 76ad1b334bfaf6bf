// SPDX-License-Identifier: MIT
// weft: storage for the result of a call that may not have run yet.
#pragma once

#include <functional>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace weft::detail {

// Holds the value returned by a callable once emplace() ran it. T may be void
// or a reference. take() only after emplace() returned. A T that needs no
// destruction is held without a flag saying whether it is there. A const T
// is held without its const (the call's prvalue initialises it in place),
// so that take() can move it: a const move-only result is handed on.
template <class R>
class result {
  using T = std::remove_cv_t<R>;  // NOLINT(readability-identifier-naming)
  static constexpr bool k_flagged = !std::is_trivially_destructible_v<T>;

 public:
  result() noexcept {}
  result(const result&) = delete;
  result& operator=(const result&) = delete;
  ~result() {
    if constexpr (k_flagged) {
      if (m_has) std::destroy_at(ptr());
    }
  }

  template <class F>
  void emplace(F& f) {
    ::new (static_cast<void*>(m_buf)) T(std::invoke(f));
    if constexpr (k_flagged) m_has = true;
  }
  T take() { return std::move(*ptr()); }
  // Destroys what emplace() made, if anything: emplace() may follow (an
  // awaitable awaited again).
  void reset() noexcept {
    if constexpr (k_flagged) {
      if (m_has) std::destroy_at(ptr());
      m_has = false;
    }
  }

 private:
  struct no_flag {};
  T* ptr() noexcept { return std::launder(reinterpret_cast<T*>(m_buf)); }
  alignas(T) unsigned char m_buf[sizeof(T)];
  [[no_unique_address]] std::conditional_t<k_flagged, bool, no_flag> m_has{};
};

template <class T>
class result<T&> {
 public:
  template <class F>
  void emplace(F& f) {
    m_ptr = std::addressof(std::invoke(f));
  }
  T& take() { return *m_ptr; }
  void reset() noexcept { m_ptr = nullptr; }

 private:
  T* m_ptr = nullptr;
};

// A call returning an rvalue reference: refused with a message (its target
// would be gone once the call returned through a join, a run or a task).
template <class T>
class result<T&&> {
  static_assert(!std::is_same_v<T, T>,
                "weft: a call that returns an rvalue reference (T&&) cannot hand its result back across a join, a "
                "run or a task: return T by value");
};

template <>
class result<void> {
 public:
  template <class F>
  void emplace(F& f) {
    std::invoke(f);
  }
  void take() noexcept {}
  void reset() noexcept {}
};

}  // namespace weft::detail
