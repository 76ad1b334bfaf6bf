// SPDX-License-Identifier: MIT
// weft::rt: a runtime's scheduler: its workers, its injection queue, its
// life cycle. It holds no scheduling policy of its own.
// Owns: its workers, injection queue, sleep set, stack slabs, roots count
// and config. Created and destroyed by runtime.cpp; any thread injects; every
// other part reads its configuration and counts.
#pragma once

#include <atomic>
#include <climits>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "futex.hpp"
#include "injection.hpp"
#include "loop.hpp"
#include "platform.hpp"
#include "sleep.hpp"
#include "stack.hpp"
#include "trace.hpp"
#include "weft/config.hpp"
#include "weft/detail/entry.hpp"

namespace weft::detail {
// The opaque handle public headers know; the scheduler is the only kind.
struct runtime_state {};
}  // namespace weft::detail

namespace weft {
class runtime;
}

namespace weft::rt {

class worker;

class scheduler : public detail::runtime_state {
 public:
  // cfg must be resolved (workers > 0) and valid; trace_from_environment:
  // cfg.trace_file came from WEFT_TRACE, and is numbered (take_trace_number)
  // once nothing can fail any more. Starts the worker threads; throws
  // std::system_error (thread creation) or std::bad_alloc (stacks), after
  // undoing everything it did.
  explicit scheduler(const config& cfg, bool trace_from_environment = false);
  // Waits until no root task is in flight, stops the workers, joins them.
  // Called on a worker of another runtime, it suspends the calling fiber
  // instead of blocking that worker's thread.
  ~scheduler();
  scheduler(const scheduler&) = delete;
  scheduler& operator=(const scheduler&) = delete;

  static scheduler& of(detail::runtime_state* s) noexcept { return *static_cast<scheduler*>(s); }
  static const scheduler& of(const detail::runtime_state* s) noexcept { return *static_cast<const scheduler*>(s); }

  const config& cfg() const noexcept { return m_cfg; }
  // How this runtime's fiber stacks are guarded (WEFT_STACK_GUARDS).
  stack_guards guards() const noexcept { return m_guards; }
  int num_workers() const noexcept { return m_cfg.workers; }
  worker& worker_at(int i) noexcept { return *m_workers[static_cast<std::size_t>(i)]; }

  // Any thread: hands t to some worker of this runtime and wakes one if needed.
  void inject(detail::job* t) noexcept;
  injection_queue& injection() noexcept { return m_injection; }
  sleep_set& sleepers() noexcept { return m_sleep; }

  // True once the destructor decided to stop (no root task in flight).
  bool stopping() const noexcept { return m_stopping.load(std::memory_order_acquire); }

  // Work the destructor waits for enters / leaves: a root task from outside,
  // an injection, a suspended fiber (worker.cpp). Any thread. end_root() is
  // the caller's last access to the scheduler. m_roots is an open frame: its
  // children may come while the destructor waits, and after.
  void begin_root() noexcept { m_roots.m_pending.fetch_add(1, std::memory_order_relaxed); }
  void end_root() noexcept;
  // True while such work is in flight.
  bool busy() const noexcept { return m_roots.m_pending.load(std::memory_order_acquire) != 0; }
  // How many: exact while the destructor is not waiting (for checks).
  std::int64_t roots_in_flight() const noexcept { return m_roots.m_pending.load(std::memory_order_acquire); }
  // True once the destructor stopped the workers and no work is left: a
  // worker may leave.
  bool done() const noexcept { return stopping() && !busy(); }

  // A worker thread leaves for good (the end of its thread function): its
  // last access to the scheduler.
  void worker_exited() noexcept { detail::complete(m_exits); }
  // A worker thread began its body: the thread library's (and a sanitizer's)
  // start-up of that thread is over. The constructor returns only once all
  // did, so that a fork() after it never copies a thread in the middle of
  // that start-up (an allocator lock held there stays held in the child).
  void worker_started() noexcept {
    m_started.fetch_add(1, std::memory_order_release);  // pairs with the constructor's acquire
    futex_wake(m_started, INT_MAX);
  }

  // ---- threads from outside taking part (runtime/caller.cpp) ----

