//! Programs that use the megabinary's exported memory as their own memory: after the
//! dispatcher selected one, it must see exactly what it sees standalone (its declared initial
//! size, zeros except its data), its declared maximum must still hold, and it must work next to
//! bridged programs in one megabinary. Whatever way it is started: `_start` by
//! `MEGABIN_ENTRY` or by `argv[0]` (the dispatcher reads the arguments and environment into the
//! exported memory first), `megabin_dispatch` (the host writes the digest there) or
//! `<name>_start`.

mod support;

use merger::{merge, merge_with, DebugOptions, MergeOptions, Program};
use runtime_check::{RunConfig, Runner, Status};
use support::{aliased, assert_start_refused, inv, sha256_hex};

/// Checks its own memory as standalone and exits with the number of the first check that
/// failed (0 when all hold): 1 initial size is 2 pages, 2 exactly the 5 data bytes are
/// non-zero, 3 `memory.grow 3` from 2 pages returns 2, 4 `memory.grow 1` past the maximum (5)
/// returns -1, 5 the size is then 5 pages, 6 the grown pages are zero.
const MEMCHECK: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory 2 5)
  (data (i32.const 100) "hello")
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
    (call $check (i32.eq (memory.size) (i32.const 2)) (i32.const 1))
    (call $check (i32.eq (call $nonzero) (i32.const 5)) (i32.const 2))
    (call $check (i32.eq (memory.grow (i32.const 3)) (i32.const 2)) (i32.const 3))
    (call $check (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (i32.const 4))
    (call $check (i32.eq (memory.size) (i32.const 5)) (i32.const 5))
    (call $check (i32.eq (call $nonzero) (i32.const 5)) (i32.const 6))
    (call $exit (i32.const 0))))"#;

/// A bridged program (its memory starts empty, smaller than the exported memory): exits with
/// 40 + the number of environment variables it sees.
const ENVCOUNT: &str = r#"(module
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 0)
  (func (export "_start")
    (drop (memory.grow (i32.const 1)))
    (drop (call $sizes (i32.const 0) (i32.const 4)))
    (call $exit (i32.add (i32.const 40) (i32.load (i32.const 0))))))"#;

/// A bridged program that returns at once.
const NOOP: &str = r#"(module (memory 0) (func (export "_start")))"#;

