// SPDX-License-Identifier: MIT
// A program with a runtime of static storage duration (namespace scope) that
// ends by std::exit in several ways; run by static_runtime_exit_test.cpp,
// which checks the exit status. Usage: static_runtime_program CASE.
#include <linux/io_uring.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include <weft/weft.hpp>

namespace {

weft::runtime g_runtime{weft::config{.workers = 2}};
// A runtime owned through a static pointer: not itself of static storage.
std::unique_ptr<weft::runtime> g_owned;

std::atomic<bool> g_busy{false};

// Synchronisation objects of static storage duration, left locked or waited
// on at exit by some cases (never by a weft call: no runtime registers its
// exit handler then).
weft::mutex g_static_mutex;
weft::latch g_static_latch(1);
weft::mutex g_static_cv_mutex;
weft::condition_variable g_static_cv;
weft::barrier<> g_static_barrier(2);
std::atomic<int> g_about_to_wait{0};

[[noreturn]] void spin_forever() {
  for (;;) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

// Keeps `rt` busy on this thread for good: its run never returns.
[[noreturn]] void busy_forever(weft::runtime& rt) {
  rt.run([] {
    g_busy.store(true);
    spin_forever();
  });
  std::abort();
}

void wait_until_busy() {
  while (!g_busy.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

// Keeps `rt` busy on this thread for good, while another thread (one that
// never called weft) calls std::exit(7) once it is busy.
[[noreturn]] void exit_from_another_thread_while_busy(weft::runtime& rt) {
  std::thread([] {
    wait_until_busy();
    std::exit(7);
  }).detach();
  busy_forever(rt);
}

// Makes a runtime owned by a thread_local of the calling thread, first used
// now (after the thread's end marker), keeps it busy on a thread of its own
// for good, and calls std::exit(7).
[[noreturn]] void exit_with_a_busy_runtime_owned_by_a_thread_local() {
  thread_local std::unique_ptr<weft::runtime> owned;
  owned = std::make_unique<weft::runtime>(weft::config{.workers = 1});
  weft::runtime* rt = owned.get();
  std::thread([rt] { busy_forever(*rt); }).detach();
  wait_until_busy();
  std::exit(7);
}

// A runtime owned by a thread_local, destroyed when its thread ends while
// another thread's run() is in flight: its destructor must wait for it.
std::atomic<bool> g_call_finished{false};
std::atomic<bool> g_returned_early{false};
struct thread_local_owner {
  std::unique_ptr<weft::runtime> m_rt = std::make_unique<weft::runtime>(weft::config{.workers = 2});
  ~thread_local_owner() {
    m_rt.reset();
    if (!g_call_finished.load()) g_returned_early.store(true);
  }
};

// A runtime owned by a thread_local of main, first used after the library
// noted main's end (at load): destroyed before that note, at the exit.
thread_local std::unique_ptr<weft::runtime> t_owned;

// A latch on the heap owned by a static: neither the latch's storage nor
// any flag tells its destructor that the process exits.
std::unique_ptr<weft::latch> g_heap_latch = std::make_unique<weft::latch>(1);

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 100;
  const char* c = argv[1];
  if (std::strcmp(c, "idle") == 0) {  // used, then main returns: destroyed and joined
    g_runtime.run([] { weft::parallelize(100, [](int) {}); });
    return 7;
  }
  if (std::strcmp(c, "exit-in-item") == 0) {  // std::exit inside one of its work items
    g_runtime.run([] {
      weft::parallelize(8, [](int i) {
        if (i == 3) std::exit(7);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      });
    });
    return 1;
  }
  if (std::strcmp(c, "exit-in-run") == 0) {  // std::exit in the function given to run()
    g_runtime.run([] { std::exit(7); });
    return 1;
  }
  if (std::strcmp(c, "exit-from-other-thread") == 0) {  // while main is inside run()
    std::thread([] {
      wait_until_busy();
      std::exit(7);
    }).detach();
    busy_forever(g_runtime);
  }
  if (std::strcmp(c, "exit-from-default-runtime-item") == 0) {  // the static runtime busy elsewhere
    std::thread([] {
      wait_until_busy();
      weft::parallelize(4, [](int i) {
        if (i == 1) std::exit(7);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      });
    }).detach();
    busy_forever(g_runtime);
  }
  if (std::strcmp(c, "exit-from-main-while-busy") == 0) {  // busy on another thread, main exits
    std::thread([] { busy_forever(g_runtime); }).detach();
    wait_until_busy();
    std::exit(7);
  }
  if (std::strcmp(c, "owned-exit-from-other-thread") == 0) {  // a heap runtime owned by a static
    g_owned = std::make_unique<weft::runtime>(weft::config{.workers = 2});
    exit_from_another_thread_while_busy(*g_owned);
  }
  if (std::strcmp(c, "owned-exit-in-item") == 0) {
    g_owned = std::make_unique<weft::runtime>(weft::config{.workers = 2});
    g_owned->run([] {
      weft::parallelize(4, [](int i) {
        if (i == 2) std::exit(7);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      });
    });
    return 1;
  }
  if (std::strcmp(c, "traced-exit-in-item") == 0 || std::strcmp(c, "traced-exit-from-main-while-busy") == 0) {
    // A runtime with a trace file (WEFT_TEST_TRACE_FILE), abandoned at exit.
    const char* trace = std::getenv("WEFT_TEST_TRACE_FILE");
    if (trace == nullptr) return 102;
    g_owned = std::make_unique<weft::runtime>(weft::config{.workers = 2, .trace_file = trace});
    if (std::strcmp(c, "traced-exit-in-item") == 0) {
      g_owned->run([] {
        weft::parallelize(4, [](int i) {
          if (i == 2) std::exit(7);
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        });
      });
      return 1;
    }
    std::thread([] { busy_forever(*g_owned); }).detach();
    wait_until_busy();
    std::exit(7);
  }
  if (std::strcmp(c, "traced-local-exit-in-item") == 0) {
    // A traced runtime local to this function, left behind by std::exit
    // from one of its items: no destructor runs.
    const char* trace = std::getenv("WEFT_TEST_TRACE_FILE");
    if (trace == nullptr) return 102;
    weft::runtime local{weft::config{.workers = 2, .trace_file = trace}};
    local.run([] {
      weft::parallelize(4, [](int i) {
        if (i == 2) std::exit(7);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      });
    });
    return 1;
  }
  if (std::strcmp(c, "traced-never-destroyed") == 0) {
    // A traced runtime made with new and never deleted, idle when main
    // returns.
    const char* trace = std::getenv("WEFT_TEST_TRACE_FILE");
    if (trace == nullptr) return 102;
    auto* kept = new weft::runtime{weft::config{.workers = 2, .trace_file = trace}};
    kept->run([] { weft::parallelize(100, [](int) {}); });
    return 7;
  }
  if (std::strcmp(c, "traced-fork-child-exits") == 0) {
    // A child forked while the traced runtime is busy exits: the runtime it
    // inherited is its parent's, whose trace it must not write. Exits 9 when
    // the child wrote it.
    const char* trace = std::getenv("WEFT_TEST_TRACE_FILE");
    if (trace == nullptr) return 102;
    g_owned = std::make_unique<weft::runtime>(weft::config{.workers = 2, .trace_file = trace});
    std::thread([] { busy_forever(*g_owned); }).detach();
    wait_until_busy();
    std::fflush(nullptr);
    const pid_t child = fork();
    if (child == 0) std::exit(3);
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) != child) return 103;
    if (std::FILE* f = std::fopen(trace, "r")) {
      std::fclose(f);
      return 9;
    }
    std::exit(7);  // the parent writes it now
  }
  if (std::strcmp(c, "thread-local-owner-ends-with-its-thread") == 0) {
    // Exits 7 when the destructor waited for the call in flight; 1 when it
    // returned before (the thread's end was taken for the process's exit).
    std::thread v;
    std::thread u([&v] {
      thread_local thread_local_owner owner;  // before this thread's first call: destroyed after its end marker
      weft::runtime* rt = owner.m_rt.get();
      rt->run([] {});
      v = std::thread([rt] {
        rt->run([] {
          g_busy.store(true);
          std::this_thread::sleep_for(std::chrono::milliseconds(300));
          g_call_finished.store(true);
        });
      });
      while (!g_busy.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });  // u ends: its owner destroys the runtime while v's call is in flight
    u.join();
    v.join();
    return g_returned_early.load() ? 1 : 7;
  }
  if (std::strcmp(c, "late-owner-exit-after-many-runtimes") == 0 ||
      std::strcmp(c, "late-owner-exit-after-more-runtimes-than-exit-hooks") == 0) {
    // 100 runtimes used from outside first, then a heap runtime owned by a
    // static that is made only now (so its destructor runs before the exit
    // hooks registered so far), busy when a thread that never called weft
    // exits. With 4200 first, more than get an exit hook of their own
    // (k_max_dynamic_registrations, 4096): the late one has none, and its
    // destructor finds the exit on the exiting thread's stack.
    const int first = std::strcmp(c, "late-owner-exit-after-many-runtimes") == 0 ? 100 : 4200;
    for (int i = 0; i < first; ++i) {
      weft::runtime r(weft::config{.workers = 1});
      r.run([] {});
    }
    static std::unique_ptr<weft::runtime> late;
    late = std::make_unique<weft::runtime>(weft::config{.workers = 2});
    exit_from_another_thread_while_busy(*late);
  }
  if (std::strcmp(c, "exit-from-a-thread-owning-a-locked-mutex") == 0) {
    // A thread other than main that used weft exits while a weft::mutex of
    // its own (a thread_local) is locked: its thread_locals are destroyed
    // first, and the process ends with the status, no misuse abort.
    std::thread([] {
      thread_local weft::mutex m;
      m.lock();
      g_runtime.run([] { weft::parallelize(4, [](int) {}); });
      std::exit(7);
    }).join();
    return 1;
  }
  if (std::strcmp(c, "exit-from-a-plain-thread-with-a-locked-static-mutex") == 0) {
    // No weft call anywhere: the static mutex, locked by main, is destroyed
    // by the exit of a thread that never called weft.
    g_static_mutex.lock();
    std::thread([] { std::exit(7); }).join();
    return 1;
  }
  if (std::strcmp(c, "exit-from-a-plain-thread-while-static-objects-are-waited-on") == 0) {
    // Plain threads wait on a static latch, condition variable and barrier
    // when another plain thread exits the process (no weft call anywhere).
    std::thread([] {
      g_about_to_wait.fetch_add(1);
      g_static_latch.wait();
    }).detach();
    std::thread([] {
      std::unique_lock<weft::mutex> lock(g_static_cv_mutex);
      g_about_to_wait.fetch_add(1);
      for (;;) g_static_cv.wait(lock);
    }).detach();
    std::thread([] {
      g_about_to_wait.fetch_add(1);
      g_static_barrier.arrive_and_wait();
    }).detach();
    while (g_about_to_wait.load() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // into their waits
    std::thread([] { std::exit(7); }).join();
    return 1;
  }
  if (std::strcmp(c, "exit-holding-a-thread-local-mutex-made-after-a-call") == 0 ||
      std::strcmp(c, "exit-from-main-holding-a-thread-local-mutex-made-after-a-call") == 0) {
    // The thread calls weft first (which notes its end), then locks a
    // thread_local mutex made afterwards, destroyed before that note.
    const auto body = [] {
      weft::parallelize(4, [](int) {});
      thread_local weft::mutex m;
      m.lock();
      std::exit(7);
    };
    if (std::strcmp(c, "exit-holding-a-thread-local-mutex-made-after-a-call") == 0) {
      std::thread(body).join();
      return 1;
    }
    body();
  }
  if (std::strcmp(c, "exit-from-a-plain-thread-holding-a-thread-local-mutex") == 0) {
    std::thread([] {
      thread_local weft::mutex m;
      m.lock();
      std::exit(7);
    }).join();
    return 1;
  }
  if (std::strcmp(c, "thread-ends-holding-a-thread-local-mutex") == 0) {
    // Not an exit: its thread_locals are destroyed as the thread ends, where
    // the checks are skipped as well (an end and an exit cannot be told apart
    // there); the process goes on.
    std::thread([] {
      thread_local weft::mutex m;
      m.lock();
    }).join();
    return 7;
  }
  if (std::strcmp(c, "return-from-main-with-a-busy-runtime-owned-by-a-thread-local") == 0 ||
      std::strcmp(c, "exit-from-main-with-a-busy-runtime-owned-by-a-thread-local") == 0) {
    // Busy on another thread for good when main ends: left to the process's
    // end, as a static one is. Its destructor waited for ever, its thread's
    // end marker not yet destroyed.
    t_owned = std::make_unique<weft::runtime>(weft::config{.workers = 2});
    weft::runtime* rt = t_owned.get();
    std::thread([rt] { busy_forever(*rt); }).detach();
    wait_until_busy();
    if (std::strcmp(c, "exit-from-main-with-a-busy-runtime-owned-by-a-thread-local") == 0) std::exit(7);
    return 7;
  }
  if (std::strcmp(c, "exit-in-item-with-a-busy-runtime-owned-by-a-worker-thread-local") == 0) {
    // std::exit from an item of g_runtime, whose worker thread owns (through
    // a thread_local first used in the item) a runtime busy elsewhere.
    g_runtime.run([] { exit_with_a_busy_runtime_owned_by_a_thread_local(); });
    return 1;
  }
  if (std::strcmp(c, "exit-from-a-thread-with-a-busy-runtime-owned-by-its-thread-local") == 0) {
    // A thread other than main calls std::exit while a runtime that its
    // thread_local owns is busy on a third thread: that thread's
    // thread_locals are destroyed first, where an exit looks like the
    // thread's end (the destructor waited for ever).
    std::thread([] { exit_with_a_busy_runtime_owned_by_a_thread_local(); }).join();
    return 1;
  }
  if (std::strcmp(c, "exit-from-a-plain-thread-while-a-heap-latch-owned-by-a-static-is-waited-on") == 0) {
    // No weft call anywhere: the exit destroys the latch a plain thread
    // waits on; the misuse check is skipped (it aborted).
    std::thread([] {
      g_about_to_wait.fetch_add(1);
      g_heap_latch->wait();
    }).detach();
    while (g_about_to_wait.load() < 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // into its wait
    std::thread([] { std::exit(7); }).join();
    return 1;
  }
  // main() ends with pthread_exit() while another thread goes on using weft
  // (the default runtime and the static one) for a while: the process ends
  // as glibc ends it when its last thread ends, exit(0) with the exit
  // handlers, and not before that thread is done. "-while-items-run": main
  // ends while that thread's call has items running.
  if (std::strcmp(c, "pthread-exit-after-calls") == 0 || std::strcmp(c, "pthread-exit-while-items-run") == 0) {
    const bool items_running = std::strcmp(c, "pthread-exit-while-items-run") == 0;
    std::atexit([] { std::fputs("exit handlers ran\n", stderr); });
    weft::parallelize(100, [](int) {});
    g_runtime.run([] { weft::parallelize(100, [](int) {}); });
    std::thread([items_running] {
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
      if (items_running) {
        weft::parallelize(8, [](int) { std::this_thread::sleep_for(std::chrono::milliseconds(60)); });
      }
      while (std::chrono::steady_clock::now() < until) {
        std::atomic<long> sum{0};
        weft::parallelize(1000, [&](int i) { sum.fetch_add(i); });
        g_runtime.run([&] { weft::parallelize(1000, [&](int i) { sum.fetch_add(i); }); });
        if (sum.load() != 999'000) std::_Exit(3);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the workers park meanwhile
      }
      std::fputs("last thread done\n", stderr);
    }).detach();
    pthread_exit(nullptr);
  }
  // main() ends with pthread_exit() and its own key's destructor (run after
  // weft's, whose key was made first) keeps calling weft for 150 ms: main is
  // not gone until it returns (the process ended in the middle of it).
  // The same with an io_uring ring whose kernel thread polls its queue
  // (IORING_SETUP_SQPOLL): /proc lists that thread among the process's, the
  // C library does not count it (the process never ended). 77: no such ring
  // here (an old kernel, or not allowed).
  if (std::strcmp(c, "pthread-exit-with-an-io-uring-poller") == 0) {
    std::atexit([] { std::fputs("exit handlers ran\n", stderr); });
    weft::parallelize(100, [](int) {});
    io_uring_params params{};
    params.flags = IORING_SETUP_SQPOLL;
    params.sq_thread_idle = 1000;
    if (::syscall(SYS_io_uring_setup, 4, &params) < 0) return 77;  // the ring stays open until the end
    std::thread([] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      std::fputs("last thread done\n", stderr);
    }).detach();
    pthread_exit(nullptr);
  }
  if (std::strcmp(c, "pthread-exit-with-a-key-destructor-that-calls") == 0) {
    std::atexit([] { std::fputs("exit handlers ran\n", stderr); });
    weft::parallelize(100, [](int) {});
    static pthread_key_t key;
    if (pthread_key_create(&key, [](void*) {
          const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(150);
          while (std::chrono::steady_clock::now() < until) {
            std::atomic<long> sum{0};
            weft::parallelize(1000, [&](int i) { sum.fetch_add(i); });
            if (sum.load() != 499'500) std::_Exit(3);
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
          }
          std::fputs("last thread done\n", stderr);
        }) != 0) {
      return 2;
    }
    pthread_setspecific(key, &key);
    pthread_exit(nullptr);
  }
  if (std::strcmp(c, "destroyed-after-a-run") == 0) {  // its last fibers retire at the destruction
    {
      weft::runtime rt(weft::config{.workers = 1});
      rt.run([] { weft::parallelize(4, [](int) {}); });
    }
    return 7;
  }
  return 101;
}
