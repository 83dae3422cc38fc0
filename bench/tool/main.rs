//! `megabin-bench-tool`: the helper `bench/run.sh` drives (see docs/benchmarks.md).
//!
//! - `gen DIR`: writes the workloads (rootfs per program set, standalone modules, the cat input);
//! - `precompile MODULE OUT`: an AOT artifact of MODULE for `runtime_check::engine_config()`;
//! - `run [--cwasm] MODULE [ARGS...]`: runs a standalone WASI command with the same engine
//!   configuration as `megabin run` (inherited stdio), to time whole processes against it;
//! - `invoke MODULE EXPORT [ARGS...]`: calls one export of a module (wasm-merge's output);
//! - `timeit N CMD [ARGS...]`: median and min wall time of N runs (stdio to /dev/null);
//! - `hash DIR`: throughput of megabin's scan (classify + sha256) and of plain sha256;
//! - `startup OUT_1 OUT_N... `: in-process instantiate + run of `/usr/bin/hello` from each
//!   build output vs the standalone module, under several engine configurations;
//! - `entrystart OUT_1 OUT_N [CONFIG...]`: instantiate + dispatch of hello in two builds,
//!   measured side by side (interleaved rounds), under pooling-allocator variants (issue 14);
//! - `compile DIR N`: Cranelift compile of the N-program megabinary vs its inputs one by one;
//! - `aotload OUT...`: what loading an AOT artifact (`build --aot`) costs, step by step;
//! - `instloop OUT SECONDS CONFIG [run]`: instantiates hello's megabinary in a loop (under
//!   `perf`), and runs hello each time with `run`;
//! - `io OUT`: bridged I/O (cat, writes of each size, bigout) in the megabinary vs standalone,
//!   stdout to a sink, through the same path as `megabin run` (InstancePre, megabin_dispatch);
//! - `sections FILE`: bytes per section (custom sections by name), the `_start` exports and
//!   memory 0's initial pages;
//! - `criterion DIR`: the medians of the criterion benches, as a table with ratios.

#[path = "../../benches/common/mod.rs"]
mod common;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wasmtime::{Config, Engine, InstancePre, Linker, Module, ResourceLimiter, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::SinkOutputStream;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = |i: usize| args.get(i..).unwrap_or_default().to_vec();
    match args.first().map(String::as_str) {
        Some("gen") => gen(Path::new(&args[1])),
        Some("precompile") => {
            let engine = runtime_check::new_engine()?;
            let bytes = engine.precompile_module(&std::fs::read(&args[1])?)?;
            std::fs::write(&args[2], bytes)?;
            Ok(())
        }
        Some("run") => {
            let cwasm = args.get(1).map(String::as_str) == Some("--cwasm");
            let a = rest(if cwasm { 2 } else { 1 });
            std::process::exit(run_standalone(&a[0], cwasm, "_start", &a)?)
        }
        Some("invoke") => {
            let mut a = rest(1);
            let export = a.remove(1);
            std::process::exit(run_standalone(&a[0], false, &export, &a)?)
        }
        Some("timeit") => timeit(args[1].parse()?, &rest(2)),
        Some("hash") => hash(Path::new(&args[1])),
        Some("startup") => startup(&rest(1)),
        Some("entrystart") => entrystart(Path::new(&args[1]), Path::new(&args[2]), &rest(3)),
        Some("compile") => compile(Path::new(&args[1]), args[2].parse()?),
        Some("aotload") => aotload(&rest(1)),
        Some("instloop") => instloop(
            Path::new(&args[1]),
            args[2].parse()?,
            args[3].parse()?,
            args.get(4).is_some_and(|a| a == "run"),
        ),
        Some("io") => io(Path::new(&args[1]), Path::new(&args[2])),
        Some("criterion") => criterion(Path::new(&args[1])),
        Some("sections") => sections(Path::new(&args[1])),
        _ => bail!("usage: see the top of bench/tool/main.rs"),
    }
}

// ---------------------------------------------------------------------------------------------
// Workloads

