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
#include <mutex>

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

}  // namespace

int main(int argc, char** argv) {
  bench::add_serial("mutex/serial", std_uncontended)->Unit(benchmark::kNanosecond);
  bench::add_parallel("mutex/weft", weft_uncontended, {}, {1})->Unit(benchmark::kNanosecond);
  bench::add_serial("mutex/weft_outside", weft_outside_uncontended)->Unit(benchmark::kNanosecond);
  bench::add_parallel("mutex_contended/weft", contended<weft::mutex>)->Unit(benchmark::kMicrosecond);
  bench::add_parallel("mutex_contended/std", contended<std::mutex>)->Unit(benchmark::kMicrosecond);
  return bench::main(argc, argv);
}
