//! The build reads each program once: the bytes merged are the bytes hashed.

use super::*;
use crate::progress::Progress;
use sha2::Digest as _;

fn program(text: &str) -> Vec<u8> {
    let escaped: String = text.bytes().map(|b| format!("\\{b:02x}")).collect();
    wat::parse_str(format!(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 64) "{escaped}")
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 64))
            (i32.store (i32.const 4) (i32.const {len}))
            (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
        len = text.len()
    ))
    .unwrap()
}

fn put(root: &Path, path: &str, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn options(rootfs: &Path) -> BuildOptions {
    BuildOptions {
        rootfs: rootfs.to_path_buf(),
        out: rootfs.join("../unused-out"),
        config: None,
        jobs: 2,
        max_shard_bytes: DEFAULT_MAX_SHARD_BYTES,
        progress: false,
        aot: false,
        stub_foreign_imports: false,
    }
}

/// A program swapped on disk after the scan does not reach the megabinary: the later stages
/// work on the bytes the scan read and hashed, and never read the file again. (With a re-read
/// in `check`, the swapped code would be merged under the original digest.)
#[test]
fn a_program_swapped_after_the_scan_is_not_merged() {
    let tmp = tempfile::tempdir().unwrap();
    let (original, swapped) = (program("original\n"), program("swapped in\n"));
    let root = tmp.path().join("rootfs");
    put(&root, "bin/a", &original);
    put(&root, "bin/b", &program("b\n"));
    let opts = options(&root);

    let scanned = scan(&opts).unwrap();
    put(&root, "bin/a", &swapped);
    let built = build_scanned(&opts, Config::default(), scanned, &Progress::new(false)).unwrap();

    let want = Digest::of(&original);
    assert_eq!(built.manifest.binaries["/bin/a"].hash, want);
    assert_eq!(
        built.manifest.binaries["/bin/a"].size,
        original.len() as u64
    );
    // The megabinary is exactly the one built from a rootfs that always held the original.
    let reference_root = tmp.path().join("reference");
    put(&reference_root, "bin/a", &original);
    put(&reference_root, "bin/b", &program("b\n"));
    let reference = build_outputs(&options(&reference_root)).unwrap();
    assert!(built.megabinaries == reference.megabinaries);
    assert_eq!(built.manifest.megabinaries, reference.manifest.megabinaries);
    // And its entries section names the digest of the merged bytes.
    let map = merger::read_entries_section(&built.megabinaries[0].1).unwrap();
    assert!(map.entries.iter().any(|e| e.digest == want));
}

/// Every program the scan hands on carries its bytes, and the digest is theirs.
#[test]
fn scanned_programs_carry_the_hashed_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    put(&root, "bin/a", &program("a\n"));
    put(&root, "usr/bin/a-copy", &program("a\n"));
    put(&root, "bin/b", &program("b\n"));
    let scanned = scan(&options(&root)).unwrap();
    assert_eq!(scanned.scan.programs.len(), 2);
    for p in &scanned.scan.programs {
        let c = p.content.as_ref().expect("kept");
        assert_eq!(c.digest(), p.digest);
        assert_eq!(<[u8; 32]>::from(sha2::Sha256::digest(c.bytes())), p.digest);
        assert_eq!(c.bytes(), std::fs::read(&p.host_path).unwrap());
    }
}
