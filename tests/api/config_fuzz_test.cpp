// SPDX-License-Identifier: MIT
// Fuzzing of what weft reads from its users before it runs anything: random
// strings in every environment variable (WEFT_NUM_WORKERS, WEFT_STACK_SIZE,
// WEFT_VICTIM_POLICY, WEFT_SPLIT_POLICY, WEFT_CALLER_POLICY, WEFT_TRACE) and random values in
// every config field. Each input must give either a std::invalid_argument
// that names the variable or field, or a runtime that works (it runs a loop
// and a join with exact results); never a crash, a hang or another error.
//
// The strings mix the characters a parser can trip on (digits, signs, spaces,
// unit suffixes, hex and exponent forms, control and non-ASCII bytes) with
// values at the limits. WEFT_STACK_SIZE is read for the default runtime only,
// so those cases run in child processes. Seeds are printed on failure
// (WEFT_TEST_SEED=N repeats a run).
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <weft/weft.hpp>

#include "child_process.hpp"
#include "scoped_env.hpp"
#include "seeded_rng.hpp"

namespace {

using weft_test::scoped_env;
using weft_test::seeded_rng;

constexpr const char* k_variables[] = {"WEFT_NUM_WORKERS", "WEFT_VICTIM_POLICY", "WEFT_SPLIT_POLICY",
                                       "WEFT_CALLER_POLICY", "WEFT_TRACE"};

// A random string: a fragment at a limit, a plausible value bent by one
// change, or bytes from an alphabet that parsers trip on.
std::string random_text(std::mt19937_64& rng) {
  static const std::vector<std::string> fragments = {"",
                                                     "0",
                                                     "1",
                                                     "2",
                                                     "3",
                                                     "4096",
                                                     "4097",
                                                     "-1",
                                                     "+2",
                                                     " 2",
                                                     "2 ",
                                                     "0x10",
                                                     "1e3",
                                                     "2.5",
                                                     "16K",
                                                     "16k",
                                                     "15K",
                                                     "1M",
                                                     "1G",
                                                     "2G",
                                                     "1T",
                                                     "16KB",
                                                     "K",
                                                     "-",
                                                     "99999999999",
                                                     "18446744073709551616",
                                                     "9223372036854775807",
                                                     "random",
                                                     "round_robin",
                                                     "last_victim",
                                                     "Random",
                                                     "random ",
                                                     "adaptive",
                                                     "eager",
                                                     "fixed",
                                                     "automatic",
                                                     "take_part",
                                                     "hand_over",
                                                     "eager\n",
                                                     "\xff\xfe",
                                                     "\t",
                                                     "0\0x"};
  std::uniform_int_distribution<int> kind(0, 3);
  switch (kind(rng)) {
    case 0: return fragments[rng() % fragments.size()];
    case 1: {  // a fragment with one byte changed, inserted or removed
      std::string s = fragments[rng() % fragments.size()];
      const int op = static_cast<int>(rng() % 3);
      const std::size_t at = s.empty() ? 0 : rng() % (s.size() + (op == 1 ? 1 : 0));
      const char c = static_cast<char>(rng() % 256 == 0 ? 1 : rng() % 256);
      if (op == 0 && !s.empty() && at < s.size()) s[at] = c;
      if (op == 1) s.insert(s.begin() + static_cast<std::ptrdiff_t>(std::min(at, s.size())), c);
      if (op == 2 && !s.empty() && at < s.size()) s.erase(at, 1);
      if (s.find('\0') != std::string::npos) s.resize(s.find('\0'));  // environment strings end at NUL
      return s;
    }
    case 2: {  // digits, possibly with a suffix
      std::string s;
      const int len = 1 + static_cast<int>(rng() % 24);
      for (int i = 0; i < len; ++i) s += static_cast<char>('0' + rng() % 10);
      static const char suffixes[] = "KkMmGgTtx ";
      if (rng() % 2 == 0) s += suffixes[rng() % (sizeof(suffixes) - 1)];
      return s;
    }
    default: {  // random printable and non-printable bytes
      std::string s;
      const int len = static_cast<int>(rng() % 300);
      for (int i = 0; i < len; ++i) s += static_cast<char>(1 + rng() % 255);
      return s;
    }
  }
}

// Runs a loop and a join on rt: true when both gave exact results.
bool works(weft::runtime& rt) {
  return rt.run([] {
    std::atomic<int> calls{0};
    weft::parallelize(1000, [&](int) { calls.fetch_add(1, std::memory_order_relaxed); });
    int a = 0, b = 0;
    weft::join([&] { a = 1; }, [&] { b = 2; });
    return calls.load() == 1000 && a + b == 3;
  });
}

// Printable form of a fuzzed value for failure messages.
std::string shown(const std::string& s) {
  std::string r;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f) {
      r += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      r += buf;
    }
  }
  return '"' + r + '"';
}

