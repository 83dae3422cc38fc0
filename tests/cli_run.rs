//! `megabin run`, `verify` and `inspect` through the CLI binary: every fixture case equals its
//! standalone run; every tampering is refused with the documented exit code and no program
//! output; limits stop runaway programs; verify reports planted problems.

mod common;

use common::*;
use runtime_check::cases::{load_cases, snapshot};
use runtime_check::{Runner, Status};
use std::path::Path;

/// The sample build from a private copy of the sample rootfs, its compile cache filled.
fn built_sample(tmp: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (root, out) = build_sample_copy(tmp, &[]);
    compile(&out);
    (root, out)
}

#[test]
fn every_fixture_case_through_megabin_run_equals_standalone() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, out) = built_sample(tmp.path());
    let runner = Runner::new().unwrap();
    for case in load_cases() {
        let (path, case) = case_in_rootfs(&case);
        let (da, db) = (
            tmp.path().join(format!("{}-a", case.id)),
            tmp.path().join(format!("{}-b", case.id)),
        );
        let inv = case.invocation(&da).unwrap();
        let standalone = runner
            .run_captured(&standalone(&runner, &root, &path), "_start", &inv)
            .unwrap();
        let invb = case.invocation(&db).unwrap();
        // With the wasm backtrace, so a trap's output shows the merged names.
        let mut extra: Vec<String> = vec!["--backtrace".into()];
        for (k, v) in &invb.env {
            extra.push("--env".into());
            extra.push(format!("{k}={v}"));
        }
        for (host, guest) in &invb.preopens {
            extra.push("--dir".into());
            extra.push(format!("{}::{guest}", host.display()));
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        // The program's path and its arguments (`case.args[0]` is the path).
        let program: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let o = run_with_stdin(run_cmd(&out, &root, &extra, &program), &invb.stdin);
        assert_eq!(o.stdout, standalone.stdout, "{}: stdout", case.id);
        match standalone.status {
            Status::Exit(code) => {
                assert_eq!(o.status.code(), Some(code), "{}: exit code", case.id);
                assert_eq!(
                    String::from_utf8_lossy(&o.stderr),
                    String::from_utf8_lossy(&standalone.stderr),
                    "{}: stderr",
                    case.id
                );
            }
            Status::Trap { .. } => {
                assert_eq!(o.status.code(), Some(134), "{}: a trap exits 134", case.id);
                let err = String::from_utf8_lossy(&o.stderr);
                assert!(
                    err.starts_with(&*String::from_utf8_lossy(&standalone.stderr)),
                    "{}: {err}",
                    case.id
                );
                assert!(
                    err.contains(&format!("program `{}` trapped", case.program)),
                    "{err}"
                );
                assert!(
                    err.contains(&format!("{}::", case.program)),
                    "backtrace names: {err}"
                );
            }
        }
        assert_eq!(snapshot(&da), snapshot(&db), "{}: files", case.id);
    }
}

fn refused(o: &std::process::Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{err}");
    assert!(
        o.stdout.is_empty(),
        "a refused program must not run: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        err.starts_with("megabin:") && err.contains(needle),
        "expected `{needle}` in: {err}"
    );
}

