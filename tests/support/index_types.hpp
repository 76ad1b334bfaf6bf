// SPDX-License-Identifier: MIT
// Every integral type weft's loops accept as an index, for tests that must
// hold for all of them.
//
//   weft_test::for_each_index_type([&]<class I>(const char* name) {
//     SCOPED_TRACE(name);
//     ...
//   });
//
// The fixed-width aliases (std::int8_t ... std::uint64_t) name some of these
// types; the list holds each distinct type once, so also char, wchar_t and the
// character types, and long and long long, which are distinct even when they
// have the same width. bool is left out: it has its own tests.
#pragma once

#include <concepts>
#include <cstdint>

namespace weft_test {

template <class F>
void for_each_index_type(F&& f) {
  f.template operator()<signed char>("signed char");
  f.template operator()<unsigned char>("unsigned char");
  f.template operator()<char>("char");
  f.template operator()<char8_t>("char8_t");
  f.template operator()<short>("short");
  f.template operator()<unsigned short>("unsigned short");
  f.template operator()<char16_t>("char16_t");
  f.template operator()<int>("int");
  f.template operator()<unsigned>("unsigned");
  f.template operator()<wchar_t>("wchar_t");
  f.template operator()<char32_t>("char32_t");
  f.template operator()<long>("long");
  f.template operator()<unsigned long>("unsigned long");
  f.template operator()<long long>("long long");
  f.template operator()<unsigned long long>("unsigned long long");
}

// The fixed-width types by their usual names.
template <class F>
void for_each_fixed_width_type(F&& f) {
  f.template operator()<std::int8_t>("int8_t");
  f.template operator()<std::uint8_t>("uint8_t");
  f.template operator()<std::int16_t>("int16_t");
  f.template operator()<std::uint16_t>("uint16_t");
  f.template operator()<std::int32_t>("int32_t");
  f.template operator()<std::uint32_t>("uint32_t");
  f.template operator()<std::int64_t>("int64_t");
  f.template operator()<std::uint64_t>("uint64_t");
}

}  // namespace weft_test
