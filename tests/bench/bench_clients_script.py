#!/usr/bin/env python3
"""Checks of scripts/bench-clients (the real programs' benchmark) that need
no client build: a figure comes only from runs that did what their column
says, and a failed or mis-configured run fails the stage loudly.
  1. its parsers refuse a failed run, a run on another backend or selector,
     a short run, an `ab` report with lost or failed requests, and a
     redis-benchmark run that failed, printed no rate or whose server used
     another backend or served fewer commands than asked; and accept good
     ones;
  2. the stage end to end on stand-in programs (a fake libevent test/bench
     per variant, a fake `evshim run`): a variant whose bench reports
     another backend, exits non-zero or prints no times gets no ratio,
     "failed" in the table and exit status 1; a good one gets its paired
     ratio;
  2b. pinning: a fast pair's native and evshim runs share one CPU and the
     pairs take the usable CPUs in turn; supervised pairs and --no-pin runs
     are not pinned (each stand-in records the CPUs it may run on);
  3. scripts/bench.d/asyncio_pingpong.py natively: with --expect epoll it
     measures; with --expect kqueue (no kqueue select module) it refuses,
     with no result line.
Measures nothing.

usage: bench_clients_script.py SCRIPTS_DIR
"""
import importlib.machinery
import importlib.util
import json
import os
import stat
import subprocess
import sys
import tempfile

scripts = sys.argv[1]
loader = importlib.machinery.SourceFileLoader("bench_clients", os.path.join(scripts, "bench-clients"))
spec = importlib.util.spec_from_loader("bench_clients", loader)
bc = importlib.util.module_from_spec(spec)
loader.exec_module(bc)

problems = []


def refuses(what, fn, *a):
    try:
        fn(*a)
    except bc.BenchError as e:
        print(f"ok   refuses {what}: {e}")
        return
    problems.append(f"accepted {what}")


def accepts(what, want, fn, *a):
    try:
        got = fn(*a)
    except bc.BenchError as e:
        problems.append(f"refused {what}: {e}")
        return
    if got != want:
        problems.append(f"{what}: {got}, expected {want}")
    else:
        print(f"ok   accepts {what}")


# 1. parsers
times = "\n".join(str(100 + i) for i in range(25)) + "\n"
used_kq = "[msg] libevent using: kqueue\n"
accepts("libevent: 25 times on kqueue", 112, bc.parse_libevent, 0, times, used_kq, "kqueue")
refuses("libevent: another backend", bc.parse_libevent, 0, times, "[msg] libevent using: epoll\n", "kqueue")
refuses("libevent: no backend reported", bc.parse_libevent, 0, times, "", "kqueue")
refuses("libevent: exit status 1", bc.parse_libevent, 1, times, used_kq, "kqueue")
refuses("libevent: 24 times", bc.parse_libevent, 0, "\n".join(times.split()[:24]), used_kq, "kqueue")
refuses("libevent: no output", bc.parse_libevent, 0, "", used_kq, "kqueue")

line = json.dumps({"bench": "pair", "selector": "KqueueSelector", "round_trips": 100, "seconds": 0.01,
                   "us_per_round_trip": 100.0})
accepts("asyncio: a kqueue run", 100.0, bc.parse_asyncio, 0, line + "\n", "", "KqueueSelector", "pair", 100)
refuses("asyncio: epoll where kqueue was asked", bc.parse_asyncio, 0, line.replace("Kqueue", "Epoll"), "",
        "KqueueSelector", "pair", 100)
refuses("asyncio: fewer round trips", bc.parse_asyncio, 0, line, "", "KqueueSelector", "pair", 200)
refuses("asyncio: exit status 1", bc.parse_asyncio, 1, line, "boom", "KqueueSelector", "pair", 100)
refuses("asyncio: no result line", bc.parse_asyncio, 0, "", "", "KqueueSelector", "pair", 100)

ab = """Concurrency Level:      32
Time taken for tests:   0.100 seconds
Complete requests:      2000
Failed requests:        0
Keep-Alive requests:    2000
Requests per second:    20000.00 [#/sec] (mean)
"""
accepts("ab: 2000 of 2000", 20000.0, bc.parse_ab, ab, 2000)
refuses("ab: failed requests", bc.parse_ab, ab.replace("Failed requests:        0",
        "Failed requests:        3\n   (Connect: 0, Receive: 0, Length: 3, Exceptions: 0)"), 2000)
refuses("ab: non-2xx answers", bc.parse_ab, ab + "Non-2xx responses:      2000\n", 2000)
refuses("ab: fewer complete", bc.parse_ab, ab, 4000)
refuses("ab: no report", bc.parse_ab, "apr_socket_recv: Connection reset by peer (104)\n", 2000)

