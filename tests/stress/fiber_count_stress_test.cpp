// SPDX-License-Identifier: MIT
// Stress test of how many fibers can be suspended at once. Fiber stacks are
// carved out of slabs (one memory mapping holding many stacks), each with a
// guard region below it. Where the kernel has MADV_GUARD_INSTALL (Linux 6.13
// and later) a guard costs no mapping of its own, so 100 000 tasks suspended
// at one latch, with 16 KiB stacks, fit under the default vm.max_map_count
// (65 530). With mprotect guards (older kernels, or WEFT_STACK_GUARDS=mprotect)
// every stack costs two mappings; past the limit a wait that cannot get a
// fiber throws std::system_error naming vm.max_map_count, and the process and
// the runtime stay usable. (Before slabs, each stack was a mapping of its own
// with an mprotect'ed guard, and about 32 000 suspended fibers hung the
// process: one worker blocked its thread in the latch, the other spun.)
//
// Each case checks that every task ran exactly once (at most once where a
// failure made its group skip the rest); the watchdog turns a hang into a
// failure. The figures (time to suspend, mappings per fiber) go to the test
// log.
#include <gtest/gtest.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>

#include <weft/coroutine.hpp>
#include <weft/weft.hpp>

#include "child_process.hpp"
#include "process_info.hpp"
#include "sanitizers.hpp"
#include "scoped_env.hpp"
#include "stress.hpp"

namespace {

namespace st = weft_test::stress;

constexpr std::size_t k_stack = 16 * 1024;  // the smallest accepted stack

// vm.max_map_count, or -1 when it cannot be read.
long max_map_count() {
  std::ifstream in("/proc/sys/vm/max_map_count");
  long n = -1;
  in >> n;
  return in ? n : -1;
}

// A loop in rt: 0 + 1 + ... + 999.
int sum_below_1000(weft::runtime& rt) {
  const auto id = [](int i) { return i; };
  return rt.run([&] { return weft::parallel_reduce(0, 1000, 0, id, std::plus<>()); });
}

double seconds_since(st::clock_type::time_point t) {
  return std::chrono::duration<double>(st::clock_type::now() - t).count();
}

// How the tasks of a burst are released.
enum class release {
  // Every task arrives at a latch of 1 and waits; an outside thread, once all
  // have arrived, counts the mappings and releases them.
  from_outside,
  // A latch of n, and every task calls arrive_and_wait(): the last to arrive
  // releases the others.
  by_the_last_arrival,
};

// A burst: n tasks of one task_group, spawned by a root task, each waiting at
// one latch until released. Records what each task saw.
struct burst {
  explicit burst(int n) : m_n(n), m_runs(std::make_unique<std::atomic<std::uint8_t>[]>(static_cast<std::size_t>(n))) {}

  int m_n;
  std::unique_ptr<std::atomic<std::uint8_t>[]> m_runs;  // how often task i ran
  std::atomic<int> m_arrived{0};
  std::atomic<int> m_passed{0};  // waited and were released
  std::atomic<int> m_failed{0};  // their wait threw std::system_error
  std::mutex m_mutex;
  std::string m_first_error;  // guarded by m_mutex
  double m_arrive_s = 0;      // from_outside: from the first spawn until all n arrived
  int m_mappings_at_peak = 0;

  // Runs the burst in rt. Rethrows what the group rethrew.
  void run(weft::runtime& rt, release how = release::from_outside) {
    weft::latch gate(how == release::from_outside ? 1 : m_n);
    const auto start = st::clock_type::now();
    std::thread releaser;
    if (how == release::from_outside) {
      releaser = std::thread([&] {
        // relaxed: a count; the release below is the latch's own.
        while (m_arrived.load(std::memory_order_relaxed) < m_n)
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        m_arrive_s = seconds_since(start);
        m_mappings_at_peak = weft_test::mapping_count();
        gate.count_down();
      });
    }
    struct joiner {
      std::thread& m_thread;
      ~joiner() {
        if (m_thread.joinable()) m_thread.join();
      }
    } join_releaser{releaser};
    rt.run([&] {
      weft::task_group g;
      for (int i = 0; i < m_n; ++i) {
        g.spawn([this, i, &gate, how] {
          m_runs[static_cast<std::size_t>(i)].fetch_add(1, std::memory_order_relaxed);
          m_arrived.fetch_add(1, std::memory_order_relaxed);
          try {
            if (how == release::from_outside) {
              gate.wait();
            } else {
              gate.arrive_and_wait();
            }
          } catch (const std::system_error& e) {
            m_failed.fetch_add(1, std::memory_order_relaxed);
            std::lock_guard lock(m_mutex);
            if (m_first_error.empty()) m_first_error = e.what();
            throw;
          }
          m_passed.fetch_add(1, std::memory_order_relaxed);
        });
      }
      g.wait();
    });
  }

