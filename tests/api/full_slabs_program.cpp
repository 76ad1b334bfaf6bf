// SPDX-License-Identifier: MIT
// Programs whose process exit LeakSanitizer checks with fibers left on stack
// slabs. Run by static_runtime_exit_test.cpp; no other runtime here, so that
// no other fiber shares the slabs.
//   (no argument) The default runtime (one worker) ends with stack slabs
//     full of pooled fibers: 65 items meet at a latch (65 fibers, 64 kept in
//     the pool), then main returns 7. The leak check at exit must find the
//     slab records.
//   held-by-fibers: 63 items of the default runtime (two workers) each hold
//     a heap block that only a local of theirs points to, and wait at a latch
//     that never opens; the last item then calls std::exit(7). The blocks
//     are reachable from the suspended fibers' stacks: no leak.
//   traced-default-runtime: calls of the default runtime (two workers) from
//     main, traced through WEFT_TRACE (set by the test), then main returns
//     7: the trace is written at exit (the default runtime is never
//     destroyed).
//   traced-default-runtime-exit-in-item: the same, but an item calls
//     std::exit(7) while the other items run.
//   traced-fork-children: the traced default runtime makes calls, then two
//     forked children make calls on theirs (a new default runtime each) and
//     exit; main returns 7 once both ended with 0.
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <weft/weft.hpp>

namespace {

int held_by_fibers() {
  ::setenv("WEFT_NUM_WORKERS", "2", 1);
  constexpr int n = 64;
  std::atomic<int> holding{0};
  weft::latch never(1);
  weft::parallelize(n, n, [&](int i) {
    if (i == n - 1) {
      while (holding.load() < n - 1) weft::yield();
      std::exit(7);
    }
    char* volatile block = new char[4096];  // on the fiber's stack, nowhere else
    std::memset(block, i, 4096);
    holding.fetch_add(1);
    never.wait();
    delete[] block;
  });
  return 1;  // not reached
}

int traced_default_runtime(bool exit_in_item) {
  ::setenv("WEFT_NUM_WORKERS", "2", 1);
  std::atomic<long> sum{0};
  for (int call = 0; call < 10; ++call) {
    weft::parallelize(100, [&](int i) {
      if (exit_in_item && call == 9 && i == 50) std::exit(7);
      sum.fetch_add(i);
    });
  }
  return sum.load() == 10 * 4950 ? 7 : 1;
}

int traced_fork_children() {
  if (traced_default_runtime(false) != 7) return 1;
  pid_t children[2];
  for (pid_t& child : children) {
    std::fflush(nullptr);
    child = fork();
    if (child < 0) return 2;
    if (child == 0) std::exit(traced_default_runtime(false) == 7 ? 0 : 1);
  }
  for (const pid_t child : children) {
    int status = 0;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 3;
  }
  return 7;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "held-by-fibers") == 0) return held_by_fibers();
  if (argc > 1 && std::strcmp(argv[1], "traced-default-runtime") == 0) return traced_default_runtime(false);
  if (argc > 1 && std::strcmp(argv[1], "traced-default-runtime-exit-in-item") == 0) return traced_default_runtime(true);
  if (argc > 1 && std::strcmp(argv[1], "traced-fork-children") == 0) return traced_fork_children();
  ::setenv("WEFT_NUM_WORKERS", "1", 1);
  weft::latch met(65);
  weft::parallelize(65, [&](int) { met.arrive_and_wait(); });
  return 7;
}
