// SPDX-License-Identifier: MIT
// A host that does not link weft: a short-lived thread loads a library that
// uses weft (the first weft call of the process, which starts the default
// runtime's workers), the thread ends, and the host unloads the library and
// goes on. The module that holds weft's code (libweft.so, or the library
// itself when weft is linked into it statically) must stay loaded: the
// workers and weft's SIGSEGV handler run its code until the process ends.
// Run by dlopen_test.cpp: dlclose_host PLUGIN. Exit codes: 0 when all held,
// 2-5 setup failures, 6 the module was unloaded.
//
// dlclose_host PLUGIN pthread-exit: main() ends with pthread_exit() at once;
// a thread loads the library after that (so weft never saw main) and ends.
// The process must end with that thread, with status 0.
//
// dlclose_host PLUGIN small-stack: the thread that loads the library has a
// stack of 64 KiB, on which the library's initializer makes the first weft
// call; the library's result must come back (it hung before: the default
// runtime, constructed on a thread of its own there, waited for the
// loader's lock that dlopen held). Exit codes: 0, 2-5 as above, 7 when the
// thread could not be made.
#include <dlfcn.h>
#include <pthread.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  if (argc > 2 && std::strcmp(argv[2], "pthread-exit") == 0) {
    const std::string path = argv[1];
    std::thread([path] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // main is gone by then
      void* plugin = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      auto* result = plugin != nullptr ? reinterpret_cast<long (*)()>(dlsym(plugin, "weft_plugin_result")) : nullptr;
      if (result == nullptr || result() != 332'833'500) std::_Exit(3);
    }).detach();
    pthread_exit(nullptr);
  }
  if (argc > 2 && std::strcmp(argv[2], "small-stack") == 0) {
    struct load {
      const char* path;
      int code = 3;
      std::string error;  // dlerror() is the loading thread's
    } l{argv[1], 3, {}};
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_t t;
    auto body = [](void* p) -> void* {
      auto* l = static_cast<load*>(p);
      void* plugin = dlopen(l->path, RTLD_NOW | RTLD_LOCAL);
      auto* result = plugin != nullptr ? reinterpret_cast<long (*)()>(dlsym(plugin, "weft_plugin_result")) : nullptr;
      if (result == nullptr) {
        const char* e = dlerror();
        l->error = e != nullptr ? e : "no weft_plugin_result";
      }
      l->code = result == nullptr ? 3 : result() == 332'833'500 ? 0 : 5;
      return nullptr;
    };
    if (pthread_create(&t, &attr, body, &l) != 0) return 7;
    pthread_join(t, nullptr);
    if (l.code == 3) std::fprintf(stderr, "dlopen: %s\n", l.error.c_str());
    return l.code;
  }
  void* plugin = nullptr;
  long value = 0;
  std::string module;
  std::thread([&] {
    // RTLD_NODELETE is not asked for here: the host unloads what it loaded.
    plugin = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (plugin == nullptr) return;
    auto* result = reinterpret_cast<long (*)()>(dlsym(plugin, "weft_plugin_result"));
    auto* where = reinterpret_cast<const char* (*)()>(dlsym(plugin, "weft_plugin_module"));
    if (result == nullptr || where == nullptr) return;
    value = result();
    module = where();
  }).join();  // the thread that loaded it is gone: nothing of its own pins the library
  if (plugin == nullptr) {
    std::fprintf(stderr, "dlopen: %s\n", dlerror());
    return 3;
  }
  if (module.empty()) return 4;
  if (value != 332'833'500) return 5;
  dlclose(plugin);
  void* still = dlopen(module.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (still == nullptr) {
    std::fprintf(stderr, "dlclose_host: %s was unloaded under weft's threads\n", module.c_str());
    return 6;
  }
  dlclose(still);
  // The workers, parked or spinning, run on meanwhile; before the module
  // was kept, most runs crashed here.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return 0;
}
