//! Properties of merged modules beyond behaviour: validity, isolation, lazy activation,
//! dispatch, names, determinism, limits and typed errors.

mod support;

use merger::{
    check_isolation, merge, merge_with, DebugOptions, MergeError, MergeOptions, Merged, Program,
};
use runtime_check::cases::fixture_programs;
use runtime_check::{Invocation, Runner, Status};
use support::{fixture_entries, program, sha256_hex};

fn merge_fixtures(jobs: usize) -> Merged {
    let f = fixture_programs();
    merge(
        &fixture_entries(&f),
        &MergeOptions {
            jobs,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn output_validates_and_every_program_is_isolated() {
    let f = fixture_programs();
    for merged in [merge_fixtures(2), merge_bridged(&fixture_entries(&f))] {
        wasmparser::Validator::new()
            .validate_all(&merged.wasm)
            .unwrap();
        let report = check_isolation(&merged.wasm).unwrap_or_else(|p| panic!("{}", p.join("\n")));
        assert_eq!(report.entries.len(), f.len());
        let mut memories = std::collections::BTreeSet::new();
        for e in &merged.map.entries {
            let res = &report.entries[&e.name];
            let own: Vec<_> = res.memories.iter().filter(|&&m| m != 0).collect();
            if e.memory == 0 {
                // the program's memory is the exported one: it calls WASI directly
                assert!(e.trampolines.is_empty(), "{}: {e:?}", e.name);
                assert!(
                    own.is_empty(),
                    "{} touches no other memory: {res:?}",
                    e.name
                );
            } else {
                assert_eq!(
                    own,
                    [&e.memory],
                    "{} touches its own memory: {res:?}",
                    e.name
                );
                assert!(
                    memories.insert(e.memory),
                    "{}'s memory is not shared",
                    e.name
                );
                assert!(
                    res.memories.contains(&0),
                    "{} reaches WASI through the bridge",
                    e.name
                );
            }
        }
    }
    // As built, every fixture starts at least as large as the exported memory: none is bridged.
    let merged = merge_fixtures(2);
    assert!(
        merged.map.entries.iter().all(|e| e.memory == 0),
        "{:?}",
        merged.map.entries
    );
}

/// Merges with every program bridged (its own memory), as before programs could share.
fn merge_bridged(programs: &[Program<'_>]) -> Merged {
    let debug = DebugOptions {
        bridge_all: true,
        ..Default::default()
    };
    merge_with(programs, &MergeOptions::default(), &debug).unwrap()
}

#[test]
fn isolation_check_catches_a_program_touching_another_memory() {
    // Two programs; rewrite one memory index in the first program's code to the second's.
    let a = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "_start") (i32.store (i32.const 0) (i32.const 1))))"#,
    )
    .unwrap();
    let b = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "_start") (i32.store (i32.const 4) (i32.const 2))))"#,
    )
    .unwrap();
    let ps = vec![program("a", &a), program("b", &b)];
    let merged = merge_bridged(&ps);
    check_isolation(&merged.wasm).unwrap();
    // `i32.store` with memory index: the encoder writes memarg flags 0x42 (align 2 | 0x40)
    // followed by the memory index byte. Find a's store (memory 1) and point it at memory 2.
    let mut tampered = merged.wasm.clone();
    let pos = tampered
        .windows(3)
        .position(|w| w == [0x36, 0x42, 0x01])
        .expect("a's store into memory 1");
    tampered[pos + 2] = 0x02;
    wasmparser::Validator::new()
        .validate_all(&tampered)
        .unwrap();
    let problems = check_isolation(&tampered).unwrap_err();
    assert!(
        problems.iter().any(|p| p.contains("touches memory 2")),
        "{problems:?}"
    );
}

