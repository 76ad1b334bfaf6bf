// SPDX-License-Identifier: MIT
#include "worker.hpp"

#include <sched.h>

#include <new>

#include "scheduler.hpp"
#include "suspend.hpp"
#include "workspan.hpp"

namespace weft::rt {

constinit thread_local worker* t_worker __attribute__((tls_model("initial-exec"))) = nullptr;
}  // namespace weft::rt

namespace weft::detail {
// used, externally_visible: the templates name it inside an asm
// (worker_view.hpp), which link-time optimisation of a program that links
// libweft statically cannot see; it must neither drop nor rename it.
#if defined(__clang__)
#define WEFT_ASM_REFERENCED __attribute__((used))
#else
#define WEFT_ASM_REFERENCED __attribute__((used, externally_visible))
#endif
WEFT_ASM_REFERENCED constinit thread_local worker_view* t_worker_view __attribute__((tls_model("initial-exec"))) =
    nullptr;
}  // namespace weft::detail

namespace weft::rt {

WEFT_NOIPA worker* current_worker() noexcept {
  worker* w = t_worker;
  asm volatile("" ::: "memory");  // keep the read here: never merged across a fiber switch
  return w;
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
detail::job* worker::steal_round_of() noexcept {
  return steal_round_with(*std::get_if<Policy>(&m_victims));
}

worker::worker(scheduler& s, int index, fiber* first)
    : m_sched(s),
      m_index(index),
      m_queue(s.num_workers() > 1, m_job_cache.view()->m_ring),
      m_sleep_entry(index),
      m_pool(std::min(k_max_idle_fibers, s.cfg().max_fibers / 2)),
      m_first(first),
      m_victims(victims_of(s.cfg().victim, index, s.num_workers())) {
  m_job_cache.view()->m_runtime = &s;
  m_job_cache.view()->m_runtime_id = s.sequence();
  if (s.num_workers() > 1) {  // others may steal: offer_spawns_if_idle looks at them
    m_job_cache.view()->m_ring.m_searching = &s.sleepers().searching_count();
    m_job_cache.view()->m_ring.m_parked = &s.sleepers().first_parked_word();
    // Workers are the entries 0 .. n-1 (threads from outside park after them).
    const int n = s.num_workers();
    m_job_cache.view()->m_ring.m_parked_mask = n >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << n) - 1;
  }
  m_steal_round =
      std::visit([](const auto& v) { return &worker::steal_round_of<std::remove_cvref_t<decltype(v)>>; }, m_victims);
}

worker_stats worker::stats() const noexcept {
  worker_stats s = m_counters.snapshot();
  if constexpr (k_instrumented) {
    const detail::job_ring& ring = m_job_cache.view()->m_ring;
    s.spawns += ring.m_pushed.load(std::memory_order_relaxed);
    s.tasks_run += ring.m_popped.load(std::memory_order_relaxed);
  }
  return s;
}

void worker::reset_stats() noexcept {
  m_counters.reset();
  detail::job_ring& ring = m_job_cache.view()->m_ring;
  ring.m_pushed.store(0, std::memory_order_relaxed);
  ring.m_popped.store(0, std::memory_order_relaxed);
}

// Through current_worker(): a caller that spans a fiber switch (find_work
// inlined into scheduling_loop) must not reuse another thread's TLS address.
bool worker::is_owner() const noexcept { return current_worker() == this; }

worker::~worker() {
  if (m_first != nullptr) destroy_fiber(m_first);  // the thread never started
}

void worker::thread_main() noexcept {
  begin_worker_thread();
  set_thread_worker(this);
  m_eh_globals = this_thread_eh_globals();
  m_signal_stack.enter();
  unblock_overflow_signal();
  adopt_thread(m_native, m_sched);
  set_current(&m_native);
  m_counters.since.store(ticks(), std::memory_order_relaxed);
  fiber* first = m_first;
  m_first = nullptr;
  counters::bump(m_counters.fibers_created);
  // Counted as searching from here, before the constructor returns: a
  // worker that has not looked for work yet is idle for the spawns that an
  // owner offers to idle workers (detail::offer_spawns).
  go_idle();
  m_sched.sleepers().start_search();
  m_hunt = hunt::searching;
  m_sched.worker_started();  // its start-up (allocations included) is over
  switch_to(*this, first, nullptr, nullptr);
  // Back on the thread's own stack: the scheduler stopped and the last loop
  // fiber of this thread was retired by the switch.
  m_pool.clear();
  m_signal_stack.leave();
  set_thread_worker(nullptr);
  m_sched.worker_exited();  // last access to the scheduler; the thread ends next
  end_worker_thread();      // its thread_locals are destroyed next
}

void worker::wake_sleeper() noexcept { m_sched.sleepers().notify_one(); }

void worker::record_publish(const detail::job* t) noexcept {
  if constexpr (k_instrumented) {
    if (m_trace != nullptr) {
      m_trace->record(trace_kind::publish, reinterpret_cast<std::uintptr_t>(t),
                      static_cast<std::uint32_t>(m_queue.public_size()));
    }
  }
}

void worker::published(detail::job* t) noexcept {
  record_publish(t);
  wake_sleeper();
}

bool worker::serve_demand() {
  WEFT_ASSERT(is_owner(), "worker::serve_demand: called by the worker's own thread");
  detail::job* t = m_queue.serve_demand();
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
  // Only the oldest entry: a yielded task before it runs first (through the
  // loop of an idle fiber).
  if (const detail::job* t = m_yielded.m_head; t != nullptr && t->m_execute == &resume_fiber) {
    return fiber_of(m_yielded.pop_front());
  }
  if (fiber* f = idle_fiber()) return f;
  return take_yielded_fiber();  // no stack to be had: a yielded fiber behind a task, out of turn
}

fiber* worker::take_yielded_fiber() noexcept {
  detail::job* before = nullptr;
  for (detail::job* t = m_yielded.m_head; t != nullptr; before = t, t = t->m_next) {
    if (t->m_execute != &resume_fiber) continue;
    if (before == nullptr) return fiber_of(m_yielded.pop_front());
    before->m_next = t->m_next;
    if (m_yielded.m_tail == t) m_yielded.m_tail = before;
    return fiber_of(t);
  }
  return nullptr;
}

void worker::go_idle() noexcept {
  m_hunt = hunt::idle;
  m_counters.enter(activity::searching);
  if constexpr (k_instrumented) {
    if (m_trace != nullptr) m_trace->record(trace_kind::search_begin);
  }
}

detail::job* worker::got(detail::job* t) noexcept {
  if (m_hunt == hunt::busy) return t;
  if (m_hunt == hunt::searching) m_sched.sleepers().found_work();
  m_hunt = hunt::busy;
  m_counters.enter(activity::busy);
  if constexpr (k_instrumented) {
    if (m_trace != nullptr) m_trace->record(trace_kind::search_end);
  }
  return t;
}

detail::job* worker::take_local() noexcept {
  if (detail::job* t = m_queue.pop()) return t;
  if (detail::job* t = m_yielded.pop_front()) {
    t->m_next = nullptr;
    return t;
  }
  return nullptr;
}

detail::job* worker::take_ready() noexcept {
  WEFT_ASSERT(is_owner(), "worker::take_ready: called by the worker's own thread");
  if (detail::job* t = take_local()) return t;
  // The queue is empty, as take_injected() requires.
  if (m_sched.injection().looks_empty()) return nullptr;
  return take_injected();
}

detail::job* worker::take_injected() noexcept {
  WEFT_ASSERT(m_queue.empty(), "take_injected: the queue is empty (injected tasks are pushed public, oldest first)");
  detail::job* list = m_sched.injection().take_all();
  if (list == nullptr) return nullptr;
  detail::job* first = list;
  std::uint64_t n = 1;
  bool spread = false;
  for (detail::job* t = first->m_next; t != nullptr;) {
    detail::job* next = t->m_next;
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

namespace {

bool goes_on(const detail::job* t) noexcept { return t->m_execute == &resume_fiber || continues_a_coroutine(t); }

}  // namespace

detail::job* worker::take_continuation() noexcept {
  WEFT_ASSERT(is_owner(), "worker::take_continuation: called by the worker's own thread");
  // Anywhere in the queue: it may lie below tasks that this join may not
  // start (the unstarted items it handed off, a loop's pieces).
  bool held_aside = false;
  detail::job* own = m_queue.take_newest_such(goes_on, held_aside);
  // Public tasks it held aside were out of sight: a thief may have parked
  // then (the sleep protocol's rule: work visible, someone searches).
  if (held_aside) wake_sleeper();
  if (own != nullptr) return own;
  if (m_sched.injection().looks_empty()) return nullptr;
  detail::job* found = nullptr;
  bool others = false;
  for (detail::job* t = m_sched.injection().take_all(); t != nullptr;) {  // oldest first
    detail::job* next = t->m_next;
    t->m_next = nullptr;
    if (found == nullptr && goes_on(t)) {
      found = t;
    } else {
      m_sched.injection().push(t);
      others = true;
    }
    t = next;
  }
  // A worker woken for them may have found the queue empty meanwhile.
  if (others) wake_sleeper();
  if (found != nullptr) counters::bump(m_counters.injected);
  return found;
}

void worker::queue_stolen(detail::job* t) noexcept {
  try {
    push_uncounted(t);
  } catch (...) {
    m_sched.injection().push(t);  // no memory to grow the deque: it stays runnable there
  }
}

void worker::give_away_private() noexcept { give_away_oldest(job_queue::k_private_capacity); }

void worker::give_away_oldest(std::uint32_t most) noexcept {
  WEFT_ASSERT(is_owner(), "worker::give_away_oldest: called by the worker's own thread");
  if (m_queue.publish_oldest_private(most, [this](detail::job* t) noexcept { record_publish(t); }) != 0) {
    wake_sleeper();
  }
}

std::uint32_t worker::idle_others() const noexcept {
  const sleep_set& sleepers = m_sched.sleepers();
  const int idle = sleepers.parked_count(0, m_sched.num_workers()) + sleepers.searching();
  if (idle > 0) return static_cast<std::uint32_t>(idle);
  return m_queue.has_demand() ? 1 : 0;
}

bool worker::take_injected_onto_queue() noexcept {
  if (m_sched.injection().looks_empty()) return false;
  detail::job* first = take_injected();  // the others are on the queue now
  if (first == nullptr) return !m_queue.empty();
  try {
    push_uncounted(first);  // the newest: popped first
  } catch (...) {
    m_sched.injection().push(first);  // no memory to grow the deque: it stays injected
  }
  return !m_queue.empty();
}

// Tries at one victim per steal round: a steal that lost a race (with the
// owner's pop or another thief's steal) found the victim's deque non-empty
// then, so it is tried once more at once; after a second loss the round
// moves on to the next victim rather than contend there.
constexpr int k_steal_tries = 2;

template <class Policy>
detail::job* worker::steal_round_with(Policy& victims) noexcept {
  const int n = m_sched.num_workers();
  if (n == 1) return nullptr;
  int v = victims.first();
  for (int k = 0; k < n; ++k, v = victims.next(v)) {
    if (v == m_index) continue;
    for (int attempt = 0; attempt < k_steal_tries; ++attempt) {
      counters::bump(m_counters.steal_attempts);
      auto r = m_sched.worker_at(v).m_queue.steal();
      if (r.status == deque<detail::job*>::steal_status::success) {
        counters::bump_outcome(m_counters.steals);
        victims.on_steal(v);
        m_found = 2 + static_cast<std::uint32_t>(v);
        return r.value;
      }
      if (r.status == deque<detail::job*>::steal_status::empty) break;
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

bool worker::work_visible_or_ask() noexcept {
  if (!m_sched.injection().looks_empty()) return true;
  if (m_sched.over_fiber_bound()) return false;  // as work_visible(): nothing would be stolen
  const int n = m_sched.num_workers();
  bool visible = false;
  for (int v = 0; v < n; ++v) {
    if (v != m_index && m_sched.worker_at(v).m_queue.public_nonempty_or_ask()) visible = true;
  }
  return visible;
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

detail::job* worker::search() noexcept {
  const std::uint64_t spin = std::uint64_t{m_sched.cfg().spin_us} * ticks_per_us();
  const std::uint64_t yield_after = k_search_yield_after_us * ticks_per_us();
  const std::uint64_t start = ticks();
  for (unsigned round = 0;; ++round) {
    if (!m_sched.over_fiber_bound()) {
      if (detail::job* t = (this->*m_steal_round)()) return t;
    }
    if (!m_sched.injection().looks_empty()) {
      if (detail::job* t = take_injected()) return t;
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
  WEFT_ASSERT(m_hunt == hunt::searching, "worker::park: the worker is counted as searching");
  m_hunt = hunt::idle;
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
  } else if (sched.stopping()) {
    // The runtime stops, and work is still in flight (begun after its
    // destructor's wait for work: a queued task that waits, a coroutine
    // released from outside). The last of it may end on a thread outside
    // the runtime (an injection's end), which wakes nobody: look again
    // every millisecond, so that the workers see done() and leave.
    s.commit_park_for(entry, 1'000'000);
  } else if (entry == 0 && main_thread_ended()) {
    // main() ended with pthread_exit(): end the process when only weft's
    // workers are left (scheduler.hpp, poll_for_process_end()).
    note_worker_parked();
    poll_for_process_end();
    s.commit_park_for(entry, main_end_poll_ns());
    note_worker_woken(false);
  } else {
    note_worker_parked();
    s.commit_park(entry);
    note_worker_woken(true);
  }
  // The slot is this thread's again (a borrower returned it before waking it).
  counters::bump(m_counters.wakeups);
  m_counters.enter(activity::searching);
  if constexpr (k_instrumented) {
    if (m_trace != nullptr) m_trace->record(trace_kind::park_end);
  }
  m_hunt = hunt::searching;  // either way, this worker is counted as searching now
}

detail::job* worker::find_work() noexcept {
  WEFT_ASSERT(is_owner(), "worker::find_work: called by the worker's own thread");
  for (;;) {
    m_found = 0;
    if (WEFT_UNLIKELY(caller_ready())) {  // the borrowing thread's own call goes on, on its own stack
      m_caller->m_native_ready.store(false, std::memory_order_relaxed);
      return got(&m_caller->m_native.m_resume);
    }
    if (detail::job* t = take_local()) return got(t);
    if (detail::job* t = take_injected()) return got(t);
    if (m_hunt == hunt::busy) go_idle();
    if (m_hunt == hunt::idle) {
      m_sched.sleepers().start_search();
      m_hunt = hunt::searching;
    }
    if (detail::job* t = search()) return got(t);
    if (m_sched.done()) {
      // The runtime stops and nothing is in flight: leave, and wake those
      // that parked while work was still in flight so that they leave too.
      m_hunt = hunt::idle;
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
    detail::job* t = w->find_work();
    if (t == nullptr) return;
    if (t->m_execute == &resume_fiber) {  // traced by the switch
      t->m_execute(t);
      continue;
    }
    counters::bump(w->m_counters.tasks_run);
    fiber* self = w->m_current;
    w->begin_activation();
    if constexpr (k_instrumented) {
      self->m_in_job = true;
      if (w->m_trace != nullptr)
        w->m_trace->record(trace_kind::run_task, reinterpret_cast<std::uintptr_t>(t), w->m_found);
    }
    t->m_execute(t);
    // A resumed coroutine may leave its strand on the fiber: at loop level
    // it runs none (workspan.hpp).
    if (WEFT_UNLIKELY(self->m_ws != nullptr)) set_strand(*self, nullptr);
    if constexpr (k_instrumented) {
      self->m_in_job = false;
      worker* now = current_worker();
      if (now->m_trace != nullptr) now->m_trace->record(trace_kind::run_end);
    }
  }
}

}  // namespace weft::rt
