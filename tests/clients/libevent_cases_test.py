#!/usr/bin/env python3
"""Checks of scripts/lib/libevent_cases.py (the libevent case runner) on a
stand-in `regress`, no libevent build:
  1. a case failing on timing (a named race, RACE_CASES, or a timing
     assertion) is run again alone and counts as a pass when that run
     passes, named in its detail and the unit's summary line;
  2. such a case failing every time is run RERUN_ATTEMPTS more times; a
     named race whose last run fails with its race's assertion counts as
     skipped, with that reason; failing with another assertion, as failed;
  3. any other failure is never run again;
  4. the runs again start only after every unit's first run has ended
     (nothing of the suite beside them).
usage: libevent_cases_test.py SCRIPTS_DIR
"""
import os
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from verdict import Checks, finish  # noqa: E402

scripts = sys.argv[1]
runner = os.path.join(scripts, "lib", "libevent_cases.py")

# The stand-in: tinytest's output for the cases named on its command line.
# Its behaviour per case comes from the file `behaviour` beside it
# (CASE=KIND,...): "ok",
# "fail" (an assertion with no timing in it), "race-once" (the cancel
# stress assertion the first time, then OK), "race-always", "race-other"
# (the race's assertion the first time, another assertion of that case
# every time after: the last run's failure counts), "msec-once" (a
# timing assertion the first time). Every run is logged to $RUNLOG with its
# start and end and the cases it ran; the file `slow` beside it makes a
# full run last that many seconds longer.
FAKE = r'''#!/usr/bin/env python3
import os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
behaviour = dict(kv.split("=") for kv in open(os.path.join(here, "behaviour")).read().strip().split(","))
log = os.environ["RUNLOG"]
if sys.argv[1:] == ["--list-tests"]:
    print("Tests:")
    for c in behaviour:
        print("    " + c)
    sys.exit(0)
cases = sys.argv[1:]
tag = os.path.basename(os.path.dirname(here)) + ("/alone" if len(cases) == 1 else "/all")
with open(log, "a") as f:
    f.write(f"start {tag} {time.monotonic():.6f} {' '.join(cases)}\n")
if len(cases) > 1:
    time.sleep(float(open(os.path.join(here, "slow")).read()))
failed = 0
for c in cases:
    seen = os.path.join(here, c.replace("/", "_") + ".runs")
    n = int(open(seen).read()) + 1 if os.path.exists(seen) else 1
    open(seen, "w").write(str(n))
    kind = behaviour[c]
    short = c.split("/", 1)[1]
    bad = None
    if kind == "fail":
        bad = "FAIL regress_x.c:10: assert(x == 1): 0 vs 1"
    elif kind == "race-always" or (kind in ("race-once", "race-other") and n == 1):
        bad = "FAIL regress_dns.c:2105: assert(gaic_freed != 1000): 1000 vs 1000"
    elif kind == "race-other":
        bad = "FAIL regress_dns.c:2090: assert(server != NULL): 0 vs 1"
    elif kind == "msec-once" and n == 1:
        bad = "FAIL regress_x.c:20: assert(timeval_msec_diff(&a, &b) <= 60): 120 vs 60"
    if bad:
        failed += 1
        print(f"{c}: \n  {bad}\n  [{short} FAILED]")
    else:
        print(f"{c}: OK")
with open(log, "a") as f:
    f.write(f"end {tag} {time.monotonic():.6f}\n")
print(f"{failed}/{len(cases)} TESTS FAILED. (0 skipped)" if failed else f"{len(cases)} tests ok.  (0 skipped)")
sys.exit(1 if failed else 0)
'''

check = Checks()

