#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""weft installed with `meson install` and used through pkg-config alone.

Configures this source tree in a fresh work directory with
--prefix=WORK_DIR/prefix (tests and benchmarks off), builds and installs it,
then compiles the consumer program of tests/subproject/consumer (main.cpp)
with nothing but `pkg-config --cflags --libs weft` (PKG_CONFIG_PATH pointing
into the prefix), runs it with LD_LIBRARY_PATH pointing into the prefix, and
checks that:

  - pkg-config reports weft's version, no Boost in its flags, and the stack
    probes (-fstack-clash-protection) where the compiler has them, and no
    -std: a program built with -std=c++2b and those flags is compiled as
    C++23, one built with -std=c++17 stops at once, with weft's message, and
    <weft/version.hpp> alone compiles without a warning from C++98 to C++17;
  - the program links against the installed libweft and its results are right;
  - the installed headers include no Boost header and nothing that is not
    installed (every "weft/..." include resolves inside the prefix);
  - the licence is installed as share/licenses/weft/LICENSE;
  - a Meson project (the consumer's meson.build, without subprojects/) finds
    the installed weft with dependency('weft') through pkg-config.

Usage: run_install.py WEFT_SOURCE_ROOT CONSUMER_DIR WORK_DIR CXX...
Exit status: 0 pass, 1 fail, 77 skip (meson, ninja or pkg-config missing).
"""

import os
import re
import shutil
import sys

from install_support import SKIP, STACK_PROBES, fail, find_file, has_stack_probes, run_status, version_of


def run(cmd, env=None):
    """Runs cmd, echoing it; returns its output; raises with the output on failure."""
    return run_status(cmd, env)[1]


def main():
    if len(sys.argv) < 5:
        print(__doc__)
        return 2
    source_root, consumer_src, work = (os.path.abspath(a) for a in sys.argv[1:4])
    consumer_main = os.path.join(consumer_src, "main.cpp")
    cxx = sys.argv[4:]

    tools = {name: shutil.which(name) for name in ("meson", "ninja", "pkg-config")}
    missing = [name for name, path in tools.items() if path is None]
    if missing:
        print(f"SKIP: {', '.join(missing)} not found; the install test needs meson, ninja and pkg-config "
              "(Debian: apt-get install meson ninja-build pkg-config)")
        return SKIP

    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    build = os.path.join(work, "build")
    prefix = os.path.join(work, "prefix")

    # Exactly the user's steps (docs/guide.md, "Installing weft").
    run([tools["meson"], "setup", build, source_root, "--wrap-mode=nodownload", f"--prefix={prefix}",
         "-Dtests=disabled", "-Dbenchmarks=disabled"])
    run([tools["meson"], "install", "-C", build, "--quiet"])

    pc = find_file(prefix, "weft.pc")
    if pc is None:
        fail(f"no weft.pc under {prefix}")
    pc_dir = os.path.dirname(pc)
    libdir = os.path.dirname(pc_dir)
    print("installed:", os.path.relpath(pc, prefix))
    with open(pc, encoding="utf-8") as f:
        sys.stdout.write(f.read())

    env = dict(os.environ)
    env["PKG_CONFIG_PATH"] = pc_dir
    env.pop("PKG_CONFIG_LIBDIR", None)
    env.pop("PKG_CONFIG_SYSROOT_DIR", None)
    version = run([tools["pkg-config"], "--modversion", "weft"], env=env).strip()
    if version != version_of(source_root):
        fail(f"pkg-config reports weft {version}, meson.build says {version_of(source_root)}")
    flags = run([tools["pkg-config"], "--cflags", "--libs", "weft"], env=env).split()
    print("pkg-config --cflags --libs weft:", " ".join(flags))
    if any("boost" in f.lower() for f in flags):
        fail("pkg-config's flags for weft name Boost")
    if f"-I{os.path.join(prefix, 'include')}" not in flags:
        fail("pkg-config's flags lack the installed include directory")
    if has_stack_probes(cxx) and STACK_PROBES not in flags:
        fail(f"pkg-config's flags lack {STACK_PROBES} (docs/guide.md, Limits)")
    if any(f.startswith("-std=") for f in flags):
        fail("pkg-config's flags set the language standard: a user's newer one would be lowered")
    # The user's standard stands: later than C++20, the program sees it; before
    # it, the headers stop with one line that says what to do.
    newer = os.path.join(work, "newer.cpp")
    with open(newer, "w", encoding="utf-8") as f:
        f.write('#include <weft/weft.hpp>\n'
                'static_assert(__cplusplus > 202002L, "compiled as C++20, not as the -std given");\n'
                'int main() { return weft::parallel_reduce(0, 10, 0, [](int i) { return i; }, '
                '[](int a, int b) { return a + b; }) == 45 ? 0 : 1; }\n')
    run(cxx + ["-std=c++2b", "-c", newer, "-o", os.path.join(work, "newer.o")] + flags, env=env)
    status, out = run_status(cxx + ["-std=c++17", "-c", newer, "-o", os.path.join(work, "older.o")] + flags,
                             env=env, check=False)
    if status == 0 or "weft needs C++20" not in out or len(out.splitlines()) > 20:
        sys.stdout.write(out)
        fail("a C++17 build of a weft header did not stop at once with weft's message")
    # The version macros stay readable from any standard (a build probe's),
    # without a warning: the header's C++17 variable stopped C++98 and warned
    # under C++11 and C++14.
    version = os.path.join(work, "version.cpp")
    with open(version, "w", encoding="utf-8") as f:
        f.write('#include <weft/version.hpp>\n'
                'typedef char weft_version_known[WEFT_VERSION_MAJOR >= 0 ? 1 : -1];\n')
    for std in ("c++98", "c++11", "c++14", "c++17"):
        run(cxx + [f"-std={std}", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-c", version, "-o",
                   os.path.join(work, "version.o")] + flags, env=env)
    print("pkg-config sets no -std: C++23 stays C++23, C++17 stops with weft's message")

    # The headers as installed: no Boost, nothing from outside the prefix.
    include_root = os.path.join(prefix, "include")
    headers = []
    for dirpath, _, filenames in os.walk(os.path.join(include_root, "weft")):
        headers += [os.path.join(dirpath, n) for n in filenames]
    if not headers:
        fail("no header installed under include/weft")
    include_re = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
    for h in sorted(headers):
        with open(h, encoding="utf-8") as f:
            text = f.read()
        for _, name in include_re.findall(text):
            if name.startswith("boost/") or "boost" in name.lower():
                fail(f"{os.path.relpath(h, prefix)} includes {name}")
            if name.startswith("weft/") and not os.path.isfile(os.path.join(include_root, name)):
                fail(f"{os.path.relpath(h, prefix)} includes {name}, which is not installed")
    print(f"{len(headers)} installed headers, none includes Boost or an uninstalled header")

    # The licence is installed with them.
    licence = os.path.join(prefix, "share", "licenses", "weft", "LICENSE")
    if not os.path.isfile(licence):
        fail(f"no licence at {os.path.relpath(licence, prefix)}")
    with open(licence, encoding="utf-8") as f:
        if "MIT License" not in f.read():
            fail("the installed LICENSE is not the MIT licence")

    # A program built with pkg-config's flags alone.
    exe = os.path.join(work, "consumer")
    run(cxx + ["-std=c++20", "-O2", consumer_main, "-o", exe] + flags, env=env)
    env["LD_LIBRARY_PATH"] = libdir + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    ldd = shutil.which("ldd")
    if ldd is not None:
        libs = run([ldd, exe], env=env)
        line = next((l for l in libs.splitlines() if "libweft" in l), "")
        print("ldd:", line.strip())
        if libdir not in line:
            fail(f"the program does not load libweft from {libdir}")
    out = run([exe], env=env)
    sys.stdout.write(out)
    if "OK" not in out:
        fail("the program did not report success")

    # The same program from a Meson project: dependency('weft') falls to
    # pkg-config when there is no subproject to fall back to.
    meson_src = os.path.join(work, "meson-consumer")
    os.makedirs(meson_src)
    for name in ("meson.build", "main.cpp"):
        shutil.copy(os.path.join(consumer_src, name), meson_src)
    meson_build = os.path.join(work, "meson-consumer-build")
    setup_log = run([tools["meson"], "setup", meson_build, meson_src, "--wrap-mode=nodownload"], env=env)
    if "Run-time dependency weft found: YES" not in setup_log:
        sys.stdout.write(setup_log)
        fail("dependency('weft') did not find the installed weft through pkg-config")
    run([tools["ninja"], "-C", meson_build], env=env)
    out = run([os.path.join(meson_build, "consumer")], env=env)
    sys.stdout.write(out)
    if "OK" not in out:
        fail("the Meson-built program did not report success")

    shutil.rmtree(work, ignore_errors=True)
    print("PASS: installed weft works through pkg-config")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as e:
        fail(str(e))
