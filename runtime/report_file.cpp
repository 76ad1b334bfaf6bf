// SPDX-License-Identifier: MIT
#include "report_file.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>

namespace weft::rt {

namespace {

// The longest ".tmp-PID-N" (both numbers of up to 10 digits).
constexpr std::size_t k_longest_suffix = 5 + 10 + 1 + 10;

// PATH.tmp-PID-N, with an N of its own in the process.
std::string temp_name(const std::string& path) {
  static std::atomic<unsigned> next{0};
  return path + ".tmp-" + std::to_string(::getpid()) + "-" +
         std::to_string(next.fetch_add(1, std::memory_order_relaxed));
}

// Whether every PATH.tmp-PID-N fits the limits on names (ENAMETOOLONG).
bool suffix_fits(const std::string& path) noexcept {
  const std::size_t slash = path.find_last_of('/');
  const std::size_t last = slash == std::string::npos ? path.size() : path.size() - slash - 1;
  return last + k_longest_suffix <= NAME_MAX && path.size() + k_longest_suffix < PATH_MAX;
}

// errno after a call that failed, EIO where it says nothing.
int last_error() noexcept { return errno != 0 ? errno : EIO; }

// The directory that holds path ("." for a bare name).
std::string directory_of(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// SIGPIPE held back on the calling thread while it lives: a write to a pipe
// or socket whose reader has left fails with EPIPE (an error the writer
// reports) instead of ending the process, whatever SIGPIPE's disposition. A
// SIGPIPE that such a write raises is taken back before the old mask
// returns; one that was already pending for the thread is left pending.
class sigpipe_held {
 public:
  sigpipe_held() noexcept {
    ::sigemptyset(&m_pipe);
    ::sigaddset(&m_pipe, SIGPIPE);
    m_held = ::pthread_sigmask(SIG_BLOCK, &m_pipe, &m_old) == 0;
    sigset_t pending;
    m_was_pending = m_held && ::sigpending(&pending) == 0 && ::sigismember(&pending, SIGPIPE) == 1;
  }
  sigpipe_held(const sigpipe_held&) = delete;
  sigpipe_held& operator=(const sigpipe_held&) = delete;
  // Called after a write failed with EPIPE: its SIGPIPE (directed at this
  // thread, pending while blocked) taken back.
  void take_raised() noexcept {
    if (!m_held || m_was_pending) return;
    const timespec now{};
    const int saved = errno;
    while (::sigtimedwait(&m_pipe, nullptr, &now) < 0 && errno == EINTR) {
    }
    errno = saved;
  }
  ~sigpipe_held() {
    if (m_held) ::pthread_sigmask(SIG_SETMASK, &m_old, nullptr);
  }

 private:
  sigset_t m_pipe{};
  sigset_t m_old{};
  bool m_held = false;
  bool m_was_pending = false;
};

}  // namespace

template <class Make>
int replacing_file::make_named(Make make) noexcept {
  for (int attempt = 0; attempt < 64; ++attempt) {
    try {
      m_temp = temp_name(m_path);
    } catch (...) {
      m_temp.clear();
      return ENOMEM;
    }
    if (make(m_temp) == 0) return 0;
    const int error = last_error();
    m_temp.clear();
    if (error != EEXIST) return error;  // EEXIST: left by an earlier process of this pid
  }
  return EEXIST;
}

bool written_in_place(const std::string& path) noexcept {
  struct stat st {};
  if ((path.rfind("/dev/", 0) == 0 || path.rfind("/proc/", 0) == 0) && ::lstat(path.c_str(), &st) == 0 &&
      S_ISLNK(st.st_mode)) {
    return true;
  }
  return ::stat(path.c_str(), &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode));
}

replacing_file::replacing_file(const std::string& path, new_file how, in_place keep) noexcept
    : m_path(path), m_buffer(new (std::nothrow) char[k_buffer_size]) {
  struct stat st {};
  if ((::lstat(path.c_str(), &st) != 0 ? errno == ENOENT : S_ISREG(st.st_mode)) && suffix_fits(path)) {
    // An unnamed file in the path's directory, named by linkat() through
    // /proc only once complete; else a named one. Readable: copied in place
    // when it cannot be put there whole.
    if (how == new_file::unnamed_first && ::access("/proc/self/fd", X_OK) == 0) {
      try {
        m_fd = ::open(directory_of(path).c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0666);
      } catch (...) {
        m_fd = -1;  // no memory for the name
      }
      if (m_fd >= 0) {
        m_unnamed = true;
        return;
      }
    }
    const int error = make_named([this](const std::string& name) {
      m_fd = ::open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      return m_fd >= 0 ? 0 : -1;
    });
    if (error == 0) return;
  }
  // In place (a device, a pipe, a link under /dev or /proc: appended when
  // asked, see written_in_place; or a file that cannot be replaced:
  // truncated). A pipe that nobody reads fails at once (ENXIO) instead of
  // waiting for a reader for ever, in a destructor or at the process's exit;
  // the writes then wait for the reader as usual.
  const int after = keep == in_place::append && written_in_place(path) ? O_APPEND : O_TRUNC;
  m_fd = ::open(path.c_str(), O_WRONLY | O_CREAT | after | O_CLOEXEC | O_NONBLOCK, 0666);
  if (m_fd < 0) {
    m_error = last_error();
    return;
  }
  if (const int flags = ::fcntl(m_fd, F_GETFL); flags < 0 || ::fcntl(m_fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    m_error = last_error();
    ::close(m_fd);
    m_fd = -1;
  }
}

replacing_file::~replacing_file() {
  if (m_fd < 0) return;
  ::close(m_fd);  // an unnamed file goes with it
  if (!m_temp.empty()) ::unlink(m_temp.c_str());
}

int replacing_file::put_in_place() noexcept {
  if (m_unnamed) {
    char proc[48];
    std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", m_fd);
    make_named([&proc](const std::string& name) {
      return ::linkat(AT_FDCWD, proc, AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW);
    });  // not named (m_temp empty): copied in place below
  }
  if (!m_temp.empty() && ::rename(m_temp.c_str(), m_path.c_str()) == 0) {
    m_temp.clear();
    return 0;
  }
  return copy_in_place();
}

int replacing_file::copy_in_place() noexcept {
  struct stat st {};
  if (::fstat(m_fd, &st) != 0) return last_error();
  const int out = ::open(m_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (out < 0) return last_error();
  int error = 0;
  off_t offset = 0;
  while (offset < st.st_size) {
    const ssize_t n = ::sendfile(out, m_fd, &offset, static_cast<std::size_t>(st.st_size - offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = n < 0 ? last_error() : EIO;  // 0: the file ended early
      break;
    }
  }
  if (::close(out) != 0 && error == 0 && errno != EINTR) error = last_error();
  return error;
}

void replacing_file::write_out(const char* data, std::size_t size) noexcept {
  if (size == 0) return;
  sigpipe_held held;  // a pipe's reader that left: EPIPE, not the process's end
  while (size > 0 && m_error == 0) {
    const ssize_t n = ::write(m_fd, data, size);
    if (n < 0) {
      if (errno == EPIPE) held.take_raised();
      if (errno != EINTR) m_error = last_error();
      continue;
    }
    if (n == 0) {
      m_error = EIO;
      break;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

void replacing_file::flush() noexcept {
  write_out(m_buffer.get(), m_used);
  m_used = 0;
}

void replacing_file::write(std::string_view text) noexcept {
  if (m_fd < 0 || m_error != 0) return;
  if (!m_buffer || text.size() > k_buffer_size) {
    flush();
    write_out(text.data(), text.size());
    return;
  }
  if (text.size() > k_buffer_size - m_used) flush();
  std::memcpy(m_buffer.get() + m_used, text.data(), text.size());
  m_used += text.size();
}

void replacing_file::print(const char* format, ...) noexcept {
  std::va_list args;
  va_start(args, format);
  vprint(format, args);
  va_end(args);
}

void replacing_file::vprint(const char* format, std::va_list args) noexcept {
  if (m_fd < 0 || m_error != 0) return;
  std::va_list again;
  va_copy(again, args);
  char small[512];
  // Into the buffer's free end when it fits there, else into the buffer once
  // flushed; without a buffer into `small`; else into memory of its own.
  char* to = m_buffer ? m_buffer.get() + m_used : small;
  std::size_t room = m_buffer ? k_buffer_size - m_used : sizeof small;
  errno = 0;
  const int length = std::vsnprintf(to, room, format, args);
  if (length < 0) {
    m_error = errno != 0 ? errno : EINVAL;  // EILSEQ: a wide character the locale cannot write
  } else if (static_cast<std::size_t>(length) < room) {
    if (m_buffer) {
      m_used += static_cast<std::size_t>(length);
    } else {
      write_out(small, static_cast<std::size_t>(length));
    }
  } else if (m_buffer && static_cast<std::size_t>(length) < k_buffer_size) {
    flush();  // fits once what is buffered is out
    std::vsnprintf(m_buffer.get(), k_buffer_size, format, again);
    m_used = static_cast<std::size_t>(length);
  } else {
    const std::unique_ptr<char[]> text(new (std::nothrow) char[static_cast<std::size_t>(length) + 1]);
    if (text == nullptr) {
      m_error = ENOMEM;
    } else {
      std::vsnprintf(text.get(), static_cast<std::size_t>(length) + 1, format, again);
      write(std::string_view(text.get(), static_cast<std::size_t>(length)));
    }
  }
  va_end(again);
}

int replacing_file::finish() noexcept {
  if (m_fd < 0) return m_error != 0 ? m_error : EBADF;  // EBADF: finished already
  flush();
  int error = m_error;
  // Put in place before the close: an unnamed file needs its descriptor to
  // be named, and is renamed right after, so that a process that ends
  // meanwhile leaves the least behind.
  if (error == 0 && (m_unnamed || !m_temp.empty())) error = put_in_place();
  const int fd = m_fd;
  m_fd = -1;
  if (::close(fd) != 0 && error == 0 && errno != EINTR) error = last_error();
  if (!m_temp.empty()) ::unlink(m_temp.c_str());  // not renamed
  m_temp.clear();
  return error;
}

}  // namespace weft::rt