with tempfile.TemporaryDirectory() as tmp:
    runlog = os.path.join(tmp, "runs.log")
    units = []
    for tag, behaviour, slow in (
            ("a", "dns/getaddrinfo_cancel_stress=race-once,main/plain=fail,"
                  "main/timer=msec-once,main/good=ok", "0"),
            ("b", "dns/getaddrinfo_cancel_stress=race-always,main/good=ok", "1.0"),
            ("c", "dns/getaddrinfo_cancel_stress=race-other,main/good=ok", "0")):
        build = os.path.join(tmp, tag)
        os.makedirs(os.path.join(build, "test"))
        fake = os.path.join(build, "test", "regress")
        with open(fake, "w") as f:
            f.write(FAKE)
        os.chmod(fake, os.stat(fake).st_mode | stat.S_IXUSR)
        with open(os.path.join(build, "test", "behaviour"), "w") as f:
            f.write(behaviour)
        with open(os.path.join(build, "test", "slow"), "w") as f:
            f.write(slow)
        units.append(f"out={tmp}/{tag}.regress,build={build},src={tmp},method=epoll,kind=regress")
    os.environ["RUNLOG"] = runlog
    p = subprocess.run([sys.executable, runner, "--jobs", "2", "--timeout", "20"] + units,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = p.stdout
    check(p.returncode == 0, f"runner exit {p.returncode}: {out}")

    def results(tag):
        got = {}
        with open(f"{tmp}/{tag}.regress") as f:
            for line in f:
                case, verdict, detail = line.rstrip("\n").split("\t", 2)
                got[case] = (verdict, detail)
        return got

    def runs(tag, case):
        path = os.path.join(tmp, tag, "test", case.replace("/", "_") + ".runs")
        return int(open(path).read()) if os.path.exists(path) else 0

    a, b, c = results("a"), results("b"), results("c")
    # 1. a named race, and a timing assertion, passing when run again
    v, d = a.get("regress/dns/getaddrinfo_cancel_stress", ("?", ""))
    check(v == "pass" and "passed when run again alone (attempt 2)" in d and "1000 vs 1000" in d,
          f"race once: {v} {d}")
    check(runs("a", "dns/getaddrinfo_cancel_stress") == 2, "race once: not run exactly twice")
    v, d = a.get("regress/main/timer", ("?", ""))
    check(v == "pass" and "passed when run again alone" in d, f"timing once: {v} {d}")
    check("passed only when run again alone (timing): dns/getaddrinfo_cancel_stress main/timer" in out,
          f"summary line does not name the cases run again: {out}")
    # 2. a race failing every time: 1 + RERUN_ATTEMPTS runs; its race's
    # assertion counted skipped with the reason, another one failed
    v, d = b.get("regress/dns/getaddrinfo_cancel_stress", ("?", ""))
    check(v == "skip" and "the race's outcome" in d and "attempt 3" in d and "1000 vs 1000" in d,
          f"race always: {v} {d}")
    check(runs("b", "dns/getaddrinfo_cancel_stress") == 3, "race always: not run three times")
    check("b.regress: 1 pass, 0 fail, 1 skip" in out, f"unit b's counts: {out}")
    v, d = c.get("regress/dns/getaddrinfo_cancel_stress", ("?", ""))
    check(v == "fail" and "attempt 3" in d and "server != NULL" in d and "first run: " in d,
          f"race case, other assertion at its last run: {v} {d}")
    check(runs("c", "dns/getaddrinfo_cancel_stress") == 3, "race case, other assertion: not run three times")
    # 3. another failure: never again
    v, d = a.get("regress/main/plain", ("?", ""))
    check(v == "fail" and "again" not in d, f"plain failure: {v} {d}")
    check(runs("a", "main/plain") == 1, "plain failure run again")
    # 4. every run alone starts after both units' full runs ended
    ends, alone_starts = [], []
    for line in open(runlog):
        word, tag, t = line.split()[:3]
        if word == "end" and tag.endswith("/all"):
            ends.append(float(t))
        if word == "start" and tag.endswith("/alone"):
            alone_starts.append(float(t))
    check(len(ends) == 3 and len(alone_starts) == 6,
          f"runs: {len(ends)} full, {len(alone_starts)} alone (want 3, 6)")
    check(alone_starts and ends and min(alone_starts) >= max(ends),
          "a case ran again while a unit's full run was still going")

finish("libevent_cases_test", check.problems)
