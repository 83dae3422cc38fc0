//! Programs that use the megabinary's exported memory as their own memory: after the
//! dispatcher selected one, it must see exactly what it sees standalone (its declared initial
//! size, zeros except its data), its declared maximum must still hold, and it must work next to
//! bridged programs in one megabinary. Whatever way it is started: `_start` by
//! `MEGABIN_ENTRY` or by `argv[0]` (the dispatcher reads the arguments and environment into the
//! exported memory first), `megabin_dispatch` (the host writes the digest there) or
//! `<name>_start`.

mod support;

use merger::{merge, merge_with, DebugOptions, MergeOptions, Program};
use runtime_check::{Invocation, RunConfig, Runner, Status};
use support::sha256_hex;

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

/// A bridged program (it reads the environment): prints `MEGABIN_ENTRY`-free `environ` count.
const ENVCOUNT: &str = r#"(module
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory 1)
  (func (export "_start")
    (drop (call $sizes (i32.const 0) (i32.const 4)))
    (call $exit (i32.add (i32.const 40) (i32.load (i32.const 0))))))"#;

fn programs<'a>(memcheck: &'a [u8], envcount: &'a [u8]) -> Vec<Program<'a>> {
    let p = |name: &str, wasm| Program {
        name: name.into(),
        wasm,
        aliases: vec![name.into()],
        validated: None,
    };
    vec![p("envcount", envcount), p("memcheck", memcheck)]
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
        "envcount reads the environment: bridged"
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
    let runner = Runner::new().unwrap();
    let mega = runner.compile(&merged.wasm).unwrap();
    let huge = "y".repeat(200_000);
    let out = runner
        .run_captured(&mega, "_start", &inv(&["memcheck"], &[("H", huge)]))
        .unwrap();
    assert!(matches!(out.status, Status::Trap { .. }), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("more memory than the program's initial memory"),
        "{err}"
    );
}
