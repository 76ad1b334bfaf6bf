// SPDX-License-Identifier: MIT
#include "trace.hpp"

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <map>
#include <mutex>
#include <system_error>

#include "report_file.hpp"

namespace weft::rt {

trace_ring::trace_ring(std::size_t capacity) {
  std::uint64_t n = 1024;
  while (n < capacity) n *= 2;
  m_slots = std::make_unique<slot[]>(n);
  m_mask = n - 1;
}

std::vector<trace_ring::event> trace_ring::snapshot() const {
  const std::uint64_t end = m_next.load(std::memory_order_acquire);
  const std::uint64_t size = m_mask + 1;
  std::uint64_t begin = end > size ? end - size : 0;
  std::vector<event> out;
  out.reserve(end - begin);
  for (std::uint64_t i = begin; i < end; ++i) {
    const slot& s = m_slots[i & m_mask];
    const std::uint64_t ke = s.m_kind_extra.load(std::memory_order_relaxed);
    out.push_back({s.m_ticks.load(std::memory_order_relaxed), s.m_arg.load(std::memory_order_relaxed),
                   static_cast<trace_kind>(ke >> 32), static_cast<std::uint32_t>(ke)});
  }
  // Seqlock-style check of the copy. Acquire fence: the slot loads above come
  // before the load of m_next below; with the release fence in record(), a
  // copied field written for index j + size makes this load see m_next >=
  // j + size. The owner has overwritten every index below now - size and may
  // be writing index now, whose slot is that of now - size: keep only indices
  // from now - size + 1.
  std::atomic_thread_fence(std::memory_order_acquire);
  const std::uint64_t now = m_next.load(std::memory_order_relaxed);
  if (now >= size && now - size + 1 > begin) {
    const std::uint64_t lost = std::min<std::uint64_t>(now - size + 1 - begin, out.size());
    out.erase(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(lost));
  }
  return out;
}

namespace {

class json_writer {
 public:
  // Whole or not at all, also when the process ends while it writes.
  // A trace on /dev/stdout, say, follows the traces of the runtimes before.
  explicit json_writer(const std::string& path)
      : m_out(path, replacing_file::new_file::unnamed_first, replacing_file::in_place::append) {
    if (!m_out.is_open()) {
      throw std::system_error(m_out.open_error(), std::generic_category(), "weft: cannot write trace " + path);
    }
    m_out.write("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n");
  }
  json_writer(const json_writer&) = delete;
  json_writer& operator=(const json_writer&) = delete;

  // One event: the JSON text inside its braces, printf-formatted (the
  // compiler checks the arguments against the format).
  [[gnu::format(printf, 2, 3)]] void event(const char* format, ...) {
    m_out.write(m_first ? "{" : ",\n{");
    m_first = false;
    std::va_list args;
    va_start(args, format);
    m_out.vprint(format, args);
    va_end(args);
    m_out.write("}");
  }

  void finish(const std::string& path) {
    m_out.write("\n]}\n");
    const int error = m_out.finish();
    if (error != 0) throw std::system_error(error, std::generic_category(), "weft: cannot write trace " + path);
  }

