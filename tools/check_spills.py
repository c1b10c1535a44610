#!/usr/bin/env python3
"""Reads the disassembly of kernel objects and reports, for each kernel
function (fwd_*, dw_*), the vector loads and stores that address the stack
inside its loops (a backward jump's range): register spills.  Exits 1 when
any kernel's inner loop spills, 2 when there is nothing to read.
Usage: check_spills.py OBJECT...  or  check_spills.py --objects-under DIR
(every kern_*.o below DIR)."""
import os
import re
import subprocess
import sys

FUNC = re.compile(r'^([0-9a-f]+) <((?:fwd|dw)_[0-9_]+(?:k[0-9]+)?)>:$')
ANY_FUNC = re.compile(r'^[0-9a-f]+ <[^>]+>:$')
INSN = re.compile(r'^\s+([0-9a-f]+):\s+(.*)$')
STACK_VEC = re.compile(r'%[xyz]mm.*\((%rsp|%rbp)\)|\((%rsp|%rbp)\).*%[xyz]mm')
JUMP = re.compile(r'^j\w+\s+([0-9a-f]+)\s')


def functions(obj):
    out = subprocess.run(['objdump', '-d', '--no-show-raw-insn', obj],
                         check=True, capture_output=True, text=True).stdout
    name, insns = None, []
    for line in out.splitlines():
        m = FUNC.match(line)
        if m or ANY_FUNC.match(line):
            if name:
                yield name, insns
            name, insns = (m.group(2), []) if m else (None, [])
            continue
        m = INSN.match(line)
        if m and name:
            insns.append((int(m.group(1), 16), m.group(2)))
    if name:
        yield name, insns


def objects(argv):
    if len(argv) == 2 and argv[0] == '--objects-under':
        found = []
        for root, _, files in os.walk(argv[1]):
            found += [os.path.join(root, f) for f in files
                      if f.startswith('kern_') and f.endswith('.o')]
        return sorted(found)
    return argv


def main():
    bad = 0
    objs = objects(sys.argv[1:])
    if not objs:
        print('check_spills.py: no kernel objects to read', file=sys.stderr)
        return 2
    kernels = 0
    for obj in objs:
        for name, insns in functions(obj):
            loops = []
            for addr, text in insns:
                m = JUMP.match(text)
                if m and int(m.group(1), 16) < addr:
                    loops.append((int(m.group(1), 16), addr))
            # the innermost loops: those containing no other loop
            inner = [l for l in loops
                     if not any(o != l and l[0] <= o[0] and o[1] <= l[1]
                                for o in loops)]
            spills = sum(1 for addr, text in insns
                         if STACK_VEC.search(text)
                         and any(lo <= addr <= hi for lo, hi in inner))
            fma = sum(1 for addr, text in insns
                      if ('fmadd' in text or 'mulps' in text)
                      and any(lo <= addr <= hi for lo, hi in inner))
            print(f'{obj.split("/")[-1]:28} {name:12} inner-loop FMAs {fma:3}'
                  f'  stack accesses {spills}')
            bad += spills > 0
            kernels += 1
    if kernels == 0:
        print('check_spills.py: no fwd_*/dw_* kernels found', file=sys.stderr)
        return 2
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
