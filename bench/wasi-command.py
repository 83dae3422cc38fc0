#!/usr/bin/env python3
"""Prints "<funcs> <path>" for each given .wasm that is a WASI preview1 command: a core module
(not a component) exporting `_start` whose imports all come from `wasi_snapshot_preview1`.
Exit 1 when any file is not. Used by bench/fetch-programs.sh; standard library only."""
import sys


def leb(b, i):
    r = s = 0
    while True:
        x = b[i]
        i += 1
        r |= (x & 0x7F) << s
        s += 7
        if x < 0x80:
            return r, i


def name(b, i):
    n, i = leb(b, i)
    return b[i:i + n].decode("utf-8", "replace"), i + n


def check(path):
    b = open(path, "rb").read()
    if b[:4] != b"\0asm":
        return "not wasm"
    if b[4:8] != b"\x01\0\0\0":
        return "a component, not a core module"
    i, modules, exports, funcs = 8, set(), set(), 0
    while i < len(b):
        sid = b[i]
        size, j = leb(b, i + 1)
        end = j + size
        if sid == 2:  # imports
            n, j = leb(b, j)
            for _ in range(n):
                m, j = name(b, j)
                _, j = name(b, j)
                modules.add(m)
                kind = b[j]
                j += 1
                if kind == 0:
                    _, j = leb(b, j)
                elif kind == 1:
                    j += 1
                    flags, j = leb(b, j)
                    _, j = leb(b, j)
                    if flags & 1:
                        _, j = leb(b, j)
                elif kind == 2:
                    flags, j = leb(b, j)
                    _, j = leb(b, j)
                    if flags & 1:
                        _, j = leb(b, j)
                elif kind == 3:
                    j += 2
                else:
                    j += 2
        elif sid == 3:
            funcs, _ = leb(b, j)
        elif sid == 7:
            n, j = leb(b, j)
            for _ in range(n):
                e, j = name(b, j)
                j += 1
                _, j = leb(b, j)
                exports.add(e)
        i = end
    if "_start" not in exports:
        return "no _start export (a reactor or a library)"
    other = sorted(modules - {"wasi_snapshot_preview1"})
    if other:
        return "imports from " + ", ".join(other)
    return funcs


bad = 0
for p in sys.argv[1:]:
    r = check(p)
    if isinstance(r, int):
        print(r, p)
    else:
        print(f"{p}: {r}", file=sys.stderr)
        bad = 1
sys.exit(bad)
