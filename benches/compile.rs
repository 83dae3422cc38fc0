//! Figure 5: Cranelift compile time (parallel compilation, `runtime_check::new_engine()`) of
//! an N-program megabinary (N = 10) vs compiling its N input modules one after the other.
//! `bench/run.sh` measures N = 99 with the bench tool (`compile`): ~10 s per compile there,
//! too long for criterion's ten samples.
//!
//! Run with `cargo bench --bench compile`; `cargo test` never runs it. See docs/benchmarks.md.

mod common;
#[path = "common/harness.rs"]
mod harness;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use runtime_check::Runner;
use std::time::Duration;

const N: usize = 10;

fn benches(c: &mut Criterion) {
    let runner = Runner::new().expect("runner");
    let mut g = c.benchmark_group("compile");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(5));
    let set = common::program_set(N);
    let programs = common::merger_programs(&set);
    let merged = merger::merge(
        &programs,
        &merger::MergeOptions {
            jobs: 2,
            ..Default::default()
        },
    )
    .expect("merge");
    g.throughput(Throughput::Bytes(common::total_bytes(&set)));
    g.bench_with_input(BenchmarkId::new("megabinary", N), &N, |b, _| {
        b.iter(|| runner.compile(&merged.wasm).unwrap())
    });
    g.bench_with_input(BenchmarkId::new("inputs one by one", N), &N, |b, _| {
        b.iter(|| {
            for p in &set {
                runner.compile(&p.wasm).unwrap();
            }
        })
    });
    g.finish();
}

fn main() {
    harness::main("compile", benches);
}
