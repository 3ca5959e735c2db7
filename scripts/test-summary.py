#!/usr/bin/env python3
"""Sum meson test results over build directories: prints 'N passed, N failed'.

Skipped tests (exit 77) are reported separately and count as neither.
Exit status 1 when anything failed or a log is missing."""
import json
import sys

passed = failed = skipped = 0
missing = []
for build in sys.argv[1:]:
    try:
        with open(f"{build}/meson-logs/testlog.json") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:
                    failed += 1
                    print(f"FAILED: {build}: unreadable test log line")
                    continue
                res = r.get("result")
                if res in ("OK", "EXPECTEDFAIL"):
                    passed += 1
                elif res == "SKIP":
                    skipped += 1
                else:
                    failed += 1
                    print(f"FAILED: {build}: {r.get('name')} ({res})")
    except FileNotFoundError:
        missing.append(build)
        failed += 1
        print(f"FAILED: {build}: no test log (the build or setup failed)")
if skipped:
    print(f"({skipped} skipped)")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
