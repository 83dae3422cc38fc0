"""`megabin serve` benchmark client (run by bench/serve.sh): tools/call round trips of a hello
tool measured from the official MCP Python SDK over stdio, against spawning the stock
`wasmtime` CLI on the precompiled standalone program per call.

Usage: serve_client.py MEGABIN OUT ROOTFS WASMTIME HELLO_CWASM [CALLS]
Prints a markdown table on stdout.
"""

import os
import re
import statistics
import tempfile
import subprocess
import sys
import time

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

CONCURRENCY = 4


def pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def row(name, lat_ms, wall_s, calls):
    return (f"| {name} | {statistics.median(lat_ms):.3f} | {pct(lat_ms, 99):.3f} "
            f"| {calls / wall_s:.0f} |")


async def serve_figures(megabin, out, rootfs, calls):
    params = StdioServerParameters(command=megabin, args=["serve", "--rootfs", rootfs, out],
                                   env={k: v for k, v in os.environ.items() if k.startswith("MEGABIN_")})
    rows = []
    # The server's log (one line per call with its own time=): splits client and server time.
    log = tempfile.TemporaryFile(mode="w+")
    with log:
        async with stdio_client(params, errlog=log) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                for _ in range(50):  # warm-up
                    await session.call_tool("hello", {"args": ["warm"]})
                # The floor: a `ping` round trip (client SDK, pipes, server SDK; nothing runs).
                lat = []
                t0 = time.perf_counter()
                for _ in range(calls):
                    s = time.perf_counter()
                    await session.send_ping()
                    lat.append((time.perf_counter() - s) * 1000)
                rows.append(row("ping (client + transport floor), sequential", lat,
                                time.perf_counter() - t0, calls))
                # One client, one call at a time.
                lat = []
                t0 = time.perf_counter()
                for _ in range(calls):
                    s = time.perf_counter()
                    r = await session.call_tool("hello", {"args": ["x"]})
                    lat.append((time.perf_counter() - s) * 1000)
                    assert not r.is_error, r
                rows.append(row("megabin serve, 1 client, sequential", lat, time.perf_counter() - t0, calls))
                # CONCURRENCY callers on the same session, each a call at a time.
                lat = []

                async def caller(n):
                    for _ in range(n):
                        s = time.perf_counter()
                        r = await session.call_tool("hello", {"args": ["x"]})
                        lat.append((time.perf_counter() - s) * 1000)
                        assert not r.is_error, r

                t0 = time.perf_counter()
                async with anyio.create_task_group() as tg:
                    for _ in range(CONCURRENCY):
                        tg.start_soon(caller, calls // CONCURRENCY)
                rows.append(row(f"megabin serve, {CONCURRENCY} concurrent callers", lat,
                                time.perf_counter() - t0, len(lat)))
        log.seek(0)
        server = [float(m) for m in re.findall(r"call hello \S+ exit=0 time=([0-9.]+)ms", log.read())]
    seq, conc = server[50:50 + calls], server[50 + calls:]
    rows.insert(2, f"| of which server time (log `time=`), sequential | {statistics.median(seq):.3f} "
                   f"| {pct(seq, 99):.3f} | |")
    rows.append(f"| of which server time (log `time=`), {CONCURRENCY} concurrent | "
                f"{statistics.median(conc):.3f} | {pct(conc, 99):.3f} | |")
    return rows


def wasmtime_figures(wasmtime, cwasm, calls):
    cmd = [wasmtime, "run", "--allow-precompiled", "-W", "multi-memory=y", cwasm, "x"]
    for _ in range(5):
        subprocess.run(cmd, check=True, capture_output=True)
    rows = []
    lat = []
    t0 = time.perf_counter()
    for _ in range(calls):
        s = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        lat.append((time.perf_counter() - s) * 1000)
    rows.append(row("wasmtime CLI per call, sequential", lat, time.perf_counter() - t0, calls))

    async def concurrent():
        lat = []

        async def caller(n):
            for _ in range(n):
                s = time.perf_counter()
                await anyio.run_process(cmd)
                lat.append((time.perf_counter() - s) * 1000)

        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(CONCURRENCY):
                tg.start_soon(caller, calls // CONCURRENCY)
        return row(f"wasmtime CLI per call, {CONCURRENCY} concurrent callers", lat,
                   time.perf_counter() - t0, len(lat))

    rows.append(anyio.run(concurrent))
    return rows


def main():
    megabin, out, rootfs, wasmtime, cwasm = sys.argv[1:6]
    calls = int(sys.argv[6]) if len(sys.argv) > 6 else 2000
    print("| what | p50 ms | p99 ms | calls/s |")
    print("| --- | ---: | ---: | ---: |")
    for r in anyio.run(serve_figures, megabin, out, rootfs, calls):
        print(r)
    for r in wasmtime_figures(wasmtime, cwasm, max(200, calls // 10)):
        print(r)


if __name__ == "__main__":
    main()