// Worker counts that make a runtime too large for this test are not fuzz
// targets (the limit itself is tested by config_test).
bool too_many_workers(const std::string& text) {
  if (text.empty() || text.size() > 6) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return std::stoi(text) > 64;
}

TEST(ConfigFuzz, RandomStringsInTheEnvironment) {
  seeded_rng rng;
  std::mt19937_64 gen(rng.seed());
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("weft_config_fuzz_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  int accepted = 0, rejected = 0;
  constexpr int k_cases = 2000;
  for (int i = 0; i < k_cases; ++i) {
    const char* variable = k_variables[gen() % std::size(k_variables)];
    std::string value = random_text(gen);
    if (std::string(variable) == "WEFT_NUM_WORKERS" && too_many_workers(value)) value = "65";
    // A trace path stays inside the scratch directory (a random name there,
    // possibly naming a missing subdirectory: then writing fails at exit).
    if (std::string(variable) == "WEFT_TRACE" && !value.empty()) value = (dir / value).string();
    SCOPED_TRACE(std::string(variable) + "=" + shown(value));
    scoped_env env(variable, value);
    try {
      weft::runtime rt{weft::config{}};
      EXPECT_TRUE(works(rt));
      ++accepted;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(variable), std::string::npos)
          << "the error does not name the variable: " << e.what();
      ++rejected;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not std::invalid_argument: " << e.what();
    }
  }
  std::filesystem::remove_all(dir);
  std::printf("[fuzz] %d environment values: %d accepted (runtime worked), %d rejected\n", k_cases, accepted, rejected);
  EXPECT_GT(accepted, 0);
  EXPECT_GT(rejected, 0);
}

// WEFT_STACK_SIZE and WEFT_NUM_WORKERS for the default runtime, which a
// process creates once: a child process per value.
TEST(ConfigFuzz, RandomStringsForTheDefaultRuntime) {
  seeded_rng rng;
  std::mt19937_64 gen(rng.seed());
  int accepted = 0, rejected = 0;
  constexpr int k_cases = 200;
  for (int i = 0; i < k_cases; ++i) {
    const bool stack = gen() % 3 != 0;
    const char* variable = stack ? "WEFT_STACK_SIZE" : "WEFT_NUM_WORKERS";
    std::string value = random_text(gen);
    if (!stack && too_many_workers(value)) value = "64";
    SCOPED_TRACE(std::string(variable) + "=" + shown(value));
    const auto r = weft_test::run_in_child(
        [&] {
          ::setenv(variable, value.c_str(), 1);
          if (stack) ::setenv("WEFT_NUM_WORKERS", "2", 1);
          try {
            return works(weft::default_runtime()) ? 0 : 10;
          } catch (const std::invalid_argument& e) {
            return std::string(e.what()).find(variable) != std::string::npos ? 1 : 11;
          } catch (...) {
            return 12;
          }
        },
        std::chrono::seconds(30));
    ASSERT_TRUE(r.exited_with(0) || r.exited_with(1)) << r.describe()
                                                      << " (10: wrong results, 11: error does not name the variable, "
                                                         "12: another exception)";
    (r.exited_with(0) ? accepted : rejected) += 1;
  }
  std::printf("[fuzz] %d default-runtime values: %d accepted, %d rejected\n", k_cases, accepted, rejected);
}

