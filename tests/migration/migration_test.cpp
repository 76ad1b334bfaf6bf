// SPDX-License-Identifier: MIT
// Fibers migrate: a fiber that suspends on one worker may resume on another
// (docs/protocols/fiber-lifecycle.md, rule 5). This executable is built at -O3
// with link-time optimisation (compile and link: tests/migration/meson.build),
// so that the compiler inlines, keeps values in registers and merges what it
// can around the weft calls, as in an optimised program. It forces migrations
// and checks what a fiber sees on the other side:
//
// - weft's own per-thread state follows the thread: worker_index() after the
//   switch is the index of the thread the fiber now runs on;
// - errno is the thread's, not the fiber's: after a suspension the fiber reads
//   the errno of the thread it resumed on (weft neither saves nor restores it);
// - thread_local variables likewise: their address and value are the new
//   thread's;
// - an exception being handled (in a catch block) or in flight (a destructor
//   during unwinding) travels with the fiber: current_exception(),
//   uncaught_exceptions() and `throw;` are right after the switch, and the
//   fibers that run on the old thread meanwhile see no exception at all.
//
// Per-thread state is always read here through functions the optimiser may
// not inline or look into (the `noipa` attribute): what weft promises is what
// a fresh read gives. A read of errno or of a thread_local in the same
// function before and after a weft call may be compiled into one address
// computation; ErrnoAddressInOneFunctionIsAHazard shows what this compiler
// does (docs/reliability.md).
//
// How a migration is forced (hop): the fiber offers a releaser task through
// join, keeps its worker busy until a thief has taken it, then waits on a
// weft::latch; the releaser counts the latch down on the thief's worker,
// whose queue then holds the fiber's resumption, so the fiber usually resumes
// there. Its old worker may take it back first, so a test repeats the hop a
// bounded number of times until worker_index() differs before and after.
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include <weft/weft.hpp>

#include "sanitizers.hpp"
#include "watchdog.hpp"

#if defined(__clang__)
#define WEFT_TEST_OPAQUE __attribute__((noinline))
#else
#define WEFT_TEST_OPAQUE __attribute__((noinline, noipa))
#endif

namespace {

// ---- per-thread facts, recorded the first time a thread is seen ----

// A thread's worker index is fixed while it runs a runtime's work: a worker
// thread's for the runtime's life, that of a thread from outside (which takes
// part in its own call, on the slot of a parked worker) for the call. Facts
// are recorded per test (one runtime, one call): t_generation says which.
std::atomic<int> g_generation{0};
thread_local int t_generation = -1;
thread_local int t_index = -1;  // worker_index() when this thread was first seen
thread_local int t_marker = 0;  // 1000 + that index
thread_local long t_tid = 0;    // the kernel's id of this thread

struct thread_facts {
  long tid = 0;
  int* errno_address = nullptr;
  int* marker_address = nullptr;
};

std::mutex g_facts_mutex;
std::map<int, thread_facts> g_facts;  // by worker index; guarded by g_facts_mutex

WEFT_TEST_OPAQUE long current_tid() { return static_cast<long>(::syscall(SYS_gettid)); }
WEFT_TEST_OPAQUE int* errno_address() { return &errno; }
WEFT_TEST_OPAQUE int read_errno() { return errno; }
WEFT_TEST_OPAQUE void write_errno(int v) { errno = v; }
WEFT_TEST_OPAQUE int* marker_address() { return &t_marker; }
WEFT_TEST_OPAQUE int thread_index() { return t_index; }

// On a worker: records this thread on first sight; afterwards checks that
// worker_index() and the thread's recorded facts still agree. Returns a
// description of a disagreement, or an empty string.
WEFT_TEST_OPAQUE std::string check_thread() {
  const int w = weft::worker_index();
  if (w < 0) return "not on a worker";
  if (t_index == -1 || t_generation != g_generation.load()) {
    t_generation = g_generation.load();
    t_index = w;
    t_marker = 1000 + w;
    t_tid = current_tid();
    std::lock_guard lock(g_facts_mutex);
    auto [it, fresh] = g_facts.emplace(w, thread_facts{t_tid, errno_address(), marker_address()});
    if (!fresh && it->second.tid != t_tid) {
      return "worker " + std::to_string(w) + " seen on two threads (" + std::to_string(it->second.tid) + " and " +
             std::to_string(t_tid) + ")";
    }
    return {};
  }
  if (thread_index() != w) {
    return "worker_index() is " + std::to_string(w) + " on the thread of worker " + std::to_string(thread_index());
  }
  std::lock_guard lock(g_facts_mutex);
  const thread_facts& f = g_facts[w];
  if (f.tid != current_tid()) return "worker " + std::to_string(w) + " runs on another thread than before";
  return {};
}

thread_facts facts_of(int worker) {
  std::lock_guard lock(g_facts_mutex);
  return g_facts[worker];
}

// ---- forcing a migration ----

template <class Pred>
bool wait_for(Pred pred, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();  // the thread yields; the worker stays busy
  }
  return true;
}

