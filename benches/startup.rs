//! Figure 2 (in process): start-up of the `hello` entry of an N-program megabinary
//! (N = 1, 10, 50, 99) vs the standalone `hello` module, both already compiled.
//!
//! Per iteration, `megabin verify+run` does the per-run checks of `megabin run` (the manifest
//! and its container_id, the sha256 of the program file against the manifest), then creates a
//! fresh store and instance and calls the entry's start export, stdout captured
//! (`runtime_check::Runner`). `megabin run` is the same without the checks; `standalone run`
//! instantiates `hello.wasm` and calls `_start`. `megabinary sha256` is what hashing the whole
//! megabinary on every run would add.
//!
//! Run with `cargo bench --bench startup`; `cargo test` never runs it. See docs/benchmarks.md.

mod common;
#[path = "common/harness.rs"]
mod harness;

use criterion::{BenchmarkId, Criterion};
use runtime_check::{Invocation, Runner, Status};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn work_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("megabin-bench")
}

/// Builds the N-program rootfs with the release CLI; returns (rootfs, out).
fn build_set(n: usize) -> (PathBuf, PathBuf) {
    let root = work_dir().join(format!("startup-{n}"));
    let rootfs = root.join("rootfs");
    let out = root.join("out");
    common::write_rootfs(&rootfs, &common::program_set(n)).expect("rootfs");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_megabin"))
        .arg("build")
        .arg(&rootfs)
        .arg("-o")
        .arg(&out)
        .arg("-q")
        .status()
        .expect("megabin build");
    assert!(status.success(), "megabin build failed");
    (rootfs, out)
}

/// The per-run checks of `megabin run` for a rootfs path; returns the entry's start export.
fn verify(out: &Path, rootfs: &Path, path: &str) -> String {
    let m = runtime_check::load_manifest(out).expect("manifest");
    let b = &m.binaries[path];
    let host = rootfs.join(path.trim_start_matches('/'));
    let d = runtime_check::hash_file(&host).expect("hash");
    assert_eq!(megabin_format::Digest(d), b.hash);
    b.entry_point.clone()
}

fn hello_ok(c: &runtime_check::Captured) {
    assert_eq!(c.status, Status::Exit(0), "{c:?}");
    assert!(c.stdout.starts_with(b"hello from megabin fixture"));
}

fn benches(c: &mut Criterion) {
    let runner = Runner::new().expect("runner");
    let inv = Invocation {
        args: vec!["hello".into()],
        ..Default::default()
    };
    let mut g = c.benchmark_group("startup");
    g.sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));

    let hello = runner.compile(&common::fixture("hello")).expect("compile");
    hello_ok(&runner.run_captured(&hello, "_start", &inv).unwrap());
    g.bench_function("standalone run", |b| {
        b.iter(|| runner.run_captured(&hello, "_start", &inv).unwrap())
    });

    for n in common::SET_SIZES {
        let (rootfs, out) = build_set(n);
        let m = runtime_check::load_manifest(&out).expect("manifest");
        let file = out.join(&m.binaries["/usr/bin/hello"].megabinary);
        let wasm = std::fs::read(&file).expect("megabinary");
        let module = runner.compile(&wasm).expect("compile megabinary");
        let export = verify(&out, &rootfs, "/usr/bin/hello");
        hello_ok(&runner.run_captured(&module, &export, &inv).unwrap());

        g.bench_with_input(BenchmarkId::new("megabin verify+run", n), &n, |b, _| {
            b.iter(|| {
                let export = verify(&out, &rootfs, "/usr/bin/hello");
                runner.run_captured(&module, &export, &inv).unwrap()
            })
        });
        g.bench_with_input(BenchmarkId::new("megabin run", n), &n, |b, _| {
            b.iter(|| runner.run_captured(&module, &export, &inv).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("megabinary sha256", n), &n, |b, _| {
            b.iter(|| runtime_check::hash_file(&file).unwrap())
        });
    }
    g.finish();
}

fn main() {
    harness::main("startup", benches);
}
