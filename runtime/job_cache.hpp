// SPDX-License-Identifier: MIT
// weft::rt: recycled memory for spawned closures (task_group).
// Owns: one worker's recycled blocks. Touched by: that worker's owner only
// (allocate_job, free_job in join.cpp).
#pragma once

#include <cstddef>
#include <new>

namespace weft::rt {

// Per-worker free lists of task memory in a few size classes (owner only).
// Blocks always come from operator new of their class size, so any thread may
// release one with operator delete; a worker keeps what it frees, up to a
// bound per class, whoever allocated it.
class job_cache {
 public:
  static constexpr std::size_t k_classes = 5;  // 64, 128, 256, 512, 1024 bytes
  static constexpr std::size_t k_max_cached = 1024;

  job_cache() = default;
  job_cache(const job_cache&) = delete;
  job_cache& operator=(const job_cache&) = delete;
  ~job_cache() {
    for (std::size_t c = 0; c < k_classes; ++c) {
      while (node* n = m_free[c]) {
        m_free[c] = n->m_next;
        ::operator delete(n);
      }
    }
  }

  // Size class of a request, or k_classes when it is too large to cache.
  static std::size_t class_of(std::size_t size) noexcept {
    if (size <= 64) return 0;
    // ceil(log2(size)) - 6, capped at k_classes (too large to cache).
    const std::size_t c = static_cast<std::size_t>(64 - __builtin_clzll(size - 1)) - 6;
    return c < k_classes ? c : k_classes;
  }
  static std::size_t class_size(std::size_t c) noexcept { return std::size_t{64} << c; }

  void* allocate(std::size_t size) {
    const std::size_t c = class_of(size);
    if (c == k_classes) return ::operator new(size);
    if (node* n = m_free[c]) {
      m_free[c] = n->m_next;
      --m_count[c];
      return n;
    }
    return ::operator new(class_size(c));
  }

  void release(void* p, std::size_t size) noexcept {
    const std::size_t c = class_of(size);
    if (c == k_classes || m_count[c] >= k_max_cached) {
      ::operator delete(p);
      return;
    }
    auto* n = static_cast<node*>(p);
    n->m_next = m_free[c];
    m_free[c] = n;
    ++m_count[c];
  }

 private:
  struct node {
    node* m_next;
  };
  node* m_free[k_classes] = {};
  std::size_t m_count[k_classes] = {};
};

}  // namespace weft::rt
