//! `megabin build` through the CLI binary: manifest against the files, every entry run through
//! the dispatcher on stock wasmtime-wasi, determinism, atomicity, symlinks, skips, shards.

mod common;

use common::*;
use megabin::rootfs::resolve;
use megabin_format::Digest;
use runtime_check::cases::load_cases;
use runtime_check::{Runner, Status};

#[test]
fn sample_rootfs_manifest_matches_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = build(&sample_rootfs(), &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(
        summary.contains("merged 13 programs (18 paths)"),
        "{summary}"
    );
    let m = manifest(&out);
    assert_eq!(m.format, "megabin/1");
    assert!(m.id_is_consistent());
    assert_eq!(m.megabinary, "container.wasm");
    let wasm = std::fs::read(out.join("container.wasm")).unwrap();
    assert_eq!(m.megabinaries["container.wasm"], Digest::of(&wasm));
    for (path, b) in &m.binaries {
        let host = resolve(&sample_rootfs(), path).unwrap().host;
        let bytes = std::fs::read(&host).unwrap();
        assert_eq!(b.hash, Digest::of(&bytes), "{path}");
        assert_eq!(b.size, bytes.len() as u64);
        assert!(b.entry_point.ends_with("_start"));
    }
    // aliases share the entry of their target
    assert_eq!(
        m.binaries["/usr/bin/hi"].hash,
        m.binaries["/usr/bin/hello"].hash
    );
    assert_eq!(
        m.binaries["/bin/cat"].entry_point,
        m.binaries["/usr/bin/cat"].entry_point
    );
    assert_eq!(m.binaries["/bin/wc"].hash, m.binaries["/usr/bin/wc"].hash);
    assert_eq!(m.skipped["/usr/bin/perl"], "not-recompiled-native");
    assert_eq!(
        m.skipped["/usr/bin/greet.sh"],
        "script: interpreter /bin/sh is not in the rootfs"
    );
    assert!(!m.binaries.contains_key("/etc/passwd") && !m.skipped.contains_key("/etc/passwd"));
    assert_eq!(
        m.agent_tools["search_web"].digest,
        m.binaries["/usr/bin/envargs"].hash
    );
    assert_eq!(
        m.agent_tools["write_file"].digest,
        m.binaries["/usr/bin/fsops"].hash
    );
    // the JSON summary
    let o = build(&sample_rootfs(), &out, &["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["programs"], 13);
    assert_eq!(v["container_id"], m.container_id.to_string());
}

#[test]
fn every_entry_runs_by_digest_and_by_argv0_like_standalone() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    assert!(build(&sample_rootfs(), &out, &[]).status.success());
    let m = manifest(&out);
    let runner = Runner::new().unwrap();
    let merged = runner
        .compile(&std::fs::read(out.join("container.wasm")).unwrap())
        .unwrap();
    for case in load_cases() {
        let (path, case) = case_in_rootfs(&case);
        let digest = m.binaries[&path].hash;
        let standalone = standalone(&runner, &sample_rootfs(), &path);
        for by_digest in [true, false] {
            let mut case = case.clone();
            let d = tempfile::tempdir().unwrap();
            let a = runner
                .run_captured(
                    &standalone,
                    "_start",
                    &case.invocation(&d.path().join("a")).unwrap(),
                )
                .unwrap();
            if by_digest {
                // Only the megabinary gets MEGABIN_ENTRY; its bridge hides it from the program.
                case.env.insert("MEGABIN_ENTRY".into(), digest.to_string());
            }
            let b = runner
                .run_captured(
                    &merged,
                    "_start",
                    &case.invocation(&d.path().join("b")).unwrap(),
                )
                .unwrap();
            let how = if by_digest {
                "MEGABIN_ENTRY"
            } else {
                "argv[0]"
            };
            assert_eq!(a.stdout, b.stdout, "{} via {how}: stdout", case.id);
            assert_eq!(a.stderr, b.stderr, "{} via {how}: stderr", case.id);
            match (&a.status, &b.status) {
                (Status::Trap { code: x, .. }, Status::Trap { code: y, .. }) => assert_eq!(x, y),
                (x, y) => assert_eq!(x, y, "{} via {how}: status", case.id),
            }
            assert_eq!(
                runtime_check::cases::snapshot(&d.path().join("a")),
                runtime_check::cases::snapshot(&d.path().join("b")),
                "{}: files",
                case.id
            );
        }
    }
}

#[test]
fn builds_are_deterministic_across_layouts_locations_and_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let (r1, r2) = (
        tmp.path().join("one/rootfs"),
        tmp.path().join("elsewhere/deeper/rootfs"),
    );
    copy_tree(&sample_rootfs(), &r1, false);
    copy_tree(&sample_rootfs(), &r2, true);
    let (o1, o2) = (tmp.path().join("o1"), tmp.path().join("o2"));
    assert!(build(&r1, &o1, &["--jobs", "1"]).status.success());
    assert!(build(&r2, &o2, &["--jobs", "4"]).status.success());
    for f in ["container.wasm", "manifest.json"] {
        assert!(
            std::fs::read(o1.join(f)).unwrap() == std::fs::read(o2.join(f)).unwrap(),
            "{f} differs"
        );
    }
}

