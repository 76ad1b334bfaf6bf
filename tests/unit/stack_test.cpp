// SPDX-License-Identifier: MIT
// Unit tests of runtime/stack.{hpp,cpp}: fiber stacks carved out of slabs.
// Stacks of one size share a slab (one mapping with guard markers, two more
// per stack with mprotect guards); every stack is usable to its top and has a
// guard below it that faults, with either kind of guard; a freed slot is
// reused, its pages are given back, and a slab left empty is unmapped (one
// is kept per size); a fork while another thread allocates leaves the child
// able to allocate; a process that locks its memory gets guarded stacks.
// The guard faults run in child processes.
#include "stack.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "child_process.hpp"
#include "process_info.hpp"
#include "sanitizers.hpp"
#include "scheduler.hpp"

namespace {

using weft::rt::allocate_stack;
using weft::rt::free_stack;
using weft::rt::stack_guards;
using weft::rt::stack_memory;

constexpr std::size_t k_header = 256;

// Resident pages of [p, p + n), by mincore (none where it is not mapped: a
// slab unmapped once empty).
std::size_t resident_pages(const char* p, std::size_t n) {
  const std::size_t page = weft::rt::page_size();
  const auto* lo = reinterpret_cast<const char*>(reinterpret_cast<std::uintptr_t>(p) / page * page);
  const std::size_t len = static_cast<std::size_t>(p + n - lo);
  std::vector<unsigned char> v((len + page - 1) / page);
  if (mincore(const_cast<char*>(lo), len, v.data()) != 0) return errno == ENOMEM ? 0 : SIZE_MAX;
  return static_cast<std::size_t>(std::count_if(v.begin(), v.end(), [](unsigned char c) { return (c & 1) != 0; }));
}

class StackTest : public testing::TestWithParam<stack_guards> {
 protected:
  stack_guards guards() const { return GetParam(); }
  bool markers() const { return GetParam() == stack_guards::automatic && weft_test::kernel_has_guard_markers(); }
};

TEST(StackProbe, AgreesWithTheKernel) {
  EXPECT_EQ(weft::rt::guard_markers_available(), weft_test::kernel_has_guard_markers());
}

// Each test uses its own stack size, so that no slab of another test (or its
// kept empty one) is reused.
TEST_P(StackTest, StacksAreDisjointAndUsableToTheirTop) {
  const std::size_t usable = 20 * 1024;
  std::vector<stack_memory> stacks;
  for (int i = 0; i < 150; ++i) stacks.push_back(allocate_stack(usable, k_header, guards()));
  std::vector<std::pair<const char*, const char*>> ranges;
  for (const stack_memory& s : stacks) {
    ASSERT_GE(s.m_size, usable);
    ASSERT_EQ(s.m_bottom - s.m_guard, static_cast<std::ptrdiff_t>(weft::rt::k_guard_size));
    std::memset(s.m_bottom, 0x5a, s.m_size + k_header);  // the stack and the header above it
    ranges.emplace_back(s.m_guard, s.top() + k_header);
  }
  std::sort(ranges.begin(), ranges.end());
  for (std::size_t i = 1; i < ranges.size(); ++i) EXPECT_LE(ranges[i - 1].second, ranges[i].first) << "overlap";
  for (stack_memory& s : stacks) free_stack(s);
  EXPECT_EQ(stacks[0].m_slab, nullptr);
}

// With guard markers a slab is one mapping; with mprotect every stack adds
// two. After freeing, at most one empty slab per size stays mapped.
TEST_P(StackTest, MappingsPerStackAndSlabsUnmapped) {
  if (weft_test::k_sanitized) GTEST_SKIP() << "the sanitizer runtimes map memory of their own meanwhile";
  const std::size_t usable = 24 * 1024;
  const int before = weft_test::mapping_count();
  std::vector<stack_memory> stacks;
  for (int i = 0; i < 300; ++i) stacks.push_back(allocate_stack(usable, k_header, guards()));
  const int during = weft_test::mapping_count();
  if (markers()) {
    EXPECT_LE(during - before, 8) << "300 stacks with guard markers: a few slabs, one mapping each";
  } else {
    EXPECT_GE(during - before, 2 * 300 - 8) << "mprotect guards split the slab (neighbours may merge)";
    EXPECT_LE(during - before, 2 * 300 + 8);
  }
  for (stack_memory& s : stacks) free_stack(s);
  const int after = weft_test::mapping_count();
  // One empty slab is kept (with mprotect, its guards still split it).
  EXPECT_LE(after - before, markers() ? 1 : 2 * 64 + 1);
}

// A freed slot is reused first (its pages are resident), before a fresh one.
TEST_P(StackTest, AFreedSlotIsReused) {
  const std::size_t usable = 28 * 1024;
  stack_memory a = allocate_stack(usable, k_header, guards());
  stack_memory b = allocate_stack(usable, k_header, guards());
  char* const bottom = a.m_bottom;
  free_stack(a);
  stack_memory c = allocate_stack(usable, k_header, guards());
  EXPECT_EQ(c.m_bottom, bottom);
  free_stack(b);
  free_stack(c);
}

// Freed stacks give their pages back: in batches while their slab is in use,
// all of them once it is empty (the kept empty slab holds no pages).
TEST_P(StackTest, FreedStacksGiveTheirPagesBack) {
  const std::size_t usable = 32 * 1024;
  std::vector<stack_memory> stacks;
  for (int i = 0; i < 64; ++i) stacks.push_back(allocate_stack(usable, k_header, guards()));
  for (stack_memory& s : stacks) std::memset(s.m_bottom, 1, s.m_size);
  std::vector<std::pair<char*, std::size_t>> spans;
  for (const stack_memory& s : stacks) spans.emplace_back(s.m_bottom, s.m_size);
  for (stack_memory& s : stacks) free_stack(s);
  std::size_t resident = 0;
  for (const auto& [p, n] : spans) resident += resident_pages(p, n);
  EXPECT_EQ(resident, 0u) << "pages of freed stacks stayed resident";
}

// The address space of the process, in bytes (VmSize), or -1.
long address_space() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return -1;
  char line[256];
  long kib = -1;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, "VmSize:", 7) == 0) kib = std::atol(line + 7);
  }
  std::fclose(f);
  return kib < 0 ? -1 : kib * 1024;
}

