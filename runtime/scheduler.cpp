// SPDX-License-Identifier: MIT
#include "scheduler.hpp"

#include <limits>

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <unwind.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <system_error>

#include "assert.hpp"
#include "clock.hpp"
#include "counters.hpp"
#include "fiber.hpp"
#include "futex.hpp"
#include "join.hpp"
#include "report_file.hpp"
#include "stack.hpp"
#include "trace.hpp"
#include "worker.hpp"
#include "workspan.hpp"

namespace weft::rt {

namespace {

std::atomic<std::uint64_t> g_fork_generation{0};
std::once_flag g_atfork_once;
std::mutex g_default_creation;  // constant-initialised: usable before any static initialiser

// fork() waits for a default runtime being created, so that the child sees
// either none or a complete one (which it then replaces), never the lock held
// by a thread that does not exist in the child. The same for the slabs of
// fiber stacks (stack.cpp), locked last: a creation holds the first while it
// takes the slab lock (on_fork_prepare gives the order).
// Live runtimes, for pin_runtime(): guarded by g_live_lock. The list is
// constant-initialised and never destroyed (runtimes may be destroyed during
// static destruction); its buffer stays reachable from this object, so a leak
// checker sees it as live.
std::mutex g_live_lock;
#if defined(_GLIBCXX_DEBUG)
// libstdc++'s debug mode (a build with -D_GLIBCXX_DEBUG, for programs built
// so) checks its vector with a constructor that is not constexpr; the vector
// it wraps has one.
using live_entries = std::__cxx1998::vector<std::pair<const scheduler*, std::uint64_t>>;
#else
using live_entries = std::vector<std::pair<const scheduler*, std::uint64_t>>;
#endif
union live_list {
  live_entries entries;
  constexpr live_list() : entries() {}
  ~live_list() {}  // NOLINT(modernize-use-equals-default): never destroyed, on purpose
};
constinit live_list g_live;
// Held around weft's own registrations of exit handlers (register_at_exit).
std::mutex g_exit_registration;

// The locks in this order; nobody takes an earlier one while holding a later
// one (a trace is written holding no other but at exit, under g_live_lock:
// write_live_traces_at_exit; a measured call is recorded holding no other).
void on_fork_prepare() noexcept {
  g_default_creation.lock();
  g_live_lock.lock();
  lock_workspan_start_for_fork();
  g_exit_registration.lock();
  lock_trace_writes_for_fork();
  lock_workspan_report_for_fork();
  lock_stacks_for_fork();
}
void unlock_after_fork() noexcept {
  unlock_stacks_after_fork();
  unlock_workspan_report_after_fork();
  unlock_trace_writes_after_fork();
  g_exit_registration.unlock();
  unlock_workspan_start_after_fork();
  g_live_lock.unlock();
  g_default_creation.unlock();
}
void on_fork_parent() noexcept { unlock_after_fork(); }

void renote_thread() noexcept;

void forget_worker_threads() noexcept;

// In the child: no worker thread of any runtime exists any more, and the
// thread that forked is no longer a worker.
void on_fork_child() noexcept {
  g_fork_generation.fetch_add(1, std::memory_order_relaxed);
  set_thread_worker(nullptr);
  renote_thread();
  forget_worker_threads();
  unlock_after_fork();
}

// At load time, before any thread of this library can exist: a fork in the
// middle of the first runtime's creation is covered too.
[[maybe_unused]] const bool g_fork_handlers_registered = (register_fork_handlers(), true);

// ---- process exit ----

std::atomic<bool> g_exit_started{false};
// Runtimes constructed so far, and how many of them were constructed before
// the latest registration of on_process_exit (which covers them).
std::atomic<std::uint64_t> g_constructed{0};
std::atomic<std::uint64_t> g_covered{0};
std::atomic<int> g_registrations{0};
// Registrations for runtimes that are not of static storage duration; a bound,
// because programs may create runtimes in a loop.
constexpr int k_max_dynamic_registrations = 4096;  // about 128 KiB of glibc's exit records

void on_process_exit() noexcept { g_exit_started.store(true, std::memory_order_relaxed); }

// The exit handler that writes the traces of the runtimes alive at exit
// (the default runtime, one never destroyed, one that exit() leaves behind)
// is registered once, by the first traced runtime's constructor: before that
// runtime's construction completes, so that the destructors of the traced
// runtimes of static storage duration run before it (and write their own).
std::once_flag g_trace_exit_once;

// initial-exec, as t_worker: a load off the thread pointer, where the
// default model of a shared library calls __tls_get_addr on every read.
constinit thread_local bool t_ending __attribute__((tls_model("initial-exec"))) = false;
// note_thread() has touched t_end_marker on this thread (whose first use
// registers its destructor): later calls read only this flag.
constinit thread_local bool t_noted __attribute__((tls_model("initial-exec"))) = false;

void note_end_of_a_thread() noexcept;

// Its destructor runs when its thread ends, and, for the thread that calls
// std::exit (or returns from main), before any atexit handler or static
// destructor.
struct thread_end_marker {
  thread_end_marker() noexcept = default;
  thread_end_marker(const thread_end_marker&) = delete;
  thread_end_marker& operator=(const thread_end_marker&) = delete;
  ~thread_end_marker() {
    t_ending = true;
    note_end_of_a_thread();
  }
  void touch() noexcept {}
};
thread_local thread_end_marker t_end_marker;

// The next note_thread() touches the marker again: a worker's thread that
// forked (it registered none) is the child's main thread, and gets one at its
// first call from outside. Touching a registered marker registers nothing.
void renote_thread() noexcept { t_noted = false; }

void note_main_thread() noexcept;

// The thread that loads the library (the main thread, unless it is loaded
// with dlopen from another one).
[[maybe_unused]] const bool g_main_thread_noted = (note_thread(), true);

// Runtimes kept at exit; reachable from here, so leak checkers do not count
// them.
constexpr int k_max_abandoned = 64;
std::atomic<scheduler*> g_abandoned[k_max_abandoned];

// config::max_fibers x workers, saturated: a bound too large to reach.
std::int64_t fiber_bound_of(const config& cfg) noexcept {
  constexpr auto k_max = std::numeric_limits<std::int64_t>::max();
  const auto workers = static_cast<std::uint64_t>(cfg.workers > 0 ? cfg.workers : 1);
  if (cfg.max_fibers > static_cast<std::uint64_t>(k_max) / workers) return k_max;
  return static_cast<std::int64_t>(cfg.max_fibers * workers);
}

}  // namespace

bool pin_runtime(detail::runtime_state* s, std::uint64_t sequence) noexcept {
  scheduler& sched = scheduler::of(s);
  std::lock_guard<std::mutex> lock(g_live_lock);
  for (const auto& [live, seq] : g_live.entries) {
    if (live == &sched && seq == sequence) {
      sched.begin_root();  // under the lock: the destructor has not begun its wait
      return true;
    }
  }
  return false;
}

namespace {

// _Unwind_Backtrace callback: stops at the first frame inside the C
// library's exit(), or after 512 frames.
struct exit_search {
  int frames = 0;
  bool found = false;
};
_Unwind_Reason_Code look_for_exit(_Unwind_Context* context, void* data) {
  auto* search = static_cast<exit_search*>(data);
  const std::uintptr_t ip = _Unwind_GetIP(context);
  if (ip == 0 || ++search->frames > 512) return _URC_END_OF_STACK;
  // ip - 1: inside the call; exit() calls a function that never returns as
  // its last instruction, so its return address is the next symbol's.
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(ip - 1), &info) != 0 && info.dli_sname != nullptr &&
      std::strcmp(info.dli_sname, "exit") == 0) {
    search->found = true;
    return _URC_END_OF_STACK;
  }
  return _URC_NO_REASON;
}

