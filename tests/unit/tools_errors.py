#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The user-facing tools (tools/trace_plot, tools/bench_report,
tools/workspan_plot) answer a user's mistake with one line that names the
tool and the problem, and a non-zero exit status: never a Python traceback,
and never a success with an empty result. Before, a missing or cut-short
trace, a file of another program, an output in a missing directory, a
reversed window, a results directory without a manifest, a bad --filter or
a build directory without benchmarks each gave a traceback, an empty figure
reported as written, or an empty run reported as done.

Usage: tools_errors.py SOURCE_ROOT
"""
import json
import os
import subprocess
import sys
import tempfile

failures = []


def check_refused(what, argv, must_say):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    if proc.returncode == 0:
        failures.append(f"{what}: exit status 0:\n{out}")
    elif "Traceback" in out:
        failures.append(f"{what}: a traceback:\n{out}")
    elif must_say not in out:
        failures.append(f"{what}: the message does not say {must_say!r}:\n{out}")
    else:
        print(f"ok   {what}: {out.strip().splitlines()[-1]}")


def main():
    root = sys.argv[1]
    trace_plot = [sys.executable, os.path.join(root, "tools", "trace_plot")]
    bench_report = [sys.executable, os.path.join(root, "tools", "bench_report")]
    workspan_plot = [sys.executable, os.path.join(root, "tools", "workspan_plot")]
    with tempfile.TemporaryDirectory() as tmp:
        def path(name, text=None):
            p = os.path.join(tmp, name)
            if text is not None:
                with open(p, "w", encoding="utf-8") as f:
                    f.write(text)
            return p

        trace = {"traceEvents": [
            {"name": "thread_name", "ph": "M", "pid": 1, "tid": 0, "args": {"name": "worker 0"}},
            {"name": "task", "ph": "X", "pid": 1, "tid": 0, "ts": 100.0, "dur": 50.0},
            {"name": "parked", "ph": "X", "pid": 1, "tid": 0, "ts": 150.0, "dur": 20.0}]}
        good = path("good.json", json.dumps(trace))
        png = path("out.png")
        check_refused("trace_plot, a missing trace", trace_plot + [path("missing.json"), png], "cannot read")
        check_refused("trace_plot, an empty file", trace_plot + [path("empty.json", ""), png], "not a JSON trace")
        check_refused("trace_plot, a cut-short trace",
                      trace_plot + [path("cut.json", json.dumps(trace)[:60]), png], "not a JSON trace")
        check_refused("trace_plot, another program's JSON",
                      trace_plot + [path("other.json", '{"foo": 1}'), png], "no traceEvents")
        check_refused("trace_plot, a plain array of events",
                      trace_plot + [path("array.json", '[{"ph": "X"}]'), png], "no traceEvents")
        check_refused("trace_plot, a slice without a worker",
                      trace_plot + [path("tid.json", json.dumps({"traceEvents": [
                          {"name": "task", "ph": "X", "pid": 1, "tid": "a", "ts": 1, "dur": 1}]})), png],
                      "integer tid")
        check_refused("trace_plot, no slices",
                      trace_plot + [path("none.json", '{"traceEvents": []}'), png], "no worker slices")
        check_refused("trace_plot, a directory as the trace", trace_plot + [tmp, png], "cannot read")
        check_refused("trace_plot, a reversed window", trace_plot + ["--from", "160", "--to", "120", good, png],
                      "is empty")
        check_refused("trace_plot, a window past the end", trace_plot + ["--from", "1e9", "--to", "2e9", good, png],
                      "misses the trace")
        check_refused("trace_plot, an output in a missing directory",
                      trace_plot + [good, os.path.join(tmp, "no", "such", "out.png")], "no directory")
        if os.path.exists(png):
            failures.append("trace_plot wrote a figure for a refused input")

        no_manifest = os.path.join(tmp, "results-empty")
        os.makedirs(no_manifest)
        check_refused("bench_report report, no manifest",
                      bench_report + ["report", "--results", no_manifest, "--out-dir", path("r1")],
                      "not a results directory")
        check_refused("bench_report report, a missing directory",
                      bench_report + ["report", "--results", path("nowhere"), "--out-dir", path("r2")],
                      "not a results directory")
        broken = os.path.join(tmp, "results-broken")
        os.makedirs(broken)
        path("results-broken/manifest.json", '{"units": [')
        check_refused("bench_report report, a cut-short manifest",
                      bench_report + ["report", "--results", broken, "--out-dir", path("r3")], "not the manifest")
        path("results-broken/manifest.json", "{}")
        check_refused("bench_report compare, a manifest without units", bench_report + ["compare", broken, broken],
                      "no list of units")
        path("results-broken/manifest.json", '{"units": []}')
        check_refused("bench_report report, no results",
                      bench_report + ["report", "--results", broken, "--out-dir", path("r4")], "no benchmark")
        path("results-broken/manifest.json", '{"units": [{"x": 1}]}')
        check_refused("bench_report report, units of another shape",
                      bench_report + ["report", "--results", broken, "--out-dir", path("r5")], "not the manifest")
        check_refused("bench_report run, a build without benchmarks",
                      bench_report + ["run", "--build-dir", path("nobuild"), "--results", path("r6")],
                      "not a build with the benchmarks")
        fake_build = os.path.join(tmp, "build")
        os.makedirs(os.path.join(fake_build, "bench"))
        check_refused("bench_report run, a bad --filter",
                      bench_report + ["run", "--build-dir", fake_build, "--results", path("r7"), "--filter", "("],
                      "not a regular expression")
        check_refused("bench_report run, results over a file",
                      bench_report + ["run", "--build-dir", fake_build, "--results", good], "cannot make")
        check_refused("bench_report run, nothing to run",
                      bench_report + ["run", "--build-dir", fake_build, "--results", path("r8")], "no benchmark")

        check_refused("workspan_plot, an output in a missing directory",
                      workspan_plot + ["--max-workers", "1", "--runs", "1", "--out",
                                       os.path.join(tmp, "no", "out.png"), "--", "/bin/true"], "no directory")
    if failures:
        print("FAIL:\n" + "\n".join(failures))
        return 1
    print("PASS: every mistake refused with one line")
    return 0


if __name__ == "__main__":
    sys.exit(main())