/// A program on the exported memory that reads its environment: writes the strings buffer of
/// `environ_get` to stdout; exits 3 when a pointer does not start a string of that buffer, 4
/// when the buffer does not end in a NUL, 5 when the host failed.
const ENVDUMP: &str = r#"(module
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 2)
  (func (export "_start") (local $i i32) (local $p i32)
    (if (call $sizes (i32.const 0) (i32.const 4)) (then (call $exit (i32.const 5))))
    (if (call $get (i32.const 1024) (i32.const 65536)) (then (call $exit (i32.const 5))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (i32.load (i32.const 0))))
        (local.set $p (i32.load (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 2)))))
        (if (i32.eqz (local.get $i))
          (then (if (i32.ne (local.get $p) (i32.const 65536)) (then (call $exit (i32.const 3)))))
          (else (if (i32.load8_u (i32.sub (local.get $p) (i32.const 1)))
            (then (call $exit (i32.const 3))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (if (i32.load (i32.const 4))
      (then (if (i32.load8_u (i32.add (i32.const 65535) (i32.load (i32.const 4))))
        (then (call $exit (i32.const 4))))))
    (i32.store (i32.const 8) (i32.const 65536))
    (i32.store (i32.const 12) (i32.load (i32.const 4)))
    (drop (call $write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 16)))))"#;

fn programs<'a>(memcheck: &'a [u8], envcount: &'a [u8]) -> Vec<Program<'a>> {
    vec![aliased("envcount", envcount), aliased("memcheck", memcheck)]
}

#[test]
fn a_program_on_the_exported_memory_sees_what_it_sees_standalone() {
    let memcheck = wat::parse_str(MEMCHECK).unwrap();
    let envcount = wat::parse_str(ENVCOUNT).unwrap();
    let ps = programs(&memcheck, &envcount);
    let merged = merge(&ps, &MergeOptions::default()).unwrap();
    merger::check_isolation(&merged.wasm).unwrap_or_else(|p| panic!("{}", p.join("\n")));
    let entry = |name: &str| merged.map.entries.iter().find(|e| e.name == name).unwrap();
    assert_eq!(
        entry("memcheck").memory,
        0,
        "memcheck uses the exported memory"
    );
    assert_ne!(
        entry("envcount").memory,
        0,
        "envcount's memory starts empty: bridged"
    );

    let runner = Runner::new().unwrap();
    let alone = runner.compile(&memcheck).unwrap();
    let mega = runner.compile(&merged.wasm).unwrap();
    let bridged = merge_with(
        &ps,
        &MergeOptions::default(),
        &DebugOptions {
            bridge_all: true,
            ..Default::default()
        },
    )
    .unwrap();
    let bridged = runner.compile(&bridged.wasm).unwrap();
    let digest = format!("sha256:{}", sha256_hex(&memcheck));
    // A large environment and argument list: the dispatcher's scratch is not small.
    let big = "x".repeat(20_000);
    let invocations = [
        inv(&["memcheck"], &[]),
        inv(&["/usr/bin/memcheck", &big], &[("A", big.clone())]),
        inv(
            &["other"],
            &[("MEGABIN_ENTRY", digest.clone()), ("B", big.clone())],
        ),
    ];
    for i in &invocations {
        let standalone = runner.run_captured(&alone, "_start", i).unwrap();
        assert_eq!(standalone.status, Status::Exit(0), "{standalone:?}");
        for (module, export) in [
            (&mega, "_start"),
            (&mega, "memcheck_start"),
            (&bridged, "_start"),
            (&bridged, "memcheck_start"),
        ] {
            let out = runner.run_captured(module, export, i).unwrap();
            assert_eq!(
                out.status, standalone.status,
                "{export} {:?}: {out:?}",
                i.args
            );
        }
    }
    // Through `megabin_dispatch`: the host writes the digest into the exported memory.
    let config = RunConfig {
        args: vec!["memcheck".into()],
        env: vec![("C".into(), big.clone())],
        ..Default::default()
    };
    let d = entry("memcheck").digest.0;
    let code = runtime_check::run_module(runner.engine(), &mega, "memcheck", &d, &config);
    assert_eq!(code.unwrap(), 0);
    // The bridged program next to it still hides the dispatcher's variable.
    let env_digest = format!("sha256:{}", sha256_hex(&envcount));
    let i = inv(&["x"], &[("MEGABIN_ENTRY", env_digest), ("D", "1".into())]);
    assert_eq!(
        runner.run_captured(&mega, "_start", &i).unwrap().status,
        Status::Exit(41)
    );
}

/// The dispatcher's scratch lives in the exported memory until it selects the program; when
/// the arguments and environment did not fit in the program's initial memory, the program
/// cannot see its memory as standalone and the start traps with a message (a documented
/// limit; `megabin_dispatch` and `<name>_start` need no scratch).
#[test]
fn arguments_larger_than_the_initial_memory_are_refused_with_a_message() {
    let memcheck = wat::parse_str(MEMCHECK).unwrap();
    let envcount = wat::parse_str(ENVCOUNT).unwrap();
    let merged = merge(&programs(&memcheck, &envcount), &MergeOptions::default()).unwrap();
    let message = "more memory than the program's initial memory";
    assert_start_refused(&merged.wasm, "memcheck", 200_000, message);
}

/// A program on the exported memory reads its environment from the dispatcher's cache: the
/// same strings and pointers as standalone, without `MEGABIN_ENTRY`, however it is started;
/// and a bridged program started before it makes its start trap with a message.
#[test]
fn a_program_on_the_exported_memory_reads_its_environment_without_megabin_entry() {
    let envdump = wat::parse_str(ENVDUMP).unwrap();
    let envcount = wat::parse_str(ENVCOUNT).unwrap();
    let noop = wat::parse_str(NOOP).unwrap();
    let ps = vec![
        aliased("envcount", &envcount),
        aliased("envdump", &envdump),
        aliased("noop", &noop),
    ];
    let merged = merge(&ps, &MergeOptions::default()).unwrap();
    merger::check_isolation(&merged.wasm).unwrap_or_else(|p| panic!("{}", p.join("\n")));
    let entry = |name: &str| merged.map.entries.iter().find(|e| e.name == name).unwrap();
    assert_eq!(entry("envdump").memory, 0);
    let runner = Runner::new().unwrap();
    let alone = runner.compile(&envdump).unwrap();
    let mega = runner.compile(&merged.wasm).unwrap();
    let digest = format!("sha256:{}", sha256_hex(&envdump));
    let big = "z".repeat(10_000);
    let env = vec![
        ("A", "1".to_string()),
        ("MEGABIN_ENTRYX", "kept".to_string()),
        ("B", big),
        ("EMPTY", String::new()),
    ];
    let standalone = runner
        .run_captured(&alone, "_start", &inv(&["envdump"], &env))
        .unwrap();
    assert_eq!(standalone.status, Status::Exit(0), "{standalone:?}");
    assert!(standalone
        .stdout
        .starts_with(b"A=1\0MEGABIN_ENTRYX=kept\0B=zz"));
    let mut with_entry = vec![("MEGABIN_ENTRY", digest)];
    with_entry.extend(env.iter().cloned());
    with_entry.push(("MEGABIN_ENTRY", "sha256:ignored".to_string()));
    for (export, i) in [
        ("_start", inv(&["x"], &with_entry)),
        ("_start", inv(&["envdump"], &env)),
        ("envdump_start", inv(&["x"], &with_entry)),
    ] {
        let out = runner.run_captured(&mega, export, &i).unwrap();
        assert_eq!(out.status, Status::Exit(0), "{export}: {out:?}");
        assert_eq!(out.stdout, standalone.stdout, "{export}");
    }
    let empty = runner
        .run_captured(&mega, "envdump_start", &inv(&["x"], &[]))
        .unwrap();
    assert_eq!((empty.status, empty.stdout), (Status::Exit(0), vec![]));
    // The bridged program next to it still hides the dispatcher's variable.
    let count = runner
        .run_captured(&mega, "_start", &inv(&["envcount"], &with_entry[1..3]))
        .unwrap();
    assert_eq!(count.status, Status::Exit(42), "{count:?}");
    // A bridged program first: the second start is refused, with a message.
    let out = runner
        .run_captured_seq(&mega, &["noop_start", "envdump_start"], &inv(&["x"], &env))
        .unwrap();
    assert!(matches!(out.status, Status::Trap { .. }), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another program already ran"), "{err}");
}

/// After a program on the exported memory ran, the dispatcher's static data is that program's
/// memory: every further start in the same instance (`_start`, a bridged or a memory-0
/// `<name>_start`) traps at once, printing nothing and reading nothing of it.
#[test]
fn nothing_starts_after_a_program_on_the_exported_memory() {
    // A memory-0 program that returns (so the instance can be called again), leaving
    // non-zero bytes everywhere the dispatcher's tables and messages were.
    let scribble = wat::parse_str(
        r#"(module
          (memory 2)
          (func (export "_start")
            (memory.fill (i32.const 0) (i32.const 0x41) (i32.const 131072))))"#,
    )
    .unwrap();
    let envdump = wat::parse_str(ENVDUMP).unwrap();
    let noop = wat::parse_str(NOOP).unwrap();
    let merged = merge(
        &[
            aliased("envdump", &envdump),
            aliased("noop", &noop),
            aliased("scribble", &scribble),
        ],
        &MergeOptions::default(),
    )
    .unwrap();
    let runner = Runner::new().unwrap();
    let mega = runner.compile(&merged.wasm).unwrap();
    for next in ["_start", "noop_start", "envdump_start", "scribble_start"] {
        let out = runner
            .run_captured_seq(&mega, &["scribble_start", next], &inv(&["noop"], &[]))
            .unwrap();
        assert!(
            matches!(&out.status, Status::Trap { code, .. } if code.contains("unreachable")),
            "{next}: {out:?}"
        );
        assert!(
            out.stdout.is_empty() && out.stderr.is_empty(),
            "{next}: {out:?}"
        );
    }
}

/// `check_isolation` (what `megabin verify` runs) accepts entries on the exported memory only
/// when their start calls the dispatcher's `activate_shared`: an entry that skips it could run
/// after another program in the same memory.
#[test]
fn isolation_requires_the_guard_of_entries_on_the_exported_memory() {
    let guard = 1 + router_gen::dispatch::Router::ACTIVATE_SHARED;
    let funcs: String = (0..=guard + 1).map(|_| "(func)").collect();
    let wat = format!(
        r#"(module
          (memory (export "memory") 1)
          {funcs}
          (func (export "a_start") (call {guard}))
          (func (export "b_start") (call 0))
          (export "a.memory" (memory 0))
          (export "b.memory" (memory 0)))"#
    );
    let wasm = wat::parse_str(&wat).unwrap();
    let problems = merger::check_isolation(&wasm).unwrap_err();
    let unguarded = |e: &str| {
        problems
            .iter()
            .any(|p| p.starts_with(&format!("{e}: uses the exported memory")))
    };
    assert!(unguarded("b"), "{problems:?}");
    assert!(!unguarded("a"), "{problems:?}");
    // Every megabinary the merger makes passes.
    let memcheck = wat::parse_str(MEMCHECK).unwrap();
    let envcount = wat::parse_str(ENVCOUNT).unwrap();
    let merged = merge(&programs(&memcheck, &envcount), &MergeOptions::default()).unwrap();
    merger::check_isolation(&merged.wasm).unwrap();
}

