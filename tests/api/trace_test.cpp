// SPDX-License-Identifier: MIT
// The trace: valid Chrome trace-event JSON, one balanced track per worker
// (slices never overlap on a track), steal arrows that start and end inside
// slices, written at destruction, on demand, and when WEFT_TRACE is set.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <weft/weft.hpp>

#include "expect_names.hpp"
#include "scoped_env.hpp"
#include "watchdog.hpp"
#include "worker_count.hpp"

namespace {

using json = nlohmann::json;

// The value of a string field, or of a number field; both throw
// nlohmann::json::type_error when the field has another type.
const std::string& str(const json& j) { return j.get_ref<const std::string&>(); }
double num(const json& j) { return j.get<double>(); }

std::string temp_path(const std::string& name) {
  return "/tmp/weft-trace-test-" + std::to_string(::getpid()) + "-" + name + ".json";
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "no trace at " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

long fib(int n) {
  if (n < 2) return n;
  auto [a, b] = weft::join([n] { return fib(n - 2); }, [n] { return fib(n - 1); });
  return a + b;
}

// Work with steals, suspensions and idle periods.
void workload() {
  weft::parallelize(32, [](int i) {
    weft::parallelize(2000 + i * 100, [](int) {});
    fib(14);
  });
  fib(20);
}

struct slice {
  double begin;
  double end;
  std::string name;
};

// Checks the structure; returns the number of steal arrows.
int check_trace(const json& doc, int workers) {
  const json& events = doc.at("traceEvents");
  EXPECT_TRUE(events.is_array());
  std::map<int, std::vector<slice>> tracks;
  std::map<long, std::vector<const json*>> flows;
  std::map<int, std::string> names;
  int run_slices = 0;
  for (const json& e : events) {
    const std::string& ph = str(e.at("ph"));
    const int tid = static_cast<int>(num(e.at("tid")));
    if (ph == "M") {
      if (str(e.at("name")) == "thread_name") names[tid] = str(e.at("args").at("name"));
      continue;
    }
    EXPECT_GE(tid, 0);
    EXPECT_LT(tid, workers);
    EXPECT_GE(num(e.at("ts")), 0.0);
    if (ph == "X") {
      EXPECT_GE(num(e.at("dur")), 0.0);
      // The slices docs/tracing.md names, each with its category; a task
      // says where it came from.
      const std::string& name = str(e.at("name"));
      if (name == "task" || name == "resume") {
        EXPECT_EQ(str(e.at("cat")), "run") << name;
      } else if (name == "searching" || name == "parked") {
        EXPECT_EQ(str(e.at("cat")), "idle") << name;
      } else {
        ADD_FAILURE() << "a slice named " << name;
      }
      if (name == "task") {
        EXPECT_TRUE(e.contains("args") && (e.at("args").contains("source") || e.at("args").contains("stolen from")))
            << "a task slice without its source";
      }
      if (name == "task" || name == "resume") ++run_slices;
      tracks[tid].push_back({num(e.at("ts")), num(e.at("ts")) + num(e.at("dur")), str(e.at("name"))});
    } else if (ph == "s" || ph == "f") {
      flows[static_cast<long>(num(e.at("id")))].push_back(&e);
    } else {
      EXPECT_EQ(ph, "C") << "unexpected event phase";
    }
  }
  for (int w = 0; w < workers; ++w) EXPECT_EQ(names[w], "worker " + std::to_string(w));
  EXPECT_GT(run_slices, 0) << "every trace here ran something";
  // Balanced: the slices of one worker follow each other without overlapping
  // (times are printed with 1 ns resolution; a slice's ts + dur is the next
  // one's ts exactly, up to the parse of the decimals).
  for (auto& [tid, v] : tracks) {
    // Zero-length slices share their start with the next one: order ties by end.
    std::sort(v.begin(), v.end(),
              [](const slice& a, const slice& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
    for (std::size_t i = 1; i < v.size(); ++i) {
      EXPECT_GE(v[i].begin + 1e-6, v[i - 1].end)
          << "overlapping slices on worker " << tid << ": " << v[i - 1].name << " and " << v[i].name;
    }
  }
  auto inside_a_slice = [&](int tid, double ts) {
    for (const slice& s : tracks[tid]) {
      if (ts + 0.002 >= s.begin && ts <= s.end + 0.002) return true;
    }
    return false;
  };
  for (auto& [id, ends] : flows) {
    EXPECT_EQ(ends.size(), 2u) << "flow " << id << " needs one start and one end";
    if (ends.size() != 2) continue;
    const json* s = str(ends[0]->at("ph")) == "s" ? ends[0] : ends[1];
    const json* f = str(ends[0]->at("ph")) == "f" ? ends[0] : ends[1];
    EXPECT_EQ(str(s->at("ph")), "s");
    EXPECT_EQ(str(f->at("ph")), "f");
    EXPECT_LE(num(s->at("ts")), num(f->at("ts")) + 0.002) << "a steal before its publication";
    EXPECT_TRUE(inside_a_slice(static_cast<int>(num(s->at("tid"))), num(s->at("ts"))))
        << "a steal arrow that starts outside any slice";
    EXPECT_TRUE(inside_a_slice(static_cast<int>(num(f->at("tid"))), num(f->at("ts"))))
        << "a steal arrow that ends outside any slice";
  }
  return static_cast<int>(flows.size());
}

class TraceTest : public ::testing::TestWithParam<int> {};

TEST_P(TraceTest, WrittenAtDestructionIsValidAndBalanced) {
  const std::string path = temp_path("destruction-" + std::to_string(GetParam()));
  std::remove(path.c_str());
  std::uint64_t steals = 0;
  {
    weft::config cfg;
    cfg.workers = GetParam();
    cfg.trace_file = path;
    weft::runtime rt(cfg);
    EXPECT_TRUE(rt.tracing());
    rt.run(workload);
    steals = rt.stats().total.steals;
  }
  const json doc = read_json(path);
  const int arrows = check_trace(doc, GetParam());
  EXPECT_LE(static_cast<std::uint64_t>(arrows), steals) << "an arrow for every steal at most";
  if (GetParam() == 1) {
    EXPECT_EQ(arrows, 0);
  }
  std::remove(path.c_str());
}

TEST_P(TraceTest, WrittenOnDemandWhileIdle) {
  const std::string path = temp_path("demand-" + std::to_string(GetParam()));
  weft::config cfg;
  cfg.workers = GetParam();
  cfg.trace_file = temp_path("unused-" + std::to_string(GetParam()));
  weft::runtime rt(cfg);
  rt.run(workload);
  rt.write_trace(path);
  check_trace(read_json(path), GetParam());
  std::remove(path.c_str());
}

TEST_P(TraceTest, SmallRingKeepsTheNewestEventsBalanced) {
  const std::string path = temp_path("ring-" + std::to_string(GetParam()));
  weft::config cfg;
  cfg.workers = GetParam();
  cfg.trace_file = path;
  cfg.trace_events = 1024;  // far fewer than the workload records
  {
    weft::runtime rt(cfg);
    for (int i = 0; i < 20; ++i) rt.run(workload);
  }
  check_trace(read_json(path), GetParam());
  std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(Workers, TraceTest, ::testing::Values(1, 2, 3, 8),
                         [](const auto& info) { return "Workers" + std::to_string(info.param); });

TEST(TraceOffTest, WriteTraceWithoutTracingThrows) {
  weft_test::scoped_env no_trace("WEFT_TRACE", std::nullopt);
  weft::runtime rt{weft::config{.workers = 2}};
  EXPECT_FALSE(rt.tracing());
  EXPECT_THROW(rt.write_trace(temp_path("off")), std::logic_error);
}

// The files written for WEFT_TRACE=`path`: the path itself for the first
// runtime of the process that takes it from there, the path with "-n" before
// ".json" for the n-th (other tests of this process may have been first).
std::vector<std::string> env_trace_files(const std::string& path) {
  const std::string stem = path.substr(0, path.size() - std::string(".json").size());
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(path).parent_path())) {
    const std::string name = entry.path().string();
    if (name == path || (name.rfind(stem + "-", 0) == 0 && name.ends_with(".json") &&
                         name.find_first_not_of("0123456789", stem.size() + 1) == name.size() - 5)) {
      files.push_back(name);
    }
  }
  return files;
}

TEST(TraceEnvTest, WeftTraceTurnsItOn) {
  const std::string path = temp_path("env");
  for (const std::string& f : env_trace_files(path)) std::remove(f.c_str());
  {
    weft_test::scoped_env trace("WEFT_TRACE", path.c_str());
    weft::runtime rt{weft::config{.workers = 2}};
    EXPECT_TRUE(rt.tracing());
    rt.run(workload);
  }
  const std::vector<std::string> files = env_trace_files(path);
  ASSERT_EQ(files.size(), 1u);
  check_trace(read_json(files[0]), 2);
  std::remove(files[0].c_str());
}

// Runtimes that take their file from WEFT_TRACE write one file each, also
// when they are destroyed at once (they used to write one file into each
// other).
TEST(TraceEnvTest, RuntimesDestroyedAtOnceWriteAFileEach) {
  constexpr int k_runtimes = 4;
  const std::string path = temp_path("env-many");
  for (const std::string& f : env_trace_files(path)) std::remove(f.c_str());
  {
    weft_test::scoped_env trace("WEFT_TRACE", path.c_str());
    std::vector<std::unique_ptr<weft::runtime>> runtimes;
    for (int i = 0; i < k_runtimes; ++i) {
      runtimes.push_back(std::make_unique<weft::runtime>(weft::config{.workers = 2}));
      for (int k = 0; k <= i; ++k) runtimes.back()->run(workload);  // traces of different lengths
    }
    std::barrier start(k_runtimes);
    std::vector<std::thread> threads;
    for (int i = 0; i < k_runtimes; ++i) {
      threads.emplace_back([&, i] {
        start.arrive_and_wait();
        runtimes[static_cast<std::size_t>(i)].reset();
      });
    }
    for (auto& t : threads) t.join();
  }
  const std::vector<std::string> files = env_trace_files(path);
  EXPECT_EQ(files.size(), static_cast<std::size_t>(k_runtimes));
  for (const std::string& f : files) {
    check_trace(read_json(f), 2);
    std::remove(f.c_str());
  }
}

// An empty directory of this process's own under /tmp, named by suffix.
std::filesystem::path fresh_directory(const std::string& suffix) {
  const std::filesystem::path dir = "/tmp/weft-trace-test-" + std::to_string(::getpid()) + "-" + suffix + ".d";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directory(dir);
  return dir;
}

// A name without an extension gets the number at its end, also when a
// directory above it has a dot in its name.
TEST(TraceEnvTest, NumberedNamesWithoutAnExtension) {
  const std::filesystem::path dir = fresh_directory("numbered");
  const std::string path = (dir / "trace").string();
  {
    weft_test::scoped_env trace("WEFT_TRACE", path.c_str());
    weft::runtime first{weft::config{.workers = 1}};
    weft::runtime second{weft::config{.workers = 1}};
    first.run(workload);
    second.run(workload);
  }
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  EXPECT_EQ(names.size(), 2u);
  for (const std::string& name : names) {
    // "trace" (the first runtime of this process to take WEFT_TRACE), else "trace-<n>".
    const bool plain = name == "trace";
    const bool numbered =
        name.rfind("trace-", 0) == 0 && name.size() > 6 && name.find_first_not_of("0123456789", 6) == std::string::npos;
    EXPECT_TRUE(plain || numbered) << name;
    check_trace(read_json((dir / name).string()), 1);
  }
  std::filesystem::remove_all(dir);
}

// How many traces `data` holds, one after the other.
std::size_t trace_documents(const std::string& data) {
  std::size_t documents = 0;
  for (std::size_t at = data.find("\"traceEvents\""); at != std::string::npos;
       at = data.find("\"traceEvents\"", at + 1)) {
    ++documents;
  }
  return documents;
}

// A WEFT_TRACE that names a pipe (or a device: /dev/null) is written there
// by every runtime that takes it. The second runtime used to write a new
// file beside it, "trace-2.json" (as root, "/dev/null-2" in /dev).
TEST(TraceEnvTest, APipeIsWrittenInPlaceByEveryRuntime) {
  const std::filesystem::path dir = fresh_directory("fifo");
  const std::string path = (dir / "trace.json").string();
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0) << std::strerror(errno);
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK);  // a reader: the writers' open does not wait
  ASSERT_GE(fd, 0) << std::strerror(errno);
  std::atomic<bool> written{false};
  std::string data;
  std::thread reader([&] {
    char buffer[4096];
    for (;;) {
      const bool last = written.load(std::memory_order_acquire);  // then one more pass drains the pipe
      ssize_t n = 0;
      while ((n = ::read(fd, buffer, sizeof buffer)) > 0) data.append(buffer, static_cast<std::size_t>(n));
      if (last) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  {
    weft_test::scoped_env trace("WEFT_TRACE", path.c_str());
    weft::runtime first{weft::config{.workers = 1}};
    weft::runtime second{weft::config{.workers = 1}};
    first.run(workload);
    second.run(workload);
  }
  written.store(true, std::memory_order_release);
  reader.join();
  ::close(fd);
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"trace.json"});
  EXPECT_EQ(trace_documents(data), 2u);
  std::filesystem::remove_all(dir);
}

// A pipe that nobody reads: each runtime says on stderr that it could not
// write its trace, and goes on; the first one waited for a reader for ever
// in its destructor (the second too, once the pipe was written in place).
TEST(TraceEnvTest, APipeThatNobodyReadsIsAnErrorNotAHang) {
  const std::filesystem::path dir = fresh_directory("fifo-unread");
  const std::string path = (dir / "trace.json").string();
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0) << std::strerror(errno);
  ::testing::internal::CaptureStderr();
  {
    weft_test::scoped_env trace("WEFT_TRACE", path.c_str());
    weft::runtime first{weft::config{.workers = 1}};
    weft::runtime second{weft::config{.workers = 1}};
    first.run(workload);
    second.run(workload);
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  std::size_t lines = 0;
  for (std::size_t at = err.find(path); at != std::string::npos; at = err.find(path, at + 1)) ++lines;
  EXPECT_EQ(lines, 2u) << err;
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"trace.json"});
  std::filesystem::remove_all(dir);
}

