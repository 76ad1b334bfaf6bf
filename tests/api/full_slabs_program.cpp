// SPDX-License-Identifier: MIT
// A program whose default runtime (one worker) ends with stack slabs full of
// pooled fibers: 65 items meet at a latch (65 fibers, 64 kept in the pool),
// then main returns 7. Under AddressSanitizer the leak check at exit must
// find the slab records. Run by static_runtime_exit_test.cpp; no other
// runtime here, so that no other fiber shares the slabs.
#include <cstdlib>

#include <weft/weft.hpp>

int main() {
  ::setenv("WEFT_NUM_WORKERS", "1", 1);
  weft::latch met(65);
  weft::parallelize(65, [&](int) { met.arrive_and_wait(); });
  return 7;
}
