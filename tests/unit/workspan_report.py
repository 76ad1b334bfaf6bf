#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""WEFT_WORKSPAN=FILE: every call into weft from outside a runtime is measured,
and the report is written as JSON at exit (runtime/workspan.cpp,
docs/protocols/workspan.md).

Runs tests/unit/workspan_report_main.cpp (PROGRAM) with the variable set to a
file in a temporary directory and checks the report: valid JSON of version 1
in ns, one site per call site of the program with its number of calls (a call
that threw is not counted, calls from inside the runtime are no sites of their
own), the model's invariants (work >= span > 0, burdened span >= span, the
ratios), the strands of each call, the symbol of an exported site, and that a
loop of 1000 items of 20 us has a parallelism well above 1. The parallelism
is the one figure that noise lowers (an interruption on the critical path
lengthens the span: a worker preempted in the middle of an item while other
tests run adds a time slice of milliseconds): the program runs again, up to
30 times in 40 s, until it is reached.
Also: a call from a static destructor that runs after the report was
written at exit is in it (the report is written again); the report is whole
when another thread exits the process while calls go on (30 runs, and 10
with a report of 400 sites); a child the
program forks (PROGRAM fork) writes its own calls to a report of its own (the path with
"-PID" before the extension; on a device such as /dev/null, to the device
itself); a program whose file name is not UTF-8 gets a
report in valid JSON (U+FFFD for the odd bytes); no report without the
variable; a message with its reason, not a
failure, when the file cannot be opened or written (a full device); an empty
value is an error (std::invalid_argument from the first runtime).

With PLUGIN_A PLUGIN_B (two libraries of tests/unit/workspan_plugin.cpp):
calls from a library unloaded before the exit keep their own site and name.

Usage: workspan_report.py PROGRAM [PLUGIN_A PLUGIN_B]
Exit status: 0 pass, 1 fail.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

TIMEOUT_S = 60
ATTEMPTS = 30
ATTEMPTS_BUDGET_S = 40
MIN_LOOP_PARALLELISM = 5
EXIT_RUNS = 30
WIDE_EXIT_RUNS = 10

# The sites of the program, told apart by their number of calls:
# calls -> (what, strands per call or None when not fixed here).
SITES = {
    2: ("parallelize(1000) of spin_item", 1 + 1000),
    3: ("parallel_reduce", None),
    5: ("join of two sides, each with a nested parallelize(4)", 1 + 2 + 2 * 4),
    4: ("parallelize(100) from another thread", 1 + 100),
    6: ("parallelize(50), 7 calls of which one threw", 1 + 50),
    1: ("measure_workspan of parallelize(200)", None),
    7: ("parallelize(8) from a static destructor, after the report was written", 1 + 8),
}
# The forked children's own reports, by the calls each made before its exit:
# those (9 calls of parallelize(3)), and the static destructor's 7.
CHILD_SITES = {9: {9: 1 + 3, 7: 1 + 8}, 0: {7: 1 + 8}}
FIELDS = {
    "object": str, "offset": str, "symbol": str, "calls": int, "workers": int, "work": int, "span": int,
    "burdened_span": int, "burden": int, "strands": int, "parallelism": (int, float),
    "burdened_parallelism": (int, float),
}


class Failure(Exception):
    pass


def check(cond, message):
    if not cond:
        raise Failure(message)


