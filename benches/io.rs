//! Figure 3 (in process): bridged I/O. `cat` of a 256 MiB file, 10 MiB in writes of 256 B,
//! 4 KiB and 64 KiB (`write_<size>`) and the `bigout` fixture, run as an
//! entry of a 99-program megabinary (`megabinary`: as `megabin build` merges, where a program
//! may use the exported memory as its own; `bridged`: every program through the WASI bridge)
//! vs as the standalone module, through
//! `runtime_check::Runner` (stdout captured in memory by both). The bench tool measures the same
//! with stdout to a sink (`bench/run.sh`).
//!
//! Run with `cargo bench --bench io`; `cargo test` never runs it. See docs/benchmarks.md.

mod common;
#[path = "common/harness.rs"]
mod harness;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use runtime_check::{Invocation, Runner, Status};
use std::path::PathBuf;
use std::time::Duration;

fn benches(c: &mut Criterion) {
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("megabin-bench");
    let data = work.join("data");
    common::ensure_text_file(&data.join("big.txt"), common::CAT_BYTES).expect("cat input");
    let set = common::io_set();
    let programs = common::merger_programs(&set);
    let merged = merger::merge(
        &programs,
        &merger::MergeOptions {
            jobs: 2,
            ..Default::default()
        },
    )
    .expect("merge");
    // The same programs, every one through the WASI bridge (as before programs could use the
    // exported memory as their own): the before/after comparison in one run.
    let bridged = merger::merge_with(
        &programs,
        &merger::MergeOptions {
            jobs: 2,
            ..Default::default()
        },
        &merger::DebugOptions {
            bridge_all: true,
            ..Default::default()
        },
    )
    .expect("merge bridged");
    let runner = Runner::new().expect("runner");
    let mega = runner.compile(&merged.wasm).expect("compile megabinary");
    let bridged = runner
        .compile(&bridged.wasm)
        .expect("compile bridged megabinary");

    let mut cases = vec![(
        "cat 256 MiB".to_string(),
        "cat",
        vec!["cat".to_string(), "/data/big.txt".to_string()],
        common::CAT_BYTES,
    )];
    // 1- and 16-byte writes (1 s per run) are measured by the bench tool only.
    let chunks: Vec<usize> = common::WRITE_CHUNKS
        .into_iter()
        .filter(|&c| c >= 256)
        .collect();
    let writers: Vec<String> = chunks.iter().map(|c| format!("write_{c}")).collect();
    for (w, &chunk) in writers.iter().zip(&chunks) {
        cases.push((
            w.clone(),
            w,
            vec![w.clone()],
            common::write_total(chunk) as u64,
        ));
    }
    cases.push(("bigout".into(), "bigout", vec!["bigout".into()], 12 << 20));

    let mut g = c.benchmark_group("io");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (label, prog, args, bytes) in cases {
        let inv = Invocation {
            args,
            preopens: vec![(data.clone(), "/data".into())],
            ..Default::default()
        };
        let wasm = &set.iter().find(|p| p.name == prog).expect("program").wasm;
        let alone = runner.compile(wasm).expect("compile");
        let export = format!("{prog}_start");
        for (module, name) in [
            (&alone, "_start"),
            (&mega, export.as_str()),
            (&bridged, export.as_str()),
        ] {
            let r = runner.run_captured(module, name, &inv).unwrap();
            assert_eq!(r.status, Status::Exit(0));
            assert!(r.stdout.len() as u64 >= bytes, "{label}: short output");
        }
        g.throughput(Throughput::Bytes(bytes));
        g.bench_function(BenchmarkId::new("standalone", &label), |b| {
            b.iter(|| runner.run_captured(&alone, "_start", &inv).unwrap())
        });
        g.bench_function(BenchmarkId::new("megabinary", &label), |b| {
            b.iter(|| runner.run_captured(&mega, &export, &inv).unwrap())
        });
        g.bench_function(BenchmarkId::new("bridged", &label), |b| {
            b.iter(|| runner.run_captured(&bridged, &export, &inv).unwrap())
        });
    }
    g.finish();
}

fn main() {
    harness::main("io", benches);
}
