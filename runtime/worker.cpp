// SPDX-License-Identifier: MIT
#include "worker.hpp"

#include <sched.h>

#include <new>

#include "loop.hpp"
#include "scheduler.hpp"
#include "waiter.hpp"
#include "workspan.hpp"

namespace weft::rt {

constinit thread_local worker* t_worker __attribute__((tls_model("initial-exec"))) = nullptr;

WEFT_NOIPA worker* current_worker() noexcept {
  worker* w = t_worker;
  asm volatile("" ::: "memory");  // keep the read here: never merged across a fiber switch
  return w;
}

worker_stats counters::snapshot() const noexcept {
  worker_stats s;
  s.tasks_run = tasks_run.load(std::memory_order_relaxed);
  s.spawns = spawns.load(std::memory_order_relaxed);
  // acquire: pairs with bump_outcome(); steal_attempts is read after these.
  s.steals = steals.load(std::memory_order_acquire);
  s.failed_steals = failed_steals.load(std::memory_order_acquire);
  s.suspensions = suspensions.load(std::memory_order_relaxed);
  s.fiber_switches = fiber_switches.load(std::memory_order_relaxed);
  s.fibers_created = fibers_created.load(std::memory_order_relaxed);
  s.parks = parks.load(std::memory_order_relaxed);
  s.injected = injected.load(std::memory_order_relaxed);
  s.lent = lent.load(std::memory_order_relaxed);
  s.steal_attempts = steal_attempts.load(std::memory_order_relaxed);
  s.fibers_reused = fibers_reused.load(std::memory_order_relaxed);
  s.wakeups = wakeups.load(std::memory_order_relaxed);
  if constexpr (k_instrumented) {
    std::uint64_t t[3];
    for (int i = 0; i < 3; ++i) t[i] = ticks[i].load(std::memory_order_relaxed);
    // The interval in progress counts up to now.
    const std::uint32_t now_doing = current.load(std::memory_order_relaxed);
    const std::uint64_t began = since.load(std::memory_order_relaxed);
    const std::uint64_t now = rt::ticks();
    if (now_doing < 3 && now > began) t[now_doing] += now - began;
    const std::uint64_t per_us = ticks_per_us();
    s.busy_ns = t[0] * 1000 / per_us;
    s.search_ns = t[1] * 1000 / per_us;
    s.parked_ns = t[2] * 1000 / per_us;
  }
  return s;
}

void counters::reset() noexcept {
  for (auto* c : {&tasks_run, &spawns, &steals, &failed_steals, &suspensions, &fiber_switches, &fibers_created, &parks,
                  &injected, &lent, &steal_attempts, &fibers_reused, &wakeups, &ticks[0], &ticks[1], &ticks[2]}) {
    c->store(0, std::memory_order_relaxed);
  }
  since.store(rt::ticks(), std::memory_order_relaxed);
}

namespace {

std::uint64_t seed_of(int index) noexcept { return 0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(index + 1); }

// The state of the configured victim policy.
std::variant<random_victims, round_robin_victims, last_victim_first> victims_of(victim_policy p, int index,
                                                                                int workers) noexcept {
  const std::uint64_t seed = seed_of(index);
  switch (p) {
    case victim_policy::round_robin: return round_robin_victims(index, workers, seed);
    case victim_policy::last_victim: return last_victim_first(index, workers, seed);
    default: return random_victims(index, workers, seed);
  }
}

}  // namespace

// The policy that m_steal_round was set for is the one m_victims holds.
template <class Policy>
detail::task* worker::steal_round_of() noexcept {
  return steal_round_with(*std::get_if<Policy>(&m_victims));
}

worker::worker(scheduler& s, int index, fiber* first)
    : m_sched(s),
      m_index(index),
      m_queue(s.num_workers() > 1),
      m_pool(std::min<std::size_t>(64, s.cfg().max_fibers / 2)),  // pooled fibers stay under the bound
      m_first(first),
      m_sleep_entry(index),
      m_victims(victims_of(s.cfg().victim, index, s.num_workers())) {
  m_steal_round =
      std::visit([](const auto& v) { return &worker::steal_round_of<std::remove_cvref_t<decltype(v)>>; }, m_victims);
}

// Through current_worker(): a caller that spans a fiber switch (find_work
// inlined into scheduling_loop) must not reuse another thread's TLS address.
bool worker::is_owner() const noexcept { return current_worker() == this; }

worker::~worker() {
  if (m_first != nullptr) destroy_fiber(m_first);  // the thread never started
}

void worker::thread_main() noexcept {
  note_thread();
  t_worker = this;
  m_eh_globals = this_thread_eh_globals();
  m_signal_stack.enter();
  adopt_thread(m_native, m_sched);
  m_current = &m_native;
  m_counters.since.store(ticks(), std::memory_order_relaxed);
  fiber* first = m_first;
  m_first = nullptr;
  counters::bump(m_counters.fibers_created);
  switch_to(*this, first, nullptr, nullptr);
  // Back on the thread's own stack: the scheduler stopped and the last loop
  // fiber of this thread was retired by the switch.
  m_pool.clear();
  m_signal_stack.leave();
  t_worker = nullptr;
  m_sched.worker_exited();  // last access to the scheduler; the thread ends next
}

void worker::wake_sleeper() noexcept { m_sched.sleepers().notify_one(); }

void worker::published(detail::task* t) noexcept {
  if constexpr (k_instrumented) {
    if (m_trace != nullptr) {
      m_trace->record(trace_kind::publish, reinterpret_cast<std::uintptr_t>(t),
                      static_cast<std::uint32_t>(m_queue.public_size()));
    }
  }
  wake_sleeper();
}

bool worker::serve_demand() {
  WEFT_ASSERT(is_owner(), "worker::serve_demand: called by the worker's own thread");
  detail::task* t = m_queue.serve_demand();
  if (t == nullptr) return false;
  published(t);
  return true;
}

fiber* worker::idle_fiber() noexcept {
  if (fiber* f = m_pool.take()) {
    counters::bump(m_counters.fibers_reused);
    return f;
  }
  try {
    return create_fiber(m_sched);
  } catch (...) {
    m_fiber_error = std::current_exception();
    return nullptr;
  }
}

fiber* worker::next_fiber() noexcept {
  if (fiber* f = m_yielded.pop_front()) return f;
  return idle_fiber();
}

void worker::go_idle() noexcept {
  m_idle = true;
  m_counters.enter(activity::searching);
  if constexpr (k_instrumented) {
    if (m_trace != nullptr) m_trace->record(trace_kind::search_begin);
  }
}

detail::task* worker::got(detail::task* t) noexcept {
  if (m_searching) {
    m_searching = false;
    m_sched.sleepers().found_work();
  }
  if (m_idle) {
    m_idle = false;
    m_counters.enter(activity::busy);
    if constexpr (k_instrumented) {
      if (m_trace != nullptr) m_trace->record(trace_kind::search_end);
    }
  }
  return t;
}

detail::task* worker::take_local() noexcept {
  if (detail::task* t = m_queue.pop()) return t;
  if (fiber* f = m_yielded.pop_front()) return &f->m_resume;
  if (detail::task* t = m_yielded_tasks.pop_front()) {
    t->m_next = nullptr;
    return t;
  }
  return nullptr;
}

detail::task* worker::take_ready() noexcept {
  WEFT_ASSERT(is_owner(), "worker::take_ready: called by the worker's own thread");
  if (detail::task* t = take_local()) return t;
  // The queue is empty, as take_injected() requires.
  if (m_sched.injection().looks_empty()) return nullptr;
  return take_injected();
}

detail::task* worker::take_injected() noexcept {
  WEFT_ASSERT(m_queue.empty(), "take_injected: the queue is empty (injected tasks are pushed public, oldest first)");
  detail::task* list = m_sched.injection().take_all();
  if (list == nullptr) return nullptr;
  detail::task* first = list;
  std::uint64_t n = 1;
  bool spread = false;
  for (detail::task* t = first->m_next; t != nullptr;) {
    detail::task* next = t->m_next;
    t->m_next = nullptr;
    try {
      m_queue.push_public(t);
      spread = true;
    } catch (...) {
      m_sched.injection().push(t);  // no memory to grow the deque: leave it there
    }
    ++n;
    t = next;
  }
  first->m_next = nullptr;
  counters::bump(m_counters.injected, n);
  if (spread) wake_sleeper();
  m_found = 1;
  return first;
}

// Tries at one victim per steal round: a steal that lost a race (with the
// owner's pop or another thief's steal) found the victim's deque non-empty
// then, so it is tried once more at once; after a second loss the round
// moves on to the next victim rather than contend there.
constexpr int k_steal_tries = 2;

template <class Policy>
detail::task* worker::steal_round_with(Policy& victims) noexcept {
  const int n = m_sched.num_workers();
  if (n == 1) return nullptr;
  int v = victims.first();
  for (int k = 0; k < n; ++k, v = victims.next(v)) {
    if (v == m_index) continue;
    for (int attempt = 0; attempt < k_steal_tries; ++attempt) {
      counters::bump(m_counters.steal_attempts);
      auto r = m_sched.worker_at(v).m_queue.steal();
      if (r.status == deque<detail::task*>::steal_status::success) {
        counters::bump_outcome(m_counters.steals);
        victims.on_steal(v);
        m_found = 2 + static_cast<std::uint32_t>(v);
        return r.value;
      }
      if (r.status == deque<detail::task*>::steal_status::empty) break;
    }
    counters::bump_outcome(m_counters.failed_steals);
  }
  victims.on_empty_round();
  return nullptr;
}

bool worker::work_visible() const noexcept {
  if (!m_sched.injection().looks_empty()) return true;
  // Over the fiber bound search() steals nothing: the others' public queues
  // are no reason to stay awake. The fiber whose end brings the count back
  // under the bound wakes a sleeper (destroy_fiber).
  if (m_sched.over_fiber_bound()) return false;
  const int n = m_sched.num_workers();
  for (int v = 0; v < n; ++v) {
    if (v != m_index && m_sched.worker_at(v).m_queue.public_nonempty()) return true;
  }
  return false;
}

bool worker::caller_ready() const noexcept {
  // acquire: pairs with the release in make_pinned_ready(); the caller's
  // fiber was saved before it was made ready.
  return m_caller != nullptr && m_caller->m_native_ready.load(std::memory_order_acquire);
}

// Searching spins on the core for this long, then yields the core to other
// runnable threads between rounds: on a machine where other processes (or
// more threads than cores) compete, a spinning worker would otherwise take
// the time slices that the threads it waits for need (OpenMP's spinning team
// collapses this way), and where nothing else runs sched_yield returns at
// once.
constexpr std::uint64_t k_search_yield_after_us = 5;
// Pauses between two steal rounds before that: about 0.3 µs on the
// development machine, so that a searching worker does not keep pulling the
// cache lines of the victims' deque indices (and demand flags) away from
// their owners, yet sees new work within about a microsecond.
constexpr int k_search_relaxes = 16;

detail::task* worker::search() noexcept {
  const std::uint64_t spin = std::uint64_t{m_sched.cfg().spin_us} * ticks_per_us();
  const std::uint64_t yield_after = k_search_yield_after_us * ticks_per_us();
  const std::uint64_t start = ticks();
  for (unsigned round = 0;; ++round) {
    if (!m_sched.over_fiber_bound()) {
      if (detail::task* t = (this->*m_steal_round)()) return t;
    }
    if (!m_sched.injection().looks_empty()) {
      if (detail::task* t = take_injected()) return t;
    }
    if (m_sched.stopping()) return nullptr;  // leave, or park until the work in flight is done
    const std::uint64_t searched = ticks() - start;
    if (searched >= spin) return nullptr;
    if (m_caller == nullptr) {
      // A thread from outside waits for a slot: park now, so that it can
      // borrow this one (docs/protocols/callers.md).
      if (m_sched.lend_wanted()) return nullptr;
    } else if (caller_ready()) {
      return nullptr;  // the borrowing thread's own call can go on
    }
    if (searched >= yield_after) {
      sched_yield();
    } else {
      for (int i = 0; i < k_search_relaxes; ++i) cpu_relax();
    }
  }
}

void worker::park() noexcept {
  sleep_set& s = m_sched.sleepers();
  // Everything this worker records happens before prepare_park(): from there
  // on, until the park ends, a thread from outside may borrow the slot (its
  // parked bit won), and this thread must not touch the worker. The entry and
  // the caller are read first for the same reason.
  const int entry = m_sleep_entry;
  caller_state* const caller = m_caller;
  scheduler& sched = m_sched;
  m_searching = false;
  counters::bump(m_counters.parks);
  m_counters.enter(activity::parked);
  if constexpr (k_instrumented) {
    if (m_trace != nullptr) m_trace->record(trace_kind::park_begin);
  }
  s.prepare_park(entry);
  // This worker's own entry (not a borrower's): its slot may be borrowed
  // from now on, by a thread from outside that may be waiting for one.
  if (entry < sched.num_workers()) sched.notify_slot_waiters();
  // relaxed for the caller's flag: prepare_park()'s fence orders it (pairs
  // with the fence in sleep_set::notify()).
  if (work_visible() || sched.done() || (caller != nullptr && caller->m_native_ready.load(std::memory_order_relaxed))) {
    s.cancel_park(entry);
  } else {
    s.commit_park(entry);
  }
  // The slot is this thread's again (a borrower returned it before waking it).
  counters::bump(m_counters.wakeups);
  m_counters.enter(activity::searching);
  if constexpr (k_instrumented) {
    if (m_trace != nullptr) m_trace->record(trace_kind::park_end);
  }
  m_searching = true;  // either way, this worker is counted as searching now
}

detail::task* worker::find_work() noexcept {
  WEFT_ASSERT(is_owner(), "worker::find_work: called by the worker's own thread");
  for (;;) {
    m_found = 0;
    if (WEFT_UNLIKELY(caller_ready())) {  // the borrowing thread's own call goes on, on its own stack
      m_caller->m_native_ready.store(false, std::memory_order_relaxed);
      return got(&m_caller->m_native.m_resume);
    }
    if (detail::task* t = take_local()) return got(t);
    if (detail::task* t = take_injected()) return got(t);
    if (!m_idle) go_idle();
    if (!m_searching) {
      m_sched.sleepers().start_search();
      m_searching = true;
    }
    if (detail::task* t = search()) return got(t);
    if (m_sched.done()) {
      // The runtime stops and nothing is in flight: leave, and wake those
      // that parked while work was still in flight so that they leave too.
      m_searching = false;
      m_sched.sleepers().stop_search();
      m_sched.sleepers().notify_all();
      return nullptr;
    }
    if (!caller_ready()) park();
  }
}

void scheduling_loop() noexcept {
  for (;;) {
    worker* w = current_worker();  // re-read: the task below may resume elsewhere
    detail::task* t = w->find_work();
    if (t == nullptr) return;
    if (t->m_execute == &resume_fiber) {  // traced by the switch
      t->m_execute(t);
      continue;
    }
    counters::bump(w->m_counters.tasks_run);
    fiber* self = w->m_current;
    if constexpr (k_instrumented) {
      self->m_in_task = true;
      if (w->m_trace != nullptr)
        w->m_trace->record(trace_kind::run_task, reinterpret_cast<std::uintptr_t>(t), w->m_found);
    }
    t->m_execute(t);
    // A resumed coroutine may leave its strand on the fiber: at loop level
    // it runs none (workspan.hpp).
    if (WEFT_UNLIKELY(self->m_ws != nullptr)) set_strand(*self, nullptr);
    if constexpr (k_instrumented) {
      self->m_in_task = false;
      worker* now = current_worker();
      if (now->m_trace != nullptr) now->m_trace->record(trace_kind::run_end);
    }
  }
}

void recycle_fiber(worker& w, fiber* prev, void*) noexcept { w.m_pool.put(prev); }

// resume_fiber(), suspend() and yield_current() read the worker inline: they
// do not use it after their switch.
void about_to_resume(worker& w, fiber* f) noexcept {
  if (f->m_suspended) {
    // It runs on this worker next: no longer in flight elsewhere (a worker
    // leaves only once nothing is in flight: scheduler::done()).
    f->m_suspended = false;
    w.m_sched.end_root();
  }
}

void resume_fiber(detail::task* t) noexcept {
  fiber* f = fiber_of(t);
  worker& w = *this_thread_worker();
  about_to_resume(w, f);
  switch_to(w, f, &recycle_fiber, nullptr);
}

void retire_fiber(worker&, fiber* prev, void*) noexcept { destroy_fiber(prev); }

void make_ready(fiber* f) noexcept {
  if (WEFT_UNLIKELY(f->m_pinned != nullptr)) {
    make_pinned_ready(f);
    return;
  }
  worker* w = current_worker();
  if (w != nullptr && &w->m_sched == f->m_sched) {
    try {
      w->push_uncounted(&f->m_resume);
      return;
    } catch (...) {
      // no memory to grow the deque: go through the injection queue instead
    }
  }
  f->m_sched->inject(&f->m_resume);
}

bool suspend(switch_action publish, void* arg) noexcept {
  worker* w = this_thread_worker();
  fiber* next = w->next_fiber();
  if (next == nullptr) return false;
  suspend_to(*w, next, publish, arg);
  return true;
}

void suspend_to(worker& w, fiber* next, switch_action publish, void* arg) noexcept {
  counters::bump(w.m_counters.suspensions);
  // Items of a loop in progress on this fiber that have not started go to
  // other workers (and to this one's next fiber): none waits behind this one.
  if (WEFT_UNLIKELY(w.m_current->m_leaves != nullptr)) hand_off_unstarted(w, *w.m_current);
  // A suspended fiber is work in flight: the runtime's destructor waits for
  // it (counted before publish can make it resumable; uncounted in
  // resume_fiber()).
  w.m_current->m_suspended = true;
  w.m_sched.begin_root();
  // A measured strand does no work while it waits.
  detail::ws_strand* strand = w.m_current->m_ws;
  const bool running = strand != nullptr && strand->m_start != 0;
  if (WEFT_UNLIKELY(running)) ws_pause(*strand);
  switch_to(w, next, publish, arg);
  if (WEFT_UNLIKELY(running)) ws_resume_piece(*strand);
}

void throw_no_fiber() {
  const worker* w = this_thread_worker();
  if (w != nullptr && w->m_fiber_error) std::rethrow_exception(w->m_fiber_error);
  throw std::bad_alloc();
}

bool yield_task(detail::task* t) noexcept {
  worker* w = this_thread_worker();
  if (w == nullptr) return false;
  if (!w->has_local_work()) return false;
  w->m_yielded_tasks.push_back(t);
  counters::bump(w->m_counters.suspensions);
  return true;
}

void make_runnable(detail::task* t, detail::runtime_state* rt) noexcept {
  scheduler& s = scheduler::of(rt);
  worker* w = current_worker();
  if (w != nullptr && &w->m_sched == &s) {
    try {
      w->push_uncounted(t);
      return;
    } catch (...) {
      // no memory to grow the deque: go through the injection queue instead
    }
  }
  s.inject(t);
}

bool yield_current() noexcept {
  worker* w = this_thread_worker();
  if (w == nullptr) return false;
  // First the items of a loop in progress here that have not started: the
  // caller may be polling for one of them.
  if (WEFT_UNLIKELY(w->m_current->m_leaves != nullptr)) hand_off_unstarted(*w, *w->m_current);
  if (!w->has_local_work()) return true;  // nothing else to run here
  fiber* next = w->next_fiber();
  if (next == nullptr) return true;
  // Queued before the switch: only this worker reads its yield list, and it
  // is busy switching, so nobody can resume this fiber too early.
  w->m_yielded.push_back(w->m_current);
  counters::bump(w->m_counters.suspensions);
  detail::ws_strand* strand = w->m_current->m_ws;
  const bool running = strand != nullptr && strand->m_start != 0;
  if (WEFT_UNLIKELY(running)) ws_pause(*strand);
  switch_to(*w, next, nullptr, nullptr);
  if (WEFT_UNLIKELY(running)) ws_resume_piece(*strand);
  return true;
}

}  // namespace weft::rt