// True when exit() is on the calling thread's stack (returning from main
// calls it too): what the flags cannot tell while the thread's thread_locals
// are destroyed before its end marker (destruction runs in the reverse order
// of first use, and the marker is used first: a thread_local of main used
// later, one that owns a runtime, is destroyed before it). Walks the stack
// (7-18 µs here, deeper stacks more): only where waiting would otherwise
// never end, or a misuse check has failed. False where the stack cannot be
// walked or exit() is not a dynamic symbol.
bool exit_on_stack() noexcept {
  exit_search search;
  _Unwind_Backtrace(&look_for_exit, &search);
  return search.found;
}

// dl_iterate_phdr callback: stops (1) when the address in *data lies in the
// calling thread's block of a module's thread_locals (PT_TLS).
int in_thread_locals(dl_phdr_info* info, std::size_t, void* data) noexcept {
  const auto p = *static_cast<const std::uintptr_t*>(data);
  const auto block = reinterpret_cast<std::uintptr_t>(info->dlpi_tls_data);  // null: none on this thread
  if (block == 0) return 0;
  for (ElfW(Half) i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& h = info->dlpi_phdr[i];
    if (h.p_type == PT_TLS && p >= block && p - block < h.p_memsz) return 1;
  }
  return 0;
}

}  // namespace

