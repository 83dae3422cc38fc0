//! Figure 1 (in process): merge time of N-program sets (N = 1, 10, 50, 99, one shard), and the
//! throughput of megabin's rootfs scan (classify + sha256 of
//! every program) on the 300-program and the large set. Whole-process build time and peak
//! memory against Binaryen's wasm-merge, and sha256sum, are measured by `bench/run.sh`.
//!
//! Run with `cargo bench --bench build`; `cargo test` never runs it. See docs/benchmarks.md.

mod common;
#[path = "common/harness.rs"]
mod harness;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use std::path::PathBuf;
use std::time::Duration;

/// Merges `set`; with `proofs`, each program carries the validation proof the build's check
/// stage made (`Footprint::checked`), so the merge only parses it.
fn merge(set: &[common::Prog], jobs: usize, proofs: Option<&[merger::Validated]>) -> usize {
    let mut programs = common::merger_programs(set);
    if let Some(proofs) = proofs {
        for (p, v) in programs.iter_mut().zip(proofs) {
            p.validated = Some(*v);
        }
    }
    merger::merge(
        &programs,
        &merger::MergeOptions {
            jobs,
            ..Default::default()
        },
    )
    .expect("merge")
    .wasm
    .len()
}

fn benches(c: &mut Criterion) {
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("megabin-bench");
    let mut g = c.benchmark_group("build");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for n in common::SET_SIZES {
        let set = common::program_set(n);
        g.throughput(Throughput::Bytes(common::total_bytes(&set)));
        g.bench_with_input(BenchmarkId::new("merge", n), &n, |b, _| {
            b.iter(|| merge(&set, jobs, None))
        });
    }
    // The build's merge stage: programs validated by the check stage are not validated again.
    for (label, set) in [("99", common::program_set(99)), ("big", common::big_set())] {
        let opts = merger::MergeOptions::default();
        let proofs: Vec<merger::Validated> = set
            .iter()
            .map(|p| {
                merger::Footprint::checked(&p.wasm, &opts)
                    .expect("valid")
                    .1
                    .expect("proof")
            })
            .collect();
        g.throughput(Throughput::Bytes(common::total_bytes(&set)));
        g.bench_function(BenchmarkId::new("merge-revalidating", label), |b| {
            b.iter(|| merge(&set, jobs, None))
        });
        g.bench_function(BenchmarkId::new("merge-with-proofs", label), |b| {
            b.iter(|| merge(&set, jobs, Some(&proofs)))
        });
    }
    for (label, set) in [
        ("300", common::program_set(common::SHARDED_SET)),
        ("big", common::big_set()),
    ] {
        let root = work.join(format!("scan-{label}"));
        common::write_rootfs(&root, &set).expect("rootfs");
        g.throughput(Throughput::Bytes(common::total_bytes(&set)));
        g.bench_function(BenchmarkId::new("scan+sha256", label), |b| {
            b.iter(|| {
                megabin::rootfs::scan(&root, &megabin::rootfs::ScanOptions::with_jobs(jobs))
                    .expect("scan")
            })
        });
    }
    g.finish();
}

fn main() {
    harness::main("build", benches);
}
