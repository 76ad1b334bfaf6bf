// SPDX-License-Identifier: MIT
// Calls that must run at the same time, on as many workers: each keeps its
// worker's thread busy (never yielding, never waiting on weft) until all of
// them have reached the same point.
//
//   std::atomic<int> reached{0};
//   ... in each of n calls: if (!weft_test::busy_until(reached, n)) ++gave_up;
//
// A call that gives up (after 10 s) ran while some other call had not
// started: work that stayed queued behind it while a worker was idle.
#pragma once

#include <atomic>
#include <chrono>

namespace weft_test {

// Busy until `together` calls have reached this point, or until 10 s have
// passed: false when it gave up.
inline bool busy_until(std::atomic<int>& reached, int together) {
  reached.fetch_add(1);
  const auto start = std::chrono::steady_clock::now();
  while (reached.load() < together) {
    if (std::chrono::steady_clock::now() - start >= std::chrono::seconds(10)) return false;
  }
  return true;
}

}  // namespace weft_test