// Stacks of ever new sizes, one at a time (runtimes made one after the other
// with new stack sizes): the empty slabs kept for the next use are bounded
// in all, not one per size. Before, each size kept its slab (here 64 stacks'
// worth of address space each), and a process under RLIMIT_AS ran out.
TEST(StackSlabs, EmptySlabsKeptAreBoundedAcrossStackSizes) {
  if (weft_test::k_sanitized) GTEST_SKIP() << "the sanitizer runtimes map memory of their own meanwhile";
  constexpr int sizes = 40;
  const long before = address_space();
  ASSERT_GT(before, 0);
  std::size_t largest_slab = 0;
  for (int i = 0; i < sizes; ++i) {
    const std::size_t usable = 100 * 1024 + static_cast<std::size_t>(i) * 4096;  // sizes no other test uses
    stack_memory s = allocate_stack(usable, k_header, stack_guards::automatic);
    largest_slab = std::max(largest_slab, 64 * (s.m_size + weft::rt::k_guard_size));
    free_stack(s);
  }
  const long grown = address_space() - before;
  EXPECT_LT(grown, static_cast<long>(8 * largest_slab))
      << "the address space grew by " << grown << " bytes for " << sizes << " stack sizes used one at a time";
}

// A write into the guard below a stack kills the process with SIGSEGV.
TEST_P(StackTest, TheGuardFaults) {
  const stack_guards g = guards();
  for (const std::size_t offset : {std::size_t{1}, weft::rt::k_guard_size / 2, weft::rt::k_guard_size}) {
    const auto r = weft_test::run_in_child([g, offset] {
      stack_memory s = allocate_stack(36 * 1024, k_header, g);
      std::memset(s.m_bottom, 0, s.m_size);  // the stack itself is fine
      *(static_cast<volatile char*>(s.m_bottom) - offset) = 1;
      return 0;
    });
    // Under a sanitizer the fault is reported by its handler, which exits.
    const bool sanitizer_report = weft_test::k_sanitized && !r.lines_with("Sanitizer: SEGV").empty();
    EXPECT_TRUE(r.killed_by(SIGSEGV) || sanitizer_report) << "offset " << offset << ": " << r.describe();
  }
}

