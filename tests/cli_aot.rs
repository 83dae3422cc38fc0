//! `megabin build --aot` and how `megabin run` trusts (or refuses) the precompiled artifact.

mod common;

use common::*;
use std::path::Path;

fn run(out: &Path, root: &Path, extra: &[&str]) -> std::process::Output {
    // A fresh compile cache per run: what is loaded from where is what these tests check.
    let cache = tempfile::tempdir().unwrap();
    run_cmd(out, root, extra, &["/usr/bin/hello", "aot"])
        .env("MEGABIN_CACHE_DIR", cache.path())
        .output()
        .unwrap()
}

#[test]
fn aot_artifact_is_used_only_when_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let root = sample_rootfs();
    let out = tmp.path().join("out");
    let o = build(&root, &out, &["--aot"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = manifest(&out);
    let aot = m.aot.clone().expect("manifest records the artifact");
    let engine = runtime_check::new_engine().unwrap();
    assert_eq!(aot.engine, runtime_check::engine_id(&engine));
    let cwasm = out.join("container.cwasm");
    assert_eq!(
        aot.artifacts["container.cwasm"],
        megabin_format::Digest::of(&std::fs::read(&cwasm).unwrap())
    );

    let ok = run(&out, &root, &["--require-aot"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout)
        .starts_with("hello from megabin fixture\n/usr/bin/hello\naot\n"));
    assert!(
        ok.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // A tampered artifact is refused, never deserialized, even without --require-aot.
    let good = std::fs::read(&cwasm).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    std::fs::write(&cwasm, &bad).unwrap();
    let o = run(&out, &root, &[]);
    assert_eq!(o.status.code(), Some(126));
    assert!(o.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("container.cwasm does not match the manifest")
    );
    let v = verify_rootfs_cmd(&out, &root).output().unwrap();
    assert_eq!(v.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&v.stderr).contains("container.cwasm does not match"));
    std::fs::write(&cwasm, &good).unwrap();

    // Editing the artifact digest in the manifest breaks the container id.
    let text = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    let edited = text.replace(
        &aot.artifacts["container.cwasm"].to_string(),
        &format!("sha256:{}", "1".repeat(64)),
    );
    std::fs::write(out.join("manifest.json"), edited).unwrap();
    let o = run(&out, &root, &[]);
    assert_eq!(o.status.code(), Some(126));
    assert!(String::from_utf8_lossy(&o.stderr).contains("container_id"));
    std::fs::write(out.join("manifest.json"), &text).unwrap();

    // Another engine: say why, fall back to compiling, or refuse with --require-aot.
    rewrite(&out, |m| {
        m.aot.as_mut().unwrap().engine = "wasmtime/other".into()
    });
    let o = run(&out, &root, &[]);
    assert_eq!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not using the AOT artifact")
            && err.contains("compiled for engine wasmtime/other")
            && err.contains("compiling container.wasm"),
        "{err}"
    );
    // (--require-aot means "never compile here": a compile-cache entry would do, so none.)
    let o = run(&out, &root, &["--require-aot", "--no-cache"]);
    assert_eq!(o.status.code(), Some(126));
    assert!(o.stdout.is_empty());

    // A missing artifact: the same.
    std::fs::write(out.join("manifest.json"), &text).unwrap();
    std::fs::remove_file(&cwasm).unwrap();
    let o = run(&out, &root, &[]);
    assert_eq!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not using the AOT artifact")
            && err.contains("container.cwasm does not exist"),
        "{err}"
    );
    assert_eq!(
        run(&out, &root, &["--require-aot", "--no-cache"])
            .status
            .code(),
        Some(126)
    );

    // A build without --aot removes the stale artifact and records none.
    assert!(build(&root, &out, &["--aot"]).status.success());
    assert!(cwasm.exists());
    assert!(build(&root, &out, &[]).status.success());
    assert!(!cwasm.exists());
    assert!(manifest(&out).aot.is_none());
}
