// SPDX-License-Identifier: MIT
// std::exit with a runtime of static storage duration (or owned by a static):
// from inside one of its work items, from another thread while it is busy,
// from a default-runtime item: the process ends with the exit status, never a
// hang and never an abort (docs/reliability.md, "Process exit"). Each case
// runs tests/api/static_runtime_program in a child process; the leak check
// of full stack slabs at exit runs tests/api/full_slabs_program.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "child_process.hpp"
#include "sanitizers.hpp"
#include "scoped_env.hpp"

namespace {

weft_test::child_result run_program(const std::string& which,
                                    const std::string& variable = "WEFT_STATIC_RUNTIME_PROGRAM",
                                    std::chrono::seconds limit = std::chrono::seconds(20)) {
  const char* program = std::getenv(variable.c_str());
  if (program == nullptr) {
    weft_test::child_result r;
    r.err = variable + " is not set (run this test through meson test)";
    return r;
  }
  return weft_test::run_program_in_child(program, {which}, limit);
}

class StaticRuntimeExitTest : public ::testing::TestWithParam<const char*> {};

TEST_P(StaticRuntimeExitTest, EndsWithTheExitStatus) {
  const auto r = run_program(GetParam());
  EXPECT_TRUE(r.exited_with(7)) << r.describe();
  EXPECT_TRUE(r.lines_with("weft:").empty()) << r.describe();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, StaticRuntimeExitTest,
    ::testing::Values("idle", "exit-in-item", "exit-in-run", "exit-from-other-thread", "exit-from-default-runtime-item",
                      "exit-from-main-while-busy", "owned-exit-from-other-thread", "owned-exit-in-item",
                      "late-owner-exit-after-many-runtimes", "exit-from-a-thread-owning-a-locked-mutex",
                      "exit-from-a-plain-thread-with-a-locked-static-mutex",
                      "exit-from-a-plain-thread-while-static-objects-are-waited-on",
                      "exit-holding-a-thread-local-mutex-made-after-a-call",
                      "exit-from-main-holding-a-thread-local-mutex-made-after-a-call",
                      "exit-from-a-plain-thread-holding-a-thread-local-mutex",
                      "thread-ends-holding-a-thread-local-mutex",
                      "return-from-main-with-a-busy-runtime-owned-by-a-thread-local",
                      "exit-from-main-with-a-busy-runtime-owned-by-a-thread-local",
                      "exit-in-item-with-a-busy-runtime-owned-by-a-worker-thread-local",
                      "exit-from-a-thread-with-a-busy-runtime-owned-by-its-thread-local",
                      "exit-from-a-plain-thread-while-a-heap-latch-owned-by-a-static-is-waited-on"),
    [](const ::testing::TestParamInfo<const char*>& info) {
      std::string name;
      for (const char* p = info.param; *p != '\0'; ++p) {
        if (*p != '-') name += (p == info.param || p[-1] == '-') ? static_cast<char>(*p - 32) : *p;
      }
      return name;
    });

// main() ends with pthread_exit() while another thread keeps using the
// default runtime and a static one, then ends: the process ends with glibc's
// status for a last thread's end (0), its exit handlers run, and not before
// that thread is done. It never ended before (the workers, parked, kept it
// alive). The third case: main's own key destructor keeps calling weft after
// weft's key told of main's end (the process ended in the middle of it, in
// a first version that did not wait for main to be a zombie). The fourth:
// an io_uring ring's polling kernel thread, which /proc counts and the C
// library does not (skipped where no such ring can be made). ThreadSanitizer keeps a thread of its own in the process,
// which weft cannot tell from a thread of the program's: skipped there.
class PthreadExitTest : public ::testing::TestWithParam<const char*> {};

TEST_P(PthreadExitTest, TheProcessEndsWithItsLastThread) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer's own thread counts as one of the program's";
  // glibc does not run main's thread_local destructors when main ends with
  // pthread_exit(), nor free their list: LeakSanitizer reports its 32-byte
  // entries at exit (a program with a thread_local and no weft does too).
  const char* asan = std::getenv("ASAN_OPTIONS");
  const weft_test::scoped_env no_leak_check(
      "ASAN_OPTIONS",
      std::string(asan != nullptr ? asan : "") + (asan != nullptr && *asan != '\0' ? ":" : "") + "detect_leaks=0");
  const auto r = run_program(GetParam());
  if (r.exited_with(77)) GTEST_SKIP() << "no io_uring ring with a polling kernel thread here";
  EXPECT_TRUE(r.exited_with(0)) << r.describe();
  const auto done = r.err.find("last thread done");
  const auto handlers = r.err.find("exit handlers ran");
  EXPECT_NE(done, std::string::npos) << r.describe();
  EXPECT_NE(handlers, std::string::npos) << r.describe();
  EXPECT_LT(done, handlers) << r.describe();
  EXPECT_TRUE(r.lines_with("weft:").empty()) << r.describe();
}

