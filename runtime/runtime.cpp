// SPDX-License-Identifier: MIT
// The public runtime class, the default runtime, and the calling fiber.
#include "weft/runtime.hpp"

#include <pthread.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iomanip>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include "context.hpp"
#include "runtime_access.hpp"
#include "scheduler.hpp"
#include "stack.hpp"
#include "suspend.hpp"
#include "weft/parallelize.hpp"
#include "weft/this_fiber.hpp"
#include "worker.hpp"

namespace weft::rt {

scheduler& default_scheduler();

}  // namespace weft::rt

namespace weft {

namespace {

rt::scheduler* new_scheduler(const config& cfg) {
  const config resolved = rt::resolve_config(cfg);
  // Empty before, a path after: the path came from WEFT_TRACE.
  return new rt::scheduler(resolved, cfg.trace_file.empty() && !resolved.trace_file.empty());
}

}  // namespace

runtime::runtime(config cfg) : m_state(new_scheduler(cfg)) { rt::scheduler::of(m_state).m_runtime = this; }

runtime::~runtime() {
  rt::scheduler& s = rt::scheduler::of(m_state);
  const rt::worker* w = rt::current_worker();
  const bool own_worker = w != nullptr && &w->m_sched == &s;
  if ((own_worker || s.busy()) && rt::process_exiting()) {
    // std::exit from inside this runtime, or from anywhere while it is busy:
    // waiting could never end. Its threads end with the process; its trace
    // is written as far as it goes (it was lost).
    s.write_trace_at_exit();
    rt::abandon(&s);
    return;
  }
  if (own_worker)
    rt::fatal("weft: a runtime was destroyed by one of its own workers; that would wait for itself forever");
  delete &s;
}

int runtime::num_workers() const noexcept { return rt::scheduler::of(m_state).num_workers(); }

namespace {

// a, none of whose counters is below floor's.
weft::worker_stats at_least(weft::worker_stats a, const weft::worker_stats& floor) noexcept {
  for (auto field :
       {&weft::worker_stats::tasks_run, &weft::worker_stats::spawns, &weft::worker_stats::steals,
        &weft::worker_stats::failed_steals, &weft::worker_stats::suspensions, &weft::worker_stats::fiber_switches,
        &weft::worker_stats::fibers_created, &weft::worker_stats::parks, &weft::worker_stats::injected,
        &weft::worker_stats::lent, &weft::worker_stats::steal_attempts, &weft::worker_stats::fibers_reused,
        &weft::worker_stats::wakeups, &weft::worker_stats::busy_ns, &weft::worker_stats::search_ns,
        &weft::worker_stats::parked_ns}) {
    a.*field = std::max(a.*field, floor.*field);
  }
  return a;
}

}  // namespace

// Each worker's counters, none below what an earlier call returned (since
// the last reset): a time read during work may otherwise come out a little
// smaller than before (the snapshot's clock read just after the worker's,
// as an interval ended; processors' clocks a little apart).
weft::stats runtime::stats() const {
  rt::scheduler& s = rt::scheduler::of(m_state);
  weft::stats out;
  out.workers.reserve(static_cast<std::size_t>(s.num_workers()));
  // In a child created by fork() (the workers are its parent's) another
  // thread may have held the lock at the fork: the counters, which nobody
  // moves there any more, are read as they are.
  const bool forked = s.forked_away();
  std::unique_lock<std::mutex> lock(s.m_stats_lock, std::defer_lock);
  if (!forked) lock.lock();
  const bool floored = !forked && s.m_stats_floor.size() == static_cast<std::size_t>(s.num_workers());
  for (int i = 0; i < s.num_workers(); ++i) {
    const weft::worker_stats w = s.worker_at(i).stats();
    out.workers.push_back(floored ? at_least(w, s.m_stats_floor[static_cast<std::size_t>(i)]) : w);
    out.total += out.workers.back();
  }
  if (!forked) s.m_stats_floor = out.workers;
  return out;
}

void runtime::write_trace(const std::string& path) const {
  const rt::scheduler& s = rt::scheduler::of(m_state);
  if (!s.tracing()) {
    throw std::logic_error(rt::k_instrumented
                               ? "weft::runtime::write_trace: tracing is off (set config::trace_file or WEFT_TRACE)"
                               : "weft::runtime::write_trace: this build of weft has no tracing "
                                 "(-Dinstrumentation=false)");
  }
  if (const std::string problem = rt::file_path_problem(path); !problem.empty())
    throw std::invalid_argument("weft::runtime::write_trace: path must name a file, got " + problem);
  s.write_trace(path);
}

bool runtime::tracing() const noexcept { return rt::scheduler::of(m_state).tracing(); }

void runtime::reset_stats() noexcept {
  rt::scheduler& s = rt::scheduler::of(m_state);
  const bool forked = s.forked_away();  // as in stats()
  std::unique_lock<std::mutex> lock(s.m_stats_lock, std::defer_lock);
  if (!forked) lock.lock();
  for (int i = 0; i < s.num_workers(); ++i) s.worker_at(i).reset_stats();
  if (!forked) s.m_stats_floor.clear();
}

namespace {

// The default runtime, new. Its construction takes more stack (8 KiB, 19 KiB
// under AddressSanitizer, with its configuration's reads; more where it pins
// the library with dlopen) than a thread that finds its own stack nearly
// full may have left, and that is where weft first needs it when a coroutine
// resumed on a plain thread, or an algorithm entered there, goes on in it:
// then it is constructed on a stack of its own, on the same thread (which
// may hold the dynamic loader's lock, in a library's static initializer
// inside dlopen, and takes it again there). Before the switch only mmap,
// mprotect and pthread_setcancelstate run on the nearly full stack (bound at
// load, libweft is linked with -z now): nothing allocates, nothing of
// libstdc++'s that the dynamic linker would bind there. Cancellation is
// disabled from before the mapping to after the construction: a
// cancellation could not unwind off that stack. An error of the
// construction is rethrown on the caller's stack, which needs the room of an
// exception's unwinding (a few KiB).
runtime* new_default_runtime() {
  constexpr std::size_t k_room = 64 * 1024;
  if (!rt::own_stack_left_below(k_room)) return new runtime(rt::default_config());
  constexpr std::size_t k_construction_stack = 256 * 1024;
  struct construction {
    runtime* m_runtime = nullptr;
    std::exception_ptr m_error;
  } made;
  int cancel_state = 0;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
  rt::stack_memory stack = rt::map_lone_stack(k_construction_stack);
  const int map_error = errno;
  if (stack.m_bottom != nullptr) {
    rt::call_on_stack(
        stack.m_bottom, stack.m_size,
        [](void* p) noexcept {
          auto& c = *static_cast<construction*>(p);
          try {
            c.m_runtime = new runtime(rt::default_config());
          } catch (...) {
            c.m_error = std::current_exception();
          }
        },
        &made);
    rt::unmap_lone_stack(stack);
  }
  pthread_setcancelstate(cancel_state, nullptr);
  if (made.m_runtime == nullptr && !made.m_error) {
    throw std::system_error(
        map_error, std::generic_category(),
        "weft::default_runtime: cannot map a stack of " + std::to_string(k_construction_stack / 1024) +
            " KiB to construct it on (the calling thread has less than " + std::to_string(k_room / 1024) +
            " KiB of stack left; limits: the address space, RLIMIT_AS, vm.max_map_count)");
  }
  if (made.m_error) std::rethrow_exception(made.m_error);
  return made.m_runtime;
}

}  // namespace

runtime& default_runtime() {
  // Never destroyed: usable until the process exits, also from static
  // destructors; its parked workers cost nothing at exit. In a child process
  // created by fork() a new one replaces it (the old one's threads exist only
  // in the parent).
  static std::atomic<runtime*> current{nullptr};
  static std::atomic<std::uint64_t> generation{0};
  runtime* r = current.load(std::memory_order_acquire);
  if (r != nullptr && generation.load(std::memory_order_relaxed) == rt::fork_generation()) return *r;
  std::lock_guard<std::mutex> lock(rt::default_runtime_creation());
  r = current.load(std::memory_order_acquire);
  if (r == nullptr || generation.load(std::memory_order_relaxed) != rt::fork_generation()) {
    r = new_default_runtime();
    generation.store(rt::fork_generation(), std::memory_order_relaxed);
    current.store(r, std::memory_order_release);
  }
  return *r;
}

runtime& this_runtime() {
  if (const rt::worker* w = rt::current_worker()) return *w->m_sched.m_runtime;
  return default_runtime();
}

int num_workers() { return this_runtime().num_workers(); }

std::string stats::summary() const {
  std::ostringstream os;
  auto row = [&os](const std::string& name, const worker_stats& w) {
    os << std::left << std::setw(8) << name << std::right << std::setw(12) << w.tasks_run << std::setw(12) << w.spawns
       << std::setw(10) << w.steals << std::setw(12) << w.failed_steals << std::setw(10) << w.suspensions
       << std::setw(10) << w.fiber_switches << std::setw(8) << w.fibers_created << std::setw(8) << w.parks
       << std::setw(10) << w.injected << std::setw(8) << w.lent << '\n';
  };
  os << std::left << std::setw(8) << "worker" << std::right << std::setw(12) << "tasks" << std::setw(12) << "spawns"
     << std::setw(10) << "steals" << std::setw(12) << "failed" << std::setw(10) << "suspends" << std::setw(10)
     << "switches" << std::setw(8) << "fibers" << std::setw(8) << "parks" << std::setw(10) << "injected" << std::setw(8)
     << "lent" << '\n';
  for (std::size_t i = 0; i < workers.size(); ++i) row(std::to_string(i), workers[i]);
  row("total", total);
  return os.str();
}

void yield() {
  if (!rt::yield_current()) std::this_thread::yield();
}

bool on_worker() noexcept { return rt::current_worker() != nullptr; }

int worker_index() noexcept {
  const rt::worker* w = rt::current_worker();
  return w != nullptr ? w->m_index : -1;
}

namespace detail {

void throw_invalid_argument(const char* message) { throw std::invalid_argument(message); }

}  // namespace detail

}  // namespace weft

namespace weft::rt {

scheduler& default_scheduler() { return detail::runtime_access::scheduler_of(default_runtime()); }

}  // namespace weft::rt
