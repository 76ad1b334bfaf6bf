// SPDX-License-Identifier: MIT
// weft::rt: recycled memory for spawned closures and coroutine frames.
// Owns: one worker's recycled blocks. Touched by: the thread that runs the
// worker only: the public templates' allocate_job / free_job through
// detail::t_job_lists (<weft/detail/job_memory.hpp>), and their slow paths in
// join.cpp.
#pragma once

#include <cstddef>
#include <new>

#include "weft/detail/job_memory.hpp"

namespace weft::rt {

// A worker's free lists (detail::job_lists: size classes of 64 to 1024
// bytes, at most k_max_cached blocks each), and the blocks they hold freed
// with the worker.
class job_cache {
 public:
  using lists = detail::job_lists;
  static constexpr std::size_t k_classes = lists::k_classes;
  static constexpr std::size_t k_max_cached = lists::k_max_cached;

  job_cache() = default;
  job_cache(const job_cache&) = delete;
  job_cache& operator=(const job_cache&) = delete;
  ~job_cache() {
    for (std::size_t c = 0; c < k_classes; ++c) {
      while (void* p = m_lists.take(c)) ::operator delete(p);
    }
  }

  static constexpr std::size_t class_of(std::size_t size) noexcept { return lists::class_of(size); }
  static constexpr std::size_t class_size(std::size_t c) noexcept { return lists::class_size(c); }

  void* allocate(std::size_t size) {
    const std::size_t c = class_of(size);
    if (c == k_classes) return ::operator new(size);
    if (void* p = m_lists.take(c)) return p;
    return ::operator new(class_size(c));
  }

  void release(void* p, std::size_t size) noexcept {
    const std::size_t c = class_of(size);
    if (c == k_classes || !m_lists.keep(p, c)) ::operator delete(p);
  }

  // What t_job_lists points to while a thread runs this cache's worker.
  lists* free_lists() noexcept { return &m_lists; }

 private:
  lists m_lists;
};

}  // namespace weft::rt
