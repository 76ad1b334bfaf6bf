// SPDX-License-Identifier: MIT
// The file and line of a call, taken as a default argument, for helpers
// whose failures should point at their caller:
//
//   void check(int x, weft_test::call_site where = {});
//
// std::source_location does the same, but clang before 15 lacks what
// libstdc++'s needs (__builtin_source_location); __builtin_FILE and
// __builtin_LINE work in g++ and clang alike.
#pragma once

namespace weft_test {

struct call_site {
  const char* m_file = __builtin_FILE();
  int m_line = __builtin_LINE();
};

}  // namespace weft_test