// A pipe whose reader leaves while the trace is written: the runtime says on
// stderr that it could not write its trace, and the process goes on. The
// write raised SIGPIPE, which ended the process (this test's) at the
// runtime's destruction.
TEST(TraceEnvTest, APipeWhoseReaderLeavesIsAnErrorNotTheEnd) {
  const std::filesystem::path dir = fresh_directory("fifo-left");
  const std::string path = (dir / "trace.json").string();
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0) << std::strerror(errno);
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK);  // a reader: the writer's open succeeds
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ::fcntl(fd, F_SETPIPE_SZ, 4096);  // the smallest pipe: the trace cannot fit in it
  std::thread reader([fd] {
    char buffer[64];
    while (::read(fd, buffer, sizeof buffer) <= 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ::close(fd);  // leaves after the first bytes
  });
  ::testing::internal::CaptureStderr();
  {
    weft_test::scoped_env trace("WEFT_TRACE", path.c_str());
    weft::runtime rt{weft::config{.workers = 1}};
    rt.run([] {  // a trace of about 160 KiB at 1 worker: a slice per resumption
      weft::task_group group;
      for (int k = 0; k < 4; ++k) {
        group.spawn([] {
          for (int i = 0; i < 500; ++i) weft::yield();
        });
      }
      group.wait();
    });
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  reader.join();
  EXPECT_NE(err.find(path), std::string::npos) << err;
  EXPECT_NE(err.find(std::strerror(EPIPE)), std::string::npos) << err;
  std::filesystem::remove_all(dir);
}

// A link under /dev that leads to a regular file (/dev/stdout redirected to
// a file; here /dev/fd/N of a file the test opened) keeps every runtime's
// trace: each appends. Each truncated it, leaving only the last trace.
TEST(TraceEnvTest, ALinkUnderDevToAFileKeepsEveryTrace) {
  const std::filesystem::path dir = fresh_directory("dev-fd");
  const std::string file = (dir / "out.json").string();
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  const std::string path = "/dev/fd/" + std::to_string(fd);
  {
    weft_test::scoped_env trace("WEFT_TRACE", path.c_str());
    weft::runtime first{weft::config{.workers = 1}};
    weft::runtime second{weft::config{.workers = 1}};
    first.run(workload);
    second.run(workload);
  }
  ::close(fd);
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  const std::string data = text.str();
  EXPECT_EQ(trace_documents(data), 2u);
  std::filesystem::remove_all(dir);
}

// A runtime that fails to start takes no number: the next runtime that
// starts writes the file numbered after the one before it. An invalid
// WEFT_NUM_WORKERS (read with the config) and an invalid WEFT_STACK_GUARDS
// (read when the workers are made) used to take a number each, leaving a gap
// of two: the first file of a process whose first runtime threw was never
// written.
TEST(TraceEnvTest, RuntimesThatFailToStartTakeNoNumber) {
  const std::filesystem::path dir = fresh_directory("failed");
  const std::string path = (dir / "trace.json").string();
  {
    weft_test::scoped_env trace("WEFT_TRACE", path.c_str());
    {
      weft::runtime before{weft::config{.workers = 1}};
      before.run(workload);
    }
    {
      weft_test::scoped_env workers("WEFT_NUM_WORKERS", "zero");
      EXPECT_THROW(weft::runtime{}, std::invalid_argument);
    }
    {
      weft_test::scoped_env guards("WEFT_STACK_GUARDS", "bogus");
      EXPECT_THROW(weft::runtime{weft::config{.workers = 1}}, std::invalid_argument);
    }
    weft::runtime after{weft::config{.workers = 1}};
    after.run(workload);
  }
  // "trace.json" is number 1, "trace-<n>.json" number n.
  std::vector<std::uint64_t> numbers;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name == "trace.json") {
      numbers.push_back(1);
    } else {
      ASSERT_TRUE(name.rfind("trace-", 0) == 0 && name.ends_with(".json")) << name;
      numbers.push_back(std::stoull(name.substr(6, name.size() - 11)));
    }
    check_trace(read_json(entry.path().string()), 1);
  }
  std::sort(numbers.begin(), numbers.end());
  ASSERT_EQ(numbers.size(), 2u);
  EXPECT_EQ(numbers[1], numbers[0] + 1) << "the runtimes that threw took numbers";
  std::filesystem::remove_all(dir);
}

