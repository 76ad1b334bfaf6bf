#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What libweft exports: weft's own entry points, nothing else of its own.

Lists the dynamic symbols libweft.so defines (`nm -D --defined-only`) and
fails on any that is neither in namespace weft nor one of the standard
library's vague-linkage instantiations (templates and inline variables of
namespace std, which libstdc++'s headers give default visibility and every
library that uses them exports alike). Boost.Context, linked in statically,
must not show: a program with its own Boost, or its own make_fcontext,
would bind to weft's copy, or weft to the program's.

Usage: exported_symbols.py LIBWEFT_SO
Exit status: 0 pass, 1 fail, 77 skip (nm missing).
"""

import re
import shutil
import subprocess
import sys

# weft's names and std's (_ZN4weft, _ZNK4weft, _ZSt, _ZNSt, _ZNKSt...), with
# the special names built on them: typeinfo and its name, vtables, VTTs,
# construction vtables, thunks, guard variables, and the local statics of
# their functions (_ZZ, also inside guards and typeinfo). AddressSanitizer
# builds add an ODR indicator (__odr_asan.NAME) beside such a variable. A
# std:: instantiation on another library's type passes that pattern: the
# demangled names are checked for Boost's namespace besides (libweft's only
# other library besides the C++ runtime).
ALLOWED = re.compile(r"^(?:__odr_asan\.)?_Z(?:GV|T[ISVTHW]|TC|Th\w*?_|Tv\w*?_\w*?_)?Z?N?K?(?:4weft|St)")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    nm = shutil.which("nm")
    if nm is None:
        print("SKIP: nm not found (Debian: binutils)")
        return 77
    out = subprocess.run([nm, "-D", "--defined-only", sys.argv[1]], stdout=subprocess.PIPE, text=True,
                         check=True).stdout
    symbols = [line.split()[-1] for line in out.splitlines() if line.strip()]
    if not any(s.startswith("_ZN4weft") for s in symbols):
        print(f"FAIL: {sys.argv[1]} exports no symbol of namespace weft: not libweft?")
        return 1
    stray = [s for s in symbols if not ALLOWED.match(s)]
    print(f"{len(symbols)} exported symbols, {len(stray)} outside namespaces weft and std")
    for s in stray:
        print("  not weft's:", s)
    cxxfilt = shutil.which("c++filt")
    if cxxfilt is None:
        print("c++filt not found (Debian: binutils): std:: instantiations not checked for Boost's types")
        return 1 if stray else 0
    names = subprocess.run([cxxfilt], input="\n".join(symbols), stdout=subprocess.PIPE, text=True,
                           check=True).stdout.splitlines()
    boost = [n for n in names if "boost::" in n]
    print(f"{len(boost)} of them name Boost's types")
    for n in boost:
        print("  names Boost:", n)
    return 1 if stray or boost else 0


if __name__ == "__main__":
    sys.exit(main())
