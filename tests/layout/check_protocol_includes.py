#!/usr/bin/env python3
"""The shipped protocols are clients of the public API: every #include in
protocols/ names a system header, an installed header (<ringserve.h>,
<ringserve/...>) or a header of protocols/ itself, never one of core/ or
of a backend. (The build enforces it too: protocols/ is compiled with
include/ as its only include directory.) And every shipped protocol lives
there: a struct rs_protocol defined anywhere else in the library (core/,
the backends) is one that escaped the rule.

usage: check_protocol_includes.py SOURCE_ROOT"""
import pathlib
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
PROTO_DEF = re.compile(r'^\s*(?:static\s+)?const\s+struct\s+rs_protocol\s+(\w+)\s*=', re.M)


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
    for d in ('core', 'backend_epoll', 'backend_uring', 'probe', '.'):
        for path in sorted((root / d).glob('*.c')):
            text = path.read_text()
            for m in PROTO_DEF.finditer(text):
                line = text.count('\n', 0, m.start()) + 1
                bad.append(f'{path}:{line}: protocol {m.group(1)} defined outside protocols/')
    for b in bad:
        print(b)
    if bad:
        print(f'{len(bad)} problem(s): protocols/ is for every shipped protocol, public headers only')
        return 1
    print(f'protocols/ includes only public headers ({len(list(protocols.glob("*.[ch]")))} files)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
