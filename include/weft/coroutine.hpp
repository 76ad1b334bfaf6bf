// SPDX-License-Identifier: MIT
// weft: C++20 coroutines on the same workers and queues as fibers.
//
//   weft::task<long> fib(int n) {
//     if (n < 2) co_return n;
//     auto [a, b] = co_await weft::when_all(fib(n - 1), fib(n - 2));
//     co_return a + b;
//   }
//   long r = weft::sync_wait(fib(30));
//
// A weft::task<T> is a lazily started coroutine. Awaiting it runs it inline (by
// symmetric transfer, so long chains of co_await do not grow the stack);
// when_all() and spawn() offer tasks to other workers. A coroutine never
// blocks a worker: it awaits weft's latch, barrier, mutex, loops and yields
// without holding a fiber. Protocol: docs/protocols/coroutine-resumption.md.
#pragma once

#include "weft/detail/cxx20.hpp"

#include "weft/coroutine/awaitables.hpp"  // IWYU pragma: export
#include "weft/coroutine/sync_wait.hpp"   // IWYU pragma: export
#include "weft/coroutine/task.hpp"        // IWYU pragma: export
#include "weft/coroutine/when_all.hpp"    // IWYU pragma: export
