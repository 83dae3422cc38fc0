//! `#!` scripts run through a merged interpreter (issue 16, item 1): the manifest lists each
//! runnable script with its digest, interpreter and argv; `megabin run` and agent tools verify
//! the script and the interpreter and run the interpreter with
//! `[interpreter, (arg,) script, args...]`, the script (only) readable at its path. Compared
//! with the same interpreter run standalone on the stock `wasmtime` CLI, with the script's
//! directory preopened at the same path.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/wasm/{name}.wasm"))
}

/// The scripts of the test rootfs: (rootfs path, content).
const SCRIPTS: &[(&str, &str)] = &[
    // cat prints the script it is given: proves the script is readable at its path.
    ("/usr/local/bin/show", "#!/bin/cat\nsecond line of show\n"),
    // The one interpreter argument, spaces and all, as the kernel passes it.
    ("/usr/local/bin/args", "#!/usr/bin/envargs  -x  y \nbody\n"),
    // `env NAME`: NAME looked up in the rootfs PATH, run with argv[0] = NAME.
    ("/usr/local/bin/viaenv", "#!/usr/bin/env envargs\n"),
    ("/usr/local/bin/perlish", "#!/usr/bin/perl\nprint 1;\n"),
    ("/usr/local/bin/nativeish", "#!/bin/native\n"),
    ("/usr/local/bin/nested", "#!/usr/local/bin/show\n"),
    ("/usr/local/bin/envopts", "#!/usr/bin/env -S envargs -a\n"),
    ("/usr/local/bin/tampered", "#!/bin/cat\noriginal\n"),
];

struct Built {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    out: PathBuf,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("rootfs");
        write_exec(
            &root.join("bin/cat"),
            &std::fs::read(fixture("cat")).unwrap(),
        );
        write_exec(
            &root.join("usr/bin/envargs"),
            &std::fs::read(fixture("envargs")).unwrap(),
        );
        write_exec(&root.join("bin/native"), b"\x7fELF\x02\x01\x01\0native");
        for (path, content) in SCRIPTS {
            write_exec(&root.join(&path[1..]), content.as_bytes());
        }
        std::fs::write(root.join("usr/local/bin/secret"), "not for the script\n").unwrap();
        std::fs::write(
            root.join("megabin.toml"),
            "[agent_tools.show]\npath = \"/usr/local/bin/show\"\n\
             description = \"Shows itself\"\n",
        )
        .unwrap();
        let out = tmp.path().join("out");
        assert_ok(&build(&root, &out, &[]));
        compile(&out);
        // Modified after the build.
        let tampered = root.join("usr/local/bin/tampered");
        std::fs::write(&tampered, "#!/bin/cat\nchanged\n").unwrap();
        Built {
            _tmp: tmp,
            root,
            out,
        }
    })
}

fn run(program: &[&str]) -> Output {
    let b = built();
    let mut c = run_cmd(&b.out, &b.root, &[], program);
    c.env_remove("RUST_BACKTRACE").stdin(Stdio::null());
    c.output().unwrap()
}

/// The interpreter `name` run standalone on the stock CLI with `argv`, the script's directory
/// of the rootfs preopened (read-only) at its path, as megabin preopens its copy of it.
fn stock(wasmtime: &Path, name: &str, script: &str, argv: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (parent, file) = script.rsplit_once('/').unwrap();
    std::fs::copy(built().root.join(&script[1..]), dir.path().join(file)).unwrap();
    let mut c = Command::new(wasmtime);
    c.env_remove("RUST_BACKTRACE")
        .arg("run")
        .arg("--dir")
        .arg(format!("{}::{parent}", dir.path().display()))
        .arg("--argv0")
        .arg(argv[0])
        .arg(fixture(name))
        .args(&argv[1..])
        .stdin(Stdio::null());
    c.output().unwrap()
}

fn assert_same(what: &str, stock: &Output, ours: &Output) {
    assert_eq!(text(&ours.stdout), text(&stock.stdout), "{what}: stdout");
    assert_eq!(text(&ours.stderr), text(&stock.stderr), "{what}: stderr");
    assert_eq!(ours.status.code(), stock.status.code(), "{what}: status");
}

#[test]
fn the_manifest_lists_runnable_scripts_with_their_interpreter() {
    let b = built();
    let m = manifest(&b.out);
    let listed: Vec<(&str, &str, Vec<&str>)> = m
        .scripts
        .iter()
        .map(|(p, s)| {
            let argv = s.argv.iter().map(String::as_str).collect();
            (p.as_str(), s.interpreter.as_str(), argv)
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            (
                "/usr/local/bin/args",
                "/usr/bin/envargs",
                vec!["/usr/bin/envargs", "-x  y"]
            ),
            ("/usr/local/bin/show", "/bin/cat", vec!["/bin/cat"]),
            ("/usr/local/bin/tampered", "/bin/cat", vec!["/bin/cat"]),
            ("/usr/local/bin/viaenv", "/usr/bin/envargs", vec!["envargs"]),
        ]
    );
    let show = &m.scripts["/usr/local/bin/show"];
    let content = SCRIPTS[0].1.as_bytes();
    assert_eq!(show.hash, megabin_format::Digest::of(content));
    assert_eq!(show.size, content.len() as u64);
    assert!(m.id_is_consistent());
    // Scripts that cannot run stay skipped, with the reason.
    let skipped = |p: &str| m.skipped.get(p).cloned().unwrap_or_default();
    for (path, why) in [
        (
            "/usr/local/bin/perlish",
            "script: interpreter /usr/bin/perl is not in the rootfs",
        ),
        (
            "/usr/local/bin/nativeish",
            "script: interpreter /bin/native is not merged (not-recompiled-native)",
        ),
        (
            "/usr/local/bin/nested",
            "script: interpreter /usr/local/bin/show is itself a script",
        ),
        ("/usr/local/bin/envopts", "not supported"),
    ] {
        assert!(skipped(path).contains(why), "{path}: {}", skipped(path));
    }
}

