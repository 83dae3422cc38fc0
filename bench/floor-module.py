#!/usr/bin/env python3
"""Writes (to stdout) the WAT of a module with N functions of integer code and an empty
exported `_start`: the "floor" workload of `bench/run.sh trust` (what the stock Wasmtime CLI
takes to load a precompiled module of N functions and start it, whatever runs). Deterministic."""
import sys

n = int(sys.argv[1])
x = 0x9E3779B97F4A7C15
mask = (1 << 64) - 1


def rnd():
    global x
    x ^= (x << 13) & mask
    x ^= x >> 7
    x ^= (x << 17) & mask
    return x


out = sys.stdout
out.write("(module\n")
for i in range(n):
    body = [f"(func $f{i} (param i32) (result i32) (local i32)",
            f"  local.get 0 i32.const {rnd() & 0x7FFFFFFF | 1} i32.mul local.set 1"]
    for _ in range(14):
        body.append(f"  local.get 1 i32.const {rnd() % 31 + 1} i32.rotl local.get 0 i32.xor"
                    f" i32.const {rnd() & 0x7FFFFFFF} i32.add local.set 1")
    body.append("  local.get 1)")
    out.write("\n".join(body) + "\n")
out.write('(func (export "_start")))\n')
