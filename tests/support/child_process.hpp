// SPDX-License-Identifier: MIT
// Runs a piece of a test in a child process: for code that is meant to kill
// its process (death tests), and for code that needs a process of its own
// (environment variables read once, the default runtime, process exit).
//
//   auto r = weft_test::run_in_child([] {
//     weft::runtime rt{weft::config{.workers = 1, .stack_size = 64 * 1024}};
//     rt.run([] { overflow(); });
//     return 0;
//   });
//   EXPECT_TRUE(r.killed_by(SIGABRT)) << r.describe();
//
// The child is a fork() of the calling process that runs only `body`, then
// _exit()s with its return value: no atexit handlers, no static destructors,
// no GoogleTest reporting (assertions inside the body are not seen by the
// parent; report through the exit code and stderr instead). An exception that
// escapes the body is printed to stderr and exits with code 99. The child's
// stderr is captured; its stdout goes to /dev/null. The child runs in a process
// group of its own, and the whole group is killed when it outlives the
// timeout: a hang is reported as timed_out, never waited for.
//
// fork() copies only the calling thread: the body must not use a runtime
// created before the fork (its workers do not exist in the child), the
// default runtime included when the parent already used it.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "sanitizers.hpp"
#include "watchdog.hpp"

namespace weft_test {

struct child_result {
  bool timed_out = false;  // killed by the runner after the timeout
  bool exited = false;     // returned or called exit
  int exit_code = -1;      // when exited
  bool signaled = false;   // killed by a signal (also after a timeout: SIGKILL)
  int signal = 0;          // when signaled
  std::string err;         // everything the child wrote to stderr

  bool exited_with(int code) const { return !timed_out && exited && exit_code == code; }
  bool killed_by(int sig) const { return !timed_out && signaled && signal == sig; }

  // The lines of err that contain `text`.
  std::vector<std::string> lines_with(std::string_view text) const {
    std::vector<std::string> out;
    std::istringstream in(err);
    std::string line;
    while (std::getline(in, line)) {
      if (line.find(text) != std::string::npos) out.push_back(line);
    }
    return out;
  }

  // How the child ended and what it printed, for failure messages.
  std::string describe() const {
    std::ostringstream os;
    if (timed_out) {
      os << "child timed out (killed)";
    } else if (exited) {
      os << "child exited with code " << exit_code;
    } else if (signaled) {
      os << "child killed by signal " << signal << " (" << ::strsignal(signal) << ")";
    } else {
      os << "child ended in an unknown way";
    }
    os << "; its stderr:\n----\n" << err << "----";
    return os.str();
  }
};

namespace detail {

[[noreturn]] inline void child_main(const std::function<int()>& body, int err_fd) {
  ::setpgid(0, 0);
  ::dup2(err_fd, STDERR_FILENO);
  ::close(err_fd);
  if (int null_fd = ::open("/dev/null", O_WRONLY); null_fd >= 0) {
    ::dup2(null_fd, STDOUT_FILENO);
    ::close(null_fd);
  }
  int code = 0;
  try {
    code = body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "child: uncaught exception: %s\n", e.what());
    code = 99;
  } catch (...) {
    std::fprintf(stderr, "child: uncaught exception of unknown type\n");
    code = 99;
  }
  std::fflush(stderr);
  ::_exit(code);
}

}  // namespace detail

// Runs body() in a child process and waits at most `timeout` for it.
inline child_result run_in_child(const std::function<int()>& body,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(20 * (k_sanitized ? 3 : 1))) {
  child_result r;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    r.err = "run_in_child: pipe failed";
    return r;
  }
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    r.err = "run_in_child: fork failed";
    return r;
  }
  if (pid == 0) {
    ::close(fds[0]);
    detail::child_main(body, fds[1]);
  }
  ::setpgid(pid, pid);  // also here: no race with the child's own call
  ::close(fds[1]);

  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + timeout;
  bool eof = false;
  bool reaped = false;
  int status = 0;
  auto reaped_at = clock::time_point{};
  for (;;) {
    const auto now = clock::now();
    // Once reaped, wait for the end of its output only briefly: a grandchild
    // may hold the pipe open.
    if (reaped && (eof || now >= deadline || now - reaped_at > std::chrono::milliseconds(500))) break;
    if (now >= deadline) {
      r.timed_out = true;
      break;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
    pollfd p{fds[0], POLLIN, 0};
    if (!eof && ::poll(&p, 1, static_cast<int>(left < 20 ? left : 20)) > 0) {
      char buf[4096];
      const ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n > 0) {
        r.err.append(buf, static_cast<std::size_t>(n));
      } else if (n == 0) {
        eof = true;
      }
    } else if (eof) {
      ::usleep(1000);
    }
    if (!reaped && ::waitpid(pid, &status, WNOHANG) == pid) {
      reaped = true;
      reaped_at = clock::now();
    }
  }
  if (r.timed_out) {
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    if (!reaped) ::waitpid(pid, &status, 0);
    reaped = true;
  }
  ::close(fds[0]);
  if (WIFEXITED(status)) {
    r.exited = true;
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.signaled = true;
    r.signal = WTERMSIG(status);
  }
  return r;
}

// Runs the program at `path` with `args` in a child process (run_in_child,
// then execv): its exit status and stderr, as for a body. `before_exec` runs
// in the child first (environment changes for that program alone).
inline child_result run_program_in_child(
    const std::string& path, const std::vector<std::string>& args,
    std::chrono::milliseconds timeout = std::chrono::seconds(20 * (k_sanitized ? 3 : 1)),
    const std::function<void()>& before_exec = {}) {
  return run_in_child(
      [&path, &args, &before_exec] {
        if (before_exec) before_exec();
        std::vector<std::string> words{path};
        words.insert(words.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (std::string& w : words) argv.push_back(w.data());
        argv.push_back(nullptr);
        ::execv(path.c_str(), argv.data());
        std::fprintf(stderr, "execv %s failed: %s\n", path.c_str(), std::strerror(errno));
        return 127;
      },
      timeout);
}

}  // namespace weft_test

// Inside a child body: when cond is false, prints it to stderr with its line
// and returns `code` from the body (the child's exit code). A macro because
// it returns from the caller.
#define WEFT_CHILD_CHECK(cond, code)                                                        \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "child check failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      return code;                                                                          \
    }                                                                                       \
  } while (false)
