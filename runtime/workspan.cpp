// SPDX-License-Identifier: MIT
// Work/span measurement: strands on fibers, their composition at joins, the
// calibration of a spawn and of a migration, and the WEFT_WORKSPAN report
// (docs/protocols/workspan.md).
#include "workspan.hpp"

#include <cxxabi.h>
#include <dlfcn.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "clock.hpp"
#include "fiber.hpp"
#include "platform.hpp"
#include "report_file.hpp"
#include "scheduler.hpp"
#include "weft/join.hpp"
#include "worker.hpp"

namespace weft::detail {

// The state of one measured call (ws_measure_call): its root strand and the
// costs charged by the model. On the heap: a task_group spawn of the call may
// still run after it returned (its group is waited for later), and its
// strand reads the costs to its end (rt::ws_hold).
struct ws_measure {
  // Read by every strand, written only before the call starts.
  std::int64_t m_split = 0;       // ticks of a spawn, and of a level of a loop split down to its items (an empty join)
  std::int64_t m_burden = 0;      // ticks per potential steal on the burdened schedule
  std::int64_t m_clock_cost = 0;  // ticks that a piece's two clock reads add to it
  std::uint64_t m_id = 0;         // unique in the process
  // The call's reference, and one per task_group spawn of it not yet ended.
  std::atomic<std::uint32_t> m_refs{1};
  // The call has returned (release; ws_measure_over acquires).
  std::atomic<bool> m_over{false};
  alignas(64) ws_strand m_root;  // written by the measured call's own strands
};

}  // namespace weft::detail

