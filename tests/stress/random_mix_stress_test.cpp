// SPDX-License-Identifier: MIT
// Stress test of the public API as a whole: several threads outside the
// runtime run random nested mixes of parallelize (plain and capped),
// parallel_for, parallel_reduce, join, task_group, weft::mutex,
// weft::condition_variable, weft::latch, weft::yield and exceptions against
// one runtime, while another thread creates and destroys runtimes of its own
// (and calls from them into the shared one). Every operation checks its
// result exactly; a hang is caught by the watchdog (tests/support/watchdog.hpp).
//
// An operation is a pure function of a 64-bit seed: the seed picks its kind,
// its sizes and its nested operations, and the operation returns mix(seed),
// so that its caller checks it too. A failure names the seed of the
// operation that failed; the test's seed (printed, WEFT_TEST_SEED reruns it)
// fixes every operation's seed, though not the interleavings.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <weft/weft.hpp>

#include "seeded_rng.hpp"
#include "stress.hpp"

namespace {

namespace st = weft_test::stress;

// splitmix64's finaliser: the value every operation returns for its seed.
constexpr std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

enum kind : int {
  k_parallelize,   // parallelize(n, fn): a sum over every index
  k_capped,        // parallelize(n, k, fn): each index once, at most k calls in flight
  k_for,           // parallel_for over a signed range, with and without a grain
  k_reduce,        // parallel_reduce with an associative, non-commutative combine
  k_join,          // join of two nested operations
  k_group,         // task_group with spawns from inside spawned calls
  k_mutex,         // weft::mutex, held across nested calls and yields; shared with outside threads
  k_condvar,       // producers and consumers on weft::condition_variable
  k_latch,         // tasks meeting at a weft::latch
  k_yield,         // weft::yield inside loop items
  k_throw_loop,    // exceptions from loop items (also through a nested join)
  k_throw_join,    // exceptions from either half of a join
  k_throw_group,   // exceptions from spawned calls; the group is reused afterwards
  k_throw_reduce,  // an exception from parallel_reduce's map
  k_kinds
};

constexpr std::array<const char*, k_kinds> k_kind_names{
    "parallelize", "capped", "parallel_for", "reduce",     "join",       "group",       "mutex",
    "condvar",     "latch",  "yield",        "throw-loop", "throw-join", "throw-group", "throw-reduce"};

// What throwing items throw: the tag says which item threw.
struct mix_error {
  std::uint64_t tag;
};

// A 2x2 matrix modulo 2^64: multiplication is associative, not commutative,
// and exact, so a reduction in any tree order must give the serial product.
struct mat {
  std::uint64_t a = 1, b = 0, c = 0, d = 1;
  friend bool operator==(const mat&, const mat&) = default;
};
mat operator*(const mat& x, const mat& y) {
  return {x.a * y.a + x.b * y.c, x.a * y.b + x.b * y.d, x.c * y.a + x.d * y.c, x.c * y.b + x.d * y.d};
}
mat mat_of(std::uint64_t h) { return {h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff, (h >> 24) & 0xff}; }

// A mutex and counter shared by every operation of every thread and runtime,
// and locked directly by the outside threads too: fibers and blocked threads
// wait on it together.
weft::mutex g_shared_mutex;
std::uint64_t g_shared_counter = 0;  // guarded by g_shared_mutex
std::atomic<std::uint64_t> g_shared_expected{0};

class mixer {
 public:
  explicit mixer(st::errors& errs) : m_errs(errs) {}

  // Runs the operation of `seed` with at most `depth` levels of operations
  // nested below it; returns mix(seed). Never throws.
  std::uint64_t op(std::uint64_t seed, int depth) {
    st::fast_rng rng(seed);
    const int k = static_cast<int>(rng.below(k_kinds));
    m_counts[static_cast<std::size_t>(k)].fetch_add(1, std::memory_order_relaxed);
    try {
      run(static_cast<kind>(k), seed, rng, depth);
    } catch (const mix_error& e) {
      fail(seed, k, "an exception escaped: mix_error " + std::to_string(e.tag));
    } catch (const std::exception& e) {
      fail(seed, k, std::string("an exception escaped: ") + e.what());
    }
    return mix(seed);
  }

