#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""weft as a Meson subproject, proven end to end.

Copies tests/subproject/consumer (a project of its own with
subprojects/weft.wrap) into a fresh work directory, makes subprojects/weft a
symlink to this source tree, then configures it with --wrap-mode=nodownload,
builds it with ninja and runs it. Checks that:

  - dependency('weft') is found through the wrap and weft_dep;
  - weft's own tests, benchmarks and examples are off (only its library is
    built): they switch themselves off when weft is a subproject;
  - the consumer compiles and links without Boost: no Boost include path or
    library on its command lines, and no Boost header among the headers its
    compilation read (ninja's dependency log);
  - the consumer runs and its results are right;
  - the parent's install puts a shared libweft beside its program (and the
    installed program runs with it), no static one, and none of weft's
    headers or package files.

With extra Meson options after WORK_DIR (e.g. -Db_lto=true
-Ddefault_library=static: the whole program, libweft included, optimised at
link time), the consumer is configured with them too; weft's templates reach
its thread-local worker view through inline assembly, which such a build must
keep linking and running.

Usage: run_consumer.py WEFT_SOURCE_ROOT CONSUMER_DIR WORK_DIR [MESON_OPTION...]
Exit status: 0 pass, 1 fail, 77 skip (meson or ninja missing).
"""

import json
import os
import shutil
import subprocess
import sys

SKIP = 77


def run(cmd, **kwargs):
    """Runs cmd, echoing it; returns its output; raises with the output on failure."""
    print("+", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout)
        raise RuntimeError(f"command failed with exit status {proc.returncode}: {' '.join(cmd)}")
    return proc.stdout


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    source_root, consumer_src, work = (os.path.abspath(a) for a in sys.argv[1:4])
    extra_options = sys.argv[4:]

    meson = shutil.which("meson")
    ninja = shutil.which("ninja") or shutil.which("ninja-build")
    if meson is None or ninja is None:
        print("SKIP: meson and ninja are needed to build the consumer project "
              "(Debian: apt-get install meson ninja-build)")
        return SKIP

    # A fresh work area: the consumer's source with weft in subprojects/.
    shutil.rmtree(work, ignore_errors=True)
    consumer = os.path.join(work, "consumer")
    build = os.path.join(work, "build")
    shutil.copytree(consumer_src, consumer)
    os.symlink(source_root, os.path.join(consumer, "subprojects", "weft"))

    # Exactly the user's steps (docs/guide.md, "Using weft from Meson").
    setup_log = run([meson, "setup", build, consumer, "--wrap-mode=nodownload", "-Dbuildtype=release"] + extra_options)
    if "Dependency weft found: YES" not in setup_log:
        sys.stdout.write(setup_log)
        fail("dependency('weft') was not found through the subproject")
    run([ninja, "-C", build])

    # Only weft's library is built: no test, benchmark or example of weft.
    targets = json.loads(run([meson, "introspect", build, "--targets"]))
    weft_targets = sorted(t["name"] for t in targets if t["subproject"] == "weft")
    print("weft's targets in the consumer's build:", ", ".join(weft_targets))
    if weft_targets != ["weft", "weft_core"]:
        fail(f"weft as a subproject builds more than its library: {weft_targets}")
    tests = json.loads(run([meson, "introspect", build, "--tests"]))
    names = sorted(t["name"] for t in tests)
    print("tests in the consumer's build:", ", ".join(names))
    if names != ["consumer"]:
        fail(f"weft registered tests in its parent project: {names}")
    options = json.loads(run([meson, "introspect", build, "--buildoptions"]))
    for o in options:
        if o["name"] in ("weft:tests", "weft:benchmarks"):
            print(f"{o['name']} = {o['value']} (auto: disabled because weft is a subproject)")

    # No Boost anywhere in the consumer's compilation or link.
    obj = "consumer.p/main.cpp.o"
    compile_cmd = run([ninja, "-C", build, "-t", "commands", obj]).strip().splitlines()[-1]
    link_cmd = run([ninja, "-C", build, "-t", "commands", "consumer"]).strip().splitlines()[-1]
    print("compile:", compile_cmd)
    print("link:", link_cmd)
    if "boost" in compile_cmd.lower():
        fail("the consumer's compile command names Boost")
    # A static libweft carries its dependencies to the program's link: Boost's
    # context library may be named there, never its headers.
    static = "-Ddefault_library=static" in extra_options
    if "boost" in link_cmd.lower() and not static:
        fail("the consumer's link command names Boost")
    if "-Db_lto=true" in extra_options:
        # The whole program at link time: weft's own objects are compiled for
        # it too, and the consumer's link optimises them.
        commands = run([ninja, "-C", build, "-t", "commands", "consumer"]).splitlines()
        weft_compiles = [c for c in commands if " -c " in c and "subprojects/weft/runtime/" in c]
        print(f"weft's objects compiled for the consumer: {len(weft_compiles)}")
        if not weft_compiles:
            fail("no compile command of weft's runtime among the consumer's build commands")
        def lto(command):
            return any(t == "-flto" or t.startswith("-flto=") for t in command.split())

        without = [c for c in weft_compiles if not lto(c)]
        if without:
            fail("-Db_lto=true did not reach weft's objects:\n  " + without[0])
        if not lto(link_cmd):
            fail("the consumer's link is not optimised at link time: " + link_cmd)
    deps = run([ninja, "-C", build, "-t", "deps", obj])
    headers = [line.strip() for line in deps.splitlines()[1:] if line.strip()]
    weft_headers = [h for h in headers if "/weft/" in h]
    boost_headers = [h for h in headers if "boost" in h.lower()]
    print(f"the consumer's compilation read {len(headers)} files, {len(weft_headers)} of them weft headers, "
          f"{len(boost_headers)} Boost headers")
    if not weft_headers:
        fail("ninja's dependency log has no weft header: cannot tell what was read")
    if boost_headers:
        fail("the consumer's compilation read Boost headers:\n  " + "\n  ".join(boost_headers[:10]))

    # Run it (its own checks decide).
    out = run([os.path.join(build, "consumer")])
    sys.stdout.write(out)
    if "OK" not in out:
        fail("the consumer did not report success")

    # Installed: the program, with a shared libweft beside it (it could not
    # start without it: the parent's install left it out), and no static
    # one (part of the program).
    stage = os.path.join(work, "stage")
    run([meson, "install", "-C", build, "--no-rebuild", "--destdir", stage])
    installed = {}
    for dirpath, _, filenames in os.walk(stage):
        for name in filenames:
            installed.setdefault(name, dirpath)
    print("installed:", ", ".join(sorted(installed)))
    if "consumer" not in installed:
        fail("the consumer was not installed")
    shared = [n for n in installed if n.startswith("libweft.so")]
    if static:
        if shared or "libweft.a" in installed:
            fail(f"a static libweft installed a library of its own: {sorted(installed)}")
    else:
        if not shared:
            fail("the parent's install left out the shared libweft its program needs")
        env = dict(os.environ, LD_LIBRARY_PATH=installed[shared[0]])
        out = run([os.path.join(installed["consumer"], "consumer")], env=env)
        if "OK" not in out:
            sys.stdout.write(out)
            fail("the installed consumer did not report success")
    if any(n.endswith((".hpp", ".pc", ".cmake")) for n in installed):
        fail(f"weft's headers or package files were installed with the parent's program: {sorted(installed)}")

    shutil.rmtree(work, ignore_errors=True)
    print("PASS: weft works as a Meson subproject" + (f" ({' '.join(extra_options)})" if extra_options else ""))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as e:
        fail(str(e))