#[test]
fn instantiation_runs_no_program() {
    let merged = merge_fixtures(2);
    let runner = Runner::new().unwrap();
    let module = runner.compile(&merged.wasm).unwrap();
    let pages = runner.memory_pages(&module).unwrap();
    let bridge = pages.iter().find(|(n, _)| n == "memory").unwrap();
    assert!(bridge.1 <= 2, "bridge memory starts small: {bridge:?}");
    for e in &merged.map.entries {
        let export = format!("{}.memory", e.name);
        let size = pages.iter().find(|(n, _)| *n == export).unwrap().1;
        if e.memory == 0 {
            assert_eq!(size, bridge.1, "{export} is the exported memory");
        } else {
            assert_eq!(
                size, 0,
                "{export} must stay empty until its start export runs"
            );
        }
    }
}

#[test]
fn starting_a_program_twice_in_one_instance_traps_with_a_message() {
    // Bridged programs (their own memories; section 3 of docs/format.md).
    let f = fixture_programs();
    let merged = merge_bridged(&fixture_entries(&f));
    let runner = Runner::new().unwrap();
    let module = runner.compile(&merged.wasm).unwrap();
    let inv = Invocation {
        args: vec!["envargs".into()],
        ..Default::default()
    };
    let out = runner
        .run_captured_seq(&module, &["envargs_start", "envargs_start"], &inv)
        .unwrap();
    assert!(!out.stdout.is_empty(), "the first run works");
    assert!(
        matches!(out.status, Status::Trap { .. }),
        "{:?}",
        out.status
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`envargs` was already started"), "{err}");
}

/// A program using the exported memory as its own may only be the instance's one program:
/// started twice, after another program, or before another one, the second start traps (so
/// two programs never see each other's memory; after a bridged program, with a message:
/// `shared_memory.rs`).
#[test]
fn a_program_sharing_the_exported_memory_is_the_only_one_an_instance_runs() {
    let merged = merge_fixtures(2);
    let runner = Runner::new().unwrap();
    let module = runner.compile(&merged.wasm).unwrap();
    let inv = Invocation {
        args: vec!["x".into()],
        ..Default::default()
    };
    let startsec = "start section ran: 42\n";
    for (seq, first_output) in [
        (["startsec_start", "startsec_start"], startsec),
        (["startsec_start", "hello_start"], startsec),
        (["hello_start", "startsec_start"], "hello"),
        (["envargs_start", "startsec_start"], ""),
        (["startsec_start", "envargs_start"], startsec),
    ] {
        let out = runner.run_captured_seq(&module, &seq, &inv).unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.starts_with(first_output), "{seq:?}: {stdout}");
        assert!(
            matches!(out.status, Status::Trap { .. }),
            "{seq:?}: {:?}",
            out.status
        );
    }
}

/// The dispatcher exits with 127 ("not found"); the runner's host passes every status
/// 0..=255 through (`runtime_check::host`).
fn is_not_found(status: &Status) -> bool {
    matches!(status, Status::Exit(127))
}

#[test]
fn dispatcher_selects_by_digest_and_by_argv0() {
    let fixtures = fixture_programs();
    let merged = merge(&fixture_entries(&fixtures), &MergeOptions::default()).unwrap();
    let runner = Runner::new().unwrap();
    let module = runner.compile(&merged.wasm).unwrap();
    let run = |args: &[&str], env: &[(&str, String)]| {
        let inv = Invocation {
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ..Default::default()
        };
        runner.run_captured(&module, "_start", &inv).unwrap()
    };
    for (name, wasm) in &fixtures {
        if name != "hello" && name != "hello-debug" && name != "startsec" {
            continue;
        }
        let standalone = runner
            .run_captured(
                &runner.compile(wasm).unwrap(),
                "_start",
                &Invocation {
                    args: vec![format!("/usr/bin/{name}"), "x".into()],
                    ..Default::default()
                },
            )
            .unwrap();
        let by_argv0 = run(&[&format!("/usr/bin/{name}"), "x"], &[]);
        assert_eq!(by_argv0.stdout, standalone.stdout, "{name} by argv[0]");
        assert_eq!(by_argv0.status, Status::Exit(0));
        let digest = format!("sha256:{}", sha256_hex(wasm));
        let by_digest = run(
            &[&format!("/usr/bin/{name}"), "x"],
            &[("MEGABIN_ENTRY", digest)],
        );
        assert_eq!(by_digest.stdout, standalone.stdout, "{name} by digest");
    }
    let unknown = run(&["/bin/nope"], &[]);
    assert!(is_not_found(&unknown.status), "{:?}", unknown.status);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("is called nope"));
    assert!(unknown.stdout.is_empty());
    let wrong = run(
        &["hello"],
        &[("MEGABIN_ENTRY", format!("sha256:{}", "ab".repeat(32)))],
    );
    assert!(is_not_found(&wrong.status));
    assert!(wrong.stdout.is_empty(), "an unknown digest runs nothing");
    let bad = run(&["hello"], &[("MEGABIN_ENTRY", "sha256:xyz".into())]);
    assert!(is_not_found(&bad.status));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("must be sha256:"));
}