bool process_exiting() noexcept {
  if (g_exit_started.load(std::memory_order_relaxed)) return true;
  // The thread's thread_locals are being destroyed: at the process's exit
  // when it is the main thread (returning from main, or std::exit from it),
  // or when it is in the middle of a task (std::exit from an item); any
  // other thread is simply ending, and the process goes on.
  if (t_ending && (static_cast<pid_t>(::syscall(SYS_gettid)) == ::getpid() || current_worker() != nullptr)) return true;
  return exit_on_stack();
}

bool ending_for(const void* object) noexcept {
  if (t_ending || g_exit_started.load(std::memory_order_relaxed)) return true;
  Dl_info info;
  if (dladdr(object, &info) != 0) return true;  // in a module's image: static storage
  std::uintptr_t p = reinterpret_cast<std::uintptr_t>(object);
  return dl_iterate_phdr(&in_thread_locals, &p) != 0 || exit_on_stack();
}

// ---- a main thread that ends and leaves the process running ----
//
// pthread_exit() from main ends that thread only; glibc ends the process
// (exit(0)) when its last thread ends, and weft's workers, parked for ever,
// would never let that happen. main's end is seen by a pthread key's
// destructor: glibc runs those when a thread ends, not at exit(). From then
// on worker 0 of each runtime polls while parked: once every worker thread of
// the process has been parked, with no wake-up in between, at two polls in a
// row, and the process's only other thread is the ended main (a zombie that
// /proc still counts), weft does what the last thread would have done: it
// calls exit(0), from a thread of its own (exit handlers and static
// destructors then run on a plain thread, as glibc's would).

namespace {

constexpr std::uint64_t k_end_poll_ns = 10'000'000;

}  // namespace

constinit std::atomic<bool> g_main_ended{false};

