#!/usr/bin/env python3
"""Checks that no source file includes a header of a layer it may not use.

The layers, each a directory, and what each may include besides itself:

    common/          nothing of tfq
    worker/engine/   common/
    worker/          common/, worker/engine/
    coordinator/     common/
    cli/, tests/, fuzz/, tools/   everything

An include is found as the compiler finds it: beside the including file
first, then from the project root.  Prints each wrong include as
FILE:LINE: error: ... and exits 1.

Usage: check_layers.py --list ROOT         the files it reads, one a line
       check_layers.py --stamp FILE ROOT   checks, and writes FILE when clean
"""
import os
import re
import sys

# (directory, the directories it may include from), the most specific first.
LAYERS = [
    ("worker/engine", ["common", "worker/engine"]),
    ("worker", ["common", "worker/engine", "worker"]),
    ("coordinator", ["common", "coordinator"]),
    ("common", ["common"]),
]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of(rel):
    for d, _ in LAYERS:
        if rel.startswith(d + "/"):
            return d
    return None


def sources(root):
    out = []
    for d, _ in LAYERS:
        base = os.path.join(root, d)
        for name in sorted(os.listdir(base)):
            if name.endswith((".c", ".h")):
                out.append(os.path.join(d, name))
    return sorted(set(out))


def check(root):
    errors = []
    allowed = dict(LAYERS)
    for rel in sources(root):
        layer = layer_of(rel)
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                inc = m.group(1)
                beside = os.path.normpath(os.path.join(os.path.dirname(rel), inc))
                if os.path.exists(os.path.join(root, beside)):
                    target = beside
                elif os.path.exists(os.path.join(root, inc)):
                    target = os.path.normpath(inc)
                else:
                    continue  # generated (presets.h) or a system header
                tlayer = layer_of(target)
                if tlayer is None or tlayer not in allowed[layer]:
                    errors.append(
                        "%s:%d: error: %s/ may not include %s: it may include "
                        "only %s (tools/check_layers.py)"
                        % (rel, lineno, layer, target,
                           ", ".join(d + "/" for d in allowed[layer])))
    return errors


def main(argv):
    if len(argv) == 2 and argv[0] == "--list":
        print("\n".join(sources(argv[1])))
        return 0
    if len(argv) == 3 and argv[0] == "--stamp":
        errors = check(argv[2])
        for e in errors:
            print(e, file=sys.stderr)
        if errors:
            return 1
        with open(argv[1], "w") as f:
            f.write("ok\n")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