fn gen(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir.join("wasm"))?;
    for n in common::SET_SIZES
        .iter()
        .copied()
        .chain([common::SHARDED_SET])
    {
        let set = common::program_set(n);
        common::write_rootfs(&dir.join(format!("rootfs-{n}")), &set)?;
        println!(
            "set {n}: {} programs, {} bytes",
            set.len(),
            common::total_bytes(&set)
        );
    }
    let big = common::big_set();
    common::write_rootfs(&dir.join("rootfs-big"), &big)?;
    println!(
        "set big: {} programs of {} bytes, {} bytes",
        big.len(),
        big[0].wasm.len(),
        common::total_bytes(&big)
    );
    let io = common::io_set();
    common::write_rootfs(&dir.join("rootfs-io"), &io)?;
    for p in io.iter().take(2 + common::WRITE_CHUNKS.len()) {
        std::fs::write(dir.join("wasm").join(format!("{}.wasm", p.name)), &p.wasm)?;
    }
    std::fs::write(dir.join("wasm/hello.wasm"), common::fixture("hello"))?;
    std::fs::write(dir.join("wasm/big.wasm"), common::big_program())?;
    common::ensure_text_file(&dir.join("data/big.txt"), common::CAT_BYTES)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Running modules the way `megabin run` does (runtime-check/src/run.rs), stdout to a sink

struct Host {
    wasi: WasiP1Ctx,
    limits: Cap,
}

/// The same resource limiter shape as `megabin run` (no cap set).
struct Cap(usize);

impl ResourceLimiter for Cap {
    fn memory_growing(
        &mut self,
        cur: usize,
        want: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.0 = self.0 - cur.min(self.0) + want;
        Ok(true)
    }
    fn table_growing(
        &mut self,
        _cur: usize,
        _want: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// How to start a program of a module.
#[derive(Clone)]
enum Entry {
    /// A standalone command: `_start`.
    Standalone,
    /// A megabinary: digest at bridge address 0, `megabin_dispatch(0)`.
    Mega([u8; 32]),
}

struct Harness {
    engine: Engine,
    pre: InstancePre<Host>,
}

impl Harness {
    fn new(engine: &Engine, module: &Module) -> Result<Self> {
        let mut linker: Linker<Host> = Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |h: &mut Host| &mut h.wasi)?;
        Ok(Harness {
            engine: engine.clone(),
            pre: linker.instantiate_pre(module)?,
        })
    }

    /// Instantiates in a fresh store and, if `run`, starts the program; returns its exit code.
    fn run(
        &self,
        entry: &Entry,
        args: &[String],
        preopen: Option<&Path>,
        run: bool,
    ) -> Result<i32> {
        let mut b = WasiCtxBuilder::new();
        b.args(args)
            .stdout(SinkOutputStream)
            .stderr(SinkOutputStream);
        if let Some(dir) = preopen {
            b.preopened_dir(dir, "/data", FsPerms::ReadOnly)?;
        }
        let mut store = Store::new(
            &self.engine,
            Host {
                wasi: b.build_p1(),
                limits: Cap(0),
            },
        );
        store.limiter(|h| &mut h.limits);
        store.set_epoch_deadline(u64::MAX);
        let instance = self.pre.instantiate(&mut store)?;
        if !run {
            return Ok(0);
        }
        let result = match entry {
            Entry::Standalone => instance
                .get_typed_func::<(), ()>(&mut store, "_start")?
                .call(&mut store, ())
                .map(|()| 0),
            Entry::Mega(digest) => {
                let memory = instance
                    .get_memory(&mut store, "memory")
                    .context("no bridge memory")?;
                memory.write(&mut store, 0, digest)?;
                instance
                    .get_typed_func::<i32, i32>(&mut store, "megabin_dispatch")?
                    .call(&mut store, 0)
            }
        };
        match result {
            Ok(code) => Ok(code),
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(I32Exit(code)) => Ok(*code),
                None => Err(e.into()),
            },
        }
    }
}