struct hop_result {
  int before = -1;    // the fiber's worker before the suspension
  int releaser = -1;  // where the releaser ran
  int resumed = -1;   // the fiber's worker right after the latch released it
  int after = -1;     // the fiber's worker when hop() returned
  bool moved() const { return resumed != before && resumed >= 0; }
};

struct no_hook {
  void operator()() const {}
};
struct no_releaser_hook {
  void operator()(int, int) const {}
};

// One attempt: before_wait() runs on the fiber right before it suspends,
// on_releaser(releaser's worker, fiber's worker) on the releaser right before
// it releases the fiber, after_wait() on the fiber right after it resumed.
//
// The releaser keeps the other workers busy while it releases the fiber (it
// offers a task that spins until shortly after the release), so that the
// resumption it queues is still there when its own worker looks for work.
template <class BeforeWait = no_hook, class OnReleaser = no_releaser_hook, class AfterWait = no_hook>
hop_result hop(BeforeWait before_wait = {}, OnReleaser on_releaser = {}, AfterWait after_wait = {}) {
  hop_result h;
  h.before = weft::worker_index();
  weft::latch gate(1);
  std::atomic<int> releaser{-1};
  std::atomic<bool> waiting{false};
  weft::join(
      [&] {
        wait_for([&] { return releaser.load() != -1; }, std::chrono::milliseconds(20));
        before_wait();
        waiting.store(true);
        gate.wait();
        h.resumed = weft::worker_index();
        after_wait();
      },
      [&] {
        const int me = weft::worker_index();
        releaser.store(me);
        wait_for([&] { return waiting.load(); }, std::chrono::seconds(5));
        std::this_thread::sleep_for(std::chrono::microseconds(200));  // time for the fiber to suspend
        on_releaser(me, h.before);
        std::atomic<bool> busy{false};
        std::atomic<bool> released{false};
        weft::join(
            [&] {
              wait_for([&] { return busy.load(); }, std::chrono::milliseconds(20));
              gate.count_down();
              released.store(true);
            },
            [&] {
              busy.store(true);
              wait_for([&] { return released.load(); }, std::chrono::seconds(5));
              const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
              while (std::chrono::steady_clock::now() < until) {
              }
            });
      });
  h.releaser = releaser.load();
  h.after = weft::worker_index();
  return h;
}

// A hop moves the fiber only when the releaser's worker runs while the other
// is kept busy: on a loaded machine that can take hundreds of hops (one
// migration of 40 needed more than 200 with two builds running beside).
constexpr int k_max_attempts = 2000;

// Hops until the fiber moved; `attempts` counts the hops made.
template <class BeforeWait = no_hook, class OnReleaser = no_releaser_hook, class AfterWait = no_hook>
hop_result migrate(int& attempts, BeforeWait before_wait = {}, OnReleaser on_releaser = {}, AfterWait after_wait = {}) {
  hop_result h;
  for (int i = 0; i < k_max_attempts; ++i) {
    ++attempts;
    h = hop(before_wait, on_releaser, after_wait);
    if (h.moved()) return h;
  }
  return h;
}

class MigrationTest : public testing::TestWithParam<int> {
 protected:
  MigrationTest() {
    std::lock_guard lock(g_facts_mutex);
    g_facts.clear();  // facts of the threads of this test's runtime only
    g_generation.fetch_add(1);
  }
  int workers() const { return GetParam(); }
  weft::runtime rt{weft::config{.workers = GetParam()}};
  static constexpr int k_migrations = static_cast<int>(weft_test::scaled(40, 4));
};

// ---- weft's per-thread state ----

TEST_P(MigrationTest, WorkerIndexIsTheNewThreads) {
  int attempts = 0;
  int moved = 0;
  std::string problem;
  rt.run([&] {
    problem = check_thread();
    for (int i = 0; i < k_migrations && problem.empty(); ++i) {
      const hop_result h = migrate(
          attempts, no_hook{},
          [&](int, int) {
            if (std::string p = check_thread(); !p.empty() && problem.empty()) problem = "releaser: " + p;
          },
          [&] {
            if (std::string p = check_thread(); !p.empty() && problem.empty()) problem = "right after the switch: " + p;
          });
      if (!h.moved()) break;
      ++moved;
      if (std::string p = check_thread(); !p.empty() && problem.empty()) problem = "after hop(): " + p;
      if (weft::worker_index() != h.after) problem = "worker_index() changed without a suspension";
    }
  });
  std::printf("%d migrations in %d attempts\n", moved, attempts);
  EXPECT_TRUE(problem.empty()) << problem;
  EXPECT_EQ(moved, k_migrations) << "no migration in " << k_max_attempts << " attempts";
}

