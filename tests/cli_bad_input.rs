//! `megabin build` against bad input (docs/hardening.md, "bad-input matrix"): every row gets a
//! clear message naming the path and the reason, a documented exit code, no panic and never a
//! partial output pair. Rows already covered by tests/cli_build.rs are referenced in
//! docs/hardening.md, not repeated here.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

/// A core module from raw section bytes (id, payload) after the header.
fn module(sections: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    for (id, payload) in sections {
        m.push(*id);
        m.push(payload.len() as u8);
        m.extend_from_slice(payload);
    }
    m
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a build neither panicked nor left half an output pair behind.
fn no_panic_no_partial_output(o: &Output, out: &Path) {
    let err = stderr(o);
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(o.status.code(), Some(101), "{err}");
    let wasm = out.join("container.wasm").exists();
    let manifest = out.join("manifest.json").exists();
    assert_eq!(wasm, manifest, "partial output pair in {}", out.display());
    if let Ok(rd) = std::fs::read_dir(out) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with(".megabin-tmp"), "stray temporary {name}");
        }
    }
}

#[test]
fn malformed_and_unsupported_modules_are_skipped_and_the_build_continues() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    write_exec(&root.join("bin/good"), &wat_program("good\n", 0));
    let good = wat_program("x\n", 0);
    let bad: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            good[..good.len() - 7].to_vec(),
            "invalid-wasm: unexpected end of file",
        ),
        (
            "version2",
            b"\0asm\x02\0\0\0\x01\x04\x01\x60\0\0".to_vec(),
            "invalid-wasm: unsupported version/layer bytes 02 00 00 00",
        ),
        (
            // function section (3) before type section (1)
            "out_of_order",
            module(&[(3, vec![1, 0]), (1, vec![1, 0x60, 0, 0])]),
            "invalid-wasm: section id 1 at offset 0xc is out of order",
        ),
        (
            "dup_export",
            module(&[
                (1, vec![1, 0x60, 0, 0]),
                (3, vec![1, 0]),
                (5, vec![1, 0, 1]),
                (
                    7,
                    [&[3u8][..], b"\x06_start\x00\x00", b"\x01x\x00\x00", b"\x01x\x02\x00"]
                        .concat(),
                ),
                (10, vec![1, 2, 0, 0x0b]),
            ]),
            "invalid-wasm: duplicate export name",
        ),
        (
            "imports_memory",
            wat::parse_str(
                r#"(module (import "env" "memory" (memory 1)) (func (export "_start")))"#,
            )
            .unwrap(),
            "foreign-imports: env::memory (memory)",
        ),
        (
            "imports_shared_memory",
            wat::parse_str(
                r#"(module (import "env" "memory" (memory 1 1 shared)) (func (export "_start")))"#,
            )
            .unwrap(),
            "foreign-imports: env::memory (memory)",
        ),
        (
            "memory64",
            wat::parse_str(r#"(module (memory i64 1) (func (export "_start")))"#).unwrap(),
            "unsupported-feature: memory64",
        ),
        (
            "legacy_eh",
            wat::parse_str(
                r#"(module (memory 1) (tag $t) (func (export "_start") try throw $t catch $t end))"#,
            )
            .unwrap(),
            "unsupported-feature: legacy-exceptions",
        ),
        (
            "const_alloc",
            wat::parse_str(
                r#"(module (type $a (array i8)) (memory 1)
                     (global i32 (i32.const 5))
                     (global (ref $a) (array.new_default $a (global.get 0)))
                     (func (export "_start")))"#,
            )
            .unwrap(),
            "unsupported-feature: a constant expression allocates an array of computed length",
        ),
    ];
    for (name, bytes, _) in &bad {
        write_exec(&root.join("bin").join(name), bytes);
    }
    // Wasm magic followed by garbage: refused at its ninth byte.
    write_exec(&root.join("bin/garbage"), b"\0asm\x01\0\0\0\xff\x13\x37");
    // A 4 GiB sparse file that looks like a command (an export section with `_start`, then a
    // custom section of almost 4 GiB): skipped as too large before it is read into memory.
    let sparse = root.join("bin/sparse");
    {
        let custom: u32 = u32::MAX - 63;
        let mut head = module(&[(7, [&[1u8, 6][..], b"_start", &[0, 0]].concat())]);
        head.push(0);
        wasm_encoder::Encode::encode(&custom, &mut head);
        head.extend_from_slice(&[1, b'x']);
        let len = head.len() as u64 - 2 + u64::from(custom);
        let mut f = std::fs::File::create(&sparse).unwrap();
        std::io::Write::write_all(&mut f, &head).unwrap();
        f.set_len(len).unwrap();
        std::fs::set_permissions(&sparse, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = tmp.path().join("out");
    let started = std::time::Instant::now();
    let o = build(&root, &out, &[]);
    assert!(started.elapsed().as_secs() < 60, "{:?}", started.elapsed());
    no_panic_no_partial_output(&o, &out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let m = manifest(&out);
    assert_eq!(m.binaries.keys().collect::<Vec<_>>(), ["/bin/good"]);
    for (name, _, reason) in &bad {
        let got = &m.skipped[&format!("/bin/{name}")];
        assert!(got.starts_with(reason), "/bin/{name}: {got}");
    }
    assert_eq!(
        m.skipped["/bin/garbage"],
        "invalid-wasm: unknown section id 255 at offset 0x8"
    );
    assert_eq!(
        m.skipped["/bin/sparse"],
        format!(
            "too-large: {} bytes needed, engines accept at most {}",
            std::fs::metadata(&sparse).unwrap().len(),
            1u64 << 30
        )
    );
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(summary.contains("skipped"), "{summary}");
}

#[test]
fn odd_paths_are_reported_or_ignored_never_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    write_exec(&root.join("bin/good"), &wat_program("good\n", 0));
    // a non-UTF-8 file name: ignored with a warning naming it
    use std::os::unix::ffi::OsStrExt;
    let odd = root
        .join("bin")
        .join(std::ffi::OsStr::from_bytes(b"odd\xff"));
    write_exec(&odd, &wat_program("odd\n", 0));
    // an unreadable program (mode 000): root reads it anyway, anyone else skips it
    let locked = root.join("bin/locked");
    write_exec(&locked, &wat_program("locked\n", 0));
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let privileged = std::fs::read(&locked).is_ok();
    // a directory where a program is expected, and a symlink to it
    std::fs::create_dir_all(root.join("usr/bin/tool")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/tool", root.join("bin/tool")).unwrap();
    // a plain dangling symlink
    std::os::unix::fs::symlink("/nowhere/prog", root.join("bin/dangling")).unwrap();
    let out = tmp.path().join("out");
    let o = build(&root, &out, &[]);
    no_panic_no_partial_output(&o, &out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("/bin/odd\u{fffd}: ignored (file name is not valid UTF-8)"),
        "{err}"
    );
    assert!(err.contains("/bin/dangling: dangling symlink"), "{err}");
    let m = manifest(&out);
    assert_eq!(m.skipped["/bin/dangling"], "dangling-symlink");
    assert!(!m.binaries.contains_key("/bin/tool") && !m.skipped.contains_key("/bin/tool"));
    if privileged {
        assert!(
            m.binaries.contains_key("/bin/locked"),
            "root reads mode 000"
        );
    } else {
        assert!(m.skipped["/bin/locked"].starts_with("unreadable: "));
    }
    // `--config` naming a directory is a configuration error naming it.
    let o = build(
        &root,
        &tmp.path().join("out2"),
        &["--config", root.join("usr").to_str().unwrap()],
    );
    no_panic_no_partial_output(&o, &tmp.path().join("out2"));
    assert_eq!(o.status.code(), Some(4));
    assert!(stderr(&o).contains("/usr") && stderr(&o).contains("directory"));
    assert!(!tmp.path().join("out2").exists());
    // A directory named megabin.toml at the rootfs root is a configuration error too, not
    // silently no configuration.
    std::fs::create_dir_all(root.join("megabin.toml")).unwrap();
    let o = build(&root, &tmp.path().join("out3"), &[]);
    no_panic_no_partial_output(&o, &tmp.path().join("out3"));
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("megabin.toml") && stderr(&o).contains("directory"));
    assert!(!tmp.path().join("out3").exists());
}

#[test]
fn an_unwritable_output_directory_fails_with_code_5_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    write_exec(&root.join("bin/p"), &wat_program("p\n", 0));
    let locked = tmp.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores permission bits: then use a directory nobody can create.
    let out = if std::fs::write(locked.join("probe"), b"").is_ok() {
        std::path::PathBuf::from("/proc/megabin-cannot-create-this")
    } else {
        locked.join("out")
    };
    let o = build(&root, &out, &[]);
    no_panic_no_partial_output(&o, &out);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("output directory {}", out.display())),
        "{}",
        stderr(&o)
    );
    assert!(!out.join("manifest.json").exists());
    // under a regular file
    let file = tmp.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let o = build(&root, &file.join("out"), &[]);
    no_panic_no_partial_output(&o, &file.join("out"));
    assert_eq!(o.status.code(), Some(5));
    assert!(stderr(&o).contains("file/out"), "{}", stderr(&o));
}

