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


def run(evshim, prog, first, last, steps, supervised):
    """One walk program's output lines and its stderr (the supervisor's faults go there)."""
    env = dict(os.environ, EVSHIM_SUPERVISED="1" if supervised else "0")
    r = subprocess.run([evshim, "run", "--", prog, str(first), str(last), str(steps)], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    mode = "supervised" if supervised else "fast"
    if r.returncode != 0:
        sys.exit(f"mode_diff: {os.path.basename(prog)} ({mode}) exited {r.returncode}: {r.stderr[-2000:]}")
    return r.stdout.splitlines(), r.stderr


def explain(evshim, prog, seed_line, steps, runs):
    """After a difference: each run's stderr, and the differing seed walked
    alone again in both modes, so that a failure says whether it repeats
    (a rule) or not (a race) without a second CI run."""
    for mode, err in runs:
        if err.strip():
            print(f"  {mode} stderr (last 2000 characters):\n{err[-2000:]}")
    if seed_line is None:
        return
    seed = seed_line.split()[1]
    same = 0
    for _ in range(5):
        fast, _ = run(evshim, prog, seed, seed, steps, False)
        supervised, _ = run(evshim, prog, seed, seed, steps, True)
        same += fast == supervised
    print(f"  {seed_line} walked alone again 5 times in both modes: the same output {same} of 5 times")


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
        fast, fast_err = run(evshim, prog, 1, seeds, steps, False)
        supervised, supervised_err = run(evshim, prog, 1, seeds, steps, True)
        events = sum(line.count(marker) for line in fast)
        diff = first_difference(fast, supervised)
        if diff is not None:
            seed, i, a, b = diff
            print(f"mode_diff: {name}: fast and supervised differ at line {i + 1} ({seed}):\n"
                  f"  fast:       {a}\n  supervised: {b}")
            explain(evshim, prog, seed, steps, [("fast", fast_err), ("supervised", supervised_err)])
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
