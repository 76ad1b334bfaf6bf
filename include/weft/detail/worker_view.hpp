// SPDX-License-Identifier: MIT
// weft: what the public templates see of the worker that runs the calling
// thread: its recycled spawn memory, the running fiber's stack limits and its
// private tasks, reached through one thread-local pointer
// (docs/protocols/job-memory.md, docs/protocols/join.md). Its inline asm is
// written in both of GCC's and clang's x86 dialects ({AT&T|Intel}), so that
// users may compile with -masm=intel.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "weft/detail/deque_ends.hpp"
#include "weft/detail/export.hpp"
#include "weft/detail/job.hpp"

// 1 in a ThreadSanitizer build (GCC's macro, or clang's feature), else 0;
// the runtime's WEFT_TSAN (runtime/platform.hpp) is this.
#if defined(__SANITIZE_THREAD__)
#define WEFT_DETAIL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT_DETAIL_TSAN 1
#endif
#endif
#ifndef WEFT_DETAIL_TSAN
#define WEFT_DETAIL_TSAN 0
#endif

namespace weft::detail {

struct runtime_state;  // a runtime's scheduler, opaque to the public headers

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

// The newest tasks a worker pushed, that only it can see (the private part
// of its queue, runtime/job_queue.hpp; docs/protocols/deque.md, "The private
// ring in front of it"): a ring of k_capacity jobs, [m_lo, m_hi) live, m_hi - 1 the newest.
// The public templates push to it and pop from it inline when that needs no
// publication; everything else goes through the library's push_slow() and
// pop_slow(), which use the same ring. Touched only by the thread that runs
// the worker (plain loads and stores), except the two counters, which any
// thread may read.
struct job_ring {
  static constexpr std::uint32_t k_capacity = 256;  // divides 2^32: the indices wrap

  std::uint32_t m_lo = 0;  // oldest private task
  std::uint32_t m_hi = 0;  // one past the newest
  // The ends of the worker's public deque, read only to see whether it is
  // empty (then a push publishes, in the library); for a worker nobody steals
  // from, constants that never read empty. Set by the queue's constructor.
  const deque_ends* m_public = nullptr;
  // Pushes and pop-backs done inline (runtime::stats adds them to the
  // worker's spawns and tasks run). Written by the owner only (count()),
  // read relaxed by anyone.
  std::atomic<std::uint64_t> m_pushed{0};
  std::atomic<std::uint64_t> m_popped{0};
  job* m_slots[k_capacity];
  // Where another worker may be looking for work, read inline before the
  // library is asked to offer spawns to it (offer_spawns_if_idle): the
  // runtime's count of searching workers, its first word of parked bits
  // (m_parked_mask: the bits of its workers there, not those of threads
  // from outside that park while their calls run), and this worker's demand
  // flag. Null in a runtime of one worker, whose queue nobody steals from.
  // Set by the worker's constructor. After the slots: off the lines that
  // every push and pop-back touches.
  const std::atomic<int>* m_searching = nullptr;
  const std::atomic<std::uint64_t>* m_parked = nullptr;
  std::uint64_t m_parked_mask = 0;
  const std::atomic<bool>* m_demand = nullptr;

  bool full() const noexcept { return m_hi - m_lo == k_capacity; }
  bool empty() const noexcept { return m_hi == m_lo; }
  // The public deque looks empty: a hint, read as the library's push reads it
  // (a thief may empty it just after; the next push that sees it empty
  // publishes, and a thief that found it empty raises the demand flag).
  bool public_empty() const noexcept {
    return m_public->m_bottom.load(std::memory_order_relaxed) <= m_public->m_top.load(std::memory_order_relaxed);
  }
  job* newest() const noexcept { return m_slots[(m_hi - 1) % k_capacity]; }
  // Another worker may be looking for work (a hint: the library counts
  // them). False in a runtime of one worker. relaxed: a hint.
  bool others_may_be_idle() const noexcept {
    return m_searching != nullptr && (m_searching->load(std::memory_order_relaxed) != 0 ||
                                      (m_parked->load(std::memory_order_relaxed) & m_parked_mask) != 0 ||
                                      m_demand->load(std::memory_order_relaxed));
  }
  void put(job* t) noexcept { m_slots[m_hi++ % k_capacity] = t; }
  // The inline paths' push and pop-back of the newest task, counted.
  void push_counted(job* t) noexcept {
    put(t);
    count(m_pushed);
  }
  void drop_newest_counted() noexcept {
    --m_hi;
    count(m_popped);
  }

