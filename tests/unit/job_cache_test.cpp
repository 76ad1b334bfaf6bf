// SPDX-License-Identifier: MIT
// Unit tests of runtime/job_cache.hpp: size classes, recycling per class
// (newest freed block first), the bound on cached blocks, and blocks that
// move between caches; and of the inline allocate_job / free_job
// (<weft/detail/job_memory.hpp>, <weft/detail/worker_view.hpp>): the thread's view of its worker's lists
// follows the worker it runs (its own thread, a borrowed slot, a fiber that
// moved to another thread), and off a worker the heap is used. Leaks show up
// under ASan/LSan.
#include "job_cache.hpp"

#include <gtest/gtest.h>

#include <weft/weft.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "watchdog.hpp"
#include "worker.hpp"

namespace {

using weft::rt::job_cache;

TEST(TaskCache, SizeClasses) {
  EXPECT_EQ(job_cache::class_of(0), 0u);
  EXPECT_EQ(job_cache::class_of(1), 0u);
  EXPECT_EQ(job_cache::class_of(64), 0u);
  EXPECT_EQ(job_cache::class_of(65), 1u);
  EXPECT_EQ(job_cache::class_of(128), 1u);
  EXPECT_EQ(job_cache::class_of(129), 2u);
  EXPECT_EQ(job_cache::class_of(256), 2u);
  EXPECT_EQ(job_cache::class_of(257), 3u);
  EXPECT_EQ(job_cache::class_of(512), 3u);
  EXPECT_EQ(job_cache::class_of(513), 4u);
  EXPECT_EQ(job_cache::class_of(1024), 4u);
  EXPECT_EQ(job_cache::class_of(1025), job_cache::k_classes);
  EXPECT_EQ(job_cache::class_of(SIZE_MAX), job_cache::k_classes);
  for (std::size_t c = 0; c < job_cache::k_classes; ++c) {
    EXPECT_EQ(job_cache::class_size(c), std::size_t{64} << c);
    EXPECT_EQ(job_cache::class_of(job_cache::class_size(c)), c);
    EXPECT_EQ(job_cache::class_of(job_cache::class_size(c) + 1), c + 1);
  }
}

// Every block holds its whole class size, suitably aligned.
TEST(TaskCache, BlocksAreUsableToTheirClassSize) {
  job_cache cache;
  for (const std::size_t size : {1u, 40u, 64u, 65u, 200u, 512u, 513u, 4000u}) {
    void* p = cache.allocate(size);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % alignof(std::max_align_t), 0u);
    const std::size_t c = job_cache::class_of(size);
    const std::size_t usable = c == job_cache::k_classes ? size : job_cache::class_size(c);
    std::memset(p, 0xab, usable);
    cache.release(p, size);
  }
}

TEST(TaskCache, ReleasedBlockIsReusedInItsClass) {
  job_cache cache;
  void* a = cache.allocate(100);  // class 1
  cache.release(a, 100);
  EXPECT_EQ(cache.allocate(128), a);  // same class: the cached block
  cache.release(a, 128);
  void* b = cache.allocate(10);  // class 0: not the class-1 block
  EXPECT_NE(b, a);
  EXPECT_EQ(cache.allocate(65), a);
  cache.release(a, 65);
  cache.release(b, 10);
}

TEST(TaskCache, NewestReleasedFirst) {
  job_cache cache;
  std::vector<void*> blocks;
  for (int i = 0; i < 10; ++i) blocks.push_back(cache.allocate(300));
  for (void* p : blocks) cache.release(p, 300);
  for (int i = 10; i-- > 0;) EXPECT_EQ(cache.allocate(300), blocks[static_cast<std::size_t>(i)]);
  for (void* p : blocks) cache.release(p, 300);
}

// Past k_max_cached blocks of a class, released blocks go back to the heap:
// exactly the first k_max_cached released come back from the cache.
TEST(TaskCache, CachedBlocksAreBounded) {
  constexpr std::size_t n = job_cache::k_max_cached + 50;
  job_cache cache;
  std::vector<void*> blocks;
  for (std::size_t i = 0; i < n; ++i) blocks.push_back(cache.allocate(64));
  for (void* p : blocks) cache.release(p, 64);
  for (std::size_t i = job_cache::k_max_cached; i-- > 0;) {
    ASSERT_EQ(cache.allocate(64), blocks[i]) << "i=" << i;
  }
  for (std::size_t i = 0; i < job_cache::k_max_cached; ++i) cache.release(blocks[i], 64);
}

TEST(TaskCache, BlocksMoveBetweenCaches) {
  job_cache a;
  void* p = nullptr;
  {
    job_cache b;
    p = b.allocate(256);
    a.release(p, 256);  // b never sees it again
    void* q = b.allocate(256);
    EXPECT_NE(q, p);
    b.release(q, 256);
  }  // b frees its cached block
  EXPECT_EQ(a.allocate(256), p);
  a.release(p, 256);
}  // a frees p

