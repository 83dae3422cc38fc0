//! The `main` of every criterion bench (criterion only, so not part of `common`, which the
//! bench tool also includes).

use criterion::Criterion;

/// Runs `benches` under criterion when cargo passes `--bench` (`cargo bench`); under
/// `cargo test --benches` it only says it skipped, without the slow workload set-up.
pub fn main(name: &str, benches: fn(&mut Criterion)) {
    if !std::env::args().any(|a| a == "--bench") {
        println!("{name}: skipped (run it with `cargo bench --bench {name}`)");
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
