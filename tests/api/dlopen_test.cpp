// SPDX-License-Identifier: MIT
// weft used by a library's static initializers while dlopen loads it (and
// holds the dynamic loader's lock): a runtime constructed there, and the
// first call of the process, which creates the default runtime. Each case
// in a child process of its own (the default runtime is made once per
// process); a hang is a timeout of the child.
#include <gtest/gtest.h>

#include <dlfcn.h>

#include <cstdlib>
#include <string>

#include <weft/weft.hpp>

#include "child_process.hpp"

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

}  // namespace
