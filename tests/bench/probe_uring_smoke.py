#!/usr/bin/env python3
"""Smoke test of the io_uring research probe (testbins/bench/probe_uring.c,
docs/design.md "A look without a system call"): each mode exits 0 and prints
JSON lines of the expected shape. It checks the program, not the kernel's
answers (those are the doc's findings). Exit 77 (skip) only when the probe
says io_uring cannot be set up here, with its reason.

usage: probe_uring_smoke.py PROBE
"""
import json
import subprocess
import sys

probe = sys.argv[1]
failed = 0


def run(args, expect_lines, check):
    global failed
    out = subprocess.run([probe, *args], capture_output=True, text=True, timeout=120)
    if out.returncode == 77:
        print(f"skip: {' '.join(args)}: {out.stderr.strip()}")
        sys.exit(77)
    ok = out.returncode == 0
    lines = []
    try:
        lines = [json.loads(l) for l in out.stdout.splitlines()]
    except json.JSONDecodeError as e:
        ok = False
        print(f"     not JSON: {e}")
    ok = ok and len(lines) == expect_lines and all(check(l) for l in lines)
    print(f"{'ok  ' if ok else 'FAIL'} probe_uring {' '.join(args)}")
    if not ok:
        print(f"     status {out.returncode}\n     stdout {out.stdout.strip()}\n     stderr {out.stderr.strip()}")
        failed += 1


found_keys = ["at_look", "after_taskrun_enter", "after_enter_flag_clear", "after_spin_20ms", "after_wait",
              "not_in_100ms"]


def order_line(l):
    if l.get("probe") != "order" or "case" not in l or "setup" not in l:
        return False
    if "error" in l:  # a setup flag this kernel does not know
        return True
    return l["trials"] > 0 and sum(l[k] for k in found_keys) == l["trials"]


# 4 setups x 5 cases
run(["order", "20"], 20, order_line)
run(["rearm"], 1, lambda l: l.get("probe") == "rearm" and "completions_for_5_writes_unread" in l)
run(["close"], 1, lambda l: l.get("probe") == "close" and "peer_sees_hangup_while_poll_armed" in l)
for setup in ("none", "taskrun", "defer"):
    for arm in ("multishot", "oneshot", "levelcheck"):
        run(["loop", "10", "300", setup, arm], 1,
            lambda l: l.get("api") == "uring-probe" and l.get("bench") == "loop" and l["param"] == 10
            and l["value"] > 0)
for arm in ("rearm", "level"):
    run(["ctlwait", "10", "300", arm], 1,
        lambda l, arm=arm: (l.get("probe") == "ctlwait" and l.get("arm") == arm and l.get("error") == "EINVAL")
        or (l.get("api") == "uring-probe" and l.get("bench") == "ctlwait-" + arm and l["param"] == 10
            and l["value"] > 0))
sys.exit(1 if failed else 0)
