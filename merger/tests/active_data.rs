//! A megabinary whose only program uses the exported memory keeps that program's data
//! segments active in memory 0, as standalone, so that Wasmtime maps them copy-on-write (a
//! memory image shared by every instance) instead of each instance copying them at
//! activation. The program must still see exactly its standalone memory, in every fresh
//! instance, however it is started; and arguments that would reach its data are refused with
//! a message instead of overwriting it.

mod support;

use merger::{merge, MergeOptions};
use runtime_check::{Invocation, RunConfig, Runner, Status};
use support::aliased;

/// Data far above the dispatcher's static data (as CPython's, after its stack). Exits with the
/// number of the first check that failed (0 when all hold): 1 initial size is 8 pages, 2
/// exactly the 11 data bytes are non-zero, 3 the data is in place (not what an earlier
/// instance wrote there), 4 the environment has as
/// many variables as standalone (the caller passes the count in argv[1]'s length), 5 a write
/// into the data reads back, 6 `memory.grow 2` returns 8, 7 `memory.grow 1` past the maximum
/// returns -1.
const HIGHDATA: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env (param i32 i32) (result i32)))
  (memory (export "memory") 8 10)
  (data (i32.const 300000) "hello")
  (data (i32.const 400000) "world!")
  (func $nonzero (result i32) (local $i i32) (local $n i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (i32.shl (memory.size) (i32.const 16))))
        (if (i32.load8_u (local.get $i))
          (then (local.set $n (i32.add (local.get $n) (i32.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $n))
  (func $check (param $ok i32) (param $code i32)
    (if (i32.eqz (local.get $ok)) (then (call $exit (local.get $code)))))
  (func (export "_start")
    (call $check (i32.eq (memory.size) (i32.const 8)) (i32.const 1))
    (call $check (i32.eq (call $nonzero) (i32.const 11)) (i32.const 2))
    (call $check (i32.and (i32.eq (i32.load8_u (i32.const 400005)) (i32.const 33))
                          (i32.eq (i32.load8_u (i32.const 300000)) (i32.const 104))) (i32.const 3))
    (drop (call $env (i32.const 0) (i32.const 4)))
    (call $check (i32.le_u (i32.load (i32.const 0)) (i32.const 2)) (i32.const 4))
    (i32.store8 (i32.const 300000) (i32.const 88))
    (call $check (i32.eq (i32.load8_u (i32.const 300000)) (i32.const 88)) (i32.const 5))
    (i32.store (i32.const 0) (i32.const 0))
    (call $check (i32.eq (memory.grow (i32.const 2)) (i32.const 8)) (i32.const 6))
    (call $check (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (i32.const 7))
    (call $exit (i32.const 0))))"#;

/// A second program, so that the megabinary is no longer one program's.
const NOOP: &str = r#"(module (memory 1) (func (export "_start")))"#;

/// (memory 0's initial pages, active data segments) of a megabinary.
fn layout(wasm: &[u8]) -> (u64, usize) {
    let (mut pages, mut active) = (0, 0);
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload.unwrap() {
            wasmparser::Payload::MemorySection(r) => {
                pages = r.into_iter().next().unwrap().unwrap().initial;
            }
            wasmparser::Payload::DataSection(r) => {
                for d in r {
                    let d = d.unwrap();
                    active += matches!(d.kind, wasmparser::DataKind::Active { .. }) as usize;
                }
            }
            _ => {}
        }
    }
    (pages, active)
}

fn inv(args: &[&str], env: &[(&str, String)]) -> Invocation {
    Invocation {
        args: args.iter().map(|a| a.to_string()).collect(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        ..Default::default()
    }
}

#[test]
fn a_lone_program_keeps_its_data_active_and_sees_its_standalone_memory() {
    let wasm = wat::parse_str(HIGHDATA).unwrap();
    let merged = merge(&[aliased("highdata", &wasm)], &MergeOptions::default()).unwrap();
    merger::check_isolation(&merged.wasm).unwrap_or_else(|p| panic!("{}", p.join("\n")));
    // Memory 0 starts at the program's size; its two segments are active beside the
    // dispatcher's static data.
    assert_eq!(layout(&merged.wasm), (8, 3));

    let runner = Runner::new().unwrap();
    let alone = runner.compile(&wasm).unwrap();
    let mega = runner.compile(&merged.wasm).unwrap();
    let big = "x".repeat(50_000);
    let invocations = [
        inv(&["highdata"], &[]),
        inv(&["highdata", &big], &[("A", big.clone())]),
    ];
    for i in &invocations {
        let standalone = runner.run_captured(&alone, "_start", i).unwrap();
        assert_eq!(standalone.status, Status::Exit(0), "{standalone:?}");
        // Twice each: an instance's write into the data must not reach the next instance.
        for export in ["_start", "highdata_start", "_start", "highdata_start"] {
            let out = runner.run_captured(&mega, export, i).unwrap();
            assert_eq!(
                out.status,
                Status::Exit(0),
                "{export} {}: {out:?}",
                i.args.len()
            );
        }
    }
    // Through `megabin_dispatch` (the host writes the digest at address 0).
    let config = RunConfig {
        args: vec!["highdata".into()],
        ..Default::default()
    };
    let d = merged.map.entries[0].digest.0;
    for _ in 0..2 {
        let code = runtime_check::run_module(runner.engine(), &mega, "highdata", &d, &config);
        assert_eq!(code.unwrap(), 0);
    }
}

/// The dispatcher's copies of the arguments and environment may not reach the program's data:
/// its start refuses with a message (standalone, the host would have placed them elsewhere).
#[test]
fn arguments_that_would_reach_a_lone_program_s_data_are_refused_with_a_message() {
    let wasm = wat::parse_str(HIGHDATA).unwrap();
    let merged = merge(&[aliased("highdata", &wasm)], &MergeOptions::default()).unwrap();
    let runner = Runner::new().unwrap();
    let mega = runner.compile(&merged.wasm).unwrap();
    let huge = "y".repeat(320_000);
    let out = runner
        .run_captured(&mega, "_start", &inv(&["highdata"], &[("H", huge)]))
        .unwrap();
    assert!(matches!(out.status, Status::Trap { .. }), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("more memory than the program's initial memory"),
        "{err}"
    );
}

/// With a second program, the data segments are passive again (the memory is not one
/// program's), and the program still sees its standalone memory.
#[test]
fn with_another_program_the_data_is_applied_at_activation() {
    let wasm = wat::parse_str(HIGHDATA).unwrap();
    let noop = wat::parse_str(NOOP).unwrap();
    let merged = merge(
        &[aliased("highdata", &wasm), aliased("noop", &noop)],
        &MergeOptions::default(),
    )
    .unwrap();
    let (pages, active) = layout(&merged.wasm);
    assert_eq!(active, 1, "only the dispatcher's static data");
    assert!(
        pages < 8,
        "memory 0 starts at the dispatcher's size: {pages}"
    );
    let runner = Runner::new().unwrap();
    let mega = runner.compile(&merged.wasm).unwrap();
    let out = runner
        .run_captured(&mega, "_start", &inv(&["highdata"], &[]))
        .unwrap();
    assert_eq!(out.status, Status::Exit(0), "{out:?}");
}
