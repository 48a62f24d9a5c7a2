#!/usr/bin/env python3
"""The nng case runner's verdicts on stand-ins (scripts/clients.d/nng_cases.py):
  1. a RACE_CASES test whose last attempt fails with its race's assertion
     alone counts as skipped, with the reason, after 1 + --retries runs;
  2. the same test failing at its last attempt with another assertion, or
     with its race's assertion beside another, or killed by a signal, fails;
  3. a failure that passes when run again passes ("passed at attempt 2");
  4. a plain failure of a test that is not a race fails.
The stand-in `ctest` lists each unit's tests; the stand-in test prints
nng's convey output for the behaviour its unit's file gives it."""
import os
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from verdict import Checks, finish  # noqa: E402

scripts = sys.argv[1]
runner = os.path.join(scripts, "clients.d", "nng_cases.py")

CTEST = r'''#!/usr/bin/env python3
import json, os
here = os.getcwd()
tests = []
for name in open(os.path.join(here, "behaviour")).read().split(",")[::1]:
    case = name.split("=")[0]
    tests.append({"name": case, "command": [os.path.join(here, "fake_test"), case],
                  "properties": [{"name": "WORKING_DIRECTORY", "value": here},
                                 {"name": "TIMEOUT", "value": "20"}]})
print(json.dumps({"tests": tests}))
'''

# Kinds: ok, race (pipe.c:116 every run), race-then-other (race first, then
# another assertion), race-and-other (both assertions in one run), race-kill
# (the race's output, then killed by SIGKILL), plain (another test's
# assertion every run), plain-once (fails once, then passes).
FAKE = r'''#!/usr/bin/env python3
import os, sys
here = os.getcwd()
case = sys.argv[1]
kind = dict(kv.split("=") for kv in open(os.path.join(here, "behaviour")).read().strip().split(","))[case]
seen = os.path.join(here, case + ".runs")
n = int(open(seen).read()) + 1 if os.path.exists(seen) else 1
open(seen, "w").write(str(n))
RACE = "  * Assertion Failed (They still exchange frames)\n  File: /src/nng/tests/pipe.c\n  Line: 116\n  Test: nng_pipe_id(p1) == nng_pipe_id(pull.p)\n"
OTHER = "  * Assertion Failed (We can send a frame)\n  File: /src/nng/tests/pipe.c\n  Line: 98\n  Test: nng_sendmsg(push.s, msg, 0) == 0\n"
fails = {"ok": [], "race": [RACE], "race-then-other": [RACE] if n == 1 else [OTHER],
         "race-and-other": [RACE, OTHER], "race-kill": [RACE], "plain": [OTHER],
         "plain-once": [OTHER] if n == 1 else []}[kind]
print("=== RUN: Pipe notify works")
if not fails:
    print("--- PASS: Pipe notify works")
    sys.exit(0)
print("\nFailures:\n\n" + "\n".join(fails))
print("--- FAIL: Pipe notify works")
sys.stdout.flush()
if kind == "race-kill":
    os.kill(os.getpid(), 9)
sys.exit(2)
'''

check = Checks()

with tempfile.TemporaryDirectory() as tmp:
    bindir = os.path.join(tmp, "bin")
    os.makedirs(bindir)
    for path, text in ((os.path.join(bindir, "ctest"), CTEST),):
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    units = []
    for tag, behaviour in (("a", "nng.pipe=race,nng.other=plain-once,nng.plain=plain"),
                           ("b", "nng.pipe=race-then-other"),
                           ("c", "nng.pipe=race-and-other"),
                           ("d", "nng.pipe=race-kill"),
                           ("e", "nng.pipe=ok")):
        build = os.path.join(tmp, tag)
        os.makedirs(build)
        with open(os.path.join(build, "behaviour"), "w") as f:
            f.write(behaviour)
        fake = os.path.join(build, "fake_test")
        with open(fake, "w") as f:
            f.write(FAKE)
        os.chmod(fake, os.stat(fake).st_mode | stat.S_IXUSR)
        units.append(f"name={tag},build={build},out={tmp}/{tag}.tsv")
    env = dict(os.environ)
    env["PATH"] = bindir + os.pathsep + env["PATH"]
    p = subprocess.run([sys.executable, runner, "--jobs", "2", "--retries", "2",
                        "--durations", os.path.join(tmp, "durations.tsv"),
                        "--port-file", os.path.join(tmp, "ports")] + units,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    check(p.returncode == 0, f"runner exit {p.returncode}: {p.stdout}")

    def result(tag, case):
        with open(f"{tmp}/{tag}.tsv") as f:
            for line in f:
                name, status, _, detail = line.rstrip("\n").split("\t", 3)
                if name == case:
                    return status, detail
        return "?", ""

    def runs(tag, case):
        path = os.path.join(tmp, tag, case + ".runs")
        return int(open(path).read()) if os.path.exists(path) else 0

    v, d = result("a", "nng.pipe")
    check(v == "skip" and "the race's outcome" in d and "pipe.c:116" in d and "attempt 3" in d,
          f"race always: {v} {d}")
    check(runs("a", "nng.pipe") == 3, f"race always: {runs('a', 'nng.pipe')} runs, not 3")
    v, d = result("a", "nng.other")
    check(v == "pass" and d.startswith("passed at attempt 2"), f"fails once: {v} {d}")
    v, d = result("a", "nng.plain")
    check(v == "fail", f"plain failure of a test not named: {v} {d}")
    v, d = result("b", "nng.pipe")
    check(v == "fail" and "attempt 3" in d, f"race, then another assertion at the last run: {v} {d}")
    v, d = result("c", "nng.pipe")
    check(v == "fail", f"the race's assertion beside another: {v} {d}")
    v, d = result("d", "nng.pipe")
    check(v == "fail" and "signal" in d, f"the race's output, then a signal: {v} {d}")
    v, d = result("e", "nng.pipe")
    check(v == "pass" and d == "", f"passing: {v} {d}")

finish("nng_cases_test", check.problems)