#[test]
fn tampering_is_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, out) = built_sample(tmp.path());
    let ok = run_cmd(&out, &root, &[], &["/usr/bin/hello"])
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0));

    // unlisted path, skipped native program, unknown digest and tool: 127
    refused(
        &run_cmd(&out, &root, &[], &["/usr/bin/nothere"])
            .output()
            .unwrap(),
        127,
        "not listed",
    );
    refused(
        &run_cmd(&out, &root, &[], &["/usr/bin/perl"])
            .output()
            .unwrap(),
        127,
        "not-recompiled-native",
    );
    refused(
        &run_cmd(&out, &root, &[], &[&format!("sha256:{}", "0".repeat(64))])
            .output()
            .unwrap(),
        127,
        "no program with digest",
    );
    let o = megabin()
        .args(["run", "--rootfs"])
        .arg(&root)
        .args(["--tool", "nope"])
        .arg(&out)
        .output()
        .unwrap();
    refused(&o, 127, "no agent tool `nope`");

    // a flipped byte in a rootfs program: 126 naming both digests
    let hello = root.join("usr/bin/hello");
    let original = std::fs::read(&hello).unwrap();
    let mut bytes = original.clone();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&hello, &bytes).unwrap();
    refused(
        &run_cmd(&out, &root, &[], &["/usr/bin/hello"])
            .output()
            .unwrap(),
        126,
        "expects sha256:",
    );
    // ... also through a symlink to it
    refused(
        &run_cmd(&out, &root, &[], &["/usr/bin/hi"])
            .output()
            .unwrap(),
        126,
        "modified or replaced",
    );
    // replaced by a native file
    std::fs::write(&hello, b"\x7fELF\x02\x01\x01").unwrap();
    refused(
        &run_cmd(&out, &root, &[], &["/usr/bin/hello"])
            .output()
            .unwrap(),
        126,
        "modified or replaced",
    );
    std::fs::write(&hello, &original).unwrap();

    // a symlink retargeted to another program
    std::fs::remove_file(root.join("usr/bin/hi")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/cat", root.join("usr/bin/hi")).unwrap();
    refused(
        &run_cmd(&out, &root, &[], &["/usr/bin/hi"])
            .output()
            .unwrap(),
        126,
        "modified or replaced",
    );

    // a flipped byte in the megabinary
    let container = out.join("container.wasm");
    let good = std::fs::read(&container).unwrap();
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 0x40;
    std::fs::write(&container, &bad).unwrap();
    // is refused whenever it would be compiled ...
    refused(
        &run_cmd(&out, &root, &["--no-cache"], &["/usr/bin/hello"])
            .output()
            .unwrap(),
        126,
        "container.wasm does not match",
    );
    // ... while a run with a warm compile cache never reads it: the cached code was compiled
    // from the bytes that matched the manifest's digest, which is what runs.
    let warm = run_cmd(&out, &root, &[], &["/usr/bin/hello"])
        .output()
        .unwrap();
    assert_eq!(warm.status.code(), Some(0));
    std::fs::write(&container, &good).unwrap();

    // a hash edited in the manifest (container_id no longer matches)
    let mpath = out.join("manifest.json");
    let text = std::fs::read_to_string(&mpath).unwrap();
    let cat_hash = manifest(&out).binaries["/usr/bin/cat"].hash.to_string();
    let hello_hash = manifest(&out).binaries["/usr/bin/hello"].hash.to_string();
    std::fs::write(&mpath, text.replace(&hello_hash, &cat_hash)).unwrap();
    refused(
        &run_cmd(&out, &root, &[], &["/usr/bin/cat"])
            .output()
            .unwrap(),
        126,
        "container_id",
    );
    std::fs::write(&mpath, &text).unwrap();
    let ok = run_cmd(&out, &root, &[], &["/usr/bin/hello"])
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0), "restored build runs again");
}

