// SPDX-License-Identifier: MIT
// A small JSON reader for tests (objects, arrays, strings, numbers, literals).
// Throws std::runtime_error with the offset on malformed input.
#pragma once

#include <cctype>
#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace weft_test {

struct json {
  enum class kind { null, boolean, number, string, array, object };
  kind type = kind::null;
  bool boolean = false;
  double number = 0;
  std::string text;
  std::vector<json> items;
  std::map<std::string, json> fields;

  bool has(const std::string& key) const { return type == kind::object && fields.count(key) != 0; }
  const json& at(const std::string& key) const {
    auto it = fields.find(key);
    if (type != kind::object || it == fields.end()) throw std::runtime_error("json: no field " + key);
    return it->second;
  }
  const std::string& str() const {
    if (type != kind::string) throw std::runtime_error("json: not a string");
    return text;
  }
  double num() const {
    if (type != kind::number) throw std::runtime_error("json: not a number");
    return number;
  }

  static json parse(const std::string& s) {
    std::size_t i = 0;
    json v = value(s, i);
    skip(s, i);
    if (i != s.size()) fail(i, "trailing characters");
    return v;
  }

 private:
  [[noreturn]] static void fail(std::size_t at, const char* what) {
    throw std::runtime_error(std::string("json: ") + what + " at offset " + std::to_string(at));
  }
  static void skip(const std::string& s, std::size_t& i) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  }
  static void expect(const std::string& s, std::size_t& i, char c) {
    skip(s, i);
    if (i >= s.size() || s[i] != c) fail(i, "unexpected character");
    ++i;
  }
  static std::string string_at(const std::string& s, std::size_t& i) {
    expect(s, i, '"');
    std::string out;
    while (true) {
      if (i >= s.size()) fail(i, "unterminated string");
      const char c = s[i++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail(i, "control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i >= s.size()) fail(i, "bad escape");
      const char e = s[i++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u':
          if (i + 4 > s.size()) fail(i, "bad unicode escape");
          i += 4;
          out += '?';
          break;
        default: fail(i, "bad escape");
      }
    }
  }
  static json value(const std::string& s, std::size_t& i) {
    skip(s, i);
    if (i >= s.size()) fail(i, "unexpected end");
    json v;
    const char c = s[i];
    if (c == '{') {
      v.type = kind::object;
      ++i;
      skip(s, i);
      if (i < s.size() && s[i] == '}') {
        ++i;
        return v;
      }
      while (true) {
        std::string key = string_at(s, i);
        expect(s, i, ':');
        v.fields[key] = value(s, i);
        skip(s, i);
        if (i < s.size() && s[i] == ',') {
          ++i;
          continue;
        }
        expect(s, i, '}');
        return v;
      }
    }
    if (c == '[') {
      v.type = kind::array;
      ++i;
      skip(s, i);
      if (i < s.size() && s[i] == ']') {
        ++i;
        return v;
      }
      while (true) {
        v.items.push_back(value(s, i));
        skip(s, i);
        if (i < s.size() && s[i] == ',') {
          ++i;
          continue;
        }
        expect(s, i, ']');
        return v;
      }
    }
    if (c == '"') {
      v.type = kind::string;
      v.text = string_at(s, i);
      return v;
    }
    for (const char* lit : {"true", "false", "null"}) {
      const std::string l = lit;
      if (s.compare(i, l.size(), l) == 0) {
        i += l.size();
        v.type = l == "null" ? kind::null : kind::boolean;
        v.boolean = l == "true";
        return v;
      }
    }
    const char* begin = s.c_str() + i;
    char* end = nullptr;
    v.number = std::strtod(begin, &end);
    if (end == begin) fail(i, "bad value");
    v.type = kind::number;
    i += static_cast<std::size_t>(end - begin);
    return v;
  }
};

}  // namespace weft_test
