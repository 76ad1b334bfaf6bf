// SPDX-License-Identifier: MIT
// Files the runtime writes for the user (the trace, the WEFT_WORKSPAN report).
// Owns: the file it writes, while it is written. Used by trace and workspan.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <string>

namespace weft::rt {

// Flushes and closes f, a file written in full; returns 0 when everything
// reached it, else the reason of the first failure: the flush of what is
// buffered (where a full device fails), else the close; EIO when only the
// stream's error flag says that an earlier write failed.
inline int finish_file(std::FILE* f) noexcept {
  errno = 0;
  int error = 0;
  if (std::fflush(f) != 0) {
    error = errno != 0 ? errno : EIO;
  } else if (std::ferror(f) != 0) {
    error = EIO;
  }
  errno = 0;
  if (std::fclose(f) != 0 && error == 0) error = errno != 0 ? errno : EIO;
  return error;
}

// A file that replaces the one at its path whole. Where the path names a
// regular file or nothing, the text goes to a new file beside it
// (PATH.tmp-PID-N) that rename() puts in its place once complete: a process
// that ends while it writes (std::exit on another thread while a call rewrites
// the report) leaves the earlier file or none, never a part of one. Anything
// else (a device, a pipe, a symbolic link), or a directory where no file can
// be made beside it, is written in place as before.
class replacing_file {
 public:
  // Opens it; file() is null, with errno set, when it cannot be written.
  // `path` must outlive the object.
  explicit replacing_file(const std::string& path) noexcept : m_path(path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 ? errno == ENOENT : S_ISREG(st.st_mode)) {
      static std::atomic<unsigned> next{0};
      try {
        m_temp = path + ".tmp-" + std::to_string(::getpid()) + "-" +
                 std::to_string(next.fetch_add(1, std::memory_order_relaxed));
        const int fd = ::open(m_temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
          m_file = ::fdopen(fd, "w");
          if (m_file != nullptr) return;
          ::close(fd);
          ::unlink(m_temp.c_str());
        }
      } catch (...) {
        // no memory for the name: in place
      }
      m_temp.clear();
    }
    m_file = std::fopen(path.c_str(), "w");
  }
  replacing_file(const replacing_file&) = delete;
  replacing_file& operator=(const replacing_file&) = delete;
  // Not finished (an exception on the way): closed, and the earlier file
  // left where a new one was being made.
  ~replacing_file() {
    if (m_file == nullptr) return;
    std::fclose(m_file);
    if (!m_temp.empty()) ::unlink(m_temp.c_str());
  }

  std::FILE* file() const noexcept { return m_file; }

  // Completes the file (finish_file(), then the rename); returns 0, or the
  // reason of the first failure (the new file is removed then).
  int finish() noexcept {
    int error = finish_file(m_file);
    m_file = nullptr;
    if (m_temp.empty()) return error;
    if (error == 0 && ::rename(m_temp.c_str(), m_path.c_str()) != 0) error = errno != 0 ? errno : EIO;
    if (error != 0) ::unlink(m_temp.c_str());
    return error;
  }

 private:
  const std::string& m_path;
  std::string m_temp;  // empty: written in place
  std::FILE* m_file = nullptr;
};

}  // namespace weft::rt