/// Memory 0 starts at the smallest initial memory of the programs that use it, so that their
/// start need not grow it (each run would pay for the page protection changes); a program with
/// a larger minimum still sees exactly its standalone memory, as does the one at the smallest
/// minimum (MEMCHECK's checks, 2 pages, more than the dispatcher's 1).
#[test]
fn memory_0_starts_at_the_smallest_program_minimum() {
    let memcheck = wat::parse_str(MEMCHECK).unwrap();
    // Exits with memory.size + 10 × (memory.grow 1 + 1): 3 standalone (3 pages, and its
    // maximum refuses the growth).
    let larger = wat::parse_str(
        r#"(module
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory 3 3)
          (func (export "_start")
            (call $exit (i32.add (memory.size) (i32.mul (i32.const 10)
              (i32.add (memory.grow (i32.const 1)) (i32.const 1)))))))"#,
    )
    .unwrap();
    let merged = merge(
        &[aliased("memcheck", &memcheck), aliased("larger", &larger)],
        &MergeOptions::default(),
    )
    .unwrap();
    assert!(merged.map.entries.iter().all(|e| e.memory == 0));
    let mut pages = None;
    for payload in wasmparser::Parser::new(0).parse_all(&merged.wasm) {
        if let wasmparser::Payload::MemorySection(r) = payload.unwrap() {
            pages = Some(r.into_iter().next().unwrap().unwrap().initial);
        }
    }
    assert_eq!(pages, Some(2), "memory 0 starts at memcheck's minimum");
    let runner = Runner::new().unwrap();
    let mega = runner.compile(&merged.wasm).unwrap();
    let status = |name: &str| {
        runner
            .run_captured(&mega, "_start", &inv(&[name], &[]))
            .unwrap()
    };
    assert_eq!(status("memcheck").status, Status::Exit(0));
    assert_eq!(status("larger").status, Status::Exit(3));
}