INSTANTIATE_TEST_SUITE_P(Cases, PthreadExitTest,
                         ::testing::Values("pthread-exit-after-calls", "pthread-exit-while-items-run",
                                           "pthread-exit-with-a-key-destructor-that-calls",
                                           "pthread-exit-with-an-io-uring-poller"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string name;
                           for (const char* p = info.param + 13; *p != '\0'; ++p) {  // past "pthread-exit-"
                             if (*p != '-') name += (p[-1] == '-') ? static_cast<char>(*p - 32) : *p;
                           }
                           return name;
                         });

// More runtimes used from outside than get an exit hook of their own (4096),
// then a busy one owned by a static made late, whose destructor runs before
// every hook registered: it finds the exit on the exiting thread's stack
// (the limit the docs listed before that search). 4200 runtimes take about a
// second, seven under AddressSanitizer and minutes under ThreadSanitizer
// (its thread creation), where the case is skipped.
TEST(ExitHookBoundTest, ALateOwnerPastTheBoundEndsWithTheExitStatus) {
  if (weft_test::k_tsan) GTEST_SKIP() << "4200 runtimes' threads take minutes under ThreadSanitizer";
  const auto r = run_program("late-owner-exit-after-more-runtimes-than-exit-hooks", "WEFT_STATIC_RUNTIME_PROGRAM",
                             std::chrono::seconds(60));
  EXPECT_TRUE(r.exited_with(7)) << r.describe();
  EXPECT_TRUE(r.lines_with("weft:").empty()) << r.describe();
}

// A runtime owned by a thread_local, destroyed as its thread ends while
// another thread's run() is in flight: the destructor waits for that run, as
// it does anywhere but at the process's exit. The thread's end was taken for
// the process's exit, and the runtime abandoned with its threads.
TEST(ThreadEndTest, ARuntimeOwnedByAThreadLocalWaitsForItsWork) {
  const auto r = run_program("thread-local-owner-ends-with-its-thread");
  EXPECT_TRUE(r.exited_with(7)) << r.describe();
}

// A runtime destroyed after a run, with AddressSanitizer's detection of
// stack use after return on (each fiber's locals then live on a fake stack
// of its own): the switch away from the last dying fiber read its record
// from that fake stack, already freed, and crashed (reported as a fiber
// stack overflow). Without AddressSanitizer the option does nothing.
TEST(RuntimeDestructionTest, UnderStackUseAfterReturnDetection) {
  const char* old = std::getenv("ASAN_OPTIONS");
  const std::string saved = old != nullptr ? old : "";
  ::setenv("ASAN_OPTIONS",
           (saved.empty() ? std::string() : saved + ":").append("detect_stack_use_after_return=1").c_str(), 1);
  const auto r = run_program("destroyed-after-a-run");
  if (old != nullptr) {
    ::setenv("ASAN_OPTIONS", saved.c_str(), 1);
  } else {
    ::unsetenv("ASAN_OPTIONS");
  }
  EXPECT_TRUE(r.exited_with(7)) << r.describe();
  EXPECT_TRUE(r.lines_with("weft:").empty()) << r.describe();
}

// The trace file at path holds a whole JSON document of trace events (a
// failure names `which`); removes it.
void expect_whole_trace(const std::string& path, const char* which) {
  std::ifstream in(path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"traceEvents\""), std::string::npos) << which << ": no trace at " << path;
  const auto last = text.find_last_not_of(" \n");
  EXPECT_TRUE(last != std::string::npos && text[last] == '}') << which << ": the trace is cut short";
  std::remove(path.c_str());
}