def run(program, env_value, *args):
    env = dict(os.environ)
    env.pop("WEFT_WORKSPAN", None)
    if env_value is not None:
        env["WEFT_WORKSPAN"] = env_value
    try:
        return subprocess.run([program, *args], env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise Failure(f"{program} ran longer than {TIMEOUT_S} s")


def close(a, b):
    return abs(a - b) <= 0.0015 + 1e-6 * abs(b)


def check_report(program, path, proc):
    """Checks what does not depend on timing; returns the parallelism of the big loop."""
    check(proc.returncode == 0, f"the program exited with {proc.returncode}; stderr:\n{proc.stderr}")
    m = re.search(r"^workers (\d+)$", proc.stdout, re.M)
    check(m is not None, f"no 'workers N' line in the program's output:\n{proc.stdout}")
    workers = int(m.group(1))
    m = re.search(r"^inner (\d+) (\d+) (\d+)$", proc.stdout, re.M)
    check(m is not None, f"no 'inner WORK SPAN STRANDS' line in the program's output:\n{proc.stdout}")
    inner_work, inner_span, inner_strands = (int(g) for g in m.groups())
    check(os.path.exists(path), f"no report written at {path}; stderr:\n{proc.stderr}")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        report = json.loads(text)
    except json.JSONDecodeError as e:
        raise Failure(f"the report is not valid JSON ({e}):\n{text}")
    where = f"\nthe report:\n{text}"
    check(isinstance(report, dict), "the report is not an object" + where)
    check(report.get("version") == 1, "version is not 1" + where)
    check(report.get("unit") == "ns", "unit is not ns" + where)
    sites = report.get("sites")
    check(isinstance(sites, list), "no list of sites" + where)
    by_calls = {}
    for s in sites:
        for name, kind in FIELDS.items():
            check(name in s and isinstance(s[name], kind) and not isinstance(s[name], bool),
                  f"site {s} lacks {name} of type {kind}" + where)
        check(s["calls"] not in by_calls, f"two sites with {s['calls']} calls" + where)
        by_calls[s["calls"]] = s
    check(sorted(by_calls) == sorted(SITES),
          f"sites by their calls: {sorted(by_calls)}, expected {sorted(SITES)} "
          "(one per call site, calls that threw not counted)" + where)
    offsets = set()
    for calls, s in by_calls.items():
        what, strands = SITES[calls]
        label = f"site of {what} ({calls} calls): "
        check(os.path.basename(s["object"]) == os.path.basename(program),
              label + f"object {s['object']!r} is not the program" + where)
        check(re.fullmatch(r"0x[0-9a-f]+", s["offset"]) is not None, label + f"offset {s['offset']!r}" + where)
        offsets.add(s["offset"])
        check(s["workers"] == workers, label + f"workers {s['workers']}, the default runtime has {workers}" + where)
        check(s["work"] >= s["span"] > 0, label + "not work >= span > 0" + where)
        check(s["burdened_span"] >= s["span"], label + "burdened span < span" + where)
        check(s["burden"] > 0, label + "burden is not positive" + where)
        check(close(s["parallelism"], s["work"] / s["span"]), label + "parallelism is not work / span" + where)
        check(close(s["burdened_parallelism"], s["work"] / s["burdened_span"]),
              label + "burdened_parallelism is not work / burdened_span" + where)
        if strands is not None:
            check(s["strands"] == calls * strands,
                  label + f"strands {s['strands']}, expected {calls * strands}" + where)
        else:
            check(s["strands"] >= calls, label + "fewer strands than calls" + where)
    check(len(offsets) == len(by_calls), "two sites at the same offset" + where)
    check("workspan_report::spin_item" in by_calls[2]["symbol"],
          f"the exported loop body is not named: symbol {by_calls[2]['symbol']!r}" + where)
    # The measure_workspan call from main is measured as a call too, and
    # counts the inner measurement whole (plus its own strand).
    outer = by_calls[1]
    check(outer["strands"] == inner_strands + 1, f"measure_workspan site: strands {outer['strands']}, "
          f"the inner measurement had {inner_strands}" + where)
    check(inner_strands == 1 + 200, f"measure_workspan returned {inner_strands} strands, expected 201" + where)
    check(outer["work"] >= inner_work and outer["span"] >= inner_span,
          f"measure_workspan site: work {outer['work']} span {outer['span']} below the inner measurement's "
          f"{inner_work} {inner_span}" + where)
    # 2 x 1000 items of 20 us: about 40 ms of work.
    loop = by_calls[2]
    check(loop["work"] >= 2 * 1000 * 20_000 * 0.9, f"the big loop's work {loop['work']} ns < 0.9 x 40 ms" + where)
    check_child_report(path, proc)
    return loop["parallelism"], text


def check_child_report(path, proc):
    """The reports of the children the program forked: each its own calls only, in its own file."""
    if re.search(r"^child none$", proc.stdout, re.M):
        print("workspan_report: the forked children's reports are not checked under a sanitizer")
        return
    children = re.findall(r"^child (\d+) (\d+)$", proc.stdout, re.M)
    check(sorted(int(c) for c, _ in children) == sorted(CHILD_SITES),
          f"no 'child CALLS PID' line for each child in the program's output:\n{proc.stdout}")
    stem, ext = os.path.splitext(path)
    for made, pid in children:
        expected = CHILD_SITES[int(made)]
        child = f"{stem}-{pid}{ext}"
        check(os.path.exists(child), f"the forked child that made {made} calls wrote no report at {child}")
        with open(child, "rb") as f:
            text = f.read().decode("utf-8")
        report = json.loads(text)
        calls = sorted(site["calls"] for site in report["sites"])
        check(calls == sorted(expected), f"the report of the child that made {made} calls has sites of {calls} "
              f"calls, expected {sorted(expected)} (its own calls only)\n{text}")
        for site in report["sites"]:
            check(site["strands"] == site["calls"] * expected[site["calls"]],
                  f"the child's site of {site['calls']} calls has {site['strands']} strands\n{text}")


def check_non_utf8_name(program, tmp):
    """A program whose file name is not UTF-8 (and holds a quote) still gets a report in valid JSON."""
    odd = os.path.join(os.fsencode(tmp), b'prog\xff"q')
    os.symlink(os.fsencode(program), odd)  # the program's own run path still finds its library
    path = os.path.join(tmp, "odd-name.json")
    env = dict(os.environ)
    env["WEFT_WORKSPAN"] = path
    try:
        proc = subprocess.run([odd], env=env, capture_output=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise Failure(f"{odd!r} ran longer than {TIMEOUT_S} s")
    check(proc.returncode == 0, f"{odd!r} exited with {proc.returncode}:\n{proc.stderr!r}")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        report = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Failure(f"the report of a program named {odd!r} is not valid JSON in UTF-8 ({e}):\n{raw!r}")
    objects = {site["object"] for site in report["sites"]}
    check(any(o.endswith('prog\ufffd"q') for o in objects),
          f"the object of the program named {odd!r} is not its name with U+FFFD for the odd byte: {objects}")


def check_unloaded_library(program, plugins, tmp):
    """Calls from a library unloaded before the exit keep its name; another
    library loaded later (at the same address, most runs) has sites of its own.
    Before, both were one site named after the second library (or, with no
    second one, a site with no object and an absolute address)."""
    path = os.path.join(tmp, "dlclose.json")
    proc = run(program, path, "dlclose", *plugins)
    check(proc.returncode == 0, f"dlclose: exit status {proc.returncode}:\n{proc.stderr}")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    sites = {(os.path.basename(s["object"]), s["calls"]) for s in json.loads(text)["sites"]}
    expected = {(os.path.basename(plugins[0]), 2), (os.path.basename(plugins[1]), 1),
                (os.path.basename(program), 7)}
    check(sites == expected, f"dlclose: sites by object and calls {sorted(sites)}, expected {sorted(expected)}"
          f"\nthe report:\n{text}")


def main():
    if len(sys.argv) not in (2, 4):
        print(__doc__, file=sys.stderr)
        return 1
    program = os.path.abspath(sys.argv[1])
    plugins = [os.path.abspath(p) for p in sys.argv[2:]]
    try:
        with tempfile.TemporaryDirectory(prefix="weft-workspan-") as tmp:
            # Without the variable: nothing measured, nothing written.
            proc = run(program, None)
            check(proc.returncode == 0, f"without WEFT_WORKSPAN the program exited with {proc.returncode}:\n"
                  f"{proc.stderr}")
            check(os.listdir(tmp) == [], "a file appeared without WEFT_WORKSPAN")
            # A file that cannot be written: one line on stderr, the program's
            # own exit status.
            proc = run(program, os.path.join(tmp, "no-such-dir", "report.json"))
            check(proc.returncode == 0, f"with an unwritable report the program exited with {proc.returncode}:\n"
                  f"{proc.stderr}")
            check("WEFT_WORKSPAN" in proc.stderr and "No such file or directory" in proc.stderr,
                  f"no message about the unwritable report, with its reason:\n{proc.stderr}")
            # Once, although the static destructor's 7 calls write it again
            # (8 lines before).
            said = proc.stderr.count("WEFT_WORKSPAN: cannot write")
            check(said == 1, f"the unwritable report was said {said} times, not once:\n{proc.stderr}")
            # A file that opens but cannot be written in full (a full
            # device): the same, with that reason (it used to pass silently).
            if os.path.exists("/dev/full") and os.access("/dev/full", os.W_OK):
                proc = run(program, "/dev/full")
                check(proc.returncode == 0, f"with a report on a full device the program exited with "
                      f"{proc.returncode}:\n{proc.stderr}")
                check("WEFT_WORKSPAN" in proc.stderr and "No space left on device" in proc.stderr,
                      f"no message about the report that could not be written:\n{proc.stderr}")
                said = proc.stderr.count("WEFT_WORKSPAN: cannot write")
                check(said == 1, f"the report on a full device was said {said} times, not once:\n{proc.stderr}")
            # A report on a device: a forked child writes it there too, never
            # to a numbered file beside it (it made /dev/null-PID in /dev as
            # root, and said it could not write one otherwise).
            proc = run(program, "/dev/null", "fork")
            check(proc.returncode == 0, f"with a report on /dev/null, forking, the program exited with "
                  f"{proc.returncode}:\n{proc.stderr}")
            beside = [f"/dev/null-{pid}" for pid in re.findall(r"^child \d+ (\d+)$", proc.stdout, re.M)
                      if os.path.exists(f"/dev/null-{pid}")]
            for made in beside:
                os.remove(made)
            check(not beside and "cannot write" not in proc.stderr,
                  f"a forked child's report on /dev/null went beside it: {beside}\n{proc.stderr}")
            # An empty value is an error, as for every variable weft reads.
            proc = run(program, "")
            check(proc.returncode != 0 and "WEFT_WORKSPAN must name a file" in proc.stderr,
                  f"an empty WEFT_WORKSPAN was accepted (exit status {proc.returncode}):\n{proc.stderr}")
            check_non_utf8_name(program, tmp)
            # Runtimes destroyed while measured calls from another thread are
            # in flight: the record of each call must not read the runtime
            # after the call (a sanitizer's report, and exit status, before).
            path = os.path.join(tmp, "destroy.json")
            proc = run(program, path, "destroy")
            check(proc.returncode == 0, f"destroying runtimes during measured calls: exit status {proc.returncode}:\n"
                  f"{proc.stderr}")
            with open(path, encoding="utf-8") as f:
                calls = sorted(site["calls"] for site in json.load(f)["sites"])
            check(calls == [7, 300], f"destroying runtimes during measured calls: sites with {calls} calls recorded, "
                  "expected 300 (the calls) and 7 (the static destructor's)")
            # std::exit on one thread while another keeps calling: the
            # report is whole every time (a call ending after the handler
            # at exit rewrote it, and the end of the process cut that write
            # off: an empty or truncated file in about one run in ten).
            for attempt in range(EXIT_RUNS):
                path = os.path.join(tmp, f"exit-{attempt}.json")
                proc = run(program, path, "exit-while-calling")
                check(proc.returncode == 0, f"exit while calling: exit status {proc.returncode}:\n{proc.stderr}")
                try:
                    with open(path, encoding="utf-8") as f:
                        calls = [site["calls"] for site in json.load(f)["sites"]]
                except (OSError, ValueError) as e:
                    raise Failure(f"exit while calling, run {attempt + 1}: no whole report ({e})") from e
                # The loop's site, and the static destructor's 7 calls
                # after the handler (a report written again).
                check(len(calls) == 2 and 7 in calls,
                      f"exit while calling, run {attempt + 1}: sites with {calls} calls, expected the loop's "
                      "and the static destructor's 7")
            # The same with a report of 400 sites (about 100 KB, many
            # writes each time it is written again while the process exits).
            for attempt in range(WIDE_EXIT_RUNS):
                path = os.path.join(tmp, f"exit-wide-{attempt}.json")
                proc = run(program, path, "exit-while-calling-wide")
                check(proc.returncode == 0, f"exit while calling (400 sites): exit status {proc.returncode}:\n"
                      f"{proc.stderr}")
                try:
                    with open(path, encoding="utf-8") as f:
                        calls = sorted(site["calls"] for site in json.load(f)["sites"])
                except (OSError, ValueError) as e:
                    raise Failure(f"exit while calling (400 sites), run {attempt + 1}: no whole report ({e})") from e
                check(len(calls) == 401 and calls[:399] == [1] * 399 and 7 in calls,
                      f"exit while calling (400 sites), run {attempt + 1}: {len(calls)} sites, expected 399 with "
                      "one call, the loop's and the static destructor's 7")
            if plugins:
                check_unloaded_library(program, plugins, tmp)
            seen = []
            start = time.monotonic()
            for attempt in range(ATTEMPTS):
                if attempt > 0 and time.monotonic() - start > ATTEMPTS_BUDGET_S:
                    break
                path = os.path.join(tmp, f"report-{attempt}.json")
                proc = run(program, path, "fork")
                parallelism, text = check_report(program, path, proc)
                seen.append(parallelism)
                if parallelism > MIN_LOOP_PARALLELISM:
                    print(f"workspan_report: pass (loop parallelism {parallelism:.1f}, attempt {attempt + 1})")
                    print(text)
                    return 0
            raise Failure(f"the parallelism of parallelize(1000) of 20 us items was {seen} in {len(seen)} runs, "
                          f"never above {MIN_LOOP_PARALLELISM}\nthe last report:\n{text}")
    except Failure as e:
        print(f"workspan_report: FAIL: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
