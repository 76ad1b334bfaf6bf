// SPDX-License-Identifier: MIT
// weft: symbol visibility of the compiled entry points.
#pragma once

// The library is built with hidden visibility; entry points that public
// templates call are marked WEFT_API.
#if defined(__GNUC__)
#define WEFT_API __attribute__((visibility("default")))
#else
#define WEFT_API
#endif