#[test]
fn a_script_runs_through_its_interpreter_as_on_stock_wasmtime() {
    let wasmtime = stock_wasmtime();
    let cases: &[(&str, &[&str], &str, &[&str])] = &[
        // (script, its arguments, interpreter fixture, the argv the kernel would give)
        (
            "/usr/local/bin/show",
            &[],
            "cat",
            &["/bin/cat", "/usr/local/bin/show"],
        ),
        (
            "/usr/local/bin/args",
            &["a", "b c"],
            "envargs",
            &[
                "/usr/bin/envargs",
                "-x  y",
                "/usr/local/bin/args",
                "a",
                "b c",
            ],
        ),
        (
            "/usr/local/bin/viaenv",
            &["1"],
            "envargs",
            &["envargs", "/usr/local/bin/viaenv", "1"],
        ),
    ];
    for (script, args, interpreter, argv) in cases {
        let ours = run(&[&[*script][..], args].concat());
        assert!(ours.status.success(), "{script}: {}", stderr(&ours));
        if *interpreter == "envargs" {
            let expected: String = argv
                .iter()
                .enumerate()
                .map(|(i, a)| format!("argv[{i}]={a}\n"))
                .collect();
            assert!(
                text(&ours.stdout).contains(&expected),
                "{}",
                text(&ours.stdout)
            );
        }
        if let Some(w) = &wasmtime {
            assert_same(script, &stock(w, interpreter, script, argv), &ours);
        }
    }
    // Through a bare name (the rootfs PATH) as well.
    let by_name = run(&["show"]);
    assert_eq!(text(&by_name.stdout), SCRIPTS[0].1);
}

#[test]
fn only_the_script_is_readable_and_only_for_reading() {
    // cat is given a file next to the script: not visible (the script's directory is a
    // private copy holding the script alone).
    let o = run(&["/usr/local/bin/show", "/usr/local/bin/secret"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(text(&o.stdout).starts_with(SCRIPTS[0].1));
    assert!(!text(&o.stdout).contains("not for the script"));
    assert!(
        stderr(&o).contains("cat: /usr/local/bin/secret"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_modified_script_or_interpreter_is_refused() {
    let o = run(&["/usr/local/bin/tampered"]);
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "the interpreter never ran");
    assert!(
        stderr(&o).contains("/usr/local/bin/tampered was modified or replaced"),
        "{}",
        stderr(&o)
    );
    // `verify --rootfs` (a rebuild) names the script that no longer matches.
    let o = verify_rootfs_cmd(&built().out, &built().root)
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(
        text(&o.stdout).contains("/usr/local/bin/tampered: the build has script")
            || stderr(&o).contains("/usr/local/bin/tampered: the build has script"),
        "{}{}",
        text(&o.stdout),
        stderr(&o)
    );
    // The interpreter is verified too: a copy of the rootfs with another cat.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    copy_tree(&built().root, &root, false);
    write_exec(
        &root.join("bin/cat"),
        &std::fs::read(fixture("hello")).unwrap(),
    );
    let mut c = run_cmd(&built().out, &root, &[], &["/usr/local/bin/show"]);
    let o = c.stdin(Stdio::null()).output().unwrap();
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    assert!(
        stderr(&o).contains("its interpreter /bin/cat was modified or replaced"),
        "{}",
        stderr(&o)
    );
}

/// Attacks on a script's file after the build: replaced by a FIFO (must not block), by a
/// symlink to a file with the original content elsewhere (the path is resolved inside the
/// rootfs, so only content matters: it runs), by a directory.
#[test]
fn a_script_swapped_for_a_fifo_or_directory_is_refused_without_blocking() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    copy_tree(&built().root, &root, false);
    let show = root.join("usr/local/bin/show");
    let run_show = |root: &Path| {
        let c = run_cmd(&built().out, root, &[], &["/usr/local/bin/show"]);
        output_within(c, std::time::Duration::from_secs(20))
    };
    std::fs::remove_file(&show).unwrap();
    mkfifo(&show);
    let o = run_show(&root);
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
    std::fs::remove_file(&show).unwrap();
    std::fs::create_dir(&show).unwrap();
    let o = run_show(&root);
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    std::fs::remove_dir(&show).unwrap();
    // The same bytes behind a symlink inside the rootfs: verified by content, runs.
    std::fs::write(root.join("usr/local/bin/.real"), SCRIPTS[0].1).unwrap();
    std::os::unix::fs::symlink(".real", &show).unwrap();
    let o = run_show(&root);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(text(&o.stdout), SCRIPTS[0].1);
}

#[test]
fn a_script_without_a_merged_interpreter_is_not_found_with_the_reason() {
    let o = run(&["/usr/local/bin/perlish"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("interpreter /usr/bin/perl is not in the rootfs"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_script_can_be_an_agent_tool() {
    let b = built();
    let m = manifest(&b.out);
    let tool = &m.agent_tools["show"];
    assert_eq!(tool.digest, m.scripts["/usr/local/bin/show"].hash);
    let mut c = megabin();
    c.args(["run", "--rootfs"])
        .arg(&b.root)
        .args(["--tool", "show"])
        .arg(&b.out)
        .arg("-");
    let o = run_with_stdin(c, b"from stdin\n");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(text(&o.stdout), format!("{}from stdin\n", SCRIPTS[0].1));
}
