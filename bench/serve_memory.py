"""Memory of concurrent calls of a large program (run by bench/serve-memory.sh, issue 14's
third performance goal): the peak RSS of one `megabin serve` running CONC concurrent
tools/call of the program, against the summed peak RSS of CONC concurrent `wasmtime run`
processes of the same program precompiled alone (the stock CLI). Peak RSS is GNU time's %M
(the process's maximum resident set, file-backed pages included, as for every process).

Usage: serve_memory.py MEGABIN OUT ROOTFS TOOL WASMTIME CWASM CONC ROUNDS -- ARGS...
Prints a markdown table on stdout.
"""

import os
import subprocess
import sys
import tempfile
import time

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def peak_kib(path):
    with open(path) as f:
        return int(f.read().split()[-1])


async def serve_peak(megabin, out, rootfs, tool, conc, rounds, args):
    """Peak RSS (KiB) of the server after `rounds` rounds of `conc` concurrent calls, and the
    wall time of a round (median)."""
    fd, stat = tempfile.mkstemp(prefix="megabin-serve-rss-")
    os.close(fd)
    params = StdioServerParameters(
        command="/usr/bin/time",
        args=["-f", "%M", "-o", stat, megabin, "serve", "--rootfs", rootfs,
              "--max-concurrency", str(conc), out],
        env={k: v for k, v in os.environ.items() if k.startswith("MEGABIN_")})
    walls = []
    with open(os.devnull, "w") as devnull:
        async with stdio_client(params, errlog=devnull) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()

                async def one():
                    r = await session.call_tool(tool, {"args": args})
                    assert not r.is_error, r

                for _ in range(rounds):
                    t0 = time.perf_counter()
                    async with anyio.create_task_group() as tg:
                        for _ in range(conc):
                            tg.start_soon(one)
                    walls.append(time.perf_counter() - t0)
    # The server exits when stdin closes; time writes its file then.
    for _ in range(100):
        if os.path.getsize(stat) > 0:
            break
        time.sleep(0.05)
    kib = peak_kib(stat)
    os.unlink(stat)
    return kib, sorted(walls)[len(walls) // 2]


def wasmtime_peaks(wasmtime, cwasm, conc, args):
    """Peak RSS (KiB) of each of `conc` concurrent `wasmtime run` processes, and the wall time."""
    stats = []
    procs = []
    t0 = time.perf_counter()
    for _ in range(conc):
        fd, stat = tempfile.mkstemp(prefix="wasmtime-rss-")
        os.close(fd)
        stats.append(stat)
        procs.append(subprocess.Popen(
            ["/usr/bin/time", "-f", "%M", "-o", stat, wasmtime, "run", "--allow-precompiled",
             "-W", "multi-memory=y", cwasm, *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for p in procs:
        assert p.wait() == 0, p.args
    wall = time.perf_counter() - t0
    kibs = [peak_kib(s) for s in stats]
    for s in stats:
        os.unlink(s)
    return kibs, wall


def main():
    sep = sys.argv.index("--")
    megabin, out, rootfs, tool, wasmtime, cwasm, conc, rounds = sys.argv[1:sep]
    conc, rounds = int(conc), int(rounds)
    args = sys.argv[sep + 1:]
    kibs, wt_wall = wasmtime_peaks(wasmtime, cwasm, conc, args)
    one = sorted(kibs)[len(kibs) // 2]
    serve_idle, _ = anyio.run(serve_peak, megabin, out, rootfs, tool, 1, 1, args)
    serve_kib, serve_wall = anyio.run(serve_peak, megabin, out, rootfs, tool, conc, rounds, args)
    mib = lambda k: k / 1024
    print(f"program: `{tool}` with {len(args)} arguments (see the script), {conc} concurrent calls")
    print()
    print("| what | peak RSS MiB | wall s |")
    print("| --- | ---: | ---: |")
    print(f"| one `wasmtime run` process (median of {conc}) | {mib(one):.1f} | |")
    print(f"| {conc} concurrent `wasmtime run` processes, summed | {mib(sum(kibs)):.1f} | {wt_wall:.2f} |")
    print(f"| `megabin serve`, 1 call | {mib(serve_idle):.1f} | |")
    print(f"| `megabin serve`, {conc} concurrent calls ({rounds} rounds; wall: median round) "
          f"| {mib(serve_kib):.1f} | {serve_wall:.2f} |")
    print(f"| **ratio serve / summed processes** | **{serve_kib / sum(kibs):.2f}** | |")


if __name__ == "__main__":
    main()
