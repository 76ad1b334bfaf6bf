// weft::rt: a runtime's scheduler: its workers, its injection queue, its
// life cycle. It holds no scheduling policy of its own.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "injection.hpp"
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

namespace weft::rt {

class worker;

class scheduler : public detail::runtime_state {
 public:
  // cfg must be resolved (workers > 0) and valid. Starts the worker threads;
  // throws std::system_error (thread creation) or std::bad_alloc (stacks),
  // after undoing everything it did.
  explicit scheduler(const config& cfg);
  // Waits until no root task is in flight, stops the workers, joins them.
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
  void inject(detail::task* t) noexcept;
  injection_queue& injection() noexcept { return m_injection; }
  sleep_set& sleepers() noexcept { return m_sleep; }

  // True once the destructor decided to stop (no root task in flight).
  bool stopping() const noexcept { return m_stopping.load(std::memory_order_acquire); }

  // A root task from outside enters / leaves. Any thread.
  void begin_root() noexcept { m_roots.fetch_add(1, std::memory_order_relaxed); }
  void end_root() noexcept;

  // How many times the root range of a loop is halved before it runs: about
  // one piece per worker.
  int initial_split_depth() const noexcept { return m_split_depth; }

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

 private:
  void stop_and_join() noexcept;
  void stop_and_join_keeping_traces() noexcept;

  config m_cfg;
  stack_guards m_guards;
  int m_split_depth;
  std::int64_t m_fiber_bound;
  std::uint64_t m_generation;                         // fork generation of the process that started it
  std::vector<std::unique_ptr<trace_ring>> m_traces;  // one per worker, or none
  std::uint64_t m_origin;                             // ticks at start, time 0 of the trace
  std::vector<std::unique_ptr<worker>> m_workers;
  std::vector<std::thread> m_threads;
  injection_queue m_injection;
  sleep_set m_sleep;
  alignas(k_false_sharing) std::atomic<bool> m_stopping{false};
  alignas(k_false_sharing) std::atomic<std::uint32_t> m_roots{0};  // futex word while the destructor waits
};

// Counts fork()s: incremented in the child by an atfork handler.
std::uint64_t fork_generation() noexcept;

// Registers the atfork handlers once (also done at load time). Any thread.
void register_fork_handlers() noexcept;

// Held while the default runtime is created; fork() waits for it (atfork
// prepare) and the child gets it unlocked.
std::mutex& default_runtime_creation() noexcept;

// Validates cfg and fills in the defaults (workers from WEFT_NUM_WORKERS or the
// hardware). Throws std::invalid_argument naming the bad field or variable.
config resolve_config(config cfg);

// The config of the default runtime: config{} plus WEFT_STACK_SIZE. Throws
// std::invalid_argument for a bad value.
config default_config();

// WEFT_STACK_GUARDS: unset, empty or "auto": stack_guards::automatic;
// "mprotect": stack_guards::mprotect. Throws std::invalid_argument naming the
// variable for anything else. Calling thread (reads the environment).
stack_guards stack_guards_from_environment();

}  // namespace weft::rt
