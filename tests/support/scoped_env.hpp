// SPDX-License-Identifier: MIT
// Sets (or unsets) an environment variable for the lifetime of an object and
// restores the previous value afterwards. Not thread-safe, like setenv itself:
// use it only while no other thread of the process reads the environment.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>

namespace weft_test {

class scoped_env {
 public:
  // value: the new value; std::nullopt unsets the variable.
  scoped_env(std::string name, std::optional<std::string> value) : m_name(std::move(name)) {
    if (const char* old = std::getenv(m_name.c_str())) m_old = old;
    if (value) {
      ::setenv(m_name.c_str(), value->c_str(), 1);
    } else {
      ::unsetenv(m_name.c_str());
    }
  }
  ~scoped_env() {
    if (m_old) {
      ::setenv(m_name.c_str(), m_old->c_str(), 1);
    } else {
      ::unsetenv(m_name.c_str());
    }
  }
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;

 private:
  std::string m_name;
  std::optional<std::string> m_old;
};

}  // namespace weft_test