  // Empty when every task ran exactly once (at most once: when a task that
  // failed made its group skip the others).
  std::string check_runs(bool at_most_once = false) const {
    int never = 0, twice = 0;
    for (int i = 0; i < m_n; ++i) {
      const unsigned c = m_runs[static_cast<std::size_t>(i)].load(std::memory_order_relaxed);
      if (c == 0 && !at_most_once) ++never;
      if (c > 1) ++twice;
    }
    if (never == 0 && twice == 0) return {};
    return std::to_string(never) + " tasks never ran, " + std::to_string(twice) + " ran more than once";
  }
};

class FiberCountStress : public testing::TestWithParam<int> {};

// 100 000 suspended fibers with guard markers: no mapping per stack.
TEST_P(FiberCountStress, HundredThousandSuspendedAtOneLatch) {
  if (!weft_test::kernel_has_guard_markers()) {
    GTEST_SKIP() << "this kernel lacks MADV_GUARD_INSTALL (Linux 6.13+): fiber stacks fall back to mprotect guards, "
                    "two memory mappings per stack, and 100 000 of them exceed vm.max_map_count";
  }
  // TSan counts every fiber against its limit of 8128 threads, and takes
  // about 10 ms and four mappings of its own to create one: fewer under it,
  // and the mappings are not counted.
  const int n = weft_test::k_tsan ? 2'000 : 100'000;
  const int workers = GetParam();
  const int mappings_before = weft_test::mapping_count();
  const auto start = st::clock_type::now();
  {
    weft_test::scoped_env guards("WEFT_STACK_GUARDS", std::nullopt);  // guard markers
    weft::runtime rt{weft::config{.workers = workers, .stack_size = k_stack}};
    burst b(n);
    b.run(rt);
    EXPECT_EQ(b.check_runs(), "");
    EXPECT_EQ(b.m_passed.load(), n);
    EXPECT_EQ(b.m_failed.load(), 0) << b.m_first_error;
    const int added = b.m_mappings_at_peak - mappings_before;
    st::report(
        "%d workers: %d tasks suspended at one latch in %.3f s (%.2f us each); %d mappings before, %d with all "
        "suspended (%.4f per fiber), %.3f s in all",
        workers, n, b.m_arrive_s, b.m_arrive_s * 1e6 / n, mappings_before, b.m_mappings_at_peak,
        static_cast<double>(added) / n, seconds_since(start));
    if (!weft_test::k_tsan) {
      EXPECT_LT(added, n / 16) << "fiber stacks should share mappings (slabs)";
    }
    EXPECT_EQ(sum_below_1000(rt), 499500);  // the runtime stays usable
  }
  // Once the runtime is gone, its slabs are gone (one empty slab may be kept).
  // (Threads that ran leave their malloc arenas mapped: a few more. A
  // sanitizer's allocator maps memory of its own meanwhile: not counted.)
  if (!weft_test::k_sanitized) {
    EXPECT_LE(weft_test::mapping_count(), mappings_before + 16) << "slabs of fiber stacks were not unmapped";
  }
}

// The reported case: tasks meet at one latch (each arrive_and_wait()), with
// mprotect guards forced, so that every stack costs two mappings, and more
// tasks than vm.max_map_count allows stacks for. The wait that cannot get a
// fiber throws, and breaks the latch: the fibers already waiting throw too,
// instead of waiting for parties the failed group never starts. The error
// names vm.max_map_count; every task ran at most once; the runtime and the
// process stay usable, and the stacks are unmapped.
TEST_P(FiberCountStress, MprotectGuardsPastTheMappingLimitGiveAClearError) {
  const long limit = max_map_count();
  if (limit <= 0 || limit > 200'000) {
    GTEST_SKIP() << "vm.max_map_count is " << limit << ": the test needs a limit it can reach (the default is 65530)";
  }
  if (weft_test::k_sanitized) {
    GTEST_SKIP() << "the sanitizer runtimes need memory mappings of their own: they cannot run at vm.max_map_count";
  }
  const int n = static_cast<int>(limit / 2 + 7000);  // 39 765 with the default limit
  const int workers = GetParam();
  const int mappings_before = weft_test::mapping_count();
  std::string error;
  const auto start = st::clock_type::now();
  {
    weft_test::scoped_env guards("WEFT_STACK_GUARDS", "mprotect");
    weft::runtime rt{weft::config{.workers = workers, .stack_size = k_stack}};
    burst b(n);
    try {
      b.run(rt, release::by_the_last_arrival);
      ADD_FAILURE() << n << " suspended fibers with mprotect guards did not reach vm.max_map_count (" << limit << ")";
    } catch (const std::system_error& e) {
      error = e.what();
    }
    const double failed_after = seconds_since(start);
    EXPECT_EQ(b.check_runs(true), "");
    EXPECT_EQ(b.m_passed.load() + b.m_failed.load(), b.m_arrived.load());
    EXPECT_GT(b.m_failed.load(), 0);
    st::report(
        "%d workers, vm.max_map_count %ld: %d of %d tasks arrived, %d waits failed, %d passed, the rest were "
        "skipped; the error after %.3f s: %s",
        workers, limit, b.m_arrived.load(), n, b.m_failed.load(), b.m_passed.load(), failed_after, error.c_str());
    EXPECT_NE(error.find("vm.max_map_count"), std::string::npos) << error;
    // The same runtime still runs work, suspensions included.
    EXPECT_EQ(sum_below_1000(rt), 499500);
    burst small(500);
    small.run(rt);
    EXPECT_EQ(small.check_runs(), "");
    EXPECT_EQ(small.m_passed.load(), 500);
  }
  // The stacks are unmapped with their runtime (an empty slab, with its
  // guards, may be kept).
  EXPECT_LE(weft_test::mapping_count(), mappings_before + 160);
  // And the process can start threads and a runtime again.
  weft::runtime fresh{weft::config{.workers = 2, .stack_size = k_stack}};
  burst again(2000);
  again.run(fresh);
  EXPECT_EQ(again.check_runs(), "");
}

INSTANTIATE_TEST_SUITE_P(Workers, FiberCountStress, testing::Values(1, 2), [](const testing::TestParamInfo<int>& info) {
  return "Workers" + std::to_string(info.param);
});

// Runtimes created and destroyed in a loop, each with a burst of suspended
// fibers, leave no mappings behind, with either kind of guard.
class FiberCountChurn : public testing::TestWithParam<const char*> {};

TEST_P(FiberCountChurn, RuntimesInALoopDoNotLeakMappings) {
  weft_test::scoped_env guards("WEFT_STACK_GUARDS", GetParam());
  const int rounds = static_cast<int>(weft_test::scaled(60, 4));
  int warm = 0, most = 0;
  for (int round = 0; round < rounds; ++round) {
    {
      weft::runtime rt{weft::config{.workers = 2, .stack_size = k_stack}};
      burst b(300 + 37 * (round % 5));
      b.run(rt);
      ASSERT_EQ(b.check_runs(), "") << "round " << round;
      ASSERT_EQ(b.m_passed.load(), b.m_n) << "round " << round;
    }
    // The most mappings seen in the first half of the rounds (the caches of
    // stacks warm up there: on a loaded machine fewer fibers overlap in the
    // first rounds, and after round 4 there were once 67 mappings of a
    // steady 187), and the most in the second half.
    const int now = weft_test::mapping_count();
    int& peak = round < rounds / 2 ? warm : most;
    peak = std::max(peak, now);
  }
  st::report("guards %s: %d rounds; at most %d mappings in the first half, %d in the second", GetParam(), rounds, warm,
             most);
  // A leaked slab is at least one mapping a round, past the margin of 8 over
  // the rounds of the second half. The sanitizers' runtimes map regions of their own as
  // the rounds go (up to a dozen seen under ASan and under TSan): a wider
  // margin there, where only a larger leak shows; the release build keeps the
  // tight one.
  const int margin = weft_test::k_sanitized ? 24 : 8;
  EXPECT_LE(most, warm + margin) << "memory mappings grow with every runtime";
}

INSTANTIATE_TEST_SUITE_P(Guards, FiberCountChurn, testing::Values("auto", "mprotect"),
                         [](const testing::TestParamInfo<const char*>& info) { return std::string(info.param); });

// ---- out of memory ----
//
// In a child process whose address space is then capped (RLIMIT_AS) just
// above what it uses: the runtime's first slab of stacks has room for 63
// more fibers, and no new slab can be mapped.

// The address space of the process, in bytes (VmSize), or -1.
long address_space_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmSize:", 0) == 0) return std::stol(line.substr(7)) * 1024;
  }
  return -1;
}

