// SPDX-License-Identifier: MIT
// weft: the language version the public headers need, checked first.
#pragma once

// weft's headers use concepts, coroutines and C++20's library. Without this
// check an older -std gives pages of errors about names that do not exist
// (#error alone does not stop the compiler: the include of a file that does
// not exist after it does); neither the pkg-config file nor the CMake target
// lowers a newer one. (A compiler's C++2a mode before C++20 was final, at
// 201709, passes here and fails later, on what it lacks.)
#if __cplusplus <= 201703L
#error "weft needs C++20 or later: compile with -std=c++20 (or -std=gnu++20, c++23, ...)"
#include "weft needs C++20: see the error above"
#endif
