//! Scan tests on tiny rootfs trees.

use super::*;
use sha2::{Digest, Sha256};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use wasm_encoder::{
    CodeSection, CustomSection, ExportKind, ExportSection, Function, FunctionSection, Module,
    TypeSection,
};

/// A module exporting one function as `export`; `tag` makes the content distinct and `pad`
/// appends a custom section of that many bytes.
fn module(export: &str, tag: i32, pad: usize) -> Vec<u8> {
    module_with(&[export], tag, 0, pad)
}

/// A module with one function, exported under each of `exports`, whose body pushes and drops
/// `tag` (distinct content); a custom section of `custom` bytes before the export section and
/// one of `pad` bytes at the end (none for 0).
pub(super) fn module_with(exports: &[&str], tag: i32, custom: usize, pad: usize) -> Vec<u8> {
    let custom_section = |size: usize| CustomSection {
        name: "pad".into(),
        data: vec![0x5a; size].into(),
    };
    let mut m = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([], []);
    m.section(&types);
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    m.section(&funcs);
    if custom > 0 {
        m.section(&custom_section(custom));
    }
    let mut ex = ExportSection::new();
    for name in exports {
        ex.export(name, ExportKind::Func, 0);
    }
    m.section(&ex);
    let mut code = CodeSection::new();
    let mut f = Function::new([]);
    f.instructions().i32_const(tag).drop().end();
    code.function(&f);
    m.section(&code);
    if pad > 0 {
        m.section(&custom_section(pad));
    }
    m.finish()
}

fn command(tag: i32) -> Vec<u8> {
    module("_start", tag, 0)
}

fn put(root: &Path, path: &str, bytes: &[u8], mode: u32) {
    let host = root.join(path.trim_start_matches('/'));
    fs::create_dir_all(host.parent().unwrap()).unwrap();
    fs::write(&host, bytes).unwrap();
    fs::set_permissions(&host, fs::Permissions::from_mode(mode)).unwrap();
}

fn link(root: &Path, path: &str, target: impl AsRef<Path>) {
    let host = root.join(path.trim_start_matches('/'));
    fs::create_dir_all(host.parent().unwrap()).unwrap();
    symlink(target, host).unwrap();
}

fn run(root: &Path) -> Scan {
    scan(root, &ScanOptions::with_jobs(2)).unwrap()
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn paths_of(scan: &Scan) -> Vec<Vec<&str>> {
    let mut all: Vec<Vec<&str>> = scan
        .programs
        .iter()
        .map(|p| p.paths.iter().map(String::as_str).collect())
        .collect();
    all.sort();
    all
}

/// Asserts the skip reason of each path.
fn assert_reasons(scan: &Scan, want: &[(&str, &str)]) {
    for (path, r) in want {
        assert_eq!(reason(scan, path).as_deref(), Some(*r), "{path}");
    }
}

fn reason(scan: &Scan, path: &str) -> Option<String> {
    scan.skipped.get(path).map(ToString::to_string)
}

fn program_at<'a>(scan: &'a Scan, path: &str) -> &'a Program {
    scan.programs
        .iter()
        .find(|p| p.paths.iter().any(|q| q == path))
        .unwrap_or_else(|| panic!("no program at {path}: {scan:#?}"))
}

#[test]
fn copies_and_hard_links_dedupe() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let a = command(1);
    put(root, "/bin/a", &a, 0o755);
    put(root, "/usr/bin/a", &a, 0o644);
    fs::hard_link(root.join("bin/a"), root.join("bin/a_hard")).unwrap();
    put(root, "/bin/c", &command(2), 0o755);
    let scan = run(root);
    assert_eq!(
        paths_of(&scan),
        vec![vec!["/bin/a", "/bin/a_hard", "/usr/bin/a"], vec!["/bin/c"]]
    );
    let p = program_at(&scan, "/bin/a");
    assert_eq!(p.digest, sha(&a));
    assert_eq!(p.size, a.len() as u64);
    assert_eq!(p.primary_path, "/bin/a");
    assert_eq!(p.host_path, root.join("bin/a"));
    assert_eq!(fs::read(&p.host_path).unwrap(), a);
    assert!(scan.programs.windows(2).all(|w| w[0].digest < w[1].digest));
    assert!(scan.skipped.is_empty());
    assert!(scan.warnings.is_empty());
}