#[test]
fn a_failed_build_leaves_the_previous_outputs_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, out) = build_sample_copy(tmp.path(), &[]);
    let before: Vec<_> = ["container.wasm", "manifest.json"]
        .iter()
        .map(|f| std::fs::read(out.join(f)).unwrap())
        .collect();
    // change the rootfs, then fail: an agent tool that is not a program
    write_exec(&root.join("usr/bin/new"), &wat_program("new\n", 0));
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[agent_tools]\nbroken = \"/usr/bin/perl\"\n").unwrap();
    let o = build(&root, &out, &["--config", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("broken")
            && err.contains("/usr/bin/perl")
            && err.contains("not-recompiled-native"),
        "{err}"
    );
    let after: Vec<_> = ["container.wasm", "manifest.json"]
        .iter()
        .map(|f| std::fs::read(out.join(f)).unwrap())
        .collect();
    assert!(before == after, "outputs changed by a failed build");
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "no stray temporaries: {names:?}");
}

#[test]
fn symlinks_never_leave_the_rootfs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    write_exec(&root.join("usr/bin/real"), &wat_program("inside\n", 0));
    // a host program outside the rootfs, reachable only by escaping
    write_exec(&tmp.path().join("outside"), &wat_program("outside\n", 0));
    std::os::unix::fs::symlink("../../../outside", root.join("usr/bin/up")).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("outside"), root.join("usr/bin/abs")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/real", root.join("usr/bin/ok")).unwrap();
    std::os::unix::fs::symlink("../../../../usr/bin/real", root.join("usr/bin/clamped")).unwrap();
    std::os::unix::fs::symlink("loop2", root.join("usr/bin/loop1")).unwrap();
    std::os::unix::fs::symlink("loop1", root.join("usr/bin/loop2")).unwrap();
    let out = tmp.path().join("out");
    let o = build(&root, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = manifest(&out);
    let real = Digest::of(&std::fs::read(root.join("usr/bin/real")).unwrap());
    assert_eq!(m.binaries["/usr/bin/ok"].hash, real);
    assert_eq!(
        m.binaries["/usr/bin/clamped"].hash, real,
        "`..` is clamped at the root"
    );
    assert_eq!(m.skipped["/usr/bin/up"], "dangling-symlink");
    assert_eq!(m.skipped["/usr/bin/abs"], "dangling-symlink");
    assert_eq!(m.skipped["/usr/bin/loop1"], "symlink-loop");
    assert_eq!(m.binaries.len(), 3, "{:?}", m.binaries.keys());
}