TEST(TraceEnvTest, EmptyWeftTraceIsAClearError) {
  weft_test::scoped_env trace("WEFT_TRACE", "");
  try {
    weft::runtime rt{weft::config{.workers = 1}};
    FAIL() << "an empty WEFT_TRACE was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("WEFT_TRACE"), std::string::npos) << e.what();
  }
}

// A path that names a directory (or holds a NUL byte) is an error where it
// is given. Before, the first runtime failed to write "dir/" at its end (a
// line on stderr) and the second wrote "dir/-2", a file named "-2" inside
// it; a NUL byte cut write_trace's path short without a word. An existing
// directory named without a slash ("dir") was accepted, and the trace lost
// at the end (write_trace threw std::system_error).
TEST(TraceEnvTest, ADirectoryOrANulByteIsAClearError) {
  const std::string dir = temp_path("dir-as-trace");
  std::filesystem::create_directories(dir);
  using weft_test::expect_invalid_argument;
  for (const std::string& bad : {dir + "/", dir + "/.", dir + "/..", std::string(".."), dir}) {
    SCOPED_TRACE(bad);
    {
      weft_test::scoped_env trace("WEFT_TRACE", bad.c_str());
      expect_invalid_argument([] { weft::runtime rt{weft::config{.workers = 1}}; }, "WEFT_TRACE");
    }
    {
      weft_test::scoped_env workspan("WEFT_WORKSPAN", bad.c_str());
      expect_invalid_argument([] { weft::runtime rt{weft::config{.workers = 1}}; }, "WEFT_WORKSPAN");
    }
    expect_invalid_argument([&] { weft::runtime rt{weft::config{.workers = 1, .trace_file = bad}}; },
                            "weft::config::trace_file");
  }
  const std::string with_nul = dir + std::string("/a\0b.json", 9);
  expect_invalid_argument([&] { weft::runtime rt{weft::config{.workers = 1, .trace_file = with_nul}}; },
                          "weft::config::trace_file");
  weft::runtime rt{weft::config{.workers = 1, .trace_file = dir + "/ok.json"}};
  rt.run([] { fib(10); });
  for (const std::string& bad : {dir + "/", dir + "/.", dir, with_nul, std::string()}) {
    SCOPED_TRACE(bad);
    expect_invalid_argument([&] { rt.write_trace(bad); }, "write_trace");
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/a")) << "the path was cut at its NUL byte";
  rt.write_trace(dir + "/written.json");
  check_trace(read_json(dir + "/written.json"), 1);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()), 1)
      << "a file was written inside the directory";
}

TEST(TraceEnvTest, UnwritablePathIsReportedByWriteTrace) {
  weft::config cfg;
  cfg.workers = 1;
  cfg.trace_file = "/nonexistent-dir/x.json";
  weft::runtime rt(cfg);
  rt.run([] { fib(10); });
  EXPECT_THROW(rt.write_trace("/nonexistent-dir/y.json"), std::system_error);
}

// A write that fails says why (here: no space left on the device).
TEST(TraceEnvTest, FullDeviceIsReportedWithItsReason) {
  if (std::FILE* f = std::fopen("/dev/full", "w")) {
    std::fclose(f);
  } else {
    GTEST_SKIP() << "no /dev/full here";
  }
  const std::string path = temp_path("full-device");
  {
    weft::config cfg;
    cfg.workers = 1;
    cfg.trace_file = path;
    weft::runtime rt(cfg);
    rt.run([] { fib(10); });
    try {
      rt.write_trace("/dev/full");
      ADD_FAILURE() << "a trace written to /dev/full did not fail";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code().value(), ENOSPC) << e.what();
    }
  }
  std::remove(path.c_str());
}

}  // namespace