  // True while a thread from outside waits for a worker to park so that it
  // can borrow its slot: searching workers park at once. Any thread.
  bool lend_wanted() const noexcept { return m_lend_wanted.load(std::memory_order_relaxed) != 0; }
  std::atomic<int> m_lend_wanted{0};  // threads waiting for a slot
  // Threads from outside blocked until a borrowed slot is given back, and
  // the word they block on (bumped at each give-back while some wait); see
  // docs/protocols/callers.md.
  std::atomic<int> m_slot_waiters{0};
  std::atomic<std::uint32_t> m_slot_returns{0};
  // A waiter was woken and has not looked for a slot since: the next
  // return wakes nobody (the woken one will look). Cleared by a waiter
  // before each look (docs/protocols/callers.md, "Slot waiters").
  std::atomic<bool> m_slot_wake_pending{false};
  // A slot may be borrowed now (a worker's parked bit is set, by its park or
  // by a give-back, followed by a full fence): wakes a thread from outside
  // waiting for one, if any and if none woken earlier is still on its way.
  // seq_cst loads: pair with the waiter's increment and its clearing of
  // m_slot_wake_pending (Dekker). Any thread.
  void notify_slot_waiters() noexcept {
    if (m_slot_waiters.load(std::memory_order_seq_cst) > 0) {
      m_slot_returns.fetch_add(1, std::memory_order_release);
      if (!m_slot_wake_pending.exchange(true, std::memory_order_seq_cst)) futex_wake(m_slot_returns, 1);
    }
  }

  // The first root task from outside: arms the process-exit detection for a
  // runtime with static storage duration (see process_exiting()). Any thread.
  void note_outside_call() noexcept {
    if (WEFT_UNLIKELY(!m_exit_hook_armed.load(std::memory_order_relaxed))) arm_exit_hook();
  }

  // Unique in the process: the order of construction.
  std::uint64_t sequence() const noexcept { return m_sequence; }

  // The public object that owns this scheduler (set by its constructor).
  runtime* m_runtime = nullptr;

  // The small loops its workers ran (loop.cpp, run_small).
  alignas(k_false_sharing) loop_hints m_loop_hints;

  // Fibers alive in this runtime (running, suspended or pooled; each worker
  // pools at most max_fibers / 2, so idle ones never hold the bound).
  std::atomic<std::int64_t> m_live_fibers{0};

  // True when the fibers alive reach config::max_fibers per worker: workers
  // then stop stealing (the source of join suspensions), and park when they
  // find nothing else, until some fibers finish (the one that brings the
  // count under the bound wakes a sleeper: destroy_fiber()).
  // Relaxed: a count, read by thieves before each steal round and by a
  // worker about to park after prepare_park()'s fence (its partner: the
  // decrement in destroy_fiber(), then notify_one()).
  bool over_fiber_bound() const noexcept { return m_live_fibers.load(std::memory_order_relaxed) >= m_fiber_bound; }
  // config::max_fibers x workers, saturated.
  std::int64_t fiber_bound() const noexcept { return m_fiber_bound; }

  // True in a child process forked after this runtime started: its worker
  // threads do not exist there.
  bool forked_away() const noexcept;

  bool tracing() const noexcept { return !m_traces.empty(); }
  // Writes every worker's trace so far (see trace.hpp). Throws.
  void write_trace(const std::string& path) const;
  // Writes the trace to config::trace_file, if tracing; says on stderr why
  // it could not. Also for a runtime abandoned at exit, whose workers may
  // still record (the rings are read as write_trace reads them during work).
  void write_configured_trace() const noexcept;
  // The same at the process's exit, once: from the destructor of a runtime
  // that exit() leaves behind, or from the exit handler that writes the
  // traces of the runtimes still alive (write_live_traces_at_exit). Not in a
  // forked child: a runtime it inherited is its parent's to write.
  void write_trace_at_exit() noexcept;

  // runtime::stats() and reset_stats(): the workers' counters as last
  // returned (empty after a reset), below which no later snapshot goes
  // (runtime.cpp). Under m_stats_lock.
  std::mutex m_stats_lock;
  std::vector<weft::worker_stats> m_stats_floor;

 private:
  void stop_and_join() noexcept;
  void stop_and_join_keeping_traces() noexcept;

