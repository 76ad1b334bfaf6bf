// SPDX-License-Identifier: MIT
// mutex: an uncontended lock + unlock pair.
//   serial        std::mutex, on the benchmark thread (the baseline)
//   weft          weft::mutex, on a fiber of a 1-worker runtime
//   weft_outside  weft::mutex, on the benchmark thread (outside any runtime)
// mutex_contended: `workers` tasks of a weft runtime each take the lock 10 000
// times around a counter increment:
//   weft          weft::mutex (a waiter suspends its fiber)
//   std           std::mutex (a waiter blocks its worker thread; allowed
//                 here because nothing inside the critical section waits)
// mutex_coroutines: 64 coroutines (weft::task<void>, started together with
//   when_all) each take one weft::mutex 1 000 times with lock_async around a
//   counter increment. Its counter `tasks_run` is the tasks run per iteration:
//   one per coroutine resumed by an unlock (and per retry that lost the
//   mutex), about the number of waits, not of locks, when no convoy forms.
#include <mutex>
#include <vector>

#include <weft/coroutine.hpp>

#include "peers.hpp"

namespace {

constexpr int k_rounds = 10'000;

void std_uncontended(benchmark::State& state) {
  std::mutex m;
  long counter = 0;
  for (auto _ : state) {
    m.lock();
    ++counter;
    m.unlock();
  }
  bench::check(state, counter == state.iterations(), "wrong count");
}

void weft_uncontended(benchmark::State& state) {
  weft::runtime& rt = bench::weft_runtime(1);
  weft::mutex m;
  long counter = 0;
  rt.run([&] {
    for (auto _ : state) {
      m.lock();
      ++counter;
      m.unlock();
    }
  });
  bench::check(state, counter == state.iterations(), "wrong count");
}

void weft_outside_uncontended(benchmark::State& state) {
  weft::mutex m;
  long counter = 0;
  for (auto _ : state) {
    m.lock();
    ++counter;
    m.unlock();
  }
  bench::check(state, counter == state.iterations(), "wrong count");
}

template <class Mutex>
void contended(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  weft::runtime& rt = bench::weft_runtime(workers);
  Mutex m;
  long counter = 0;
  rt.reset_stats();
  for (auto _ : state) {
    rt.run([&] {
      weft::parallelize(workers, [&](int) {
        for (int i = 0; i < k_rounds; ++i) {
          std::lock_guard lock(m);
          ++counter;
        }
      });
    });
  }
  bench::set_weft_stats(state, rt);
  bench::check(state, counter == static_cast<long>(state.iterations()) * workers * k_rounds, "wrong count");
  bench::set_tasks(state, static_cast<double>(workers) * k_rounds);
}

constexpr int k_coroutines = 64;
constexpr int k_coroutine_rounds = 1'000;

weft::task<void> lock_repeatedly(weft::mutex& m, long& counter) {
  for (int i = 0; i < k_coroutine_rounds; ++i) {
    co_await weft::lock_async(m);
    ++counter;
    m.unlock();
  }
}

weft::task<void> all_lock_repeatedly(weft::mutex& m, long& counter) {
  std::vector<weft::task<void>> tasks;
  tasks.reserve(k_coroutines);
  for (int c = 0; c < k_coroutines; ++c) tasks.push_back(lock_repeatedly(m, counter));
  co_await weft::when_all(std::move(tasks));
}

void coroutines(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  weft::runtime& rt = bench::weft_runtime(workers);
  weft::mutex m;
  long counter = 0;
  rt.reset_stats();
  for (auto _ : state) {
    rt.run([&] { weft::sync_wait(all_lock_repeatedly(m, counter)); });
  }
  bench::set_weft_stats(state, rt);
  const double n = state.iterations() > 0 ? static_cast<double>(state.iterations()) : 1.0;
  state.counters["tasks_run"] = benchmark::Counter(static_cast<double>(rt.stats().total.tasks_run) / n);
  bench::check(state, counter == static_cast<long>(state.iterations()) * k_coroutines * k_coroutine_rounds,
               "wrong count");
  bench::set_tasks(state, static_cast<double>(k_coroutines) * k_coroutine_rounds);
}

}  // namespace

int main(int argc, char** argv) {
  bench::add_serial("mutex/serial", std_uncontended)->Unit(benchmark::kNanosecond);
  bench::add_parallel("mutex/weft", weft_uncontended, {}, {1})->Unit(benchmark::kNanosecond);
  bench::add_serial("mutex/weft_outside", weft_outside_uncontended)->Unit(benchmark::kNanosecond);
  bench::add_parallel("mutex_contended/weft", contended<weft::mutex>)->Unit(benchmark::kMicrosecond);
  bench::add_parallel("mutex_contended/std", contended<std::mutex>)->Unit(benchmark::kMicrosecond);
  bench::add_parallel("mutex_coroutines/weft", coroutines)->Unit(benchmark::kMicrosecond);
  return bench::main(argc, argv);
}
