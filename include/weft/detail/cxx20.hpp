// SPDX-License-Identifier: MIT
// weft: the language version the public headers need, checked first.
#pragma once

// weft's headers use concepts, coroutines and C++20's library. Without this
// check an older -std gives pages of errors about names that do not exist;
// neither the pkg-config file nor the CMake target lowers a newer one.
#if __cplusplus < 202002L
#error "weft needs C++20 or later: compile with -std=c++20 (or -std=gnu++20, c++23, ...)"
#endif