 private:
  replacing_file m_out;
  bool m_first = true;
};

// The slices of a worker's track (docs/tracing.md names them).
enum class slice { none, task, resume, searching, parked };

const char* slice_name(slice s) noexcept {
  switch (s) {
    case slice::task: return "task";
    case slice::resume: return "resume";
    case slice::searching: return "searching";
    case slice::parked: return "parked";
    case slice::none: break;
  }
  return "";
}

// Held by write_chrome_trace(), and by fork() (lock_trace_writes_for_fork):
// constant-initialised, no initialisation guard.
std::mutex g_trace_writes;

struct publication {
  int m_worker;
  double m_us;
  bool m_used;
};

}  // namespace

void lock_trace_writes_for_fork() noexcept { g_trace_writes.lock(); }
void unlock_trace_writes_after_fork() noexcept { g_trace_writes.unlock(); }

void write_chrome_trace(const std::string& path, const std::vector<std::vector<trace_ring::event>>& workers,
                        std::uint64_t origin) {
  const double per_us = static_cast<double>(ticks_per_us());
  // Microseconds since the origin, rounded to the nanosecond that the file
  // prints (%.3f): a slice's ts + dur is then exactly the next one's ts, where
  // rounding ts and dur apart made them overlap by 1 ns.
  auto us = [&](std::uint64_t t) {
    return t > origin ? std::round(static_cast<double>(t - origin) / per_us * 1000.0) / 1000.0 : 0.0;
  };

  // One write at a time in the process: runtimes given the same file,
  // destroyed at once, write it one after the other (the last one stays)
  // instead of into each other.
  std::lock_guard<std::mutex> lock(g_trace_writes);
  json_writer out(path);
  out.event(R"("name":"process_name","ph":"M","pid":1,"tid":0,"args":{"name":"weft runtime"})");
  const int n = static_cast<int>(workers.size());
  for (int w = 0; w < n; ++w) {
    out.event(R"("name":"thread_name","ph":"M","pid":1,"tid":%d,"args":{"name":"worker %d"})", w, w);
    out.event(R"("name":"thread_sort_index","ph":"M","pid":1,"tid":%d,"args":{"sort_index":%d})", w, w);
  }

  // Publications by task address, in time order, to connect steals to them.
  std::map<std::uint64_t, std::vector<publication>> published;
  for (int w = 0; w < n; ++w) {
    for (const auto& e : workers[static_cast<std::size_t>(w)]) {
      if (e.m_kind == trace_kind::publish) published[e.m_arg].push_back({w, us(e.m_ticks), false});
    }
  }

  std::uint64_t flow = 0;
  for (int w = 0; w < n; ++w) {
    const auto& events = workers[static_cast<std::size_t>(w)];
    // The open slice of the worker's track, if any: a run or an idle period.
    slice open_kind = slice::none;
    double open_us = 0;
    std::uint64_t open_arg = 0;
    std::uint32_t open_extra = 0;
    auto close = [&](double at) {
      if (open_kind == slice::none) return;
      const double dur = at > open_us ? at - open_us : 0;
      if (open_kind == slice::task) {  // say where it came from
        if (open_extra == 3 && open_arg == 0) {
          out.event(
              R"("name":"task","cat":"run","ph":"X","pid":1,"tid":%d,"ts":%.3f,"dur":%.3f,"args":{"source":"before the trace window"})",
              w, open_us, dur);
        } else if (open_extra >= 2) {
          out.event(
              R"("name":"task","cat":"run","ph":"X","pid":1,"tid":%d,"ts":%.3f,"dur":%.3f,"args":{"stolen from":%u})",
              w, open_us, dur, open_extra - 2);
        } else {
          out.event(
              R"("name":"task","cat":"run","ph":"X","pid":1,"tid":%d,"ts":%.3f,"dur":%.3f,"args":{"source":"%s"})", w,
              open_us, dur, open_extra == 1 ? "injected" : "local");
        }
      } else {
        out.event(R"("name":"%s","cat":"%s","ph":"X","pid":1,"tid":%d,"ts":%.3f,"dur":%.3f)", slice_name(open_kind),
                  open_kind == slice::resume ? "run" : "idle", w, open_us, dur);
      }
      open_kind = slice::none;
    };
    auto open = [&](slice kind, double at, std::uint64_t arg, std::uint32_t extra) {
      close(at);
      open_kind = kind;
      open_us = at;
      open_arg = arg;
      open_extra = extra;
    };
    double last = 0;
    // A ring that wrapped starts in the middle of something: open a slice for
    // it from the first event kept, so that the track stays balanced and
    // publications in it stay inside a slice.
    for (const auto& e : events) {
      const double at = us(e.m_ticks);
      if (e.m_kind == trace_kind::run_end || e.m_kind == trace_kind::publish) {
        open(slice::task, at, 0, 3);  // extra 3: "before the trace window"
      } else if (e.m_kind == trace_kind::search_end || e.m_kind == trace_kind::park_begin) {
        open(slice::searching, at, 0, 0);
      } else if (e.m_kind == trace_kind::park_end) {
        open(slice::parked, at, 0, 0);
      } else {
        break;  // a beginning: nothing was cut off
      }
      break;
    }
    for (const auto& e : events) {
      const double at = us(e.m_ticks);
      last = at;
      switch (e.m_kind) {
        case trace_kind::run_task:
          open(slice::task, at, e.m_arg, e.m_extra);
          if (e.m_extra >= 2) {  // stolen: an arrow from its publication
            auto it = published.find(e.m_arg);
            if (it != published.end()) {
              publication* best = nullptr;
              for (auto& p : it->second) {
                if (!p.m_used && p.m_us <= at && (best == nullptr || p.m_us > best->m_us)) best = &p;
              }
              if (best != nullptr) {
                best->m_used = true;
                ++flow;
                out.event(R"("name":"steal","cat":"steal","ph":"s","id":%llu,"pid":1,"tid":%d,"ts":%.3f)",
                          static_cast<unsigned long long>(flow), best->m_worker, best->m_us);
                out.event(R"("name":"steal","cat":"steal","ph":"f","bp":"e","id":%llu,"pid":1,"tid":%d,"ts":%.3f)",
                          static_cast<unsigned long long>(flow), w, at);
              }
            }
          }
          break;
        case trace_kind::run_resume: open(slice::resume, at, e.m_arg, 0); break;
        case trace_kind::run_end:
          if (open_kind == slice::task || open_kind == slice::resume) close(at);
          break;
        case trace_kind::search_begin:
        case trace_kind::park_end: open(slice::searching, at, 0, 0); break;
        case trace_kind::search_end:
          if (open_kind == slice::searching) close(at);
          break;
        case trace_kind::park_begin: open(slice::parked, at, 0, 0); break;
        case trace_kind::publish:
          out.event(R"("name":"public deque","ph":"C","pid":1,"tid":%d,"ts":%.3f,"args":{"worker %d":%u})", w, at, w,
                    e.m_extra);
          break;
      }
    }
    close(last);
  }
  out.finish(path);
}

}  // namespace weft::rt