 private:
  // The owner is the counter's only writer, so a relaxed load and store are
  // enough; on x86-64 one add to memory does both (an aligned 8-byte store
  // is atomic for the readers), where the compiler emits a load, an add and
  // a store for the atomic pair. Thread sanitizer builds keep the pair, so
  // that it sees the write.
  static void count(std::atomic<std::uint64_t>& c) noexcept {
#if defined(__x86_64__) && !WEFT_DETAIL_TSAN
    // (Intel: GCC prints the std::atomic operand without a size, hence
    // QWORD PTR here; a plain std::uint64_t would get it twice.)
    asm("add{q $1, %0| QWORD PTR %0, 1}" : "+m"(c));
#else
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
#endif
  }
};

// The calling code's stack pointer (near enough: the frame address elsewhere).
inline std::uintptr_t stack_pointer_here() noexcept {
#if defined(__x86_64__)
  std::uintptr_t sp;
  asm("mov{q %%rsp, %0| %0, rsp}" : "=r"(sp));
  return sp;
#else
  return reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
#endif
}

// What the public templates see of a worker: its recycled spawn memory, the
// fiber it runs and that fiber's stack limits (addresses: the stack counts as
// nearly full below them; 0 on a thread's own stack), its runtime, and its
// private tasks.
// Written only by the thread that runs the worker (the limits at each switch
// of its current fiber, and where a measured strand begins or ends).
struct worker_view {
  job_lists m_jobs;
  std::uintptr_t m_stack_limit = 0;  // the running fiber's m_real_limit
  // The limit a spawn checks: m_stack_limit, or one above every stack while
  // the fiber runs a measured strand (so that spawns take their measured path).
  std::uintptr_t m_spawn_limit = 0;
  // The running fiber's task activation (rt::fiber::m_activation; a
  // task_group's owner, when it made the group).
  const void* m_fiber = nullptr;
  // The worker's runtime and its sequence number (never change).
  runtime_state* m_runtime = nullptr;
  std::uint64_t m_runtime_id = 0;
  job_ring m_ring;

  // t can go onto the private ring without a publication (push_slow() does
  // the rest).
  bool private_push_ok() const noexcept { return !m_ring.full() && !m_ring.public_empty(); }
  // The same for a spawn whose spawner stands here, which takes the
  // library's path also when the stack is nearly full or the running fiber
  // runs a measured strand.
  bool spawn_push_ok() const noexcept { return stack_pointer_here() >= m_spawn_limit && private_push_ok(); }
  // The running fiber runs a measured strand (<weft/workspan.hpp>): only
  // then do the two limits differ.
  bool measured() const noexcept { return m_spawn_limit != m_stack_limit; }
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
  asm volatile(
      "mov{q _ZN4weft6detail13t_worker_viewE@gottpoff(%%rip), %0| %0, QWORD PTR "
      "_ZN4weft6detail13t_worker_viewE@gottpoff[rip]}\n\t"
      "mov{q %%fs:(%0), %0| %0, QWORD PTR fs:[%0]}"
      : "=r"(view)
      :
      : "memory");
  return view;
#else
  return worker_view_of_this_thread();
#endif
}

// The runtime of the worker the calling thread runs; null on any other
// thread: the inline twin of current_runtime().
inline runtime_state* this_thread_runtime() noexcept {
  const worker_view* view = this_thread_view();
  return view != nullptr ? view->m_runtime : nullptr;
}

// Off any worker: true when the calling code runs in the nearly full part
// of its thread's own stack (its last quarter, at most 64 KiB, as on a
// fiber); the bounds are read once per thread (the first read, on the main
// thread, parses /proc/self/maps: about 0.1 ms). False on any other stack
// (another library's fiber, an alternate signal stack) and where the bounds
// cannot be read.
WEFT_API bool thread_stack_low() noexcept;

// True when the calling code's stack is nearly full: the stack the worker
// runs (a fiber's, or a borrowing thread's own stack, each with its limit in
// the view), or off any worker the thread's own stack (thread_stack_low, out
// of line).
inline bool stack_low_here() noexcept {
  const worker_view* view = this_thread_view();
  if (view == nullptr) [[unlikely]] {
    return thread_stack_low();
  }
  return stack_pointer_here() < view->m_stack_limit;
}

}  // namespace weft::detail
