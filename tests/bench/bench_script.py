#!/usr/bin/env python3
"""Smoke test of scripts/bench itself (issue 15): a tiny run (--quick,
100 operations per supervised run, ten times as many native and fast) into a
temporary directory must end with status 0 and write both tables, and every
speed row must carry its cpu figure: positive microseconds of cpu per
operation, and for the evshim rows a positive paired cpu ratio against epoll,
also in the "CPU per operation" table of results.md; and the five ceiling rows
(native programs with the foreign rules' extra call: fdwait, and the two loops
alone and under `evshim run`'s filter) in their own table.
Measures nothing.

usage: bench_script.py SCRIPTS_BENCH BUILD_DIR
"""
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

bench, build = sys.argv[1], sys.argv[2]
SPEED = ("latency", "loop", "threads", "procs")
problems = []

with tempfile.TemporaryDirectory() as out:
    run = subprocess.run([sys.executable, bench, "--build", build, "--quick", "--iterations", "100",
                          "--out", out], capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        problems.append(f"status {run.returncode}: {run.stderr.strip()[-2000:]}")
    try:
        with open(os.path.join(out, "results.json")) as f:
            rows = json.load(f)["results"]
        with open(os.path.join(out, "results.md")) as f:
            md = f.read()
    except (OSError, ValueError, KeyError) as e:
        print(run.stdout[-3000:])
        print(f"FAIL no results: {e}; {problems}")
        sys.exit(1)

speed = [r for r in rows if r["kind"] in SPEED]
if not speed:
    problems.append("no speed rows")
for r in speed:
    name = f"{r['api']} {r['group']} {r['mode']}"
    if "error" in r:
        problems.append(f"{name}: {r['error']}")
        continue
    if not r.get("cpu_us_per_op", 0) > 0 or len(r.get("cpu_runs", [])) != 1:
        problems.append(f"{name}: cpu_us_per_op {r.get('cpu_us_per_op')}, cpu_runs {r.get('cpu_runs')}")
    if r["api"] != "epoll" and not r.get("cpu_ratio_to_epoll", 0) > 0:
        problems.append(f"{name}: cpu_ratio_to_epoll {r.get('cpu_ratio_to_epoll')}")
for r in rows:
    if r["kind"].startswith("memory") and "cpu_us_per_op" in r:
        problems.append(f"{r['api']} {r['group']} {r['mode']}: a cpu figure on a memory row")

# The cpu table: one line per evshim speed figure, every cell a positive
# number except the fast cells of the supervised-only rows.
lines = md.splitlines()
head = "| benchmark | epoll us | fast us | fast / epoll | supervised us | supervised / epoll |"
if head not in lines:
    problems.append("results.md: no cpu table")
else:
    table = []
    for line in lines[lines.index(head) + 2:]:
        if not line.startswith("|"):
            break
        table.append([c.strip() for c in line.strip("|").split("|")])
    expect = {f"{r['api']} {r['group']}" for r in speed if r["api"] != "epoll"}
    if {row[0] for row in table} != expect or len(table) != len(expect):
        problems.append(f"cpu table rows {sorted(row[0] for row in table)}, expected {sorted(expect)}")
    for row in table:
        cells = row[1:] if "(no sync wake-up)" not in row[0] else [row[1], row[4], row[5]]
        try:
            if not all(float(c) > 0 for c in cells):
                problems.append(f"cpu table: {row}")
        except ValueError:
            problems.append(f"cpu table: {row}")

# The ceilings (docs/performance.md "The ceiling of the loop goal"): both
# native programs measured, alone and under evshim's filter, paired against
# the plain epoll program, in their table.
ceilings = [r for r in rows if r["kind"] == "ceiling"]
if len(ceilings) != 5:
    problems.append(f"{len(ceilings)} ceiling rows, expected 5")
if sum("under evshim's filter" in r["api"] for r in ceilings) != 2:
    problems.append("expected two ceiling rows under evshim's filter")
for r in ceilings:
    if "error" in r or not r.get("ratio_to_epoll", 0) > 0 or not r.get("cpu_ratio_to_epoll", 0) > 0:
        problems.append(f"ceiling {r['api']}: {r.get('error') or r.get('ratio_to_epoll')}")
    elif not any(line.startswith(f"| {r['api']} {r['group']} |") for line in lines):
        problems.append(f"results.md: no ceiling line for {r['api']}")

# Pinning (docs/performance.md "Pinned pairs (session 26)"): the
# single-threaded rows' native and fast runs carry "pinned", nothing else
# does; and a run given a CPU runs its tree on that CPU alone.
SINGLE = {("latency", "user"), ("latency", "fdwait"), ("ceiling", "loop 100"), ("ceiling", "fdwait")}
for r in rows:
    single = (r["kind"], r["group"]) in SINGLE or r["kind"] == "loop"
    want = single and r["mode"] != "supervised"
    if bool(r.get("pinned")) != want:
        problems.append(f"{r['api']} {r['group']} {r['mode']}: pinned {r.get('pinned')}, expected {want}")
loader = importlib.machinery.SourceFileLoader("bench_script_under_test", bench)
module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
loader.exec_module(module)
probe = [sys.executable, "-c", "import json, os; "
         "print(json.dumps({'value': sorted(os.sched_getaffinity(0)), 'unit': 'cpus'}))"]
last_cpu = max(os.sched_getaffinity(0))
got = module.run(probe, cpu=last_cpu)[0][-1]["value"]
if got != [last_cpu]:
    problems.append(f"a run pinned to CPU {last_cpu} ran on {got}")
if module.run(probe)[0][-1]["value"] != sorted(os.sched_getaffinity(0)):
    problems.append("an unpinned run was pinned")

for p in problems:
    print(f"FAIL {p}")
print(f"{len(speed)} speed rows, {len(problems)} problem(s)")
sys.exit(1 if problems else 0)