// A runtime with a trace file, abandoned at std::exit (from one of its
// items, or from main while it is busy): its trace is written as far as it
// goes, a whole JSON document (the file was never written, and nothing said
// so); a child forked meanwhile that exits does not write it (the program
// exits 9 when the file appeared at the child's exit). The same for a
// runtime that no destructor ends: local to a function that std::exit
// leaves, or made with new and never deleted (no file was written before
// these were written at exit).
TEST(StaticRuntimeExitTraceTest, AnAbandonedRuntimeWritesItsTrace) {
  for (const char* which : {"traced-exit-in-item", "traced-exit-from-main-while-busy", "traced-fork-child-exits",
                            "traced-local-exit-in-item", "traced-never-destroyed"}) {
    const std::string path = ::testing::TempDir() + "weft-abandoned-trace-" + std::to_string(::getpid()) + ".json";
    std::remove(path.c_str());
    ::setenv("WEFT_TEST_TRACE_FILE", path.c_str(), 1);
    const auto r = run_program(which);
    ::unsetenv("WEFT_TEST_TRACE_FILE");
    EXPECT_TRUE(r.exited_with(7)) << which << ": " << r.describe();
    expect_whole_trace(path, which);
  }
}

// The default runtime, traced through WEFT_TRACE, is never destroyed: its
// trace is written at the process's exit, whether main returns or an item
// calls std::exit (no file was written before).
TEST(StaticRuntimeExitTraceTest, TheDefaultRuntimeWritesItsTraceAtExit) {
  for (const char* which : {"traced-default-runtime", "traced-default-runtime-exit-in-item"}) {
    const std::string path = ::testing::TempDir() + "weft-default-trace-" + std::to_string(::getpid()) + ".json";
    std::remove(path.c_str());
    ::setenv("WEFT_TRACE", path.c_str(), 1);
    const auto r = run_program(which, "WEFT_FULL_SLABS_PROGRAM");
    ::unsetenv("WEFT_TRACE");
    EXPECT_TRUE(r.exited_with(7)) << which << ": " << r.describe();
    expect_whole_trace(path, which);
  }
}

// Children forked by a traced process make default runtimes of their own,
// which write their traces at exit: each under a name of its own (its
// number, then the child's pid), not the number its parent's next runtime
// takes (both children wrote run-2.json before, over each other).
TEST(StaticRuntimeExitTraceTest, ForkedChildrenWriteTracesOfTheirOwn) {
  if (weft_test::k_tsan) GTEST_SKIP() << "ThreadSanitizer does not support threads after a multi-threaded fork";
  const std::string dir = ::testing::TempDir() + "weft-fork-traces-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  ::setenv("WEFT_TRACE", (dir + "/run.json").c_str(), 1);
  const auto r = run_program("traced-fork-children", "WEFT_FULL_SLABS_PROGRAM");
  ::unsetenv("WEFT_TRACE");
  EXPECT_TRUE(r.exited_with(7)) << r.describe();
  std::vector<std::string> children;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("run-2-", 0) == 0) children.push_back(entry.path().string());
  }
  EXPECT_EQ(children.size(), 2U) << "the children's traces in " << dir;
  EXPECT_TRUE(std::filesystem::exists(dir + "/run.json"));
  for (const auto& path : children) expect_whole_trace(path, "traced-fork-children");
  expect_whole_trace(dir + "/run.json", "traced-fork-children");
  std::filesystem::remove_all(dir);
}

// A process whose default runtime holds stack slabs full of pooled fibers at
// exit: under AddressSanitizer its leak check at exit found a full slab's
// record unreachable (only fibers on the slab's own stacks point to it, and
// those stacks are not scanned) in about half of the runs, and the process
// failed. Ten runs.
TEST(StaticRuntimeExitLeakTest, FullStackSlabsAtExitAreNoLeak) {
  for (int run = 0; run < 10; ++run) {
    const auto r = run_program("full-stack-slabs", "WEFT_FULL_SLABS_PROGRAM");
    EXPECT_TRUE(r.exited_with(7)) << "run " << run << ": " << r.describe();
    EXPECT_TRUE(r.lines_with("LeakSanitizer").empty()) << "run " << run << ": " << r.describe();
  }
}

// std::exit while items of the default runtime wait at a latch, each
// holding a heap block that only a local of its own points to: under
// AddressSanitizer the leak check at exit reported the blocks as leaked (it
// does not scan the mappings that fiber stacks live in), and the exit status
// became LeakSanitizer's (5 runs in 5 before). Five runs.
TEST(StaticRuntimeExitLeakTest, BlocksHeldBySuspendedFibersAtExitAreNoLeak) {
  for (int run = 0; run < 5; ++run) {
    const auto r = run_program("held-by-fibers", "WEFT_FULL_SLABS_PROGRAM");
    EXPECT_TRUE(r.exited_with(7)) << "run " << run << ": " << r.describe();
    EXPECT_TRUE(r.lines_with("LeakSanitizer").empty()) << "run " << run << ": " << r.describe();
  }
}

}  // namespace