csv = ('"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms",'
       '"max_latency_ms"\n"GET","495049.50","1.238","0.264","1.079","2.807","4.015","5.271"\n')
accepts("redis-benchmark: GET row", 495049.5, bc.parse_redis_benchmark, 0, csv, "", "GET")
refuses("redis-benchmark: exit 1", bc.parse_redis_benchmark, 1, csv, "Error: Connection refused", "GET")
refuses("redis-benchmark: no row for the test", bc.parse_redis_benchmark, 0, csv, "", "SET")
refuses("redis-benchmark: a rate of 0", bc.parse_redis_benchmark, 0, csv.replace("495049.50", "0.00"), "", "GET")
info = "# Server\r\nredis_version:7.0.15\r\nmultiplexing_api:evport\r\n# Stats\r\ntotal_commands_processed:50004\r\n"
accepts("redis INFO: evport, all served", 50004, bc.parse_redis_info, info, "evport", 50000)
refuses("redis INFO: another backend", bc.parse_redis_info, info, "kqueue", 50000)
refuses("redis INFO: requests not served", bc.parse_redis_info, info, "evport", 60000)
refuses("redis INFO: no counter", bc.parse_redis_info, info.split("# Stats")[0], "evport", 1)

good = ["server\tnative\t1\t1\t0", "server\tfast\t2\t1\t0", "server\tsupervised\t3\t1\t1",
        "ab\tclose\tnative\t1.fast\t10\t0\t/x", "stop\tnative\t0\t0", "stop\tfast\t0\t0",
        "stop\tsupervised\t0\t0"]
runs, found = bc.parse_nginx(good, ["fast", "supervised"])
if found or runs != {("close", "native", "1.fast"): (10, 0, "/x")}:
    problems.append(f"nginx: good lines: {found}, {runs}")
for what, bad in [("another event method", good[1].replace("\t1\t0", "\t0\t0")),
                  ("a supervised server in fast mode", good[2].replace("\t1\t1", "\t1\t0")),
                  ("a master that exited 1", good[5].replace("\t0\t0", "\t1\t0")),
                  ("alerts in error.log", good[6].replace("\t0\t0", "\t0\t2"))]:
    lines = [bad if x.split("\t")[:2] == bad.split("\t")[:2] else x for x in good]
    _, found = bc.parse_nginx(lines, ["fast", "supervised"])
    (print(f"ok   nginx refuses {what}: {found}") if found else problems.append(f"nginx: accepted {what}"))
_, found = bc.parse_nginx([x for x in good if "supervised" not in x], ["fast", "supervised"])
if not found:
    problems.append("nginx: accepted a server that did not start")


# 2. the stage on stand-in programs
def script(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)


