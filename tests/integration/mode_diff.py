#!/usr/bin/env python3
"""Both paths, one answer (docs/design.md "Both paths, one answer").

Runs each random-walk program (testbins/port_diff.c, testbins/kq_diff.c
for the three kqueue personalities) over the same seeds under `evshim run`
in fast mode and supervised, and requires the same output line for line:
every call's result, errno and returned events, in order. The two paths
share the emulation core; what differs is the host under it (in-process
watches, kept identity answers, looks skipped where nothing could be
queued, closes reported by number) against the supervisor's, so a
difference is a fast-path (or supervisor) bug. A failure names the
program, the seed and the first differing step; rerun one seed with
`evshim run [--supervised] -- build/testbins/PROG SEED SEED STEPS`.

usage: mode_diff.py EVSHIM TESTBIN_DIR [SEEDS [STEPS]]
"""
import os
import subprocess
import sys

PROGRAMS = [
    # (program, the returned-event marker, how many events a run must show at least)
    ("port_diff", "[fd ", 2000),
    ("kq_diff_freebsd", "[read ", 2000),
    ("kq_diff_openbsd", "[read ", 2000),
    ("kq_diff_dragonfly", "[read ", 2000),
]


def run(evshim, prog, seeds, steps, supervised):
    env = dict(os.environ, EVSHIM_SUPERVISED="1" if supervised else "0")
    r = subprocess.run([evshim, "run", "--", prog, "1", str(seeds), str(steps)], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    mode = "supervised" if supervised else "fast"
    if r.returncode != 0:
        sys.exit(f"mode_diff: {os.path.basename(prog)} ({mode}) exited {r.returncode}: {r.stderr[-2000:]}")
    return r.stdout.splitlines()


def first_difference(fast, supervised):
    seed = None
    for i, (a, b) in enumerate(zip(fast, supervised)):
        if a.startswith("seed "):
            seed = a
        if a != b:
            return seed, i, a, b
    if len(fast) != len(supervised):
        n = min(len(fast), len(supervised))
        return seed, n, fast[n] if n < len(fast) else "(end)", supervised[n] if n < len(supervised) else "(end)"
    return None


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    evshim, testbins = sys.argv[1], sys.argv[2]
    seeds = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    steps = int(sys.argv[4]) if len(sys.argv) > 4 else 300
    failed = False
    for name, marker, least in PROGRAMS:
        prog = os.path.join(testbins, name)
        fast = run(evshim, prog, seeds, steps, False)
        supervised = run(evshim, prog, seeds, steps, True)
        events = sum(line.count(marker) for line in fast)
        diff = first_difference(fast, supervised)
        if diff is not None:
            seed, i, a, b = diff
            print(f"mode_diff: {name}: fast and supervised differ at line {i + 1} ({seed}):\n"
                  f"  fast:       {a}\n  supervised: {b}")
            failed = True
        elif events < least:
            # A walk that returns almost no event compares nothing.
            print(f"mode_diff: {name}: only {events} '{marker.strip()}' events in {seeds} walks (at least {least})")
            failed = True
        else:
            print(f"mode_diff: {name}: {seeds} walks of {steps} steps, {len(fast)} lines, "
                  f"{events} '{marker.strip()}' events: the same in both modes")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
