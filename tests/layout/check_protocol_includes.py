#!/usr/bin/env python3
"""The shipped protocols are clients of the public API: every #include in
protocols/ names a system header, an installed header (<ringserve.h>,
<ringserve/...>) or a header of protocols/ itself, never one of core/ or
of a backend. (The build enforces it too: protocols/ is compiled with
include/ as its only include directory.)

usage: check_protocol_includes.py SOURCE_ROOT"""
import pathlib
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def internal_headers(root):
    """Headers that are not installed: core/, backends, probe/, top level."""
    names = set()
    for d in ('core', 'backend_epoll', 'backend_uring', 'probe', '.'):
        names |= {p.name for p in (root / d).glob('*.h')}
    return names


def main():
    root = pathlib.Path(sys.argv[1])
    protocols = root / 'protocols'
    own = {p.name for p in protocols.glob('*.h')}
    internal = internal_headers(root)
    bad = []
    for path in sorted(protocols.glob('*.[ch]')):
        text = path.read_text()
        for m in INCLUDE.finditer(text):
            kind, name = m.groups()
            line = text.count('\n', 0, m.start()) + 1
            public = name == 'ringserve.h' or name.startswith('ringserve/')
            if public or (kind == '"' and name in own):
                continue
            if kind == '"' or name in internal or name.split('/')[-1] in internal:
                close = '>' if kind == '<' else '"'
                bad.append(f'{path}:{line}: #include {kind}{name}{close}: not public')
    for b in bad:
        print(b)
    if bad:
        print(f'{len(bad)} internal include(s) in protocols/')
        return 1
    print(f'protocols/ includes only public headers ({len(list(protocols.glob("*.[ch]")))} files)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
