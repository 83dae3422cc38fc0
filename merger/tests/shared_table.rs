//! Programs on the exported memory also share one table (table 0): an instance activates at
//! most one of them, so each can have it as its own. After `<name>_start` filled it, a program
//! must see exactly the table it sees standalone (size, slots, nulls, its declared maximum),
//! whichever other programs share it; and the megabinary then holds one table for all of
//! them instead of one each (what instantiation pays for).

mod support;

use merger::{merge, MergeOptions};
use runtime_check::{Invocation, Runner, Status};
use support::aliased;

/// Checks its table as standalone and exits with the number of the first check that failed
/// (0 when all hold): 1 size 4, 2 slot 0 calls `$a`, 3 slot 1 is null (the second segment
/// wrote a null over `$b`), 4 slot 2 calls `$d` (written over `$c`), 5 slot 3 is null, 6
/// `table.grow 2` returns 4, 7 `table.grow 1` past the maximum (6) returns -1, 8 the size is
/// then 6, 9 a passive segment's function lands with `table.init`.
const TABLECHECK: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (type $r (func (result i32)))
  (memory 2)
  (table 4 6 funcref)
  (elem (i32.const 0) $a $b $c)
  (elem (i32.const 1) funcref (ref.null func) (ref.func $d))
  (elem $p funcref (ref.func $e))
  (func $a (result i32) (i32.const 10))
  (func $b (result i32) (i32.const 20))
  (func $c (result i32) (i32.const 30))
  (func $d (result i32) (i32.const 40))
  (func $e (result i32) (i32.const 50))
  (func $check (param $ok i32) (param $code i32)
    (if (i32.eqz (local.get $ok)) (then (call $exit (local.get $code)))))
  (func (export "_start")
    (call $check (i32.eq (table.size) (i32.const 4)) (i32.const 1))
    (call $check (i32.eq (call_indirect (type $r) (i32.const 0)) (i32.const 10)) (i32.const 2))
    (call $check (ref.is_null (table.get (i32.const 1))) (i32.const 3))
    (call $check (i32.eq (call_indirect (type $r) (i32.const 2)) (i32.const 40)) (i32.const 4))
    (call $check (ref.is_null (table.get (i32.const 3))) (i32.const 5))
    (call $check (i32.eq (table.grow (ref.null func) (i32.const 2)) (i32.const 4)) (i32.const 6))
    (call $check (i32.eq (table.grow (ref.null func) (i32.const 1)) (i32.const -1)) (i32.const 7))
    (call $check (i32.eq (table.size) (i32.const 6)) (i32.const 8))
    (table.init $p (i32.const 5) (i32.const 0) (i32.const 1))
    (call $check (i32.eq (call_indirect (type $r) (i32.const 5)) (i32.const 50)) (i32.const 9))
    (call $exit (i32.const 0))))"#;

/// Another program on the exported memory with a table (no maximum): exits with what its slot
/// 1 returns, or 99 when the table is not its own 2 slots.
const OTHER: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (type $r (func (result i32)))
  (memory 2)
  (table 2 funcref)
  (elem (i32.const 1) $seven)
  (func $seven (result i32) (i32.const 7))
  (func (export "_start")
    (if (i32.ne (table.size) (i32.const 2)) (then (call $exit (i32.const 99))))
    (if (i32.eqz (ref.is_null (table.get (i32.const 0)))) (then (call $exit (i32.const 99))))
    (call $exit (call_indirect (type $r) (i32.const 1)))))"#;

/// A bridged program (its memory starts empty) with a table: keeps a table of its own. Exits
/// with what its slot 0 returns.
const BRIDGED: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (type $r (func (result i32)))
  (memory 0)
  (table 1 funcref)
  (elem (i32.const 0) $three)
  (func $three (result i32) (i32.const 3))
  (func (export "_start") (call $exit (call_indirect (type $r) (i32.const 0)))))"#;

/// A program on the exported memory whose table slot 5 is out of bounds: calling it traps,
/// standalone and merged (slots other programs would have beyond its size do not exist).
const OUT_OF_BOUNDS: &str = r#"(module
  (type $r (func (result i32)))
  (memory 2)
  (table 1 funcref)
  (elem (i32.const 0) $one)
  (func $one (result i32) (i32.const 1))
  (func (export "_start") (drop (call_indirect (type $r) (i32.const 5)))))"#;

fn table_count(wasm: &[u8]) -> u32 {
    let mut tables = 0;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        if let wasmparser::Payload::TableSection(r) = payload.unwrap() {
            tables += r.count();
        }
    }
    tables
}

