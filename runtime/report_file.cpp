// SPDX-License-Identifier: MIT
#include "report_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>
#include <stdexcept>

namespace weft::rt {

namespace {

// PATH.tmp-PID-N, with an N of its own in the process.
std::string temp_name(const std::string& path) {
  static std::atomic<unsigned> next{0};
  return path + ".tmp-" + std::to_string(::getpid()) + "-" +
         std::to_string(next.fetch_add(1, std::memory_order_relaxed));
}

// Whether a new file of that name can be made as far as its length goes (a
// file name longer than NAME_MAX fails with ENAMETOOLONG).
bool name_fits(const std::string& name) noexcept {
  const std::size_t slash = name.find_last_of('/');
  const std::size_t last = slash == std::string::npos ? name.size() : name.size() - slash - 1;
  return last <= NAME_MAX && name.size() < PATH_MAX;
}

// The directory that holds path ("." for a bare name).
std::string directory_of(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

replacing_file::replacing_file(const std::string& path) noexcept
    : m_path(path), m_buffer(new (std::nothrow) char[k_buffer_size]) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 ? errno == ENOENT : S_ISREG(st.st_mode)) {
    try {
      // An unnamed file in the path's directory, given a name by linkat()
      // through /proc only once complete; else a named one. In place where
      // the path leaves no room for the name's suffix.
      if (!name_fits(temp_name(path))) throw std::length_error("name");
      if (::access("/proc/self/fd", X_OK) == 0) {
        m_fd = ::open(directory_of(path).c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
        if (m_fd >= 0) {
          m_unnamed = true;
          return;
        }
      }
      m_temp = temp_name(path);
      m_fd = ::open(m_temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (m_fd >= 0) return;
    } catch (...) {
      // no memory for the names, or no room: in place
    }
    m_temp.clear();
  }
  m_fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
}

replacing_file::~replacing_file() {
  if (m_fd < 0) return;
  ::close(m_fd);  // an unnamed file goes with it
  if (!m_temp.empty()) ::unlink(m_temp.c_str());
}

int replacing_file::link_unnamed() noexcept {
  char proc[48];
  std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", m_fd);
  for (int attempt = 0; attempt < 64; ++attempt) {
    try {
      m_temp = temp_name(m_path);
    } catch (...) {
      return ENOMEM;
    }
    if (::linkat(AT_FDCWD, proc, AT_FDCWD, m_temp.c_str(), AT_SYMLINK_FOLLOW) == 0) return 0;
    const int error = errno != 0 ? errno : EIO;
    m_temp.clear();
    if (error != EEXIST) return error;  // EEXIST: a file of an earlier process with this pid
  }
  return EEXIST;
}

void replacing_file::write_out(const char* data, std::size_t size) noexcept {
  while (size > 0 && m_error == 0) {
    const ssize_t n = ::write(m_fd, data, size);
    if (n < 0) {
      if (errno != EINTR) m_error = errno != 0 ? errno : EIO;
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
  const int length = std::vsnprintf(to, room, format, args);
  if (length < 0) {
    m_error = EINVAL;
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
  if (m_fd < 0) return EBADF;
  flush();
  int error = m_error;
  // An unnamed file is named and renamed over the path at once, before its
  // close: a process that ends between the two leaves the named file.
  if (m_unnamed && error == 0 && (error = link_unnamed()) == 0) error = put_in_place();
  const int fd = m_fd;
  m_fd = -1;
  if (::close(fd) != 0 && error == 0 && errno != EINTR) error = errno != 0 ? errno : EIO;
  if (!m_unnamed && !m_temp.empty()) {
    if (error == 0) {
      error = put_in_place();
    } else {
      ::unlink(m_temp.c_str());
    }
  }
  return error;
}

int replacing_file::put_in_place() noexcept {
  if (::rename(m_temp.c_str(), m_path.c_str()) == 0) return 0;
  const int error = errno != 0 ? errno : EIO;
  ::unlink(m_temp.c_str());
  return error;
}

}  // namespace weft::rt
