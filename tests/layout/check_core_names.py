#!/usr/bin/env python3
"""core/ never names a backend: no identifier and no string literal in
core/*.c or core/*.h says "uring" or "epoll" (comments may explain what a
backend does; code must not depend on which one runs). A backend is a
module: its options, help, defaults and probe live with it, and core/
reaches it only through the backend table.

usage: check_core_names.py SOURCE_ROOT"""
import pathlib
import re
import sys

TOKEN = re.compile(r'''
    (?P<comment>/\*.*?\*/|//[^\n]*)
  | (?P<string>"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
''', re.S | re.X)
BACKEND = re.compile(r'uring|epoll', re.I)


def offenders(path):
    text = path.read_text()
    for m in TOKEN.finditer(text):
        if m.lastgroup == 'comment':
            continue
        if BACKEND.search(m.group()):
            line = text.count('\n', 0, m.start()) + 1
            yield f'{path}:{line}: {m.group()[:70]}'


def main():
    core = pathlib.Path(sys.argv[1]) / 'core'
    found = [o for p in sorted(core.glob('*.[ch]')) for o in offenders(p)]
    for o in found:
        print(o)
    if found:
        print(f'{len(found)} place(s) in core/ name a backend')
        return 1
    print('core/ names no backend')
    return 0


if __name__ == '__main__':
    sys.exit(main())
