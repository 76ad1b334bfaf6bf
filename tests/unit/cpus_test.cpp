// SPDX-License-Identifier: MIT
// available_cpus() and cgroup_cpu_quota() (runtime/cpus.hpp): the quota is
// read from copies of /proc/{thread-self,self}/{cgroup,mountinfo} and of the cgroup files
// in a temporary directory, laid out as on the hosts and containers that set
// them (cgroup v2 with and without a cgroup namespace, nested limits, v1
// cpu,cpuacct, hybrid); the affinity mask from threads restricted to fewer
// CPUs.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "cpus.hpp"

namespace {

namespace fs = std::filesystem;

// A directory that stands for "/": files are written under it and it is
// removed at the end.
class fake_root {
 public:
  fake_root() {
    std::string tmpl = (fs::temp_directory_path() / "weft-cpus-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    m_dir = tmpl;
  }
  ~fake_root() {
    std::error_code ec;
    fs::remove_all(m_dir, ec);
  }
  fake_root(const fake_root&) = delete;
  fake_root& operator=(const fake_root&) = delete;

  void write(const std::string& path, const std::string& text) const {
    const fs::path p = fs::path(m_dir.string() + path);
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  // A cgroup v1 directory's quota and period (the kernel's two files).
  void write_v1(const std::string& dir, const std::string& quota, const std::string& period) const {
    write(dir + "/cpu.cfs_quota_us", quota + "\n");
    write(dir + "/cpu.cfs_period_us", period + "\n");
  }
  int quota() const { return weft::rt::cgroup_cpu_quota(m_dir.string()); }

 private:
  fs::path m_dir;
};

// mountinfo lines as the kernel writes them.
const std::string k_v2_mount =
    "30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw\n";
const std::string k_v1_cpu_mount =
    "31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct\n";
const std::string k_v1_cpuset_mount = "33 30 0:30 / /sys/fs/cgroup/cpuset rw,nosuid - cgroup cgroup rw,cpuset\n";

TEST(CgroupQuota, V2InItsOwnNamespace) {
  fake_root r;
  r.write("/proc/self/cgroup", "0::/\n");
  r.write("/proc/self/mountinfo", k_v2_mount);
  r.write("/sys/fs/cgroup/cpu.max", "150000 100000\n");
  EXPECT_EQ(r.quota(), 2);  // 1.5 CPUs, rounded up
  r.write("/sys/fs/cgroup/cpu.max", "400000 100000\n");
  EXPECT_EQ(r.quota(), 4);
  r.write("/sys/fs/cgroup/cpu.max", "1000 100000\n");
  EXPECT_EQ(r.quota(), 1);  // never 0
  r.write("/sys/fs/cgroup/cpu.max", "max 100000\n");
  EXPECT_EQ(r.quota(), 0);
}

TEST(CgroupQuota, V2NestedLimitsTheTightestCounts) {
  fake_root r;
  r.write("/proc/self/cgroup", "0::/kubepods/pod1/app\n");
  r.write("/proc/self/mountinfo", k_v2_mount);
  r.write("/sys/fs/cgroup/kubepods/pod1/app/cpu.max", "max 100000\n");
  r.write("/sys/fs/cgroup/kubepods/pod1/cpu.max", "300000 100000\n");
  r.write("/sys/fs/cgroup/kubepods/cpu.max", "800000 100000\n");
  EXPECT_EQ(r.quota(), 3);
  r.write("/sys/fs/cgroup/kubepods/pod1/app/cpu.max", "100000 50000\n");
  EXPECT_EQ(r.quota(), 2);
  // A sibling's limit does not count.
  r.write("/sys/fs/cgroup/kubepods/pod2/cpu.max", "100000 100000\n");
  EXPECT_EQ(r.quota(), 2);
}

TEST(CgroupQuota, V2MountedAtTheProcessCgroup) {
  // No cgroup namespace: /proc/self/cgroup names the host's path, and the
  // container's mount shows that cgroup as its root.
  fake_root r;
  r.write("/proc/self/cgroup", "0::/system.slice/docker-abc.scope\n");
  r.write("/proc/self/mountinfo", "30 24 0:26 /system.slice/docker-abc.scope /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n");
  r.write("/sys/fs/cgroup/cpu.max", "250000 100000\n");
  EXPECT_EQ(r.quota(), 3);
}

TEST(CgroupQuota, V2MountThatDoesNotShowTheProcessCgroupIsSkipped) {
  fake_root r;
  r.write("/proc/self/cgroup", "0::/a\n");
  r.write("/proc/self/mountinfo", "30 24 0:26 /b /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
  r.write("/sys/fs/cgroup/cpu.max", "100000 100000\n");
  EXPECT_EQ(r.quota(), 0);
  // "/ab" is not below "/a".
  r.write("/proc/self/mountinfo", "30 24 0:26 /a /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
  r.write("/proc/self/cgroup", "0::/ab\n");
  EXPECT_EQ(r.quota(), 0);
}

TEST(CgroupQuota, V1CpuController) {
  fake_root r;
  r.write("/proc/self/cgroup", "5:cpuset:/\n4:cpu,cpuacct:/docker/abc\n0::/\n");
  r.write("/proc/self/mountinfo", k_v1_cpuset_mount + k_v1_cpu_mount);
  r.write_v1("/sys/fs/cgroup/cpu,cpuacct/docker/abc", "50000", "100000");
  EXPECT_EQ(r.quota(), 1);
  r.write("/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
  EXPECT_EQ(r.quota(), 0);
  r.write_v1("/sys/fs/cgroup/cpu,cpuacct/docker", "600000", "100000");
  EXPECT_EQ(r.quota(), 6);
}

TEST(CgroupQuota, V1CpusetOrCpuacctAloneIsNotTheCpuController) {
  fake_root r;
  r.write("/proc/self/cgroup", "5:cpuset:/x\n3:cpuacct:/x\n");
  r.write("/proc/self/mountinfo",
          k_v1_cpuset_mount + "32 30 0:29 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct\n");
  r.write_v1("/sys/fs/cgroup/cpuset/x", "100000", "100000");
  r.write_v1("/sys/fs/cgroup/cpuacct/x", "100000", "100000");
  EXPECT_EQ(r.quota(), 0);
}

TEST(CgroupQuota, HybridTakesTheV1CpuQuota) {
  fake_root r;
  r.write("/proc/self/cgroup", "4:cpu,cpuacct:/job\n0::/job\n");
  r.write("/proc/self/mountinfo", k_v1_cpu_mount + "40 30 0:37 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n");
  r.write_v1("/sys/fs/cgroup/cpu,cpuacct/job", "200000", "100000");
  EXPECT_EQ(r.quota(), 2);
}

// A thread in a cgroup of its own (v1, or v2's threaded mode) is limited by
// its cgroup, not by the process's: /proc/thread-self comes first, and
// /proc/self counts only where it is all there is (the other tests).
TEST(CgroupQuota, TheCallingThreadsCgroupCounts) {
  fake_root r;
  r.write("/proc/self/cgroup", "4:cpu,cpuacct:/\n");
  r.write("/proc/self/mountinfo", k_v1_cpu_mount);
  r.write("/proc/thread-self/cgroup", "4:cpu,cpuacct:/limited\n");
  r.write("/proc/thread-self/mountinfo", k_v1_cpu_mount);
  r.write_v1("/sys/fs/cgroup/cpu,cpuacct/limited", "100000", "100000");
  EXPECT_EQ(r.quota(), 1);
  // And the other way round: the process limited, the thread not.
  r.write("/proc/self/cgroup", "4:cpu,cpuacct:/limited\n");
  r.write("/proc/thread-self/cgroup", "4:cpu,cpuacct:/\n");
  EXPECT_EQ(r.quota(), 0);
}

TEST(CgroupQuota, EscapedMountPoint) {
  fake_root r;
  r.write("/proc/self/cgroup", "0::/\n");
  r.write("/proc/self/mountinfo", "30 24 0:26 / /mnt/cg\\040roup rw - cgroup2 none rw\n");
  r.write("/mnt/cg roup/cpu.max", "300000 100000\n");
  EXPECT_EQ(r.quota(), 3);
}

TEST(CgroupQuota, MissingOrGarbageFilesMeanNoQuota) {
  fake_root r;
  EXPECT_EQ(r.quota(), 0);  // no /proc files at all
  r.write("/proc/self/cgroup", "0::/\n");
  r.write("/proc/self/mountinfo", k_v2_mount);
  EXPECT_EQ(r.quota(), 0);  // no cpu.max
  for (const char* garbage : {"", "\n", "100000", "0 100000", "100000 0", "-5 100000", "abc 100000", "1e5 100000",
                              "100000 100000 7", "99999999999999999999 1"}) {
    SCOPED_TRACE(garbage);
    r.write("/sys/fs/cgroup/cpu.max", garbage);
    EXPECT_EQ(r.quota(), 0);
  }
  r.write("/proc/self/mountinfo", "garbage\n\n- - -\n1 2 3 4 5 6 - cgroup2\n");
  r.write("/sys/fs/cgroup/cpu.max", "100000 100000\n");
  EXPECT_EQ(r.quota(), 0);
}

// ---- the affinity mask ----

// Runs fn on a thread restricted to the first `cpus` CPUs its creator may
// use; false when there are not that many.
template <class F>
bool on_thread_with_cpus(int cpus, F fn) {
  cpu_set_t mine;
  CPU_ZERO(&mine);
  if (sched_getaffinity(0, sizeof mine, &mine) != 0 || CPU_COUNT(&mine) < cpus) return false;
  cpu_set_t fewer;
  CPU_ZERO(&fewer);
  int taken = 0;
  for (int c = 0; c < CPU_SETSIZE && taken < cpus; ++c) {
    if (CPU_ISSET(c, &mine)) {
      CPU_SET(c, &fewer);
      ++taken;
    }
  }
  bool set = false;
  std::thread t([&] {
    set = pthread_setaffinity_np(pthread_self(), sizeof fewer, &fewer) == 0;
    if (set) fn();
  });
  t.join();
  return set;
}

TEST(AvailableCpus, NoMoreThanTheAffinityMaskHolds) {
  cpu_set_t mine;
  CPU_ZERO(&mine);
  ASSERT_EQ(sched_getaffinity(0, sizeof mine, &mine), 0);
  const int allowed = CPU_COUNT(&mine);
  const int n = weft::rt::available_cpus();
  EXPECT_GE(n, 1);
  EXPECT_LE(n, allowed);
  EXPECT_LE(n, static_cast<int>(std::thread::hardware_concurrency()));
  const bool ran = on_thread_with_cpus(1, [] { EXPECT_EQ(weft::rt::available_cpus(), 1); });
  if (!ran) GTEST_SKIP() << "this system refuses to bind a thread to one CPU";
  if (allowed >= 2) {
    on_thread_with_cpus(2, [] {
      const int quota = weft::rt::cgroup_cpu_quota("");
      EXPECT_EQ(weft::rt::available_cpus(), quota > 0 && quota < 2 ? quota : 2);
    });
  }
}

}  // namespace