  std::uint64_t count(int k) const { return m_counts[static_cast<std::size_t>(k)].load(); }
  std::uint64_t exceptions_caught() const { return m_caught.load(); }

 private:
  void fail(std::uint64_t seed, int k, const std::string& what) {
    m_errs.add(std::string(k_kind_names[static_cast<std::size_t>(k)]) + " (operation seed " + std::to_string(seed) +
               "): " + what);
  }

  // The nested operation of `seed` when depth allows, checked.
  void nested(std::uint64_t seed, int depth, std::uint64_t parent, int k) {
    if (depth <= 0) return;
    const std::uint64_t r = op(seed, depth - 1);
    if (r != mix(seed)) fail(parent, k, "a nested operation returned a wrong value");
  }

  void run(kind k, std::uint64_t seed, st::fast_rng& rng, int depth);

  void do_parallelize(std::uint64_t seed, st::fast_rng& rng, int depth);
  void do_capped(std::uint64_t seed, st::fast_rng& rng, int depth);
  void do_for(std::uint64_t seed, st::fast_rng& rng, int depth);
  void do_reduce(std::uint64_t seed, st::fast_rng& rng, int depth);
  void do_join(std::uint64_t seed, st::fast_rng& rng, int depth);
  void do_group(std::uint64_t seed, st::fast_rng& rng, int depth);
  void do_mutex(std::uint64_t seed, st::fast_rng& rng, int depth);
  void do_condvar(std::uint64_t seed, st::fast_rng& rng, int depth);
  void do_latch(std::uint64_t seed, st::fast_rng& rng, int depth);
  void do_yield(std::uint64_t seed, st::fast_rng& rng, int depth);
  void do_throw_loop(std::uint64_t seed, st::fast_rng& rng, int depth);
  void do_throw_join(std::uint64_t seed, st::fast_rng& rng, int depth);
  void do_throw_group(std::uint64_t seed, st::fast_rng& rng, int depth);
  void do_throw_reduce(std::uint64_t seed, st::fast_rng& rng, int depth);

  st::errors& m_errs;
  std::array<std::atomic<std::uint64_t>, k_kinds> m_counts{};
  std::atomic<std::uint64_t> m_caught{0};
};

void mixer::run(kind k, std::uint64_t seed, st::fast_rng& rng, int depth) {
  switch (k) {
    case k_parallelize: return do_parallelize(seed, rng, depth);
    case k_capped: return do_capped(seed, rng, depth);
    case k_for: return do_for(seed, rng, depth);
    case k_reduce: return do_reduce(seed, rng, depth);
    case k_join: return do_join(seed, rng, depth);
    case k_group: return do_group(seed, rng, depth);
    case k_mutex: return do_mutex(seed, rng, depth);
    case k_condvar: return do_condvar(seed, rng, depth);
    case k_latch: return do_latch(seed, rng, depth);
    case k_yield: return do_yield(seed, rng, depth);
    case k_throw_loop: return do_throw_loop(seed, rng, depth);
    case k_throw_join: return do_throw_join(seed, rng, depth);
    case k_throw_group: return do_throw_group(seed, rng, depth);
    case k_throw_reduce: return do_throw_reduce(seed, rng, depth);
    case k_kinds: break;
  }
}

void mixer::do_parallelize(std::uint64_t seed, st::fast_rng& rng, int depth) {
  const std::int64_t n = static_cast<std::int64_t>(rng.below(4000));
  const std::int64_t nest_a = n > 0 ? static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(n))) : -1;
  const std::int64_t nest_b = n > 0 ? static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(n))) : -1;
  std::atomic<std::uint64_t> sum{0};
  weft::parallelize(n, [&](std::int64_t i) {
    if (i == nest_a || i == nest_b) nested(mix(seed + 1 + static_cast<std::uint64_t>(i)), depth, seed, k_parallelize);
    sum.fetch_add(mix(seed ^ static_cast<std::uint64_t>(i)), std::memory_order_relaxed);
  });
  std::uint64_t want = 0;
  for (std::int64_t i = 0; i < n; ++i) want += mix(seed ^ static_cast<std::uint64_t>(i));
  if (sum.load() != want) fail(seed, k_parallelize, "wrong sum over " + std::to_string(n) + " items");
}

