// SPDX-License-Identifier: MIT
// Unit tests of runtime/config.cpp: resolve_config() rejects every value out
// of range with std::invalid_argument naming the field, and reads
// WEFT_NUM_WORKERS strictly (a positive decimal integer, nothing else);
// default_config() reads WEFT_STACK_SIZE; stack_guards_from_environment()
// reads WEFT_STACK_GUARDS.
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "cpus.hpp"
#include "scheduler.hpp"
#include "scoped_env.hpp"
#include "watchdog.hpp"
#include "weft/config.hpp"

namespace {

using weft::config;
using weft::k_max_workers;
using weft::k_min_stack_size;
using weft::rt::available_cpus;
using weft::rt::default_config;
using weft::rt::resolve_config;
using weft::rt::stack_guards;
using weft::rt::stack_guards_from_environment;
using weft_test::scoped_env;

// f() must throw std::invalid_argument whose message contains every needle.
template <class F>
void expect_invalid(F f, std::initializer_list<std::string> needles) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected std::invalid_argument naming " << *needles.begin();
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    for (const std::string& n : needles) EXPECT_NE(what.find(n), std::string::npos) << "message: " << what;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

// The default: the CPUs this thread may use (runtime/cpus.hpp).
int hardware_workers() { return std::min(available_cpus(), k_max_workers); }

config with_workers(int n) {
  config c;
  c.workers = n;
  return c;
}

TEST(ResolveConfig, DefaultsAreValid) {
  scoped_env env("WEFT_NUM_WORKERS", std::nullopt);
  const config c = resolve_config(config{});
  EXPECT_EQ(c.workers, hardware_workers());
  EXPECT_EQ(c.stack_size, config{}.stack_size);
  EXPECT_EQ(c.spin_us, config{}.spin_us);
  EXPECT_EQ(c.max_fibers, config{}.max_fibers);
}

TEST(ResolveConfig, BoundaryValuesAreAccepted) {
  config c;
  c.workers = k_max_workers;
  c.stack_size = k_min_stack_size;
  c.spin_us = 1'000'000;
  c.max_fibers = 4;
  const config r = resolve_config(c);
  EXPECT_EQ(r.workers, k_max_workers);
  EXPECT_EQ(r.stack_size, k_min_stack_size);
  EXPECT_EQ(r.spin_us, 1'000'000u);
  EXPECT_EQ(r.max_fibers, 4u);
  c.workers = 1;
  c.stack_size = std::size_t{1} << 30;
  c.spin_us = 0;
  EXPECT_EQ(resolve_config(c).stack_size, std::size_t{1} << 30);
  EXPECT_EQ(resolve_config(c).workers, 1);
}

TEST(ResolveConfig, BadWorkersNamesTheField) {
  for (const int n : {-1, -1000, k_max_workers + 1, 1 << 30}) {
    SCOPED_TRACE("workers = " + std::to_string(n));
    expect_invalid([&] { resolve_config(with_workers(n)); }, {"workers"});
  }
}

TEST(ResolveConfig, BadStackSizeNamesTheField) {
  for (const std::size_t n :
       {std::size_t{0}, std::size_t{4096}, k_min_stack_size - 1, (std::size_t{1} << 30) + 1, SIZE_MAX}) {
    SCOPED_TRACE("stack_size = " + std::to_string(n));
    config c;
    c.stack_size = n;
    expect_invalid([&] { resolve_config(c); }, {"stack_size"});
  }
}

TEST(ResolveConfig, BadSpinNamesTheField) {
  for (const std::uint32_t n : {1'000'001u, UINT32_MAX}) {
    config c;
    c.spin_us = n;
    expect_invalid([&] { resolve_config(c); }, {"spin_us"});
  }
}

TEST(ResolveConfig, BadMaxFibersNamesTheField) {
  for (const std::size_t n : {std::size_t{0}, std::size_t{3}}) {
    config c;
    c.max_fibers = n;
    expect_invalid([&] { resolve_config(c); }, {"max_fibers"});
  }
}

// A bad field is reported even when the environment is bad too, and an
// explicit worker count never reads the environment.
TEST(ResolveConfig, ExplicitWorkersIgnoreTheEnvironment) {
  scoped_env env("WEFT_NUM_WORKERS", "garbage");
  EXPECT_EQ(resolve_config(with_workers(3)).workers, 3);
  config c = with_workers(0);
  c.max_fibers = 1;
  expect_invalid([&] { resolve_config(c); }, {"max_fibers"});
}

TEST(ResolveConfig, NumWorkersFromTheEnvironment) {
  const std::pair<const char*, int> cases[] = {{"1", 1},       {"2", 2},       {"8", 8},  {"64", 64},
                                               {"4095", 4095}, {"4096", 4096}, {"007", 7}};
  for (const auto& [text, n] : cases) {
    SCOPED_TRACE(std::string("WEFT_NUM_WORKERS=") + text);
    scoped_env env("WEFT_NUM_WORKERS", text);
    EXPECT_EQ(resolve_config(config{}).workers, n);
  }
}

TEST(ResolveConfig, BadNumWorkersIsRejected) {
  const char* const cases[] = {
      "",  // empty
      "0",
      "00",  // not positive
      "-1",
      "-0",
      "+4",
      "+0",  // signs
      " 4",
      "4 ",
      "\t4",
      "4\n",
      " ",  // whitespace
      "abc",
      "4abc",
      "4.0",
      "4,5",
      "0x10",
      "1e3",
      "1K",  // garbage, no suffixes
      "4097",
      "10000",                             // above k_max_workers
      "4294967297",                        // 2^32 + 1: wraps to 1 in 32 bits
      "18446744073709551617",              // 2^64 + 1: wraps to 1 in 64 bits
      "99999999999999999999999999999999",  // far beyond any integer type
      "\xd9\xa3",                          // a non-ASCII digit (ARABIC-INDIC THREE)
  };
  for (const char* text : cases) {
    SCOPED_TRACE(std::string("WEFT_NUM_WORKERS=\"") + text + "\"");
    scoped_env env("WEFT_NUM_WORKERS", text);
    expect_invalid([] { resolve_config(config{}); }, {"WEFT_NUM_WORKERS"});
  }
}

TEST(ResolveConfig, BadNumWorkersMessageQuotesTheValue) {
  {
    scoped_env env("WEFT_NUM_WORKERS", "lots");
    expect_invalid([] { resolve_config(config{}); }, {"WEFT_NUM_WORKERS", "\"lots\""});
  }
  {
    // Control characters are escaped, not printed raw.
    scoped_env env("WEFT_NUM_WORKERS", "\t4\x1b");
    expect_invalid([] { resolve_config(config{}); }, {"\"\\x094\\x1b\""});
  }
}

TEST(DefaultConfig, StackSizeFromTheEnvironment) {
  {
    scoped_env env("WEFT_STACK_SIZE", std::nullopt);
    EXPECT_EQ(default_config().stack_size, config{}.stack_size);
  }
  const std::pair<const char*, std::size_t> cases[] = {
      {"16384", 16384},
      {"16k", 16384},
      {"64K", 64 * 1024},
      {"1m", std::size_t{1} << 20},
      {"8M", std::size_t{8} << 20},
      {"1G", std::size_t{1} << 30},
      {"1073741824", std::size_t{1} << 30},
      {"1048576K", std::size_t{1} << 30},
  };
  for (const auto& [text, n] : cases) {
    SCOPED_TRACE(std::string("WEFT_STACK_SIZE=") + text);
    scoped_env env("WEFT_STACK_SIZE", text);
    EXPECT_EQ(default_config().stack_size, n);
  }
}

TEST(DefaultConfig, BadStackSizeIsRejected) {
  const char* const cases[] = {
      "",
      "0",
      "16383",
      "15K",  // too small
      "1073741825",
      "2G",
      "1048577K",
      "1025M",  // too large
      "18446744073709551616",
      "17179869184G",  // overflow before and after the suffix
      "-64K",
      "+64K",
      " 64K",
      "64K ",
      "64 K",  // signs and spaces
      "64KB",
      "64KK",
      "1T",
      "K",
      "64.5K",
      "abc",  // garbage
  };
  for (const char* text : cases) {
    SCOPED_TRACE(std::string("WEFT_STACK_SIZE=\"") + text + "\"");
    scoped_env env("WEFT_STACK_SIZE", text);
    expect_invalid([] { default_config(); }, {"WEFT_STACK_SIZE"});
  }
}

TEST(StackGuards, FromTheEnvironment) {
  {
    scoped_env env("WEFT_STACK_GUARDS", std::nullopt);
    EXPECT_EQ(stack_guards_from_environment(), stack_guards::automatic);
  }
  {
    scoped_env env("WEFT_STACK_GUARDS", "auto");
    EXPECT_EQ(stack_guards_from_environment(), stack_guards::automatic);
  }
  scoped_env env("WEFT_STACK_GUARDS", "mprotect");
  EXPECT_EQ(stack_guards_from_environment(), stack_guards::mprotect);
}

// Empty too, as for every other variable (it was taken for auto).
TEST(StackGuards, BadValueIsRejected) {
  for (const char* text : {"", "markers", "MPROTECT", " mprotect", "mprotect ", "none", "1"}) {
    SCOPED_TRACE(std::string("WEFT_STACK_GUARDS=\"") + text + "\"");
    scoped_env env("WEFT_STACK_GUARDS", text);
    expect_invalid([] { stack_guards_from_environment(); }, {"WEFT_STACK_GUARDS"});
  }
}

}  // namespace
