// SPDX-License-Identifier: MIT
// The algorithms that move items through a buffer of their own, when memory
// runs out at any allocation of the call: std::bad_alloc reaches the caller
// and no item is left alive in the buffer (docs/algorithms.md,
// "Exceptions"). The global operator new of this program fails its k-th
// allocation while armed, for every k of one call.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <functional>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include <weft/algorithm.hpp>
#include <weft/weft.hpp>

#include "watchdog.hpp"

namespace {

std::atomic<bool> g_armed{false};
std::atomic<long> g_allocations{0};  // while armed
std::atomic<long> g_fail_at{0};      // 0: none

}  // namespace

void* operator new(std::size_t n) {
  if (g_armed.load(std::memory_order_relaxed) && g_allocations.fetch_add(1) + 1 == g_fail_at.load()) {
    throw std::bad_alloc();
  }
  if (void* p = std::malloc(n != 0 ? n : 1)) return p;
  throw std::bad_alloc();
}
// Its nothrow form too (std::stable_sort's temporary buffer), so that every
// allocation a sanitizer sees is this program's malloc.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return ::operator new(n);
  } catch (...) {
    return nullptr;
  }
}

// g++ takes this program's operator new for the library's, which free() does
// not match.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace {

// An item that counts the live ones, with nothrow moves (the buffered path).
struct counted {
  static inline std::atomic<long> s_live{0};
  int m_value = 0;
  explicit counted(int v) noexcept : m_value(v) { s_live.fetch_add(1); }
  counted(const counted& o) noexcept : m_value(o.m_value) { s_live.fetch_add(1); }
  counted(counted&& o) noexcept : m_value(std::exchange(o.m_value, -1)) { s_live.fetch_add(1); }  // -1: moved from
  counted& operator=(const counted&) noexcept = default;
  counted& operator=(counted&& o) noexcept {
    m_value = std::exchange(o.m_value, -1);
    return *this;
  }
  ~counted() { s_live.fetch_sub(1); }
  friend bool operator<(const counted& a, const counted& b) noexcept { return a.m_value < b.m_value; }
  friend bool operator==(const counted& a, const counted& b) noexcept { return a.m_value == b.m_value; }
};

constexpr int k_items = 100'000;

std::vector<counted> items() {
  std::vector<counted> v;
  v.reserve(k_items);
  for (int i = 0; i < k_items; ++i) v.emplace_back(static_cast<int>((i * 7919L) % 1009));
  return v;
}

// Runs call(v) on 2 workers failing its k-th allocation, for every k of one
// call (counted first with none failing): after each, the items alive are
// exactly the range's.
void every_allocation_fails_once(const std::function<void(std::vector<counted>&)>& call) {
  weft::runtime rt{weft::config{.workers = 2}};
  long total = -1;
  int failures = 0;
  for (long k = 0; k <= total || total < 0; ++k) {
    SCOPED_TRACE(::testing::Message() << "failing allocation " << k << " of " << total);
    const long before = counted::s_live.load();  // none, unless an earlier call left some alive
    std::vector<counted> v = items();
    g_allocations.store(0);
    g_fail_at.store(k);  // 0: the counting run
    bool threw = false;
    g_armed.store(true);
    try {
      rt.run([&] { call(v); });
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    g_armed.store(false);
    if (k == 0) {
      ASSERT_FALSE(threw);
      total = g_allocations.load();
      ASSERT_GT(total, 0) << "the buffered path allocated nothing";
    }
    failures += threw ? 1 : 0;
    EXPECT_EQ(counted::s_live.load() - before, static_cast<long>(v.size())) << (threw ? "after std::bad_alloc" : "");
  }
  EXPECT_GT(failures, 0);
}

TEST(AlgorithmMemoryTest, RemoveIfLeavesNoItemInItsBuffer) {
  every_allocation_fails_once([](std::vector<counted>& v) {
    auto end = weft::remove_if(v.begin(), v.end(), [](const counted& c) { return c.m_value % 3 == 0; });
    v.erase(end, v.end());
  });
}

TEST(AlgorithmMemoryTest, UniqueLeavesNoItemInItsBuffer) {
  every_allocation_fails_once([](std::vector<counted>& v) {
    for (std::size_t i = 0; i < v.size(); i += 2) v[i] = v[i + 1 < v.size() ? i + 1 : i];  // pairs of equals
    auto end = weft::unique(v.begin(), v.end());
    v.erase(end, v.end());
  });
}

// nth_element also makes all it needs before it moves an item into its
// buffer, so the range holds the same items after a failure.
TEST(AlgorithmMemoryTest, NthElementLeavesNoItemInItsBuffer) {
  std::vector<int> original;
  for (const counted& c : items()) original.push_back(c.m_value);
  std::sort(original.begin(), original.end());
  every_allocation_fails_once([&](std::vector<counted>& v) {
    try {
      weft::nth_element(v.begin(), v.begin() + 500, v.end());
    } catch (const std::bad_alloc&) {
      std::vector<int> now;
      for (const counted& c : v) now.push_back(c.m_value);
      std::sort(now.begin(), now.end());
      EXPECT_TRUE(now == original) << "the range lost items";
      throw;
    }
  });
}

TEST(AlgorithmMemoryTest, SortLeavesNoItemInItsBuffer) {
  every_allocation_fails_once([](std::vector<counted>& v) { weft::sort(v.begin(), v.end()); });
}

TEST(AlgorithmMemoryTest, StableSortLeavesNoItemInItsBuffer) {
  every_allocation_fails_once([](std::vector<counted>& v) { weft::stable_sort(v.begin(), v.end()); });
}

}  // namespace
