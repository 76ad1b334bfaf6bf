// SPDX-License-Identifier: MIT
// Unit tests of runtime/job_cache.hpp: size classes, recycling per class
// (newest freed block first), the bound on cached blocks, and blocks that
// move between caches. Leaks show up under ASan/LSan.
#include "job_cache.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "watchdog.hpp"

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

}  // namespace
