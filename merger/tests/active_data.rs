//! A megabinary whose only program uses the exported memory keeps that program's data
//! segments active in memory 0, as standalone, so that Wasmtime maps them copy-on-write (a
//! memory image shared by every instance) instead of each instance copying them at
//! activation. The program must still see exactly its standalone memory, in every fresh
//! instance, however it is started; and arguments that would reach its data are refused with
//! a message instead of overwriting it.

mod support;

use merger::{merge, MergeOptions};
use runtime_check::{RunConfig, Runner, Status};
use support::{aliased, assert_start_refused, inv, Harness, Outcome};

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
    let message = "more memory than fits below the program's data";
    assert_start_refused(&merged.wasm, "highdata", 320_000, message);
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

/// A program's `memory.init` and `data.drop` of a segment that stays active behave as
/// standalone: the segment was dropped at instantiation, so copying 0 bytes from it works,
/// copying 1 traps, and dropping it again is allowed.
#[test]
fn memory_init_and_data_drop_of_an_active_segment_behave_as_standalone() {
    let harness = Harness::new();
    for n in [0, 1] {
        let wasm = wat::parse_str(format!(
            r#"(module
              (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
              (memory (export "memory") 8)
              (data (i32.const 300000) "hello")
              (func (export "_start")
                (memory.init 0 (i32.const 16) (i32.const 0) (i32.const {n}))
                (data.drop 0)
                (call $exit (i32.load8_u (i32.const 300000)))))"#
        ))
        .unwrap();
        let merged = merge(&[aliased("dataops", &wasm)], &MergeOptions::default()).unwrap();
        assert_eq!(layout(&merged.wasm).1, 2, "the program's data stays active");
        let run = |wasm: &[u8], export: &str| {
            let module = harness.compile(wasm).unwrap();
            let mut inst = harness.instantiate(&module).unwrap();
            harness.call(&mut inst, export, &[])
        };
        let standalone = run(&wasm, "_start");
        let expected = match n {
            0 => Outcome::Exit(104),
            _ => Outcome::Trap("MemoryOutOfBounds".into()),
        };
        assert_eq!(standalone, expected);
        assert_eq!(run(&merged.wasm, "dataops_start"), standalone, "n = {n}");
    }
}

/// `megabin_dispatch` erases the host's digest before the program runs: a digest placed in a
/// lone program's data (which is in memory 0 from instantiation on) would change that data,
/// so only one within the host's first 64 bytes is accepted (returns 2 otherwise, running
/// nothing).
#[test]
fn megabin_dispatch_refuses_a_digest_outside_the_host_bytes() {
    // Exits with the first byte of its data (`h`, 104) and the byte the host area had (0).
    let wasm = wat::parse_str(
        r#"(module
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 8)
          (data (i32.const 300000) "hello")
          (func (export "_start")
            (call $exit (i32.add (i32.load8_u (i32.const 300000)) (i32.load8_u (i32.const 32))))))"#,
    )
    .unwrap();
    let merged = merge(&[aliased("first", &wasm)], &MergeOptions::default()).unwrap();
    assert_eq!(layout(&merged.wasm).1, 2, "the program's data stays active");
    let digest = merged.map.entries[0].digest.0;
    let harness = Harness::new();
    let module = harness.compile(&merged.wasm).unwrap();
    for (at, expected) in [
        (300_000, Outcome::Values(vec!["i32:2".into()])),
        (33, Outcome::Values(vec!["i32:2".into()])),
        // The last place that fits in bytes 0-63: the program runs and sees its own data.
        (32, Outcome::Exit(104)),
    ] {
        let mut inst = harness.instantiate(&module).unwrap();
        let memory = inst.instance.get_memory(&mut inst.store, "memory").unwrap();
        memory.write(&mut inst.store, at, &digest).unwrap();
        let out = harness.call(
            &mut inst,
            "megabin_dispatch",
            &[wasmtime::Val::I32(at as i32)],
        );
        assert_eq!(out, expected, "digest at {at}");
        if at == 300_000 {
            // Refused: the data under the digest is what the host wrote, not erased.
            let bytes = harness.memory(&mut inst, "memory");
            assert_eq!(&bytes[at..at + 32], &digest);
        }
    }
}

/// The isolation check (run by verification on any megabinary) refuses active data in the
/// exported memory (besides the dispatcher's static data, segment 0) when more than one
/// entry could run there: whichever started would see the other's bytes.
#[test]
fn isolation_allows_active_data_in_memory_0_only_for_a_lone_entry() {
    let wasm = wat::parse_str(HIGHDATA).unwrap();
    let lone = merge(&[aliased("highdata", &wasm)], &MergeOptions::default()).unwrap();
    assert_eq!(layout(&lone.wasm).1, 3);
    merger::check_isolation(&lone.wasm).unwrap_or_else(|p| panic!("{}", p.join("\n")));
    let guard = 1 + router_gen::dispatch::Router::ACTIVATE_SHARED;
    let funcs: String = (0..=guard + 1).map(|_| "(func)").collect();
    let forged = |entries: &str| {
        let wat = format!(
            r#"(module
              (memory (export "memory") 1)
              (data (i32.const 64) "static")
              (data (i32.const 4096) "a's secret")
              {funcs}
              {entries})"#
        );
        merger::check_isolation(&wat::parse_str(wat).unwrap())
            .err()
            .unwrap_or_default()
    };
    let entry = |name: &str| {
        format!(
            r#"(func (export "{name}_start") (call {guard}))
               (export "{name}.memory" (memory 0))"#
        )
    };
    let about_data = |problems: &[String]| {
        problems
            .iter()
            .any(|p| p.contains("active in the exported memory 0"))
    };
    let one = forged(&entry("a"));
    assert!(!about_data(&one), "{one:?}");
    let two = forged(&format!("{} {}", entry("a"), entry("b")));
    assert!(about_data(&two), "{two:?}");
}