// Caps the address space at what the process uses now plus `slack` bytes.
// First keeps malloc from making new arenas: a thread whose first allocation
// comes after the cap cannot map one (each reserves 64 MiB), and which
// threads had allocated before depends on timing, so the slack alone did not
// decide whether the tasks' own allocations (coroutine frames) found memory:
// the FullStacks cases failed with std::bad_alloc in most runs on a machine
// where they had passed hours before, and never with one arena.
bool cap_address_space(long slack) {
  mallopt(M_ARENA_MAX, 1);
  const long now = address_space_bytes();
  if (now <= 0) return false;
  const rlimit r{static_cast<rlim_t>(now + slack), static_cast<rlim_t>(now + slack)};
  return setrlimit(RLIMIT_AS, &r) == 0;
}

weft::task<void> wait_for(const weft::latch& l) { co_await l; }

// Warms up everything that maps memory on first use (the worker's malloc
// arena, coroutine frames, the queue), so that after the cap only fiber
// stacks run short.
void warm_up(weft::runtime& rt) {
  rt.run([] {
    weft::latch open(0);
    weft::task_group g;
    for (int i = 0; i < 600; ++i) g.spawn([&] { weft::sync_wait(wait_for(open)); });
    g.wait();
  });
}

// Under AddressSanitizer, whose frames are about twice as large, twice the
// stack: the joins below nest the tasks they run on one stack.
constexpr std::size_t k_memory_test_stack = (weft_test::k_asan ? 128 : 64) * 1024;

// Runs body(rt) in a child process, on a runtime of `workers` warmed up
// before the child's address space is capped (1 MiB above what it uses).
// The child's exit code: body's, or 10 when the cap could not be set.
template <class Body>
weft_test::child_result in_capped_child(int workers, Body body) {
  return weft_test::run_in_child([workers, body] {
    weft::runtime rt{weft::config{.workers = workers, .stack_size = k_memory_test_stack}};
    warm_up(rt);
    if (!cap_address_space(1 << 20)) return 10;
    return body(rt);
  });
}

