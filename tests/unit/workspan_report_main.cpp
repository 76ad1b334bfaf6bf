// SPDX-License-Identifier: MIT
// The program that tests/unit/workspan_report.py runs with WEFT_WORKSPAN set:
// calls weft from main (and from one other thread), outside any runtime, so
// that each call is measured and the report written at exit has one site per
// call site, with these calls:
//
//   parallelize of 1000 items of 20 us, its body
//     workspan_report::spin_item                    2 calls
//   parallel_reduce over 100000 ints                3 calls
//   join of two 100 us spins (each side a nested
//     parallelize, inside the runtime: no site)     5 calls
//   parallelize from another thread                 4 calls
//   parallelize that throws in 1 call of 7          6 calls (the throwing one is not recorded)
//   measure_workspan (nested in the measured call)  1 call
//   parallelize(8) from a static destructor, after
//     the report was first written at exit         7 calls
//
// Prints "workers N" (the default runtime's) and "inner WORK SPAN STRANDS"
// (what measure_workspan returned, in ns) on stdout. Exits 1 when a result is
// wrong. With the argument "fork" it then forks two children that exit with
// exit(): one makes 9 calls of parallelize(3) first, the other none (the
// static destructor's calls are its first). Each writes its own report (the
// path with "-PID" before the extension); prints "child CALLS PID" for each,
// or "child none" under a sanitizer (the fork tests say why:
// tests/death/fork_concurrent_test.cpp). With the argument "destroy" it does
// only destroy_during_calls() below; with "exit-while-calling" (and
// "-wide", 400 sites first) another thread exits the process while main
// keeps calling; with "dlclose LIB_A LIB_B" it calls LIB_A's
// workspan_plugin_work twice, unloads it, then calls LIB_B's once.
#include <dlfcn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include <weft/weft.hpp>

#include "sanitizers.hpp"

namespace {

void spin(std::chrono::nanoseconds d) {
  const auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
  }
}

// Constructed before main's first call registers the report's writer at
// exit, so destroyed after it ran.
struct late_caller {
  late_caller() = default;
  late_caller(const late_caller&) = delete;
  late_caller& operator=(const late_caller&) = delete;
  ~late_caller() {
    for (int r = 0; r < 7; ++r) weft::parallelize(8, [](int) {});
  }
};
late_caller g_late;

}  // namespace

// The body of the first loop: a type with a name outside any anonymous
// namespace, so that the loop's code (weft's template instantiated with it)
// is a global symbol, which the program exports (export_dynamic) and the
// report names.
namespace workspan_report {
struct spin_item {
  void operator()(int) const { spin(std::chrono::microseconds(20)); }
};
}  // namespace workspan_report

