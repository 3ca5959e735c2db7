#!/usr/bin/env python3
"""scripts/test-summary.py judged on made-up phase records: each way a
phase can look green without being so must fail it, and each allowed skip
must pass and be listed.

usage: test_summary.py SUMMARY-SCRIPT

A fake build directory holds a `ringserve` script that prints a probe
with io_uring available and the bundle feature unavailable (nothing else
is run). Exit 0 on success, 1 on failure.
"""
import json
import os
import subprocess
import sys
import tempfile

PROBE = {
    "io_uring": {"available": True, "io_uring_disabled": 0},
    "summary": {"features": {"bundle": "unavailable", "sqpoll": "opt-in",
                             "buf-ring": "default"}},
}

failures = []


def phase(build, status, expected, results, raw_tail=""):
    logs = os.path.join(build, "meson-logs")
    os.makedirs(logs, exist_ok=True)
    for ext in ("status", "expected", "json"):
        path = os.path.join(logs, "phase-t." + ext)
        if os.path.exists(path):
            os.remove(path)
    if status is not None:
        with open(os.path.join(logs, "phase-t.status"), "w") as f:
            f.write(status + "\n")
    with open(os.path.join(logs, "phase-t.expected"), "w") as f:
        f.writelines("ringserve:s / %s\n" % n for n in expected)
    with open(os.path.join(logs, "phase-t.json"), "w") as f:
        for name, result, out in results:
            f.write(json.dumps({"name": "ringserve:s / " + name, "result": result,
                                "stdout": out}) + "\n")
        f.write(raw_tail)


def case(summary, build, what, want_rc, want_text=None, **kw):
    phase(build, **kw)
    p = subprocess.run([sys.executable, summary, build + ":t"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
    ok = p.returncode == want_rc and (want_text is None or want_text in p.stdout)
    print("%s: %s (exit %d)" % ("ok" if ok else "FAIL", what, p.returncode))
    if not ok:
        print(p.stdout)
        failures.append(what)


def main():
    summary = sys.argv[1]
    with tempfile.TemporaryDirectory() as build:
        exe = os.path.join(build, "ringserve")
        with open(exe, "w") as f:
            f.write("#!/bin/sh\ncat <<'EOF'\n%s\nEOF\n" % json.dumps(PROBE))
        os.chmod(exe, 0o755)
        ok2 = [("a", "OK", "fine"), ("b", "OK", "fine")]
        run = dict(status="meson-test-exit 0", expected=["a", "b"])
        case(summary, build, "every listed test ran and passed", 0, "2 passed", results=ok2,
             **run)
        case(summary, build, "a listed test with no result", 1, "never ran",
             results=ok2[:1], **run)
        case(summary, build, "a log line cut short", 1, "unreadable",
             results=ok2, raw_tail='{"name": "ringserve:s / c", "res', **run)
        case(summary, build, "ninja failed", 1, "ninja-failed",
             status="ninja-failed", expected=["a", "b"], results=ok2)
        case(summary, build, "no status: the phase never ran", 1, "no status",
             status=None, expected=["a", "b"], results=ok2)
        case(summary, build, "meson failed, no test shows it", 1, "no failed test",
             status="meson-test-exit 1", expected=["a", "b"], results=ok2)
        case(summary, build, "a failed test", 1, "(FAIL)",
             results=[("a", "OK", ""), ("b", "FAIL", "")], **run)
        case(summary, build, "a skip without a reason", 1, "no SKIP-REASON",
             results=[("a", "OK", ""), ("b", "SKIP", "SKIP: whatever")], **run)
        case(summary, build, "a skip for a feature the probe has", 1, "opt-in",
             results=[("a", "OK", ""),
                      ("b", "SKIP", "SKIP-REASON: feature unavailable: sqpoll\n")], **run)
        case(summary, build, "a skip for a reason not allowed", 1, "not an allowed",
             results=[("a", "OK", ""),
                      ("b", "SKIP", "SKIP-REASON: the server has no --foo\n")], **run)
        case(summary, build, "a skip for io_uring the probe has", 1, "available",
             results=[("a", "OK", ""),
                      ("b", "SKIP", "SKIP-REASON: io_uring unavailable: EPERM\n")], **run)
        case(summary, build, "a skip for a tool that is installed", 1, "installed",
             results=[("a", "OK", ""), ("b", "SKIP", "SKIP-REASON: tool missing: sh\n")],
             **run)
        case(summary, build, "a cmocka case skipped without a reason", 1, "skipped cases",
             results=[("a", "OK", ""), ("b", "OK", "[  SKIPPED ] test_x\n")], **run)
        case(summary, build, "allowed skips are listed and pass", 0,
             "SKIP: %s (t): ringserve:s / b skipped: feature unavailable: bundle" % build,
             results=[("a", "OK", "[  SKIPPED ] test_x\n"
                                  "SKIP-REASON: tool missing: no-such-tool-here\n"),
                      ("b", "SKIP", "SKIP-REASON: feature unavailable: bundle\n")], **run)
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
