// SPDX-License-Identifier: MIT
// Files the runtime writes for the user (the trace, the WEFT_WORKSPAN report).
#pragma once

#include <cerrno>
#include <cstdio>

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

}  // namespace weft::rt
