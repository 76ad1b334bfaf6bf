#include "worker.hpp"

#include <chrono>
#include <new>

#include "scheduler.hpp"

namespace weft::rt {

constinit thread_local worker* t_worker __attribute__((tls_model("initial-exec"))) = nullptr;

namespace {

std::uint64_t now_ns() noexcept {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

}  // namespace

WEFT_NOIPA worker* current_worker() noexcept {
  worker* w = t_worker;
  asm volatile("" ::: "memory");  // keep the read here: never merged across a fiber switch
  return w;
}

worker_stats counters::snapshot() const noexcept {
  worker_stats s;
  s.tasks_run = tasks_run.load(std::memory_order_relaxed);
  s.spawns = spawns.load(std::memory_order_relaxed);
  s.steals = steals.load(std::memory_order_relaxed);
  s.failed_steals = failed_steals.load(std::memory_order_relaxed);
  s.suspensions = suspensions.load(std::memory_order_relaxed);
  s.fiber_switches = fiber_switches.load(std::memory_order_relaxed);
  s.fibers_created = fibers_created.load(std::memory_order_relaxed);
  s.parks = parks.load(std::memory_order_relaxed);
  s.injected = injected.load(std::memory_order_relaxed);
  return s;
}

void counters::reset() noexcept {
  for (auto* c : {&tasks_run, &spawns, &steals, &failed_steals, &suspensions, &fiber_switches, &fibers_created,
                  &parks, &injected}) {
    c->store(0, std::memory_order_relaxed);
  }
}

worker::worker(scheduler& s, int index, fiber* first)
    : m_sched(s),
      m_index(index),
      m_queue(s.num_workers() > 1),
      m_pool(64),
      m_first(first),
      m_rng(0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(index + 1)) {}

worker::~worker() {
  if (m_first != nullptr) destroy_fiber(m_first);  // the thread never started
}

void worker::thread_main() noexcept {
  t_worker = this;
  m_eh_globals = this_thread_eh_globals();
  m_signal_stack.enter();
  adopt_thread(m_native, m_sched);
  m_current = &m_native;
  fiber* first = m_first;
  m_first = nullptr;
  counters::bump(m_counters.fibers_created);
  switch_to(*this, first, nullptr, nullptr);
  // Back on the thread's own stack: the scheduler stopped and the last loop
  // fiber of this thread was retired by the switch.
  m_pool.clear();
  m_signal_stack.leave();
  t_worker = nullptr;
}

void worker::notify_published() noexcept { m_sched.sleepers().notify_one(); }

bool worker::serve_demand() {
  if (!m_queue.serve_demand()) return false;
  m_sched.sleepers().notify_one();
  return true;
}

fiber* worker::idle_fiber() noexcept {
  if (fiber* f = m_pool.take()) return f;
  try {
    return create_fiber(m_sched);
  } catch (...) {
    return nullptr;
  }
}

fiber* worker::next_fiber() noexcept {
  if (fiber* f = m_yielded.pop_front()) return f;
  return idle_fiber();
}

std::uint32_t worker::next_random() noexcept {
  // xorshift64*
  m_rng ^= m_rng >> 12;
  m_rng ^= m_rng << 25;
  m_rng ^= m_rng >> 27;
  return static_cast<std::uint32_t>((m_rng * 0x2545F4914F6CDD1DULL) >> 32);
}

detail::task* worker::got(detail::task* t) noexcept {
  if (m_searching) {
    m_searching = false;
    m_sched.sleepers().found_work();
  }
  return t;
}

detail::task* worker::take_injected() noexcept {
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
  if (spread) m_sched.sleepers().notify_one();
  return first;
}

detail::task* worker::steal_round() noexcept {
  const int n = m_sched.num_workers();
  if (n == 1) return nullptr;
  const int start = static_cast<int>(next_random() % static_cast<std::uint32_t>(n));
  for (int k = 0; k < n; ++k) {
    int v = start + k;
    if (v >= n) v -= n;
    if (v == m_index) continue;
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto r = m_sched.worker_at(v).m_queue.steal();
      if (r.status == deque<detail::task*>::steal_status::success) {
        counters::bump(m_counters.steals);
        return r.value;
      }
      if (r.status == deque<detail::task*>::steal_status::empty) break;
    }
    counters::bump(m_counters.failed_steals);
  }
  return nullptr;
}

bool worker::work_visible() const noexcept {
  if (!m_sched.injection().looks_empty()) return true;
  const int n = m_sched.num_workers();
  for (int v = 0; v < n; ++v) {
    if (v != m_index && m_sched.worker_at(v).m_queue.public_nonempty()) return true;
  }
  return false;
}

detail::task* worker::search() noexcept {
  const std::uint64_t spin_ns = std::uint64_t{m_sched.cfg().spin_us} * 1000;
  const std::uint64_t start = now_ns();
  for (unsigned round = 0;; ++round) {
    if (!m_sched.over_fiber_bound()) {
      if (detail::task* t = steal_round()) return t;
    }
    if (!m_sched.injection().looks_empty()) {
      if (detail::task* t = take_injected()) return t;
    }
    if (m_sched.stopping()) return nullptr;
    if ((round & 3) == 3 && now_ns() - start >= spin_ns) return nullptr;
    for (int i = 0; i < 16; ++i) cpu_relax();
  }
}

void worker::park() noexcept {
  sleep_set& s = m_sched.sleepers();
  s.prepare_park(m_index);
  m_searching = false;
  if (work_visible() || m_sched.stopping()) {
    s.cancel_park(m_index);
  } else {
    counters::bump(m_counters.parks);
    s.commit_park(m_index);
  }
  m_searching = true;  // either way, this worker is counted as searching now
}

detail::task* worker::find_work() noexcept {
  for (;;) {
    if (detail::task* t = m_queue.pop()) return got(t);
    if (fiber* f = m_yielded.pop_front()) return got(&f->m_resume);
    if (detail::task* t = take_injected()) return got(t);
    if (!m_searching) {
      m_sched.sleepers().start_search();
      m_searching = true;
    }
    if (detail::task* t = search()) return got(t);
    if (m_sched.stopping()) {
      m_searching = false;
      m_sched.sleepers().stop_search();
      return nullptr;
    }
    park();
  }
}

void scheduling_loop() noexcept {
  for (;;) {
    worker* w = current_worker();  // re-read: the task below may resume elsewhere
    detail::task* t = w->find_work();
    if (t == nullptr) return;
    if (t->m_execute != &resume_fiber) counters::bump(w->m_counters.tasks_run);
    t->m_execute(t);
  }
}

void recycle_fiber(worker& w, fiber* prev, void*) noexcept { w.m_pool.put(prev); }

// resume_fiber(), suspend() and yield_current() read the worker inline: they
// do not use it after their switch.
void resume_fiber(detail::task* t) noexcept {
  fiber* f = fiber_of(t);
  switch_to(*this_thread_worker(), f, &recycle_fiber, nullptr);
}

void retire_fiber(worker&, fiber* prev, void*) noexcept { destroy_fiber(prev); }

void make_ready(fiber* f) noexcept {
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
  counters::bump(w->m_counters.suspensions);
  switch_to(*w, next, publish, arg);
  return true;
}

bool yield_current() noexcept {
  worker* w = this_thread_worker();
  if (w == nullptr) return false;
  if (w->m_queue.empty() && w->m_yielded.empty()) return true;  // nothing else to run here
  fiber* next = w->next_fiber();
  if (next == nullptr) return true;
  // Queued before the switch: only this worker reads its yield list, and it
  // is busy switching, so nobody can resume this fiber too early.
  w->m_yielded.push_back(w->m_current);
  counters::bump(w->m_counters.suspensions);
  switch_to(*w, next, nullptr, nullptr);
  return true;
}

}  // namespace weft::rt
