#!/usr/bin/env python3
"""Every script in tools/ answers --help: exit 0, a usage text on stdout
naming the script's options, nothing on stderr (argparse expands '%' in
help strings a second time, so a help text with a stray '%' crashes only
when --help is asked for; no other test asks).

usage: test_tools_help.py TOOLS_DIR
Standard library only; about a second.
"""
import os
import subprocess
import sys

# script -> text its help must show (an option, or an option's help)
TOOLS = {
    'compare': '--quiet',
    'kernels': '--kernels',
    'http_large.py': 'interleaved repeats',
    'instr_profile.py': '--conns',
    'soak': '--duration',
    'newer-liburing': '--help',
}


def main():
    tools = sys.argv[1]
    failures = 0
    for name, option in sorted(TOOLS.items()):
        path = os.path.join(tools, name)
        p = subprocess.run([path, '--help'], capture_output=True, text=True, timeout=60)
        ok = (p.returncode == 0 and 'usage' in p.stdout.lower() and option in p.stdout
              and 'Traceback' not in p.stderr)
        print('%s %s --help: exit %d%s' % ('ok' if ok else 'FAIL', name, p.returncode,
                                           '' if ok else '\n' + p.stdout[-500:] +
                                           p.stderr[-1500:]))
        failures += not ok
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
