#!/usr/bin/env python3
"""Checks of scripts/lib/summarize.py (the count every CI phase ends with):
the failed cases are named right above the count line, at most 40 of them,
so the end of a CI record says which ones failed; the count and the exit
status are as before.
usage: summarize_test.py SCRIPTS_DIR
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from verdict import finish  # noqa: E402

summarize = os.path.join(sys.argv[1], "lib", "summarize.py")
problems = []


def junit(path, cases):
    with open(path, "w") as f:
        f.write('<?xml version="1.0"?>\n<testsuites><testsuite name="s">\n')
        for classname, name, kind in cases:
            inner = {"pass": "", "fail": '<failure message="x"/>', "skip": "<skipped/>"}[kind]
            f.write(f'<testcase classname="{classname}" name="{name}">{inner}</testcase>\n')
        f.write("</testsuite></testsuites>\n")


def run(*paths):
    p = subprocess.run([sys.executable, summarize, *paths], stdout=subprocess.PIPE, text=True)
    return p.returncode, p.stdout.splitlines()


with tempfile.TemporaryDirectory() as tmp:
    one, two = os.path.join(tmp, "one.xml"), os.path.join(tmp, "two.xml")
    junit(one, [("clients.libevent-evport", "regress/dns/getaddrinfo_cancel_stress", "fail"),
                ("clients.libevent-evport", "regress/main/good", "pass")])
    junit(two, [("unit", "stand_in_skipped", "skip"), ("unit", "stand_in_passed", "pass")])
    status, lines = run(one, two)
    if status != 1 or lines != ["failed: clients.libevent-evport regress/dns/getaddrinfo_cancel_stress",
                                "2 passed, 1 failed, 1 skipped"]:
        problems.append(f"one failure: exit {status}, {lines}")
    status, lines = run(two)
    if status != 0 or lines != ["1 passed, 0 failed, 1 skipped"]:
        problems.append(f"no failure: exit {status}, {lines}")
    many = os.path.join(tmp, "many.xml")
    junit(many, [("c", f"case{i}", "fail") for i in range(45)])
    status, lines = run(many)
    named = [l for l in lines if l.startswith("failed: c case")]
    if status != 1 or len(named) != 40 or lines[-2:] != ["failed: ... and 5 more", "0 passed, 45 failed"]:
        problems.append(f"45 failures: exit {status}, {len(named)} named, last {lines[-2:]}")

finish("summarize_test", problems)