void mixer::do_capped(std::uint64_t seed, st::fast_rng& rng, int depth) {
  const std::uint32_t n = static_cast<std::uint32_t>(rng.below(600));
  const int cap = 1 + static_cast<int>(rng.below(4));
  const std::uint32_t nest = n > 0 ? static_cast<std::uint32_t>(rng.below(n)) : n;
  const std::uint32_t yield_every = 1 + static_cast<std::uint32_t>(rng.below(64));
  std::unique_ptr<std::atomic<std::uint8_t>[]> hits(new std::atomic<std::uint8_t>[n]());
  std::atomic<int> in_flight{0};
  std::atomic<int> peak{0};
  weft::parallelize(n, cap, [&](std::uint32_t i) {
    const int now = in_flight.fetch_add(1) + 1;
    for (int p = peak.load(); now > p && !peak.compare_exchange_weak(p, now);) {
    }
    hits[i].fetch_add(1, std::memory_order_relaxed);
    if (i % yield_every == 0) weft::yield();  // a suspended call still counts as in flight
    if (i == nest) nested(mix(seed + 7), depth, seed, k_capped);
    in_flight.fetch_sub(1);
  });
  for (std::uint32_t i = 0; i < n; ++i) {
    if (hits[i].load() != 1) {
      fail(seed, k_capped,
           "index " + std::to_string(i) + " of " + std::to_string(n) + " ran " + std::to_string(hits[i].load()) +
               " times");
      break;
    }
  }
  if (peak.load() > cap) {
    fail(seed, k_capped, std::to_string(peak.load()) + " calls in flight with a cap of " + std::to_string(cap));
  }
}

void mixer::do_for(std::uint64_t seed, st::fast_rng& rng, int depth) {
  const std::int64_t first = static_cast<std::int64_t>(rng.below(2'000'001)) - 1'000'000;
  const std::int64_t len = static_cast<std::int64_t>(rng.below(5000));
  const std::int64_t last = first + len;
  const bool with_grain = rng.one_in(2);
  const std::int64_t grain = 1 + static_cast<std::int64_t>(rng.below(64));
  const std::int64_t nest =
      len > 0 ? first + static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(len))) : last;
  std::unique_ptr<std::atomic<std::uint8_t>[]> hits(new std::atomic<std::uint8_t>[static_cast<std::size_t>(len)]());
  std::atomic<int> bad_chunks{0};
  auto body = [&](std::int64_t b, std::int64_t e) {
    if (b >= e || b < first || e > last || (with_grain && e - b < grain && e != last)) {
      bad_chunks.fetch_add(1);
      return;
    }
    for (std::int64_t i = b; i < e; ++i) {
      hits[static_cast<std::size_t>(i - first)].fetch_add(1, std::memory_order_relaxed);
      if (i == nest) nested(mix(seed + 3), depth, seed, k_for);
    }
  };
  if (with_grain) {
    weft::parallel_for(first, last, grain, body);
  } else {
    weft::parallel_for(first, last, body);
  }
  if (bad_chunks.load() != 0) {
    fail(seed, k_for,
         std::to_string(bad_chunks.load()) + " chunks out of range or below the grain " +
             std::to_string(with_grain ? grain : 1));
  }
  for (std::int64_t i = 0; i < len; ++i) {
    if (hits[static_cast<std::size_t>(i)].load() != 1) {
      fail(seed, k_for,
           "index " + std::to_string(first + i) + " ran " + std::to_string(hits[static_cast<std::size_t>(i)].load()) +
               " times");
      break;
    }
  }
}

