#!/usr/bin/env python3
"""Sum the phases of `make test`: prints every skip with its reason, every
failure, then 'N passed, N failed, N skipped'. Exit 1 on any failure.

usage: test-summary.py BUILD:PHASE...   (the records of scripts/test-phase.sh)

What counts as a failure, besides a test meson reports as failed:
  - a phase that left no status, whose ninja or `meson test --list` failed,
    or whose `meson test` exited non-zero with no failed test to show for it;
  - a test in the phase's expected list (`meson test --list`, written by the
    same phase) with no result in the phase's own log: a run cut short, a
    test that crashed meson, a stale log. A log line that does not parse is
    a failure as well;
  - a skip without an allowed reason.

How a test reports a skip, and why
----------------------------------
A skip hides whatever the test would have found, so it is allowed only for
something outside the code under test that this script can check itself:
the kernel (as `ringserve --probe --json` reports it) or a missing tool.
A test that skips -- the whole program exiting 77, or one cmocka case
calling skip() (cmocka still exits 0; its "[  SKIPPED ] name" line is what
this script sees) -- prints one line per reason on stdout or stderr:

    SKIP-REASON: io_uring unavailable[: free text]
    SKIP-REASON: io_uring forbidden to unprivileged users[ free text]
    SKIP-REASON: feature unavailable: FEATURE[: free text]
    SKIP-REASON: tool missing: PROGRAM[: free text]
    SKIP-REASON: RLIMIT_NOFILE hard LIMIT < NEEDED[: free text]

and each is checked here: io_uring must be unavailable (or the
io_uring_disabled sysctl 1, for a test that drops privileges), FEATURE (one of
ringserve's --uring-features names) unavailable in the probe of this
machine, PROGRAM absent from PATH, the hard limit of this process below
NEEDED. A skip with no SKIP-REASON line, or with a reason that is not one of
these or does not hold on this machine, is a failure. tests/skip_reason.h
(C) and tests/skip_reason.py (Python) print the line; a shell script
echoes it. The summary lists every skip with its reason; tests/README.md
says more.
"""
import json
import os
import re
import resource
import shutil
import subprocess
import sys

REASON = re.compile(r"SKIP-REASON: (.*)")
CMOCKA_SKIP = re.compile(r"^\[  SKIPPED \] (\S+)\s*$", re.M)

_probe = None


def probe(builds):
    """The first `ringserve --probe --json` of the builds that can answer."""
    global _probe
    if _probe is None:
        _probe = {}
        for b in builds:
            exe = os.path.join(b, "ringserve")
            if not os.access(exe, os.X_OK):
                continue
            try:
                out = subprocess.run([exe, "--probe", "--json"], capture_output=True,
                                     text=True, timeout=30)
                _probe = json.loads(out.stdout)
                break
            except (OSError, ValueError, subprocess.SubprocessError):
                continue
    return _probe


def reason_holds(reason, builds):
    """Return None if the reason is allowed and true here, else why not."""
    p = probe(builds)
    m = re.match(r"io_uring unavailable\b", reason)
    if m:
        if not p:
            return "no probe to check it against"
        if p["io_uring"]["available"]:
            return "the probe says io_uring is available"
        return None
    if re.match(r"io_uring forbidden to unprivileged users\b", reason):
        if not p:
            return "no probe to check it against"
        if p["io_uring"].get("io_uring_disabled") != 1:
            return "the probe says io_uring_disabled is not 1"
        return None
    m = re.match(r"feature unavailable: ([a-z0-9-]+)", reason)
    if m:
        if not p:
            return "no probe to check it against"
        state = p["summary"]["features"].get(m.group(1))
        if state is None:
            return f"no feature {m.group(1)!r} in the probe"
        if state != "unavailable" and p["io_uring"]["available"]:
            return f"the probe says {m.group(1)} is {state}"
        return None
    m = re.match(r"tool missing: (\S+)", reason)
    if m:
        if shutil.which(m.group(1)):
            return f"{m.group(1)} is installed ({shutil.which(m.group(1))})"
        return None
    m = re.match(r"RLIMIT_NOFILE hard (\d+) < (\d+)", reason)
    if m:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard != resource.RLIM_INFINITY and hard < int(m.group(2)):
            return None
        return f"the hard limit here is {hard}"
    return "not an allowed reason (see the top of scripts/test-summary.py)"


def main(args):
    passed = failed = skipped = partial = 0
    builds = [a.split(":")[0] for a in args]
    for arg in args:
        if ":" not in arg:
            print(f"FAILED: {arg}: expected BUILD:PHASE")
            failed += 1
            continue
        build, phase = arg.split(":", 1)
        base = f"{build}/meson-logs/phase-{phase}"
        where = f"{build} ({phase})"
        try:
            with open(base + ".status") as f:
                status = f.read().strip()
        except FileNotFoundError:
            print(f"FAILED: {where}: the phase left no status (it never ran)")
            failed += 1
            continue
        if status in ("ninja-failed", "list-failed"):
            print(f"FAILED: {where}: {status}: no test of this phase ran")
            failed += 1
            continue
        with open(base + ".expected") as f:
            expected = [line.strip() for line in f
                        if line.strip() and " / " in line]
        if not expected:
            print(f"FAILED: {where}: the phase lists no test at all")
            failed += 1
        results = {}
        try:
            with open(base + ".json") as f:
                for line in f:
                    if not line.strip():
                        continue
                    try:
                        r = json.loads(line)
                        results[r["name"]] = r
                    except (ValueError, KeyError):
                        print(f"FAILED: {where}: unreadable test log line")
                        failed += 1
        except FileNotFoundError:
            print(f"FAILED: {where}: no test log")
            failed += 1
        phase_failed = failed
        for name in expected:
            r = results.get(name)
            if r is None:
                print(f"FAILED: {where}: {name} never ran (log cut short?)")
                failed += 1
                continue
            res = r.get("result")
            text = (r.get("stdout") or "") + "\n" + (r.get("stderr") or "")
            if res not in ("OK", "EXPECTEDFAIL", "SKIP"):
                print(f"FAILED: {where}: {name} ({res})")
                failed += 1
                continue
            # each case appears twice: when it skips, and in cmocka's recap
            cases = sorted(set(CMOCKA_SKIP.findall(text))) if res != "SKIP" else []
            if res != "SKIP" and not cases:
                passed += 1
                continue
            reasons = REASON.findall(text)
            what = "skipped" if res == "SKIP" else "skipped cases " + ", ".join(cases)
            bad = [] if reasons else ["no SKIP-REASON line"]
            for reason in reasons:
                why = reason_holds(reason.strip(), builds)
                if why:
                    bad.append(f"{reason.strip()!r}: {why}")
            if bad:
                print(f"FAILED: {where}: {name} {what}: " + "; ".join(bad))
                failed += 1
                continue
            print(f"SKIP: {where}: {name} {what}: " + "; ".join(r.strip() for r in reasons))
            # A test whose other cases ran and passed counts as passed; its
            # skipped cases are listed above all the same.
            if res == "SKIP":
                skipped += 1
            else:
                passed += 1
                partial += 1
        if failed == phase_failed and status != "meson-test-exit 0":
            print(f"FAILED: {where}: meson test ended with {status}, no failed test shown")
            failed += 1
    some = f" ({partial} of them with skipped cases)" if partial else ""
    print(f"{passed} passed{some}, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
