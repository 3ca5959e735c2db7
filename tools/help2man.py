#!/usr/bin/env python3
"""Turn a program's --help and --version output into a man page.

usage: help2man.py PROGRAM NAME SUMMARY OUTPUT

Lines of --help that start with spaces and a dash become .TP entries; other
lines become paragraphs or section headings (lines ending in ':')."""
import subprocess
import sys


def esc(s):
    return s.replace("\\", "\\\\").replace("-", "\\-").replace("'", "\\'")


def main():
    prog, name, summary, out = sys.argv[1:5]
    helptext = subprocess.run([prog, "--help"], capture_output=True, text=True,
                              check=True).stdout
    version = subprocess.run([prog, "--version"], capture_output=True, text=True,
                             check=True).stdout.strip().splitlines()[0]
    lines = helptext.splitlines()
    page = [f'.TH {name.upper()} 1 "" "{esc(version)}" "User Commands"',
            ".SH NAME", f"{name} \\- {esc(summary)}",
            ".SH SYNOPSIS", f".B {name}", "[\\fIOPTION\\fR]...",
            ".SH DESCRIPTION"]
    in_opt = False
    for line in lines[1:]:
        stripped = line.strip()
        if not stripped:
            in_opt = False
            page.append(".PP")
            continue
        if line.startswith("  ") and stripped.startswith("-"):
            # "  --opt=X    text": split at the first run of 2+ spaces
            parts = stripped.split("  ", 1)
            page.append(".TP")
            page.append(f"\\fB{esc(parts[0].strip())}\\fR")
            if len(parts) > 1:
                page.append(esc(parts[1].strip()))
            in_opt = True
        elif in_opt and line.startswith("   "):
            page.append(esc(stripped))
        elif not line.startswith(" ") and stripped.endswith(":"):
            page.append(f".SS {esc(stripped[:-1])}")
        else:
            page.append(esc(stripped))
    page += [".SH SEE ALSO", "ringserve(1), ringbench(1), the README of ringserve."]
    with open(out, "w") as f:
        f.write("\n".join(page) + "\n")


if __name__ == "__main__":
    main()
