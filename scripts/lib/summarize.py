#!/usr/bin/env python3
"""Counts test cases in meson's JUnit logs and prints 'N passed, N failed'.

The failed cases are named first, one line each ("failed: SUITE NAME",
at most MAX_NAMED of them), right above the count: a CI record that keeps
only the end of the output still says which cases failed."""
import sys
import xml.etree.ElementTree as ET

MAX_NAMED = 40

passed = failed = skipped = 0
failures = []
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        print(f"summarize: cannot read {path}: {e}", file=sys.stderr)
        failed += 1
        failures.append(f"{path} (unreadable)")
        continue
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
            failures.append(f"{case.get('classname', '?')} {case.get('name', '?')}")
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
for name in failures[:MAX_NAMED]:
    print(f"failed: {name}")
if len(failures) > MAX_NAMED:
    print(f"failed: ... and {len(failures) - MAX_NAMED} more")
line = f"{passed} passed, {failed} failed"
if skipped:
    line += f", {skipped} skipped"
print(line)
sys.exit(1 if failed or passed == 0 else 0)
