// SPDX-License-Identifier: MIT
// weft: memory for spawns (task_group closures, coroutine frames), recycled
// per worker and taken inline by the public templates.
#pragma once

#include <cstddef>

#include "weft/detail/export.hpp"
#include "weft/detail/worker_view.hpp"

namespace weft::detail {

// The slow paths, in libweft: a thread that runs no worker, an empty or full
// class, an oversized block.
WEFT_API void* allocate_job_slow(std::size_t size);
WEFT_API void free_job_slow(void* p, std::size_t size) noexcept;

// Memory for a spawned task of `size` bytes (aligned for any scalar type):
// the calling worker's newest freed block of its class, else operator new.
// Throws std::bad_alloc.
inline void* allocate_job(std::size_t size) {
  const std::size_t c = job_lists::class_of(size);
  if (c < job_lists::k_classes) {
    if (worker_view* view = this_thread_view()) {
      if (void* p = view->m_jobs.take(c)) return p;
    }
  }
  return allocate_job_slow(size);
}

// Returns memory from allocate_job(size). Any thread.
inline void free_job(void* p, std::size_t size) noexcept {
  const std::size_t c = job_lists::class_of(size);
  if (c < job_lists::k_classes) {
    if (worker_view* view = this_thread_view(); view != nullptr && view->m_jobs.keep(p, c)) return;
  }
  free_job_slow(p, size);
}

}  // namespace weft::detail
