#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""weft's CMake package, installed with `meson install` and used by CMake.

Installs this build tree with `meson install --destdir WORK_DIR/stage` (its
configured prefix, moved under the staging directory: the package must be
relocatable), then configures, builds and runs the CMake project of
tests/install/cmake_consumer (CMakeLists.txt, with main.cpp from
tests/subproject/consumer) with -DCMAKE_PREFIX_PATH pointing at the staged
prefix. Checks that:

  - lib/.../cmake/weft/weftConfig.cmake and weftConfigVersion.cmake are
    installed and find_package(weft 0.1 CONFIG REQUIRED) finds them;
  - the imported target weft::weft compiles and links the program without
    Boost on its command lines (and with the stack probes,
    -fstack-clash-protection, where the compiler has them), and the program
    loads the installed libweft (through the build RPATH CMake gives it) and
    reports right results;
  - the version file turns down an incompatible request (find_package(weft 99
    CONFIG)) and accepts a range that holds this version.

With --static first, it configures and builds a static libweft from
SOURCE_ROOT (default_library=static, tests and benchmarks off) in WORK_DIR and
installs that instead of BUILD_ROOT; then weft::weft must link libweft.a and
Boost.Context (which a static libweft leaves to the program), the program
must not load any libweft, and libweft.a must hold machine code only: no
LTO bytecode, which a user's link would compile again with the user's flags
(a sanitizer's, -masm=intel) and only the GCC that wrote it can read.

Usage: run_cmake_consumer.py [--static] BUILD_ROOT PREFIX SOURCE_ROOT CMAKE_CONSUMER_DIR CONSUMER_MAIN WORK_DIR CXX...
Exit status: 0 pass, 1 fail, 77 skip (cmake missing).
"""

import os
import re
import shutil
import sys

from install_support import SKIP, STACK_PROBES, fail, find_file, has_stack_probes, run_status, version_of

run = run_status


def cmake_configure(cmake, ninja, src, build, prefix, cxx, env):
    """cmake -S src -B build against the staged prefix; returns (status, output)."""
    cmd = [cmake, "-S", src, "-B", build, f"-DCMAKE_PREFIX_PATH={prefix}", f"-DCMAKE_CXX_COMPILER={cxx[-1]}",
           "-DCMAKE_BUILD_TYPE=Release"]
    if len(cxx) > 1:  # a compiler launcher such as ccache
        cmd.append(f"-DCMAKE_CXX_COMPILER_LAUNCHER={';'.join(cxx[:-1])}")
    if ninja is not None:
        cmd += ["-G", "Ninja"]
    return run(cmd, env=env, check=False)


def lto_bytecode_problem(archive):
    """Why the ar archive's objects are not all plain machine code, or ''.
    GCC's LTO objects are ELF files with .gnu.lto_ sections; clang's are
    LLVM bitcode, not ELF at all: every member must be ELF, without them."""
    if not archive.startswith(b"!<arch>\n"):
        return "not an ar archive"
    pos, objects = 8, 0
    while pos + 60 <= len(archive):
        header = archive[pos:pos + 60]
        name = header[:16].rstrip()
        size = int(header[48:58].decode("ascii").strip())
        body = archive[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)
        if name in (b"/", b"//", b"/SYM64/"):  # the symbol and name tables
            continue
        objects += 1
        if not body.startswith(b"\x7fELF"):
            return f"a member is not an ELF object (it starts with {body[:4]!r}: LLVM bitcode?)"
        if b".gnu.lto_" in body:
            return "a member has .gnu.lto_ sections"
    return "" if objects else "no objects in it"


def main():
    args = sys.argv[1:]
    static = bool(args) and args[0] == "--static"
    if static:
        args = args[1:]
    if len(args) < 7:
        print(__doc__)
        return 2
    build_root, prefix = args[0], args[1]
    source_root, cmake_consumer, consumer_main, work = (os.path.abspath(a) for a in args[2:6])
    cxx = args[6:]

    cmake = shutil.which("cmake")
    if cmake is None:
        print("SKIP: cmake not found; the CMake package test needs it (Debian: apt-get install cmake)")
        return SKIP
    meson = shutil.which("meson")
    if meson is None:
        print("SKIP: meson not found; it installs the build tree for the CMake package test")
        return SKIP
    ninja = shutil.which("ninja") or shutil.which("ninja-build")

    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    stage = os.path.join(work, "stage")
    if static:
        build_root = os.path.join(work, "weft-static")
        env = dict(os.environ)
        env["CXX"] = " ".join(cxx)
        run([meson, "setup", build_root, source_root, "--wrap-mode=nodownload", f"--prefix={prefix}",
             "-Ddefault_library=static", "-Dtests=disabled", "-Dbenchmarks=disabled"], env=env)
        run([meson, "compile", "-C", build_root])
    # meson install puts the tree at DESTDIR + prefix.
    run([meson, "install", "-C", build_root, "--no-rebuild", "--quiet", "--destdir", stage])
    installed_shared = find_file(stage, "libweft.so") is not None
    installed_static = find_file(stage, "libweft.a") is not None
    if static and (installed_shared or not installed_static):
        fail("a static build should install libweft.a and no libweft.so")
    if static:
        with open(find_file(stage, "libweft.a"), "rb") as f:
            problem = lto_bytecode_problem(f.read())
        if problem:
            fail(f"the installed libweft.a holds LTO bytecode: {problem}")
        print("libweft.a holds no LTO bytecode")
    staged_prefix = os.path.join(stage, os.path.relpath(prefix, "/"))

    config = find_file(staged_prefix, "weftConfig.cmake")
    if config is None:
        fail(f"no weftConfig.cmake under {staged_prefix}")
    config_dir = os.path.dirname(config)
    if not os.path.isfile(os.path.join(config_dir, "weftConfigVersion.cmake")):
        fail(f"no weftConfigVersion.cmake beside {config}")
    print("installed:", os.path.relpath(config, staged_prefix))
    with open(config, encoding="utf-8") as f:
        sys.stdout.write(f.read())

    env = dict(os.environ)
    env.pop("CMAKE_PREFIX_PATH", None)
    env.pop("LD_LIBRARY_PATH", None)  # the program must find libweft by itself

    # The consumer project: CMakeLists.txt and main.cpp side by side.
    src = os.path.join(work, "consumer")
    os.makedirs(src)
    shutil.copy(os.path.join(cmake_consumer, "CMakeLists.txt"), src)
    shutil.copy(consumer_main, os.path.join(src, "main.cpp"))
    build = os.path.join(work, "consumer-build")
    status, out = cmake_configure(cmake, ninja, src, build, staged_prefix, cxx, env)
    sys.stdout.write(out)
    if status != 0:
        fail("cmake could not configure the consumer with find_package(weft CONFIG REQUIRED)")
    cache = os.path.join(build, "CMakeCache.txt")
    with open(cache, encoding="utf-8") as f:
        found_dir = re.search(r"^weft_DIR:PATH=(.*)$", f.read(), re.M)
    if found_dir is None or os.path.realpath(found_dir.group(1)) != os.path.realpath(config_dir):
        fail(f"find_package(weft) did not use the staged package in {config_dir}")

    _, out = run([cmake, "--build", build, "--verbose"], env=env)
    sys.stdout.write(out)
    link_lines = [l for l in out.splitlines() if "main.cpp" in l or "-o consumer" in l]
    link_line = next((l for l in link_lines if "-o consumer" in l), "")
    if static:
        if "libweft.a" not in link_line or "boost_context" not in link_line:
            fail(f"the consumer's link command should name libweft.a and Boost.Context: {link_line}")
    elif any("boost" in l.lower() for l in link_lines):
        fail("the consumer's compile or link command names Boost")
    compile_line = next((l for l in link_lines if "main.cpp" in l and " -c " in l), "")
    if has_stack_probes(cxx) and STACK_PROBES not in compile_line:
        fail(f"weft::weft did not add {STACK_PROBES} to the consumer's compile command: {compile_line}")
    exe = os.path.join(build, "consumer")
    ldd = shutil.which("ldd")
    if ldd is not None and static:
        _, libs = run([ldd, exe], env=env)
        if "libweft" in libs:
            fail("the program linked against a static libweft loads a libweft")
    elif ldd is not None:
        _, libs = run([ldd, exe], env=env)
        line = next((l for l in libs.splitlines() if "libweft" in l), "")
        print("ldd:", line.strip())
        if staged_prefix not in line and os.path.realpath(staged_prefix) not in line:
            fail(f"the program does not load libweft from {staged_prefix}")
    _, out = run([exe], env=env)
    sys.stdout.write(out)
    if "OK" not in out or f"weft {version_of(source_root)}" not in out:
        fail("the CMake-built program did not report success")

    # The version file: an incompatible version is turned down, a range that
    # holds this version accepted; while the major version is 0, a request
    # of another minor version is turned down, "0" (0.0) included, which
    # was accepted (CMake's if() takes the string 0 for false), and the
    # numbers are compared as numbers ("00.1" is 0.1).
    version = version_of(source_root)
    major, minor = version.split(".")[:2]
    requests = [("99", False), (f"0.0...{version}", True), (f"0{major}.{minor}", True)]
    if major == "0" and minor != "0":
        requests.append(("0", False))
    for request, want in requests:
        vsrc = os.path.join(work, f"version-{len(os.listdir(work))}")
        os.makedirs(vsrc)
        with open(os.path.join(vsrc, "CMakeLists.txt"), "w", encoding="utf-8") as f:
            f.write("cmake_minimum_required(VERSION 3.19)\nproject(weft_version_check LANGUAGES CXX)\n"
                    f"find_package(weft {request} CONFIG QUIET)\n"
                    'message(STATUS "weft_FOUND=${weft_FOUND} weft_VERSION=${weft_VERSION}")\n')
        _, out = cmake_configure(cmake, ninja, vsrc, vsrc + "-build", staged_prefix, cxx, env)
        found = "weft_FOUND=1" in out
        print(f"find_package(weft {request} CONFIG): {'found' if found else 'not found'}")
        if found != want:
            sys.stdout.write(out)
            fail(f"find_package(weft {request} CONFIG) should {'' if want else 'not '}find weft {version}")

    shutil.rmtree(work, ignore_errors=True)
    print(f"PASS: installed weft ({'static' if static else 'shared'}) works through its CMake package")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as e:
        fail(str(e))
