//! Bounds of the WASI bridge: the scratch allocator traps when an allocation would end at or
//! past 4 GiB (its `i32` cursor would wrap onto the dispatcher's static data at address 0)
//! instead of handing out bridge addresses that alias that data; and empty iovecs are skipped
//! like wasmtime-wasi skips them (the `emptyiov` fixture, also in the differential tests).

use merger::{merge_with, DebugOptions, MergeOptions, Program};
use runtime_check::{Invocation, Runner, Status};

/// A program whose `fd_read` (of a closed fd, 99) passes one iovec of `size` bytes, then exits
/// 0. The bridge allocates, in order: the iovec array (8 bytes), the iovec's buffer (`size`
/// bytes, not copied in: the host fills it) and `nread` (4 bytes).
fn reader(size: u32) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $x (param i32)))
          (memory (export "memory") 1)
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 64))
            (i32.store (i32.const 4) (i32.const {size}))
            (drop (call $r (i32.const 99) (i32.const 0) (i32.const 1) (i32.const 16)))
            (call $x (i32.const 0))))"#
    ))
    .unwrap()
}

fn merged(size: u32) -> Vec<u8> {
    let wasm = reader(size);
    let programs = [Program {
        name: "reader".into(),
        wasm: &wasm,
        aliases: vec!["reader".into()],
        validated: None,
    }];
    // Bridged: as a program of its own, `reader` would use the exported memory directly.
    merge_bridged(&programs, true)
}

/// Merges `programs`, every one of them through the bridge when `bridge_all`.
fn merge_bridged(programs: &[Program<'_>], bridge_all: bool) -> Vec<u8> {
    let debug = DebugOptions {
        bridge_all,
        ..Default::default()
    };
    merge_with(programs, &MergeOptions::default(), &debug)
        .unwrap()
        .wasm
}

/// The bridge cursor's initial value (global 0): the first scratch address.
fn scratch_base(wasm: &[u8]) -> u64 {
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        if let wasmparser::Payload::GlobalSection(globals) = payload.unwrap() {
            let g = globals.into_iter().next().unwrap().unwrap();
            let mut ops = g.init_expr.get_operators_reader();
            if let wasmparser::Operator::I32Const { value } = ops.read().unwrap() {
                return value as u32 as u64;
            }
        }
    }
    panic!("no cursor global");
}

fn run(runner: &Runner, wasm: &[u8]) -> Status {
    let module = runner.compile(wasm).unwrap();
    let inv = Invocation {
        args: vec!["reader".into()],
        ..Invocation::default()
    };
    runner
        .run_captured(&module, "reader_start", &inv)
        .unwrap()
        .status
}

#[test]
fn a_bridge_allocation_ending_at_4_gib_traps() {
    let runner = Runner::new().unwrap();
    let base = scratch_base(&merged(0));
    // The iovec array takes 8 bytes at the aligned base; the buffer follows it.
    let buffer_start = base.next_multiple_of(8) + 8;
    assert_eq!(
        run(&runner, &merged(1 << 20)),
        Status::Exit(0),
        "a buffer that fits is fine"
    );
    // The buffer ends at exactly 4 GiB (the cursor wrapped to 0), or one byte below it (the
    // next allocation's alignment wrapped to 0): either way `nread` would have been placed
    // on the static data. Both must trap.
    for end in [1u64 << 32, (1u64 << 32) - 1] {
        let wasm = merged((end - buffer_start) as u32);
        assert_eq!(scratch_base(&wasm), base, "same layout");
        match run(&runner, &wasm) {
            Status::Trap { message, .. } => assert!(message.contains("unreachable"), "{message}"),
            other => panic!("end {end:#x}: {other:?}, expected a trap"),
        }
    }
}

#[test]
fn empty_iovecs_with_out_of_range_pointers_behave_as_standalone() {
    let fixtures = runtime_check::cases::fixture_programs();
    let (_, wasm) = fixtures
        .iter()
        .find(|(n, _)| n == "emptyiov")
        .expect("fixtures/wasm/emptyiov.wasm");
    let case = runtime_check::cases::load_cases()
        .into_iter()
        .find(|c| c.id == "emptyiov")
        .expect("emptyiov case");
    let runner = Runner::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let inv = case.invocation(tmp.path()).unwrap();
    let standalone = runner
        .run_captured(&runner.compile(wasm).unwrap(), "_start", &inv)
        .unwrap();
    let programs = [Program {
        name: "emptyiov".into(),
        wasm,
        aliases: vec!["emptyiov".into()],
        validated: None,
    }];
    let expected = "message through an empty iovec\nfirst: errno=0 n=31\n\
                    all-empty: errno=0 n=0\nread: errno=0 n=4 data=abc\n\n";
    assert_eq!(standalone.status, Status::Exit(0));
    assert_eq!(String::from_utf8_lossy(&standalone.stdout), expected);
    for bridge_all in [true, false] {
        let merged = merge_bridged(&programs, bridge_all);
        let merged = runner
            .run_captured(&runner.compile(&merged).unwrap(), "emptyiov_start", &inv)
            .unwrap();
        assert_eq!(merged.status, standalone.status, "{bridge_all} {merged:?}");
        assert_eq!(merged.stdout, standalone.stdout, "{bridge_all}");
    }
}