/// `run`/`invoke`: a standalone module with inherited stdio, on `runtime_check::new_engine()`.
fn run_standalone(module: &str, cwasm: bool, export: &str, args: &[String]) -> Result<i32> {
    let engine = runtime_check::new_engine()?;
    let module = if cwasm {
        // SAFETY: artifacts this tool wrote itself with `precompile`.
        unsafe { Module::deserialize_file(&engine, module)? }
    } else {
        Module::new(&engine, std::fs::read(module)?)?
    };
    let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |c| c)?;
    let mut store = Store::new(
        &engine,
        WasiCtxBuilder::new().inherit_stdio().args(args).build_p1(),
    );
    store.set_epoch_deadline(u64::MAX);
    let instance = linker.instantiate(&mut store, &module)?;
    match instance
        .get_typed_func::<(), ()>(&mut store, export)?
        .call(&mut store, ())
    {
        Ok(()) => Ok(0),
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(I32Exit(code)) => Ok(*code),
            None => {
                eprintln!("trap: {e:?}");
                Ok(134)
            }
        },
    }
}

/// The digest and entry of `path` in the build output `out` (hello: `/usr/bin/hello`).
fn lookup(out: &Path, path: &str) -> Result<([u8; 32], PathBuf)> {
    let m = runtime_check::load_manifest(out).map_err(|e| anyhow::anyhow!("{e}"))?;
    let b = m.binaries.get(path).context("program not in manifest")?;
    Ok((b.hash.0, out.join(&b.megabinary)))
}

// ---------------------------------------------------------------------------------------------
// Timing

/// Runs `f` repeatedly (after `warm` runs) until `budget` has passed or `max` runs were made;
/// returns the median and minimum duration in seconds.
fn sample(warm: usize, max: usize, budget: Duration, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..warm {
        f();
    }
    let mut v = Vec::new();
    let t0 = Instant::now();
    while v.len() < max && (v.len() < 3 || t0.elapsed() < budget) {
        let t = Instant::now();
        f();
        v.push(t.elapsed().as_secs_f64());
    }
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    (common::median(&mut v), min)
}

fn timeit(n: usize, cmd: &[String]) -> Result<()> {
    let mut run = || {
        let status = Command::new(&cmd[0])
            .args(&cmd[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("spawn");
        assert!(status.success(), "{cmd:?} failed: {status}");
    };
    let (med, min) = sample(1, n, Duration::from_secs(0), &mut run);
    println!(
        "median_ms={:.3} min_ms={:.3} runs={n}",
        med * 1e3,
        min * 1e3
    );
    Ok(())
}

fn hash(dir: &Path) -> Result<()> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p)
            } else {
                files.push(p)
            }
        }
    }
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let mbs = |s: f64| bytes as f64 / s / 1e6;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for jobs in [1, cores] {
        let (med, _) = sample(1, 9, Duration::from_secs(3), || {
            let scan =
                megabin::rootfs::scan(dir, &megabin::rootfs::ScanOptions::with_jobs(jobs)).unwrap();
            assert!(!scan.programs.is_empty());
        });
        println!("scan jobs={jobs}: {:.1} MB/s ({bytes} bytes)", mbs(med));
    }
    let (med, _) = sample(1, 9, Duration::from_secs(3), || {
        for f in &files {
            runtime_check::hash_file(f).unwrap();
        }
    });
    println!("sha256 one thread (hash_file): {:.1} MB/s", mbs(med));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Start-up under engine configurations

fn configs() -> Vec<(&'static str, Config)> {
    let base = runtime_check::engine_config;
    let mut out = vec![("on-demand allocator (runtime_check::engine_config)", base())];
    let mut c = base();
    c.memory_init_cow(false);
    out.push(("memory_init_cow(false)", c));
    let mut c = base();
    c.memory_guard_size(0).guard_before_linear_memory(false);
    out.push(("memory_guard_size(0) + no guard before", c));
    let mut c = base();
    c.memory_reservation(0)
        .memory_guard_size(0)
        .guard_before_linear_memory(false)
        .memory_reservation_for_growth(1 << 20);
    out.push(("memory_reservation(0) + no guards", c));
    out.push((
        "pooling allocator (runtime_check::pooled_config, as new_engine)",
        runtime_check::pooled_config(runtime_check::POOLED_INSTANCES),
    ));
    out
}

