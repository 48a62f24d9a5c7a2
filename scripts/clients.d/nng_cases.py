#!/usr/bin/env python3
"""Runs nng's ctest tests, each test's own command as ctest would run it,
for several builds and modes at once (docs/clients.md "## nng").

    nng_cases.py --jobs N --durations FILE UNIT...
    UNIT: name=NAME,build=DIR,out=FILE[,run=PREFIX]

Each unit is one nng build directory; its tests are the ones
`ctest --show-only=json-v1` lists there (command, WORKING_DIRECTORY,
TIMEOUT, ENVIRONMENT). PREFIX (words separated by ':') goes in front of
every test command, e.g. `/path/evshim:run:--`: the runner itself puts it
there, so a test cannot run under evshim's column without it.

- A test passes when its command exits 0 (ctest's rule: no test here sets
  WILL_FAIL, PASS_REGULAR_EXPRESSION or SKIP_RETURN_CODE; one that does
  makes the runner stop, so that a new rule is not miscounted).
- Watchdog: a test still running after its TIMEOUT (nng's own per-test
  limit, which ctest applies) times the factor is killed with its whole
  process group and fails ("timeout").
- Tests of the same name never run at the same time (in different units):
  nng's older tests listen on fixed TCP ports (`-p TEST_PORT=13000+`), and
  the newer ones take theirs from one shared NUTS_PORT_FILE. The tests
  named with --serial run one at a time, all units together: nng's
  reqstress and multistress both pick TCP ports from 20000 + 100 *
  (rand() % 100) with srand(time(NULL)) (and IPC paths from the same
  numbers), so two of them started in the same second collide
  ("nng_listen: Address in use", then abort()).
- Longest first, by the durations of the last run (FILE), else by TIMEOUT.
- A test that failed runs again alone, up to --retries times, after all
  the others; it counts by its last attempt, with "passed at attempt N"
  in its detail (scripts/clients.d/nng.sh lists those).
- A race of nng's own threads (RACE_CASES, by name): when the test's last
  attempt fails with exactly that race's assertion and no other, it counts
  as skipped, with the reason in its detail, in every column; any other
  failure of it (another assertion, a crash, a timeout) still fails.

Writes per unit: CASE<TAB>pass|fail|skip<TAB>SECONDS<TAB>DETAIL, and each
test's output to OUT.logs/CASE.log.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time


# Tests whose failure can be a race between nng's own threads, which no
# poller call takes part in: the one assertion that race fails (nng's
# convey output: "File: ...", "Line: N", "Test: EXPR") and why.
RACE_CASES = {
    "nng.pipe": {
        "file": "pipe.c",  # nng's tests directory
        "line": "116",
        "test": "nng_pipe_id(p1) == nng_pipe_id(pull.p)",
        "reason": ("pipe.c:116 compares the next message's pipe with the last one the notify "
                   "callback saw, and the old pipe's NNG_PIPE_EV_REM_POST, on another thread, "
                   "may come after the new pipe's ADD_POST (inproc transport, no poller call; "
                   "fails natively too, docs/clients.md)"),
    },
}
FAILURE = re.compile(r"Assertion Failed.*?File: (\S+)\s+Line: (\d+)\s+Test: ([^\n]*)", re.S)


def race_reason(name, detail, log_path):
    """RACE_CASES' reason when the run that wrote `log_path` failed with its
    race's assertion alone (an exit, not a signal or a timeout), else None."""
    race = RACE_CASES.get(name)
    if race is None or not detail.startswith("exit "):
        return None
    try:
        with open(log_path, errors="replace") as f:
            failures = FAILURE.findall(f.read())
    except OSError:
        return None
    if len(failures) != 1:
        return None
    path, line, test = failures[0]
    if os.path.basename(path) != race["file"] or line != race["line"] or test.strip() != race["test"]:
        return None
    return race["reason"]


def parse_unit(text):
    unit = dict(kv.split("=", 1) for kv in text.split(","))
    unit["run"] = [w for w in unit.get("run", "").split(":") if w]
    return unit


def load_tests(build):
    out = subprocess.run(["ctest", "--show-only=json-v1"], cwd=build, check=True,
                         capture_output=True, text=True).stdout
    tests = []
    for t in json.loads(out)["tests"]:
        props = {p["name"]: p["value"] for p in t.get("properties", [])}
        for unknown in ("WILL_FAIL", "PASS_REGULAR_EXPRESSION", "FAIL_REGULAR_EXPRESSION",
                        "SKIP_RETURN_CODE", "SKIP_REGULAR_EXPRESSION", "DISABLED"):
            if unknown in props:
                sys.exit(f"nng_cases: {t['name']} has {unknown}: not counted by this runner")
        if "command" not in t:
            sys.exit(f"nng_cases: {t['name']} has no command (not built?)")
        env = {}
        for item in props.get("ENVIRONMENT", []):
            k, v = item.split("=", 1)
            env[k] = v
        tests.append({"name": t["name"], "command": t["command"],
                      "cwd": props.get("WORKING_DIRECTORY", build),
                      "timeout": float(props.get("TIMEOUT", 1500)), "env": env})
    return tests


