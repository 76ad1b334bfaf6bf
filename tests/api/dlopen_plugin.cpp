// SPDX-License-Identifier: MIT
// A library that uses weft in its own static initializers, loaded with
// dlopen by dlopen_test.cpp: dlopen holds the dynamic loader's lock while
// they run. WEFT_PLUGIN_OWN_RUNTIME: a namespace-scope runtime of its own,
// used at once by the next initializer; else the first weft call of the
// process, which creates the default runtime. dlclose_host.cpp loads it too.
#include <dlfcn.h>

#include <weft/weft.hpp>

#include <atomic>

namespace {

long sum_of_squares(int n) {
  std::atomic<long> sum{0};
  weft::parallelize(n, [&](int i) { sum.fetch_add(static_cast<long>(i) * i, std::memory_order_relaxed); });
  return sum.load();
}

#ifdef WEFT_PLUGIN_OWN_RUNTIME
weft::runtime g_runtime{weft::config{.workers = 2}};
const long g_result = g_runtime.run([] { return sum_of_squares(1000); });
#else
const long g_result = sum_of_squares(1000);
#endif

}  // namespace

extern "C" __attribute__((visibility("default"))) long weft_plugin_result() { return g_result; }

// The path of the module that holds weft's code: libweft.so, or this library
// when weft is linked into it statically.
extern "C" __attribute__((visibility("default"))) const char* weft_plugin_module() {
  Dl_info info{};
  int (*weft_function)() = &weft::num_workers;
  return dladdr(reinterpret_cast<void*>(weft_function), &info) != 0 ? info.dli_fname : "";
}