#[test]
fn limits_stop_runaway_programs() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, out) = built_sample(tmp.path());
    let o = run_cmd(&out, &root, &["--max-memory", "16M"], &["/usr/bin/memgrow"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(125),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("memory limit"));
    let ok = run_cmd(
        &out,
        &root,
        &["--max-memory", "512M"],
        &["/usr/bin/memgrow"],
    )
    .output()
    .unwrap();
    assert_eq!(ok.status.code(), Some(0));

    let r2 = tmp.path().join("spin");
    write_exec(
        &r2.join("bin/spin"),
        &wat::parse_str(r#"(module (memory 1) (func (export "_start") (loop (br 0))))"#).unwrap(),
    );
    let out2 = tmp.path().join("spin-out");
    assert!(build(&r2, &out2, &[]).status.success());
    let started = std::time::Instant::now();
    let o = run_cmd(&out2, &r2, &["--timeout", "300ms"], &["/bin/spin"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(124),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("time limit"));
    assert!(started.elapsed().as_secs() < 60);
}

#[test]
fn environment_and_directories_do_not_leak() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, out) = built_sample(tmp.path());
    let o = run_cmd(&out, &root, &[], &["/usr/bin/envargs", "-x", "--y"])
        .env("SECRET_HOST_VAR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("argv[0]=/usr/bin/envargs") && stdout.contains("argv[2]=--y"),
        "{stdout}"
    );
    assert!(stdout.contains("envc=0"), "{stdout}");
    let o = run_cmd(&out, &root, &["--argv0", "renamed"], &["/usr/bin/envargs"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("argv[0]=renamed"));
    let o = run_cmd(&out, &root, &[], &["/usr/bin/cat", "/etc/passwd"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "no directory is visible without --dir"
    );
}

#[test]
fn verify_reports_every_planted_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, out) = built_sample(tmp.path());
    let v = |out: &Path| verify_rootfs_cmd(out, &root).output().unwrap();
    let o = v(&out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // two problems at once: a modified program and a retargeted symlink
    std::fs::write(root.join("usr/bin/wc"), b"#!/bin/sh\n").unwrap();
    std::fs::remove_file(root.join("usr/bin/hi")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/cat", root.join("usr/bin/hi")).unwrap();
    let o = v(&out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("/usr/bin/wc: hashes to") && err.contains("/bin/wc: hashes to"),
        "{err}"
    );
    assert!(err.contains("/usr/bin/hi: hashes to"), "{err}");
    // a tampered megabinary
    let c = out.join("container.wasm");
    let mut bytes = std::fs::read(&c).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&c, &bytes).unwrap();
    let err = String::from_utf8_lossy(&v(&out).stderr).into_owned();
    assert!(
        err.contains("container.wasm does not match the manifest"),
        "{err}"
    );
}

#[test]
fn inspect_lists_entries_of_a_build_and_of_a_bare_megabinary() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, out) = built_sample(tmp.path());
    let o = megabin()
        .arg("inspect")
        .arg(&out)
        .arg("--json")
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let m = manifest(&out);
    // The build: its id, its shards, agent tools and skipped paths with their reasons.
    assert_eq!(v["container_id"], m.container_id.to_string());
    assert_eq!(
        v["megabinaries"].as_array().unwrap().len(),
        m.megabinaries.len()
    );
    assert_eq!(
        v["agent_tools"].as_object().unwrap().len(),
        m.agent_tools.len()
    );
    assert!(!m.skipped.is_empty(), "the sample has skipped paths");
    for (path, reason) in &m.skipped {
        assert_eq!(v["skipped"][path], reason.as_str(), "{path}");
    }
    let entries = v["megabinaries"][0]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 13);
    let hello = entries.iter().find(|e| e["name"] == "hello").unwrap();
    assert!(hello["paths"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "/usr/bin/hi"));
    assert_eq!(
        hello["digest"],
        m.binaries["/usr/bin/hello"].hash.to_string()
    );
    // The same as a table.
    let o = megabin().arg("inspect").arg(&out).output().unwrap();
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains(&format!("container_id: {}", m.container_id)),
        "{table}"
    );
    let (path, reason) = m.skipped.iter().next().unwrap();
    assert!(table.contains(&format!("  {path}: {reason}")), "{table}");
    let bare = megabin()
        .arg("inspect")
        .arg(out.join("container.wasm"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&bare.stdout);
    assert!(!text.contains("container_id"), "{text}");
    assert!(
        text.contains("13 programs") && !text.contains("hello_start") && text.contains("hello"),
        "{text}"
    );
    let not = megabin()
        .arg("inspect")
        .arg(sample_rootfs().join("usr/bin/hello"))
        .output()
        .unwrap();
    assert_eq!(not.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&not.stderr).contains("not a megabinary"));
}
