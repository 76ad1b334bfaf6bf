// SPDX-License-Identifier: MIT
// weft: version of the public API and of the library.
#pragma once

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0

namespace weft {

// The version this header belongs to, as "major.minor.patch".
inline constexpr const char* k_version = "0.1.0";

}  // namespace weft
