// SPDX-License-Identifier: MIT
// weft::rt: how many CPUs the calling thread may use, the default worker
// count of a runtime.
// Owns: nothing. Used by resolve_config() (config.cpp).
#pragma once

#include <string>

namespace weft::rt {

// The CPUs the calling thread may use: the online hardware threads, no more
// than its affinity mask holds (taskset, a cpuset cgroup, an MPI rank's
// binding) and no more than the CPU quota of its cgroups allows (rounded up).
// At least 1. Reads /proc and /sys on every call (a quota can change).
int available_cpus();

// The tightest CPU quota of the calling thread's cgroups in CPUs, rounded up; 0 when
// none is set or none can be read. Every level from the thread's cgroup up
// to the root of its mount counts: cgroup v2 `cpu.max` ("max" or "QUOTA
// PERIOD"), v1 `cpu.cfs_quota_us` (-1: none) over `cpu.cfs_period_us`, found
// through the calling thread's mountinfo and cgroup files in
// /proc/thread-self (/proc/self where that cannot be read). `root` is
// prefixed to every path read ("" for the real files; tests give a directory
// that holds a copy of proc/thread-self/... or proc/self/... and of the
// cgroup mounts).
int cgroup_cpu_quota(const std::string& root);

}  // namespace weft::rt
