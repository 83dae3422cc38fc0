//! Helpers shared by the CLI integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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

/// Runs `megabin build ROOTFS -o OUT ARGS...` and returns its output.
pub fn build(rootfs: &Path, out: &Path, args: &[&str]) -> Output {
    megabin()
        .arg("build")
        .arg(rootfs)
        .arg("-o")
        .arg(out)
        .args(args)
        .output()
        .expect("megabin runs")
}

/// Runs `megabin compile OUT`: fills the compile cache, so later runs print nothing of
/// their own on stderr (differential tests compare stderr with a standalone run).
pub fn compile(out: &Path) {
    let o = megabin()
        .arg("compile")
        .arg(out)
        .output()
        .expect("megabin runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Runs a command with `stdin` piped in.
pub fn run_with_stdin(mut cmd: Command, stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
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
