// SPDX-License-Identifier: MIT
// Stress tests of runtime/sleep.hpp, the parking protocol, driven the way
// the runtime's workers drive it (worker::find_work / search / park):
//
//   pop local work; else start_search(), look for work for a while; else
//   prepare_park(w), re-check every source of work, then cancel_park(w) or
//   commit_park(w); found_work() when a search succeeds; a producer makes
//   work visible and then calls notify_one().
//
// The work source is a pair of counters (published, claimed). A lost wake-up
// shows as a stall: work visible, every worker parked, nobody coming. Each
// test waits for progress with a deadline; a stall fails the test, and then
// notify_all() unparks everyone so that the threads can be joined.
#include "sleep.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cinttypes>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "seeded_rng.hpp"
#include "stress.hpp"

namespace {

namespace st = weft_test::stress;
using weft::rt::sleep_set;

// Work items, from several sources (the driving threads and every worker,
// as the runtime has an injection queue and a deque per worker). Items
// [claimed, published) of a source are visible. Each source has one writer,
// which publishes with a plain release store, as a deque's push stores its
// bottom index: no read-modify-write that would fence on its own, so the
// fences of the protocol have to do their job.
class work_source {
 public:
  explicit work_source(int sources) : m_slots(static_cast<std::size_t>(sources)) {}

  // Source s (only ever one thread) makes n more items visible.
  void publish(int s, std::uint64_t n) {
    std::atomic<std::uint64_t>& p = m_slots[static_cast<std::size_t>(s)].m_published;
    p.store(p.load(std::memory_order_relaxed) + n, std::memory_order_release);
  }
  // Takes one visible item of source s (a successful pop or steal).
  bool try_claim_from(int s) {
    slot& sl = m_slots[static_cast<std::size_t>(s)];
    std::uint64_t c = sl.m_claimed.load(std::memory_order_acquire);
    while (c < sl.m_published.load(std::memory_order_acquire)) {
      if (sl.m_claimed.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        return true;
      }
    }
    return false;
  }
  // Takes one visible item of any source, trying them from `start` on (a
  // steal round).
  bool try_claim(std::uint64_t start) {
    const std::size_t n = m_slots.size();
    for (std::size_t k = 0; k < n; ++k) {
      if (try_claim_from(static_cast<int>((start + k) % n))) return true;
    }
    return false;
  }
  // The re-check between prepare_park and commit_park: plain loads.
  bool visible() const {
    for (const slot& sl : m_slots) {
      if (sl.m_claimed.load(std::memory_order_acquire) < sl.m_published.load(std::memory_order_acquire)) return true;
    }
    return false;
  }
  void done_one() { m_processed.fetch_add(1, std::memory_order_release); }

  std::uint64_t processed() const { return m_processed.load(std::memory_order_acquire); }
  std::uint64_t published() const {
    std::uint64_t n = 0;
    for (const slot& sl : m_slots) n += sl.m_published.load(std::memory_order_acquire);
    return n;
  }
  std::uint64_t claimed() const {
    std::uint64_t n = 0;
    for (const slot& sl : m_slots) n += sl.m_claimed.load(std::memory_order_acquire);
    return n;
  }
  // Exact when the only publishers besides the workers are quiet: an item
  // counted as processed happens-before this read, and so do the children
  // it published.
  bool all_processed() const {
    const std::uint64_t done = processed();
    return done == published();
  }

 private:
  struct alignas(weft::rt::k_false_sharing) slot {
    std::atomic<std::uint64_t> m_published{0};
    alignas(weft::rt::k_cache_line) std::atomic<std::uint64_t> m_claimed{0};
  };
  std::vector<slot> m_slots;
  alignas(weft::rt::k_false_sharing) std::atomic<std::uint64_t> m_processed{0};
};

struct worker_counts {
  std::uint64_t items = 0;
  std::uint64_t spawned = 0;
  std::uint64_t commits = 0;  // commit_park() calls: real sleeps
  std::uint64_t cancels = 0;  // cancel_park() calls: the re-check found work
};

// N threads running the runtime's find-work-or-park loop over one
// work_source, with knobs for how the tests stress it.
class worker_pool {
 public:
  struct options {
    int workers = 4;
    // Worker w publishes its children as source first_source + w.
    int first_source = 1;
    std::uint64_t seed = 0;
    // Out of 1024: how often processing an item publishes a child item (a
    // worker's push), while the pool's child budget lasts.
    std::uint64_t spawn_per_1024 = 0;
    // Tries of the work source while searching, before parking (0 to this).
    std::uint64_t max_search_tries = 64;
    // Called by worker w right after prepare_park(w), before the re-check.
    std::function<void(int, st::fast_rng&)> after_prepare;
  };

