// SPDX-License-Identifier: MIT
// Fiber stack overflow: the access hits the guard region below the fiber's
// stack, the runtime prints exactly one clear line naming the problem and the
// setting that fixes it, and aborts. Faults that are not a fiber stack
// overflow keep their usual outcome. Every case runs in a child process.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <weft/weft.hpp>

#include "child_process.hpp"
#include "sanitizers.hpp"
#include "worker_count.hpp"

namespace {

using weft_test::child_result;
using weft_test::run_in_child;

constexpr std::size_t k_small_stack = 64 * 1024;

// Never set: makes the recursion below endless without the compiler knowing.
volatile bool g_stop = false;

// Recursion without end, with a local array of Frame bytes per level that the
// compiler cannot drop or turn into a loop.
template <std::size_t Frame>
__attribute__((noinline)) int recurse_forever(int depth) {
  if (g_stop) return 0;
  volatile char frame[Frame];
  frame[0] = static_cast<char>(depth);
  frame[Frame - 1] = static_cast<char>(depth);
  const int below = recurse_forever<Frame>(depth + 1);
  return below + frame[0] + frame[Frame - 1];
}

// The child died of SIGABRT and its stderr holds exactly one overflow line,
// which names the setting to change.
void expect_overflow_report(const child_result& r) {
  EXPECT_TRUE(r.killed_by(SIGABRT)) << r.describe();
  const auto lines = r.lines_with("fiber stack overflow");
  ASSERT_EQ(lines.size(), 1u) << r.describe();
  EXPECT_NE(lines[0].find("stack_size"), std::string::npos) << r.describe();
}

class StackOverflowTest : public ::testing::TestWithParam<int> {
 protected:
  int workers() const { return GetParam(); }
};

TEST_P(StackOverflowTest, InRunAbortsWithOneLine) {
  const int w = workers();
  expect_overflow_report(run_in_child([w] {
    weft::runtime rt{weft::config{.workers = w, .stack_size = k_small_stack}};
    return rt.run([] { return recurse_forever<1024>(0); });
  }));
}

// A frame larger than a page jumps past the first guard page.
TEST_P(StackOverflowTest, BigFramesAbortWithOneLine) {
  const int w = workers();
  expect_overflow_report(run_in_child([w] {
    weft::runtime rt{weft::config{.workers = w, .stack_size = k_small_stack}};
    return rt.run([] { return recurse_forever<16 * 1024>(0); });
  }));
}

// One frame larger than the whole stack and its guard (1 MiB against 64 KiB
// + 64 KiB), as a buffer that code written for an 8 MiB thread stack keeps
// on the stack: its first access lay below the guard, in another stack or in
// no mapping at all (a plain SIGSEGV). weft's build carries stack probes
// (-fstack-clash-protection) to the code that uses it, which touch each page
// of the frame in turn, so the overflow hits the guard.
__attribute__((noinline)) int one_huge_frame(int seed) {
  volatile char frame[1 << 20];
  frame[0] = static_cast<char>(seed);
  frame[sizeof frame - 1] = static_cast<char>(seed);
  return frame[0] + frame[sizeof frame - 1];
}

// In a child: 64 loop items on a small stack of w workers, item `at`
// calling overflow(i); with `yielding`, every item yields (other stacks in
// use around the overflow, as in a real program).
template <class F>
child_result overflow_in_loop_item(int w, int at, bool yielding, F overflow) {
  return run_in_child([=] {
    weft::runtime rt{weft::config{.workers = w, .stack_size = k_small_stack}};
    std::atomic<int> sink{0};
    rt.run([&] {
      weft::parallelize(64, [&](int i) {
        if (i == at) sink.fetch_add(overflow(i));
        if (yielding) weft::yield();
      });
    });
    return sink.load() == 0 ? 3 : 4;
  });
}

TEST_P(StackOverflowTest, AFrameLargerThanStackAndGuardAbortsWithOneLine) {
  expect_overflow_report(overflow_in_loop_item(workers(), 40, true, [](int i) { return one_huge_frame(i); }));
}

TEST_P(StackOverflowTest, InALoopItemAbortsWithOneLine) {
  expect_overflow_report(overflow_in_loop_item(workers(), 63, false, [](int) { return recurse_forever<2048>(0); }));
}

// A parallel_reduce from outside every runtime whose values are larger than
// a fiber's stack and its guard (1 MiB). The call went on on the default
// runtime by passing identity again by value, and g++ makes room for a
// by-value argument with one move of the stack pointer that no stack probe
// checks: the copy wrote below the guard and the process died of a plain
// SIGSEGV (3 runs of 3). identity is passed by reference now, and the
// overflow comes where the values are made, in frames that are probed.
struct one_mib {
  char bytes[1 << 20];
};

TEST_P(StackOverflowTest, AReductionOfValuesLargerThanStackAndGuardAbortsWithOneLine) {
  const int w = workers();
  expect_overflow_report(run_in_child([w] {
    const std::string count = std::to_string(w);
    ::setenv("WEFT_NUM_WORKERS", count.c_str(), 1);  // the default runtime, made by the call below
    const auto identity = std::make_unique<one_mib>();
    const auto sum = std::make_unique<one_mib>(weft::parallel_reduce(
        0, 4, *identity,
        [](int i) {
          one_mib v{};
          v.bytes[0] = static_cast<char>(i);
          return v;
        },
        [](const one_mib& a, const one_mib& b) {
          one_mib v{};
          v.bytes[0] = static_cast<char>(a.bytes[0] + b.bytes[0]);
          return v;
        }));
    return static_cast<int>(sum->bytes[0]);
  }));
}

// A program that blocks every signal in main before its first weft call (to
// take them with sigwait on a thread of its own): worker threads inherited
// the mask, and a fault with SIGSEGV blocked killed the process without the
// report (a plain SIGSEGV, 4 runs of 4). Workers unblock SIGSEGV now. The
// call is handed over, so that a worker's thread runs it (a thread from
// outside that runs its call itself keeps its own mask).
TEST_P(StackOverflowTest, OnAWorkerOfAProgramThatBlocksEverySignalAbortsWithOneLine) {
  const int w = workers();
  expect_overflow_report(run_in_child([w] {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    weft::runtime rt{weft::config{.workers = w, .stack_size = k_small_stack, .caller = weft::caller_policy::hand_over}};
    return rt.run([] { return recurse_forever<512>(0); });
  }));
}

TEST_P(StackOverflowTest, InTheSecondHalfOfAJoinAbortsWithOneLine) {
  const int w = workers();
  expect_overflow_report(run_in_child([w] {
    weft::runtime rt{weft::config{.workers = w, .stack_size = k_small_stack}};
    auto [a, b] = rt.run([] { return weft::join([] { return 1; }, [] { return recurse_forever<512>(0); }); });
    return a + b;
  }));
}

TEST_P(StackOverflowTest, OnTheDefaultStackSizeAbortsWithOneLine) {
  const int w = workers();
  expect_overflow_report(run_in_child([w] {
    weft::runtime rt{weft::config{.workers = w}};
    return rt.run([] { return recurse_forever<4096>(0); });
  }));
}

// Several workers overflow at about the same time: still one line. Whether
// two reports race is a matter of timing, so the case runs several times.
TEST_P(StackOverflowTest, SimultaneousOverflowsPrintOneLine) {
  const int w = workers();
  for (int attempt = 0; attempt < 20; ++attempt) {
    SCOPED_TRACE(::testing::Message() << "attempt " << attempt);
    const auto r = run_in_child([w] {
      weft::runtime rt{weft::config{.workers = w, .stack_size = k_small_stack}};
      std::atomic<int> sink{0};
      std::atomic<int> arrived{0};
      // One root task per worker, each from a thread of its own: a worker
      // busy with one root task takes no other, so they run on w workers.
      std::vector<std::thread> callers;
      for (int t = 0; t < w; ++t) {
        callers.emplace_back([&] {
          rt.run([&] {
            // Start together (stop waiting after a moment, should two share
            // a worker after all).
            arrived.fetch_add(1);
            const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
            while (arrived.load() < w && std::chrono::steady_clock::now() < until) {
            }
            sink.fetch_add(recurse_forever<1024>(0));
          });
        });
      }
      for (auto& c : callers) c.join();
      return 3;
    });
    expect_overflow_report(r);
    if (::testing::Test::HasFailure()) break;
  }
}

// Its destructor calls into a runtime and overflows there.
struct overflow_at_thread_end {
  weft::runtime* m_rt;
  ~overflow_at_thread_end() {
    m_rt->run([] { return recurse_forever<1024>(0); });
  }
};

// A call from a thread_local's destructor of a thread that called weft
// before: the thread's own state for calls from outside (its alternate
// signal stack) is destroyed by then when it was made after that
// thread_local, and the overflow killed the process with a plain SIGSEGV.
TEST_P(StackOverflowTest, InACallFromAThreadLocalDestructorAbortsWithOneLine) {
  const int w = workers();
  expect_overflow_report(run_in_child([w] {
    weft::runtime rt{weft::config{.workers = w, .stack_size = k_small_stack}};
    std::thread caller([&rt] {
      // Made before the thread's first call, so destroyed after what that
      // call made.
      static thread_local overflow_at_thread_end at_end{&rt};
      rt.run([] {});
    });
    caller.join();
    return 3;
  }));
}

weft::runtime* g_exit_runtime = nullptr;

// The same for a call from an atexit handler of a process whose exiting
// thread called weft before: std::exit destroys that thread's thread_locals
// first.
TEST_P(StackOverflowTest, InACallFromAnAtexitHandlerAbortsWithOneLine) {
  const int w = workers();
  expect_overflow_report(run_in_child([w] {
    g_exit_runtime = new weft::runtime(weft::config{.workers = w, .stack_size = k_small_stack});
    g_exit_runtime->run([] {});
    std::atexit([] { g_exit_runtime->run([] { return recurse_forever<1024>(0); }); });
    std::exit(3);
    return 4;
  }));
}

INSTANTIATE_TEST_SUITE_P(Workers, StackOverflowTest, ::testing::ValuesIn(weft_test::k_worker_counts),
                         weft_test::worker_count_name);

// ---- faults that are not a fiber stack overflow ----

// A page nobody may touch: writing to it faults, with defined behaviour in C++.
volatile char* forbidden_page() {
  void* p =
      ::mmap(nullptr, static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return static_cast<volatile char*>(p);
}

// The child died of the fault as it would have without weft: SIGSEGV, or
// under a sanitizer, the sanitizer's report and exit. No overflow report.
void expect_plain_segfault(const child_result& r) {
  if (weft_test::k_sanitized && r.exited && r.exit_code != 0) {
    EXPECT_NE(r.err.find("SEGV"), std::string::npos) << r.describe();
  } else {
    EXPECT_TRUE(r.killed_by(SIGSEGV)) << r.describe();
  }
  EXPECT_TRUE(r.lines_with("stack overflow").empty()) << r.describe();
}

TEST(ForeignFaultTest, FaultInATaskStaysASegfault) {
  expect_plain_segfault(run_in_child([] {
    weft::runtime rt{weft::config{.workers = 2}};
    volatile char* page = forbidden_page();
    rt.run([page] { page[0] = 1; });
    return 3;
  }));
}

TEST(ForeignFaultTest, FaultOutsideTheRuntimeStaysASegfault) {
  expect_plain_segfault(run_in_child([] {
    weft::runtime rt{weft::config{.workers = 2}};
    rt.run([] {});
    forbidden_page()[0] = 1;
    return 3;
  }));
}

// A SIGSEGV handler installed before the runtime still gets the faults that
// are not fiber stack overflows.
TEST(ForeignFaultTest, EarlierHandlerStillGetsForeignFaults) {
  const auto r = run_in_child([] {
    struct sigaction sa {};
    sa.sa_handler = [](int) {
      static const char msg[] = "user handler\n";
      ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
      (void)ignored;
      ::_exit(42);
    };
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGSEGV, &sa, nullptr);
    weft::runtime rt{weft::config{.workers = 2}};
    volatile char* page = forbidden_page();
    rt.run([page] { page[0] = 1; });
    return 3;
  });
  EXPECT_TRUE(r.exited_with(42)) << r.describe();
  EXPECT_TRUE(r.lines_with("stack overflow").empty()) << r.describe();
}

}  // namespace
