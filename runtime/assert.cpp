// SPDX-License-Identifier: MIT
#include "assert.hpp"

#include <unistd.h>

#include <cstddef>

#include "scheduler.hpp"

namespace weft::rt {

void assertion_failed(const char* condition, const char* what, const char* file, int line) noexcept {
  // Digits of line, without formatting functions (async-signal-safe).
  char digits[16];
  int k = 0;
  unsigned u = line > 0 ? static_cast<unsigned>(line) : 0;
  do {
    digits[k++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0 && k < 15);
  char number[16];
  for (int i = 0; i < k; ++i) number[i] = digits[k - 1 - i];
  number[k] = '\0';
  auto put = [](const char* s) {
    std::size_t n = 0;
    while (s[n] != '\0') ++n;
    ssize_t ignored = write(STDERR_FILENO, s, n);
    (void)ignored;
  };
  put("weft: assertion failed: ");
  put(what);
  put(" [");
  put(condition);
  put("] at ");
  put(file);
  put(":");
  put(number);
  fatal("");  // the line's end, then abort()
}

}  // namespace weft::rt
