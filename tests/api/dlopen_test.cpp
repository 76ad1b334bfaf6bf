// SPDX-License-Identifier: MIT
// weft used by a library's static initializers while dlopen loads it (and
// holds the dynamic loader's lock): a runtime constructed there, and the
// first call of the process, which creates the default runtime. Each case
// in a child process of its own (the default runtime is made once per
// process); a hang is a timeout of the child.
#include <gtest/gtest.h>

#include <dlfcn.h>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <weft/weft.hpp>

#include "child_process.hpp"
#include "sanitizers.hpp"

namespace {

constexpr long k_expected = 332'833'500;  // the sum of i * i for i in [0, 1000)

// Loads the plugin named by the environment variable `variable`, checks its
// result and unloads it; the exit code of a child: 0 when all went well.
int load_and_check(const char* variable) {
  const char* path = std::getenv(variable);
  if (path == nullptr) return 2;
  void* plugin = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (plugin == nullptr) return 3;
  auto* result = reinterpret_cast<long (*)()>(dlsym(plugin, "weft_plugin_result"));
  if (result == nullptr) return 4;
  const long value = result();
  // The program goes on using weft after the load.
  const long after = weft::parallel_reduce(
      0, 1000, 0L, [](int i) { return static_cast<long>(i) * i; }, [](long a, long b) { return a + b; });
  dlclose(plugin);
  return value == k_expected && after == k_expected ? 0 : 5;
}

// A runtime constructed by a static initializer of the library, then used
// by the next one: the constructor waited for its workers to start, and
// each worker's start registered a thread_local destructor, which takes the
// loader's lock (every run hung before).
TEST(DlopenTest, ALibraryConstructsAndUsesARuntimeInItsStaticInitializers) {
  const auto r = weft_test::run_in_child([] { return load_and_check("WEFT_DLOPEN_OWN_RUNTIME_PLUGIN"); });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

// The first weft call of the process, from a static initializer of the
// library: it creates the default runtime there (every run hung before).
TEST(DlopenTest, ALibraryMakesTheProcesssFirstCallInItsStaticInitializers) {
  const auto r = weft_test::run_in_child([] { return load_and_check("WEFT_DLOPEN_DEFAULT_RUNTIME_PLUGIN"); });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

// The same call once the program has used the default runtime itself.
TEST(DlopenTest, ALibraryCallsAWarmDefaultRuntimeInItsStaticInitializers) {
  const auto r = weft_test::run_in_child([] {
    weft::parallelize(100, [](int) {});
    return load_and_check("WEFT_DLOPEN_DEFAULT_RUNTIME_PLUGIN");
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

// Runs dlclose_host (a program that does not link weft) on the plugin named
// by `variable`, in the mode `mode` (none: a thread of it loads the plugin,
// whose initializer makes the first weft call of the process, and ends; the
// host unloads the plugin); before_exec runs in the child first.
weft_test::child_result run_host(const char* variable, const char* mode = nullptr,
                                 const std::function<void()>& before_exec = {}) {
  const char* host = std::getenv("WEFT_DLCLOSE_HOST");
  const char* plugin = std::getenv(variable);
  if (host == nullptr || plugin == nullptr) {
    weft_test::child_result r;
    r.err = "WEFT_DLCLOSE_HOST or a plugin's variable is not set (run this test through meson test)";
    return r;
  }
  std::vector<std::string> args{plugin};
  if (mode != nullptr) args.emplace_back(mode);
  return weft_test::run_program_in_child(host, args, std::chrono::seconds(20 * (weft_test::k_sanitized ? 3 : 1)),
                                         before_exec);
}

// The library that started the default runtime's workers was unloaded under
// them, with weft's SIGSEGV handler: the host found the module gone (exit
// code 6) every time, and most runs crashed in the workers before it was
// kept loaded. Several runs: each child is a fresh process.
TEST(DlopenTest, AnUnloadedLibraryLeavesWeftLoadedUnderItsWorkers) {
  for (int run = 0; run < 5; ++run) {
    const auto r = run_host("WEFT_DLOPEN_DEFAULT_RUNTIME_PLUGIN");
    ASSERT_TRUE(r.exited_with(0)) << "run " << run << ": " << r.describe();
  }
}

// A thread with a stack of 64 KiB loads the library whose initializer makes
// the first weft call of the process: the default runtime is constructed on
// a thread of its own there (the caller's stack is nearly full), while
// dlopen holds the loader's lock. It hung before (that thread waited for the
// lock in dladdr), in 10 of 10 runs.
TEST(DlopenTest, ALibraryLoadedOnASmallStackMakesTheFirstCall) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer's runtime needs more than the 64 KiB stack on this path";
  for (int run = 0; run < 3; ++run) {
    const auto r = run_host("WEFT_DLOPEN_DEFAULT_RUNTIME_PLUGIN", "small-stack");
    ASSERT_TRUE(r.exited_with(0)) << "run " << run << ": " << r.describe();
  }
}

// main() ends with pthread_exit() before weft is loaded, by another thread
// (so weft's key never had main's value); that thread ends: the process
// ends with it (status 0), weft seeing main's end at the end of a thread
// that used it. It never ended before. ThreadSanitizer's own thread counts
// as one of the program's: skipped there (docs/protocols/sleep.md).
TEST(DlopenTest, ALibraryLoadedAfterMainsPthreadExitLetsTheProcessEnd) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer's own thread counts as one of the program's";
  for (int run = 0; run < 3; ++run) {
    // glibc leaks main's thread_local destructor list on pthread_exit():
    // LeakSanitizer's exit check would report it (static_runtime_exit_test).
    const auto r = run_host("WEFT_DLOPEN_DEFAULT_RUNTIME_PLUGIN", "pthread-exit",
                            [] { ::setenv("ASAN_OPTIONS", "detect_leaks=0", 1); });
    ASSERT_TRUE(r.exited_with(0)) << "run " << run << ": " << r.describe();
  }
}

// A library whose own runtime is destroyed when it is unloaded: still fine.
TEST(DlopenTest, AnUnloadedLibraryWithItsOwnRuntimeEndsCleanly) {
  for (int run = 0; run < 5; ++run) {
    const auto r = run_host("WEFT_DLOPEN_OWN_RUNTIME_PLUGIN");
    ASSERT_TRUE(r.exited_with(0)) << "run " << run << ": " << r.describe();
  }
}

}  // namespace
