# SPDX-License-Identifier: MIT
"""What the install tests share: running a command with its output echoed on
failure, failing with a message, finding an installed file, and the project's
version as meson.build declares it."""

import os
import re
import shlex
import subprocess
import sys

SKIP = 77


def run_status(cmd, env=None, check=True):
    """Runs cmd, echoing it; returns (status, output); raises with the output on failure when check."""
    print("+", " ".join(shlex.quote(c) for c in cmd), flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    if check and proc.returncode != 0:
        sys.stdout.write(proc.stdout)
        raise RuntimeError(f"command failed with exit status {proc.returncode}")
    return proc.returncode, proc.stdout


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def find_file(root, name):
    for dirpath, _, filenames in os.walk(root):
        if name in filenames:
            return os.path.join(dirpath, name)
    return None


def version_of(source_root):
    with open(os.path.join(source_root, "meson.build"), encoding="utf-8") as f:
        m = re.search(r"version:\s*'([^']+)'", f.read())
    return m.group(1) if m else None


STACK_PROBES = "-fstack-clash-protection"


def has_stack_probes(cxx):
    """Whether the compiler cxx (a command list) takes weft's stack probe flag,
    which weft's build then hands to the code that uses it."""
    status, _ = run_status(cxx + [STACK_PROBES, "-Werror", "-x", "c++", "-fsyntax-only", os.devnull], check=False)
    return status == 0