namespace weft::rt {

using detail::ws_strand;

namespace {

// The calling worker's current fiber (re-read each time: a strand's fiber may
// have moved to another thread since the last call). Null outside a worker.
fiber* this_fiber() noexcept {
  worker* w = current_worker();
  return w != nullptr ? w->m_current : nullptr;
}

// Closes the running piece of s at `now`, less what reading the clock added.
void close_piece(ws_strand& s, std::uint64_t now) noexcept {
  if (s.m_start == 0) return;
  const auto d = std::max<std::int64_t>(static_cast<std::int64_t>(now - s.m_start) - s.m_measure->m_clock_cost, 0);
  s.m_work += d;
  s.m_pos += d;
  s.m_bpos += d;
  s.m_start = 0;
}

void atomic_max(std::atomic<std::int64_t>& a, std::int64_t v) noexcept {
  std::int64_t cur = a.load(std::memory_order_relaxed);
  while (cur < v && !a.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

// Waits until `turn` is `expected` or `stop`: spins, and gives the processor
// away now and then (the partner may share this one). Returns what it read.
int await_turn(const std::atomic<int>& turn, int expected, int stop) noexcept {
  for (unsigned spins = 0;; ++spins) {
    const int t = turn.load(std::memory_order_acquire);
    if (t == expected || t == stop) return t;
    if (spins % 256 == 255) {
      sched_yield();
    } else {
      cpu_relax();
    }
  }
}

// The median of up to 201 ping-pong round trips (within about 2 ms) between
// the calling thread and a helper thread, kept on another processor than the
// caller's when the affinity mask allows; -1 when no thread can be made.
std::int64_t round_trip_ticks() noexcept {
  constexpr int k_rounds = 201;
  constexpr int k_stop = -1;
  std::atomic<int> turn{0};
  std::vector<std::uint64_t> samples;
  try {
    samples.reserve(k_rounds);
    const int here = sched_getcpu();
    std::thread partner([&turn, here] {
      cpu_set_t allowed;
      CPU_ZERO(&allowed);
      if (here >= 0 && sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_ISSET(here, &allowed) &&
          CPU_COUNT(&allowed) > 1) {
        CPU_CLR(here, &allowed);
        sched_setaffinity(0, sizeof allowed, &allowed);  // best effort
      }
      for (int expected = 1;; expected += 2) {
        if (await_turn(turn, expected, k_stop) == k_stop) return;
        turn.store(expected + 1, std::memory_order_release);
      }
    });
    const std::uint64_t deadline = ticks() + 2'000 * ticks_per_us();
    for (int i = 0; i < k_rounds && ticks() < deadline; ++i) {
      const std::uint64_t t0 = ticks();
      turn.store(2 * i + 1, std::memory_order_release);
      await_turn(turn, 2 * i + 2, 2 * i + 2);
      samples.push_back(ticks() - t0);
    }
    turn.store(k_stop, std::memory_order_release);
    partner.join();
  } catch (...) {
    return -1;
  }
  if (samples.empty()) return -1;
  std::nth_element(samples.begin(), samples.begin() + static_cast<std::ptrdiff_t>(samples.size() / 2), samples.end());
  return static_cast<std::int64_t>(samples[samples.size() / 2]);
}

// The value in `cached`, measured by `measure` (a count of ticks, never
// negative) when there is none yet (-1). Not a function-local static (see
// ticks_per_us()): threads that find none measure at once, and the first
// result to be stored is the one every thread uses.
template <class Measure>
std::int64_t once_per_process(std::atomic<std::int64_t>& cached, Measure measure) noexcept {
  std::int64_t value = cached.load(std::memory_order_relaxed);  // a plain number: no data hangs off it
  if (value >= 0) return value;
  const std::int64_t mine = measure();
  return cached.compare_exchange_strong(value, mine, std::memory_order_relaxed) ? mine : value;
}

// Clock ticks for a one-way hand-over of a cache line between two threads:
// half the least of three round_trip_ticks() medians (a round disturbed by
// another process is discarded), measured once per process, at most
// k_split_us (also what it is when no thread can be made).
std::int64_t migration_ticks() noexcept {
  static constinit std::atomic<std::int64_t> cached{-1};
  return once_per_process(cached, [] {
    std::int64_t best = -1;
    for (int attempt = 0; attempt < 3; ++attempt) {
      const std::int64_t t = round_trip_ticks();
      if (t >= 0 && (best < 0 || t < best)) best = t;
    }
    // Never above the runtime's own estimate of sharing work (a steal, a
    // wake-up and a join): a helper thread that found no free processor in
    // any round measured the machine's load, not a migration.
    const auto ceiling = static_cast<std::int64_t>(k_split_us * ticks_per_us());
    return best >= 0 ? std::min(best / 2, ceiling) : ceiling;
  });
}

// Ticks between two reads of the clock through ticks(): the least of 1024,
// measured once per process (about 20 us).
std::int64_t clock_ticks() noexcept {
  static constinit std::atomic<std::int64_t> cached{-1};
  return once_per_process(cached, [] {
    std::uint64_t best = std::numeric_limits<std::uint64_t>::max();
    for (int i = 0; i < 1024; ++i) {
      const std::uint64_t t0 = ticks();
      best = std::min(best, ticks() - t0);
    }
    return static_cast<std::int64_t>(best);
  });
}

// Ticks of one weft::join of two empty calls on a worker, not measured: the
// least of 128 rounds of 8 (small rounds, so that some round has no steal in
// it: a thief taking an empty child is not the spawn's cost, and the result
// must not depend on the number of workers), measured once per process, by
// the first measured call, on its worker (about 1 024 joins). Not kept when
// measured on a nearly full stack, where every join moves its call to a
// fresh stack or runs both calls in turn: the next call with room measures
// again.
constinit std::atomic<std::int64_t> g_join_ticks{-1};

std::int64_t join_ticks() noexcept {
  auto measure = [] {
    std::uint64_t best = std::numeric_limits<std::uint64_t>::max();
    for (int round = 0; round < 128; ++round) {
      const std::uint64_t t0 = ticks();
      for (int i = 0; i < 8; ++i) weft::join([] {}, [] {});
      best = std::min(best, (ticks() - t0) / 8);
    }
    return static_cast<std::int64_t>(best);
  };
  if (const std::int64_t value = g_join_ticks.load(std::memory_order_relaxed); value >= 0) return value;
  if (const worker* w = current_worker(); w != nullptr && w->real_stack_low()) return measure();
  return once_per_process(g_join_ticks, measure);
}

}  // namespace

void set_strand(fiber& f, ws_strand* s) noexcept {
  f.m_ws = s;
  f.m_ws_lent = false;
  f.m_stack_limit = s != nullptr ? k_measured_limit : f.m_real_limit;
  // The inline push reads the limit from the worker's view.
  if (worker* w = current_worker(); w != nullptr && w->m_current == &f) w->spawn_limit_changed();
}

void forget_join_ticks() noexcept { g_join_ticks.store(-1, std::memory_order_relaxed); }

std::int64_t ws_split_ticks(const ws_strand& s) noexcept { return s.m_measure->m_split; }
std::int64_t ws_burden_ticks(const ws_strand& s) noexcept { return s.m_measure->m_burden; }

detail::ws_measure* ws_hold(const ws_strand& s) noexcept {
  s.m_measure->m_refs.fetch_add(1, std::memory_order_relaxed);  // the caller holds one already
  return s.m_measure;
}

void ws_release(detail::ws_measure* m) noexcept {
  // acq_rel: every holder's reads happen before the delete.
  if (m->m_refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete m;
}

bool ws_measure_over(const ws_strand& s) noexcept { return s.m_measure->m_over.load(std::memory_order_acquire); }

std::uint64_t ws_measure_id(const ws_strand& s) noexcept { return s.m_measure->m_id; }

void ws_pause(ws_strand& s) noexcept { close_piece(s, ticks()); }

void ws_resume_piece(ws_strand& s) noexcept { s.m_start = ticks(); }

void ws_item_end(ws_strand& s, ws_strand* previous, detail::ws_sync& into) noexcept {
  detail::ws_leave(s, previous);
  into.m_work.fetch_add(s.m_work, std::memory_order_relaxed);
  into.m_strands.fetch_add(s.m_strands, std::memory_order_relaxed);
  atomic_max(into.m_end, s.m_pos);
  atomic_max(into.m_bend, s.m_bpos);
}

void ws_sync_at_least(detail::ws_sync& into, std::int64_t end, std::int64_t bend) noexcept {
  atomic_max(into.m_end, end);
  atomic_max(into.m_bend, bend);
}

}  // namespace weft::rt

namespace weft::detail {

using rt::close_piece;
using rt::set_strand;
using rt::this_fiber;
using rt::ticks;

void ws_fork_begin(ws_fork& f) noexcept {
  ws_strand* p = this_fiber()->m_ws;
  close_piece(*p, ticks());
  f.m_parent = p;
  ws_child_init(f.m_left, *p, false);
  ws_child_init(f.m_right, *p, true);
}

void ws_fork_end(ws_fork& f) noexcept {
  ws_strand& p = *f.m_parent;
  p.m_work += f.m_left.m_work + f.m_right.m_work;
  p.m_strands += f.m_left.m_strands + f.m_right.m_strands;
  p.m_pos = std::max({p.m_pos, f.m_left.m_pos, f.m_right.m_pos});
  p.m_bpos = std::max({p.m_bpos, f.m_left.m_bpos, f.m_right.m_bpos});
  set_strand(*this_fiber(), &p);
  p.m_start = ticks();
}

ws_strand* ws_enter(ws_strand& s) noexcept {
  rt::fiber& f = *this_fiber();
  ws_strand* previous = f.m_ws;
  set_strand(f, &s);
  s.m_start = ticks();
  return previous;
}

void ws_leave(ws_strand& s, ws_strand* previous) noexcept {
  close_piece(s, ticks());
  set_strand(*this_fiber(), previous);
}

ws_strand* ws_suspend_point() noexcept {
  rt::fiber* f = this_fiber();
  if (f == nullptr || f->m_ws == nullptr || f->m_ws->m_start == 0) return nullptr;
  ws_strand* s = f->m_ws;
  const std::uint64_t now = ticks();
  close_piece(*s, now);
  s->m_start = now;
  f->m_ws_lent = true;  // the caller may queue s with the coroutine
  return s;
}

void ws_set_current(ws_strand* s) noexcept {
  if (rt::fiber* f = this_fiber()) set_strand(*f, s);
}

void ws_restart(ws_strand& s) noexcept {
  rt::fiber* f = this_fiber();
  if (f == nullptr) {
    s.m_start = 0;  // off any worker (resumed there by another library): not measured
    return;
  }
  set_strand(*f, &s);
  s.m_start = ticks();
}

ws_strand* ws_chain_begin() noexcept {
  rt::fiber* f = this_fiber();
  if (f == nullptr || f->m_ws == nullptr) return nullptr;
  f->m_ws_lent = false;  // running here, the chain's from now on
  return f->m_ws;
}

void ws_chain_returned(ws_strand& s) noexcept {
  rt::fiber& f = *this_fiber();  // the same fiber, maybe on another thread
  // Still this fiber's and not handed on at a suspension point of weft's:
  // the chain suspended in an awaitable of another library, which resumes
  // it off this fiber, where nothing is measured. No other thread touches s
  // (it is not queued with the chain): its open piece ends here.
  if (f.m_ws == &s && !f.m_ws_lent) close_piece(s, ticks());
  set_strand(f, nullptr);
}

void ws_child_end(ws_strand& s, ws_sync& into) noexcept {
  rt::fiber* f = this_fiber();
  // Off any worker, a coroutine child ends where an awaitable of another
  // library resumed it: its open piece began on a worker before that
  // suspension and holds the wait, and nothing is measured off a worker.
  if (f == nullptr) s.m_start = 0;
  close_piece(s, ticks());
  into.m_work.fetch_add(s.m_work, std::memory_order_relaxed);
  into.m_strands.fetch_add(s.m_strands, std::memory_order_relaxed);
  rt::atomic_max(into.m_end, s.m_pos);
  rt::atomic_max(into.m_bend, s.m_bpos);
  // The fiber goes on with whatever resumes next (the next child of the
  // chain, the parent, or its loop): nothing measured until one says so.
  if (f != nullptr) set_strand(*f, nullptr);
}

ws_strand* ws_spawn_point(bool pause) noexcept {
  rt::fiber* f = this_fiber();
  if (f == nullptr || f->m_ws == nullptr) return nullptr;
  ws_strand* s = f->m_ws;
  const std::uint64_t now = ticks();
  close_piece(*s, now);
  if (!pause) s->m_start = now;
  if (pause) f->m_ws_lent = true;  // a coroutine's join: whoever ends it last takes s back
  return s;
}

void ws_child_init(ws_strand& s, const ws_strand& parent, bool stealable) noexcept {
  const ws_measure& m = *parent.m_measure;
  const std::int64_t spawn = stealable ? m.m_split : 0;
  s.m_measure = parent.m_measure;
  s.m_work = spawn;
  s.m_pos = parent.m_pos + spawn;
  s.m_bpos = parent.m_bpos + spawn + (stealable ? m.m_burden : 0);
  s.m_start = 0;
  s.m_strands = 1;
}

void ws_join(ws_strand& parent, ws_sync& from) noexcept {
  const std::uint64_t now = ticks();
  close_piece(parent, now);
  parent.m_work += from.m_work.exchange(0, std::memory_order_relaxed);
  parent.m_strands += from.m_strands.exchange(0, std::memory_order_relaxed);
  parent.m_pos = std::max(parent.m_pos, from.m_end.exchange(0, std::memory_order_relaxed));
  parent.m_bpos = std::max(parent.m_bpos, from.m_bend.exchange(0, std::memory_order_relaxed));
  rt::fiber* f = this_fiber();
  if (f == nullptr) return;  // a coroutine resumed off any worker: goes on unmeasured (m_start stays 0)
  set_strand(*f, &parent);
  parent.m_start = now;
}

bool ws_active() noexcept {
  const rt::fiber* f = this_fiber();
  return f != nullptr && f->m_ws != nullptr;
}

bool ws_spawn_measured() noexcept {
  const rt::worker* w = rt::current_worker();
  return w != nullptr && w->m_current->m_ws != nullptr && !w->real_stack_low();
}

void ws_measure_call(void (*fn)(void*), void* arg, ws_result& out) {
  static std::atomic<std::uint64_t> ids{0};
  rt::fiber* f = this_fiber();
  // The call's reference, given up on every way out; may throw std::bad_alloc
  // (nothing done yet).
  struct holder {
    ws_measure* m_measure = new ws_measure;
    holder() = default;
    holder(const holder&) = delete;
    holder& operator=(const holder&) = delete;
    ~holder() { rt::ws_release(m_measure); }
  } hold;
  ws_measure& m = *hold.m_measure;
  // A measurement inside a measured strand is part of that strand: its work
  // adds to the strand's work, its span (and burdened span) to the strand's
  // position, as a nested call's would.
  ws_strand* outer = f->m_ws;
  if (outer != nullptr) {
    close_piece(*outer, ticks());
    set_strand(*f, nullptr);
  }
  m.m_id = ids.fetch_add(1, std::memory_order_relaxed) + 1;
  m.m_clock_cost = rt::clock_ticks();
  m.m_split = rt::join_ticks();
  m.m_burden = 2 * rt::migration_ticks() + m.m_split;
  m.m_root = {&m, 0, 0, 0, 0, 1};
  set_strand(*f, &m.m_root);
  m.m_root.m_start = ticks();
  auto finish = [&] {
    close_piece(m.m_root, ticks());
    // Spawns that end from now on are in no result (rt::ws_measure_over).
    m.m_over.store(true, std::memory_order_release);
    rt::fiber& now = *this_fiber();  // the same fiber, maybe on another thread
    if (outer != nullptr) {
      outer->m_work += m.m_root.m_work;
      outer->m_strands += m.m_root.m_strands;
      outer->m_pos += m.m_root.m_pos;
      outer->m_bpos += m.m_root.m_bpos;
      set_strand(now, outer);
      outer->m_start = ticks();
    } else {
      set_strand(now, nullptr);
    }
  };
  try {
    fn(arg);
  } catch (...) {
    finish();
    throw;
  }
  finish();
  const auto per_us = static_cast<double>(rt::ticks_per_us());
  auto ns = [per_us](std::int64_t t) { return static_cast<std::int64_t>(static_cast<double>(t) * 1000.0 / per_us); };
  out.m_work_ns = ns(m.m_root.m_work);
  out.m_span_ns = ns(m.m_root.m_pos);
  out.m_burdened_span_ns = ns(m.m_root.m_bpos);
  out.m_burden_ns = ns(m.m_burden);
  out.m_strands = m.m_root.m_strands;
}

}  // namespace weft::detail

// ---- WEFT_WORKSPAN: every call from outside a runtime, measured and reported at exit ----

namespace weft::rt {

namespace {

struct site_totals {
  std::string m_symbol;  // demangled, where the object exports one at the site
  std::uint64_t m_calls = 0;
  std::int64_t m_work_ns = 0;
  std::int64_t m_span_ns = 0;
  std::int64_t m_burdened_span_ns = 0;
  std::int64_t m_burden_ns = 0;  // of the latest call
  std::uint64_t m_strands = 0;
  int m_workers = 0;
};

// Only around a measured call's record and the final write, and held by
// fork() (lock_workspan_report_for_fork): constant-initialised, no
// initialisation guard.
std::mutex g_report_lock;

struct report_state {
  // By object file and offset in it, named when the call is recorded: a
  // library unloaded before the exit keeps its name, and one loaded later at
  // the same address has sites of its own.
  std::map<std::pair<std::string, std::uintptr_t>, site_totals> m_sites;
  std::string m_path;
  std::string m_base_path;  // WEFT_WORKSPAN's value
  // The process whose calls m_sites holds: a forked child's first recorded
  // call starts a report of its own (child_path).
  pid_t m_pid = 0;
  // The handler at exit has run (in this process, or in the parent before
  // the fork): a call recorded later (from a static destructor, or on
  // another thread while the process exits) writes the report again. That
  // write may be cut off by the end of the process: the report is replaced
  // whole (replacing_file), never left in part.
  bool m_exited = false;
  // The last write's failure (an errno, 0: it succeeded) and its path: a
  // failure is said once on stderr, not again at each later write that
  // fails the same way (each call from a static destructor writes again).
  int m_failed = 0;
  std::string m_failed_path;
};

// WEFT_WORKSPAN, read once by the first call from outside: -1 not read yet,
// 0 off, 1 on. Read under g_report_start, which fork() takes
// (lock_workspan_start_for_fork): a forked child never finds the reading
// half done. (A function-local static's initialisation guard, held by a
// thread that a fork does not copy, hung the child's first call for ever.)
constinit std::atomic<int> g_reporting{-1};
std::mutex g_report_start;
// Set once under g_report_start, before g_reporting becomes 1 (release);
// never destroyed: calls may still end while static destructors run.
report_state* g_report = nullptr;

// Only once reporting is on (workspan_reporting() returned true).
report_state& report() noexcept { return *g_report; }

// The length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF), or 0.
std::size_t utf8_length(const std::string& s, std::size_t i) noexcept {
  const auto byte = [&](std::size_t k) { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0u; };
  const unsigned b0 = byte(i);
  std::size_t n = 0;
  unsigned lo = 0x80;  // the range of the second byte
  unsigned hi = 0xbf;
  if (b0 < 0x80) return 1;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    n = 2;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    n = 3;
    if (b0 == 0xe0) lo = 0xa0;
    if (b0 == 0xed) hi = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    n = 4;
    if (b0 == 0xf0) lo = 0x90;
    if (b0 == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xbf) return 0;
  }
  return n;
}

// s as the contents of a JSON string: quotes, backslashes and control
// characters escaped, and each byte that is not part of well-formed UTF-8 (a
// file name may hold any bytes) replaced by U+FFFD, so that the report stays
// valid JSON.
std::string json_escape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    const std::size_t n = utf8_length(s, i);
    if (n == 0) {
      out += "\\ufffd";
      ++i;
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
      ++i;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
      ++i;
    } else {
      out.append(s, i, n);
      i += n;
    }
  }
  return out;
}

// Where a forked child writes its report: the path with "-PID" before its
// extension (ws.json: ws-4242.json), so that parent and child never write one
// file.
std::string child_path(const std::string& path, pid_t pid) {
  const std::size_t slash = path.find_last_of('/');
  const std::size_t dot = path.find_last_of('.');
  const std::size_t name = slash == std::string::npos ? 0 : slash + 1;
  const std::size_t cut = dot != std::string::npos && dot > name ? dot : path.size();  // ".json", not ".hidden"
  return path.substr(0, cut) + "-" + std::to_string(pid) + path.substr(cut);
}

// Where a call site's code is: its object file and the offset in it (for
// addr2line), else no object and the address; `symbol` the mangled name when
// the object exports one at the site. Names valid while the object is loaded.
struct site_place {
  std::string m_object;
  std::uintptr_t m_offset = 0;
  const char* m_symbol = nullptr;
};

site_place describe_site(const void* site) {
  site_place out;
  out.m_offset = reinterpret_cast<std::uintptr_t>(site);
  Dl_info info{};
  if (dladdr(site, &info) == 0) return out;
  if (info.dli_fname != nullptr) out.m_object = info.dli_fname;
  out.m_offset -= reinterpret_cast<std::uintptr_t>(info.dli_fbase);
  if (info.dli_sname != nullptr && info.dli_saddr == site) out.m_symbol = info.dli_sname;
  return out;
}

std::string demangled(const char* symbol) {
  if (symbol == nullptr) return {};
  int status = 0;
  char* name = abi::__cxa_demangle(symbol, nullptr, nullptr, &status);
  std::string out = status == 0 && name != nullptr ? name : symbol;
  std::free(name);
  return out;
}

// Records how the latest write of r ended (error 0: written) and says a
// failure on stderr unless the write before failed the same way. Under
// g_report_lock.
void say_failure(report_state& r, int error) noexcept {
  const bool again = error != 0 && error == r.m_failed && r.m_path == r.m_failed_path;
  r.m_failed = error;
  if (error == 0 || again) return;
  try {
    r.m_failed_path = r.m_path;
  } catch (...) {
    r.m_failed_path.clear();  // no memory: said again next time
  }
  std::fprintf(stderr, "weft: WEFT_WORKSPAN: cannot write %s: %s\n", r.m_path.c_str(), std::strerror(error));
}

void write_report() noexcept {
  report_state& r = report();
  std::lock_guard<std::mutex> lock(g_report_lock);
  if (r.m_pid != getpid()) return;  // a forked child that recorded no call of its own: the parent's report
  replacing_file out(r.m_path);     // whole or not at all, also when the process ends meanwhile
  if (!out.is_open()) {
    say_failure(r, out.open_error());
    return;
  }
  out.write("{\n  \"version\": 1,\n  \"unit\": \"ns\",\n  \"sites\": [");
  bool first = true;
  for (const auto& [place, t] : r.m_sites) {
    const auto& [object, offset] = place;
    const double parallelism =
        t.m_span_ns > 0 ? static_cast<double>(t.m_work_ns) / static_cast<double>(t.m_span_ns) : 0;
    const double burdened =
        t.m_burdened_span_ns > 0 ? static_cast<double>(t.m_work_ns) / static_cast<double>(t.m_burdened_span_ns) : 0;
    out.print(
        "%s\n    {\"object\": \"%s\", \"offset\": \"0x%zx\", \"symbol\": \"%s\", \"calls\": %llu, "
        "\"workers\": %d, \"work\": %lld, \"span\": %lld, \"burdened_span\": %lld, \"burden\": %lld, "
        "\"strands\": %llu, \"parallelism\": %.3f, \"burdened_parallelism\": %.3f}",
        first ? "" : ",", json_escape(object).c_str(), static_cast<std::size_t>(offset),
        json_escape(t.m_symbol).c_str(), static_cast<unsigned long long>(t.m_calls), t.m_workers,
        static_cast<long long>(t.m_work_ns), static_cast<long long>(t.m_span_ns),
        static_cast<long long>(t.m_burdened_span_ns), static_cast<long long>(t.m_burden_ns),
        static_cast<unsigned long long>(t.m_strands), parallelism, burdened);
    first = false;
  }
  out.write("\n  ]\n}\n");
  // A report that could not be written in full says so, with the reason.
  say_failure(r, out.finish());
}

struct measured_call {
  void (*m_fn)(void*);
  void* m_arg;
  detail::ws_result m_result{};