namespace {

// With the argument "destroy": runtimes destroyed while a call from another
// thread is in flight (the destructor waits for it), again and again, while
// two threads keep the cores busy so that the calling thread is often
// preempted just after its call ended. The measured call's record read the
// runtime after the call, when the destructor may have freed it (a
// use-after-free under AddressSanitizer, a race under ThreadSanitizer).
int destroy_during_calls() {
  std::atomic<bool> stop{false};
  std::vector<std::thread> busy;
  for (int h = 0; h < 2; ++h) {
    busy.emplace_back([&stop] {
      while (!stop.load(std::memory_order_relaxed)) {
      }
    });
  }
  for (int i = 0; i < 300; ++i) {
    auto* rt = new weft::runtime(
        weft::config{.workers = 1,
                     .spin_us = 0,
                     .caller = (i & 1) != 0 ? weft::caller_policy::hand_over : weft::caller_policy::take_part});
    std::atomic<bool> in{false};
    std::thread caller([&] { rt->run([&] { in.store(true); }); });
    while (!in.load()) std::this_thread::yield();  // the call is in flight
    delete rt;                                     // waits for it
    caller.join();
  }
  stop.store(true);
  for (std::thread& t : busy) t.join();
  return 0;
}

// One call site of its own per K (a body type of its own).
template <int K>
struct wide_item {
  void operator()(int) const {}
};

template <int... K>
void call_wide_sites(std::integer_sequence<int, K...>) {
  (weft::parallelize(1, wide_item<K>{}), ...);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  if (argc >= 2 && std::strcmp(argv[1], "destroy") == 0) return destroy_during_calls();
  if (argc >= 2 && std::strcmp(argv[1], "exit-while-calling") == 0) {
    // Another thread exits the process while this one keeps calling (one
    // site: the same item type), once a call has been recorded.
    const auto item = [](int) {};
    weft::parallelize(100, item);
    std::thread([] {
      std::this_thread::sleep_for(20ms);
      std::exit(0);
    }).detach();
    for (;;) weft::parallelize(100, item);
  }
  if (argc >= 4 && std::strcmp(argv[1], "dlclose") == 0) {
    // A library called twice and unloaded, then another called once (where
    // the first was, most runs): two sites, each named by its own library.
    for (int k = 0; k < 2; ++k) {
      void* lib = ::dlopen(argv[2 + k], RTLD_NOW | RTLD_LOCAL);
      if (lib == nullptr) {
        std::fprintf(stderr, "dlopen: %s\n", ::dlerror());
        return 1;
      }
      auto* work = reinterpret_cast<void (*)()>(::dlsym(lib, "workspan_plugin_work"));
      if (work == nullptr) return 1;
      for (int r = 0; r < 2 - k; ++r) work();
      if (k == 0) ::dlclose(lib);
    }
    return 0;
  }
  if (argc >= 2 && std::strcmp(argv[1], "exit-while-calling-wide") == 0) {
    // The same with a report of 400 sites (about 100 KB).
    call_wide_sites(std::make_integer_sequence<int, 400>{});
    std::thread([] {
      std::this_thread::sleep_for(20ms);
      std::exit(0);
    }).detach();
    for (;;) weft::parallelize(1, wide_item<0>{});
  }
  bool ok = true;

  for (int r = 0; r < 2; ++r) weft::parallelize(1000, workspan_report::spin_item{});

  for (int r = 0; r < 3; ++r) {
    const long sum = weft::parallel_reduce(
        0, 100000, 0L, [](int i) { return long{i}; }, std::plus<>{});
    ok = ok && sum == 100000L * 99999L / 2;
  }

  for (int r = 0; r < 5; ++r) {
    weft::join(
        [] {
          spin(100us);
          weft::parallelize(4, [](int) { spin(10us); });
        },
        [] {
          spin(100us);
          weft::parallelize(4, [](int) { spin(10us); });
        });
  }

  std::thread other([] {
    for (int r = 0; r < 4; ++r) weft::parallelize(100, [](int) { spin(5us); });
  });
  other.join();

  int thrown = 0;
  for (int r = 0; r < 7; ++r) {
    try {
      weft::parallelize(50, [r](int i) {
        if (r == 3 && i == 7) throw std::runtime_error("expected");
        spin(2us);
      });
    } catch (const std::runtime_error&) {
      ++thrown;
    }
  }
  ok = ok && thrown == 1;

  const weft::workspan inner = weft::measure_workspan([] { weft::parallelize(200, [](int) { spin(10us); }); });
  ok = ok && inner.span.count() > 0 && inner.work >= inner.span;

  std::printf("workers %d\n", weft::default_runtime().num_workers());
  std::printf("inner %lld %lld %llu\n", static_cast<long long>(inner.work.count()),
              static_cast<long long>(inner.span.count()), static_cast<unsigned long long>(inner.strands));
  if (!ok) std::fprintf(stderr, "workspan_report_program: a result is wrong\n");
  if (argc < 2 || std::strcmp(argv[1], "fork") != 0) return ok ? 0 : 1;
  if (weft_test::k_sanitized) {
    std::printf("child none\n");
  } else {
    // The first child makes 9 calls of its own; the second none before its
    // exit, so that the static destructor's calls are its first.
    for (const int calls : {9, 0}) {
      std::fflush(stdout);
      const pid_t child = fork();
      if (child == 0) {
        for (int r = 0; r < calls; ++r) weft::parallelize(3, [](int) {});
        std::exit(0);
      }
      int status = 0;
      if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "workspan_report_program: the forked child failed\n");
        ok = false;
      }
      std::printf("child %d %d\n", calls, static_cast<int>(child));
    }
  }
  return ok ? 0 : 1;
}
