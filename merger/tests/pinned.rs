//! Pins the merger's output bytes: the sha256 of merges of the fixture programs, the hardening
//! fixtures (exceptions, GC, post-MVP features), element/table shapes and wasm-smith module
//! sets. A refactor of the merger must keep them byte-identical; a deliberate format change
//! refreshes the baseline with `BLESS=1 cargo test --workspace --test pinned`.

mod support;

use merger::{merge_with, DebugOptions, MergeOptions, Program};
use std::fmt::Write as _;
use std::path::Path;
use support::{
    case_rng, check_baseline, fixture_entries, fixtures_dir, generate, hardening_fixture, program,
    sha256_hex,
};

/// One line of the baseline: the output's digest and map digest, or the error.
fn line(out: &mut String, case: &str, programs: &[Program<'_>], stub: bool, export: bool) {
    let options = MergeOptions {
        jobs: 2,
        stub_foreign_imports: stub,
    };
    let debug = DebugOptions {
        export_functions: export,
        ..Default::default()
    };
    match merge_with(programs, &options, &debug) {
        Ok(m) => {
            let map = serde_json::to_vec(&m.map).unwrap();
            writeln!(
                out,
                "{}  {}  {case}",
                sha256_hex(&m.wasm),
                &sha256_hex(&map)[..16]
            )
        }
        Err(e) => writeln!(out, "error: {e}  {case}"),
    }
    .unwrap();
}

/// Table and element shapes: eager (active segments kept) and lazy tables, passive and
/// declared segments, expression items, table initialisers, passive data and `data.drop`.
const SHAPES: &[(&str, &str)] = &[
    (
        "eager_table",
        r#"(module (memory (export "memory") 1) (table 4 funcref)
             (func $a) (elem (i32.const 1) func $a $a) (func (export "_start")))"#,
    ),
    (
        "lazy_table",
        r#"(module (memory (export "memory") 1) (global $g i32 (i32.const 3)) (table 4 funcref)
             (func $a) (elem (global.get $g) func $a $a) (func (export "_start")))"#,
    ),
    (
        "segments",
        r#"(module (memory (export "memory") 2) (global $o i32 (i32.const 300))
             (table 2 8 funcref (ref.func $a)) (table 1 externref)
             (func $a) (func $b (result i32) i32.const 1)
             (elem declare func $b)
             (elem $p funcref (ref.func $a) (ref.null func))
             (elem (table 0) (i32.const 0) funcref (ref.func $b))
             (data (i32.const 0) "abc") (data (i32.const 10) "def") (data (global.get $o) "x")
             (data (i32.const 9000) "far") (data $pd "passive")
             (func (export "_start") (data.drop 0) (data.drop $pd) (elem.drop $p)
               (drop (ref.func $b))))"#,
    ),
    (
        "start_and_globals",
        r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
             (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
             (import "wasi_snapshot_preview1" "proc_exit" (func $exit2 (param i32)))
             (memory (export "memory") 1 3) (global $g (mut i64) (i64.const 5))
             (global i32 (i32.add (i32.const 1) (i32.const 2)))
             (func $s (global.set $g (i64.const 6))) (start $s)
             (func $f (export "f") (param i32) (result i32) local.get 0)
             (func (export "_start") (call $exit2 (i32.const 3))))"#,
    ),
];

#[test]
fn merged_bytes_match_the_baseline() {
    let mut out = String::new();

    // The fixture programs together (hostcall needs its import stubbed), and each alone.
    let mut fixtures = runtime_check::cases::fixture_programs();
    let hostcall = std::fs::read(fixtures_dir().join("wasm/hostcall.wasm")).unwrap();
    fixtures.push(("hostcall".into(), hostcall));
    let entries = fixture_entries(&fixtures);
    line(&mut out, "fixtures", &entries, true, false);
    line(&mut out, "fixtures-exporting", &entries, true, true);
    for p in &entries {
        line(
            &mut out,
            &format!("fixture {}", p.name),
            std::slice::from_ref(p),
            true,
            false,
        );
    }

    // The hardening fixtures: exceptions, GC, post-MVP features; and the refused one.
    let names = ["exceptions", "exceptions_uncaught", "features", "gc"];
    let wasms: Vec<Vec<u8>> = names
        .iter()
        .map(|n| hardening_fixture(&format!("{n}.wat")))
        .collect();
    let programs: Vec<Program> = names
        .iter()
        .zip(&wasms)
        .map(|(n, w)| program(n, w))
        .collect();
    line(&mut out, "hardening", &programs, false, false);
    line(&mut out, "hardening-exporting", &programs, false, true);
    let legacy = hardening_fixture("legacy_exceptions.wat");
    line(
        &mut out,
        "legacy",
        &[program("legacy", &legacy)],
        false,
        false,
    );

    // Table, element and data shapes, alone and together.
    let shapes: Vec<Vec<u8>> = SHAPES
        .iter()
        .map(|(_, w)| wat::parse_str(w).unwrap())
        .collect();
    let programs: Vec<Program> = SHAPES
        .iter()
        .zip(&shapes)
        .map(|((n, _), w)| program(n, w))
        .collect();
    for p in &programs {
        line(
            &mut out,
            &format!("shape {}", p.name),
            std::slice::from_ref(p),
            false,
            true,
        );
    }
    line(&mut out, "shapes", &programs, false, true);

    // wasm-smith module sets, as the fuzz property test generates them.
    for case in 0..200 {
        let mut rng = case_rng(case);
        let n = 1 + rng.below(6) as usize;
        let wasms: Vec<Vec<u8>> = (0..n).map(|_| generate(&mut rng).0).collect();
        let programs: Vec<Program> = wasms
            .iter()
            .enumerate()
            .filter(|(_, w)| merger::Footprint::of(w).is_ok())
            .map(|(k, w)| program(&format!("m{k}"), w))
            .collect();
        if !programs.is_empty() {
            line(
                &mut out,
                &format!("fuzz case {case}"),
                &programs,
                false,
                true,
            );
        }
    }

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/baselines/pinned.sha256");
    check_baseline(&path, &out);
}
