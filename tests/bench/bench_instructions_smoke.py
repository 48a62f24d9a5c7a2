#!/usr/bin/env python3
"""Smoke test of scripts/bench-instructions (docs/performance.md
"Instructions per operation"): on small operation counts it exits 0,
prints the markdown table with a figure for each case and bench, and
writes the same figures as JSON, each a positive count; a large count not
above the small one is refused. It checks the script, not the figures
(those are the doc's). Exit 77 (skip) only without valgrind.

usage: bench_instructions_smoke.py SCRIPT BUILD_DIR
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

script, build = sys.argv[1], sys.argv[2]
if shutil.which("valgrind") is None:
    print("skip: valgrind is not installed (scripts/setup installs it)")
    sys.exit(77)

failed = 0
with tempfile.TemporaryDirectory() as tmp:
    out_json = os.path.join(tmp, "figures.json")
    r = subprocess.run([script, "--build", build, "--ops", "600", "--small", "300", "--json", out_json],
                       capture_output=True, text=True, timeout=600)
    rows = [l for l in r.stdout.splitlines() if l.startswith("| `")]
    ok = r.returncode == 0 and len(rows) == 2 and all(len(l.strip("|").split("|")) == 4 for l in rows)
    figures = {}
    if ok:
        with open(out_json) as f:
            figures = json.load(f).get("build", {})
        ok = len(figures) == 6 and all(v > 0 for v in figures.values())
    print(f"{'ok  ' if ok else 'FAIL'} bench-instructions: the table and {len(figures)} figures")
    if not ok:
        print(f"     status {r.returncode}\n     stdout {r.stdout.strip()}\n     stderr {r.stderr.strip()[-2000:]}")
        failed += 1

r = subprocess.run([script, "--build", build, "--ops", "100", "--small", "100"], capture_output=True, text=True,
                   timeout=60)
ok = r.returncode != 0 and "must be above" in r.stderr
print(f"{'ok  ' if ok else 'FAIL'} bench-instructions refuses --ops not above --small")
if not ok:
    failed += 1
sys.exit(1 if failed else 0)
