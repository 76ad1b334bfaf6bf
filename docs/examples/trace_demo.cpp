// SPDX-License-Identifier: MIT
// Records a trace of nested parallel loops on two workers and writes it as
// Chrome trace-event JSON (open it in ui.perfetto.dev, or draw it with
// tools/trace_plot). Usage: trace_demo [trace.json]
#include <weft/weft.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

int main(int argc, char** argv) {
  weft::config cfg;
  cfg.workers = 2;
  cfg.trace_file = argc > 1 ? argv[1] : "weft-trace.json";
  std::vector<double> rows(64);
  {
    weft::runtime rt(cfg);
    rt.run([&] {
      // An outer loop of rows of uneven cost, each an inner parallel loop.
      weft::parallelize(rows.size(), [&](std::size_t r) {
        const int cols = 2000 + static_cast<int>(r % 8) * 1500;
        std::vector<double> v(static_cast<std::size_t>(cols));
        weft::parallelize(cols, [&](int c) { v[static_cast<std::size_t>(c)] = std::sin(r * 0.1 + c * 1e-3); });
        double s = 0;
        for (double x : v) s += x;
        rows[r] = s;
      });
    });
    std::printf("%s", rt.stats().summary().c_str());
  }  // the trace is written here (or a line on stderr says why not)
  if (std::FILE* f = std::fopen(cfg.trace_file.c_str(), "r")) {
    std::fclose(f);
    std::printf("trace written to %s\n", cfg.trace_file.c_str());
    return 0;
  }
  std::fprintf(stderr, "trace_demo: no trace at %s\n", cfg.trace_file.c_str());
  return 1;
}
