// SPDX-License-Identifier: MIT
// Checks that an error message names a parameter: the name occurs in it as a
// whole word ("n" in "weft::parallelize: n must not be negative", not in
// "function").
#pragma once

#include <gtest/gtest.h>

#include <cctype>
#include <stdexcept>
#include <string>
#include <string_view>

#include "call_site.hpp"

namespace weft_test {

inline bool is_word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; }

// True when `word` occurs in `text` with no identifier character on either side.
inline bool names_word(std::string_view text, std::string_view word) {
  for (std::size_t at = text.find(word); at != std::string_view::npos; at = text.find(word, at + 1)) {
    const bool left = at == 0 || !is_word_char(text[at - 1]);
    const std::size_t end = at + word.size();
    const bool right = end == text.size() || !is_word_char(text[end]);
    if (left && right) return true;
  }
  return false;
}

inline ::testing::AssertionResult message_names(const char* what, std::string_view parameter) {
  if (names_word(what, parameter)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "the message \"" << what << "\" does not name \"" << parameter << "\"";
}

// Expects f() to throw std::invalid_argument whose what() names `parameter`
// as a whole word. Failures point at the caller's line.
template <class F>
void expect_invalid_argument(F&& f, std::string_view parameter, call_site where = {}) {
  ::testing::ScopedTrace trace(where.m_file, where.m_line,
                               "expected std::invalid_argument naming " + std::string(parameter));
  try {
    f();
    ADD_FAILURE() << "no exception was thrown";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(message_names(e.what(), parameter));
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw another exception type: " << e.what();
  } catch (...) {
    ADD_FAILURE() << "threw something that is not a std::exception";
  }
}

}  // namespace weft_test
