// SPDX-License-Identifier: MIT
// A producer/consumer pipeline on fibers: producers push numbers into a small
// bounded queue guarded by a weft::mutex and two weft::condition_variables,
// consumers pop them and add up a function of each. Every stage is a task of
// one weft::task_group. A stage that finds the queue full (or empty) waits on
// a condition variable: its fiber is suspended and the worker thread runs
// another stage, so more stages than workers never deadlock (the run with one
// worker shows it). Checks the totals and exits 1 on a mismatch.
// Usage: pipeline [items per producer]
#include <weft/weft.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <vector>

namespace {

// A bounded FIFO shared by all stages. close() ends the stream: pop() then
// returns false once the queue is drained.
class bounded_queue {
 public:
  explicit bounded_queue(std::size_t capacity) : m_capacity(capacity) {}

  void push(std::int64_t x) {
    std::unique_lock lock(m_mutex);
    m_not_full.wait(lock, [&] { return m_items.size() < m_capacity; });  // suspends the fiber, not the thread
    m_items.push_back(x);
    lock.unlock();
    m_not_empty.notify_one();
  }

  bool pop(std::int64_t& x) {
    std::unique_lock lock(m_mutex);
    m_not_empty.wait(lock, [&] { return !m_items.empty() || m_closed; });
    if (m_items.empty()) return false;  // closed and drained
    x = m_items.front();
    m_items.pop_front();
    lock.unlock();
    m_not_full.notify_one();
    return true;
  }

  void close() {
    {
      std::lock_guard lock(m_mutex);
      m_closed = true;
    }
    m_not_empty.notify_all();
  }

 private:
  weft::mutex m_mutex;  // never a std::mutex: its waits would block the worker thread
  weft::condition_variable m_not_full;
  weft::condition_variable m_not_empty;
  std::deque<std::int64_t> m_items;
  std::size_t m_capacity;
  bool m_closed = false;
};

std::int64_t work(std::int64_t x) { return (x * x) % 1009; }

struct totals {
  std::int64_t items = 0;
  std::int64_t sum = 0;
};

// Runs producers and consumers on a runtime of `workers` workers.
totals run_pipeline(int workers, int producers, int consumers, std::int64_t per_producer) {
  weft::runtime rt{{.workers = workers}};
  bounded_queue queue(8);
  std::vector<totals> per_consumer(static_cast<std::size_t>(consumers));
  rt.run([&] {
    weft::task_group stages;
    // The last producer to finish closes the queue.
    weft::mutex done_mutex;
    int producers_left = producers;
    for (int p = 0; p < producers; ++p) {
      stages.spawn([&, p] {
        for (std::int64_t k = 0; k < per_producer; ++k) queue.push(p * per_producer + k);
        std::lock_guard lock(done_mutex);
        if (--producers_left == 0) queue.close();
      });
    }
    for (int c = 0; c < consumers; ++c) {
      stages.spawn([&, c] {
        totals& t = per_consumer[static_cast<std::size_t>(c)];
        std::int64_t x;
        while (queue.pop(x)) {
          ++t.items;
          t.sum += work(x);
        }
      });
    }
    stages.wait();
  });
  totals all;
  for (const totals& t : per_consumer) {
    all.items += t.items;
    all.sum += t.sum;
  }
  return all;
}

}  // namespace

int main(int argc, char** argv) {
  const std::int64_t per_producer = argc > 1 ? std::atoll(argv[1]) : 20'000;
  constexpr int producers = 3;
  constexpr int consumers = 4;

  totals expected;
  for (std::int64_t x = 0; x < producers * per_producer; ++x) {
    ++expected.items;
    expected.sum += work(x);
  }

  int errors = 0;
  for (int workers : {1, 2, 4}) {
    const totals got = run_pipeline(workers, producers, consumers, per_producer);
    if (got.items != expected.items || got.sum != expected.sum) {
      std::fprintf(stderr, "pipeline on %d workers: %lld items, sum %lld; expected %lld, %lld\n", workers,
                   static_cast<long long>(got.items), static_cast<long long>(got.sum),
                   static_cast<long long>(expected.items), static_cast<long long>(expected.sum));
      ++errors;
    }
  }
  if (errors != 0) return 1;
  std::printf("pipeline: %d producers, %d consumers, %lld items through a queue of 8 on 1, 2 and 4 workers: OK\n",
              producers, consumers, static_cast<long long>(expected.items));
  return 0;
}
