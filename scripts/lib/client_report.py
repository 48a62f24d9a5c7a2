#!/usr/bin/env python3
"""Turns a client's per-case results (under evshim and native) into a JUnit
file and one summary line.

Input lines: CASE<TAB>EVSHIM<TAB>NATIVE, statuses pass / fail / skip.
A case counts as
  passed   when it passes under evshim;
  failed   when it fails under evshim and passes natively (or has no native
           result);
  skipped  when it fails under evshim and natively too ("fails natively
           too": discounted, listed by name), or when the client itself
           skipped it under evshim (listed with the native status).
"""
import sys
import xml.etree.ElementTree as ET
from xml.sax.saxutils import quoteattr

name, results_path, logs = sys.argv[1:4]
cases = []
with open(results_path) as f:
    for line in f:
        line = line.rstrip("\n")
        if not line.strip():
            continue
        parts = line.split("\t")
        case, ev = parts[0], parts[1]
        nat = parts[2] if len(parts) > 2 and parts[2] else "none"
        cases.append((case, ev, nat))

passed = failed = skipped = 0
nat_passed = nat_failed = 0
failed_names, discounted, skipped_names = [], [], []
rows = []
for case, ev, nat in cases:
    nat_passed += nat == "pass"
    nat_failed += nat == "fail"
    if ev == "pass":
        passed += 1
        rows.append((case, None))
    elif ev == "skip":
        skipped += 1
        skipped_names.append(f"{case} (native: {nat})")
        rows.append((case, ("skipped", f"skipped by the client under evshim (native: {nat})")))
    elif nat == "fail":
        skipped += 1
        discounted.append(case)
        rows.append((case, ("skipped", "fails natively too")))
    else:
        failed += 1
        failed_names.append(case)
        rows.append((case, ("failure", f"fails under evshim (native: {nat})")))

with open(f"{logs}/{name}.junit.xml", "w") as out:
    out.write('<?xml version="1.0" encoding="utf-8"?>\n<testsuites>\n')
    out.write(f'<testsuite name={quoteattr("clients-" + name)} tests="{len(rows)}">\n')
    for case, result in rows:
        out.write(f'  <testcase classname={quoteattr("clients." + name)} name={quoteattr(case)}>')
        if result:
            out.write(f'<{result[0]} message={quoteattr(result[1])}/>')
        out.write("</testcase>\n")
    out.write("</testsuite>\n</testsuites>\n")

line = (f"clients: {name}: {passed} passed, {failed} failed, {skipped} skipped "
        f"(native: {nat_passed} passed, {nat_failed} failed)")
detail = []
if failed_names:
    detail.append("  failed under evshim: " + " ".join(failed_names))
if discounted:
    detail.append("  fail natively too (discounted): " + " ".join(discounted))
if skipped_names:
    detail.append("  skipped under evshim: " + " ".join(skipped_names))
with open(f"{logs}/{name}.summary", "w") as out:
    out.write(line + "\n" + "".join(d + "\n" for d in detail))
print(line)
for d in detail:
    print(d)
sys.exit(1 if failed or not rows else 0)