#[test]
fn symlinks_resolve_inside_root() {
    let outer = tempfile::tempdir().unwrap();
    let root = &outer.path().join("root");
    let busybox = command(1);
    put(root, "/bin/busybox", &busybox, 0o755);
    put(root, "/etc/hostname", b"box\n", 0o644);
    // Decoys outside the rootfs that an unconfined resolution would find.
    put(outer.path(), "/bin/busybox", &command(99), 0o755);
    put(outer.path(), "/decoy", &command(98), 0o755);

    link(root, "/bin/[", "busybox");
    link(root, "/bin/ls", "./busybox");
    link(root, "/usr/bin/cat", "/bin/busybox");
    link(root, "/usr/bin/up", "../../../../../../bin/busybox");
    link(root, "/usr/bin/abs_up", "/etc/../../../bin/busybox");
    link(root, "/sbin", "/bin"); // directory symlink: not descended
    link(root, "/usr/sbin/via_dir", "../../sbin/ls");
    link(root, "/usr/bin/escape", outer.path().join("decoy"));
    link(root, "/usr/bin/escape_rel", "../../../decoy");

    let scan = run(root);
    assert_eq!(scan.programs.len(), 1, "{scan:#?}");
    let p = &scan.programs[0];
    assert_eq!(p.digest, sha(&busybox));
    assert_eq!(
        p.paths,
        [
            "/bin/[",
            "/bin/busybox",
            "/bin/ls",
            "/usr/bin/abs_up",
            "/usr/bin/cat",
            "/usr/bin/up",
            "/usr/sbin/via_dir"
        ]
    );
    assert_eq!(p.primary_path, "/bin/busybox");
    assert_eq!(entry_names(&scan.programs), ["busybox"]);
    assert_reasons(
        &scan,
        &[
            ("/usr/bin/escape", "dangling-symlink"),
            ("/usr/bin/escape_rel", "dangling-symlink"),
        ],
    );
    assert!(!scan.skipped.contains_key("/sbin"));
    assert_eq!(scan.skipped.len(), 2);
    assert_eq!(
        scan.warnings,
        [
            "/usr/bin/escape: dangling symlink",
            "/usr/bin/escape_rel: dangling symlink"
        ]
    );
}

#[test]
fn primary_path_prefers_the_real_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let body = command(5);
    // "/bin/tool" sorts first, but it is only a symlink.
    put(root, "/real/tool", &body, 0o755);
    link(root, "/bin/tool", "/real/tool");
    let scan = run(root);
    assert_eq!(paths_of(&scan), vec![vec!["/bin/tool", "/real/tool"]]);
    assert_eq!(scan.programs[0].primary_path, "/real/tool");
}

#[test]
fn loops_and_dangling_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("bin")).unwrap();
    link(root, "/bin/a", "b");
    link(root, "/bin/b", "/bin/a");
    link(root, "/bin/self", "self");
    link(root, "/bin/dir_loop/x", "../dir_loop/x");
    link(root, "/bin/dangling", "/nowhere/at/all");
    link(root, "/bin/empty_dir_target", "/bin/a/b");
    let scan = run(root);
    assert!(scan.programs.is_empty());
    assert_reasons(
        &scan,
        &[
            ("/bin/a", "symlink-loop"),
            ("/bin/b", "symlink-loop"),
            ("/bin/self", "symlink-loop"),
            ("/bin/dir_loop/x", "symlink-loop"),
            ("/bin/empty_dir_target", "symlink-loop"),
            ("/bin/dangling", "dangling-symlink"),
        ],
    );
    assert!(scan
        .warnings
        .iter()
        .any(|w| w == "/bin/dangling: dangling symlink"));
    assert!(scan
        .warnings
        .iter()
        .any(|w| w.starts_with("/bin/self: symlink loop")));
}

