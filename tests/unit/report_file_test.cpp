// SPDX-License-Identifier: MIT
// Unit tests of runtime/report_file.cpp: replacing_file puts its text in place
// whole (a new file beside the path, renamed over it), keeps the earlier file
// when it is not finished or its process ends (and leaves no other file where
// it can make an unnamed one), skips names left behind, writes devices and
// bind-mounted files in place, gives the reason of a
// failed write, and holds its text outside every stdio stream, so that
// std::exit's flush of all streams on another thread cannot write it twice.
#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cwchar>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "report_file.hpp"
#include "watchdog.hpp"

namespace {

using weft::rt::replacing_file;

class ReplacingFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char name[] = "/tmp/weft-report-file-XXXXXX";
    ASSERT_NE(::mkdtemp(name), nullptr) << std::strerror(errno);
    m_dir = name;
  }
  void TearDown() override {
    for (const std::string& f : files()) ::unlink((m_dir + "/" + f).c_str());
    ::rmdir(m_dir.c_str());
  }

  std::string path(const std::string& name) const { return m_dir + "/" + name; }

  // The directory's entries, sorted.
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(m_dir.c_str())) {
      while (const dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name != "." && name != "..") out.push_back(name);
      }
      ::closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  static std::string read(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

  static void write_file(const std::string& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

  std::string m_dir;
};

TEST_F(ReplacingFileTest, ReplacesTheFileWholeOnFinish) {
  const std::string p = path("report.json");
  write_file(p, "earlier");
  {
    replacing_file f(p);
    ASSERT_TRUE(f.is_open());
    f.write("{\"a\": ");
    f.print("%d, \"b\": \"%s\"}\n", 42, "x");
    EXPECT_EQ(read(p), "earlier");  // not yet
    EXPECT_EQ(f.finish(), 0);
  }
  EXPECT_EQ(read(p), "{\"a\": 42, \"b\": \"x\"}\n");
  EXPECT_EQ(files(), std::vector<std::string>{"report.json"}) << "the new file was left beside it";
}

TEST_F(ReplacingFileTest, TextIsInNoStdioStream) {
  // std::exit flushes every stdio stream without its lock (glibc's
  // _IO_cleanup): a report written through one on another thread had its
  // buffer written twice, then renamed into place. Nothing written here may
  // reach a file through fflush(nullptr).
  const std::string p = path("report.json");
  replacing_file f(p);
  ASSERT_TRUE(f.is_open());
  f.write("{\"sites\": [");
  f.print("%s", "1, 2, 3");
  ASSERT_EQ(std::fflush(nullptr), 0);
  for (const std::string& name : files()) {
    struct stat st {};
    ASSERT_EQ(::stat(path(name).c_str(), &st), 0);
    EXPECT_EQ(st.st_size, 0) << name << " holds text that a flush of all stdio streams wrote";
  }
  f.write("]}\n");
  ASSERT_EQ(f.finish(), 0);
  EXPECT_EQ(read(p), "{\"sites\": [1, 2, 3]}\n");
}

TEST_F(ReplacingFileTest, KeepsTheEarlierFileWhenNotFinished) {
  const std::string p = path("trace.json");
  write_file(p, "earlier");
  {
    replacing_file f(p);
    ASSERT_TRUE(f.is_open());
    f.write("half of a");
  }
  EXPECT_EQ(read(p), "earlier");
  EXPECT_EQ(files(), std::vector<std::string>{"trace.json"});
}

// Runs body() in a forked child that ends with _exit(body()), without its
// destructors; the child's exit status, or -1 when it did not exit.
template <class Body>
int exit_status_in_child(Body body) {
  const pid_t child = ::fork();
  if (child < 0) return -1;
  if (child == 0) ::_exit(body());
  int status = 0;
  if (::waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

// Whether the file system of dir makes unnamed files (O_TMPFILE).
bool makes_unnamed_files(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
  if (fd < 0) return false;
  ::close(fd);
  return ::access("/proc/self/fd", X_OK) == 0;
}

TEST_F(ReplacingFileTest, TheNewFileHasNoNameUntilFinished) {
  if (!makes_unnamed_files(m_dir)) GTEST_SKIP() << "no O_TMPFILE or no /proc here: the new file is named";
  const std::string p = path("report.json");
  write_file(p, "earlier");
  replacing_file f(p);
  ASSERT_TRUE(f.is_open());
  f.write(std::string(100000, 'x'));  // past the buffer: some of it written
  EXPECT_EQ(files(), std::vector<std::string>{"report.json"});
  ASSERT_EQ(f.finish(), 0);
  EXPECT_EQ(read(p), std::string(100000, 'x'));
  EXPECT_EQ(files(), std::vector<std::string>{"report.json"});
}

TEST_F(ReplacingFileTest, AProcessThatEndsWhileWritingLeavesOnlyTheEarlierFile) {
  // The end of a process while another thread rewrites the report: no
  // destructor runs. A named new file stayed behind (PATH.tmp-PID-N).
  if (!makes_unnamed_files(m_dir)) GTEST_SKIP() << "no O_TMPFILE or no /proc here: the new file is named";
  const std::string p = path("report.json");
  write_file(p, "earlier");
  ASSERT_EQ(exit_status_in_child([&p] {
              // Never destroyed: the process ends with the file half written.
              auto* f = new replacing_file(p);
              f->write(std::string(100000, 'x'));
              return f->is_open() ? 0 : 1;
            }),
            0);
  EXPECT_EQ(read(p), "earlier");
  EXPECT_EQ(files(), std::vector<std::string>{"report.json"});
}

TEST_F(ReplacingFileTest, ANameWithNoRoomForTheSuffixIsWrittenInPlace) {
  // 250 bytes: PATH.tmp-PID-N would be longer than a file name may be, so
  // the new file could never be named (the report was lost).
  const std::string p = path(std::string(250, 'n'));
  write_file(p, "earlier");
  replacing_file f(p);
  ASSERT_TRUE(f.is_open());
  f.write("new");
  EXPECT_EQ(f.finish(), 0);
  EXPECT_EQ(read(p), "new");
}

TEST_F(ReplacingFileTest, ANamedNewFileSkipsANameLeftBehind) {
  // A process that ended while it wrote (where the new file has its name
  // from the start) leaves PATH.tmp-PID-N; a later process of the same pid
  // (a container's) took the earlier file in place, truncated at once.
  const std::string first = path("first.json");
  std::string taken;
  {
    replacing_file f(first, replacing_file::new_file::named);
    ASSERT_TRUE(f.is_open());
    for (const std::string& name : files()) {
      if (name.rfind("first.json.tmp-", 0) == 0) taken = name;
    }
    ASSERT_EQ(f.finish(), 0);
  }
  ASSERT_FALSE(taken.empty()) << "no named new file was made";
  const unsigned n = static_cast<unsigned>(std::stoul(taken.substr(taken.rfind('-') + 1)));
  const std::string p = path("report.json");
  write_file(p, "earlier");
  write_file(p + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(n + 1), "left behind");
  replacing_file f(p, replacing_file::new_file::named);
  ASSERT_TRUE(f.is_open());
  f.write("new");
  EXPECT_EQ(read(p), "earlier") << "written in place";
  ASSERT_EQ(f.finish(), 0);
  EXPECT_EQ(read(p), "new");
}

TEST_F(ReplacingFileTest, AFormatThatFailsGivesItsReason) {
  // In the C locale a wide character outside ASCII cannot be written.
  const std::string p = path("report.json");
  write_file(p, "earlier");
  replacing_file f(p);
  ASSERT_TRUE(f.is_open());
  f.print("%lc", static_cast<wint_t>(0x20ac));
  EXPECT_EQ(f.finish(), EILSEQ);
  EXPECT_EQ(read(p), "earlier");
}

TEST_F(ReplacingFileTest, ABindMountedFileIsWrittenInPlace) {
  // A file mounted over another (a container's volume of one file) cannot be
  // renamed over: EBUSY, and the report was lost. In a child with a mount
  // namespace of its own; skipped where one cannot be made.
  const std::string source = path("source.json");
  const std::string p = path("report.json");
  write_file(source, "earlier");
  write_file(p, "");
  const int status = exit_status_in_child([&] {
    if (::unshare(CLONE_NEWNS) != 0 && ::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return 77;
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 77;
    if (::mount(source.c_str(), p.c_str(), nullptr, MS_BIND, nullptr) != 0) return 77;
    int failed = 0;
    for (const auto how : {replacing_file::new_file::unnamed_first, replacing_file::new_file::named}) {
      replacing_file f(p, how);
      const std::string text = how == replacing_file::new_file::named ? "named" : "unnamed";
      f.write(text);
      const int error = f.finish();
      if (error != 0) std::fprintf(stderr, "finish: %s\n", std::strerror(error));
      if (error != 0 || read(p) != text) failed = 1;
    }
    return failed;
  });
  if (status == 77) GTEST_SKIP() << "no mount namespace can be made here";
  EXPECT_EQ(status, 0) << "the bind-mounted file was not written";
  EXPECT_EQ(read(source), "named");
  EXPECT_EQ(files(), (std::vector<std::string>{"report.json", "source.json"}));
}

TEST_F(ReplacingFileTest, TextLargerThanTheBufferIsWrittenInOrder) {
  // Pieces and printed pieces across the buffer's size (64 KiB) and larger
  // than it.
  const std::string p = path("big.json");
  std::string expected;
  replacing_file f(p);
  ASSERT_TRUE(f.is_open());
  for (int i = 0; i < 5000; ++i) {
    const std::string piece(static_cast<std::size_t>(i % 97), static_cast<char>('a' + i % 26));
    f.write(piece);
    expected += piece;
    f.print("<%d:%s>", i, piece.c_str());
    expected += '<';
    expected += std::to_string(i);
    expected += ':';
    expected += piece;
    expected += '>';
  }
  const std::string huge(200000, 'h');
  f.print("[%s]", huge.c_str());
  expected += '[';
  expected += huge;
  expected += ']';
  f.write(huge);
  expected += huge;
  f.write("");
  ASSERT_EQ(f.finish(), 0);
  EXPECT_EQ(read(p), expected);
}

TEST_F(ReplacingFileTest, AFullDeviceGivesItsReason) {
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no writable /dev/full here";
  const std::string p = "/dev/full";
  replacing_file f(p);  // a device: written in place
  ASSERT_TRUE(f.is_open());
  f.write("text");
  EXPECT_EQ(f.finish(), ENOSPC);
}

TEST_F(ReplacingFileTest, ADirectoryThatIsNotThereGivesItsReason) {
  const std::string p = path("no-such-dir/report.json");
  errno = 0;
  replacing_file f(p);
  EXPECT_FALSE(f.is_open());
  EXPECT_EQ(errno, ENOENT);
  errno = 0;  // the writer keeps the reason: its callers need not read errno at once
  EXPECT_EQ(f.open_error(), ENOENT);
  f.write("nothing");             // ignored
  EXPECT_EQ(f.finish(), ENOENT);  // EBADF before: the reason was lost
}

TEST_F(ReplacingFileTest, ASymbolicLinkIsWrittenThrough) {
  const std::string target = path("target.json");
  const std::string link = path("link.json");
  write_file(target, "earlier");
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  replacing_file f(link);
  ASSERT_TRUE(f.is_open());
  f.write("new");
  ASSERT_EQ(f.finish(), 0);
  EXPECT_EQ(read(target), "new");
  struct stat st {};
  ASSERT_EQ(::lstat(link.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode)) << "the link was replaced by a file";
}

}  // namespace