namespace {

std::atomic<int> g_worker_threads{0};          // alive, of every runtime
std::atomic<int> g_parked_workers{0};          // of them, parked (the poller too)
std::atomic<std::uint64_t> g_worker_wakes{0};  // parks ended, but the poller's own
std::atomic<bool> g_process_ending{false};
pthread_key_t g_main_key;
std::atomic<bool> g_main_key_made{false};
constinit thread_local bool t_worker_thread __attribute__((tls_model("initial-exec"))) = false;
// The poller's view at its previous poll.
constinit thread_local bool t_alone_before = false;
constinit thread_local std::uint64_t t_wakes_before = 0;

void forget_worker_threads() noexcept {
  g_worker_threads.store(t_worker_thread ? 1 : 0, std::memory_order_relaxed);
  g_parked_workers.store(0, std::memory_order_relaxed);
  g_main_ended.store(false, std::memory_order_relaxed);
  g_process_ending.store(false, std::memory_order_relaxed);
}

void on_main_thread_end(void*) noexcept {
  g_main_ended.store(true, std::memory_order_seq_cst);
  // Wake each runtime's worker 0, so that it parks again polling (pairs with
  // prepare_park(): a worker 0 that parks after this sees the flag).
  std::lock_guard<std::mutex> lock(g_live_lock);
  for (const auto& [live, sequence] : g_live.entries) const_cast<scheduler*>(live)->sleepers().notify(0);
}

// The main thread's first note: a value for the key, whose destructor runs
// when main ends without exit(). A library loaded by another thread learns of
// main at main's first call.
void note_main_thread() noexcept {
  if (static_cast<pid_t>(::syscall(SYS_gettid)) != ::getpid()) return;
  if (!g_main_key_made.exchange(true, std::memory_order_relaxed)) {
    if (pthread_key_create(&g_main_key, &on_main_thread_end) != 0) return;
  }
  pthread_setspecific(g_main_key, &g_main_key);
}

// The state letter and the flags of a task's stat file ("pid (comm) S ppid
// pgrp session tty tpgid flags ..."); false when it cannot be read.
bool read_task_stat(const char* path, char& state, unsigned long& flags) noexcept {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char text[512];
  const ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  if (n <= 0) return false;
  text[n] = '\0';
  const char* p = std::strrchr(text, ')');  // comm may hold anything but the last ')'
  if (p == nullptr || p[1] != ' ' || p[2] == '\0') return false;
  state = p[2];
  p += 3;
  for (int field = 4; field < 9; ++field) {  // ppid .. tpgid
    p = std::strchr(p + 1, ' ');
    if (p == nullptr) return false;
  }
  flags = std::strtoul(p + 1, nullptr, 10);
  return true;
}

// The main thread has ended: a zombie (or dead) thread group leader.
bool main_is_gone() noexcept {
  char state = 0;
  unsigned long flags = 0;
  return read_task_stat("/proc/self/stat", state, flags) && (state == 'Z' || state == 'X');
}

// The threads of the process that the C library counts (/proc/self/task,
// without the kernel's io_uring workers, PF_IO_WORKER), and whether main is
// gone; -1 when unknown.
int program_threads(bool& main_gone) noexcept {
  constexpr unsigned long k_pf_io_worker = 0x10;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  const long pid = ::getpid();
  int count = 0;
  main_gone = false;
  while (const dirent* e = readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char path[300];  // d_name holds at most 255 bytes
    std::snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
    char state = 0;
    unsigned long flags = 0;
    if (!read_task_stat(path, state, flags)) continue;  // ended meanwhile
    if ((flags & k_pf_io_worker) != 0) continue;
    ++count;
    if (std::strtol(e->d_name, nullptr, 10) == pid) main_gone = state == 'Z' || state == 'X';
  }
  closedir(dir);
  return count;
}

void* exit_the_process(void*) { std::exit(0); }

// A thread that used weft from outside ends. Where main's end cannot be seen
// by the key (weft was loaded by another thread and main made no weft call),
// look whether main is gone (a zombie), which the key would have told.
void note_end_of_a_thread() noexcept {
  if (g_main_key_made.load(std::memory_order_relaxed) || g_main_ended.load(std::memory_order_relaxed)) return;
  if (main_is_gone()) on_main_thread_end(nullptr);
}

}  // namespace

void note_thread() noexcept {
  if (t_noted) return;
  t_noted = true;
  t_end_marker.touch();
  note_main_thread();
}

void begin_worker_thread() noexcept {
  t_noted = true;  // note_thread() registers nothing here
  t_worker_thread = true;
  g_worker_threads.fetch_add(1, std::memory_order_seq_cst);
}

void end_worker_thread() noexcept {
  t_ending = true;
  t_worker_thread = false;
  g_worker_threads.fetch_sub(1, std::memory_order_seq_cst);
}

void note_worker_parked() noexcept {
  if (t_worker_thread) g_parked_workers.fetch_add(1, std::memory_order_seq_cst);
}