/// Variants of `runtime_check::pooled_config` for `entrystart` and `instloop` (index 100+i).
fn pool_variants() -> Vec<(&'static str, Config)> {
    use wasmtime::{Enabled, InstanceAllocationStrategy, PoolingAllocationConfig};
    let n = runtime_check::POOLED_INSTANCES;
    let with = |f: &dyn Fn(&mut PoolingAllocationConfig)| {
        let mut pool = runtime_check::pool_config(n);
        f(&mut pool);
        let mut c = runtime_check::engine_config();
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        c
    };
    let mut out: Vec<(&'static str, Config)> = vec![
        (
            "pooled_config (new_engine)",
            runtime_check::pooled_config(n),
        ),
        (
            "before issue 14: no keep_resident (an madvise per table and touched memory)",
            with(&|p| {
                p.linear_memory_keep_resident(0)
                    .table_keep_resident(0)
                    .pagemap_scan(Enabled::No);
            }),
        ),
        (
            "+ keep_resident 1 MiB (memories, tables)",
            with(&|p| {
                p.linear_memory_keep_resident(1 << 20)
                    .table_keep_resident(1 << 20);
            }),
        ),
        (
            "+ decommit_batch_size 128",
            with(&|p| {
                p.decommit_batch_size(128);
            }),
        ),
        (
            "+ max_unused_warm_slots 0",
            with(&|p| {
                p.max_unused_warm_slots(0);
            }),
        ),
        (
            "+ table_elements 100000",
            with(&|p| {
                p.table_elements(100_000);
            }),
        ),
    ];
    let mut c = runtime_check::pooled_config(n);
    c.memory_init_cow(false);
    out.push(("+ memory_init_cow(false)", c));
    let mut c = runtime_check::pooled_config(n);
    c.memory_guard_size(0).guard_before_linear_memory(false);
    out.push(("+ no guard pages", c));
    out
}

/// A module for `engine`: deserialized from `cache` when compatible, else compiled (and
/// cached): the N=99 megabinary takes seconds to compile.
fn module_for(engine: &Engine, wasm: &Path, cache: &mut Vec<(PathBuf, Vec<u8>)>) -> Result<Module> {
    for (p, bytes) in cache.iter() {
        if p == wasm {
            if let Ok(m) = unsafe { Module::deserialize(engine, bytes) } {
                return Ok(m);
            }
        }
    }
    let m = Module::from_file(engine, wasm)?;
    cache.push((wasm.to_path_buf(), m.serialize()?));
    Ok(m)
}

