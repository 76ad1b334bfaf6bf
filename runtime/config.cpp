// SPDX-License-Identifier: MIT
// Validation of config values and of the environment variables weft reads.
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "cpus.hpp"
#include "scheduler.hpp"

namespace weft::rt {

namespace {

// Parses a decimal number of at most `max` with an optional K/M/G suffix
// (powers of 1024) when `suffixes`; nothing else (no sign, no spaces).
bool parse_count(const char* text, std::uint64_t max, bool suffixes, std::uint64_t& out) noexcept {
  if (text == nullptr || *text == '\0') return false;
  std::uint64_t v = 0;
  const char* p = text;
  for (; *p >= '0' && *p <= '9'; ++p) {
    const std::uint64_t d = static_cast<std::uint64_t>(*p - '0');
    if (v > (max - d) / 10) return false;
    v = v * 10 + d;
  }
  if (p == text) return false;
  if (suffixes && *p != '\0') {
    std::uint64_t unit = 0;
    switch (*p) {
      case 'k':
      case 'K': unit = std::uint64_t{1} << 10; break;
      case 'm':
      case 'M': unit = std::uint64_t{1} << 20; break;
      case 'g':
      case 'G': unit = std::uint64_t{1} << 30; break;
      default: return false;
    }
    if (v > max / unit) return false;
    v *= unit;
    ++p;
  }
  if (*p != '\0') return false;
  out = v;
  return true;
}

std::string quoted(const char* s) {
  std::string r = "\"";
  for (const char* p = s; *p != '\0' && r.size() < 64; ++p) {
    const unsigned char c = static_cast<unsigned char>(*p);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      r += static_cast<char>(c);
    } else {
      static const char hex[] = "0123456789abcdef";
      r += "\\x";
      r += hex[c >> 4];
      r += hex[c & 15];
    }
  }
  return r + "\"";
}

// Runtimes that took a number for their WEFT_TRACE file. Relaxed: only the
// numbers must differ.
std::atomic<std::uint64_t> g_env_traces{0};

// Largest accepted stack size: 1 GiB.
constexpr std::uint64_t k_max_stack_size = std::uint64_t{1} << 30;

}  // namespace

std::uint64_t take_trace_number() noexcept { return g_env_traces.fetch_add(1, std::memory_order_relaxed) + 1; }

std::string trace_path_with(const std::string& path, std::uint64_t n) {
  const std::size_t slash = path.find_last_of('/');
  const std::size_t dot = path.find_last_of('.');
  const std::size_t name = slash == std::string::npos ? 0 : slash + 1;
  const std::size_t cut = dot != std::string::npos && dot > name ? dot : path.size();  // ".json", not ".hidden"
  return path.substr(0, cut) + "-" + std::to_string(n) + path.substr(cut);
}

std::string numbered_trace_path(const std::string& path, std::uint64_t n) {
  return n == 1 ? path : trace_path_with(path, n);
}

std::string file_path_problem(const std::string& path) {
  if (path.empty()) return "an empty string";
  if (path.find('\0') != std::string::npos) return "a path holding a NUL byte";
  const std::size_t slash = path.find_last_of('/');
  const std::string last = slash == std::string::npos ? path : path.substr(slash + 1);
  if (last.empty() || last == "." || last == "..") return quoted(path.c_str()) + ", a directory";
  // An existing directory, named without a slash: writing there fails.
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return quoted(path.c_str()) + ", an existing directory";
  return {};
}