  config m_cfg;
  stack_guards m_guards;
  std::int64_t m_fiber_bound;
  std::uint64_t m_generation;                         // fork generation of the process that started it
  std::uint64_t m_sequence;                           // construction order in the process (exit detection)
  std::vector<std::unique_ptr<trace_ring>> m_traces;  // one per worker, or none
  std::uint64_t m_origin;                             // ticks at start, time 0 of the trace
  std::uint64_t m_trace_number = 0;                   // WEFT_TRACE: the file's number (numbered_trace_path), else 0
  std::uint64_t m_trace_pid = 0;                      // WEFT_TRACE in a forked child: its pid, in the name; else 0
  std::vector<std::unique_ptr<worker>> m_workers;
  std::vector<std::thread> m_threads;
  injection_queue m_injection;
  sleep_set m_sleep;
  alignas(k_false_sharing) std::atomic<bool> m_stopping{false};
  // Root tasks and injections in flight (counted children of the destructor's
  // join) and worker threads not yet gone (the same, after the stop).
  alignas(k_false_sharing) detail::join_frame m_roots;
  detail::join_frame m_exits;
  std::atomic<std::uint32_t> m_started{0};  // worker threads that began their body (worker_started)
  std::atomic<bool> m_exit_hook_armed{false};
  std::atomic<bool> m_trace_written_at_exit{false};  // write_trace_at_exit() ran