with tempfile.TemporaryDirectory() as tmp:
    work = os.path.join(tmp, "clients")
    script(os.path.join(work, "root", "usr", "bin", "evshim"), '[ "$1" = run ] && shift; [ "$1" = -- ] && shift\n'
           'exec "$@"\n')

    def bench(variant, backend, each, rc=0):
        script(os.path.join(work, "libevent", variant, "test", "bench"),
               f'echo "[msg] libevent using: {backend}" >&2\n'
               f'i=0; while [ $i -lt 25 ]; do echo {each}; i=$((i + 1)); done\nexit {rc}\n')
    bench("native", "epoll", 100)
    bench("kqueue-freebsd", "kqueue", 200)      # good: half native's speed
    bench("evport", "epoll", 100)               # a silent fallback to epoll
    bench("kqueue-openbsd", "kqueue", 100, rc=1)
    script(os.path.join(work, "libevent", "kqueue-dragonfly", "test", "bench"),
           'echo "[msg] libevent using: kqueue" >&2\n')   # no times
    out = os.path.join(tmp, "out")
    p = subprocess.run([sys.executable, os.path.join(scripts, "bench-clients"), "--no-prepare", "--only", "libevent",
                        "--work", work, "--out", out, "--pairs", "3"], capture_output=True, text=True, timeout=120)
    if p.returncode != 1:
        problems.append(f"stand-ins: exit status {p.returncode}, expected 1: {p.stderr[-500:]}")
    if "FAILED" not in p.stderr:
        problems.append(f"stand-ins: no FAILED on stderr: {p.stderr[-500:]}")
    try:
        with open(os.path.join(out, "real-programs.json")) as f:
            rows = {r["case"].split()[0]: r for r in json.load(f)["results"]
                    if r["case"].endswith("-n 100 -a 1 -w 2000")}
        with open(os.path.join(out, "real-programs.md")) as f:
            md = f.read()
    except (OSError, ValueError, KeyError) as e:
        problems.append(f"stand-ins: no results: {e}")
        rows, md = {}, ""
    for v in ("evport", "kqueue-openbsd", "kqueue-dragonfly"):
        for mode in ("fast", "supervised"):
            r = rows.get(v, {}).get(mode, {})
            if "error" not in r or "ratio" in r:
                problems.append(f"stand-ins: {v} {mode}: {r}")
        line = next((x for x in md.splitlines() if f"| {v} -n 100 " in x), "")
        if line.count("| failed ") != 4:
            problems.append(f"stand-ins: {v}: table line {line!r}")
    fb = rows.get("kqueue-freebsd", {})
    for mode in ("fast", "supervised"):
        r = fb.get(mode, {})
        if r.get("ratio") != 0.5 or r.get("pair_ratios") != [0.5] * 3:
            problems.append(f"stand-ins: kqueue-freebsd {mode}: {r}")
    if "| libevent | kqueue-freebsd -n 100 -a 1 -w 2000 | us/run | 100.0 | 200.0 | 0.50 | 200.0 | 0.50 |" not in md:
        problems.append(f"stand-ins: no good kqueue-freebsd line in {md!r}")
    print(p.stdout[-1500:])

    # 2b. Which CPUs each run of a good variant may use.
    cpu_log = os.path.join(tmp, "cpus.log")
    for variant, backend in [("native", "epoll"), ("kqueue-freebsd", "kqueue")]:
        script(os.path.join(work, "libevent", variant, "test", "bench"),
               f'echo "{variant} $(awk \'/^Cpus_allowed_list/ {{print $2}}\' /proc/$$/status)" >> {cpu_log}\n'
               f'echo "[msg] libevent using: {backend}" >&2\n'
               'i=0; while [ $i -lt 25 ]; do echo 100; i=$((i + 1)); done\n')

    def cpu_set(text):
        got = set()
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            got |= set(range(int(lo), int(hi or lo) + 1))
        return got

    usable = sorted(os.sched_getaffinity(0))
    for extra, pinned in [([], True), (["--no-pin"], False)]:
        if os.path.exists(cpu_log):
            os.remove(cpu_log)
        p = subprocess.run([sys.executable, os.path.join(scripts, "bench-clients"), "--no-prepare", "--only",
                            "libevent", "--variants", "kqueue-freebsd", "--work", work, "--out", out, "--pairs",
                            "3", *extra], capture_output=True, text=True, timeout=120)
        try:
            with open(cpu_log) as f:
                seen = [(v, cpu_set(c)) for v, c in (line.split() for line in f)]
        except (OSError, ValueError) as e:
            problems.append(f"pinning {extra}: no record of the runs' CPUs: {e}")
            continue
        # Two cases, each: 3 fast pairs, then 3 supervised pairs (native run first).
        want = []
        for _case in range(2):
            for mode in ("fast", "supervised"):
                for pair in range(3):
                    cpus = {usable[pair % len(usable)]} if pinned and mode == "fast" else set(usable)
                    want += [("native", cpus), ("kqueue-freebsd", cpus)]
        if p.returncode != 0 or seen != want:
            problems.append(f"pinning {extra}: status {p.returncode}, runs on {seen}, expected {want}")
        else:
            print(f"ok   pinning {extra or ''}: {len(seen)} runs on the expected CPUs")

# 3. the asyncio script natively
pingpong = os.path.join(scripts, "bench.d", "asyncio_pingpong.py")
env = {k: v for k, v in os.environ.items() if k not in ("KQ_SELECT_SO", "PYTHONPATH")}
p = subprocess.run([sys.executable, pingpong, "--expect", "epoll", "--pair", "200", "--tcp", "4", "20"],
                   capture_output=True, text=True, timeout=120, env=env)
try:
    got = [json.loads(x) for x in p.stdout.splitlines()]
    assert p.returncode == 0 and [(r["bench"], r["round_trips"], r["selector"]) for r in got] == \
        [("pair", 200, "EpollSelector"), ("tcp 4", 80, "EpollSelector")], got
    print(f"ok   asyncio_pingpong natively: {got}")
except (AssertionError, ValueError, KeyError) as e:
    problems.append(f"asyncio_pingpong --expect epoll: status {p.returncode}, {e}, {p.stderr[-300:]}")
p = subprocess.run([sys.executable, pingpong, "--expect", "kqueue", "--pair", "200"],
                   capture_output=True, text=True, timeout=120, env=env)
if p.returncode == 0 or "{" in p.stdout or "KqueueSelector" not in p.stderr:
    problems.append(f"asyncio_pingpong --expect kqueue natively: status {p.returncode}, {p.stdout!r}, {p.stderr!r}")
else:
    print(f"ok   asyncio_pingpong refuses epoll for kqueue: {p.stderr.strip()}")

for x in problems:
    print(f"FAIL {x}")
print(f"{len(problems)} problem(s)")
sys.exit(1 if problems else 0)
