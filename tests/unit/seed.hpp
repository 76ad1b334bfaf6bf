// Seeds for the randomised unit tests: fresh on every run unless
// WEFT_TEST_SEED is set, and always named in the failure message (put
// SCOPED_TRACE(weft::test::seed_note(seed)) at the top of the test).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>

namespace weft::test {

// WEFT_TEST_SEED (decimal) when set, else a fresh random seed.
inline std::uint64_t test_seed() {
  if (const char* s = std::getenv("WEFT_TEST_SEED"); s != nullptr && *s != '\0') {
    return std::strtoull(s, nullptr, 10);
  }
  std::random_device rd;
  return (std::uint64_t{rd()} << 32) ^ rd();
}

inline std::string seed_note(std::uint64_t seed) {
  return "seed " + std::to_string(seed) + " (rerun with WEFT_TEST_SEED=" + std::to_string(seed) + ")";
}

}  // namespace weft::test