INSTANTIATE_TEST_SUITE_P(Guards, StackTest, testing::Values(stack_guards::automatic, stack_guards::mprotect),
                         [](const testing::TestParamInfo<stack_guards>& info) {
                           return std::string(info.param == stack_guards::automatic ? "Automatic" : "Mprotect");
                         });

// fork() while another thread allocates and frees stacks: the child gets the
// slabs consistent and their lock free, and can allocate (the atfork handlers
// of the runtime hold the lock across the fork).
TEST(StackFork, ChildAllocatesWhileTheParentWasAllocating) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer: a fork of a multi-threaded process";
  weft::rt::register_fork_handlers();
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      stack_memory s = allocate_stack(40 * 1024, k_header, stack_guards::automatic);
      free_stack(s);
    }
  });
  int bad = 0;
  for (int round = 0; round < 30; ++round) {
    const auto r = weft_test::run_in_child(
        [] {
          stack_memory s = allocate_stack(40 * 1024, k_header, stack_guards::automatic);
          std::memset(s.m_bottom, 1, s.m_size);
          free_stack(s);
          return 0;
        },
        std::chrono::seconds(5));
    if (!r.exited_with(0)) {
      ++bad;
      ADD_FAILURE() << "round " << round << ": " << r.describe();
    }
    if (bad > 2) break;
  }
  stop.store(true);
  churn.join();
}

// A process that locks its memory (mlockall, as real-time programs do): the
// kernel refuses guard markers on locked mappings with EINVAL, the error of a
// kernel without them. Stacks of a slab mapped before the lock (MCL_CURRENT
// locks it) and of slabs mapped after (MCL_FUTURE) must still be made, and
// guarded: the first allocation after the lock threw "out of memory
// (madvise): Invalid argument" before, and a probe made under the lock
// found no markers. Each case in a child process; `fault` writes below the
// first or the last stack, -1 below none.
TEST(StackLocked, AProcessThatLocksItsMemoryGetsGuardedStacks) {
  if (weft_test::k_sanitized) GTEST_SKIP() << "mlockall would lock the sanitizer's shadow memory";
  const bool kernel_markers = weft_test::kernel_has_guard_markers();
  for (const int fault : {-1, 0, 1}) {
    const auto r = weft_test::run_in_child([kernel_markers, fault] {
      rlimit limit{};
      if (geteuid() != 0 && (getrlimit(RLIMIT_MEMLOCK, &limit) != 0 || limit.rlim_cur != RLIM_INFINITY)) return 78;
      const std::size_t usable = 44 * 1024;
      stack_memory first = allocate_stack(usable, k_header, stack_guards::automatic);  // maps a slab
      if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0) return 77;
      if (weft::rt::probe_guard_markers() != (kernel_markers ? 1 : 0)) return 10;
      std::vector<stack_memory> stacks;
      for (int i = 0; i < 100; ++i) stacks.push_back(allocate_stack(usable, k_header, stack_guards::automatic));
      for (stack_memory& s : stacks) std::memset(s.m_bottom, 1, s.m_size);
      if (fault >= 0) *(static_cast<volatile char*>((fault == 0 ? stacks.front() : stacks.back()).m_bottom) - 1) = 1;
      for (stack_memory& s : stacks) free_stack(s);
      free_stack(first);
      return 0;
    });
    if (r.exited_with(77) || r.exited_with(78)) {
      GTEST_SKIP() << (r.exited_with(77) ? "mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) failed"
                                         : "not root and RLIMIT_MEMLOCK is limited: mlockall cannot lock the slabs");
    }
    if (fault < 0) {
      EXPECT_TRUE(r.exited_with(0)) << r.describe();
    } else {
      EXPECT_TRUE(r.killed_by(SIGSEGV)) << "a write below the " << (fault == 0 ? "first" : "last")
                                        << " stack: " << r.describe();
    }
  }
}

}  // namespace