void note_worker_woken(bool counted) noexcept {
  if (!t_worker_thread) return;
  g_parked_workers.fetch_sub(1, std::memory_order_seq_cst);
  if (counted) g_worker_wakes.fetch_add(1, std::memory_order_seq_cst);
}

void poll_for_process_end() noexcept {
  if (!t_worker_thread || g_process_ending.load(std::memory_order_relaxed)) return;
  const std::uint64_t wakes = g_worker_wakes.load(std::memory_order_seq_cst);
  const int workers = g_worker_threads.load(std::memory_order_seq_cst);
  bool main_gone = false;
  // main still runs after the key's destructor (other keys' destructors, in
  // the order of their keys, may make weft calls): gone means a zombie.
  const bool alone = g_parked_workers.load(std::memory_order_seq_cst) == workers &&
                     program_threads(main_gone) == workers + 1 && main_gone &&
                     g_worker_wakes.load(std::memory_order_seq_cst) == wakes;
  const bool end = alone && t_alone_before && t_wakes_before == wakes;
  t_alone_before = alone;
  t_wakes_before = wakes;
  if (!end || g_process_ending.exchange(true, std::memory_order_relaxed)) return;
  pthread_attr_t attr;
  pthread_t thread;
  bool started = false;
  if (pthread_attr_init(&attr) == 0) {
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    started = pthread_create(&thread, &attr, &exit_the_process, nullptr) == 0;
    pthread_attr_destroy(&attr);
  }
  if (!started) g_process_ending.store(false, std::memory_order_relaxed);  // the next poll tries again
}

std::uint64_t main_end_poll_ns() noexcept { return k_end_poll_ns; }

void fatal(const char* line) noexcept {
  std::size_t n = 0;
  while (line[n] != '\0') ++n;
  ssize_t ignored = write(STDERR_FILENO, line, n);
  ignored = write(STDERR_FILENO, "\n", 1);
  (void)ignored;
  std::abort();
}

void abandon(scheduler* s) noexcept {
  for (auto& slot : g_abandoned) {
    scheduler* expected = nullptr;
    if (slot.compare_exchange_strong(expected, s, std::memory_order_relaxed)) return;
  }
  // More than k_max_abandoned at once: simply never freed.
}

void scheduler::arm_exit_hook() noexcept {
  if (m_exit_hook_armed.exchange(true, std::memory_order_relaxed)) return;
  // The runtime object's construction has completed by now: a handler
  // registered now runs before its destructor. None is needed when one was
  // registered after this runtime was constructed. Runtime objects of static
  // storage duration (inside a loaded module's image) always get one (their
  // number is bounded); others while the bound on registrations allows.
  if (m_sequence <= g_covered.load(std::memory_order_acquire)) return;
  Dl_info info;
  const bool is_static = m_runtime != nullptr && dladdr(m_runtime, &info) != 0;
  if (!is_static && g_registrations.fetch_add(1, std::memory_order_relaxed) >= k_max_dynamic_registrations) return;
  const std::uint64_t covered = g_constructed.load(std::memory_order_acquire);
  if (!register_at_exit(&on_process_exit)) return;
  std::uint64_t old = g_covered.load(std::memory_order_relaxed);
  while (old < covered && !g_covered.compare_exchange_weak(old, covered, std::memory_order_acq_rel)) {
  }
}

namespace {

// At the process's exit: the trace of every traced runtime still alive, as
// far as it goes (their workers may still record: the rings are read as
// write_trace reads them during work). Under g_live_lock, so that none is
// freed meanwhile; a runtime being destroyed left the list first and writes
// its own.
void write_live_traces_at_exit() noexcept {
  std::lock_guard<std::mutex> lock(g_live_lock);
  for (const auto& [live, sequence] : g_live.entries) const_cast<scheduler*>(live)->write_trace_at_exit();
}

// Set by the first runtime's construction (relaxed: pinning twice is harmless).
std::atomic<bool> g_library_pinned{false};

}  // namespace

