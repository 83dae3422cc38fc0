//! Foreign function imports replaced by trapping stubs (`MergeOptions::stub_foreign_imports`):
//! refused without the option; with it the output validates, passes the isolation check, lists
//! the stubs in its merge map, runs the program until it calls a stub, and the trap's
//! innermost frame names the import.

mod support;

use merger::{check_isolation, merge, MergeError, MergeOptions, Unsupported};
use runtime_check::cases::{fixture_programs, fixtures_dir};
use runtime_check::{Invocation, Runner, Status};
use support::aliased;

const STUB: MergeOptions = MergeOptions {
    jobs: 2,
    stub_foreign_imports: true,
};

fn hostcall() -> Vec<u8> {
    std::fs::read(fixtures_dir().join("wasm/hostcall.wasm")).unwrap()
}

fn run(runner: &Runner, wasm: &[u8], export: &str, args: &[&str]) -> runtime_check::Captured {
    let module = runner.compile(wasm).unwrap();
    let inv = Invocation {
        args: args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    runner.run_captured(&module, export, &inv).unwrap()
}

#[test]
fn foreign_function_imports_are_refused_unless_stubbed() {
    let wasm = hostcall();
    match merge(&[aliased("hostcall", &wasm)], &MergeOptions::default()) {
        Err(MergeError::Unsupported {
            reason: Unsupported::ForeignImports(list),
            ..
        }) => assert_eq!(list, ["env::host_call"]),
        other => panic!("{other:?}"),
    }
    let footprint = |o: &MergeOptions| merger::Footprint::of_with(&wasm, o);
    assert!(footprint(&MergeOptions::default()).is_err());
    let stubbed = footprint(&STUB).unwrap();
    // Trampolines for 3 WASI functions, 1 stub, 2 defined functions, the entry's start and
    // room for its two checked grows (memory 0, the shared table).
    assert_eq!(stubbed.functions, 3 + 1 + 2 + 3);
}

#[test]
fn a_stubbed_program_runs_until_it_calls_the_stub_which_traps_naming_the_import() {
    let host = hostcall();
    let fixtures = fixture_programs();
    let mut programs = vec![aliased("hostcall", &host)];
    programs.extend(
        fixtures
            .iter()
            .filter(|(n, _)| n == "hello" || n == "exitcode")
            .map(|(n, w)| aliased(n, w)),
    );
    let merged = merge(&programs, &STUB).unwrap();
    let map = &merged.map.entries;
    assert_eq!(map[0].stubbed_imports, ["env::host_call"]);
    assert!(map[1..].iter().all(|e| e.stubbed_imports.is_empty()));
    let report = check_isolation(&merged.wasm).unwrap_or_else(|p| panic!("{}", p.join("\n")));
    assert_eq!(report.entries.len(), 3);

    let runner = Runner::new().unwrap();
    let quiet = run(&runner, &merged.wasm, "hostcall_start", &["hostcall"]);
    assert_eq!(quiet.status, Status::Exit(0));
    assert_eq!(quiet.stdout, b"hostcall: not calling env::host_call\n");

    let called = run(&runner, &merged.wasm, "hostcall_start", &["hostcall", "x"]);
    assert_eq!(called.stdout, b"hostcall: calling env::host_call\n");
    match &called.status {
        Status::Trap { code, message } => {
            assert!(
                code.ends_with("wasm `unreachable` instruction executed"),
                "{code}"
            );
            let first_frame = message
                .lines()
                .find(|l| l.trim_start().starts_with("0:") && l.contains('!'))
                .unwrap_or_default();
            assert!(
                first_frame.contains("megabin::stub::env::host_call"),
                "the innermost frame is the stub: {message}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The other programs of the megabinary are untouched.
    let hello = run(&runner, &merged.wasm, "hello_start", &["hello"]);
    assert_eq!(hello.status, Status::Exit(0));
}

/// Stubs keep the import's exact type (here several params and results, and two imports of
/// the same name with different types); non-function imports stay refused (`bad-input/`).
#[test]
fn stubs_have_the_import_types() {
    let wasm = wat::parse_str(
        r#"(module
          (import "env" "f" (func $f (param i64 f32) (result f64 i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (import "other" "f" (func $g (param externref)))
          (memory 1)
          (func (export "_start")
            (call $exit (i32.const 0))
            (drop (drop (call $f (i64.const 1) (f32.const 2))))
            (call $g (ref.null extern))))"#,
    )
    .unwrap();
    let merged = merge(&[aliased("p", &wasm)], &STUB).unwrap();
    assert_eq!(
        merged.map.entries[0].stubbed_imports,
        ["env::f", "other::f"]
    );
    check_isolation(&merged.wasm).unwrap();
    let runner = Runner::new().unwrap();
    assert_eq!(
        run(&runner, &merged.wasm, "p_start", &["p"]).status,
        Status::Exit(0)
    );
}