TEST(TaskCache, OversizedBlocksAreNotCached) {
  job_cache cache;
  void* p = cache.allocate(10000);
  std::memset(p, 1, 10000);
  cache.release(p, 10000);
  void* q = cache.allocate(64);  // a cached oversized block would not do for class 0
  std::memset(q, 1, 64);
  cache.release(q, 64);
}

// The lists allocate_job() takes from on this thread: its worker's, or none.
weft::detail::worker_view* expected_view() {
  weft::rt::worker* w = weft::rt::current_worker();
  return w != nullptr ? w->m_job_cache.view() : nullptr;
}

// The view's stack limit is the running fiber's (worker::set_current).
bool limit_is_current() {
  weft::rt::worker* w = weft::rt::current_worker();
  return w != nullptr && w->m_job_cache.view()->m_stack_limit == w->m_current->m_real_limit;
}

TEST(JobMemory, OffAWorkerTheHeapIsUsed) {
  EXPECT_EQ(weft::detail::this_thread_view(), nullptr);
  for (const std::size_t size : {8u, 64u, 100u, 1024u, 1025u, 100000u}) {
    void* p = weft::detail::allocate_job(size);
    ASSERT_NE(p, nullptr);
    std::memset(p, 0x5a, size);
    weft::detail::free_job(p, size);  // operator delete: ASan reports a mismatch or a leak
  }
}

TEST(JobMemory, AWorkerRecyclesInline) {
  weft::runtime rt{weft::config{.workers = 2}};
  rt.run([] {
    ASSERT_NE(weft::detail::this_thread_view(), nullptr);
    EXPECT_EQ(weft::detail::this_thread_view(), expected_view());
    void* a = weft::detail::allocate_job(100);
    weft::detail::free_job(a, 100);
    EXPECT_EQ(weft::detail::allocate_job(120), a);  // same class, same worker, no switch in between
    weft::detail::free_job(a, 120);
    void* big = weft::detail::allocate_job(5000);  // not cached
    std::memset(big, 1, 5000);
    weft::detail::free_job(big, 5000);
  });
  EXPECT_EQ(weft::detail::this_thread_view(), nullptr);
}

// A fiber that resumes on another thread reads that thread's lists: the read
// is never reused across the switch. Items contend for a weft::mutex, so
// fibers suspend and are resumed by whichever worker unlocks; rounds repeat
// until some fiber resumed on the other thread. Blocks allocated on one worker
// and freed on another move between them.
TEST(JobMemory, TheViewFollowsAFiberToAnotherThread) {
  weft::runtime rt{weft::config{.workers = 2}};
  std::atomic<int> wrong{0};
  std::atomic<int> moved{0};
  weft::mutex m;
  volatile long shared = 0;  // volatile: the loop under the lock is not folded away
  for (int round = 0; round < 50 && moved.load() == 0; ++round) {
    rt.run([&] {
      weft::parallelize(2000, [&](std::size_t) {
        weft::detail::worker_view* before = weft::detail::this_thread_view();
        if (before != expected_view() || !limit_is_current()) wrong.fetch_add(1, std::memory_order_relaxed);
        void* p = weft::detail::allocate_job(200);
        {
          std::lock_guard<weft::mutex> hold(m);
          for (int k = 0; k < 2000; ++k) shared = shared + k;  // long enough that both workers queue here
        }
        weft::detail::worker_view* after = weft::detail::this_thread_view();
        if (after != expected_view() || !limit_is_current()) wrong.fetch_add(1, std::memory_order_relaxed);
        if (after != before) moved.fetch_add(1, std::memory_order_relaxed);
        weft::detail::free_job(p, 200);
      });
    });
  }
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(moved.load(), 0) << "no fiber resumed on another thread in 50 rounds";
}

// A thread from outside that runs its call on a borrowed slot uses that
// slot's lists for the call, and none before or after.
TEST(JobMemory, ABorrowedSlotLendsItsLists) {
  weft::runtime rt{weft::config{.workers = 1, .caller = weft::caller_policy::take_part}};
  const std::thread::id self = std::this_thread::get_id();
  int borrowed = 0;
  for (int attempt = 0; attempt < 200 && borrowed == 0; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1 + attempt / 20));  // let the worker park
    rt.run([&] {
      EXPECT_EQ(weft::detail::this_thread_view(), expected_view());
      EXPECT_NE(weft::detail::this_thread_view(), nullptr);
      void* p = weft::detail::allocate_job(64);
      weft::detail::free_job(p, 64);
      if (std::this_thread::get_id() == self) ++borrowed;
    });
    EXPECT_EQ(weft::detail::this_thread_view(), nullptr);
  }
  EXPECT_EQ(borrowed, 1) << "no call ran on a borrowed slot in 200 attempts";
}

}  // namespace
