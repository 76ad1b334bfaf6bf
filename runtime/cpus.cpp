// SPDX-License-Identifier: MIT
// The CPUs a runtime's workers may use: hardware threads, affinity mask and
// cgroup CPU quota (see cpus.hpp).
#include "cpus.hpp"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <string_view>
#include <thread>
#include <vector>

namespace weft::rt {

namespace {

// The whole of a small file (a few kilobytes: /proc and cgroup files); false
// when it cannot be opened or read.
bool read_file(const std::string& path, std::string& out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out.clear();
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      ::close(fd);
      return false;
    }
  }
  ::close(fd);
  return true;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    const std::size_t at = s.find(sep, start);
    parts.push_back(s.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) return parts;
    start = at + 1;
  }
}

// A decimal count without sign or spaces (a trailing newline allowed); false
// for anything else, 0 included.
bool parse_positive(std::string_view s, std::uint64_t& out) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  if (s.empty() || s.size() > 18) return false;
  std::uint64_t v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (v == 0) return false;
  out = v;
  return true;
}

// CPUs of a quota, rounded up: at least 1, at most INT32_MAX.
int quota_cpus(std::uint64_t quota, std::uint64_t period) {
  const std::uint64_t cpus = quota / period + (quota % period != 0 ? 1 : 0);
  return static_cast<int>(std::clamp<std::uint64_t>(cpus, 1, INT32_MAX));
}

// cgroup v2: "max PERIOD" or "QUOTA PERIOD"; 0 for no quota.
int v2_quota(const std::string& dir) {
  std::string text;
  if (!read_file(dir + "/cpu.max", text)) return 0;
  const std::vector<std::string_view> f = split(text, ' ');
  std::uint64_t quota = 0;
  std::uint64_t period = 0;
  if (f.size() != 2 || !parse_positive(f[0], quota) || !parse_positive(f[1], period)) return 0;
  return quota_cpus(quota, period);
}

// cgroup v1: cpu.cfs_quota_us (-1: no quota) over cpu.cfs_period_us.
int v1_quota(const std::string& dir) {
  std::string quota_text;
  std::string period_text;
  std::uint64_t quota = 0;
  std::uint64_t period = 0;
  if (!read_file(dir + "/cpu.cfs_quota_us", quota_text) || !parse_positive(quota_text, quota)) return 0;
  if (!read_file(dir + "/cpu.cfs_period_us", period_text) || !parse_positive(period_text, period)) return 0;
  return quota_cpus(quota, period);
}

// A mountinfo path field with its octal escapes (\040 for a space) undone.
std::string unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' && s[i + 2] <= '7' &&
        s[i + 3] >= '0' && s[i + 3] <= '7') {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

bool has_element(std::string_view list, std::string_view name) {
  for (const std::string_view e : split(list, ',')) {
    if (e == name) return true;
  }
  return false;
}

// The tighter of two quotas in CPUs, 0 standing for none.
int tighter(int a, int b) { return a == 0 || (b != 0 && b < a) ? b : a; }

// The tightest quota from dir up to mount_point (both under root), each
// level read by quota_at; 0 for none.
int quota_up_to(std::string dir, const std::string& mount_point, int (*quota_at)(const std::string&)) {
  int best = 0;
  for (;;) {
    best = tighter(best, quota_at(dir));
    if (dir.size() <= mount_point.size()) return best;
    const std::size_t slash = dir.find_last_of('/');
    if (slash == std::string::npos || slash < mount_point.size()) return best;
    dir.resize(slash);
  }
}

}  // namespace

int cgroup_cpu_quota(const std::string& root) {
  std::string cgroups;
  std::string mounts;
  // The calling thread's cgroups (a thread may have its own: cgroup v1, or
  // v2's threaded mode); /proc/self (the process's main thread) on kernels
  // before 3.17, which have no /proc/thread-self.
  const auto read_proc = [&](const char* dir) {
    return read_file(root + dir + "/cgroup", cgroups) && read_file(root + dir + "/mountinfo", mounts);
  };
  if (!read_proc("/proc/thread-self") && !read_proc("/proc/self")) return 0;
  // The thread's cgroup in the v2 hierarchy ("0::PATH") and in the v1
  // hierarchy that holds the cpu controller ("N:cpu,cpuacct:PATH").
  std::string v2_path;
  std::string v1_path;
  bool have_v2 = false;
  bool have_v1 = false;
  for (const std::string_view line : split(cgroups, '\n')) {
    const std::size_t first = line.find(':');
    const std::size_t second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    const std::string_view id = line.substr(0, first);
    const std::string_view controllers = line.substr(first + 1, second - first - 1);
    const std::string_view path = line.substr(second + 1);
    if (id == "0" && controllers.empty()) {
      v2_path = path;
      have_v2 = true;
    } else if (has_element(controllers, "cpu")) {
      v1_path = path;
      have_v1 = true;
    }
  }
  int best = 0;
  for (const std::string_view line : split(mounts, '\n')) {
    // ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS
    const std::vector<std::string_view> f = split(line, ' ');
    std::size_t dash = 6;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (dash + 3 >= f.size()) continue;  // no FSTYPE SOURCE SUPER_OPTIONS after the dash
    const std::string_view fstype = f[dash + 1];
    const bool v2 = fstype == "cgroup2" && have_v2;
    const bool v1 = fstype == "cgroup" && have_v1 && has_element(f[dash + 3], "cpu");
    if (!v2 && !v1) continue;
    const std::string& path = v2 ? v2_path : v1_path;
    // The mount shows the hierarchy from ROOT down: the thread's cgroup is
    // under it, or this mount does not show it.
    const std::string mount_root = unescape(f[3]);
    std::string below;
    if (mount_root == "/") {
      below = path == "/" ? "" : path;
    } else if (path == mount_root) {
      below = "";
    } else if (path.size() > mount_root.size() && path.compare(0, mount_root.size(), mount_root) == 0 &&
               path[mount_root.size()] == '/') {
      below = path.substr(mount_root.size());
    } else {
      continue;
    }
    std::string mount_point = root + unescape(f[4]);
    while (mount_point.size() > root.size() + 1 && mount_point.back() == '/') mount_point.pop_back();
    best = tighter(best, quota_up_to(mount_point + below, mount_point, v2 ? &v2_quota : &v1_quota));
  }
  return best;
}

int available_cpus() {
  const unsigned hw = std::thread::hardware_concurrency();
  long n = hw == 0 ? 1 : static_cast<long>(hw);
  // The mask's size must cover the kernel's: grow it while it is too small.
  for (std::size_t cpus = 1024; cpus <= (std::size_t{1} << 20); cpus *= 2) {
    cpu_set_t* set = CPU_ALLOC(cpus);
    if (set == nullptr) break;
    const std::size_t size = CPU_ALLOC_SIZE(cpus);
    CPU_ZERO_S(size, set);
    const int rc = sched_getaffinity(0, size, set);
    const int err = errno;
    const int allowed = rc == 0 ? CPU_COUNT_S(size, set) : 0;
    CPU_FREE(set);
    if (rc == 0) {
      if (allowed > 0) n = std::min<long>(n, allowed);
      break;
    }
    if (err != EINVAL) break;
  }
  const int quota = cgroup_cpu_quota("");
  if (quota > 0) n = std::min<long>(n, quota);
  return static_cast<int>(std::max<long>(n, 1));
}

}  // namespace weft::rt
