// SPDX-License-Identifier: MIT
// Files the runtime writes for the user (the trace, the WEFT_WORKSPAN report).
// Owns: the file it writes, while it is written. Used by trace and workspan.
#pragma once

#include <cstdarg>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace weft::rt {

// A path that every writer writes as it is, never a numbered name beside it
// (a second runtime's trace, a forked child's report): a device or a pipe,
// or a symbolic link under /dev or /proc (/dev/stdout, /dev/fd/N, which may
// lead to a regular file). Such a name would be a new file next to it, in
// /dev for a process run as root.
bool written_in_place(const std::string& path) noexcept;

// A file that replaces the one at its path whole. Where the path names a
// regular file or nothing, the text goes to a new file in the same directory
// that rename() puts in its place once complete: a process that ends while it
// writes (std::exit on another thread while a call rewrites the report)
// leaves the earlier file or none, never a part of one. The new file is
// unnamed (O_TMPFILE) until complete, then named PATH.tmp-PID-N and renamed
// at once, so such a process leaves nothing else unless it ends between those
// two calls; where the file system or a missing /proc rules an unnamed file
// out, it has that name from the start and stays behind. Where the new file
// cannot be named or renamed over the path (a bind-mounted file refuses with
// EBUSY), its text is copied over the path in place. Anything else (a device,
// a pipe, a symbolic link), a path with no room for the suffix, or a
// directory where no file can be made, is written in place: truncated, or
// appended to where written_in_place() holds and the writer asks (in_place).
// Opened in place, a pipe that nobody reads is an error (ENXIO), not a wait;
// one whose reader leaves fails the write (EPIPE) with SIGPIPE held back.
//
// Written with write(2) from a buffer of its own, never through a stdio
// stream: std::exit flushes every open stream without taking its lock
// (glibc's _IO_cleanup), so a stream written on another thread while the
// process exits had its buffer written twice into the new file, which was
// then renamed into place (a report with text after its end).
class replacing_file {
 public:
  // How the new file is made: unnamed where the file system allows, or
  // named from the start (what file systems without O_TMPFILE get; tests).
  enum class new_file { unnamed_first, named };
  // What a path written in place (written_in_place) gets: its earlier text
  // replaced (a report rewritten whole), or the new text after it (one
  // trace per runtime, each written once). Other paths are replaced.
  enum class in_place { replace, append };

  // Opens it; is_open() is false, and open_error() says why, when it cannot
  // be written. `path` must outlive the object.
  explicit replacing_file(const std::string& path, new_file how = new_file::unnamed_first,
                          in_place keep = in_place::replace) noexcept;
  replacing_file(std::string&&, new_file = new_file::unnamed_first, in_place = in_place::replace) = delete;
  replacing_file(const replacing_file&) = delete;
  replacing_file& operator=(const replacing_file&) = delete;
  // Not finished (an exception on the way): closed, and the earlier file
  // left where a new one was being made.
  ~replacing_file();

  bool is_open() const noexcept { return m_fd >= 0; }
  // Why it could not be opened (an errno, never 0); 0 when it is open.
  int open_error() const noexcept { return m_fd >= 0 ? 0 : m_error; }

  // Appends text; the first failure is kept for finish().
  void write(std::string_view text) noexcept;
  [[gnu::format(printf, 2, 3)]] void print(const char* format, ...) noexcept;
  [[gnu::format(printf, 2, 0)]] void vprint(const char* format, std::va_list args) noexcept;

  // Completes the file: what is buffered, the new file put in place
  // (named, renamed, else copied), then the close. Returns 0, or the reason
  // of the first failure: a write (where a full device fails) or the format
  // of a print, else the copy in place, else the close (the file is in place
  // then).
  int finish() noexcept;

 private:
  void flush() noexcept;
  void write_out(const char* data, std::size_t size) noexcept;
  // Makes a new PATH.tmp-PID-N with make(name) (0, or -1 with errno), the
  // next N while one is there; the name in m_temp. 0 or the reason.
  template <class Make>
  int make_named(Make make) noexcept;
  // The new file at the path; 0 or the reason.
  int put_in_place() noexcept;
  int copy_in_place() noexcept;

  static constexpr std::size_t k_buffer_size = std::size_t{64} << 10;

  const std::string& m_path;
  std::string m_temp;  // the new file's name; empty: in place, unnamed, or renamed
  bool m_unnamed = false;
  int m_fd = -1;
  int m_error = 0;                   // the first failure's errno (the open's, when it failed)
  std::unique_ptr<char[]> m_buffer;  // null (no memory): each piece written at once
  std::size_t m_used = 0;
};

}  // namespace weft::rt