#[test]
fn unusable_rootfs_and_output_get_documented_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = build(&tmp.path().join("nope"), &tmp.path().join("o"), &[]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope"));
    let file = tmp.path().join("file");
    std::fs::write(&file, "x").unwrap();
    assert_eq!(
        build(&file, &tmp.path().join("o"), &[]).status.code(),
        Some(3)
    );
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = build(&empty, &tmp.path().join("o"), &[]);
    assert_eq!(o.status.code(), Some(6));
    let root = tmp.path().join("rootfs");
    write_exec(&root.join("bin/p"), &wat_program("p\n", 0));
    let inside = build(&root, &root.join("out"), &[]);
    assert_eq!(inside.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&inside.stderr).contains("inside the rootfs"));
    assert!(!root.join("out").exists());
    assert_eq!(build(&root, &file, &[]).status.code(), Some(5));
    let usage = megabin().arg("build").output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn three_hundred_programs_build_into_shards_and_all_run() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    for i in 0..300 {
        write_exec(
            &root.join(format!("usr/bin/p{i:03}")),
            &wat_program(&format!("program {i}\n"), i % 7),
        );
    }
    let out = tmp.path().join("out");
    let o = build(&root, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = manifest(&out);
    assert_eq!(m.binaries.len(), 300);
    let files: Vec<&String> = m.megabinaries.keys().collect();
    assert_eq!(
        files,
        [
            "container-1.wasm",
            "container-2.wasm",
            "container-3.wasm",
            "container.wasm"
        ]
    );
    assert_eq!(m.megabinary, "container.wasm");
    let runner = Runner::new().unwrap();
    let mut modules = std::collections::BTreeMap::new();
    for i in 0..300 {
        let path = format!("/usr/bin/p{i:03}");
        let b = &m.binaries[&path];
        let module = modules.entry(b.megabinary.clone()).or_insert_with(|| {
            runner
                .compile(&std::fs::read(out.join(&b.megabinary)).unwrap())
                .unwrap()
        });
        let inv = runtime_check::Invocation {
            args: vec![path.clone()],
            ..Default::default()
        };
        let r = runner.run_captured(module, "_start", &inv).unwrap();
        assert_eq!(String::from_utf8_lossy(&r.stdout), format!("program {i}\n"));
        assert_eq!(r.status, Status::Exit(i % 7));
        // Written in the canonical form (lowercase hex) that reads back to the same digest.
        let text = serde_json::to_value(b.hash).unwrap();
        assert_eq!(text, b.hash.to_string());
        assert_eq!(text.as_str().unwrap().parse::<Digest>().unwrap(), b.hash);
    }
    assert_eq!(modules.len(), 4, "programs ran from every shard");
}

#[test]
fn programs_sharing_a_basename_are_reachable_by_digest_only() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    write_exec(&root.join("a/cat"), &wat_program("a\n", 0));
    write_exec(&root.join("b/cat"), &wat_program("b\n", 0));
    write_exec(&root.join("c/cat_2"), &wat_program("c\n", 0));
    let out = tmp.path().join("out");
    let o = build(&root, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("argv[0] name `cat` belongs to 2 different programs"));
    let m = manifest(&out);
    let runner = Runner::new().unwrap();
    let module = runner
        .compile(&std::fs::read(out.join("container.wasm")).unwrap())
        .unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let inv = runtime_check::Invocation {
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        runner.run_captured(&module, "_start", &inv).unwrap()
    };
    let ambiguous = run(&["cat"], &[]);
    assert!(
        ambiguous.stdout.is_empty(),
        "an ambiguous name runs nothing"
    );
    assert!(String::from_utf8_lossy(&ambiguous.stderr).contains("is called cat"));
    for (path, text) in [("/a/cat", "a\n"), ("/b/cat", "b\n")] {
        let r = run(
            &["cat"],
            &[("MEGABIN_ENTRY", &m.binaries[path].hash.to_string())],
        );
        assert_eq!(String::from_utf8_lossy(&r.stdout), text);
    }
    assert_eq!(
        String::from_utf8_lossy(&run(&["/c/cat_2"], &[]).stdout),
        "c\n"
    );
    let v = verify_rootfs_cmd(&out, &root).output().unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
}