void mixer::do_reduce(std::uint64_t seed, st::fast_rng& rng, int depth) {
  const std::uint32_t first = static_cast<std::uint32_t>(rng.below(1000));
  const std::uint32_t last = first + static_cast<std::uint32_t>(rng.below(rng.one_in(4) ? 40000 : 3000));
  const std::uint32_t nest = first == last ? last : first + static_cast<std::uint32_t>(rng.below(last - first));
  const mat got = weft::parallel_reduce(
      first, last, mat{},
      [&](std::uint32_t i) {
        if (i == nest) nested(mix(seed + 5), depth, seed, k_reduce);
        return mat_of(mix(seed ^ i));
      },
      [](const mat& x, const mat& y) { return x * y; });
  mat want{};
  for (std::uint32_t i = first; i < last; ++i) want = want * mat_of(mix(seed ^ i));
  if (!(got == want))
    fail(seed, k_reduce, "wrong product over [" + std::to_string(first) + ", " + std::to_string(last) + ")");
}

void mixer::do_join(std::uint64_t seed, st::fast_rng& rng, int depth) {
  const std::uint64_t sf = rng();
  const std::uint64_t sg = rng();
  auto [a, b] = weft::join([&] { return depth > 0 ? op(sf, depth - 1) : mix(sf); },
                           [&] { return depth > 0 ? op(sg, depth - 1) : mix(sg); });
  if (a != mix(sf) || b != mix(sg)) fail(seed, k_join, "wrong results");
}

void mixer::do_group(std::uint64_t seed, st::fast_rng& rng, int depth) {
  const int m = 1 + static_cast<int>(rng.below(40));
  const int nest = static_cast<int>(rng.below(static_cast<std::uint64_t>(m)));
  std::atomic<int> calls{0};
  weft::task_group g;
  int want = 0;
  for (int j = 0; j < m; ++j) {
    const bool respawn = j % 5 == 0;
    want += respawn ? 3 : 1;
    g.spawn([&, j, respawn] {
      calls.fetch_add(1);
      if (respawn) {  // spawns from inside a spawned call, into the same group
        for (int r = 0; r < 2; ++r) g.spawn([&] { calls.fetch_add(1); });
      }
      if (j == nest) nested(mix(seed + 11), depth, seed, k_group);
    });
  }
  g.wait();
  if (calls.load() != want) {
    fail(seed, k_group, std::to_string(calls.load()) + " calls instead of " + std::to_string(want));
  }
}

void mixer::do_mutex(std::uint64_t seed, st::fast_rng& rng, int depth) {
  const int n = static_cast<int>(rng.below(300));
  const int hold = n > 0 ? static_cast<int>(rng.below(static_cast<std::uint64_t>(n))) : -1;
  const bool shared = rng.one_in(2);
  weft::mutex local;
  std::uint64_t counter = 0;  // guarded by local; deliberately not atomic
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  weft::mutex& m = shared ? g_shared_mutex : local;
  std::uint64_t& c = shared ? g_shared_counter : counter;
  if (shared) g_shared_expected.fetch_add(static_cast<std::uint64_t>(n), std::memory_order_relaxed);
  weft::parallelize(n, [&](int i) {
    std::lock_guard lock(m);
    if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
    ++c;
    if (i == hold) {
      // Held across a nested parallel call: the fiber may resume elsewhere
      // and unlock from another thread.
      std::atomic<int> inner{0};
      weft::parallelize(100, [&](int) { inner.fetch_add(1); });
      if (inner.load() != 100) fail(seed, k_mutex, "nested call under the mutex lost items");
      // A shallow nested operation while other items queue on the mutex;
      // not under the shared mutex, which a nested operation may lock.
      if (!shared) nested(mix(seed + 13), depth > 1 ? 1 : depth, seed, k_mutex);
    } else if (i % 17 == 0) {
      weft::yield();
    }
    inside.fetch_sub(1);
  });
  if (overlaps.load() != 0) fail(seed, k_mutex, "two holders at once");
  if (!shared && counter != static_cast<std::uint64_t>(n)) {
    fail(seed, k_mutex, "counter " + std::to_string(counter) + " instead of " + std::to_string(n));
  }
}

