// SPDX-License-Identifier: MIT
// Facts about the calling process, read from the kernel: CPU time used,
// threads alive, memory mappings, and whether the kernel installs guard
// markers. Linux only.
#pragma once

#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <fstream>
#include <string>
#include <thread>

namespace weft_test {

// CPU time used by all threads of the process so far.
inline std::chrono::nanoseconds process_cpu_time() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

// Threads of the process (the "Threads:" line of /proc/self/status), or -1.
inline int thread_count() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
}

// The thread count once it has settled at `expected`, or the last count seen
// after `timeout_ms`. A thread that pthread_join() has returned for is still
// counted by the kernel for a moment (until it is reaped), so a count read
// right after joining can be one too high; a thread really left behind keeps
// it high for good.
inline int settled_thread_count(int expected, int timeout_ms = 2000) {
  int n = thread_count();
  for (int waited = 0; n != expected && waited < timeout_ms; waited += 5) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    n = thread_count();
  }
  return n;
}

// The same for a check that nothing was left behind since `before` was
// counted: the count once it is at most `before`. The count taken before can
// itself include a thread joined just earlier and not yet reaped, which then
// leaves; a thread left behind keeps the count above `before` for good.
inline int settled_thread_count_at_most(int before, int timeout_ms = 2000) {
  int n = thread_count();
  for (int waited = 0; n > before && waited < timeout_ms; waited += 5) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    n = thread_count();
  }
  return n;
}

// The calling thread's kernel id, for thread_sleeps().
inline pid_t this_thread_id() { return static_cast<pid_t>(syscall(SYS_gettid)); }

// Whether thread `tid` of this process sleeps in the kernel (state S or D in
// /proc/self/task/<tid>/stat): a thread that has entered a blocking wait.
inline bool thread_sleeps(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string stat;
  std::getline(in, stat);
  const std::size_t end = stat.rfind(')');  // the name, in parentheses, may hold spaces
  if (end == std::string::npos || end + 2 >= stat.size()) return false;
  return stat[end + 2] == 'S' || stat[end + 2] == 'D';
}

// Waits until thread `tid` sleeps in the kernel (thread_sleeps()); false
// when it did not within `timeout_ms`.
inline bool wait_until_thread_sleeps(pid_t tid, int timeout_ms = 10000) {
  for (int waited = 0; waited < timeout_ms; waited += 1) {
    if (thread_sleeps(tid)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

// Memory mappings of the process (lines of /proc/self/maps): every fiber
// stack is one or two of them, so a leaked stack shows up here.
inline int mapping_count() {
  std::ifstream in("/proc/self/maps");
  std::string line;
  int n = 0;
  while (std::getline(in, line)) ++n;
  return n;
}

// Whether this kernel installs guard markers (MADV_GUARD_INSTALL, Linux
// 6.13+), asked without the runtime: fiber stacks then share mappings.
inline bool kernel_has_guard_markers() {
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  void* p = mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  const bool ok = madvise(p, page, 102 /* MADV_GUARD_INSTALL */) == 0;
  munmap(p, 2 * page);
  return ok;
}

}  // namespace weft_test