  static void run(void* p) {
    auto* c = static_cast<measured_call*>(p);
    detail::ws_measure_call(c->m_fn, c->m_arg, c->m_result);
  }
};

}  // namespace

void lock_workspan_report_for_fork() noexcept { g_report_lock.lock(); }
void unlock_workspan_report_after_fork() noexcept { g_report_lock.unlock(); }

void lock_workspan_start_for_fork() noexcept { g_report_start.lock(); }
void unlock_workspan_start_after_fork() noexcept { g_report_start.unlock(); }

namespace {

[[gnu::noinline, gnu::cold]] bool start_reporting() {
  std::lock_guard<std::mutex> lock(g_report_start);
  if (const int on = g_reporting.load(std::memory_order_relaxed); on >= 0) return on != 0;
  const char* path = std::getenv("WEFT_WORKSPAN");
  if (path == nullptr || !file_path_problem(path).empty()) {  // the runtime's config says why
    g_reporting.store(0, std::memory_order_release);
    return false;
  }
  auto* r = new report_state;
  r->m_base_path = path;
  r->m_path = path;
  r->m_pid = getpid();
  g_report = r;
  register_at_exit([] {
    {
      std::lock_guard<std::mutex> lock(g_report_lock);
      report().m_exited = true;
    }
    write_report();
  });
  // Pairs with workspan_reporting's acquire: g_report and its fields.
  g_reporting.store(1, std::memory_order_release);
  return true;
}

}  // namespace

bool workspan_reporting() {
  const int on = g_reporting.load(std::memory_order_acquire);
  if (WEFT_LIKELY(on >= 0)) return on != 0;
  return start_reporting();
}

void call_measured(scheduler& s, void (*fn)(void*), void* arg, const void* site,
                   void (*call)(scheduler&, void (*)(void*), void*)) {
  measured_call c{fn, arg};
  // Read before the call: once it has ended, the runtime's destructor (on
  // another thread, waiting for this call) may free s.
  const int workers = s.num_workers();
  call(s, &measured_call::run, &c);  // rethrows what fn threw: that call is not recorded
  // Recorded by the calling thread (from outside), once the call is over,
  // without touching s again.
  report_state& r = report();
  site_place place;
  try {
    place = describe_site(site);
  } catch (...) {
    place = site_place{{}, reinterpret_cast<std::uintptr_t>(site), nullptr};  // no memory for the name
  }
  bool again = false;
  {
    std::lock_guard<std::mutex> lock(g_report_lock);
    if (const pid_t pid = getpid(); pid != r.m_pid) {
      // The first call recorded in a forked child: a report of its own.
      r.m_sites.clear();
      r.m_path = written_in_place(r.m_base_path) ? r.m_base_path : child_path(r.m_base_path, pid);
      r.m_pid = pid;
    }
    site_totals& t = r.m_sites[{std::move(place.m_object), place.m_offset}];
    if (t.m_calls == 0 && place.m_symbol != nullptr) {
      try {
        t.m_symbol = demangled(place.m_symbol);
      } catch (...) {
        // no memory for the name: the object and offset alone
      }
    }
    ++t.m_calls;
    t.m_work_ns += c.m_result.m_work_ns;
    t.m_span_ns += c.m_result.m_span_ns;
    t.m_burdened_span_ns += c.m_result.m_burdened_span_ns;
    t.m_burden_ns = c.m_result.m_burden_ns;
    t.m_strands += c.m_result.m_strands;
    t.m_workers = workers;
    again = r.m_exited;
  }
  if (again) write_report();  // recorded after the report was written at exit
}

}  // namespace weft::rt