#[test]
fn programs_on_the_exported_memory_see_their_own_table_in_the_shared_one() {
    let sources = [
        ("tablecheck", TABLECHECK),
        ("other", OTHER),
        ("bridged", BRIDGED),
        ("oob", OUT_OF_BOUNDS),
    ];
    let wasms: Vec<(&str, Vec<u8>)> = sources
        .iter()
        .map(|(n, s)| (*n, wat::parse_str(s).unwrap()))
        .collect();
    let programs: Vec<_> = wasms.iter().map(|(n, w)| aliased(n, w)).collect();
    let merged = merge(&programs, &MergeOptions::default()).unwrap();
    merger::check_isolation(&merged.wasm).unwrap_or_else(|p| panic!("{}", p.join("\n")));
    let entry = |name: &str| merged.map.entries.iter().find(|e| e.name == name).unwrap();
    for name in ["tablecheck", "other", "oob"] {
        assert_eq!(entry(name).memory, 0, "{name} is on the exported memory");
        assert_eq!(entry(name).tables, 0..1, "{name} uses the shared table");
    }
    assert_ne!(entry("bridged").memory, 0);
    assert_eq!(
        entry("bridged").tables,
        1..2,
        "the bridged program has its own"
    );
    assert_eq!(
        table_count(&merged.wasm),
        2,
        "one shared table, one bridged"
    );

    let runner = Runner::new().unwrap();
    let mega = runner.compile(&merged.wasm).unwrap();
    for (name, wasm) in &wasms {
        let alone = runner.compile(wasm).unwrap();
        let i = Invocation {
            args: vec![name.to_string()],
            ..Default::default()
        };
        let standalone = runner.run_captured(&alone, "_start", &i).unwrap();
        for export in ["_start".to_string(), format!("{name}_start")] {
            let out = runner.run_captured(&mega, &export, &i).unwrap();
            match (&standalone.status, &out.status) {
                (Status::Trap { code: a, .. }, Status::Trap { code: b, .. }) => {
                    assert!(
                        a.contains("undefined element") || a.contains("out of bounds"),
                        "{a}"
                    );
                    assert!(
                        b.contains("undefined element") || b.contains("out of bounds"),
                        "{b}"
                    );
                }
                (a, b) => assert_eq!(a, b, "{name} via {export}"),
            }
        }
    }
    let code = |name: &str| {
        let i = Invocation {
            args: vec![name.to_string()],
            ..Default::default()
        };
        runner.run_captured(&mega, "_start", &i).unwrap().status
    };
    // What each exits with, so that a check that never ran cannot pass.
    assert_eq!(code("tablecheck"), Status::Exit(0));
    assert_eq!(code("other"), Status::Exit(7));
    assert_eq!(code("bridged"), Status::Exit(3));
    assert!(matches!(code("oob"), Status::Trap { .. }));
}

/// `check_isolation` lets entries on the exported memory share a table created empty (each
/// start calls `activate_shared`: one per instance), but not a table that holds a function
/// before any start runs, and not between an entry with its own memory and one on the
/// exported memory.
#[test]
fn isolation_allows_a_shared_table_only_between_entries_on_the_exported_memory() {
    let guard = 1 + router_gen::dispatch::Router::ACTIVATE_SHARED;
    let funcs: String = (0..=guard + 1).map(|_| "(func)").collect();
    let wat = |table: &str, c_memory: u32| {
        format!(
            r#"(module
              (type $v (func))
              (memory (export "memory") 1)
              (memory 0)
              {table}
              {funcs}
              (func $a_secret (global.set $a_state (i32.const 1)))
              (global $a_state (mut i32) (i32.const 0))
              (func (export "a_start") (call {guard}) (call_indirect (type $v) (i32.const 0)))
              (func (export "b_start") (call {guard}) (call_indirect (type $v) (i32.const 0)))
              (func (export "c_start") (call_indirect (type $v) (i32.const 0)))
              (export "a.memory" (memory 0))
              (export "b.memory" (memory 0))
              (export "c.memory" (memory {c_memory})))"#
        )
    };
    let check = |table: &str, c_memory: u32| {
        merger::check_isolation(&wat::parse_str(wat(table, c_memory)).unwrap())
            .err()
            .unwrap_or_default()
    };
    let shared_by = |problems: &[String], a: &str, b: &str| {
        problems
            .iter()
            .any(|p| p.starts_with(&format!("{a} and {b} share state")))
    };
    // An empty table: a and b may share it; c has a memory of its own and must not touch it.
    let problems = check("(table 0 funcref)", 1);
    assert!(shared_by(&problems, "a", "c"), "{problems:?}");
    assert!(shared_by(&problems, "b", "c"), "{problems:?}");
    assert!(!shared_by(&problems, "a", "b"), "{problems:?}");
    // A table holding `$a_secret` from instantiation: b could run a's code.
    let problems = check("(table 1 funcref) (elem (i32.const 0) $a_secret)", 1);
    assert!(shared_by(&problems, "a", "b"), "{problems:?}");
    // Likewise a table whose slots exist before any start (not created empty).
    let problems = check("(table 1 funcref)", 1);
    assert!(shared_by(&problems, "a", "b"), "{problems:?}");
}

/// A lone program on the exported memory keeps a table of its own at its declared size,
/// which Wasmtime fills lazily: sharing would only make its start fill it.
#[test]
fn a_lone_program_on_the_exported_memory_keeps_its_own_table() {
    let tablecheck = wat::parse_str(TABLECHECK).unwrap();
    let bridged = wat::parse_str(BRIDGED).unwrap();
    let programs = [
        aliased("tablecheck", &tablecheck),
        aliased("bridged", &bridged),
    ];
    let merged = merge(&programs, &MergeOptions::default()).unwrap();
    let mut minimums = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(&merged.wasm) {
        if let wasmparser::Payload::TableSection(r) = payload.unwrap() {
            minimums.extend(r.into_iter().map(|t| t.unwrap().ty.initial));
        }
    }
    assert_eq!(minimums, [4, 1], "each program's own table, at its size");
    let runner = Runner::new().unwrap();
    let mega = runner.compile(&merged.wasm).unwrap();
    let i = Invocation {
        args: vec!["tablecheck".into()],
        ..Default::default()
    };
    assert_eq!(
        runner.run_captured(&mega, "_start", &i).unwrap().status,
        Status::Exit(0)
    );
}