#[test]
fn classification() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(root, "/bin/script", b"#!/bin/sh -e\necho hi\n", 0o755);
    put(root, "/bin/badscript", b"#!\n", 0o755);
    put(root, "/etc/not_exec_script", b"#!/bin/sh\n", 0o644);
    put(
        root,
        "/bin/elf",
        b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0",
        0o755,
    );
    put(
        root,
        "/lib/libc.so",
        b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0",
        0o644,
    );
    put(root, "/bin/user_exec_only", b"\x7fELF", 0o700);
    put(root, "/bin/empty_exec", b"", 0o755);
    put(root, "/etc/empty", b"", 0o644);
    put(root, "/etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644);
    put(root, "/bin/component", b"\0asm\x0d\0\x01\0\x00\x00", 0o644);
    put(root, "/bin/reactor", &module("_initialize", 3, 0), 0o755);
    put(root, "/bin/garbage", b"\0asm\x01\0\0\0\xff\xff\xff", 0o755);
    put(root, "/bin/short", b"\0asm\x01", 0o755);
    put(root, "/bin/future", b"\0asm\x02\0\0\0", 0o755);
    let cmd = command(4);
    put(root, "/bin/truncated", &cmd[..cmd.len() - 2], 0o755);
    put(root, "/bin/data.wasm", &cmd, 0o644);
    link(root, "/bin/sh", "elf");
    link(root, "/bin/cfg", "/etc/passwd");

    let scan = run(root);
    assert_eq!(paths_of(&scan), vec![vec!["/bin/data.wasm"]]);
    let expect = [
        ("/bin/badscript", "script: the #! line names no interpreter"),
        ("/bin/elf", "not-recompiled-native"),
        ("/bin/sh", "not-recompiled-native"),
        ("/bin/user_exec_only", "not-recompiled-native"),
        ("/bin/empty_exec", "not-recompiled-native"),
        ("/bin/component", "wasm-component"),
        ("/bin/reactor", "wasm-reactor"),
    ];
    for (path, want) in expect {
        assert_eq!(reason(&scan, path).as_deref(), Some(want), "{path}");
    }
    for path in [
        "/bin/garbage",
        "/bin/short",
        "/bin/future",
        "/bin/truncated",
    ] {
        let got = reason(&scan, path).unwrap_or_default();
        assert!(got.starts_with("invalid-wasm: "), "{path}: {got}");
    }
    for path in [
        "/etc/not_exec_script",
        "/lib/libc.so",
        "/etc/empty",
        "/etc/passwd",
        "/bin/cfg",
    ] {
        assert!(!scan.skipped.contains_key(path), "{path}");
    }
    assert_eq!(scan.skipped.len(), expect.len() + 4);
    assert!(scan.warnings.is_empty(), "{:?}", scan.warnings);
    // Executable scripts are listed with their digest and #! line; the check stage decides.
    let scripts: Vec<&str> = scan.scripts.keys().map(String::as_str).collect();
    assert_eq!(scripts, ["/bin/script"]);
    let script = &scan.scripts["/bin/script"];
    assert_eq!(
        script.digest,
        megabin_format::Digest::of(b"#!/bin/sh -e\necho hi\n")
    );
    assert_eq!(script.size, 21);
    assert_eq!(
        (
            script.shebang.interpreter.as_str(),
            script.shebang.arg.as_deref()
        ),
        ("/bin/sh", Some("-e"))
    );
}

#[test]
fn special_files_and_odd_names_do_not_break_the_scan() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(root, "/bin/ok", &command(1), 0o755);
    // A FIFO must never be opened (it would block).
    let fifo = root.join("bin/fifo");
    let made_fifo = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    if made_fifo {
        link(root, "/bin/to_fifo", "fifo");
    }
    let odd = root.join("bin").join(OsStr::from_bytes(b"bad\xffname"));
    fs::write(&odd, command(2)).unwrap();
    put(root, "/bin/sp ace", &command(3), 0o755);
    let scan = run(root);
    assert_eq!(paths_of(&scan), vec![vec!["/bin/ok"], vec!["/bin/sp ace"]]);
    assert!(scan.skipped.is_empty());
    assert_eq!(scan.warnings.len(), 1, "{:?}", scan.warnings);
    assert!(scan.warnings[0].contains("not valid UTF-8"));
}

#[test]
fn large_program_is_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let big = module("_start", 1, 3 << 20);
    put(root, "/bin/big", &big, 0o755);
    let scan = run(root);
    assert_eq!(scan.programs.len(), 1);
    assert_eq!(scan.programs[0].digest, sha(&big));
    assert_eq!(scan.programs[0].size, big.len() as u64);
    assert_eq!(
        scan.programs[0].digest_hex(),
        sha(&big)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        "digest_hex is lowercase hex"
    );
    assert_eq!(scan.programs[0].digest_hex().len(), 64);
}

fn build_mixed_tree(root: &Path) {
    for i in 0..30 {
        put(root, &format!("/bin/p{i:02}"), &command(i % 12), 0o755);
        if i % 5 == 0 {
            link(root, &format!("/usr/bin/l{i:02}"), format!("/bin/p{i:02}"));
        }
    }
    put(root, "/bin/sh", b"\x7fELF", 0o755);
    put(root, "/bin/x.sh", b"#!/bin/sh", 0o755);
    put(root, "/bin/r", &module("_initialize", 1, 0), 0o755);
    link(root, "/bin/dangling", "/nope");
    link(root, "/bin/loop", "loop");
    put(root, "/usr/share/doc/readme", b"hello", 0o644);
}

#[test]
fn result_is_independent_of_job_count() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    build_mixed_tree(root);
    let one = scan(root, &ScanOptions::with_jobs(1)).unwrap();
    assert_eq!(one.programs.len(), 12);
    for jobs in [0, 2, 4, 64] {
        assert_eq!(
            scan(root, &ScanOptions::with_jobs(jobs)).unwrap(),
            one,
            "jobs={jobs}"
        );
    }
    assert_eq!(scan(root, &ScanOptions::default()).unwrap(), one);
}

