// SPDX-License-Identifier: MIT
// Thread creation fails: the runtime constructor throws std::system_error and
// nothing leaks (reliability.md, "Faults"). A child process lowers
// RLIMIT_NPROC so that only a few more threads can be created, asks for many
// workers, and checks that the constructor threw, that the threads it had
// started are gone (thread count back to 1), that no fiber stack is left
// mapped, and that a runtime with fewer workers then works, under the same
// limit.
//
// RLIMIT_NPROC counts the tasks (processes and threads) of the real user id,
// and the kernel does not enforce it for root (a process with
// CAP_SYS_RESOURCE or CAP_SYS_ADMIN). So when the test runs as root, the child
// first drops its privileges for good: no supplementary groups, then the
// group and user id of 'nobody' (65534). The limit is set a few tasks above
// what that user runs now (counted in /proc). Run as another user, the limit
// counts that user's other processes too, which come and go (the rest of the
// test suite): the child then leaves more room and lifts the limit again
// before the last step.
#include <dirent.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <system_error>

#include <weft/weft.hpp>

#include "child_process.hpp"
#include "process_info.hpp"
#include "sanitizers.hpp"

namespace {

using weft_test::run_in_child;

constexpr uid_t k_nobody = 65534;

// The tasks (threads of every process) whose real user id is uid, from /proc.
int tasks_of_user(uid_t uid) {
  int n = 0;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return -1;
  while (dirent* p = ::readdir(proc)) {
    if (p->d_name[0] < '0' || p->d_name[0] > '9') continue;
    const std::string task_dir = std::string("/proc/") + p->d_name + "/task";
    DIR* tasks = ::opendir(task_dir.c_str());
    if (tasks == nullptr) continue;  // gone meanwhile
    while (dirent* t = ::readdir(tasks)) {
      if (t->d_name[0] < '0' || t->d_name[0] > '9') continue;
      std::ifstream status(task_dir + "/" + t->d_name + "/status");
      std::string line;
      while (std::getline(status, line)) {
        if (line.rfind("Uid:", 0) == 0) {
          if (std::strtoul(line.c_str() + 4, nullptr, 10) == uid) ++n;
          break;
        }
      }
    }
    ::closedir(tasks);
  }
  ::closedir(proc);
  return n;
}

// Sums up what one child run found, on its stderr.
int count_items(weft::runtime& rt, int n) {
  return rt.run([n] {
    std::atomic<int> calls{0};
    weft::parallelize(n, [&](int) { calls.fetch_add(1, std::memory_order_relaxed); });
    return calls.load();
  });
}

// The child: returns 0 when every check held; 77 when the limit could not be
// made to apply (reported as a skip).
int constructor_fails_cleanly() {
  // Everything that happens once per process (signal handlers, fork handlers,
  // allocator arenas) happens now, before the counts are taken.
  {
    weft::runtime warm{weft::config{.workers = 2}};
    WEFT_CHILD_CHECK(count_items(warm, 1000) == 1000, 10);
  }
  // Threads that are not weft's: this one alone, except under
  // ThreadSanitizer, which starts threads of its own once threads exist (3 in
  // all after the warm-up, with g++ 12): there the count after the warm-up is
  // the baseline, and the checks below still catch a weft thread left behind.
  const int base = weft_test::k_tsan ? weft_test::settled_thread_count(-1, 500) : weft_test::settled_thread_count(1);
  std::fprintf(stderr, "threads before: %d\n", base);
  WEFT_CHILD_CHECK(weft_test::k_tsan || base == 1, 11);

  const bool as_root = ::geteuid() == 0;
  if (as_root) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(k_nobody) != 0 || ::setuid(k_nobody) != 0) {
      std::fprintf(stderr, "cannot drop privileges: %s\n", std::strerror(errno));
      return 77;
    }
    ::prctl(PR_SET_DUMPABLE, 1);  // keep /proc/self readable after the uid change
  }
  const int others = tasks_of_user(::getuid());  // this process included
  WEFT_CHILD_CHECK(others >= 1, 12);
  const int room = as_root ? 3 : 8;  // threads this process may still create
  rlimit old{};
  ::getrlimit(RLIMIT_NPROC, &old);
  rlimit lowered = old;
  lowered.rlim_cur = static_cast<rlim_t>(others + room);
  if (lowered.rlim_cur > old.rlim_max) lowered.rlim_cur = old.rlim_max;
  WEFT_CHILD_CHECK(::setrlimit(RLIMIT_NPROC, &lowered) == 0, 13);
  std::fprintf(stderr, "uid %u: %d tasks, RLIMIT_NPROC %llu\n", static_cast<unsigned>(::getuid()), others,
               static_cast<unsigned long long>(lowered.rlim_cur));

  const int mappings_before = weft_test::mapping_count();
  bool threw = false;
  try {
    weft::runtime too_many{weft::config{.workers = 64}};
    std::fprintf(stderr, "64 workers started under the limit: the limit does not apply here\n");
    return 77;
  } catch (const std::system_error& e) {
    threw = true;
    std::fprintf(stderr, "runtime(64 workers): std::system_error: %s (code %d)\n", e.what(), e.code().value());
    // It says whose threads could not start (before: only the system's
    // "Resource temporarily unavailable").
    WEFT_CHILD_CHECK(std::string(e.what()).find("weft::runtime: could not start worker thread") != std::string::npos,
                     24);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "runtime(64 workers) threw another exception: %s\n", e.what());
    return 20;
  }
  WEFT_CHILD_CHECK(threw, 21);
  const int threads = weft_test::settled_thread_count(base);
  std::fprintf(stderr, "threads after the failure: %d\n", threads);
  WEFT_CHILD_CHECK(threads == base, 22);
  // 64 first fibers were mapped before the threads were started: each is a
  // mapping or two. The allocator may add an arena.
  const int mappings_after = weft_test::mapping_count();
  std::fprintf(stderr, "mappings: %d before, %d after\n", mappings_before, mappings_after);
  if (!weft_test::k_sanitized) {  // a sanitizer's allocator maps memory of its own
    WEFT_CHILD_CHECK(mappings_after <= mappings_before + 8, 23);
  }

  // The default runtime reports the same error, and a later call tries again.
  ::setenv("WEFT_NUM_WORKERS", "64", 1);
  bool default_threw = false;
  try {
    weft::default_runtime();
  } catch (const std::system_error& e) {
    default_threw = true;
    std::fprintf(stderr, "default_runtime() with 64 workers: std::system_error: %s\n", e.what());
  }
  WEFT_CHILD_CHECK(default_threw, 30);
  WEFT_CHILD_CHECK(weft_test::settled_thread_count(base) == base, 31);

  if (!as_root) WEFT_CHILD_CHECK(::setrlimit(RLIMIT_NPROC, &old) == 0, 40);
  {
    weft::runtime fewer{weft::config{.workers = 2}};
    WEFT_CHILD_CHECK(count_items(fewer, 10'000) == 10'000, 41);
  }
  WEFT_CHILD_CHECK(weft_test::settled_thread_count(base) == base, 43);  // its threads count until reaped
  ::setenv("WEFT_NUM_WORKERS", "2", 1);
  std::atomic<int> calls{0};
  weft::parallelize(1000, [&](int) { calls.fetch_add(1, std::memory_order_relaxed); });
  WEFT_CHILD_CHECK(calls.load() == 1000, 42);
  std::fprintf(stderr, "runtimes of 2 workers work afterwards\n");
  return 0;
}

TEST(ThreadCreationTest, ConstructorThrowsSystemErrorAndLeaksNothing) {
  const auto r = run_in_child(constructor_fails_cleanly);
  std::printf("%s\n", r.describe().c_str());  // the child's findings, in the test log
  if (r.exited_with(77)) GTEST_SKIP() << "RLIMIT_NPROC cannot be made to apply here: " << r.err;
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

}  // namespace
