// SPDX-License-Identifier: MIT
// weft: memory for spawns (task_group closures, coroutine frames), recycled
// per worker and taken inline by the public templates; the inline stack check
// of coroutine transfers.
#pragma once

#include <cstddef>
#include <cstdint>

#include "weft/detail/export.hpp"

namespace weft::detail {

// A worker's recycled blocks: free lists in size classes of 64 << c bytes.
// Touched only by the thread that runs the worker (its own thread, or a thread
// from outside that borrowed its slot), so plain loads and stores. Blocks
// always come from operator new of their class size, so any thread may return
// one with operator delete; a worker keeps what it frees, up to k_max_cached
// blocks per class, whoever allocated it.
struct job_lists {
  static constexpr std::size_t k_classes = 5;  // 64, 128, 256, 512, 1024 bytes
  static constexpr std::uint32_t k_max_cached = 1024;

  struct node {
    node* m_next;
  };
  node* m_free[k_classes] = {};
  std::uint32_t m_count[k_classes] = {};

  // Size class of a request, or k_classes when it is too large to cache.
  // Folds to a constant for a constant size (every spawn's).
  static constexpr std::size_t class_of(std::size_t size) noexcept {
    if (size <= 64) return 0;
    // ceil(log2(size)) - 6, capped at k_classes (too large to cache).
    const auto c = static_cast<std::size_t>(64 - __builtin_clzll(size - 1)) - 6;
    return c < k_classes ? c : k_classes;
  }
  static constexpr std::size_t class_size(std::size_t c) noexcept { return std::size_t{64} << c; }

  // A cached block of class c < k_classes, or null.
  void* take(std::size_t c) noexcept {
    node* n = m_free[c];
    if (n == nullptr) return nullptr;
    m_free[c] = n->m_next;
    --m_count[c];
    return n;
  }
  // Keeps p, a block of class c < k_classes; false when the class is full.
  bool keep(void* p, std::size_t c) noexcept {
    if (m_count[c] >= k_max_cached) return false;
    auto* n = static_cast<node*>(p);
    n->m_next = m_free[c];
    m_free[c] = n;
    ++m_count[c];
    return true;
  }
};

// What the public templates see of a worker: its recycled spawn memory, and
// the stack limit of the fiber it runs (an address: the stack counts as
// nearly full below it; 0 on a thread's own stack). Written only by the
// thread that runs the worker (the limit at each switch of its current fiber).
struct worker_view {
  job_lists m_jobs;
  std::uintptr_t m_stack_limit = 0;
};

// The view of the worker the calling thread runs; null on any other thread.
// Written by the runtime where it sets the thread's worker (a worker thread's
// start and end, a slot lent to a thread from outside). initial-exec: one load
// off the thread pointer, also from a shared library (the variable is small).
WEFT_API extern constinit thread_local worker_view* t_worker_view __attribute__((tls_model("initial-exec")));

// t_worker_view read out of line (targets without the inline read below).
WEFT_API worker_view* worker_view_of_this_thread() noexcept;

// Reads t_worker_view afresh. A fiber may resume on another thread after any
// call, and GCC treats the thread pointer as constant within a function, so a
// plain read could reuse the address computed before the call; the asm is
// re-executed where it stands (volatile, and ordered with calls and memory by
// its clobber).
inline worker_view* this_thread_view() noexcept {
#if defined(__x86_64__) && defined(__ELF__)
  worker_view* view;
  asm volatile("movq _ZN4weft6detail13t_worker_viewE@gottpoff(%%rip), %0\n\tmovq %%fs:(%0), %0"
               : "=r"(view)
               :
               : "memory");
  return view;
#else
  return worker_view_of_this_thread();
#endif
}

// True when the calling fiber's stack is nearly full (false off a worker and
// on a thread's own stack): the inline twin of stack_low().
inline bool stack_low_here() noexcept {
  const worker_view* view = this_thread_view();
  if (view == nullptr) return false;
#if defined(__x86_64__)
  std::uintptr_t sp;
  asm("movq %%rsp, %0" : "=r"(sp));
#else
  const auto sp = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
#endif
  return sp < view->m_stack_limit;
}

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