  worker_pool(work_source& src, st::errors& errs, options opt)
      : m_src(src),
        m_errs(errs),
        m_opt(std::move(opt)),
        m_sleep(m_opt.workers),
        m_counts(static_cast<std::size_t>(m_opt.workers)) {
    for (int w = 0; w < m_opt.workers; ++w) m_threads.emplace_back([this, w] { run(w); });
  }
  ~worker_pool() { stop(); }
  worker_pool(const worker_pool&) = delete;
  worker_pool& operator=(const worker_pool&) = delete;

  sleep_set& sleepers() { return m_sleep; }

  // Lets workers publish up to n more child items.
  void allow_children(std::uint64_t n) { m_child_budget.fetch_add(n, std::memory_order_relaxed); }

  // Workers inside commit_park() right now.
  int in_commit() const { return m_in_commit.load(std::memory_order_acquire); }

  // Stops the workers and joins them. The stop flag is part of the re-check
  // (as the runtime's stopping()), so one notify_all() must reach every
  // worker; if it does not, that is reported, and notify_all() repeats.
  void stop() {
    if (m_stopped) return;
    m_stopped = true;
    m_stop.store(true, std::memory_order_seq_cst);
    m_sleep.notify_all();
    if (!st::wait_until([this] { return m_exited.load(std::memory_order_acquire) == m_opt.workers; })) {
      m_errs.add("workers still parked " +
                 std::to_string(std::chrono::duration_cast<std::chrono::seconds>(st::k_stall_limit).count()) +
                 " s after stop + notify_all(): a lost wake-up at shutdown");
      while (m_exited.load(std::memory_order_acquire) != m_opt.workers) {
        m_sleep.notify_all();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    for (std::thread& t : m_threads) t.join();
  }

  // Unparks everyone after a detected stall, so that the test can end.
  void rescue() { m_sleep.notify_all(); }

  worker_counts totals() const {
    worker_counts t;
    for (const worker_counts& c : m_counts) {
      t.items += c.items;
      t.spawned += c.spawned;
      t.commits += c.commits;
      t.cancels += c.cancels;
    }
    return t;
  }

  bool stopping() const { return m_stop.load(std::memory_order_acquire); }

 private:
  void process(int w, worker_counts& c, st::fast_rng& r) {
    st::spin(r.below(64));
    if (m_opt.spawn_per_1024 != 0 && r.below(1024) < m_opt.spawn_per_1024) {
      std::uint64_t budget = m_child_budget.load(std::memory_order_relaxed);
      while (budget > 0 && !m_child_budget.compare_exchange_weak(budget, budget - 1, std::memory_order_relaxed)) {
      }
      if (budget > 0) {
        m_src.publish(m_opt.first_source + w, 1);  // a worker's push that made work visible ...
        m_sleep.notify_one();                      // ... wakes a sleeper if nobody searches
        ++c.spawned;
      }
    }
    ++c.items;
    m_src.done_one();
  }

  void run(int w) {
    worker_counts& c = m_counts[static_cast<std::size_t>(w)];
    st::fast_rng r(m_opt.seed * 31 + static_cast<std::uint64_t>(w) + 1);
    bool searching = false;
    for (;;) {
      if (m_src.try_claim_from(m_opt.first_source + w)) {  // the local pop
        if (searching) {
          searching = false;
          m_sleep.found_work();
        }
        process(w, c, r);
        continue;
      }
      if (stopping()) break;
      if (!searching) {
        m_sleep.start_search();
        searching = true;
      }
      bool found = false;
      const std::uint64_t tries = r.below(m_opt.max_search_tries + 1);
      for (std::uint64_t i = 0; i < tries && !found; ++i) {
        found = m_src.try_claim(r());
        if (!found) st::spin(8);
      }
      if (found) {
        searching = false;
        m_sleep.found_work();
        process(w, c, r);
        continue;
      }
      if (stopping()) break;
      m_sleep.prepare_park(w);
      searching = false;
      if (m_opt.after_prepare) m_opt.after_prepare(w, r);
      if (m_src.visible() || stopping()) {
        ++c.cancels;
        m_sleep.cancel_park(w);
      } else {
        ++c.commits;
        m_in_commit.fetch_add(1, std::memory_order_acq_rel);
        m_sleep.commit_park(w);
        m_in_commit.fetch_sub(1, std::memory_order_acq_rel);
      }
      searching = true;  // either way, this worker counts as searching now
    }
    if (searching) m_sleep.stop_search();
    m_exited.fetch_add(1, std::memory_order_release);
  }

  work_source& m_src;
  st::errors& m_errs;
  options m_opt;
  sleep_set m_sleep;
  std::vector<worker_counts> m_counts;
  std::vector<std::thread> m_threads;
  std::atomic<bool> m_stop{false};
  std::atomic<int> m_exited{0};
  std::atomic<int> m_in_commit{0};
  std::atomic<std::uint64_t> m_child_budget{0};
  bool m_stopped = false;
};

std::string describe(const work_source& src, worker_pool& pool) {
  return "published " + std::to_string(src.published()) + ", claimed " + std::to_string(src.claimed()) +
         ", processed " + std::to_string(src.processed()) + ", searching " +
         std::to_string(pool.sleepers().searching()) + ", in commit_park " + std::to_string(pool.in_commit());
}

// After the last item: every worker ends up parked and the searching count
// returns to zero (a leaked count would make every later notify_one() skip
// its wake-up).
void expect_all_parked(const work_source& src, worker_pool& pool, int workers, st::errors& errs) {
  if (!st::wait_until([&] { return pool.in_commit() == workers && pool.sleepers().searching() == 0; })) {
    errs.add("idle workers did not all park with a searching count of 0: " + describe(src, pool));
  }
}

// Rounds: a burst of items (each followed by notify_one(), from this thread,
// which is not a worker), then a wait until every item, including the
// children the workers spawn, is processed. The gaps between rounds let the
// workers go to sleep, so each burst meets workers searching, parking or
// parked. A lost wake-up leaves the round unfinished: a stall.
TEST(SleepStress, FindWorkOrParkRounds) {
  constexpr int workers = 4;
  weft_test::seeded_rng rng;
  st::errors errs;
  work_source src(1 + workers);
  worker_pool::options opt;
  opt.workers = workers;
  opt.seed = rng.seed();
  opt.spawn_per_1024 = 256;
  worker_pool pool(src, errs, opt);
  st::fast_rng r(rng.seed());
  std::uint64_t rounds = 0;
  const auto deadline = st::clock_type::now() + st::budget(3.0);
  while (st::clock_type::now() < deadline && !errs.any()) {
    ++rounds;
    const std::uint64_t burst = 1 + r.below(2 * workers);
    pool.allow_children(r.below(2 * workers));
    for (std::uint64_t i = 0; i < burst; ++i) {
      src.publish(0, 1);
      pool.sleepers().notify_one();
      if (r.one_in(4)) st::spin(r.below(256));
    }
    if (!st::wait_until([&] { return src.all_processed(); })) {
      errs.add("stall in round " + std::to_string(rounds) + ": " + describe(src, pool));
      pool.rescue();
      break;
    }
    // A gap: none (workers still searching), short (parking) or long (parked).
    switch (r.below(4)) {
      case 0: break;
      case 1: st::spin(r.below(2000)); break;
      case 2: std::this_thread::yield(); break;
      default: std::this_thread::sleep_for(std::chrono::microseconds(r.below(200))); break;
    }
  }
  if (!errs.any()) expect_all_parked(src, pool, workers, errs);
  pool.stop();
  const worker_counts t = pool.totals();
  st::report("seed %" PRIu64 ": %" PRIu64 " rounds, %" PRIu64 " items (%" PRIu64 " spawned by workers), %" PRIu64
             " parks, %" PRIu64 " cancelled parks",
             rng.seed(), rounds, src.published(), t.spawned, t.commits, t.cancels);
  EXPECT_FALSE(errs.any()) << errs.summary();
  EXPECT_EQ(src.processed(), src.published());
  EXPECT_EQ(t.items, src.published());
  EXPECT_EQ(pool.sleepers().searching(), 0);
  EXPECT_GT(t.commits, 0u) << "the workers never parked: the test did not exercise the protocol";
}

// Producers on other threads publish at random moments while the workers go
// to sleep and wake up. At the end every item is processed without any
// further notification, and the idle workers all park.
TEST(SleepStress, ConcurrentProducers) {
  constexpr int workers = 3;
  constexpr int producers = 3;
  weft_test::seeded_rng rng;
  st::errors errs;
  work_source src(producers + workers);
  worker_pool::options opt;
  opt.workers = workers;
  opt.seed = rng.seed();
  opt.first_source = producers;
  opt.spawn_per_1024 = 128;
  worker_pool pool(src, errs, opt);
  pool.allow_children(std::uint64_t{1} << 40);
  const auto deadline = st::clock_type::now() + st::budget(3.0);
  std::vector<std::thread> threads;
  std::atomic<std::uint64_t> produced{0};
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      st::fast_rng r(rng.seed() + 1000 + static_cast<std::uint64_t>(p));
      std::uint64_t n = 0;
      while (st::clock_type::now() < deadline && !errs.any()) {
        const std::uint64_t burst = 1 + r.below(4);
        for (std::uint64_t i = 0; i < burst; ++i) {
          src.publish(p, 1);
          pool.sleepers().notify_one();
        }
        n += burst;
        switch (r.below(3)) {
          case 0: st::spin(r.below(500)); break;
          case 1: std::this_thread::yield(); break;
          default: std::this_thread::sleep_for(std::chrono::microseconds(r.below(100))); break;
        }
        // A backlog means the workers cannot keep up (or stalled): let the
        // final check judge it instead of growing without bound.
        if (src.published() - src.processed() > 10000) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      produced.fetch_add(n);
    });
  }
  for (std::thread& t : threads) t.join();
  if (!st::wait_until([&] { return src.all_processed(); })) {
    errs.add("stall after the producers stopped: " + describe(src, pool));
    pool.rescue();
  }
  if (!errs.any()) expect_all_parked(src, pool, workers, errs);
  pool.stop();
  const worker_counts t = pool.totals();
  st::report("seed %" PRIu64 ": %" PRIu64 " items from %d producers, %" PRIu64 " spawned by workers, %" PRIu64
             " parks, %" PRIu64 " cancelled parks",
             rng.seed(), produced.load(), producers, t.spawned, t.commits, t.cancels);
  EXPECT_FALSE(errs.any()) << errs.summary();
  EXPECT_EQ(src.processed(), src.published());
  EXPECT_EQ(produced.load() + t.spawned, src.published());
  EXPECT_EQ(pool.sleepers().searching(), 0);
  EXPECT_GT(t.commits, 0u);
}

// The race of the parking protocol: workers held between prepare_park() and
// their re-check while notifications fire. Each iteration arms the window,
// often wakes the sleepers without work (so that they come back through the
// window), waits until every worker is either held in it or asleep in
// commit_park(), then publishes 1..K items with notify_one() after each, and
// releases the held workers before, between or after the notifications, each
// after its own random delay. Every item must then be processed: a notify
// that took a held worker's bit must reach it through cancel_park() or
// commit_park(). (The window holds workers only until the release of the
// iteration: a worker that never gets past prepare_park() would stall any
// protocol.)
TEST(SleepStress, NotifyWhileWaitersBetweenPrepareAndCommit) {
  constexpr int workers = 3;
  weft_test::seeded_rng rng;
  st::errors errs;
  work_source src(1 + workers);

  std::mutex window_mutex;
  bool armed = false;       // workers entering the window are held; guarded by window_mutex
  std::uint64_t epoch = 0;  // guarded
  int held = 0;             // workers held in the window of this epoch; guarded
  std::atomic<std::uint64_t> released{0};
  std::atomic<bool> abandon{false};
  std::uint64_t held_at_notify = 0;
  std::uint64_t asleep_at_notify = 0;

  auto hold = [&](int, st::fast_rng& r) {
    std::uint64_t mine = 0;
    {
      std::lock_guard lock(window_mutex);
      if (!armed) return;
      mine = epoch;
      ++held;
    }
    while (released.load(std::memory_order_acquire) <= mine && !abandon.load(std::memory_order_acquire)) {
      std::this_thread::yield();
    }
    st::spin(r.below(4) == 0 ? 0 : r.below(400));
  };
  auto arm = [&] {
    std::lock_guard lock(window_mutex);
    armed = true;
  };
  auto release = [&] {
    std::lock_guard lock(window_mutex);
    armed = false;
    held = 0;
    ++epoch;
    released.store(epoch, std::memory_order_release);
  };
  auto held_now = [&] {
    std::lock_guard lock(window_mutex);
    return held;
  };

  worker_pool::options opt;
  opt.workers = workers;
  opt.seed = rng.seed();
  opt.max_search_tries = 8;
  opt.after_prepare = hold;
  worker_pool pool(src, errs, opt);
  st::fast_rng r(rng.seed());
  std::uint64_t iterations = 0;
  const auto deadline = st::clock_type::now() + st::budget(3.0);
  while (st::clock_type::now() < deadline && !errs.any()) {
    ++iterations;
    arm();
    // Wake sleepers without work now and then, so that they come back
    // through the window and are held there.
    switch (r.below(4)) {
      case 0:
      case 1: pool.sleepers().notify_all(); break;
      case 2: pool.sleepers().notify_one(); break;
      default: break;
    }
    if (!st::wait_until([&] { return held_now() + pool.in_commit() == workers; })) {
      errs.add("iteration " + std::to_string(iterations) + ": a worker is neither held nor parked: " +
               describe(src, pool) + ", held " + std::to_string(held_now()));
      break;
    }
    const int h = held_now();
    held_at_notify += static_cast<std::uint64_t>(h);
    asleep_at_notify += static_cast<std::uint64_t>(workers - h);
    const std::uint64_t items = 1 + r.below(workers);
    const std::uint64_t release_at = r.below(items + 1);  // release before item release_at
    for (std::uint64_t i = 0; i <= items; ++i) {
      if (i == release_at) release();
      if (i == items) break;
      src.publish(0, 1);
      if (r.one_in(3)) st::spin(r.below(200));
      pool.sleepers().notify_one();
      if (r.one_in(3)) st::spin(r.below(200));
    }
    if (!st::wait_until([&] { return src.all_processed(); })) {
      errs.add("stall in iteration " + std::to_string(iterations) + ": " + describe(src, pool));
      break;
    }
  }
  abandon.store(true, std::memory_order_release);
  if (errs.any()) pool.rescue();
  pool.stop();
  const worker_counts t = pool.totals();
  st::report("seed %" PRIu64 ": %" PRIu64 " iterations, %" PRIu64 " items; at the notifications %" PRIu64
             " workers were held between prepare_park and the re-check, %" PRIu64 " asleep; %" PRIu64 " parks, %" PRIu64
             " cancelled parks",
             rng.seed(), iterations, src.published(), held_at_notify, asleep_at_notify, t.commits, t.cancels);
  EXPECT_FALSE(errs.any()) << errs.summary();
  EXPECT_EQ(src.processed(), src.published());
  EXPECT_EQ(pool.sleepers().searching(), 0);
  EXPECT_GT(held_at_notify, 0u);
}

}  // namespace