fn entrystart(out1: &Path, outn: &Path, which: &[String]) -> Result<()> {
    let variants = pool_variants();
    let chosen: Vec<usize> = if which.is_empty() {
        (0..variants.len()).collect()
    } else {
        which.iter().map(|w| w.parse()).collect::<Result<_, _>>()?
    };
    let args = vec!["hello".to_string()];
    let mut cache = Vec::new();
    println!("| pooling configuration | N=1 instantiate µs | N=99 instantiate µs | ratio | N=1 instantiate + run µs | N=99 instantiate + run µs | **ratio** |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut variants: Vec<Option<(&str, Config)>> = variants.into_iter().map(Some).collect();
    for i in chosen {
        let (label, config) = variants[i].take().context("variant index")?;
        let engine = Engine::new(&config)?;
        let mut hs = Vec::new();
        for out in [out1, outn] {
            let (digest, file) = lookup(out, "/usr/bin/hello")?;
            let h = Harness::new(&engine, &module_for(&engine, &file, &mut cache)?)?;
            assert_eq!(h.run(&Entry::Mega(digest), &args, None, true)?, 0);
            hs.push((h, Entry::Mega(digest)));
        }
        // Interleaved rounds: each round 100 of each side, instantiate only then + run.
        let mut t: [[Vec<f64>; 2]; 2] = Default::default();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(4) {
            for run in [false, true] {
                for (k, (h, e)) in hs.iter().enumerate() {
                    for _ in 0..100 {
                        let s = Instant::now();
                        h.run(e, &args, None, run)?;
                        t[run as usize][k].push(s.elapsed().as_secs_f64() * 1e6);
                    }
                }
            }
        }
        let med = |v: &mut Vec<f64>| common::median(v);
        let (i1, in_) = (med(&mut t[0][0]), med(&mut t[0][1]));
        let (r1, rn) = (med(&mut t[1][0]), med(&mut t[1][1]));
        println!(
            "| {label} | {i1:.1} | {in_:.1} | {:.2} | {r1:.1} | {rn:.1} | **{:.2}** |",
            in_ / i1,
            rn / r1
        );
    }
    Ok(())
}

fn instloop(out: &Path, seconds: f64, config: usize, run: bool) -> Result<()> {
    let (label, config) = if config >= 100 {
        pool_variants().swap_remove(config - 100)
    } else {
        configs().swap_remove(config)
    };
    let engine = Engine::new(&config)?;
    let (digest, file) = lookup(out, "/usr/bin/hello")?;
    let h = Harness::new(&engine, &Module::from_file(&engine, file)?)?;
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed().as_secs_f64() < seconds {
        h.run(&Entry::Mega(digest), &["hello".into()], None, run)?;
        n += 1;
    }
    println!(
        "{label}: {:.1} µs per instantiation{}",
        t.elapsed().as_secs_f64() * 1e6 / n as f64,
        if run { " and run" } else { "" }
    );
    Ok(())
}

fn startup(outs: &[String]) -> Result<()> {
    let hello = common::fixture("hello");
    let args = vec!["hello".to_string()];
    println!("| engine configuration | target | instantiate µs | instantiate + run µs |");
    println!("| --- | --- | ---: | ---: |");
    for (label, config) in configs() {
        let t = Instant::now();
        let engine = match Engine::new(&config) {
            Ok(e) => e,
            Err(e) => {
                println!("| {label} | engine refused: {e} | | |");
                continue;
            }
        };
        let engine_ms = t.elapsed().as_secs_f64() * 1e3;
        let mut targets = vec![(
            "standalone hello".to_string(),
            hello.clone(),
            Entry::Standalone,
        )];
        for out in outs {
            let (digest, file) = lookup(Path::new(out), "/usr/bin/hello")?;
            let n = runtime_check::load_manifest(Path::new(out))
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .binaries
                .len();
            targets.push((
                format!("megabinary N={n}"),
                std::fs::read(file)?,
                Entry::Mega(digest),
            ));
        }
        for (name, wasm, entry) in targets {
            let module = Module::new(&engine, &wasm)?;
            let h = match Harness::new(&engine, &module) {
                Ok(h) => h,
                Err(e) => {
                    println!("| {label} | {name}: {e} | | |");
                    continue;
                }
            };
            let code = h.run(&entry, &args, None, true);
            if !matches!(code, Ok(0)) {
                println!("| {label} | {name}: run failed {code:?} | | |");
                continue;
            }
            let budget = Duration::from_millis(1500);
            let (inst, _) = sample(20, 20_000, budget, || {
                h.run(&entry, &args, None, false).unwrap();
            });
            let (full, _) = sample(20, 20_000, budget, || {
                h.run(&entry, &args, None, true).unwrap();
            });
            println!(
                "| {label} (engine {engine_ms:.1} ms) | {name} | {:.1} | {:.1} |",
                inst * 1e6,
                full * 1e6
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Bridged I/O

fn io(out: &Path, dir: &Path) -> Result<()> {
    let engine = runtime_check::new_engine()?;
    let m = runtime_check::load_manifest(out).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mega_file = out.join(&m.megabinary);
    let mega = Harness::new(&engine, &Module::from_file(&engine, &mega_file)?)?;
    // The same programs with every one through the WASI bridge (each its own memory), as
    // megabin merged them before a program could use the exported memory as its own: the
    // before/after comparison in one run.
    let io_set = common::io_set();
    let bridged = merger::merge_with(
        &common::merger_programs(&io_set),
        &merger::MergeOptions {
            jobs: 2,
            ..Default::default()
        },
        &merger::DebugOptions {
            bridge_all: true,
            ..Default::default()
        },
    )?;
    let bridged = Harness::new(&engine, &Module::new(&engine, &bridged.wasm)?)?;
    let data = dir.join("data");
    let mut cases: Vec<(String, String, Vec<String>, u64)> = vec![(
        "cat 256 MiB file".into(),
        "cat".into(),
        vec!["cat".into(), "/data/big.txt".into()],
        common::CAT_BYTES,
    )];
    for c in common::WRITE_CHUNKS {
        cases.push((
            format!("write {} in {c}-byte writes", mib(common::write_total(c))),
            format!("write_{c}"),
            vec![format!("write_{c}")],
            common::write_total(c) as u64,
        ));
    }
    cases.push((
        "bigout (8 x 1 MiB + 4 MiB in 1..100-byte writes)".into(),
        "bigout".into(),
        vec!["bigout".into()],
        12 << 20,
    ));
    println!("| workload | ms per run, standalone / megabinary / bridged | standalone MiB/s | megabinary MiB/s | bridged MiB/s | megabinary / standalone | same, instantiation excluded | bridged / standalone, instantiation excluded |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (label, prog, args, bytes) in cases {
        let path = format!("/usr/bin/{prog}");
        let b = m.binaries.get(&path).context("io program missing")?;
        let digest = b.hash.0;
        let wasm = std::fs::read(dir.join("rootfs-io/usr/bin").join(&prog))?;
        let alone = Harness::new(&engine, &Module::new(&engine, wasm)?)?;
        let budget = Duration::from_secs(3);
        let measure = |h: &Harness, e: &Entry, run: bool| {
            sample(1, 9, budget, || {
                assert_eq!(h.run(e, &args, Some(&data), run).unwrap(), 0);
            })
            .0
        };
        // Alternate, so drifting machine load hits both alike; keep the best median of each.
        let (mut s, mut mg, mut br) = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
        for _ in 0..3 {
            s = s.min(measure(&alone, &Entry::Standalone, true));
            mg = mg.min(measure(&mega, &Entry::Mega(digest), true));
            br = br.min(measure(&bridged, &Entry::Mega(digest), true));
        }
        // Instantiation alone (a fresh instance per run), to separate start-up from I/O.
        let s0 = measure(&alone, &Entry::Standalone, false);
        let m0 = measure(&mega, &Entry::Mega(digest), false);
        let b0 = measure(&bridged, &Entry::Mega(digest), false);
        let rate = |s: f64| bytes as f64 / (1 << 20) as f64 / s;
        println!(
            "| {label} | {:.1} / {:.1} / {:.1} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} |",
            s * 1e3,
            mg * 1e3,
            br * 1e3,
            rate(s),
            rate(mg),
            rate(br),
            s / mg,
            (s - s0) / (mg - m0),
            (s - s0) / (br - b0)
        );
    }
    Ok(())
}

fn mib(bytes: usize) -> String {
    format!("{} MiB", bytes >> 20)
}

// ---------------------------------------------------------------------------------------------
// Criterion results

fn criterion(dir: &Path) -> Result<()> {
    let mut rows = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "new") {
                    let est = p.join("estimates.json");
                    let bench = p.join("benchmark.json");
                    if let (Ok(est), Ok(bench)) = (std::fs::read(&est), std::fs::read(&bench)) {
                        let est: serde_json::Value = serde_json::from_slice(&est)?;
                        let bench: serde_json::Value = serde_json::from_slice(&bench)?;
                        let med = est["median"]["point_estimate"].as_f64().unwrap_or(f64::NAN);
                        let id = bench["full_id"].as_str().unwrap_or("?").to_string();
                        rows.push((id, med));
                    }
                } else {
                    stack.push(p);
                }
            }
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    println!("| criterion benchmark | median |");
    println!("| --- | ---: |");
    for (id, ns) in rows {
        println!("| {id} | {} |", human(ns));
    }
    Ok(())
}

fn human(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.3} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.1} µs", ns / 1e3)
    }
}