void mixer::do_condvar(std::uint64_t seed, st::fast_rng& rng, int depth) {
  const int producers = 1 + static_cast<int>(rng.below(4));
  const int per_producer = static_cast<int>(rng.below(50));
  const int consumers = 1 + static_cast<int>(rng.below(2));
  const bool notify_all = rng.one_in(2);
  const int total = producers * per_producer;
  weft::mutex m;
  weft::condition_variable cv;
  std::deque<std::uint64_t> q;  // guarded by m
  int taken = 0;                // guarded by m
  std::uint64_t sum = 0;        // guarded by m
  weft::task_group g;
  for (int c = 0; c < consumers; ++c) {
    g.spawn([&] {
      std::unique_lock lock(m);
      for (;;) {
        cv.wait(lock, [&] { return !q.empty() || taken == total; });
        if (q.empty()) break;  // everything was taken
        sum += q.front();
        q.pop_front();
        if (++taken == total) cv.notify_all();  // wake the other consumer to leave
      }
    });
  }
  for (int p = 0; p < producers; ++p) {
    g.spawn([&, p] {
      for (int i = 0; i < per_producer; ++i) {
        {
          std::lock_guard lock(m);
          q.push_back(mix(seed ^ (static_cast<std::uint64_t>(p) << 32 | static_cast<std::uint64_t>(i))));
        }
        if (notify_all) {
          cv.notify_all();
        } else {
          cv.notify_one();
        }
        if (i % 8 == 7) weft::yield();
      }
      if (p == 0) nested(mix(seed + 17), depth, seed, k_condvar);
    });
  }
  g.wait();
  std::uint64_t want = 0;
  for (int p = 0; p < producers; ++p) {
    for (int i = 0; i < per_producer; ++i) {
      want += mix(seed ^ (static_cast<std::uint64_t>(p) << 32 | static_cast<std::uint64_t>(i)));
    }
  }
  if (taken != total || sum != want) {
    fail(seed, k_condvar,
         std::to_string(taken) + " of " + std::to_string(total) + " items taken, sum " +
             (sum == want ? "right" : "wrong"));
  }
}

void mixer::do_latch(std::uint64_t seed, st::fast_rng& rng, int depth) {
  const int m = 1 + static_cast<int>(rng.below(24));
  weft::latch l(m);
  std::atomic<int> arrived{0};
  std::atomic<int> early{0};
  weft::task_group g;
  for (int j = 0; j < m; ++j) {
    g.spawn([&, j] {
      arrived.fetch_add(1);
      if (j == 0) nested(mix(seed + 19), depth, seed, k_latch);
      l.arrive_and_wait();
      if (arrived.load() != m) early.fetch_add(1);  // released before everyone arrived
    });
  }
  g.wait();
  if (!l.try_wait() || arrived.load() != m || early.load() != 0) {
    fail(seed, k_latch, std::to_string(early.load()) + " of " + std::to_string(m) + " released early");
  }
}

void mixer::do_yield(std::uint64_t seed, st::fast_rng& rng, int depth) {
  const int n = static_cast<int>(rng.below(300));
  const int nest = n > 0 ? static_cast<int>(rng.below(static_cast<std::uint64_t>(n))) : -1;
  std::atomic<std::uint64_t> sum{0};
  weft::parallelize(n, [&](int i) {
    weft::yield();
    if (i == nest) nested(mix(seed + 23), depth, seed, k_yield);
    weft::yield();
    sum.fetch_add(static_cast<std::uint64_t>(i) + 1);
  });
  const std::uint64_t want = static_cast<std::uint64_t>(n) * (static_cast<std::uint64_t>(n) + 1) / 2;
  if (sum.load() != want) fail(seed, k_yield, "wrong sum");
}

