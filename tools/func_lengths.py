#!/usr/bin/env python3
"""Lists C functions by length: LINES FILE:LINE NAME, longest first.

A function is a line starting a definition at column 0 (a name and '('
not ending in ';') through the '}' at column 0 that closes it.

Usage: func_lengths.py [--min N] FILE...
"""
import re
import sys

DEF = re.compile(r'^[A-Za-z_][^;()]*?\b([A-Za-z_]\w*)\s*\(')


def functions(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        m = DEF.match(lines[i])
        if m and not lines[i].startswith(("typedef", "#", "static const", "const ")) \
                or (m and "(" in lines[i] and lines[i].startswith("static const") and "{" not in lines[i]):
            j = i
            while j < len(lines) and not lines[j].startswith("{") and not lines[j].rstrip().endswith(";"):
                if lines[j].rstrip().endswith("{") and j > i:
                    break
                j += 1
            if j < len(lines) and lines[j].startswith("{"):
                k = j + 1
                while k < len(lines) and not lines[k].startswith("}"):
                    k += 1
                yield (k - i + 1, path, i + 1, m.group(1))
                i = k + 1
                continue
        i += 1


def main(argv):
    mn = 0
    if len(argv) >= 2 and argv[0] == "--min":
        mn = int(argv[1])
        argv = argv[2:]
    out = []
    for p in argv:
        out.extend(functions(p))
    for n, p, line, name in sorted(out, reverse=True):
        if n >= mn:
            print("%5d %s:%d %s" % (n, p, line, name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
