// SPDX-License-Identifier: MIT
// A library that the WEFT_WORKSPAN test program loads with dlopen, calls
// and unloads (workspan_report_main.cpp, mode "dlclose"): built twice, as
// two libraries, so that the second may be loaded where the first was.
#include <weft/weft.hpp>

extern "C" __attribute__((visibility("default"))) void workspan_plugin_work() {
  weft::parallelize(10, [](int) {});
}