// Random values in every config field.
TEST(ConfigFuzz, RandomConfigValues) {
  seeded_rng rng;
  std::mt19937_64 gen(rng.seed());
  auto pick = [&gen](std::initializer_list<std::uint64_t> special, std::uint64_t random_below) {
    if (gen() % 2 == 0) return *(special.begin() + static_cast<std::ptrdiff_t>(gen() % special.size()));
    return random_below == 0 ? gen() : gen() % random_below;
  };
  int accepted = 0, rejected = 0;
  constexpr int k_cases = 1500;
  for (int i = 0; i < k_cases; ++i) {
    weft::config cfg;
    const std::uint64_t w = pick({0, 1, 2, 3, 8, 4097, static_cast<std::uint64_t>(INT_MAX),
                                  static_cast<std::uint64_t>(INT_MIN), static_cast<std::uint64_t>(-1)},
                                 9);
    cfg.workers = static_cast<int>(static_cast<std::int64_t>(w));
    cfg.stack_size =
        static_cast<std::size_t>(pick({0, 1, weft::k_min_stack_size - 1, weft::k_min_stack_size, std::uint64_t{1} << 30,
                                       (std::uint64_t{1} << 30) + 1, std::numeric_limits<std::size_t>::max()},
                                      std::uint64_t{4} << 20));
    cfg.spin_us = static_cast<std::uint32_t>(pick({0, 1, 1'000'001, UINT32_MAX}, 200));
    cfg.max_fibers = static_cast<std::size_t>(pick({0, 3, 4, 5, std::numeric_limits<std::size_t>::max()}, 64));
    cfg.victim = static_cast<weft::victim_policy>(gen() % 6);
    cfg.split = static_cast<weft::split_policy>(gen() % 6);
    cfg.caller = static_cast<weft::caller_policy>(gen() % 5);
    cfg.split_grain = pick({0, 1, std::numeric_limits<std::uint64_t>::max()}, 5000);
    cfg.trace_events = static_cast<std::size_t>(
        pick({0, 1023, 1024, std::size_t{1} << 26, (std::size_t{1} << 26) + 1}, std::uint64_t{1} << 27));
    SCOPED_TRACE(::testing::Message() << "workers " << cfg.workers << ", stack_size " << cfg.stack_size << ", spin_us "
                                      << cfg.spin_us << ", max_fibers " << cfg.max_fibers << ", victim "
                                      << static_cast<int>(cfg.victim) << ", split " << static_cast<int>(cfg.split)
                                      << ", caller " << static_cast<int>(cfg.caller) << ", split_grain "
                                      << cfg.split_grain << ", trace_events " << cfg.trace_events);
    // Only a valid field can meet an environment variable: keep them unset.
    scoped_env w1("WEFT_NUM_WORKERS", "2"), w2("WEFT_VICTIM_POLICY", std::nullopt),
        w3("WEFT_SPLIT_POLICY", std::nullopt), w4("WEFT_TRACE", std::nullopt), w5("WEFT_CALLER_POLICY", std::nullopt);
    try {
      weft::runtime rt{cfg};
      EXPECT_TRUE(works(rt));
      ++accepted;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("weft::config::"), std::string::npos)
          << "the error does not name the field: " << e.what();
      ++rejected;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not std::invalid_argument: " << e.what();
    }
  }
  std::printf("[fuzz] %d config values: %d accepted (runtime worked), %d rejected\n", k_cases, accepted, rejected);
  EXPECT_GT(accepted, 0);
  EXPECT_GT(rejected, 0);
}

}  // namespace