// ---------------------------------------------------------------------------------------------
// Size breakdown

fn sections(file: &Path) -> Result<()> {
    use wasmparser::{Parser, Payload};
    let wasm = std::fs::read(file)?;
    let mut sizes: Vec<(String, usize)> = Vec::new();
    let mut starts = Vec::new();
    let mut memory0 = None;
    for payload in Parser::new(0).parse_all(&wasm) {
        let payload = payload?;
        if let Payload::MemorySection(r) = &payload {
            memory0 = r.clone().into_iter().next().transpose()?.map(|m| m.initial);
        }
        if let Payload::ExportSection(r) = &payload {
            for e in r.clone() {
                let e = e?;
                if e.name.contains("start") && starts.len() < 4 {
                    starts.push(e.name.to_string());
                }
            }
        }
        let (name, range) = match &payload {
            Payload::CustomSection(c) => (format!("custom {}", c.name()), c.range()),
            Payload::CodeSectionStart { range, .. } => ("code".into(), range.clone()),
            Payload::DataSection(r) => ("data".into(), r.range()),
            Payload::TypeSection(r) => ("type".into(), r.range()),
            Payload::ImportSection(r) => ("import".into(), r.range()),
            Payload::FunctionSection(r) => ("function".into(), r.range()),
            Payload::GlobalSection(r) => ("global".into(), r.range()),
            Payload::ExportSection(r) => ("export".into(), r.range()),
            Payload::ElementSection(r) => ("element".into(), r.range()),
            _ => continue,
        };
        sizes.push((name, range.end - range.start));
    }
    let listed: usize = sizes.iter().map(|s| s.1).sum();
    for (name, n) in &sizes {
        println!("{name}: {n}");
    }
    println!("other (headers, small sections): {}", wasm.len() - listed);
    println!("start exports: {}", starts.join(", "));
    if let Some(pages) = memory0 {
        println!("memory 0 initial pages: {pages}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Loading AOT artifacts

fn aotload(outs: &[String]) -> Result<()> {
    let t = Instant::now();
    let engine = runtime_check::new_engine()?;
    let engine_ms = t.elapsed().as_secs_f64() * 1e3;
    println!("engine creation: {engine_ms:.2} ms");
    println!();
    println!("| build output | artifact MiB | read ms | sha256 ms | Module::deserialize ms | Module::deserialize_file ms | instantiate + run hello ms |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for out in outs {
        let out = Path::new(out);
        let file = out.join("container.cwasm");
        let (digest, _) = lookup(out, "/usr/bin/hello")?;
        let budget = Duration::from_secs(2);
        let (read, _) = sample(1, 20, budget, || {
            std::fs::read(&file).unwrap();
        });
        let bytes = std::fs::read(&file)?;
        let (hash, _) = sample(1, 20, budget, || {
            megabin_format::Digest::of(&bytes);
        });
        // SAFETY: artifacts `megabin build --aot` just wrote for this engine configuration.
        let (de, _) = sample(1, 20, budget, || unsafe {
            Module::deserialize(&engine, &bytes).unwrap();
        });
        let (def, _) = sample(1, 20, budget, || unsafe {
            Module::deserialize_file(&engine, &file).unwrap();
        });
        let module = unsafe { Module::deserialize_file(&engine, &file)? };
        let h = Harness::new(&engine, &module)?;
        let (run, _) = sample(5, 200, budget, || {
            h.run(&Entry::Mega(digest), &["hello".into()], None, true)
                .unwrap();
        });
        println!(
            "| {} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            out.file_name().unwrap_or_default().to_string_lossy(),
            bytes.len() as f64 / 1048576.0,
            read * 1e3,
            hash * 1e3,
            de * 1e3,
            def * 1e3,
            run * 1e3
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Compile time

fn compile(dir: &Path, n: usize) -> Result<()> {
    let engine = runtime_check::new_engine()?;
    let mega = std::fs::read(dir.join(format!("out-{n}/container.wasm")))?;
    let inputs: Vec<Vec<u8>> = common::program_set(n).into_iter().map(|p| p.wasm).collect();
    let (mut m, mut i) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..2 {
        let t = Instant::now();
        Module::new(&engine, &mega)?;
        m = m.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for w in &inputs {
            Module::new(&engine, w)?;
        }
        i = i.min(t.elapsed().as_secs_f64());
    }
    println!("| N={n} | {m:.2} s | {i:.2} s | {:.2} |", m / i);
    Ok(())
}
