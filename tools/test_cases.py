#!/usr/bin/env python3
"""The case names of a unit test, read from its source: the one table of
`test_case` entries ({"name", fn}) in the .c file, so each name is written
once, there.  tests/meson.build registers a test per name at configure time.

Usage:
  test_cases.py SOURCE.c
      prints the names, one a line, in the table's order; fails (status 1,
      naming the file) when the file has no such table, or more than one.
  test_cases.py --check SOURCE.c EXE [SOURCE.c EXE ...]
      runs each EXE --list (tests/check.c prints the cases it holds) and
      fails, naming both lists, where they differ from SOURCE.c's: a case
      this script cannot read from the source (made by a macro, behind #if)
      would otherwise never be run by meson.
"""
import re
import subprocess
import sys

TABLE = re.compile(r'\btest_case\s+\w+\s*\[\s*\]\s*=\s*\{(.*?)\}\s*;', re.S)
ENTRY = re.compile(r'\{\s*"([^"]+)"\s*,\s*\w+\s*\}')


def case_names(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    tables = TABLE.findall(text)
    if len(tables) != 1:
        sys.exit(f"{path}: {len(tables)} tables of test_case entries; "
                 "expected one")
    names = ENTRY.findall(tables[0])
    if not names:
        sys.exit(f"{path}: the test_case table names no case")
    if len(set(names)) != len(names):
        sys.exit(f"{path}: a case is named twice: {' '.join(names)}")
    return names


def check(pairs):
    bad = 0
    for src, exe in pairs:
        want = case_names(src)
        run = subprocess.run([exe, "--list"], capture_output=True, text=True,
                             timeout=60)
        got = run.stdout.split()
        if run.returncode != 0 or got != want:
            print(f"{exe} --list (status {run.returncode}): {' '.join(got)}\n"
                  f"{src}: {' '.join(want)}\n"
                  "  differ: meson runs the cases read from the source",
                  file=sys.stderr)
            bad = 1
    return bad


def main(argv):
    if len(argv) == 2 and argv[1] != "--check":
        print("\n".join(case_names(argv[1])))
        return 0
    if len(argv) >= 4 and argv[1] == "--check" and len(argv) % 2 == 0:
        return check(zip(argv[2::2], argv[3::2]))
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