#[test]
fn traps_name_the_program() {
    let merged = merge_fixtures(2);
    let runner = Runner::new().unwrap();
    let module = runner.compile(&merged.wasm).unwrap();
    let inv = Invocation {
        args: vec!["panic".into()],
        ..Default::default()
    };
    let out = runner.run_captured(&module, "panic_start", &inv).unwrap();
    match out.status {
        Status::Trap { message, .. } => assert!(message.contains("panic::start"), "{message}"),
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn output_is_deterministic_whatever_the_thread_count() {
    assert_eq!(merge_fixtures(1).wasm, merge_fixtures(4).wasm);
}

#[test]
fn types_are_deduplicated_and_imports_shared() {
    let fixtures = fixture_programs();
    let merged = merge_fixtures(2);
    let count_types = |wasm: &[u8]| -> u32 {
        wasmparser::Parser::new(0)
            .parse_all(wasm)
            .filter_map(|p| match p.ok()? {
                wasmparser::Payload::TypeSection(r) => Some(r.count()),
                _ => None,
            })
            .sum()
    };
    let inputs: u32 = fixtures.iter().map(|(_, w)| count_types(w)).sum();
    let output = count_types(&merged.wasm);
    assert!(
        output < inputs / 2,
        "{output} output types vs {inputs} input types"
    );
    let mut imports = Vec::new();
    for p in wasmparser::Parser::new(0).parse_all(&merged.wasm) {
        if let Ok(wasmparser::Payload::ImportSection(r)) = p {
            for i in r.into_imports() {
                imports.push(i.unwrap().name.to_string());
            }
        }
    }
    let mut dedup = imports.clone();
    dedup.dedup();
    assert_eq!(imports, dedup, "each WASI function is imported once");
}

#[test]
fn too_many_programs_are_refused_and_fits_says_so() {
    let wasms: Vec<Vec<u8>> = (0..100)
        .map(|i| {
            wat::parse_str(format!(
                r#"(module (memory 1) (global i32 (i32.const {i})) (func (export "_start")))"#
            ))
            .unwrap()
        })
        .collect();
    let ps: Vec<Program> = wasms
        .iter()
        .enumerate()
        .map(|(i, w)| Program {
            name: format!("p{i}"),
            wasm: w,
            aliases: vec![],
            validated: None,
        })
        .collect();
    match merge(&ps, &MergeOptions::default()) {
        Err(MergeError::TooLarge(e)) => {
            assert_eq!((e.what, e.needed, e.limit), ("memories", 101, 100))
        }
        other => panic!("expected TooLarge, got {:?}", other.map(|m| m.map)),
    }
    let prints: Vec<_> = wasms
        .iter()
        .map(|w| merger::Footprint::of(w).unwrap())
        .collect();
    assert!(merger::fits(&prints).is_err());
    assert!(merger::fits(&prints[..99]).is_ok());
    merge(&ps[..99], &MergeOptions::default()).expect("99 programs fit");
}

#[test]
fn bad_names_are_refused() {
    let w = wat::parse_str(r#"(module (memory 1) (func (export "_start")))"#).unwrap();
    for names in [vec!["a", "a"], vec!["memory"], vec!["a-b"], vec![""]] {
        let ps: Vec<Program> = names
            .iter()
            .map(|n| Program {
                name: n.to_string(),
                wasm: &w,
                aliases: vec![],
                validated: None,
            })
            .collect();
        assert!(
            matches!(
                merge(&ps, &MergeOptions::default()),
                Err(MergeError::BadName(_))
            ),
            "{names:?}"
        );
    }
}

#[test]
fn a_single_program_megabinary_passes_the_isolation_check() {
    let fixtures = fixture_programs();
    let (name, wasm) = &fixtures[0];
    let merged = merge(
        &[Program {
            name: name.replace('-', "_"),
            wasm,
            aliases: vec![],
            validated: None,
        }],
        &MergeOptions::default(),
    )
    .unwrap();
    let report = check_isolation(&merged.wasm).unwrap_or_else(|p| panic!("{}", p.join("\n")));
    assert_eq!(report.entries.len(), 1);
    assert!(
        !report.shared.is_empty(),
        "the bridge helpers are recognised as shared"
    );
}

#[test]
fn reserved_and_duplicate_routes_get_typed_errors() {
    let w = wat::parse_str(r#"(module (memory 1) (func (export "_start")))"#).unwrap();
    let w2 = wat::parse_str(r#"(module (memory 1) (func (export "_start") nop))"#).unwrap();
    for n in ["megabin", "wasi"] {
        let r = merge(
            &[Program {
                name: n.into(),
                wasm: &w,
                aliases: vec![],
                validated: None,
            }],
            &MergeOptions::default(),
        );
        assert!(matches!(r, Err(MergeError::BadName(_))), "{n}");
    }
    let ps = [
        Program {
            name: "a".into(),
            wasm: &w,
            aliases: vec!["x".into()],
            validated: None,
        },
        Program {
            name: "b".into(),
            wasm: &w2,
            aliases: vec!["x".into()],
            validated: None,
        },
    ];
    assert!(matches!(
        merge(&ps, &MergeOptions::default()),
        Err(MergeError::Route(_))
    ));
}

/// A command whose table 0 (4 slots) gets `$a`/`$b` from one active element segment at
/// `offset`, and whose `_start` exits with the result of calling slot 1 indirectly. Its memory
/// starts empty, so it is bridged and keeps a table of its own (programs on the exported memory
/// share one: `tests/shared_table.rs`).
fn table_program(offset: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
             (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
             (memory (export "memory") 0)
             (global $base i32 (i32.const 1))
             (global $far i32 (i32.const 10))
             (table 4 funcref)
             (type $r (func (result i32)))
             (func $a (result i32) i32.const 7)
             (func $b (result i32) i32.const 9)
             (elem (table 0) ({offset}) func $a $b)
             (func (export "_start") (call $exit (call_indirect (type $r) (i32.const 1)))))"#
    ))
    .unwrap()
}

#[test]
fn element_segments_stay_active_only_where_they_cannot_trap() {
    use wasmparser::{ElementKind, Parser, Payload};
    // (entry, offset expression, exit code; `None`: the segment is out of bounds)
    let cases = [
        ("konst", "i32.const 0", Some(9)),
        ("global", "global.get $base", Some(7)),
        (
            "extended",
            "i32.sub (global.get $base) (i32.const 1)",
            Some(9),
        ),
        ("outside", "global.get $far", None),
    ];
    let wasm: Vec<Vec<u8>> = cases.iter().map(|c| table_program(c.1)).collect();
    let programs: Vec<Program<'_>> = cases
        .iter()
        .zip(&wasm)
        .map(|(c, w)| Program {
            name: c.0.into(),
            wasm: w,
            aliases: vec![],
            validated: None,
        })
        .collect();
    let merged = merge(&programs, &MergeOptions::default()).unwrap();
    check_isolation(&merged.wasm).unwrap();

    // Tables keep their minimum, and segments stay active, exactly where they cannot trap.
    let (mut minimums, mut active) = (Vec::new(), 0);
    for payload in Parser::new(0).parse_all(&merged.wasm) {
        match payload.unwrap() {
            Payload::TableSection(r) => {
                for t in r {
                    minimums.push(t.unwrap().ty.initial);
                }
            }
            Payload::ElementSection(r) => {
                for e in r {
                    active += matches!(e.unwrap().kind, ElementKind::Active { .. }) as usize;
                }
            }
            _ => {}
        }
    }
    for e in &merged.map.entries {
        let case = cases.iter().find(|c| c.0 == e.name).unwrap();
        let expected = if case.2.is_some() { 4 } else { 0 };
        assert_eq!(minimums[e.tables.start as usize], expected, "{}", e.name);
    }
    assert_eq!(active, 3);

    // Behaviour: the same results as standalone; the out-of-bounds segment fails only its
    // own entry (standalone: its instantiation), never the megabinary's instantiation.
    let runner = Runner::new().unwrap();
    let module = runner.compile(&merged.wasm).unwrap();
    let inv = Invocation::default();
    let out_of_bounds = |s: &Status| matches!(s, Status::Trap { code, message } if format!("{code} {message}").contains("out of bounds"));
    for ((name, _, exit), w) in cases.iter().zip(&wasm) {
        let got = runner
            .run_captured(&module, &format!("{name}_start"), &inv)
            .unwrap()
            .status;
        let alone = runner.compile(w).unwrap();
        let standalone = runner.run_captured(&alone, "_start", &inv);
        match exit {
            Some(code) => {
                assert_eq!(standalone.unwrap().status, Status::Exit(*code), "{name}");
                assert_eq!(got, Status::Exit(*code), "{name} merged");
            }
            None => {
                match standalone {
                    Err(e) => assert!(format!("{e:#}").contains("out of bounds"), "{e:#}"),
                    Ok(c) => assert!(out_of_bounds(&c.status), "{:?}", c.status),
                }
                assert!(out_of_bounds(&got), "{got:?}");
            }
        }
    }
}

/// The runner's engine (pooling allocator) takes the largest megabinary the merger makes, 99
/// entries with a memory and a table each, and instantiates it again and again (slots are
/// reused, not leaked).
#[test]
fn the_largest_megabinary_runs_repeatedly_on_the_runner_engine() {
    let max = merger::limits::MAX_ENTRIES as usize;
    let wasm: Vec<Vec<u8>> = (0..max)
        .map(|i| {
            let offset = format!("i32.const {}", i % 3);
            let mut w = table_program(&offset);
            // distinct bytes per entry: a trailing custom section
            w.extend_from_slice(&[0, 6, 4, b'c', b'o', b'p', b'y', i as u8]);
            w
        })
        .collect();
    let programs: Vec<Program<'_>> = wasm
        .iter()
        .enumerate()
        .map(|(i, w)| Program {
            name: format!("p{i}"),
            wasm: w,
            aliases: vec![],
            validated: None,
        })
        .collect();
    let merged = merge(&programs, &MergeOptions::default()).unwrap();
    let runner = Runner::new().unwrap();
    let module = runner.compile(&merged.wasm).unwrap();
    let inv = Invocation::default();
    for round in 0..3 {
        for i in [0, max / 2, max - 1] {
            // slot 1 holds $b (9) for offset 0, $a (7) for offset 1, nothing for offset 2
            let got = runner
                .run_captured(&module, &format!("p{i}_start"), &inv)
                .unwrap();
            match i % 3 {
                0 => assert_eq!(got.status, Status::Exit(9), "round {round} p{i}"),
                1 => assert_eq!(got.status, Status::Exit(7), "round {round} p{i}"),
                _ => assert!(
                    matches!(&got.status, Status::Trap { .. }),
                    "round {round} p{i}: {:?}",
                    got.status
                ),
            }
        }
    }
}