#[test]
fn identical_programs_under_different_names_are_one_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    let wasm = wat_program("same\n", 3);
    write_exec(&root.join("bin/one"), &wasm);
    write_exec(&root.join("usr/bin/two"), &wasm);
    let out = tmp.path().join("out");
    let o = build(&root, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("merged 1 programs (2 paths)"));
    let m = manifest(&out);
    let (a, b) = (&m.binaries["/bin/one"], &m.binaries["/usr/bin/two"]);
    assert_eq!((&a.hash, &a.entry_point), (&b.hash, &b.entry_point));
    let runner = runtime_check::Runner::new().unwrap();
    let module = runner
        .compile(&std::fs::read(out.join("container.wasm")).unwrap())
        .unwrap();
    for argv0 in ["one", "/usr/bin/two"] {
        let inv = runtime_check::Invocation {
            args: vec![argv0.into()],
            ..Default::default()
        };
        let r = runner.run_captured(&module, "_start", &inv).unwrap();
        assert_eq!(String::from_utf8_lossy(&r.stdout), "same\n", "{argv0}");
        assert_eq!(r.status, runtime_check::Status::Exit(3));
    }
}

#[test]
fn programs_named_like_megabin_exports_leave_the_exports_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    let names = [
        "memory",
        "_start",
        "megabin_dispatch",
        "megabin",
        "wasi",
        "memory_start",
    ];
    for (i, n) in names.iter().enumerate() {
        write_exec(
            &root.join("bin").join(n),
            &wat_program(&format!("{n}\n"), i as i32),
        );
    }
    let out = tmp.path().join("out");
    let o = build(&root, &out, &[]);
    no_panic_no_partial_output(&o, &out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let m = manifest(&out);
    let wasm = std::fs::read(out.join("container.wasm")).unwrap();
    // The megabinary's own exports keep their meaning.
    let mut exports = std::collections::BTreeMap::new();
    for p in wasmparser::Parser::new(0).parse_all(&wasm) {
        if let Ok(wasmparser::Payload::ExportSection(r)) = p {
            for e in r {
                let e = e.unwrap();
                exports.insert(e.name.to_string(), (e.kind, e.index));
            }
        }
    }
    assert_eq!(exports["memory"], (wasmparser::ExternalKind::Memory, 0));
    let entries = merger::read_entries_section(&wasm).unwrap();
    let starts: Vec<&str> = entries
        .entries
        .iter()
        .map(|e| e.start_export.as_str())
        .collect();
    assert!(!starts.contains(&"_start") && !starts.contains(&"megabin_dispatch"));
    merger::check_isolation(&wasm).unwrap_or_else(|p| panic!("{}", p.join("\n")));
    // Each still runs by its own argv[0] and by digest.
    let runner = runtime_check::Runner::new().unwrap();
    let module = runner.compile(&wasm).unwrap();
    for (i, n) in names.iter().enumerate() {
        let path = format!("/bin/{n}");
        let inv = runtime_check::Invocation {
            args: vec![path.clone()],
            ..Default::default()
        };
        let r = runner.run_captured(&module, "_start", &inv).unwrap();
        assert_eq!(String::from_utf8_lossy(&r.stdout), format!("{n}\n"), "{n}");
        assert_eq!(r.status, runtime_check::Status::Exit(i as i32));
        let inv = runtime_check::Invocation {
            args: vec!["anything".into()],
            env: vec![("MEGABIN_ENTRY".into(), m.binaries[&path].hash.to_string())],
            ..Default::default()
        };
        let r = runner.run_captured(&module, "_start", &inv).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&r.stdout),
            format!("{n}\n"),
            "{n} by digest"
        );
    }
}