def run_alone(unit, t, args, attempt):
    env = dict(os.environ)
    env.update(t["env"])
    env["NUTS_PORT_FILE"] = args.port_file
    path = os.path.join(unit["out"] + ".logs", f"{t['name']}.attempt{attempt}.log")
    cmd = unit["run"] + t["command"]
    with open(path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=t["cwd"], env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=t["timeout"] * args.timeout_factor)
            detail = "" if rc == 0 else (f"exit {rc}" if rc > 0 else f"killed by signal {-rc}")
        except subprocess.TimeoutExpired:
            rc = None
            detail = f"timeout after {t['timeout'] * args.timeout_factor:.0f} s"
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        elapsed = time.monotonic() - start
        status = "pass" if rc == 0 else "fail"
        log.write(f"\n# {status} {elapsed:.2f} s {detail}\n")
    return status, elapsed, detail


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout-factor", type=float, default=1.0)
    ap.add_argument("--durations", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--retries", type=int, default=0)
    ap.add_argument("--serial", default="", help="test names run one at a time (comma-separated)")
    ap.add_argument("units", nargs="+")
    args = ap.parse_args()

    last = {}
    if os.path.exists(args.durations):
        for line in open(args.durations):
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 2:
                last[parts[0]] = float(parts[1])

    jobs = []
    for text in args.units:
        unit = parse_unit(text)
        os.makedirs(unit["out"] + ".logs", exist_ok=True)
        unit["results"] = []
        for t in load_tests(unit["build"]):
            jobs.append((unit, t))
    jobs.sort(key=lambda j: -last.get(f"{j[0]['name']}/{j[1]['name']}", j[1]["timeout"] / 10))

    serial = set(n for n in args.serial.split(",") if n)

    def key(t):
        return " serial" if t["name"] in serial else t["name"]

    running = {}  # pid -> (unit, test, proc, start, log)
    busy = set()
    pending = list(jobs)
    while pending or running:
        started = True
        while started and len(running) < args.jobs:
            started = False
            for i, (unit, t) in enumerate(pending):
                if key(t) in busy:
                    continue
                del pending[i]
                env = dict(os.environ)
                env.update(t["env"])
                env["NUTS_PORT_FILE"] = args.port_file
                log = open(os.path.join(unit["out"] + ".logs", t["name"] + ".log"), "w")
                cmd = unit["run"] + t["command"]
                log.write("$ " + " ".join(cmd) + "\n")
                log.flush()
                proc = subprocess.Popen(cmd, cwd=t["cwd"], env=env, stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
                running[proc.pid] = (unit, t, proc, time.monotonic(), log)
                busy.add(key(t))
                started = True
                break
        time.sleep(0.05)
        now = time.monotonic()
        for pid, (unit, t, proc, start, log) in list(running.items()):
            rc = proc.poll()
            elapsed = now - start
            detail = ""
            if rc is None:
                if elapsed < t["timeout"] * args.timeout_factor:
                    continue
                detail = f"timeout after {elapsed:.0f} s"
                status = "fail"
            else:
                status = "pass" if rc == 0 else "fail"
                if rc != 0:
                    detail = f"exit {rc}" if rc > 0 else f"killed by signal {-rc}"
            # The test's process group goes, whatever is left of it.
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            log.write(f"\n# {status} {elapsed:.2f} s {detail}\n")
            log.close()
            unit["results"].append((t["name"], status, elapsed, detail))
            del running[pid]
            busy.discard(key(t))
            if status == "fail":
                print(f"nng_cases: {unit['name']}: {t['name']} failed ({detail})", file=sys.stderr)

    # A failed test runs again, alone (nothing else running), up to
    # --retries times; it counts by its last attempt, and its detail says
    # so ("passed at attempt N"), so a test that needed it is listed.
    for unit, t in jobs:
        results = unit["results"]
        idx = next(i for i, r in enumerate(results) if r[0] == t["name"])
        attempt = 1
        first = results[idx][3]
        last_detail = first  # the last run's own detail, without the history
        last_log = os.path.join(unit["out"] + ".logs", t["name"] + ".log")
        while results[idx][1] == "fail" and attempt <= args.retries:
            attempt += 1
            status, elapsed, last_detail = run_alone(unit, t, args, attempt)
            last_log = os.path.join(unit["out"] + ".logs", f"{t['name']}.attempt{attempt}.log")
            if status == "pass":
                detail = f"passed at attempt {attempt} (first: {first})"
            else:
                detail = f"attempt {attempt}: {last_detail} (first: {first})"
            results[idx] = (t["name"], status, elapsed, detail)
            print(f"nng_cases: {unit['name']}: {t['name']} attempt {attempt}: {status}",
                  file=sys.stderr)
        if results[idx][1] == "fail":
            reason = race_reason(t["name"], last_detail, last_log)
            if reason is not None:
                name, _, elapsed, detail = results[idx]
                results[idx] = (name, "skip", elapsed, f"the race's outcome, not the backend's ({reason}): {detail}")
                print(f"nng_cases: {unit['name']}: {name}: counted skipped: its race's assertion", file=sys.stderr)

    seen = set()
    with open(args.durations + ".new", "w") as d:
        for unit, _ in jobs:
            if id(unit) in seen:
                continue
            seen.add(id(unit))
            with open(unit["out"], "w") as f:
                for name, status, elapsed, detail in sorted(unit["results"]):
                    f.write(f"{name}\t{status}\t{elapsed:.2f}\t{detail}\n")
                    d.write(f"{unit['name']}/{name}\t{elapsed:.2f}\n")
    os.replace(args.durations + ".new", args.durations)


if __name__ == "__main__":
    main()
