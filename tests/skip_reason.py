"""The Python side of tests/skip_reason.h: a skipping test prints one
'SKIP-REASON: ...' line that scripts/test-summary.py checks on this
machine (its docstring lists the allowed reasons), then exits 77.

Test scripts live in tests/<suite>/; they import this module with
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
"""
import json
import subprocess
import sys


def uring_available(ringserve):
    """What `ringserve --probe --json` says: may this process use io_uring?"""
    p = subprocess.run([ringserve, '--probe', '--json'], stdout=subprocess.PIPE,
                       universal_newlines=True, timeout=30)
    return json.loads(p.stdout)['io_uring']['available']


def uring_feature(ringserve, name):
    """What the probe's summary says of --uring-features name NAME: 'default',
    'opt-in' or 'unavailable'; 'unknown' for a name it does not list (a typo
    must fail, not skip); None when io_uring itself is unavailable."""
    p = subprocess.run([ringserve, '--probe', '--json'], stdout=subprocess.PIPE,
                       universal_newlines=True, timeout=30)
    j = json.loads(p.stdout)
    if not j['io_uring']['available']:
        return None
    return j['summary']['features'].get(name, 'unknown')


def skip(reason):
    print('SKIP-REASON: ' + reason, flush=True)
    sys.exit(77)


def skip_for(text):
    """A start-up error that means the kernel lacks something, as a skip
    (rs_skip_reason_for() in skip_reason.h): ringserve's "io_uring is
    unavailable: ..." and "this kernel does not support 'FEATURE'" exit 77
    with their reason; any other text returns: a failure."""
    unsup = "this kernel does not support '"
    for line in text.splitlines():
        if 'io_uring is unavailable' in line:
            skip('io_uring unavailable: ' + line.strip())
        if unsup in line:
            skip('feature unavailable: ' + line.split(unsup, 1)[1].split("'")[0])