#[test]
fn result_is_independent_of_root_location() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let root_b = b.path().join("deeper/root");
    build_mixed_tree(a.path());
    build_mixed_tree(&root_b);
    let mut sa = run(a.path());
    let mut sb = run(&root_b);
    for p in sa.programs.iter_mut().chain(sb.programs.iter_mut()) {
        p.host_path = PathBuf::new();
    }
    assert_eq!(sa, sb);
    assert!(!sa.warnings.is_empty());
    assert!(sa
        .warnings
        .iter()
        .all(|w| !w.contains(&*a.path().to_string_lossy())));
}

#[test]
fn entry_name_collisions_in_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(root, "/bin/tool", &command(1), 0o755);
    put(root, "/usr/local/bin/tool", &command(2), 0o755);
    put(root, "/bin/memory", &command(3), 0o755);
    put(root, "/bin/1st", &command(4), 0o755);
    put(root, "/bin/tool_start", &command(5), 0o755);
    let scan = run(root);
    let names = entry_names(&scan.programs);
    let by_path: BTreeMap<&str, &str> = scan
        .programs
        .iter()
        .zip(&names)
        .map(|(p, n)| (p.primary_path.as_str(), n.as_str()))
        .collect();
    assert_eq!(by_path["/bin/tool"], "tool");
    assert_eq!(by_path["/usr/local/bin/tool"], "tool_2");
    assert_eq!(by_path["/bin/memory"], "memory_2");
    assert_eq!(by_path["/bin/1st"], "_1st");
    assert_eq!(by_path["/bin/tool_start"], "tool_start_2");
}

#[test]
fn root_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = scan(&missing, &ScanOptions::default()).unwrap_err();
    assert!(matches!(err, ScanError::RootNotFound(_)));
    assert!(err.to_string().contains("missing"));
    let file = dir.path().join("file");
    fs::write(&file, b"x").unwrap();
    let err = scan(&file, &ScanOptions::default()).unwrap_err();
    assert!(matches!(err, ScanError::RootNotADirectory(_)));
    assert!(err.to_string().contains("file"));
}

#[test]
fn empty_root_and_symlinked_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    assert_eq!(run(&root), Scan::default());
    put(&root, "/bin/a", &command(1), 0o755);
    symlink(&root, dir.path().join("rootlink")).unwrap();
    let scan = run(&dir.path().join("rootlink"));
    assert_eq!(paths_of(&scan), vec![vec!["/bin/a"]]);
}

#[test]
fn skip_reason_strings() {
    assert_eq!(
        SkipReason::NotRecompiledNative.to_string(),
        "not-recompiled-native"
    );
    assert_eq!(
        SkipReason::Script("interpreter /usr/bin/perl is not merged".into()).to_string(),
        "script: interpreter /usr/bin/perl is not merged"
    );
    assert_eq!(SkipReason::WasmComponent.to_string(), "wasm-component");
    assert_eq!(SkipReason::WasmReactor.to_string(), "wasm-reactor");
    assert_eq!(
        SkipReason::InvalidWasm("bad".into()).to_string(),
        "invalid-wasm: bad"
    );
    assert_eq!(
        SkipReason::Unreadable("denied".into()).to_string(),
        "unreadable: denied"
    );
    assert_eq!(SkipReason::DanglingSymlink.to_string(), "dangling-symlink");
    assert_eq!(SkipReason::SymlinkLoop.to_string(), "symlink-loop");
    assert_eq!(
        serde_json::to_string(&SkipReason::InvalidWasm("x".into())).unwrap(),
        "\"invalid-wasm: x\""
    );
    let too_large = merger::LimitExceeded {
        what: "bytes",
        needed: 2,
        limit: 1,
    };
    assert_eq!(
        SkipReason::TooLarge(too_large).to_string(),
        "too-large: 2 bytes needed, engines accept at most 1"
    );
    assert_eq!(SkipReason::DanglingSymlink.kind(), "dangling-symlink");
}

/// The reasons of programs the merger refuses: the manifest strings of docs/manifest.md.
#[test]
fn skip_reasons_from_the_merger() {
    use merger::Unsupported;
    let reason = |u: Unsupported| SkipReason::from(u).to_string();
    assert_eq!(reason(Unsupported::Component), "wasm-component");
    assert_eq!(reason(Unsupported::NoStart), "wasm-reactor");
    assert_eq!(reason(Unsupported::Invalid("x".into())), "invalid-wasm: x");
    assert_eq!(
        reason(Unsupported::ForeignImports(vec![
            "env::a".into(),
            "env::b".into()
        ])),
        "foreign-imports: env::a, env::b"
    );
    let feature = Unsupported::Feature {
        feature: "legacy-exceptions".into(),
        message: "not enabled".into(),
    };
    assert_eq!(reason(feature), "unsupported-feature: legacy-exceptions");
    assert_eq!(
        reason(Unsupported::Memory64),
        "unsupported-feature: memory64 / table64 is not supported"
    );
    assert_eq!(
        SkipReason::from(Unsupported::BadStart).kind(),
        "unsupported-feature"
    );
}
