// SPDX-License-Identifier: MIT
// fiber_switch: a yield round trip between two fibers on one thread: fiber A
// switches to B, B switches back to A (two switches per iteration).
//   weft         weft::yield() ping-pong between the two halves of a
//                weft::join on a 1-worker runtime (counter "switches": 2 per
//                iteration when each yield goes to the other fiber)
//   boost_context a raw boost::context::fiber resume round trip: the floor
//                for any fiber runtime built on Boost.Context (weft is)
//   boost_fiber  boost::this_fiber::yield() ping-pong between two Boost.Fiber
//                fibers (round_robin scheduler, the default)
// performance.md's target: weft <= 2x boost_context.
#include <atomic>

#include "peers.hpp"

#if WEFT_BENCH_HAVE_BOOST_FIBER
#include <boost/context/fiber.hpp>
#endif

namespace {

void weft_variant(benchmark::State& state) {
  weft::runtime& rt = bench::weft_runtime(static_cast<int>(state.range(0)));
  rt.reset_stats();
  rt.run([&] {
    bool done = false;  // one worker: both fibers run on the same thread
    weft::join(
        [&] {
          for (auto _ : state) weft::yield();
          done = true;
        },
        [&] {
          while (!done) weft::yield();
        });
  });
  bench::set_weft_stats(state, rt);
}

#if WEFT_BENCH_HAVE_BOOST_FIBER
void boost_context_variant(benchmark::State& state) {
  namespace ctx = boost::context;
  ctx::fiber peer{[](ctx::fiber&& back) {
    for (;;) back = std::move(back).resume();
    return std::move(back);
  }};
  for (auto _ : state) peer = std::move(peer).resume();
  // Destroying `peer` unwinds its stack.
}

void boost_fiber_variant(benchmark::State& state) {
  bool done = false;
  boost::fibers::fiber a([&] {
    for (auto _ : state) boost::this_fiber::yield();
    done = true;
  });
  boost::fibers::fiber b([&] {
    while (!done) boost::this_fiber::yield();
  });
  a.join();
  b.join();
}
#endif

}  // namespace

int main(int argc, char** argv) {
  bench::add_parallel("fiber_switch/weft", weft_variant, {}, {1})->Unit(benchmark::kNanosecond);
#if WEFT_BENCH_HAVE_BOOST_FIBER
  bench::add_parallel("fiber_switch/boost_context", boost_context_variant, {}, {1})->Unit(benchmark::kNanosecond);
  bench::add_parallel("fiber_switch/boost_fiber", boost_fiber_variant, {}, {1})->Unit(benchmark::kNanosecond);
#endif
  return bench::main(argc, argv);
}