// ---- errno ----

// errno after a suspension is the errno of the thread the fiber resumed on:
// the releaser sets it there right before it releases the fiber, which set
// another value on its old thread before suspending.
TEST_P(MigrationTest, ErrnoAfterASuspensionIsTheNewThreads) {
  int attempts = 0;
  int checked = 0;
  std::string problem;
  rt.run([&] {
    check_thread();
    // Only a fiber resumed on its releaser's thread is checked by value: with
    // 3 or more workers that is a fraction of the migrations (none of 10 in
    // about 1 run of 10 under ThreadSanitizer's scale), so go on, up to 4
    // times as many, until one was.
    for (int i = 0; (i < k_migrations || (checked == 0 && i < 4 * k_migrations)) && problem.empty(); ++i) {
      // A value per attempt: an earlier attempt that did not migrate left its
      // value in the errno of a thread the fiber may resume on now.
      int fiber_value = 0;
      int serial = 0;
      int seen = 0;
      int* seen_address = nullptr;
      const hop_result h = migrate(
          attempts,
          [&] {
            fiber_value = 500'000 + 1000 * i + ++serial;
            write_errno(fiber_value);
          },
          [&](int w, int) { write_errno(700'000 + 10 * i + w); },
          [&] {
            seen = read_errno();
            seen_address = errno_address();
            check_thread();
          });
      if (!h.moved()) break;
      const thread_facts now = facts_of(h.resumed);
      if (seen_address != now.errno_address) {
        problem = "errno's address after the switch is not the errno of worker " + std::to_string(h.resumed);
      } else if (seen == fiber_value) {
        problem = "errno after the switch is the value the fiber set on its old thread";
      } else if (h.resumed == h.releaser && seen != 700'000 + 10 * i + h.resumed) {
        problem = "errno after the switch is " + std::to_string(seen) + ", not the value its new thread set";
      }
      if (h.resumed == h.releaser) ++checked;
    }
  });
  std::printf("%d migrations checked by value in %d attempts\n", checked, attempts);
  EXPECT_TRUE(problem.empty()) << problem;
  EXPECT_GT(checked, 0);
}

// Informational: whether this compiler reads errno through one address in a
// function that reads it before and after a weft call that migrates (glibc
// declares __errno_location() const). Nothing here is a promise of weft.
WEFT_TEST_OPAQUE bool errno_address_kept_across(int& attempts) {
  int* before = &errno;
  const hop_result h = migrate(attempts);
  int* after = &errno;
  return h.moved() && before == after;
}

TEST_P(MigrationTest, ErrnoAddressInOneFunctionIsAHazard) {
  int attempts = 0;
  const bool kept = rt.run([&] { return errno_address_kept_across(attempts); });
  std::printf("errno read before and after a migration in one function: %s\n",
              kept ? "the compiler kept the old thread's address (stale after the switch)"
                   : "the compiler computed the address again");
  SUCCEED();
}

// ---- thread_local ----

TEST_P(MigrationTest, ThreadLocalAfterASuspensionIsTheNewThreads) {
  int attempts = 0;
  std::string problem;
  int moved = 0;
  rt.run([&] {
    check_thread();
    for (int i = 0; i < k_migrations && problem.empty(); ++i) {
      int* before_address = nullptr;
      int* after_address = nullptr;
      int after_value = 0;
      const hop_result h = migrate(
          attempts, [&] { before_address = marker_address(); }, no_releaser_hook{},
          [&] {
            check_thread();
            after_address = marker_address();
            after_value = *after_address;
          });
      if (!h.moved()) break;
      ++moved;
      const thread_facts now = facts_of(h.resumed);
      if (after_address == before_address) problem = "a thread_local kept its old thread's address";
      if (after_address != now.marker_address) problem = "a thread_local's address is not its new thread's";
      if (after_value != 1000 + h.resumed) problem = "a thread_local's value is not its new thread's";
    }
  });
  EXPECT_TRUE(problem.empty()) << problem;
  EXPECT_EQ(moved, k_migrations);
}

// ---- exceptions ----

struct tagged {
  int tag;
};

// What the fibers that run elsewhere meanwhile see of exceptions.
struct observations {
  std::atomic<int> runs{0};
  std::atomic<int> on_old_thread{0};
  std::atomic<int> saw_exception{0};
};

// Run by the releaser: a loop whose items other workers take (the fiber's
// old worker among them, idle while the fiber is away); each item looks at
// the exception state of the thread it runs on. Which idle worker takes the
// items is the scheduler's and the OS's choice (on a loaded machine the old
// worker may be parked or off its core), so the loop is repeated, a bounded
// number of times, until the old worker has run one of its items.
void observe(observations& o, int old_worker) {
  constexpr int k_max_rounds = 50;
  std::atomic<int> on_old_thread_now{0};
  for (int round = 0; round < k_max_rounds && on_old_thread_now.load() == 0; ++round) {
    weft::parallelize(64, [&](int) {
      const auto start = std::chrono::steady_clock::now();
      while (std::chrono::steady_clock::now() - start < std::chrono::microseconds(5)) {
      }
      o.runs.fetch_add(1, std::memory_order_relaxed);
      if (weft::worker_index() == old_worker) {
        o.on_old_thread.fetch_add(1, std::memory_order_relaxed);
        on_old_thread_now.fetch_add(1, std::memory_order_relaxed);
      }
      if (std::current_exception() != nullptr || std::uncaught_exceptions() != 0) {
        o.saw_exception.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
}

TEST_P(MigrationTest, CatchBlockSurvivesMigration) {
  int attempts = 0;
  int moved = 0;
  std::string problem;
  observations o;
  rt.run([&] {
    for (int i = 0; i < k_migrations && problem.empty(); ++i) {
      try {
        try {
          throw tagged{i};
        } catch (...) {
          const std::exception_ptr before = std::current_exception();
          const tagged* object = nullptr;
          try {
            throw;
          } catch (const tagged& e) {
            object = &e;
          }
          const hop_result h = migrate(attempts, no_hook{}, [&](int, int old_worker) { observe(o, old_worker); });
          if (h.moved()) ++moved;
          if (std::current_exception() != before) problem = "current_exception() changed across the switch";
          if (std::uncaught_exceptions() != 0) problem = "uncaught_exceptions() is not 0 in a catch block";
          try {
            throw;  // the same object, rethrown on the new thread
          } catch (const tagged& e) {
            if (&e != object || e.tag != i) problem = "throw; rethrew another object after the switch";
          }
          throw;
        }
      } catch (const tagged& e) {
        if (e.tag != i) problem = "the outer handler caught tag " + std::to_string(e.tag);
      }
      if (std::current_exception() != nullptr) problem = "an exception is still current after its handler ended";
    }
  });
  std::printf("%d migrations in %d attempts; %d observer runs, %d on the old thread\n", moved, attempts, o.runs.load(),
              o.on_old_thread.load());
  EXPECT_TRUE(problem.empty()) << problem;
  EXPECT_EQ(moved, k_migrations);
  EXPECT_EQ(o.saw_exception.load(), 0) << "a fiber running elsewhere saw the migrating fiber's exception";
  EXPECT_GT(o.on_old_thread.load(), 0) << "no observer ran on the old thread: the test proved nothing there";
}

// A destructor that runs during unwinding suspends and migrates: the
// exception in flight goes with it, and unwinding completes on the new thread.
TEST_P(MigrationTest, UnwindingDestructorSurvivesMigration) {
  int attempts = 0;
  int moved = 0;
  std::string problem;
  observations o;
  rt.run([&] {
    for (int i = 0; i < k_migrations && problem.empty(); ++i) {
      struct migrating_destructor {
        int& attempts;
        int& moved;
        std::string& problem;
        observations& o;
        ~migrating_destructor() {
          if (std::uncaught_exceptions() != 1) problem = "uncaught_exceptions() is not 1 before the switch";
          const hop_result h = migrate(attempts, no_hook{}, [&](int, int old_worker) { observe(o, old_worker); });
          if (h.moved()) ++moved;
          if (std::uncaught_exceptions() != 1) problem = "uncaught_exceptions() is not 1 after the switch";
        }
      };
      try {
        migrating_destructor d{attempts, moved, problem, o};
        throw tagged{i};
      } catch (const tagged& e) {
        if (e.tag != i) problem = "caught tag " + std::to_string(e.tag);
        if (std::uncaught_exceptions() != 0) problem = "uncaught_exceptions() is not 0 in the handler";
      }
    }
  });
  std::printf("%d migrations in %d attempts; %d observer runs, %d on the old thread\n", moved, attempts, o.runs.load(),
              o.on_old_thread.load());
  EXPECT_TRUE(problem.empty()) << problem;
  EXPECT_EQ(moved, k_migrations);
  EXPECT_EQ(o.saw_exception.load(), 0) << "a fiber running elsewhere saw the migrating fiber's exception";
}

INSTANTIATE_TEST_SUITE_P(Workers, MigrationTest, testing::Values(2, 3), [](const testing::TestParamInfo<int>& info) {
  return "Workers" + std::to_string(info.param);
});

}  // namespace
