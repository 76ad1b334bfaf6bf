// SPDX-License-Identifier: MIT
// weft: version of the public API and of the library.
#pragma once

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0

// Readable from any standard (a program may check the version before it
// checks the standard): the variable needs C++17's inline variables.
#if __cplusplus >= 201703L
namespace weft {

// The version this header belongs to, as "major.minor.patch".
inline constexpr const char* k_version = "0.1.0";

}  // namespace weft
#endif