void mixer::do_throw_loop(std::uint64_t seed, st::fast_rng& rng, int depth) {
  const std::int64_t n = 1 + static_cast<std::int64_t>(rng.below(3000));
  const int throwers = 1 + static_cast<int>(rng.below(3));
  std::vector<std::int64_t> at;
  for (int t = 0; t < throwers; ++t) at.push_back(static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(n))));
  const bool through_join = rng.one_in(2);
  const std::int64_t nest = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(n)));
  std::unique_ptr<std::atomic<std::uint8_t>[]> hits(new std::atomic<std::uint8_t>[static_cast<std::size_t>(n)]());
  auto tag_of = [&](std::int64_t i) { return mix(seed ^ static_cast<std::uint64_t>(i)) | 1; };
  bool caught = false;
  try {
    weft::parallelize(n, [&](std::int64_t i) {
      hits[static_cast<std::size_t>(i)].fetch_add(1, std::memory_order_relaxed);
      if (i == nest) nested(mix(seed + 29), depth, seed, k_throw_loop);
      for (std::int64_t t : at) {
        if (t != i) continue;
        if (through_join) {
          weft::join([] {}, [&] { throw mix_error{tag_of(i)}; });
        }
        throw mix_error{tag_of(i)};
      }
    });
  } catch (const mix_error& e) {
    caught = true;
    bool known = false;
    for (std::int64_t t : at) {
      known = known || (e.tag == tag_of(t) && hits[static_cast<std::size_t>(t)].load() == 1);
    }
    if (!known) fail(seed, k_throw_loop, "caught an exception no item that ran threw");
  }
  if (!caught) fail(seed, k_throw_loop, "no exception reached the caller");
  m_caught.fetch_add(caught ? 1 : 0, std::memory_order_relaxed);
  for (std::int64_t i = 0; i < n; ++i) {
    if (hits[static_cast<std::size_t>(i)].load() > 1) {
      fail(seed, k_throw_loop, "index " + std::to_string(i) + " ran twice");
      break;
    }
  }
}

void mixer::do_throw_join(std::uint64_t seed, st::fast_rng& rng, int depth) {
  const int which = static_cast<int>(rng.below(3));  // 0: f throws, 1: g throws, 2: both
  std::atomic<bool> f_threw{false};
  std::atomic<bool> g_threw{false};
  try {
    weft::join(
        [&] {
          nested(mix(seed + 31), depth, seed, k_throw_join);
          if (which != 1) {
            f_threw = true;
            throw mix_error{1};
          }
        },
        [&] {
          if (which != 0) {
            g_threw = true;
            throw mix_error{2};
          }
        });
    fail(seed, k_throw_join, "no exception reached the caller");
  } catch (const mix_error& e) {
    m_caught.fetch_add(1, std::memory_order_relaxed);
    const bool known = (e.tag == 1 && f_threw.load()) || (e.tag == 2 && g_threw.load());
    if (!known) fail(seed, k_throw_join, "caught an exception nobody threw: " + std::to_string(e.tag));
  }
}

void mixer::do_throw_group(std::uint64_t seed, st::fast_rng& rng, int depth) {
  const int m = 1 + static_cast<int>(rng.below(30));
  const int thrower = static_cast<int>(rng.below(static_cast<std::uint64_t>(m)));
  weft::task_group g;
  std::atomic<int> calls{0};
  for (int j = 0; j < m; ++j) {
    g.spawn([&, j] {
      calls.fetch_add(1);
      if (j == thrower) throw mix_error{static_cast<std::uint64_t>(j)};
    });
  }
  try {
    g.wait();
    fail(seed, k_throw_group, "no exception reached wait()");
  } catch (const mix_error& e) {
    m_caught.fetch_add(1, std::memory_order_relaxed);
    if (e.tag != static_cast<std::uint64_t>(thrower)) fail(seed, k_throw_group, "caught the wrong exception");
  }
  if (calls.load() > m) fail(seed, k_throw_group, "a call ran twice");
  // The group is usable again, and reports nothing old.
  calls = 0;
  for (int j = 0; j < m; ++j) g.spawn([&] { calls.fetch_add(1); });
  g.spawn([&] { nested(mix(seed + 37), depth, seed, k_throw_group); });
  g.wait();
  if (calls.load() != m) fail(seed, k_throw_group, "the reused group lost calls");
}

