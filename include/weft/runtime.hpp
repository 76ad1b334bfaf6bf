// SPDX-License-Identifier: MIT
// weft: runtimes (a set of worker threads with their scheduler) and the
// default runtime.
#pragma once

#include "weft/detail/cxx20.hpp"

#include <functional>
#include <string>
#include <type_traits>
#include <utility>

#include "weft/config.hpp"
#include "weft/detail/entry.hpp"
#include "weft/detail/export.hpp"
#include "weft/detail/result.hpp"
#include "weft/stats.hpp"

namespace weft {

namespace detail {
struct runtime_access;
}

// A runtime: one worker thread per configured worker, each with a work-stealing
// queue, running tasks on pooled fibers. Runtimes are independent: any number
// may exist at once and be created and destroyed any number of times.
class WEFT_API runtime {
 public:
  // Starts the worker threads. Throws std::invalid_argument naming the field
  // for a bad config, or the variable for a bad value of one of the
  // environment variables it reads (WEFT_NUM_WORKERS when cfg.workers is 0;
  // WEFT_VICTIM_POLICY, WEFT_SPLIT_POLICY and WEFT_CALLER_POLICY for fields
  // left automatic; WEFT_TRACE when cfg.trace_file is empty; WEFT_WORKSPAN;
  // WEFT_STACK_GUARDS), and std::system_error when a thread cannot be created
  // (nothing leaks then).
  explicit runtime(config cfg = {});

  // Waits for work still running in this runtime, then stops and joins the
  // worker threads. Must not be called from one of its own workers.
  ~runtime();

  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  int num_workers() const noexcept;

  // Runs f() as a task of this runtime and returns its result (or rethrows its
  // exception): every weft call made inside f uses this runtime. Called from a
  // worker of this runtime it calls f() there (on a fresh fiber stack when
  // the calling one is nearly full). Elsewhere it suspends the calling fiber
  // (a worker of another runtime) or blocks the calling thread. The result
  // is carried back from the task by a move, so its type must be
  // move-constructible (as for std::async).
  template <class F>
  std::invoke_result_t<F&> run(F&& f);

  // The scheduler counters, per worker and summed.
  weft::stats stats() const;
  // Sets every counter to zero (exact only while the runtime is idle).
  void reset_stats() noexcept;

  // Writes the events traced so far as Chrome trace-event JSON (see
  // docs/tracing.md). Throws std::logic_error when tracing is off,
  // std::invalid_argument when path is empty, holds a NUL byte or names a
  // directory ("dir/", or an existing directory), and std::system_error when
  // the file cannot be written. Best taken while the runtime is idle: events
  // written meanwhile may be missing.
  void write_trace(const std::string& path) const;
  // True when this runtime records a trace.
  bool tracing() const noexcept;

 private:
  friend struct detail::runtime_access;
  detail::runtime_state* m_state;
};

// The runtime that calls from outside any runtime use. Created on first use,
// with config{} (so WEFT_NUM_WORKERS or the CPUs the creating thread may use:
// see config::workers) and the stack size of WEFT_STACK_SIZE when set; never
// destroyed, so it may be used until the process exits. Throws what the
// runtime constructor throws; a later call tries again.
WEFT_API runtime& default_runtime();

// The runtime that a weft call made here uses: the calling worker's runtime
// (inside runtime::run, that runtime), or default_runtime() outside any
// runtime (created on first use: throws what its constructor throws).
WEFT_API runtime& this_runtime();

// this_runtime().num_workers(): the size to give per-worker slots indexed by
// worker_index().
WEFT_API int num_workers();

template <class F>
std::invoke_result_t<F&> runtime::run(F&& f) {
  using result_type = std::invoke_result_t<F&>;
  if (detail::on_runtime(m_state)) {
    // An entry point: a recursion through run() on its own workers moves to
    // a fresh stack when this one is nearly full, as join and the loops do.
    if (detail::stack_low_here()) [[unlikely]]
      return detail::invoke_on_fresh_stack(f);
    return std::invoke(f);
  }
  struct call {
    F& fn;
    detail::result<result_type> value;
    static void run(void* p) {
      auto* c = static_cast<call*>(p);
      c->value.emplace(c->fn);
    }
  } c{f, {}};
  detail::run_root(m_state, &call::run, &c);
  return c.value.take();
}

}  // namespace weft
