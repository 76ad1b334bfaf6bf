// SPDX-License-Identifier: MIT
// weft::rt: recycled memory for spawned closures and coroutine frames.
// Owns: one worker's recycled blocks, and the view of the worker the public
// templates read (the blocks, the current fiber and its stack limits, the
// private ring of the worker's queue). Touched by: the thread that runs the
// worker only: the public templates' allocate_job / free_job /
// stack_low_here / push / pop / group_* through detail::t_worker_view
// (<weft/detail/worker_view.hpp>), their slow paths in join.cpp and
// task_group.cpp, the worker's queue (its ring), and the worker where its
// current fiber changes (worker::set_current); the ring's counters are read
// by runtime::stats().
#pragma once

#include <cstddef>
#include <new>

#include "weft/detail/worker_view.hpp"

namespace weft::rt {

// A worker's free lists (detail::job_lists: size classes of 64 to 1024
// bytes, at most k_max_cached blocks each), and the blocks they hold freed
// with the worker; kept in the worker's detail::worker_view.
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
      while (void* p = m_view.m_jobs.take(c)) ::operator delete(p);
    }
  }

  static constexpr std::size_t class_of(std::size_t size) noexcept { return lists::class_of(size); }
  static constexpr std::size_t class_size(std::size_t c) noexcept { return lists::class_size(c); }

  void* allocate(std::size_t size) {
    const std::size_t c = class_of(size);
    if (c == k_classes) return ::operator new(size);
    if (void* p = m_view.m_jobs.take(c)) return p;
    return ::operator new(class_size(c));
  }

  void release(void* p, std::size_t size) noexcept {
    const std::size_t c = class_of(size);
    if (c == k_classes || !m_view.m_jobs.keep(p, c)) ::operator delete(p);
  }

  // What t_worker_view points to while a thread runs this cache's worker.
  detail::worker_view* view() noexcept { return &m_view; }
  const detail::worker_view* view() const noexcept { return &m_view; }

 private:
  detail::worker_view m_view;
};

}  // namespace weft::rt