void mixer::do_throw_reduce(std::uint64_t seed, st::fast_rng& rng, int depth) {
  const std::int64_t n = 1 + static_cast<std::int64_t>(rng.below(20000));
  const std::int64_t thrower = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(n)));
  try {
    const std::uint64_t r = weft::parallel_reduce(
        std::int64_t{0}, n, std::uint64_t{0},
        [&](std::int64_t i) -> std::uint64_t {
          if (i == thrower) throw mix_error{static_cast<std::uint64_t>(i)};
          return mix(seed ^ static_cast<std::uint64_t>(i));
        },
        [](std::uint64_t a, std::uint64_t b) { return a + b; });
    fail(seed, k_throw_reduce, "no exception reached the caller (result " + std::to_string(r) + ")");
  } catch (const mix_error& e) {
    m_caught.fetch_add(1, std::memory_order_relaxed);
    if (e.tag != static_cast<std::uint64_t>(thrower)) fail(seed, k_throw_reduce, "caught the wrong exception");
  }
  nested(mix(seed + 41), depth, seed, k_throw_reduce);  // the runtime is still usable
}

class RandomMixStress : public testing::TestWithParam<int> {};

TEST_P(RandomMixStress, OutsideThreadsAndRuntimeChurn) {
  const int workers = GetParam();
  constexpr int k_outside_threads = 4;
  constexpr int k_depth = 3;
  weft_test::seeded_rng rng;
  const std::uint64_t seed = rng.seed();
  st::errors errs;
  mixer mx(errs);
  weft::runtime rt{weft::config{.workers = workers}};
  g_shared_counter = 0;
  g_shared_expected = 0;
  const auto start = st::clock_type::now();
  const auto deadline = start + st::budget(3.0);

  std::atomic<std::uint64_t> top_level{0};
  std::atomic<std::uint64_t> outside_locks{0};
  std::atomic<int> running{k_outside_threads + 1};
  // The top-level operation each outside thread is in, for the stall report.
  std::array<std::atomic<std::uint64_t>, k_outside_threads> in_flight{};
  std::vector<std::thread> threads;
  for (int t = 0; t < k_outside_threads; ++t) {
    threads.emplace_back([&, t] {
      st::fast_rng r(seed + 1000 + static_cast<std::uint64_t>(t));
      std::uint64_t done = 0;
      while (st::clock_type::now() < deadline && !errs.any()) {
        const std::uint64_t s = r();
        in_flight[static_cast<std::size_t>(t)].store(s, std::memory_order_relaxed);
        const std::uint64_t got = rt.run([&] { return mx.op(s, k_depth); });
        if (got != mix(s)) errs.add("rt.run returned a wrong value for operation seed " + std::to_string(s));
        ++done;
        if (r.one_in(4)) {  // a thread outside any runtime takes the shared mutex too
          std::lock_guard lock(g_shared_mutex);
          ++g_shared_counter;
          g_shared_expected.fetch_add(1, std::memory_order_relaxed);
          outside_locks.fetch_add(1, std::memory_order_relaxed);
        }
      }
      top_level.fetch_add(done);
      running.fetch_sub(1);
    });
  }

  // Runtimes created and destroyed meanwhile, with work in each, some of it
  // calling into the shared runtime from inside theirs.
  std::atomic<std::uint64_t> churned{0};
  std::atomic<std::uint64_t> cross_calls{0};
  threads.emplace_back([&] {
    st::fast_rng r(seed + 2000);
    std::uint64_t rounds = 0;
    while (st::clock_type::now() < deadline && !errs.any()) {
      weft::runtime other{weft::config{.workers = 1 + static_cast<int>(r.below(3)),
                                       .spin_us = static_cast<std::uint32_t>(r.below(3) * 25)}};
      const int ops = 1 + static_cast<int>(r.below(4));
      for (int i = 0; i < ops; ++i) {
        const std::uint64_t s = r();
        const bool cross = r.one_in(3);
        const std::uint64_t got = other.run([&] {
          if (cross) {
            cross_calls.fetch_add(1, std::memory_order_relaxed);
            return rt.run([&] { return mx.op(s, 1); });
          }
          return mx.op(s, 2);
        });
        if (got != mix(s)) errs.add("a churned runtime returned a wrong value for operation seed " + std::to_string(s));
      }
      ++rounds;
    }
    churned.store(rounds);
    running.fetch_sub(1);
  });
  // A hang is reported with the operations in flight, then ends the process
  // (hung threads cannot be joined); the watchdog is the backstop.
  auto total_ops = [&] {
    std::uint64_t n = 0;
    for (int k = 0; k < k_kinds; ++k) n += mx.count(k);
    return n;
  };
  std::uint64_t seen = total_ops();
  auto last_progress = st::clock_type::now();
  while (running.load() != 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const std::uint64_t now_ops = total_ops();
    if (now_ops != seen) {
      seen = now_ops;
      last_progress = st::clock_type::now();
    } else if (st::clock_type::now() - last_progress > 4 * st::k_stall_limit) {
      std::fprintf(
          stderr, "random mix (seed %" PRIu64 ", %d workers): no operation started for %lld s; stalled.\n", seed,
          workers,
          static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(4 * st::k_stall_limit).count()));
      for (int t = 0; t < k_outside_threads; ++t) {
        std::fprintf(stderr, "  outside thread %d: top-level operation seed %" PRIu64 "\n", t,
                     in_flight[static_cast<std::size_t>(t)].load());
      }
      std::fprintf(stderr, "%s", rt.stats().summary().c_str());
      std::fflush(stderr);
      std::abort();
    }
  }
  for (std::thread& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(st::clock_type::now() - start).count();

  std::string per_kind;
  std::uint64_t all = 0;
  for (int k = 0; k < k_kinds; ++k) {
    per_kind +=
        std::string(k == 0 ? "" : ", ") + k_kind_names[static_cast<std::size_t>(k)] + " " + std::to_string(mx.count(k));
    all += mx.count(k);
  }
  st::report("seed %" PRIu64 ", %d workers, %d outside threads, %.2f s: %" PRIu64 " top-level operations, %" PRIu64
             " operations in all (%s); %" PRIu64 " exceptions caught; %" PRIu64
             " runtimes created and destroyed, %" PRIu64 " calls across runtimes; %" PRIu64 " outside locks",
             seed, workers, k_outside_threads, seconds, top_level.load(), all, per_kind.c_str(), mx.exceptions_caught(),
             churned.load(), cross_calls.load(), outside_locks.load());
  EXPECT_FALSE(errs.any()) << errs.summary();
  EXPECT_EQ(g_shared_counter, g_shared_expected.load()) << "the shared weft::mutex lost increments";
  EXPECT_GT(top_level.load(), 0u);
  for (int k = 0; k < k_kinds && !weft_test::k_sanitized; ++k) {
    EXPECT_GT(mx.count(k), 0u) << "no operation of kind " << k_kind_names[static_cast<std::size_t>(k)] << " ran";
  }
}

// One worker: every wait must be served by suspending fibers, never by
// another thread. Three: stealing, migration, odd splits.
INSTANTIATE_TEST_SUITE_P(Workers, RandomMixStress, testing::Values(1, 3), [](const testing::TestParamInfo<int>& info) {
  return "Workers" + std::to_string(info.param);
});

}  // namespace
