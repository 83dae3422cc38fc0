//! Pins the bytes of the sample build: every output file's sha256, for the sample rootfs and
//! for 300 generated programs split into shards. A refactor of the pipeline must keep these byte-identical;
//! a deliberate format change refreshes the baseline with `BLESS=1 cargo test --test pinned_build`.

mod common;

use common::{assert_ok, build, check_baseline, sample_rootfs, wat_program, write_exec};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::Path;

/// `sha256  file` for every file of `out`, sorted by name.
fn digests(out: &Path) -> String {
    let mut names: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut text = String::new();
    for name in names {
        let bytes = std::fs::read(out.join(&name)).unwrap();
        let hex: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        writeln!(text, "{hex}  {name}").unwrap();
    }
    text
}

fn check(baseline: &str, rootfs: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    assert_ok(&build(rootfs, &out, &[]));
    let actual = digests(&out);
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/baselines")
        .join(baseline);
    check_baseline(&path, &actual);
}

#[test]
fn sample_build_is_byte_identical_to_the_baseline() {
    check("sample-build.sha256", &sample_rootfs());
}

#[test]
fn sharded_build_is_byte_identical_to_the_baseline() {
    // 300 generated programs: more than one shard holds, so the plan splits them.
    let dir = tempfile::tempdir().unwrap();
    for i in 0..300 {
        write_exec(
            &dir.path().join(format!("usr/bin/p{i:03}")),
            &wat_program(&format!("program {i}\n"), i % 7),
        );
    }
    check("sharded-build.sha256", dir.path());
}
