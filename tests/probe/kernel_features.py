#!/usr/bin/env python3
"""What the running kernel must give: `ringserve --probe --json` against a
table by kernel version. The one place this table lives.

usage: kernel_features.py PATH/TO/ringserve

A skip is allowed when the probe says a feature is unavailable (see
scripts/test-summary.py), so a probe trial that regresses -- a feature
wrongly found missing -- would turn tests into skips and `default` into a
smaller set, and everything would still pass. This test pins it: on a
kernel at least as new as a feature's release, the probe must find the
feature, and `default` must hold every feature that is not opt-in.

The versions are the upstream releases that added each piece (the
"since" column of docs/kernels.md, from the liburing man pages). Only
"must have" is checked: a distribution kernel may carry a feature earlier
(a backport), so an older kernel with a feature is not an error.

When io_uring itself is unavailable (a seccomp filter, the
io_uring_disabled sysctl, a kernel built without it) nothing here applies:
the test skips with a reason the summary checks against the same probe.
Exit 0 on success, 1 on failure, 77 on that skip.
"""
import json
import re
import subprocess
import sys

# ringserve --uring-features name: (first kernel, opt-in?)
FEATURES = {
    "ring-fd": ((5, 18), False),
    "multishot-accept": ((5, 19), False),
    "buf-ring": ((5, 19), False),
    "fixed-files": ((5, 19), False),
    "multishot-recv": ((6, 0), False),
    "send-zc": ((6, 0), False),
    "defer-taskrun": ((6, 1), False),
    "direct-socket": ((6, 7), False),
    "direct-pipe": ((6, 16), False),
    "direct-listen": ((6, 11), True),
    "bundle": ((6, 10), True),
    "batch-wait": ((6, 12), True),
    "buf-inc": ((6, 12), True),
    "sqpoll": ((5, 13), True),
    "resize": ((6, 13), False),
    "wait-reg": ((6, 13), True),
}

# Probe facts (JSON paths under "io_uring") and their first kernel.
FACTS = {
    "opcodes.send_zc": (6, 0),
    "opcodes.socket": (5, 19),
    "setup.single_issuer": (6, 0),
    "setup.defer_taskrun": (6, 1),
    "setup.coop_taskrun": (5, 19),
    "setup.submit_all": (5, 18),
    "setup.no_sqarray": (6, 6),
    "features.reg_reg_ring": (6, 3),
    "features.recvsend_bundle": (6, 10),
    "features.min_timeout": (6, 12),
    "register.buf_ring": (5, 19),
    "register.sparse_files": (5, 19),
    "register.ring_fd": (5, 18),
    "multishot.accept": (5, 19),
    "multishot.recv": (6, 0),
    "multishot.accept_direct": (5, 19),
    "multishot.send_zc": (6, 0),
    "multishot.socket_direct": (5, 19),
    "multishot.sockopt_cmd": (6, 7),
    "register.resize_rings": (6, 13),
    "register.wait_region": (6, 13),
    "register.napi": (6, 9),
    "multishot.pipe_direct": (6, 16),
    "multishot.listen_direct": (6, 11),
}


def version(release):
    m = re.match(r"(\d+)\.(\d+)", release or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    p = subprocess.run([sys.argv[1], "--probe", "--json"], stdout=subprocess.PIPE,
                       universal_newlines=True, timeout=30)
    if p.returncode != 0:
        print("FAIL: --probe --json exited %d" % p.returncode)
        return 1
    probe = json.loads(p.stdout)
    kernel = version(probe["kernel"])
    if kernel is None:
        print("FAIL: the probe reports no kernel version: %r" % probe["kernel"])
        return 1
    uring = probe["io_uring"]
    if not uring["available"]:
        print("SKIP-REASON: io_uring unavailable: %s" % uring["reason"])
        return 77
    errors = []
    summary = probe["summary"]
    defaults = summary["default_features"].split(",")
    for name, (since, opt_in) in sorted(FEATURES.items()):
        state = summary["features"].get(name)
        if kernel < since:
            print("%-17s %-11s (needs %d.%d: not required here)" % (name, state, *since))
            continue
        want = "opt-in" if opt_in else "default"
        print("%-17s %-11s (since %d.%d: must be %s)" % (name, state, *since, want))
        if state != want:
            errors.append("%s is %s on %s, expected %s (available since %d.%d): %s" % (
                name, state, probe["kernel"], want, *since, summary["reasons"].get(name)))
        if not opt_in and name not in defaults:
            errors.append("%s missing from default_features %r" % (name, defaults))
    for path, since in sorted(FACTS.items()):
        group, key = path.split(".")
        if kernel >= since and uring[group][key] is not True:
            errors.append("io_uring.%s is %r on %s, expected true (since %d.%d)" % (
                path, uring[group][key], probe["kernel"], *since))
    for e in errors:
        print("FAIL: " + e)
    if errors:
        return 1
    print("ok: kernel %s gives every feature its version must" % probe["kernel"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