config resolve_config(config cfg) {
  if (cfg.workers < 0) throw std::invalid_argument("weft::config::workers must not be negative");
  if (cfg.workers > k_max_workers) {
    throw std::invalid_argument("weft::config::workers must be at most " + std::to_string(k_max_workers));
  }
  if (cfg.stack_size < k_min_stack_size) {
    throw std::invalid_argument("weft::config::stack_size must be at least " + std::to_string(k_min_stack_size) +
                                " bytes");
  }
  if (cfg.stack_size > k_max_stack_size) {
    throw std::invalid_argument("weft::config::stack_size must be at most 1 GiB");
  }
  if (cfg.spin_us > 1'000'000) throw std::invalid_argument("weft::config::spin_us must be at most 1000000");
  if (cfg.max_fibers < 4) throw std::invalid_argument("weft::config::max_fibers must be at least 4");
  if (static_cast<unsigned>(cfg.victim) > static_cast<unsigned>(victim_policy::last_victim)) {
    throw std::invalid_argument("weft::config::victim is not a victim_policy");
  }
  if (static_cast<unsigned>(cfg.split) > static_cast<unsigned>(split_policy::fixed)) {
    throw std::invalid_argument("weft::config::split is not a split_policy");
  }
  if (static_cast<unsigned>(cfg.caller) > static_cast<unsigned>(caller_policy::hand_over)) {
    throw std::invalid_argument("weft::config::caller is not a caller_policy");
  }
  if (cfg.trace_events < 1024 || cfg.trace_events > (std::size_t{1} << 26)) {
    throw std::invalid_argument("weft::config::trace_events must be from 1024 to 67108864");
  }
  if (cfg.victim == victim_policy::automatic) {
    cfg.victim = victim_policy::random;
    if (const char* env = std::getenv("WEFT_VICTIM_POLICY")) {
      const std::string v = env;
      if (v == "random") {
        cfg.victim = victim_policy::random;
      } else if (v == "round_robin") {
        cfg.victim = victim_policy::round_robin;
      } else if (v == "last_victim") {
        cfg.victim = victim_policy::last_victim;
      } else {
        throw std::invalid_argument("WEFT_VICTIM_POLICY must be random, round_robin or last_victim, got " +
                                    quoted(env));
      }
    }
  }
  if (cfg.split == split_policy::automatic) {
    cfg.split = split_policy::adaptive;
    if (const char* env = std::getenv("WEFT_SPLIT_POLICY")) {
      const std::string v = env;
      if (v == "adaptive") {
        cfg.split = split_policy::adaptive;
      } else if (v == "eager") {
        cfg.split = split_policy::eager;
      } else if (v == "fixed") {
        cfg.split = split_policy::fixed;
      } else {
        throw std::invalid_argument("WEFT_SPLIT_POLICY must be adaptive, eager or fixed, got " + quoted(env));
      }
    }
  }
  if (cfg.caller == caller_policy::automatic) {
    cfg.caller = caller_policy::take_part;
    if (const char* env = std::getenv("WEFT_CALLER_POLICY")) {
      const std::string v = env;
      if (v == "take_part") {
        cfg.caller = caller_policy::take_part;
      } else if (v == "hand_over") {
        cfg.caller = caller_policy::hand_over;
      } else {
        throw std::invalid_argument("WEFT_CALLER_POLICY must be take_part or hand_over, got " + quoted(env));
      }
    }
  }
  if (!cfg.trace_file.empty()) {
    if (const std::string problem = file_path_problem(cfg.trace_file); !problem.empty())
      throw std::invalid_argument("weft::config::trace_file must name a file, got " + problem);
  } else if (const char* env = std::getenv("WEFT_TRACE")) {
    if (const std::string problem = file_path_problem(env); !problem.empty())
      throw std::invalid_argument("WEFT_TRACE must name a file, got " + problem);
    cfg.trace_file = env;  // numbered by the scheduler once it started
  }
  // Read at the first call from outside a runtime (runtime/workspan.cpp);
  // checked here like the others, so that an empty one is an error too.
  if (const char* env = std::getenv("WEFT_WORKSPAN")) {
    if (const std::string problem = file_path_problem(env); !problem.empty())
      throw std::invalid_argument("WEFT_WORKSPAN must name a file, got " + problem);
  }
  if (cfg.workers == 0) {
    if (const char* env = std::getenv("WEFT_NUM_WORKERS")) {
      std::uint64_t n = 0;
      if (!parse_count(env, static_cast<std::uint64_t>(k_max_workers), false, n) || n == 0) {
        throw std::invalid_argument("WEFT_NUM_WORKERS must be a positive integer no larger than " +
                                    std::to_string(k_max_workers) + ", got " + quoted(env));
      }
      cfg.workers = static_cast<int>(n);
    } else {
      cfg.workers = std::min(available_cpus(), k_max_workers);
    }
  }
  return cfg;
}

config default_config() {
  config cfg;
  if (const char* env = std::getenv("WEFT_STACK_SIZE")) {
    std::uint64_t n = 0;
    if (!parse_count(env, k_max_stack_size, true, n) || n < k_min_stack_size) {
      throw std::invalid_argument("WEFT_STACK_SIZE must be a byte count from " + std::to_string(k_min_stack_size) +
                                  " to 1G (suffixes K, M, G allowed), got " + quoted(env));
    }
    cfg.stack_size = static_cast<std::size_t>(n);
  }
  return cfg;
}

stack_guards stack_guards_from_environment() {
  const char* env = std::getenv("WEFT_STACK_GUARDS");
  // Set but empty is an error, as for every other variable.
  if (env == nullptr || std::string(env) == "auto") return stack_guards::automatic;
  if (std::string(env) == "mprotect") return stack_guards::mprotect;
  throw std::invalid_argument("WEFT_STACK_GUARDS must be auto or mprotect, got " + quoted(env));
}

}  // namespace weft::rt