// Tasks meeting at a latch beyond the stacks memory allows: a clear error
// that names memory, no hang; the runtime stays usable.
TEST(FiberCountMemory, LatchPastTheMemoryLimitGivesAClearError) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer kills a child that starts threads after a fork";
  const auto r = in_capped_child(1, [](weft::runtime& rt) {
    burst b(200);
    try {
      b.run(rt, release::by_the_last_arrival);
      std::fprintf(stderr, "no error with a capped address space\n");
      return 11;
    } catch (const std::system_error& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      if (std::strstr(e.what(), "out of memory") == nullptr) return 12;
      // Names the limit, and the waiting fibers that used up a slab.
      if (std::strstr(e.what(), "RLIMIT_AS") == nullptr) return 16;
      if (std::strstr(e.what(), "let fewer fibers wait at once") == nullptr) return 17;
    }
    if (!b.check_runs(true).empty() || b.m_failed.load() == 0) return 13;
    std::fprintf(stderr, "%d arrived, %d failed\n", b.m_arrived.load(), b.m_failed.load());
    // Usable: a loop, and a burst the stacks left suffice for.
    if (sum_below_1000(rt) != 499500) return 14;
    burst small(20);
    small.run(rt, release::by_the_last_arrival);  // (no thread can be started now)
    if (small.m_passed.load() != 20) return 15;
    return 0;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

// A runtime whose first stacks cannot be mapped (a process whose address
// space is capped before its first runtime): the error names the cap, and
// does not blame waiting fibers, of which there are none.
TEST(FiberCountMemory, ARuntimeThatCannotMapItsFirstStacksSaysWhy) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer kills a child that starts threads after a fork";
  const auto r = weft_test::run_in_child([] {
    if (!cap_address_space(1 << 20)) return 10;
    try {
      weft::runtime rt{weft::config{.workers = 2}};
      std::fprintf(stderr, "no error with a capped address space\n");
      return 11;
    } catch (const std::system_error& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      if (std::strstr(e.what(), "out of memory") == nullptr) return 12;
      if (std::strstr(e.what(), "RLIMIT_AS") == nullptr) return 13;
      if (std::strstr(e.what(), "fibers wait") != nullptr) return 14;
    }
    return 0;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

// Whether the calling process has capability `bit` in its effective set
// (/proc/self/status, CapEff).
bool has_effective_capability(int bit) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("CapEff:", 0) == 0) return (std::stoull(line.substr(7), nullptr, 16) >> bit) & 1;
  }
  return false;
}

// A process whose memory is locked (mlockall with MCL_FUTURE) under a small
// RLIMIT_MEMLOCK: its first runtime cannot map a slab of stacks (the kernel
// would lock it whole). The error names the locked memory and the limit; it
// blamed memory and suggested a smaller stack size before, which locks a
// slab too.
TEST(FiberCountMemory, ARuntimeInAProcessWithLockedMemoryNamesTheLimit) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer kills a child that starts threads after a fork";
  if (weft_test::k_asan) GTEST_SKIP() << "AddressSanitizer's mlockall does nothing";
  const auto r = weft_test::run_in_child([] {
    // RLIMIT_MEMLOCK binds only a process without CAP_IPC_LOCK: root's child
    // becomes an unprivileged user first (which drops every capability).
    if (geteuid() == 0 && setuid(65534) != 0) return 30;
    if (has_effective_capability(14)) return 30;  // CAP_IPC_LOCK
    rlimit limit{};
    if (getrlimit(RLIMIT_MEMLOCK, &limit) != 0) return 31;
    // 1 MiB, or the hard limit when that is lower: far below a slab.
    limit.rlim_cur = std::min<rlim_t>(limit.rlim_max, 1 << 20);
    if (limit.rlim_cur == 0 || setrlimit(RLIMIT_MEMLOCK, &limit) != 0) return 30;
    if (mlockall(MCL_FUTURE) != 0) return 30;
    try {
      weft::runtime rt{weft::config{.workers = 1}};
      std::fprintf(stderr, "no error with locked memory\n");
      return 11;
    } catch (const std::system_error& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      if (std::strstr(e.what(), "mlockall") == nullptr) return 12;
      if (std::strstr(e.what(), "RLIMIT_MEMLOCK") == nullptr) return 13;
      const std::string named =
          limit.rlim_cur == 1 << 20 ? "(1 MiB)" : "(" + std::to_string((limit.rlim_cur + 1023) >> 10) + " KiB)";
      if (std::strstr(e.what(), named.c_str()) == nullptr) return 14;
    }
    return 0;
  });
  if (r.exited_with(30)) GTEST_SKIP() << "cannot run without CAP_IPC_LOCK under a small RLIMIT_MEMLOCK here";
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

// Joins that cannot get a fiber: each task waits (sync_wait) for a coroutine
// parked at a latch, a join with no fiber of its own. Past the stacks memory
// allows, the joins run the worker's queued tasks on their own stacks instead
// of failing or blocking the thread, and everything completes once the latch
// is released.
TEST(FiberCountMemory, JoinsPastTheMemoryLimitComplete) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer kills a child that starts threads after a fork";
  const auto r = weft_test::run_in_child([] {
    weft::runtime rt{weft::config{.workers = 1, .stack_size = k_memory_test_stack}};
    warm_up(rt);
    constexpr int n = 90;  // 63 fibers, then joins without one
    weft::latch gate(1);
    std::atomic<int> arrived{0};
    std::atomic<int> done{0};
    std::thread releaser([&] {
      while (arrived.load() < n) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      gate.count_down();
    });
    if (!cap_address_space(1 << 20)) return 10;
    rt.run([&] {
      weft::task_group g;
      for (int i = 0; i < n; ++i) {
        g.spawn([&] {
          arrived.fetch_add(1);
          weft::sync_wait(wait_for(gate));
          done.fetch_add(1);
        });
      }
      g.wait();
    });
    releaser.join();
    const weft::stats s = rt.stats();
    std::fprintf(stderr, "%d of %d done; %llu fibers created\n", done.load(), n,
                 static_cast<unsigned long long>(s.total.fibers_created));
    if (done.load() != n) return 11;
    if (s.total.fibers_created >= static_cast<std::uint64_t>(n)) return 12;  // the cap did not bite
    return 0;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

// Recurses on the current stack until it is nearly full, then joins there:
// the join moves to a fresh stack, where f recurses again, `levels` times.
// Each level's caller stays suspended on its stack. Once no fiber can be
// had, f runs on the nearly full stack (stack_low() still true there) and
// ends the descent. Returns the levels that got a fresh stack.
[[gnu::noinline]] int descend_to_a_full_stack(int levels) {
  volatile char pad[256];
  pad[0] = 0;
  if (!weft::detail::stack_low()) return descend_to_a_full_stack(levels) + pad[0];
  auto [below, one] = weft::join(
      [levels] { return levels == 0 || weft::detail::stack_low() ? 0 : descend_to_a_full_stack(levels - 1); },
      [] { return 1; });
  return below + one;
}

// A join on a nearly full stack when no fiber can be had: it runs f and g
// there (as a loop's split does), instead of asking again for a fresh stack
// on the same full stack without end (a stack overflow before).
TEST(FiberCountMemory, JoinOnANearlyFullStackWithoutAFiberRunsThere) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer kills a child that starts threads after a fork";
  const auto r = in_capped_child(1, [](weft::runtime& rt) {
    constexpr int levels = 300;  // more than the 63 fibers the cap leaves
    const int reached = rt.run([] { return descend_to_a_full_stack(levels); });
    const weft::stats s = rt.stats();
    std::fprintf(stderr, "%d of %d levels; %llu fibers created\n", reached, levels,
                 static_cast<unsigned long long>(s.total.fibers_created));
    if (reached < 1 || reached > levels + 1) return 11;
    if (reached == levels + 1) return 12;  // the cap did not bite
    // Usable afterwards.
    if (sum_below_1000(rt) != 499500) return 13;
    return 0;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
  std::fputs(r.err.c_str(), stdout);  // what the child saw, for the log
}

// Recurses on the current stack until it is nearly full, then calls
// bottom(levels) there, whose item 0 descends again (`levels` - 1): each
// level's entry point moves to a fresh stack while fibers last. Returns what
// bottom returns.
template <class Bottom>
[[gnu::noinline]] int descend_then(int levels, Bottom& bottom) {
  volatile char pad[256];
  pad[0] = 0;
  if (!weft::detail::stack_low()) return descend_then(levels, bottom) + pad[0];
  return bottom(levels);
}

// A reduction over 1 000 items whose item 0 descends again: the levels that
// got this far, counted in item 0.
struct reduce_level {
  int operator()(int levels) {
    const auto map = [this, levels](int i) {
      if (i != 0) return 0;
      return levels == 0 || weft::detail::stack_low() ? 1 : descend_then(levels - 1, *this) + 1;
    };
    return weft::parallel_reduce(0, 1000, 0, map, std::plus<>());
  }
};

// The same through a loop: item 0 writes the levels below it.
struct loop_level {
  int operator()(int levels) {
    int below = 0;
    weft::parallelize(1000, [this, levels, &below](int i) {
      if (i != 0) return;
      below = levels == 0 || weft::detail::stack_low() ? 1 : descend_then(levels - 1, *this) + 1;
    });
    return below;
  }
};

// A reduction and a loop on a nearly full stack when no fiber can be had:
// they run there, as a join does, instead of asking again for a fresh stack
// on the same full stack without end (a stack overflow before).
template <class Level>
void nearly_full_stacks_without_a_fiber() {
  const auto r = in_capped_child(1, [](weft::runtime& rt) {
    constexpr int levels = 300;  // more than the 63 fibers the cap leaves
    const int reached = rt.run([] {
      Level level;
      return descend_then(levels, level);
    });
    const weft::stats s = rt.stats();
    std::fprintf(stderr, "%d of %d levels; %llu fibers created\n", reached, levels,
                 static_cast<unsigned long long>(s.total.fibers_created));
    if (reached < 1 || reached > levels + 1) return 11;
    if (reached == levels + 1) return 12;         // the cap did not bite
    if (sum_below_1000(rt) != 499500) return 13;  // usable afterwards
    return 0;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
  std::fputs(r.err.c_str(), stdout);  // what the child saw, for the log
}

TEST(FiberCountMemory, ReduceOnANearlyFullStackWithoutAFiberRunsThere) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer kills a child that starts threads after a fork";
  nearly_full_stacks_without_a_fiber<reduce_level>();
}

TEST(FiberCountMemory, LoopOnANearlyFullStackWithoutAFiberRunsThere) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer kills a child that starts threads after a fork";
  nearly_full_stacks_without_a_fiber<loop_level>();
}

// Inside a runtime: uses up the stacks memory allows, with tasks that wait
// on a locked mutex until one of them cannot get a fiber (counted in
// `failed`). release() lets them finish; the destructor waits.
struct stack_holders {
  explicit stack_holders(std::atomic<int>& failed) {
    m_mutex.lock();
    for (int i = 0; i < 200; ++i) {
      m_group.spawn([this, &failed] {
        m_arrived.fetch_add(1);
        try {
          m_mutex.lock();
          m_mutex.unlock();
        } catch (const std::system_error&) {
          failed.fetch_add(1);
        }
      });
    }
    for (int i = 0; i < 100000 && failed.load() == 0; ++i) weft::yield();
  }
  // No fiber can be had: a holder's wait failed, or holders are still queued
  // (the yields above could not run them).
  bool used_up(const std::atomic<int>& failed) const { return failed.load() > 0 || m_arrived.load() < 200; }
  void release() {
    if (!m_released) m_mutex.unlock();
    m_released = true;
    m_group.wait();
  }
  ~stack_holders() { release(); }

  weft::mutex m_mutex;
  weft::task_group m_group;
  std::atomic<int> m_arrived{0};
  bool m_released = false;
};

// Runs body() inside a runtime of `workers` whose stacks are used up (in a
// child process with its address space capped), then checks that the
// runtime still runs a loop. The child's exit code: body's, or 13 when the
// stacks were never used up (nothing was tested), 14 when the loop failed.
template <class Body>
weft_test::child_result without_fibers(int workers, Body body) {
  return in_capped_child(workers, [body](weft::runtime& rt) {
    std::atomic<int> failed{0};
    bool used_up = false;
    int status = 0;
    rt.run([&] {
      stack_holders holders(failed);
      used_up = holders.used_up(failed);
      status = body();
      holders.release();
    });
    if (!used_up) return 13;
    if (status != 0) return status;
    return sum_below_1000(rt) == 499500 ? 0 : 14;
  });
}

// A wait that cannot get a fiber runs the worker's queued work on the owner's
// stack: a counted spawn T of the group run there spawns X into the group.
// T is not the owner, though it runs on the owner's fiber: X is counted, and
// waited for by that wait or a later one (a spawn of the owner's in between
// gets memory of its own), or by the destructor, which returns only when X
// has run.
TEST(FiberCountMemory, SpawnsOfACallRunOnTheOwnersStackAreWaitedFor) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer kills a child that starts threads after a fork";
  const auto r = weft_test::run_in_child([] {
    weft::runtime rt{weft::config{.workers = 1, .stack_size = k_memory_test_stack}};
    warm_up(rt);
    std::atomic<int> t_runs{0};
    std::atomic<int> x_runs{0};
    std::atomic<int> y_runs{0};
    std::atomic<int> bad{0};
    std::atomic<int> failed{0};
    std::atomic<weft::task_group*> target{nullptr};
    std::atomic<bool> spawned{false};
    // Spawns T into each group it is given, from outside the runtime.
    std::thread spawner([&] {
      for (int part = 0; part < 2; ++part) {
        weft::task_group* g = nullptr;
        while ((g = target.exchange(nullptr)) == nullptr) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        g->spawn([g, &t_runs, &x_runs, &bad] {
          t_runs.fetch_add(1);
          const long tag = 0x1234;
          g->spawn([tag, &x_runs, &bad] {
            if (tag != 0x1234) bad.fetch_add(1);
            x_runs.fetch_add(1);
          });
        });
        spawned.store(true);
      }
    });
    auto give = [&](weft::task_group& g) {
      target.store(&g);
      while (!spawned.exchange(false)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    };
    if (!cap_address_space(1 << 20)) {
      give(*new weft::task_group);  // unreachable in practice; lets the spawner end
      return 10;
    }
    int status = 0;
    rt.run([&] {
      stack_holders holders(failed);
      {
        weft::task_group g;
        give(g);
        g.wait();  // runs T on this stack; T spawns X
        const long tag = 0x5678;
        g.spawn([tag, &y_runs, &bad] {
          if (tag != 0x5678) bad.fetch_add(1);
          y_runs.fetch_add(1);
        });
        g.wait();
      }
      if (x_runs.load() != 1 || y_runs.load() != 1) status = 11;
      {
        weft::task_group g;
        give(g);
      }  // the destructor runs T on this stack, and waits for X
      if (x_runs.load() != 2) status = status != 0 ? status : 12;
      holders.release();
    });
    spawner.join();
    std::fprintf(stderr, "holders without a fiber %d; T %d X %d Y %d bad %d\n", failed.load(), t_runs.load(),
                 x_runs.load(), y_runs.load(), bad.load());
    if (failed.load() == 0) return 13;  // the stacks were never used up: nothing was tested
    if (status != 0) return status;
    return t_runs.load() == 2 && bad.load() == 0 ? 0 : 14;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

// As above, but X runs before the wait ends: T, run on the owner's stack,
// waits for X (a join without a fiber, which runs X on top of it). X is a
// spawn the owner's wait must count: were it taken as the owner's own (made
// before the wait, and not counted), its end would leave the group's
// counter one below what the wait waits for, and the wait would never end.
TEST(FiberCountMemory, ASpawnOfACallRunOnTheOwnersStackMayEndDuringTheWait) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer kills a child that starts threads after a fork";
  const auto r = weft_test::run_in_child([] {
    weft::runtime rt{weft::config{.workers = 1, .stack_size = k_memory_test_stack}};
    warm_up(rt);
    std::atomic<int> failed{0};
    std::atomic<int> t_runs{0};
    std::atomic<int> x_runs{0};
    std::atomic<weft::task_group*> target{nullptr};
    std::atomic<bool> spawned{false};
    std::thread spawner([&] {
      weft::task_group* g = nullptr;
      while ((g = target.load()) == nullptr) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      g->spawn([g, &t_runs, &x_runs] {
        t_runs.fetch_add(1);
        weft::latch x_done(1);
        g->spawn([&x_done, &x_runs] {
          x_runs.fetch_add(1);
          x_done.count_down();
        });
        weft::sync_wait(wait_for(x_done));  // runs X here: no fiber to suspend
      });
      spawned.store(true);
    });
    if (!cap_address_space(1 << 20)) {
      target.store(new weft::task_group);  // unreachable in practice; lets the spawner end
      spawner.join();
      return 10;
    }
    int status = 0;
    rt.run([&] {
      stack_holders holders(failed);
      weft::task_group g;
      target.store(&g);
      while (!spawned.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      g.wait();  // runs T on this stack; T runs X
      if (t_runs.load() != 1 || x_runs.load() != 1) status = 11;
      holders.release();
    });
    spawner.join();
    std::fprintf(stderr, "holders without a fiber %d; T %d X %d\n", failed.load(), t_runs.load(), x_runs.load());
    if (failed.load() == 0) return 13;  // the stacks were never used up: nothing was tested
    return status;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

// A condition_variable wait whose re-lock fails: F is woken while H holds
// the mutex (H waits at a latch), and no fiber can be had for F to wait for
// it. wait() throws, and the caller's unique_lock owns nothing afterwards:
// it claimed the mutex, and its destructor unlocked the mutex H held.
TEST(FiberCountMemory, AConditionVariableWaitWhoseRelockFailsLeavesTheLockOwningNothing) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer kills a child that starts threads after a fork";
  const auto r = weft_test::run_in_child([] {
    weft::runtime rt{weft::config{.workers = 1, .stack_size = k_memory_test_stack}};
    warm_up(rt);
    weft::mutex m;
    weft::condition_variable cv;
    weft::latch hold(1);
    std::atomic<bool> notified{false};
    std::atomic<int> f_stage{0};  // 1: waiting on cv (or about to); 2: ended
    std::atomic<bool> h_holds{false};
    std::atomic<int> relock_failed{0};
    std::atomic<int> owned_after{-1};
    std::atomic<int> failed{0};
    // Lets H go once F has ended (nobody inside the runtime can: F's end
    // leaves only H to run).
    std::thread releaser([&] {
      while (f_stage.load() != 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      hold.count_down();
    });
    if (!cap_address_space(1 << 20)) {
      f_stage.store(2);
      releaser.join();
      return 10;
    }
    int status = 0;
    rt.run([&] {
      weft::task_group g;
      g.spawn([&] {  // F
        std::unique_lock<weft::mutex> lk(m);
        f_stage.store(1);
        try {
          cv.wait(lk, [&] { return notified.load(); });
        } catch (const std::exception& e) {
          std::fprintf(stderr, "F's wait: %s\n", e.what());
          relock_failed.store(1);
          owned_after.store(lk.owns_lock() ? 1 : 0);
          if (lk.mutex() != &m) owned_after.store(2);  // still the lock of m: lk.lock() may try again
        }
        f_stage.store(2);
      });
      while (f_stage.load() != 1) weft::yield();
      { std::lock_guard<weft::mutex> lk(m); }  // F has released m: it waits on cv
      g.spawn([&] {                            // H
        std::lock_guard<weft::mutex> lk(m);
        h_holds.store(true);
        hold.wait();
      });
      while (!h_holds.load()) weft::yield();
      stack_holders holders(failed);
      if (!holders.used_up(failed)) status = 13;
      notified.store(true);
      cv.notify_one();
      g.wait();  // no fiber: F takes over this worker, and cannot wait for m
      holders.release();
      // m is H's no more, and free.
      if (!m.try_lock()) status = status != 0 ? status : 11;
      m.unlock();
    });
    releaser.join();
    std::fprintf(stderr, "re-lock failed %d; unique_lock owning after it %d\n", relock_failed.load(),
                 owned_after.load());
    if (status != 0) return status;
    if (relock_failed.load() != 1) return 13;  // the re-lock did not fail: nothing was tested
    return owned_after.load() == 0 ? 0 : 12;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

class NoFiber : public testing::TestWithParam<int> {};

// Items of one loop that wait for each other, the first through sync_wait (a
// join): with no fiber to be had, the items not started go to the queue, as
// before a suspension, and run on top of the waiting item. They stayed in the
// loop's own list, and the wait waited for them for ever.
TEST_P(NoFiber, ItemsThatWaitForEachOtherThroughAJoin) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer kills a child that starts threads after a fork";
  const auto r = without_fibers(GetParam(), [] {
    constexpr int n = 8;
    weft::latch others(n - 1);
    std::atomic<int> done{0};
    weft::parallelize(n, n, [&](int i) {
      if (i == 0) {
        weft::sync_wait(wait_for(others));
      } else {
        others.count_down();
      }
      done.fetch_add(1);
    });
    return done.load() == n ? 0 : 11;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

// A task that polls with yield() for what a queued task does: with no fiber
// to run the queue, the yield runs the queued task on the poller's stack. It
// returned without running anything, and the poller spun for ever.
TEST_P(NoFiber, AYieldRunsAQueuedTask) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer kills a child that starts threads after a fork";
  const auto r = without_fibers(GetParam(), [] {
    std::atomic<bool> flag{false};
    weft::task_group g;
    g.spawn([&] { flag.store(true); });
    while (!flag.load()) weft::yield();
    g.wait();
    return 0;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

// The same where the poller's stack is nearly full, so that no task may
// start on it: the yield hands the queued task to the other worker
// (published, a sleeper woken). It returned without doing either, and the
// poller spun for ever while the other worker stayed parked (6 of 6 runs).
// With one worker nothing else could run the task (guide.md, "Limits").
TEST(NoFiberTwoWorkers, AYieldOnANearlyFullStackHandsAQueuedTaskToAnotherWorker) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer kills a child that starts threads after a fork";
  const auto r = without_fibers(2, [] {
    std::atomic<bool> flag{false};
    weft::task_group g;
    auto poll = [&](int) {
      g.spawn([&] { flag.store(true); });
      while (!flag.load()) weft::yield();
      return 0;
    };
    const int status = descend_then(0, poll);
    g.wait();
    return status;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

// Items of one loop that poll each other with yield().
TEST_P(NoFiber, ItemsThatPollEachOtherWithYield) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer kills a child that starts threads after a fork";
  const auto r = without_fibers(GetParam(), [] {
    constexpr int n = 4;
    std::atomic<int> arrived{0};
    weft::parallelize(n, n, [&](int) {
      arrived.fetch_add(1);
      while (arrived.load() < n) weft::yield();
    });
    return arrived.load() == n ? 0 : 11;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

// Items of one loop that each wait (sync_wait) for a coroutine at a latch
// that a plain thread opens, past the stacks memory allows: without a fiber,
// each wait runs the next items on its own stack, until that stack is nearly
// full. There a wait took only fibers from its yield list, and the
// coroutines' resumptions (queued by the opener), their continuations
// (deferred for want of stack) and the fibers they made ready stayed queued:
// no fiber ever finished, no stack came back, and the child hung (at 1 and 2
// workers). Such a wait now takes them, and starts no task.
// Uncapped (parallelize(n, fn)), the items run nested in the joins of their
// loop's pieces: a join on a stack with room ran only its own worker's ready
// work, while the rest of the loop waited, published, on a worker whose
// stack was nearly full (and the thread of the slot the caller borrowed
// stayed parked): 4 of 4 runs of these cases hung (at 2 or 4 workers).
// Such a join now also steals.
class FullStacks : public testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(FullStacks, ItemsThatWaitForCoroutines) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer kills a child that starts threads after a fork";
  const auto [workers, capped] = GetParam();
  const auto r = weft_test::run_in_child([workers, capped] {
    weft::runtime rt{weft::config{.workers = workers, .stack_size = k_memory_test_stack}};
    warm_up(rt);
    constexpr int n = 3000;  // far more than the stacks the cap leaves room for
    weft::latch gate(1);
    std::atomic<bool> started{false};
    std::atomic<int> arrived{0};
    std::atomic<int> done{0};
    int arrived_at_opening = 0;
    // Started before the cap (its stack would not fit under it). Opens the
    // latch once no item has arrived for 50 ms: every item that can start
    // has started, and the waits sit on full stacks.
    std::thread opener([&] {
      while (!started.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      int seen = -1;
      while (arrived.load() != seen) {
        seen = arrived.load();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      arrived_at_opening = seen;
      gate.count_down();
    });
    if (!cap_address_space(1 << 20)) {
      started.store(true);
      gate.count_down();
      opener.join();
      return 10;
    }
    started.store(true);
    rt.run([&] {
      auto item = [&](int) {
        arrived.fetch_add(1);
        weft::sync_wait(wait_for(gate));
        done.fetch_add(1);
      };
      if (capped) {
        weft::parallelize(n, n, item);
      } else {
        weft::parallelize(n, item);
      }
    });
    opener.join();
    const weft::stats s = rt.stats();
    std::fprintf(stderr, "%d of %d done, %d had arrived when the latch opened; %llu fibers created\n", done.load(), n,
                 arrived_at_opening, static_cast<unsigned long long>(s.total.fibers_created));
    if (done.load() != n) return 11;
    if (s.total.fibers_created >= static_cast<std::uint64_t>(n)) return 12;  // the cap did not bite
    return sum_below_1000(rt) == 499500 ? 0 : 13;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
  std::fputs(r.err.c_str(), stdout);  // what the child saw, for the log
}

INSTANTIATE_TEST_SUITE_P(Workers, NoFiber, testing::Values(1, 2), [](const testing::TestParamInfo<int>& info) {
  return "Workers" + std::to_string(info.param);
});

// With more than one worker, a continuation could also lie below the items a
// join handed off, or in the public part of a queue, while the other workers
// parked beside a joiner that published nothing.
INSTANTIATE_TEST_SUITE_P(Workers, FullStacks, testing::Combine(testing::Values(1, 2, 4), testing::Bool()),
                         [](const testing::TestParamInfo<std::tuple<int, bool>>& info) {
                           return "Workers" + std::to_string(std::get<0>(info.param)) +
                                  (std::get<1>(info.param) ? "Capped" : "Uncapped");
                         });

}  // namespace