  void arm_exit_hook() noexcept;
};

// True once the process has begun to exit (std::exit, or main returned) as far
// as the caller can tell. The process-wide part is set by an atexit handler
// that runtimes register at their first root task from outside (so it runs
// before their destructors): every runtime object of static storage
// duration, and the first 4096 others (one registration covers every runtime
// constructed before it). The per-thread part: glibc's exit() destroys the
// calling thread's thread_locals first, so once they are being destroyed on
// the main thread, or on a thread in the middle of a task (std::exit from an
// item), the process exits; on any other thread that thread just ends
// (a runtime a thread_local owns, destroyed then, waits for its work).
// Known to the thread's end only on threads that called into a runtime from
// outside and the main thread, once the thread's end marker is destroyed
// (thread_locals first used after it are destroyed before it), and on the
// workers once their body returned (they register no marker: see
// begin_worker_thread()). Last, exit() on the calling thread's stack (a walk of the
// stack, about 10 µs) covers those and the exits no flag knows of. For a
// runtime's destructor that would otherwise wait for ever (a busy one).
bool process_exiting() noexcept;

// True when the misuse checks of the destructor of the synchronisation object
// at `object` are skipped: the process has begun to exit or the calling
// thread's thread_locals are being destroyed (the flags of
// process_exiting(), whether the thread ends or exits the process: an object
// a thread_local owns may still be in use when a thread that calls std::exit
// destroys it), or the object's storage ends only with the process or with
// the calling thread (the image of a loaded module: an object of static
// storage duration, destroyed at exit or when its module is unloaded; or the
// calling thread's block of a module's thread_locals), or exit() is on the
// calling thread's stack (a heap object that a static or a thread_local owns,
// destroyed by an exit no flag knows of). Slow (dladdr, dl_iterate_phdr, a
// walk of the stack): for a check that has failed.
bool ending_for(const void* object) noexcept;

// If s is alive and is the runtime constructed as number `sequence` (see
// scheduler::sequence()), counts a root in it (the caller ends it with
// end_root()) and returns true; false when that runtime has been destroyed.
// Any thread.
bool pin_runtime(detail::runtime_state* s, std::uint64_t sequence) noexcept;

// Records that the calling thread uses weft from outside (for
// process_exiting()). Cheap after the first call on a thread.
void note_thread() noexcept;

// The same for a worker's own thread, at its start (begin) and at the end of
// its body (end): it registers no thread_local destructor. glibc registers
// one under the dynamic loader's lock, which dlopen holds while a library's
// initializer runs; a runtime constructed there waits for its workers to
// start, and a call made there for workers to run it: a worker waiting for
// that lock hung both. A worker's thread ends only where its body returns
// (end_worker_thread marks it then, before its thread_locals are destroyed);
// an exit() from one of its tasks is found on the stack (process_exiting()).
void begin_worker_thread() noexcept;
void end_worker_thread() noexcept;

// main() ended with pthread_exit() and left the process running (seen by a
// pthread key's destructor, which glibc runs when a thread ends, not at
// exit()). Any thread.
// (Inline: read at every return of a borrowed slot 0.)
extern std::atomic<bool> g_main_ended;
inline bool main_thread_ended() noexcept { return g_main_ended.load(std::memory_order_seq_cst); }
// Around a worker thread's park (no-ops on a thread from outside that parks
// on a borrowed slot): counted parks, and whether its end is a wake-up that
// matters to the poll below (not the poller's own timeout).
void note_worker_parked() noexcept;
void note_worker_woken(bool counted) noexcept;
// Worker 0 of each runtime, while main_thread_ended(), parks for at most
// main_end_poll_ns() and calls this first: when every worker thread of the
// process was parked at two polls in a row with no wake-up in between, and
// the only other thread is the ended main, it starts a thread that calls
// exit(0), as glibc does when a process's last thread ends
// (docs/protocols/sleep.md, "A main thread that ends").
void poll_for_process_end() noexcept;
std::uint64_t main_end_poll_ns() noexcept;

// Prints `line` (and a newline) on stderr and aborts: misuse the runtime
// cannot recover from, reported in one line. Async-signal-safe.
[[noreturn]] void fatal(const char* line) noexcept;

// Keeps a runtime that cannot be destroyed now (the process exits while it
// is busy, or one of its own workers destroys it during exit): its threads
// stay until the process ends.
void abandon(scheduler* s) noexcept;

// Counts fork()s: incremented in the child by an atfork handler.
std::uint64_t fork_generation() noexcept;

// Keeps the module that holds weft's code (libweft.so, or a library that
// links weft statically) loaded until the process ends, once: dlclose no
// longer unloads it. Called by the first runtime's construction, before its
// worker threads start and the SIGSEGV handler is installed: both run that
// code for as long as the process lives (the default runtime is never
// destroyed), and a host that did not link weft itself could otherwise
// unload it under them. Any thread; may be called while dlopen runs a
// library's initializers (the loader's lock is recursive).
void pin_library() noexcept;

// Registers the atfork handlers once (also done at load time). Any thread.
void register_fork_handlers() noexcept;

// Held while the default runtime is created; fork() waits for it (atfork
// prepare) and the child gets it unlocked.
std::mutex& default_runtime_creation() noexcept;

// std::atexit(fn), which fork() waits for: the C library's lock of its exit
// handlers, held during a registration, is not reset in a forked child, where
// exit() (and any later registration) would then wait for it forever. Every
// registration of weft's goes through here. False when it failed.
bool register_at_exit(void (*fn)()) noexcept;

// Validates cfg and fills in the defaults (workers from WEFT_NUM_WORKERS or
// the CPUs the calling thread may use (available_cpus()), trace_file from
// WEFT_TRACE, as it is). Throws
// std::invalid_argument naming the bad field or variable.
config resolve_config(config cfg);

// WEFT_TRACE numbering: the n-th runtime of the process that takes its trace
// file from WEFT_TRACE writes the path itself for n = 1, else the path with
// "-n" before its extension (run.json, run-2.json, ...), so that runtimes
// never write one file. A runtime takes its number (from 1) once it can no
// longer fail to start: one that threw takes none. One made in a forked
// child (which copied its parent's count) adds "-PID" after the number
// (run-2-4242.json): trace_path_with(path, pid).
std::uint64_t take_trace_number() noexcept;
std::string numbered_trace_path(const std::string& path, std::uint64_t n);
// path with "-n" before its extension.
std::string trace_path_with(const std::string& path, std::uint64_t n);

// What rules path out as the file of a trace or report (empty, a NUL byte,
// a last component that names a directory: "dir/", "dir/.", ".."), as the
// end of an error message; empty when it names a file.
std::string file_path_problem(const std::string& path);

// The config of the default runtime: config{} plus WEFT_STACK_SIZE. Throws
// std::invalid_argument for a bad value.
config default_config();

// WEFT_STACK_GUARDS: unset or "auto": stack_guards::automatic; "mprotect":
// stack_guards::mprotect. Throws std::invalid_argument naming the variable for
// anything else, the empty string included. Calling thread (reads the environment).
stack_guards stack_guards_from_environment();

}  // namespace weft::rt