void pin_library() noexcept {
  if (g_library_pinned.exchange(true, std::memory_order_relaxed)) return;
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&pin_library), &info) == 0 || info.dli_fname == nullptr) return;
  // RTLD_NOLOAD: a reference to the module already loaded, none to a file
  // (the main program's own name finds nothing, and needs no pin). The handle
  // is kept on purpose: RTLD_NODELETE outlives it anyway.
  (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

void scheduler::write_trace_at_exit() noexcept {
  if (m_traces.empty() || forked_away()) return;
  if (m_trace_written_at_exit.exchange(true, std::memory_order_relaxed)) return;
  write_configured_trace();
}

void register_fork_handlers() noexcept {
  std::call_once(g_atfork_once, [] { pthread_atfork(&on_fork_prepare, &on_fork_parent, &on_fork_child); });
}

std::mutex& default_runtime_creation() noexcept { return g_default_creation; }

bool register_at_exit(void (*fn)()) noexcept {
  std::lock_guard<std::mutex> lock(g_exit_registration);
  return std::atexit(fn) == 0;
}

std::uint64_t fork_generation() noexcept { return g_fork_generation.load(std::memory_order_relaxed); }

bool scheduler::forked_away() const noexcept { return m_generation != fork_generation(); }

scheduler::scheduler(const config& cfg, bool trace_from_environment)
    : m_cfg(cfg),
      m_guards(stack_guards_from_environment()),
      m_fiber_bound(fiber_bound_of(cfg)),
      m_generation(fork_generation()),
      m_sequence(g_constructed.fetch_add(1, std::memory_order_acq_rel) + 1),
      m_sleep(2 * cfg.workers) {  // an entry per worker thread, and one per slot for a borrowing thread
  pin_library();
  install_overflow_handler();
  register_fork_handlers();
  const int n = m_cfg.workers;
  m_origin = ticks();
  if (k_instrumented && !m_cfg.trace_file.empty()) {
    for (int i = 0; i < n; ++i) m_traces.push_back(std::make_unique<trace_ring>(m_cfg.trace_events));
    std::call_once(g_trace_exit_once, [] { register_at_exit(&write_live_traces_at_exit); });
  }
  m_workers.reserve(static_cast<std::size_t>(n));
  m_threads.reserve(static_cast<std::size_t>(n));
  try {
    for (int i = 0; i < n; ++i) {
      fiber* first = create_fiber(*this);
      try {
        m_workers.push_back(std::make_unique<worker>(*this, i, first));
        if (!m_traces.empty()) m_workers.back()->m_trace = m_traces[static_cast<std::size_t>(i)].get();
      } catch (...) {
        destroy_fiber(first);
        throw;
      }
    }
    for (int i = 0; i < n; ++i) {
      worker* w = m_workers[static_cast<std::size_t>(i)].get();
      m_exits.m_pending.fetch_add(1, std::memory_order_relaxed);  // before the thread can leave
      try {
        m_threads.emplace_back([w] { w->thread_main(); });
      } catch (const std::system_error& e) {
        m_exits.m_pending.fetch_sub(1, std::memory_order_relaxed);  // it never started
        // The same error, saying whose threads and which limits.
        throw std::system_error(
            e.code(), "weft::runtime: could not start worker thread " + std::to_string(i + 1) + " of " +
                          std::to_string(n) +
                          " (limits on threads: RLIMIT_NPROC, kernel.threads-max, the cgroup's pids.max, memory)");
      } catch (...) {
        m_exits.m_pending.fetch_sub(1, std::memory_order_relaxed);  // it never started
        throw;
      }
    }
  } catch (...) {
    stop_and_join();
    throw;
  }
  // Every thread started (see worker_started()).
  for (std::uint32_t started; (started = m_started.load(std::memory_order_acquire)) < static_cast<std::uint32_t>(n);) {
    futex_wait(m_started, started);
  }
  try {
    std::lock_guard<std::mutex> lock(g_live_lock);
    g_live.entries.emplace_back(this, m_sequence);
  } catch (...) {
    stop_and_join();
    throw;
  }
  // main ended while this runtime was not yet listed: its worker 0 may have
  // parked before the notice and missed it (the notice takes the list's lock
  // after setting the flag: either it saw this runtime or this sees the flag).
  if (main_thread_ended()) m_sleep.notify(0);
  // Started: nothing below can fail, so a runtime that threw took no number.
  if (trace_from_environment) {
    m_trace_number = take_trace_number();
    if (m_generation != 0) m_trace_pid = static_cast<std::uint64_t>(getpid());  // its parent's count was copied
  }
}

scheduler::~scheduler() {
  if (forked_away()) {
    // A child process: the worker threads and their fibers exist only in the
    // parent. Nothing here can be joined or safely freed; leave it.
    new std::vector<std::thread>(std::move(m_threads));
    new std::vector<std::unique_ptr<worker>>(std::move(m_workers));
    return;
  }
  {
    // From here on nobody can pin this runtime; those who did are roots.
    std::lock_guard<std::mutex> lock(g_live_lock);
    auto& e = g_live.entries;
    e.erase(std::remove(e.begin(), e.end(), std::pair<const scheduler*, std::uint64_t>{this, m_sequence}), e.end());
  }
  // Wait for the work still in flight: calls from other threads, fibers
  // suspended in any work. On a worker of another runtime this suspends the
  // calling fiber: that work may need that worker.
  wait_for_children(m_roots, 0, join_kind::open);
  // A call waits for a slot only while it is counted in m_roots.
  WEFT_ASSERT(m_slot_waiters.load(std::memory_order_seq_cst) == 0,
              "~scheduler: no call from outside waits for a slot once none is in flight");
  stop_and_join_keeping_traces();
}

void scheduler::stop_and_join_keeping_traces() noexcept {
  stop_and_join();
  // Once per runtime at the process's exit: the exit handler may have
  // written it already, while the runtime was alive.
  if (!m_trace_written_at_exit.load(std::memory_order_relaxed)) write_configured_trace();
}

void scheduler::write_configured_trace() const noexcept {
  if (m_traces.empty()) return;
  try {
    std::string path = m_cfg.trace_file;
    if (!written_in_place(path)) {  // a device, a pipe, /dev/stdout: every runtime writes it
      if (m_trace_number != 0) path = numbered_trace_path(path, m_trace_number);
      if (m_trace_pid != 0) path = trace_path_with(path, m_trace_pid);
    }
    write_trace(path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());  // a destructor cannot throw
  }
}

void scheduler::write_trace(const std::string& path) const {
  std::vector<std::vector<trace_ring::event>> events;
  events.reserve(m_traces.size());
  for (const auto& t : m_traces) events.push_back(t->snapshot());
  write_chrome_trace(path, events, m_origin);
}

void scheduler::end_root() noexcept { complete_open(m_roots); }

void scheduler::stop_and_join() noexcept {
  m_stopping.store(true, std::memory_order_seq_cst);
  m_sleep.notify_all();
  // Every started worker leaves its loop and says so as its last access
  // (suspending the calling fiber meanwhile, on a worker of another runtime);
  // joining the threads after that blocks only while they end.
  detail::wait(m_exits, 0);
  for (std::thread& t : m_threads) t.join();
  m_threads.clear();
  m_workers.clear();  // frees the first fibers of workers whose thread never ran
}

void scheduler::inject(detail::job* t) noexcept {
  // The injector may be a thread of another runtime, or no worker at all: once
  // t is visible it may finish this runtime's last root, whose caller may then
  // destroy the runtime while the wake-up below still reads it. Counted as a
  // root, the injection keeps the destructor waiting (it waits for m_roots to
  // reach 0) until this call is done with the runtime: end_root() is its last
  // access.
  begin_root();
  m_injection.push(t);
  m_sleep.notify_one();
  end_root();
}

}  // namespace weft::rt
