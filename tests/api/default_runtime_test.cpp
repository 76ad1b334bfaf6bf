// SPDX-License-Identifier: MIT
// The default runtime: built on first use from the environment (a bad
// WEFT_NUM_WORKERS or WEFT_STACK_SIZE is a clear error, and a later call tries
// again), and a process that used it exits cleanly.
//
// The default runtime exists once per process and reads the environment only
// when it is created, so every test here runs in a child process of its own.
// The parent never creates it: a forked child would inherit a runtime whose
// workers do not exist in the child.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <weft/algorithm.hpp>
#include <weft/coroutine.hpp>
#include <weft/weft.hpp>

#include "child_process.hpp"
#include "foreign_coroutine.hpp"
#include "sanitizers.hpp"

namespace {

using weft_test::run_in_child;

// Calls f and returns the message of the std::invalid_argument it threw, or
// "<none>" / "<other>".
template <class F>
std::string invalid_argument_of(F f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  } catch (...) {
    return "<other>";
  }
  return "<none>";
}

int parallel_count(int n) {
  std::atomic<int> calls{0};
  weft::parallelize(n, [&](int) { calls.fetch_add(1); });
  return calls.load();
}

TEST(DefaultRuntimeEnvTest, NumWorkersVariableSetsTheWorkerCount) {
  const auto r = run_in_child([] {
    ::setenv("WEFT_NUM_WORKERS", "3", 1);
    WEFT_CHILD_CHECK(weft::default_runtime().num_workers() == 3, 1);
    WEFT_CHILD_CHECK(parallel_count(1000) == 1000, 2);
    return 0;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

TEST(DefaultRuntimeEnvTest, BadNumWorkersIsAnErrorAndALaterCallTriesAgain) {
  for (const char* bad : {"abc", "-1", "0", "", "1x", "99999999999"}) {
    SCOPED_TRACE(::testing::Message() << "WEFT_NUM_WORKERS=\"" << bad << "\"");
    const auto r = run_in_child([bad] {
      ::setenv("WEFT_NUM_WORKERS", bad, 1);
      const std::string e1 = invalid_argument_of([] { weft::default_runtime(); });
      std::fprintf(stderr, "default_runtime(): %s\n", e1.c_str());
      WEFT_CHILD_CHECK(e1.find("WEFT_NUM_WORKERS") != std::string::npos, 1);
      // A call from outside needs the default runtime: the same error.
      const std::string e2 = invalid_argument_of([] { parallel_count(10); });
      std::fprintf(stderr, "parallelize(): %s\n", e2.c_str());
      WEFT_CHILD_CHECK(e2.find("WEFT_NUM_WORKERS") != std::string::npos, 2);
      const std::string e3 = invalid_argument_of([] { weft::join([] {}, [] {}); });
      WEFT_CHILD_CHECK(e3.find("WEFT_NUM_WORKERS") != std::string::npos, 3);
      // Fixed: the next call creates it.
      ::setenv("WEFT_NUM_WORKERS", "2", 1);
      WEFT_CHILD_CHECK(weft::default_runtime().num_workers() == 2, 4);
      WEFT_CHILD_CHECK(parallel_count(1000) == 1000, 5);
      return 0;
    });
    EXPECT_TRUE(r.exited_with(0)) << r.describe();
  }
}

TEST(DefaultRuntimeEnvTest, BadStackSizeIsAnErrorAndALaterCallTriesAgain) {
  for (const char* bad : {"abc", "", "1x", "-1", "100", "2G", "99999999999999999999"}) {
    SCOPED_TRACE(::testing::Message() << "WEFT_STACK_SIZE=\"" << bad << "\"");
    const auto r = run_in_child([bad] {
      ::setenv("WEFT_NUM_WORKERS", "2", 1);
      ::setenv("WEFT_STACK_SIZE", bad, 1);
      const std::string e = invalid_argument_of([] { weft::default_runtime(); });
      std::fprintf(stderr, "default_runtime(): %s\n", e.c_str());
      WEFT_CHILD_CHECK(e.find("WEFT_STACK_SIZE") != std::string::npos, 1);
      ::setenv("WEFT_STACK_SIZE", "1M", 1);
      WEFT_CHILD_CHECK(parallel_count(1000) == 1000, 2);
      return 0;
    });
    EXPECT_TRUE(r.exited_with(0)) << r.describe();
  }
}

// ---- process exit ----

TEST(DefaultRuntimeExitTest, ExitAfterUseIsClean) {
  const auto r = run_in_child([] {
    WEFT_CHILD_CHECK(parallel_count(10'000) == 10'000, 1);
    std::exit(0);  // runs static destructors, as returning from main does
    return 2;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

std::atomic<long> g_background_calls{0};

// Another thread keeps calling into the default runtime while the process
// exits: no hang, no crash in static destruction.
TEST(DefaultRuntimeExitTest, ExitWhileAnotherThreadIsCallingIsClean) {
  const auto r = run_in_child([] {
    std::thread([] {
      for (;;) weft::parallelize(1000, [](int) { g_background_calls.fetch_add(1, std::memory_order_relaxed); });
    }).detach();
    while (g_background_calls.load() < 10'000) std::this_thread::yield();
    std::exit(0);
    return 2;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

TEST(DefaultRuntimeExitTest, ExitFromInsideATaskIsClean) {
  const auto r = run_in_child([] {
    weft::parallelize(4, [](int i) {
      if (i == 2) std::exit(0);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    });
    return 2;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

// A runtime with static storage duration is destroyed during exit: its
// destructor joins its workers without hanging.
TEST(DefaultRuntimeExitTest, StaticRuntimeDestroyedAtExit) {
  const auto r = run_in_child([] {
    static weft::runtime rt{weft::config{.workers = 3}};
    std::atomic<int> calls{0};
    rt.run([&] { weft::parallelize(1000, [&](int) { calls.fetch_add(1); }); });
    WEFT_CHILD_CHECK(calls.load() == 1000, 1);
    std::exit(0);
    return 2;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

}  // namespace

// ---- created on a nearly full stack ----
//
// A plain thread whose own stack is nearly full goes on in the default
// runtime: a coroutine resumed there by an awaitable of another library, an
// algorithm entered there. When that is the first use of the default
// runtime, its construction (more stack than such a thread has left) runs
// on a stack of its own, on the same thread. Before, it ran there and
// overflowed the stack.

namespace {

constexpr std::size_t k_small_stack = 64 * 1024;
// 8 KiB less than the reserve below which weft counts this thread's stack as
// nearly full (a quarter of it; half where AddressSanitizer runs).
constexpr std::size_t k_left = (weft_test::k_asan ? k_small_stack / 2 : k_small_stack / 4) - 8 * 1024;

// Recurses until less than `left` bytes of the thread's stack are left
// below its frame (the frame's address, not a local's: AddressSanitizer may
// keep locals on a stack of its own), then calls f there.
template <class F>
[[gnu::noinline]] void with_stack_left(std::size_t left, std::uintptr_t low, F& f) {
  volatile char pad[256];
  pad[0] = 1;
  if (reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0)) - low > left + sizeof pad) {
    with_stack_left(left, low, f);
  } else {
    f();
  }
  pad[1] = pad[0];  // no tail call: each level keeps its frame
}

// Runs f on a new thread of `size` bytes of stack, with `left` bytes of it
// left. 0; 21 when the thread was cancelled; 20 when it cannot be made. The
// stack is mapped here (under a guard page), so that the thread calls
// nothing of the C library's before f: pthread_getattr_np, for one, would
// have the dynamic linker bind a symbol that weft's first call would
// otherwise bind on the nearly full stack.
template <class F>
int on_a_nearly_full_thread(std::size_t size, std::size_t left, F f) {
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  void* map = mmap(nullptr, page + size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (map == MAP_FAILED) return 20;
  char* const low = static_cast<char*>(map) + page;
  struct arg_t {
    F* m_f;
    std::size_t m_left;
    std::uintptr_t m_low;
  } arg{&f, left, reinterpret_cast<std::uintptr_t>(low)};
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  int rc = mprotect(map, page, PROT_NONE) == 0 ? pthread_attr_setstack(&attr, low, size) : -1;
  pthread_t t;
  auto body = [](void* p) -> void* {
    auto& a = *static_cast<arg_t*>(p);
    with_stack_left(a.m_left, a.m_low, *a.m_f);
    return nullptr;
  };
  if (rc == 0) rc = pthread_create(&t, &attr, body, &arg);
  pthread_attr_destroy(&attr);
  void* result = nullptr;
  if (rc == 0) pthread_join(t, &result);
  munmap(map, page + size);
  if (rc != 0) return 20;
  return result == nullptr ? 0 : result == PTHREAD_CANCELED ? 21 : 20;
}

// On a thread of k_small_stack bytes with k_left of them left.
template <class F>
int on_a_small_nearly_full_thread(F f) {
  return on_a_nearly_full_thread(k_small_stack, k_left, std::move(f));
}

// An awaitable of another library: hands the awaiting coroutine out, for a
// thread of its choice to resume.
std::coroutine_handle<> g_handed_out;
struct hand_out {
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) noexcept { g_handed_out = h; }
  void await_resume() const noexcept {}
};

weft::task<int> seven() { co_return 7; }
weft::task<void> handed_out_then_awaits(std::atomic<int>& out) {
  co_await hand_out{};
  out.store(co_await seven());  // a transfer: the stack is nearly full here
}
weft_test::eager drive(weft::task<void> t) { co_await std::move(t); }

}  // namespace

TEST(DefaultRuntimeOnAFullStackTest, ACoroutineResumedThereGoesOnInTheDefaultRuntime) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer kills a child that starts threads after a fork";
  const auto r = run_in_child([] {
    std::atomic<int> out{0};
    drive(handed_out_then_awaits(out));  // suspends at hand_out, on this thread
    if (!g_handed_out) return 10;
    if (const int rc = on_a_small_nearly_full_thread([] { g_handed_out.resume(); }); rc != 0) return rc;
    for (int i = 0; i < 2000 && out.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return out.load() == 7 ? 0 : 11;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

TEST(DefaultRuntimeOnAFullStackTest, AnAlgorithmEnteredThereRunsInTheDefaultRuntime) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer kills a child that starts threads after a fork";
  const auto r = run_in_child([] {
    std::vector<int> v(1000);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int>(v.size() - i);
    if (const int rc = on_a_small_nearly_full_thread([&v] { weft::sort(v.begin(), v.end()); }); rc != 0) return rc;
    return std::is_sorted(v.begin(), v.end()) && v.front() == 1 ? 0 : 11;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

// A thread cancelled (deferred) before it makes the process's first call on
// a nearly full stack: the default runtime is constructed in full, and the
// thread is cancelled at its next cancellation point, after. Before, the
// wait for the constructing thread was one: the cancelled thread unwound
// out of it with that thread still running, and the process was terminated.
TEST(DefaultRuntimeOnAFullStackTest, ACancelledThreadIsCancelledAfterTheConstruction) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer kills a child that starts threads after a fork";
  if (weft_test::k_asan) {
    GTEST_SKIP() << "AddressSanitizer leaves the frames a cancellation unwinds poisoned, and the thread's "
                    "thread_local destructors then write there: a false stack-buffer-overflow, seen without weft";
  }
  const auto r = run_in_child([] {
    const int rc = on_a_small_nearly_full_thread([] {
      pthread_cancel(pthread_self());  // acted on at the next cancellation point
      (void)weft::default_runtime();
      pthread_testcancel();
    });
    if (rc != 21) return rc == 0 ? 10 : rc;
    return parallel_count(1000) == 1000 ? 0 : 11;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

// The smallest thread a program can make (PTHREAD_STACK_MIN, 16 KiB) makes the
// process's first call with 3 KiB of its stack left: the default runtime is
// constructed on a stack of its own, on that thread. Before, with a thread
// for the construction, the library was first pinned (dlopen) right there,
// and the thread overflowed its stack.
TEST(DefaultRuntimeOnAFullStackTest, TheSmallestThreadMakesTheFirstCallWithAFewKiBLeft) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer kills a child that starts threads after a fork";
  if (weft_test::k_asan) GTEST_SKIP() << "AddressSanitizer's frames need more than a 16 KiB thread has";
  const auto r = run_in_child([] {
    std::vector<int> v(1000);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int>(v.size() - i);
    const int rc = on_a_nearly_full_thread(PTHREAD_STACK_MIN, 3 * 1024, [&v] { weft::sort(v.begin(), v.end()); });
    if (rc != 0) return rc;
    if (!std::is_sorted(v.begin(), v.end()) || v.front() != 1) return 11;
    return parallel_count(1000) == 1000 ? 0 : 12;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}

// The stack to construct the default runtime on cannot be mapped (RLIMIT_AS
// reached): the caller on a nearly full stack gets a std::system_error that
// names weft::default_runtime and the limit, and a later call from a stack
// with room constructs the runtime.
TEST(DefaultRuntimeOnAFullStackTest, AConstructionStackThatCannotBeMappedIsAClearError) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer kills a child that starts threads after a fork";
  if (weft_test::k_asan) GTEST_SKIP() << "AddressSanitizer maps terabytes of shadow: RLIMIT_AS cannot be set";
  const auto r = run_in_child([] {
    rlimit before{};
    if (getrlimit(RLIMIT_AS, &before) != 0) return 31;
    std::string message = "<none>";
    const int rc = on_a_small_nearly_full_thread([&message, &before] {
      // Before the limit: this thread's stack bounds are read (weft maps a
      // stack for that too) and its malloc arena is made (which maps).
      (void)weft::detail::thread_stack_low();
      rlimit tight = before;
      tight.rlim_cur = 1;  // below what the process has mapped: no mapping can grow it
      if (setrlimit(RLIMIT_AS, &tight) != 0) return;
      try {
        (void)weft::default_runtime();
      } catch (const std::system_error& e) {
        message = e.what();
      } catch (...) {
        message = "<other>";
      }
      setrlimit(RLIMIT_AS, &before);
    });
    if (rc != 0) return rc;
    std::fprintf(stderr, "message: %s\n", message.c_str());
    if (message.find("weft::default_runtime: cannot map a stack") == std::string::npos) return 12;
    if (message.find("RLIMIT_AS") == std::string::npos) return 13;
    return parallel_count(1000) == 1000 ? 0 : 11;
  });
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
}
