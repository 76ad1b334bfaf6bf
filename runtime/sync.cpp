// SPDX-License-Identifier: MIT
// weft::mutex, condition_variable, latch and barrier. Waiting fibers are published by
// the switch action (after they are saved); waiting threads block on a futex
// (docs/protocols/sync.md).
#include "weft/sync.hpp"

#include <sched.h>

#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>

#include "latch_word.hpp"
#include "scheduler.hpp"
#include "stack.hpp"
#include "suspend.hpp"
#include "waiter.hpp"
#include "weft/coroutine/task.hpp"
#include "worker.hpp"

namespace weft::rt {
scheduler& default_scheduler();
}

namespace weft {

namespace {

using rt::current_worker;

using detail::wait_node;

// Resumes waiters through wake() from code that goes on with its own work
// (an unlock, a notify, a latch that opened, a barrier's phase). Those made
// ready on this worker's private ring are published at once, with the ring's
// older tasks, and a sleeper is woken: thieves see only the public deque, and
// the caller's next scheduling point may be far (a long call, or a spin for
// the very waiters it woke). A waiter goes to the private ring whenever the
// public deque holds a task, or the ring others: a mutex's next owner waited
// there while its unlocker ran on, and with 16 workers, 16 items past a latch
// ran about two at a time. Waiters of threads, or of other runtimes, went
// elsewhere: nothing to publish for them.
//
// Past the fiber bound, where no worker steals, what wake() makes ready goes
// through the injection queue instead, which every worker still takes from
// (worker::m_wake_goes_on, read by ready_in in runtime/suspend.cpp).
template <class Wake>
void wake_visibly(Wake wake) noexcept {
  rt::worker* w = rt::current_worker();  // no switch in wake(): the same worker throughout, and no pop
  if (w == nullptr) {
    wake();
    return;
  }
  const std::uint32_t before = w->m_queue.private_puts();
  w->m_wake_goes_on = true;
  wake();
  w->m_wake_goes_on = false;
  if (w->m_queue.private_puts() != before) w->give_away_private();
}

// Wakes every node of a list taken with wait_queue::take_all().
void notify_list(wait_node* n) noexcept {
  wake_visibly([n]() mutable {
    while (n != nullptr) {
      wait_node* next = n->m_next;  // read before the waiter may leave
      rt::notify(n->m_waiter);
      n = next;
    }
  });
}

// A coroutine that waits off any worker (one of another library's kind, run
// by a plain thread) resumes in the default runtime, as a deferral from there
// does (defer()): the party that releases it makes it runnable there. The
// default runtime is created, if need be, by the waiting side here, before n
// is queued (it used to be resumed in a null runtime: a crash in the
// releasing party's call).
void resume_in_a_runtime(wait_node& n) noexcept {
  if (n.m_waiter.m_runtime == nullptr) n.m_waiter.m_runtime = &rt::default_scheduler();
}

// The resumption of a coroutine that waited on a mutex, latch or barrier
// (its m_execute, set by wait_counted): the count of its wait ends, then it
// resumes. Runs on a worker of the runtime the wait counted in (the waiter's
// m_runtime, where its releaser made it runnable).
void run_waited_coroutine(detail::job* t) noexcept {
  rt::current_worker()->m_sched.end_root();
  detail::coroutine_resumption::execute(t);
}

// The resumption of a coroutine that waited on a mutex (lock_async), woken
// with the mutex free: it competes for it (see mutex::unlock_slow).
void run_locking_coroutine(detail::job* t) noexcept;

// A coroutine that waits on a mutex, latch or barrier is work in flight in
// the runtime it resumes in, as a suspended fiber is: counted (a root) before
// its node is queued, so that the runtime's destructor waits for it (the
// coroutine holds no fiber, and its runtime was destroyed under it: its
// resumption went into freed memory); uncounted when its resumption starts
// (run_waited_coroutine), for a mutex once its retry took the mutex
// (run_locking_coroutine), or at once when it was not queued. Returns queued.
// run: the resumption, run_waited_coroutine or run_locking_coroutine.
template <class Enqueue>
bool wait_counted(wait_node& n, Enqueue enqueue, detail::job_fn run = &run_waited_coroutine) noexcept {
  resume_in_a_runtime(n);
  // Set here, not by the awaiter in the headers: a program built with
  // headers that leave coroutine_resumption::execute there still ends the
  // count it began.
  n.m_waiter.m_job->m_execute = run;
  rt::scheduler& s = rt::scheduler::of(n.m_waiter.m_runtime);
  s.begin_root();
  const bool queued = enqueue();
  if (!queued) s.end_root();
  return queued;
}

// Sets `bit` in word (spinning, then yielding the thread, while another holder
// has it) and returns the word's value with the bit set. Acquire: pairs with
// the release that cleared it. The sections it guards are a few pointer
// moves, so waiting for it is short unless the holder's thread is preempted.
template <class Word>
Word guard_acquire(std::atomic<Word>& word, std::type_identity_t<Word> bit) noexcept {
  Word s = word.load(std::memory_order_relaxed);
  for (unsigned spins = 0;; ++spins) {
    if ((s & bit) == 0) {
      if (word.compare_exchange_weak(s, s | bit, std::memory_order_acquire, std::memory_order_relaxed)) {
        return s | bit;
      }
      continue;
    }
    rt::spin_backoff(spins);
    s = word.load(std::memory_order_relaxed);
  }
}

void guard_release(std::atomic<std::uintptr_t>& word) noexcept { word.store(0, std::memory_order_release); }

// Clears the guard bit of a state word whose other bits may change while it
// is held (counts, flags changed by CAS). Release: pairs with the next
// guard_acquire().
template <class Word>
void guard_clear(std::atomic<Word>& word, std::type_identity_t<Word> bit) noexcept {
  word.fetch_and(~bit, std::memory_order_release);
}

// On a worker the waiting fiber suspends; outside a runtime the thread
// blocks. A worker that cannot get a fiber to switch to (no stack can be
// created: vm.max_map_count or memory) throws instead of blocking its thread:
// the party that would end the wait may be a task queued on this very worker,
// which would then never run (rt::throw_no_fiber()).
bool on_fiber_async(wait_node& node) noexcept {
  rt::worker* w = current_worker();
  if (w == nullptr) return false;
  node.m_waiter.m_fiber = w->m_current;
  return true;
}

}  // namespace

namespace rt {

bool continues_a_coroutine(const detail::job* t) noexcept {
  return t->m_execute == &run_waited_coroutine || t->m_execute == &run_locking_coroutine ||
         t->m_execute == &detail::resume_deferred;
}

}  // namespace rt

// ---- mutex ----
//
// m_state: k_locked | k_guard | k_waiters. Outside the guard, the state
// changes only by CAS from a value without k_guard: k_locked added to a free
// one (lock's fast path from 0; try_lock, which lock_slow uses, also from
// k_waiters, while a woken waiter competes) and exactly k_locked back to 0
// (unlock's fast path). Every such CAS fails while the guard bit is set, so
// the guard holder may store the whole word.

namespace {

using bits = detail::mutex_bits;

// Under the guard: takes the mutex if it is free, else queues node: at the
// head when `first` (a woken waiter that lost the mutex to a newcomer keeps
// its turn), else at the tail. True when the mutex was taken.
bool acquire_or_enqueue(std::atomic<std::uintptr_t>& state, detail::wait_queue& q, wait_node* node,
                        bool first = false) noexcept {
  const std::uintptr_t s = guard_acquire(state, bits::k_guard);
  if ((s & bits::k_locked) == 0) {
    state.store((s | bits::k_locked) & ~bits::k_guard, std::memory_order_release);
    return true;
  }
  if (first) {
    q.push_front(node);
  } else {
    q.push_back(node);
  }
  state.store((s | bits::k_waiters) & ~bits::k_guard, std::memory_order_release);
  return false;
}

}  // namespace

namespace detail {

struct mutex_access {
  // n, woken with m free, queues again at the head unless it takes m now.
  // True: queued (still counted as a root since its first wait).
  static bool retry_async(mutex& m, wait_node& n) noexcept {
    return !acquire_or_enqueue(m.m_state, m.m_queue, &n, true);
  }
};

}  // namespace detail

namespace {

// A coroutine waiting in lock_async, woken with the mutex free, competes for
// it as a woken fiber does: its resumption first runs run_locking_coroutine,
// which takes the mutex and resumes the coroutine, or queues the node again
// at the head. (Handed the mutex instead, the coroutine held it while its
// resumption waited for a worker, and every newcomer queued behind it.)
//
// The retry needs the node and the mutex, and the job (a coroutine_resumption,
// laid out by the headers) has no room for them. While the node is out of
// every queue and its coroutine suspended, nobody else reads the node's link
// and fiber fields nor the job's strand: the wake-up parks the job's strand
// in the node's link, the mutex in its (unused) fiber field, and the node in
// the job's strand field; the retry puts them back.
struct parked_retry {
  static void park(weft::mutex& m, wait_node& n) noexcept {
    auto& r = static_cast<detail::coroutine_resumption&>(*n.m_waiter.m_job);
    n.m_next = reinterpret_cast<wait_node*>(r.m_ws);  // round trip: both 8-aligned
    n.m_waiter.m_fiber = &m;
    r.m_ws = reinterpret_cast<detail::ws_strand*>(&n);
  }
  // The node and the mutex of r, parked by park(), with r's strand restored.
  static std::pair<wait_node*, weft::mutex*> unpark(detail::coroutine_resumption& r) noexcept {
    auto* n = reinterpret_cast<wait_node*>(r.m_ws);
    auto* m = static_cast<weft::mutex*>(n->m_waiter.m_fiber);
    r.m_ws = reinterpret_cast<detail::ws_strand*>(n->m_next);
    n->m_waiter.m_fiber = nullptr;  // a coroutine waiter again
    n->m_next = nullptr;
    return {n, m};
  }
};
static_assert(alignof(detail::ws_strand) == alignof(wait_node));

void run_locking_coroutine(detail::job* t) noexcept {
  auto& r = static_cast<detail::coroutine_resumption&>(*t);
  const auto [n, m] = parked_retry::unpark(r);
  // Queued again (at the head): an unlock wakes it again; nothing of r or n
  // may be touched from here on.
  if (detail::mutex_access::retry_async(*m, *n)) return;
  rt::current_worker()->m_sched.end_root();
  detail::coroutine_resumption::execute(t);
}

void wake_locking_coroutine(weft::mutex& m, wait_node& n) noexcept {
  parked_retry::park(m, n);
  // Counted as a root since it queued: the count ends when it resumes.
  rt::make_runnable(n.m_waiter.m_job, n.m_waiter.m_runtime);
}

struct lock_wait {
  std::atomic<std::uintptr_t>* m_state;
  detail::wait_queue* m_queue;
  wait_node* m_node;
  bool m_first;
  bool m_owns;  // set by the switch action when it took the mutex
};

// Switch action: the locking fiber is saved; queue it, or resume it at once
// (as the owner) if the mutex was released meanwhile. a lives on the saved
// fiber's stack, which nobody runs before make_ready.
void publish_lock_wait(rt::worker&, rt::fiber* prev, void* arg) noexcept {
  auto* a = static_cast<lock_wait*>(arg);
  if (acquire_or_enqueue(*a->m_state, *a->m_queue, a->m_node, a->m_first)) {
    a->m_owns = true;
    rt::make_ready(prev);
  }
}

}  // namespace

mutex::~mutex() {
  if (m_state.load(std::memory_order_relaxed) != 0 && !rt::ending_for(this)) {
    rt::fatal(
        "weft: a weft::mutex was destroyed while locked (its waiters would never resume, and the unlock would write "
        "freed memory); unlock it first");
  }
}

void mutex::lock_slow() {
  for (int i = 0; i < 16; ++i) {  // a holder about to leave: try a little before queueing
    rt::cpu_relax();
    if (try_lock()) return;
  }
  wait_node node;
  for (bool first = false;; first = true) {
    if (on_fiber_async(node)) {
      lock_wait a{&m_state, &m_queue, &node, first, false};
      if (!rt::suspend(&publish_lock_wait, &a)) {
        if (try_lock()) return;  // released meanwhile: no need to fail
        rt::throw_no_fiber();    // nothing was queued
      }
      if (a.m_owns) return;  // taken while queueing
    } else {
      node.m_waiter.m_flag.store(0, std::memory_order_relaxed);  // before it can be queued: notify() sets it
      if (acquire_or_enqueue(m_state, m_queue, &node, first)) return;
      rt::block(node.m_waiter);
    }
    // Woken by an unlock, with the mutex free (the node is out of the
    // queue): it competes for it.
    if (try_lock()) return;
  }
}

void mutex::unlock_slow() noexcept {
  guard_acquire(m_state, k_guard);
  wait_node* next = m_queue.pop_front();
  const std::uintptr_t waiters = m_queue.empty() ? 0 : k_waiters;
  // The waiter is woken with the mutex free (k_waiters stays while others
  // queue): it competes for it. Out of the queue, its node is this call's
  // until the wake-up below.
  m_state.store(waiters, std::memory_order_release);
  if (next == nullptr) return;
  wake_visibly([this, next] {
    if (next->m_waiter.m_job != nullptr) {
      wake_locking_coroutine(*this, *next);  // a coroutine's lock_async
    } else {
      rt::notify(next->m_waiter);
    }
  });
}

// ---- condition_variable ----

namespace {

struct cv_wait {
  std::atomic<std::uintptr_t>* m_guard;
  detail::wait_queue* m_queue;
  wait_node* m_node;
  mutex* m_mutex;
};

// Switch action: the waiting fiber is saved; queue it, then release its
// mutex. Queued before the release, so a notifier that takes the mutex next
// finds it.
void publish_cv_wait(rt::worker&, rt::fiber*, void* arg) noexcept {
  const cv_wait a = *static_cast<cv_wait*>(arg);  // the original may go once queued
  guard_acquire(*a.m_guard, 1);
  a.m_queue->push_back(a.m_node);
  guard_release(*a.m_guard);
  a.m_mutex->unlock();
}

}  // namespace

void condition_variable::wait(std::unique_lock<weft::mutex>& lock) {
  if (!lock.owns_lock() || lock.mutex() == nullptr) {
    throw std::invalid_argument("weft::condition_variable::wait: lock must own its mutex");
  }
  mutex& m = *lock.mutex();
  wait_node node;
  if (on_fiber_async(node)) {
    cv_wait a{&m_guard, &m_queue, &node, &m};
    if (!rt::suspend(&publish_cv_wait, &a)) rt::throw_no_fiber();  // nothing queued; lock still held
  } else {
    guard_acquire(m_guard, 1);
    m_queue.push_back(&node);
    guard_release(m_guard);
    m.unlock();
    rt::block(node.m_waiter);
  }
  try {
    m.lock();
  } catch (...) {
    // Not re-acquired (no fiber to wait for it with): lock must not claim
    // it, or its destructor would unlock the mutex for whoever holds it. It
    // stays lock's mutex (lock.lock() may try again).
    lock.release();
    lock = std::unique_lock<weft::mutex>(m, std::defer_lock);
    throw;
  }
}

condition_variable::~condition_variable() {
  guard_acquire(m_guard, 1);  // a waiter queues under it
  const bool waited_on = !m_queue.empty();
  guard_release(m_guard);
  if (waited_on && !rt::ending_for(this)) {
    rt::fatal(
        "weft: a weft::condition_variable was destroyed while a fiber or thread waited on it (the waiter would "
        "never resume); notify its waiters and let them return first");
  }
}

void condition_variable::notify_one() noexcept {
  guard_acquire(m_guard, 1);
  wait_node* n = m_queue.pop_front();
  guard_release(m_guard);
  if (n != nullptr) wake_visibly([n] { rt::notify(n->m_waiter); });
}

void condition_variable::notify_all() noexcept {
  guard_acquire(m_guard, 1);
  wait_node* list = m_queue.take_all();
  guard_release(m_guard);
  notify_list(list);
}

// ---- latch ----
//
// m_state: counter << k_shift | k_broken | k_guard. k_guard guards the wait
// queue. Decrements that leave the counter above zero change only the counter
// bits (a CAS that keeps the other bits); the decrement that reaches zero
// waits for the guard to be free and takes it in the same CAS, so that its
// take of the queue and its final store (which clears the guard) are its
// last accesses: try_wait() sees exactly zero only after them, and a waiter
// that sees it may destroy the latch at once.

latch::latch(std::ptrdiff_t expected) : m_state(0) {
  if (expected < 0) throw std::invalid_argument("weft::latch: expected must not be negative");
  if (expected > max()) throw std::invalid_argument("weft::latch: expected must be at most latch::max()");
  m_state.store(static_cast<std::uintptr_t>(expected) << k_shift, std::memory_order_relaxed);
}

latch::~latch() {
  // Under the guard: a waiter queues under it (a race only in a program that
  // destroys a latch something still waits on, which this reports).
  guard_acquire(m_state, k_guard);
  const bool waited_on = !m_queue.empty();
  m_state.fetch_and(~k_guard, std::memory_order_release);
  if (waited_on && !rt::ending_for(this)) {
    rt::fatal(
        "weft: a weft::latch was destroyed while a fiber, thread or coroutine waited on it (the waiter would never "
        "resume); destroy a latch only once its waiters returned");
  }
}

void latch::count_down(std::ptrdiff_t n) {
  if (n < 0) throw std::invalid_argument("weft::latch::count_down: n must not be negative");
  const auto dec = static_cast<std::uintptr_t>(n) << k_shift;
  std::uintptr_t s = m_state.load(std::memory_order_relaxed);
  std::uintptr_t next;
  bool to_zero;
  for (unsigned spins = 0;;) {
    const auto c = static_cast<std::ptrdiff_t>(s >> k_shift);
    if (n > c) throw std::invalid_argument("weft::latch::count_down: n is larger than the counter");
    if (n == 0) return;
    to_zero = c == n;
    if (to_zero) {
      if ((s & k_guard) != 0) {  // a waiter is queueing: wait for it (a few pointer moves)
        rt::spin_backoff(spins++);
        s = m_state.load(std::memory_order_relaxed);
        continue;
      }
      next = (s & k_broken) | k_guard;  // zero, with the guard taken
    } else {
      next = s - dec;  // keeps a waiter's guard
    }
    // acq_rel: releases what this party did before counting down; the one that
    // reaches zero acquires the others' and the waiters' queue changes.
    if (m_state.compare_exchange_weak(s, next, std::memory_order_acq_rel, std::memory_order_relaxed)) break;
  }
  if (!to_zero) return;
  // This call reached zero: release everyone queued, then let go of the latch
  // (release: pairs with the acquire in try_wait(); nothing touches the latch
  // after this store).
  wait_node* list = m_queue.take_all();
  m_state.store(next & k_broken, std::memory_order_release);
  notify_list(list);
}

namespace {

struct latch_wait {
  std::atomic<std::uintptr_t>* m_state;
  detail::wait_queue* m_queue;
  wait_node* m_node;
};

constexpr std::uintptr_t k_latch_guard = rt::latch_word::k_guard;
constexpr std::uintptr_t k_latch_broken = rt::latch_word::k_broken;

// Queues node, under the guard, unless the counter is zero or (when
// `unless_broken`) the latch is broken. True when queued. A waiter that
// comes late must not hold the guard of an open latch, where try_wait()
// would read it as an opener that is not done (a false from try_wait() after
// wait() returned, for as long as that waiter's thread was preempted):
// latch_word::guard_unless_open.
bool enqueue_unless_open(const latch_wait& a, bool unless_broken) noexcept {
  std::uintptr_t s = 0;
  if (!rt::latch_word::guard_unless_open(*a.m_state, s)) return false;  // open
  if (unless_broken && (s & k_latch_broken) != 0) {
    guard_clear(*a.m_state, k_latch_guard);
    return false;
  }
  a.m_queue->push_back(a.m_node);
  guard_clear(*a.m_state, k_latch_guard);
  return true;
}

void publish_latch_wait(rt::worker&, rt::fiber* prev, void* arg) noexcept {
  if (!enqueue_unless_open(*static_cast<latch_wait*>(arg), true)) rt::make_ready(prev);
}

// Sets `broken` in a state word guarded by `guard` and wakes the fiber and
// thread waiters of q, which find their wait not over and throw (a latch or a
// barrier whose waiter could not get a fiber). Coroutine waiters hold no
// stack: they stay queued until the wait is over. break_waits takes the
// guard; break_waits_held is called with it held. Both let go of it.
template <class Word>
void break_waits_held(std::atomic<Word>& state, std::type_identity_t<Word> guard, std::type_identity_t<Word> broken,
                      detail::wait_queue& q) noexcept {
  detail::wait_queue woken;
  detail::wait_queue kept;
  while (wait_node* n = q.pop_front()) (n->m_waiter.m_job == nullptr ? woken : kept).push_back(n);
  q = kept;
  state.fetch_or(broken, std::memory_order_relaxed);  // published by the release below
  guard_clear(state, guard);
  notify_list(woken.take_all());
}

template <class Word>
void break_waits(std::atomic<Word>& state, std::type_identity_t<Word> guard, std::type_identity_t<Word> broken,
                 detail::wait_queue& q) noexcept {
  guard_acquire(state, guard);
  break_waits_held(state, guard, broken, q);
}

// A waiter of a broken latch whose counter is not zero.
[[noreturn]] void throw_latch_broken() {
  std::string what =
      "weft::latch::wait: the latch cannot open: another of its waiters could not get a fiber, and the parties "
      "that would have counted it down may never run";
  const std::string cause = rt::last_stack_shortage();
  if (!cause.empty()) what += " (" + cause + ")";
  throw std::system_error(std::make_error_code(std::errc::not_enough_memory), what);
}

}  // namespace

void latch::wait() const {
  static_assert(k_guard == rt::latch_word::k_guard && k_broken == rt::latch_word::k_broken &&
                k_shift == rt::latch_word::k_shift);
  if (try_wait()) return;
  wait_node node;
  latch_wait a{&m_state, &m_queue, &node};
  if (on_fiber_async(node)) {
    if (!rt::suspend(&publish_latch_wait, &a)) {
      // More fibers wait at once than the system allows stacks for. The
      // parties that would open the latch are commonly skipped after this
      // failure (a failed task_group or loop starts nothing more): the waiters
      // would hang. Break the latch (they throw too), unless it has opened
      // meanwhile: then its opener is done, and there is no need to fail.
      std::uintptr_t s = 0;
      if (!rt::latch_word::guard_unless_open(m_state, s)) return;
      break_waits_held(m_state, k_latch_guard, k_latch_broken, m_queue);
      rt::throw_no_fiber();
    }
  } else if (enqueue_unless_open(a, true)) {
    rt::block(node.m_waiter);
  }
  // Resumed (or refused) because the counter reached zero, or because the
  // latch broke. The opener may still be finishing its count_down(): wait
  // until it let go of the latch (a few instructions), so that the caller may
  // destroy the latch at once.
  for (unsigned spins = 0;; ++spins) {
    const std::uintptr_t s = m_state.load(std::memory_order_acquire);  // pairs with count_down()'s release
    if ((s & ~k_broken) == 0) return;
    if ((s >> k_shift) != 0) throw_latch_broken();
    rt::spin_backoff(spins);  // the opener's thread may be preempted
  }
}

// ---- barrier ----
//
// m_state: phase | count | k_broken | k_completing | k_guard (sync.hpp).
// Arrivals change only the count, by CAS, keeping the other bits (a waiter
// may hold the guard meanwhile). The arrival that brings the count to zero
// sets k_completing in the same CAS; its party runs the completion function
// with the guard free (waiters go on queueing), then complete() takes the
// guard and the queue and stores the next phase, count and clear bits: its
// last access. The phase bits change only by that store, so a party that sees
// its phase over may destroy the barrier at once. While k_completing is set
// the word changes only by guard changes of waiters (no arrival counts:
// arrive() waits or throws), so complete() may store the whole word.

namespace detail {

namespace {

[[noreturn, gnu::cold]] void throw_no_arrival_expected(const char* who, bool names_n, bool completing) {
  std::string what = who;
  if (names_n) {
    what += completing ? ": n is larger than the arrivals still expected in this phase (none: its completion step "
                         "runs; an arrival must wait until it is over)"
                       : ": n is larger than the arrivals still expected in this phase";
  } else {
    what += completing ? ": no arrival is expected in this phase (its completion step runs; an arrival must wait "
                         "until it is over)"
                       : ": no arrival is expected in this phase (its expected count is used up)";
  }
  throw std::invalid_argument(what);
}

// A fiber or thread waiter of a broken barrier whose phase is not over.
[[noreturn]] void throw_barrier_broken(const char* who) {
  std::string what = who;
  what +=
      ": the phase cannot complete: another of its waiters could not get a fiber, and the parties that would have "
      "arrived may never run";
  const std::string cause = rt::last_stack_shortage();
  if (!cause.empty()) what += " (" + cause + ")";
  throw std::system_error(std::make_error_code(std::errc::not_enough_memory), what);
}

struct barrier_wait {
  std::atomic<std::uint64_t>* m_state;
  detail::wait_queue* m_queue;
  std::uint64_t m_phase;  // phase bits of the phase waited for
  std::uint64_t m_phase_mask;
  std::uint64_t m_guard;
  std::uint64_t m_broken;
  wait_node* m_node;
};

// Under the guard: queues the node unless the phase is over or (when
// `unless_broken`) the barrier is broken. True when queued.
bool enqueue_unless_passed(const barrier_wait& a, bool unless_broken) noexcept {
  const std::uint64_t s = guard_acquire(*a.m_state, a.m_guard);
  if ((s & a.m_phase_mask) != a.m_phase || (unless_broken && (s & a.m_broken) != 0)) {
    guard_clear(*a.m_state, a.m_guard);
    return false;
  }
  a.m_queue->push_back(a.m_node);
  guard_clear(*a.m_state, a.m_guard);
  return true;
}

// Switch action: the waiting fiber is saved; queue it, or resume it at once.
void publish_barrier_wait(rt::worker&, rt::fiber* prev, void* arg) noexcept {
  if (!enqueue_unless_passed(*static_cast<barrier_wait*>(arg), true)) rt::make_ready(prev);
}

}  // namespace

barrier_core::barrier_core(std::ptrdiff_t expected, bool has_completion)
    : m_state(0), m_expected(expected), m_has_completion(has_completion) {
  if (expected < 0) throw std::invalid_argument("weft::barrier: expected must not be negative");
  if (expected > max()) throw std::invalid_argument("weft::barrier: expected must be at most barrier::max()");
  m_state.store(static_cast<std::uint64_t>(expected) << k_count_shift, std::memory_order_relaxed);
}

barrier_core::~barrier_core() {
  // Acquire: pairs with the guard releases of waiters that queued (their
  // appends are read below).
  const std::uint64_t s = m_state.load(std::memory_order_acquire);
  if ((!m_queue.empty() || (s & (k_guard | k_completing)) != 0) && !rt::ending_for(this)) {
    rt::fatal(
        "weft: a weft::barrier was destroyed while a fiber, thread or coroutine waited on it, or during its "
        "completion step (the waiter would never resume); destroy a barrier only once its parties returned");
  }
}

void barrier_core::throw_foreign_token(const char* who) {
  throw std::invalid_argument(std::string(who) +
                              ": arrival does not come from this barrier's arrive() (another barrier's token, or a "
                              "default-constructed one)");
}

std::uint64_t barrier_core::wait_out_completion(const char* who, bool names_n) const {
  if (m_has_completion) throw_no_arrival_expected(who, names_n, true);
  // No completion function: the completer only takes the guard and stores
  // the next phase.
  std::uint64_t s = m_state.load(std::memory_order_relaxed);
  for (unsigned spins = 0; (s & k_completing) != 0; ++spins) {
    rt::spin_backoff(spins);
    s = m_state.load(std::memory_order_relaxed);
  }
  return s;
}

barrier_token barrier_core::arrive(std::ptrdiff_t n, const char* who, bool names_n) {
  if (n < 1) throw std::invalid_argument(std::string(who) + ": n must be at least 1");
  std::uint64_t s = m_state.load(std::memory_order_relaxed);
  for (;;) {
    if ((s & k_completing) != 0) {
      s = wait_out_completion(who, names_n);
      continue;
    }
    const auto count = static_cast<std::ptrdiff_t>((s & k_count_mask) >> k_count_shift);
    if (n > count) throw_no_arrival_expected(who, names_n, false);
    std::uint64_t next = s - static_cast<std::uint64_t>(n) * k_count_one;
    const bool last = n == count;
    if (last) next |= k_completing;
    // acq_rel: releases what this party did before arriving (to the completion
    // step, through the CAS chain); the last arrival acquires every earlier
    // one's. Partner: the other arrivals' CAS, and complete()'s store for the
    // phase read.
    if (m_state.compare_exchange_weak(s, next, std::memory_order_acq_rel, std::memory_order_relaxed)) {
      return barrier_token(this, s & k_phase_mask, last);
    }
  }
}

barrier_token barrier_core::arrive_and_drop() {
  constexpr const char* k_who = "weft::barrier::arrive_and_drop";
  for (;;) {
    // Under the guard, so that complete() (which reads m_expected under the
    // guard) sees the drop if and only if the arrival below counts in the
    // phase it completes.
    std::uint64_t s = guard_acquire(m_state, k_guard);
    if ((s & k_completing) != 0) {
      guard_clear(m_state, k_guard);
      wait_out_completion(k_who, false);
      continue;
    }
    if ((s & k_count_mask) == 0) {
      guard_clear(m_state, k_guard);
      throw_no_arrival_expected(k_who, false, false);
    }
    --m_expected;
    for (;;) {
      std::uint64_t next = (s - k_count_one) & ~k_guard;
      const bool last = (next & k_count_mask) == 0;
      if (last) next |= k_completing;
      // acq_rel: as in arrive(); also releases the guard (and m_expected).
      if (m_state.compare_exchange_weak(s, next, std::memory_order_acq_rel, std::memory_order_relaxed)) {
        return barrier_token(this, s & k_phase_mask, last);
      }
      // Other arrivals counted meanwhile. If they completed the phase (more
      // arrivals than expected: a misuse), this drop belongs to the next one.
      if ((s & k_completing) != 0 || (s & k_count_mask) == 0) {
        ++m_expected;
        guard_clear(m_state, k_guard);
        if ((s & k_completing) == 0) throw_no_arrival_expected(k_who, false, false);
        break;
      }
    }
  }
}

void barrier_core::complete() noexcept {
  const std::uint64_t s = guard_acquire(m_state, k_guard);
  wait_node* list = m_queue.take_all();
  const std::uint64_t next =
      ((s & k_phase_mask) + k_phase_one) | (static_cast<std::uint64_t>(m_expected) << k_count_shift) | (s & k_broken);
  // Release: publishes the completion step (and the phases' arrivals) to the
  // waiters; pairs with passed()'s acquire load and the guard acquire of
  // enqueue_unless_passed(). The last access to the barrier.
  m_state.store(next, std::memory_order_release);
  notify_list(list);
}

void barrier_core::wait(const barrier_token& t, const char* who) const {
  check_token(t, who);
  if (t.m_completed) return;  // untouched: another party may have destroyed the barrier
  if (passed(t)) return;
  wait_node node;
  barrier_wait a{&m_state, &m_queue, t.m_phase, k_phase_mask, k_guard, k_broken, &node};
  if (on_fiber_async(node)) {
    if (!rt::suspend(&publish_barrier_wait, &a)) {
      if (passed(t)) return;  // over meanwhile: no need to fail
      // More fibers wait at once than the system allows stacks for. The
      // parties that would complete the phase are commonly skipped after
      // this failure (a failed task_group or loop starts nothing more): the
      // waiters would hang. Break the barrier: they throw too.
      break_waits(m_state, k_guard, k_broken, m_queue);
      rt::throw_no_fiber();
    }
  } else if (enqueue_unless_passed(a, true)) {
    rt::block(node.m_waiter);
  }
  // Resumed (or refused) because the phase is over, or because the barrier
  // broke. complete() stored the phase before it woke anyone.
  if (passed(t)) return;
  throw_barrier_broken(who);
}

bool barrier_wait_async(const barrier_core& b, const barrier_token& token, wait_node& n) noexcept {
  if (token.m_completed) return false;  // untouched: the barrier may be gone
  // A coroutine waits for the phase even on a broken barrier: it holds no
  // stack.
  return wait_counted(n, [&] {
    return enqueue_unless_passed(barrier_wait{&b.m_state, &b.m_queue, token.m_phase, barrier_core::k_phase_mask,
                                              barrier_core::k_guard, barrier_core::k_broken, &n},
                                 false);
  });
}

}  // namespace detail

// ---- for coroutine awaiters ----

namespace detail {

bool mutex_lock_async(mutex& m, wait_node& n) noexcept {
  return wait_counted(
      n, [&] { return !acquire_or_enqueue(m.m_state, m.m_queue, &n); }, &run_locking_coroutine);
}

bool latch_wait_async(const latch& l, wait_node& n) noexcept {
  // A coroutine waits for the counter to reach zero even on a broken latch: it
  // holds no stack.
  return wait_counted(n, [&] { return enqueue_unless_open(latch_wait{&l.m_state, &l.m_queue, &n}, false); });
}

}  // namespace detail

}  // namespace weft
