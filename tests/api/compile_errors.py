#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Calls that cannot work are compile errors that say why.

Compiles small programs (-fsyntax-only) that misuse the API, and checks that
each fails with weft's static_assert message, not only with a wall of
template errors:

  - parallelize, parallel_for and parallel_reduce with an index type wider
    than 64 bits (GNU mode);
  - parallel_for and parallel_reduce with bounds of different types: a
    common type wider than 64 bits (__int128 with long, GNU mode), or a
    function that cannot take the common type, or a combine that cannot
    take two rvalues of the identity's type;
  - parallel_reduce with an identity that cannot be copied (move-only), or
    cannot be assigned (a const member);
  - parallelize with a floating-point num_workers;
  - a weft::task whose result type is over-aligned (its coroutine frame
    gets the default alignment), and the awaitables that would keep an
    over-aligned result or callable in that frame (on_fiber_async,
    parallelize_async);
  - the algorithms over a range whose end may never come (a transform of
    std::views::iota(0)), as the only range or as the second of two (not
    under clang before 15, which cannot compile libstdc++'s views at all);
  - the serial algorithms (iterators that are not random-access) with an
    output that the classic std:: algorithms cannot write through (a
    move-only output iterator, an int): refused by the constraints.

Usage: compile_errors.py INCLUDE_DIR CXX...
Exit status: 0 pass, 1 fail.
"""

import os
import subprocess
import sys
import tempfile

CASES = [
    ("gnu++20", """
#include <weft/parallelize.hpp>
void f() {
  __extension__ using wide = __int128;
  weft::parallel_for(wide{0}, 10L, [](wide, wide) {});
}
""", "weft::parallel_for: the common type of first and last is wider than 64 bits"),
    ("gnu++20", """
#include <weft/parallelize.hpp>
#include <functional>
long f() {
  __extension__ using wide = __int128;
  return weft::parallel_reduce(0L, wide{10}, 0L, [](wide) { return 1L; }, std::plus<>{});
}
""", "weft::parallel_reduce: the common type of first and last is wider than 64 bits"),
    ("gnu++20", """
#include <weft/parallelize.hpp>
void f() {
  __extension__ using wide = __int128;
  weft::parallelize(wide{10}, [](wide) {});
}
""", "weft::parallelize: index types wider than 64 bits are not supported"),
    ("gnu++20", """
#include <weft/parallelize.hpp>
void f() {
  __extension__ using wide = __int128;
  weft::parallel_for(wide{0}, wide{10}, [](wide, wide) {});
}
""", "weft::parallel_for: index types wider than 64 bits are not supported"),
    ("gnu++20", """
#include <weft/parallelize.hpp>
#include <functional>
long f() {
  __extension__ using wide = __int128;
  return weft::parallel_reduce(wide{0}, wide{10}, 0L, [](wide) { return 1L; }, std::plus<>{});
}
""", "weft::parallel_reduce: index types wider than 64 bits are not supported"),
    ("c++20", """
#include <weft/parallelize.hpp>
#include <cstddef>
#include <string>
void f() { weft::parallel_for(0, std::size_t{10}, [](std::string, std::string) {}); }
""", "weft::parallel_for: fn must be callable as fn(begin, end) with the common type of first and last"),
    ("c++20", """
#include <weft/parallelize.hpp>
#include <cstddef>
#include <string>
void f() { weft::parallel_for(0, std::size_t{10}, 4, [](std::string, std::string) {}); }
""", "weft::parallel_for: fn must be callable as fn(begin, end) with the common type of first, last and grain"),
    ("c++20", """
#include <weft/parallelize.hpp>
#include <cstddef>
#include <functional>
#include <string>
int f() { return weft::parallel_reduce(0, std::size_t{10}, 0, [](std::string) { return 1; }, std::plus<>{}); }
""", "weft::parallel_reduce: map must be callable as map(i) with the common type of first and last"),
    ("c++20", """
#include <weft/parallelize.hpp>
#include <cstddef>
long f() {
  return weft::parallel_reduce(0, std::size_t{10}, 0L, [](std::size_t i) { return static_cast<long>(i); },
                               [](long& a, long& b) { return a + b; });
}
""", "weft::parallel_reduce: map(i) must give a value convertible to the identity's type T, and combine(T, T)"),
    ("c++20", """
#include <weft/parallelize.hpp>
#include <memory>
std::unique_ptr<int> f() {
  return weft::parallel_reduce(0, 10, std::make_unique<int>(0), [](int i) { return std::make_unique<int>(i); },
                               [](std::unique_ptr<int> a, std::unique_ptr<int> b) { *a += *b; return a; });
}
""", "weft::parallel_reduce: the identity's type T must be copy-constructible"),
    ("c++20", """
#include <weft/parallelize.hpp>
struct total { const long v; };  // copyable, not assignable
long f() {
  return weft::parallel_reduce(0, 10, total{0}, [](int i) { return total{i}; },
                               [](total a, total b) { return total{a.v + b.v}; }).v;
}
""", "weft::parallel_reduce: the identity's type T must be move-assignable"),
    ("c++20", """
#include <weft/parallelize.hpp>
void f() { weft::parallelize(10, 2.5, [](int) {}); }
""", "weft::parallelize: num_workers must be an integer, not floating-point"),
    ("c++20 views", """
#include <weft/algorithm.hpp>
#include <ranges>
long f() {
  auto r = std::views::iota(0) | std::views::transform([](int x) { return x; });
  return weft::reduce(r, 0L);
}
""", "weft: a range must end where its end can be found"),
    ("c++20 views", """
#include <weft/algorithm.hpp>
#include <functional>
#include <ranges>
#include <vector>
void f(std::vector<int>& v, std::vector<int>& out) {
  weft::transform(v, std::views::iota(0), out.begin(), std::plus<>{});
}
""", "weft: a range must end where its end can be found"),
    ("c++20", """
#include <weft/coroutine.hpp>
struct alignas(64) wide { char bytes[64]; };
weft::task<wide> make() { co_return wide{}; }
""", "weft::task<T>: over-aligned result types are not supported"),
    ("c++20", """
#include <weft/coroutine.hpp>
struct alignas(64) wide { char bytes[64]; };
weft::task<int> use() { co_return (co_await weft::on_fiber_async([] { return wide{}; })).bytes[0]; }
""", "weft::on_fiber_async: over-aligned result types are not supported"),
    ("c++20", """
#include <weft/coroutine.hpp>
struct alignas(64) wide { char bytes[64]; };
weft::task<int> use() {
  co_await weft::parallelize_async(4, [w = wide{}](int) { (void)w; });
  co_return 0;
}
""", "weft::parallelize_async: an over-aligned callable given as an rvalue"),
    # Over iterators that are not random-access the algorithms run the
    # classic std:: ones, which copy their output iterator: a move-only
    # output, or something that is not an iterator, is refused by the
    # overload's constraints ("no matching function"), not deep inside
    # std::transform.
    ("c++20", """
#include <weft/algorithm.hpp>
#include <list>
struct sink {
  using difference_type = long;
  sink() = default;
  sink(sink&&) = default;
  sink& operator=(sink&&) = default;
  sink& operator*() { return *this; }
  sink& operator=(int) { return *this; }
  sink& operator++() { return *this; }
  void operator++(int) {}
};
void f() {
  std::list<int> l{1, 2};
  weft::transform(l.begin(), l.end(), sink{}, [](int x) { return x; });
}
""", "no matching function for call to"),
    ("c++20", """
#include <weft/algorithm.hpp>
#include <list>
void f() {
  std::list<int> l{1, 2};
  weft::copy(l.begin(), l.end(), 5);
}
""", "no matching function for call to"),
]


# Compiles (syntax only) under clang before 15 exactly: a compiler that
# cannot compile libstdc++'s views, so the cases that use them say nothing.
OLD_CLANG = """
#if !defined(__clang__) || __clang_major__ >= 15
#error not clang before 15
#endif
"""


def compiles(cxx, work, name, source, std="c++20", include_dir=None):
    path = os.path.join(work, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(source)
    cmd = cxx + [f"-std={std}", "-fsyntax-only"] + (["-I", include_dir] if include_dir else []) + [path]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    include_dir = sys.argv[1]
    cxx = sys.argv[2:]
    failures = 0
    with tempfile.TemporaryDirectory() as work:
        old_clang = compiles(cxx, work, "old_clang.cpp", OLD_CLANG).returncode == 0
        for k, (mode, source, message) in enumerate(CASES):
            std, _, needs = mode.partition(" ")
            if needs == "views" and old_clang:
                print(f"case {k}: skipped (clang before 15 cannot compile std::views)")
                continue
            proc = compiles(cxx, work, f"case{k}.cpp", source, std, include_dir)
            if proc.returncode == 0:
                print(f"FAIL: case {k} compiled; expected the error \"{message}\"\n{source}")
                failures += 1
            elif message not in proc.stdout:
                print(f"FAIL: case {k} failed without the message \"{message}\":\n{proc.stdout[:4000]}")
                failures += 1
            else:
                print(f"case {k}: fails with \"{message}\"")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
