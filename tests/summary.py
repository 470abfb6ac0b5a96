#!/usr/bin/env python3
"""Adds up xunit reports into one closing line: 'N passed, N failed, N skipped'.
A missing or unreadable report counts as a failure: a suite that did not run
must not look green. Exits non-zero when anything failed."""
import os
import sys
import xml.etree.ElementTree as ET

passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except Exception as e:  # noqa: BLE001 - any unreadable report is a failure
        print(f"{path}: no readable report ({e})")
        failed += 1
        continue
    cases = root.iter("testcase")
    count = 0
    for case in cases:
        count += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
            print(f"FAILED: {path.split('/')[-2]}: {case.get('classname')}.{case.get('name')}")
        elif case.find("skipped") is not None:
            skipped += 1
            print(f"SKIPPED: {path.split('/')[-2]}: {case.get('classname')}.{case.get('name')}")
        else:
            passed += 1
    if count == 0:
        print(f"{path}: ran no test")
        failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
# Under CI a skipped sandbox test is a missing layer, not a pass.
ci_skip = skipped and os.environ.get("CI") == "true"
if ci_skip:
    print("CI=true: skipped tests count as failures")
sys.exit(1 if failed or ci_skip else 0)
