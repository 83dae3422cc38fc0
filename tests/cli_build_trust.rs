//! Build-side trust (issue 12, items 6 and 7), through the CLI: `megabin.toml` stays inside the
//! rootfs, is bounded, never blocks and is never echoed; staged outputs never follow a planted
//! symlink; `verify --rootfs` rebuilds in memory and reports a megabinary that is not built from
//! the rootfs (even with a self-consistent manifest) and programs a stale build lacks.

mod common;

use common::*;
use megabin::manifest::Manifest;
use megabin_format::Digest;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// How long a build may take on a FIFO before the test calls it blocked.
const BLOCKED_AFTER: Duration = Duration::from_secs(20);

/// A rootfs with one program, `/bin/tool`.
fn small_rootfs(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("rootfs");
    write_exec(&root.join("bin/tool"), &wat_program("tool\n", 0));
    root
}

#[test]
fn megabin_toml_symlinks_resolve_inside_the_rootfs_and_are_never_echoed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = small_rootfs(tmp.path());
    // The host's /etc/passwd: its first line must never appear.
    let host_line = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| t.lines().next().map(str::to_string))
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "root:x:0:0".into());
    symlink("/etc/passwd", root.join("megabin.toml")).unwrap();

    // No /etc/passwd inside the rootfs: the link dangles there, whatever the host has.
    let out = tmp.path().join("out");
    let o = build(&root, &out, &[]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("megabin.toml") && err.contains("dangling"),
        "{err}"
    );
    assert!(!err.contains(&host_line), "echoed the host file: {err}");
    assert!(!out.exists(), "no partial output");

    // With <rootfs>/etc/passwd, that file is the configuration (an absolute link, and a
    // relative one climbing past the root, are both resolved as after chroot).
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/passwd"),
        "[agent_tools]\ninner = \"/bin/tool\"\n",
    )
    .unwrap();
    let o = build(&root, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(manifest(&out).agent_tools.contains_key("inner"));
    std::fs::remove_file(root.join("megabin.toml")).unwrap();
    symlink(
        "../../../../../../../../etc/passwd",
        root.join("megabin.toml"),
    )
    .unwrap();
    let out2 = tmp.path().join("out2");
    let o = build(&root, &out2, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(manifest(&out2).agent_tools.contains_key("inner"));
}

#[test]
fn configuration_errors_never_quote_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = small_rootfs(tmp.path());
    let out = tmp.path().join("out");
    for text in [
        "SECRET-TOKEN-4711 is not toml\n",
        "[agent_tools]\nx = \"/bin/tool\"\nSECRET-TOKEN-4711\n",
        "SECRET-TOKEN-4711 = 1\n",
        "[agent_tools]\nSECRET-TOKEN-4711 = \"relative/SECRET-TOKEN-4711\"\n",
        "[agent_tools]\nx = [\"SECRET-TOKEN-4711\"]\n",
    ] {
        std::fs::write(root.join("megabin.toml"), text).unwrap();
        let o = build(&root, &out, &[]);
        assert_eq!(o.status.code(), Some(4), "{text}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("megabin.toml"), "{err}");
        assert!(!err.contains("SECRET"), "{text}: quoted the file: {err}");
        // The same file given with --config: the same rule.
        let o = build(
            &root,
            &out,
            &["--config", root.join("megabin.toml").to_str().unwrap()],
        );
        assert_eq!(o.status.code(), Some(4));
        assert!(!stderr(&o).contains("SECRET"), "{}", stderr(&o));
    }
    // A syntax error is located by line.
    std::fs::write(root.join("megabin.toml"), "[agent_tools]\n\n= broken\n").unwrap();
    let err = stderr(&build(&root, &out, &[]));
    assert!(err.contains("line 3"), "{err}");
    assert!(!out.exists());
}

#[test]
fn a_fifo_as_configuration_is_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let root = small_rootfs(tmp.path());
    mkfifo(&root.join("megabin.toml"));
    let out = tmp.path().join("out");
    let o = output_within(build_cmd(&root, &out, &[]), BLOCKED_AFTER);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("FIFO"), "{}", stderr(&o));
    // --config naming a FIFO (a host path: the user's choice, but still never blocking).
    std::fs::remove_file(root.join("megabin.toml")).unwrap();
    let fifo = tmp.path().join("config.fifo");
    mkfifo(&fifo);
    let o = output_within(
        build_cmd(&root, &out, &["--config", fifo.to_str().unwrap()]),
        BLOCKED_AFTER,
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("FIFO"), "{}", stderr(&o));
    // A symlink to a FIFO inside the rootfs too.
    mkfifo(&root.join("pipe"));
    symlink("/pipe", root.join("megabin.toml")).unwrap();
    let o = output_within(build_cmd(&root, &out, &[]), BLOCKED_AFTER);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(!out.exists());
}

#[test]
fn an_oversized_configuration_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = small_rootfs(tmp.path());
    // Valid TOML (comments) just over the 1 MiB bound.
    let mut text = String::from("[agent_tools]\n");
    while text.len() <= 1 << 20 {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    std::fs::write(root.join("megabin.toml"), &text).unwrap();
    let out = tmp.path().join("out");
    let o = build(&root, &out, &[]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("larger than 1048576 bytes"),
        "{}",
        stderr(&o)
    );
    let host = tmp.path().join("big.toml");
    std::fs::write(&host, &text).unwrap();
    std::fs::remove_file(root.join("megabin.toml")).unwrap();
    let o = build(&root, &out, &["--config", host.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("larger than"), "{}", stderr(&o));
    // Just under the bound is fine.
    text.truncate(1 << 20);
    let cut = text.rfind('\n').unwrap();
    text.truncate(cut + 1);
    std::fs::write(&host, &text).unwrap();
    let o = build(&root, &out, &["--config", host.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn planted_symlinks_in_the_output_directory_are_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    copy_tree(&sample_rootfs(), &root, false);
    let victim = tmp.path().join("victim.txt");
    std::fs::write(&victim, "precious\n").unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let names = ["container.wasm", "container.cwasm", "manifest.json"];
    // At the final names...
    for name in names {
        symlink(&victim, out.join(name)).unwrap();
    }
    // ...and at the staging names an earlier megabin used (`.megabin-tmp-<pid>-<name>`): the
    // build's pid is known before it starts, since `sh` execs it after a line on stdin.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"read go; exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_megabin"))
        .arg("build")
        .arg(&root)
        .arg("-o")
        .arg(&out)
        .arg("--aot")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    for name in names {
        symlink(&victim, out.join(format!(".megabin-tmp-{pid}-{name}"))).unwrap();
    }
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "precious\n",
        "the victim outside OUT was written through a planted symlink"
    );
    for name in names {
        let meta = std::fs::symlink_metadata(out.join(name)).unwrap();
        assert!(
            meta.is_file(),
            "{name} is a regular file, not the planted link"
        );
    }
    let m = manifest(&out);
    assert_eq!(
        m.megabinaries["container.wasm"],
        Digest::of(&std::fs::read(out.join("container.wasm")).unwrap())
    );
}

/// Rewrites every occurrence of `from` in `bytes` by `to` (same length).
fn replace_all(bytes: &mut [u8], from: &[u8], to: &[u8]) -> usize {
    assert_eq!(from.len(), to.len());
    let mut n = 0;
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            n += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    n
}

/// Recomputes the megabinaries' digests and the container id from the files in `out`.
fn reseal(out: &Path, m: &mut Manifest) {
    for (name, digest) in m.megabinaries.iter_mut() {
        *digest = Digest::of(&std::fs::read(out.join(name)).unwrap());
    }
    m.container_id = m.computed_id();
    assert!(m.id_is_consistent());
    std::fs::write(out.join("manifest.json"), m.to_json()).unwrap();
}

fn verify(out: &Path, rootfs: &Path) -> Output {
    output_within(verify_rootfs_cmd(out, rootfs), Duration::from_secs(300))
}

#[test]
fn verify_rootfs_reports_code_not_built_from_the_rootfs() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    copy_tree(&sample_rootfs(), &real, false);
    // The real build verifies (the rebuild is byte-identical).
    let real_out = tmp.path().join("real-out");
    assert!(build(&real, &real_out, &[]).status.success());
    let o = verify(&real_out, &real);
    assert!(o.status.success(), "{}", stderr(&o));

    // An evil rootfs: the same paths, /usr/bin/hello replaced by other code.
    let evil = tmp.path().join("evil");
    copy_tree(&real, &evil, false);
    let evil_hello = wat_program("evil code\n", 0);
    write_exec(&evil.join("usr/bin/hello"), &evil_hello);
    let out = tmp.path().join("out");
    let o = build(&evil, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Forge: the megabinary's digest tables (dispatcher table and entries section) and the
    // manifest now name the real hello; every digest and the id are recomputed.
    let real_digest = Digest::of(&std::fs::read(real.join("usr/bin/hello")).unwrap());
    let evil_digest = Digest::of(&evil_hello);
    let wasm_path = out.join("container.wasm");
    let mut wasm = std::fs::read(&wasm_path).unwrap();
    let patched = replace_all(&mut wasm, &evil_digest.0, &real_digest.0)
        + replace_all(
            &mut wasm,
            evil_digest.hex().as_bytes(),
            real_digest.hex().as_bytes(),
        );
    assert!(patched >= 2, "digest tables found: {patched}");
    std::fs::write(&wasm_path, &wasm).unwrap();
    let mut m = manifest(&out);
    let real_size = std::fs::metadata(real.join("usr/bin/hello")).unwrap().len();
    for b in m.binaries.values_mut() {
        if b.hash == evil_digest {
            b.hash = real_digest;
            b.size = real_size;
        }
    }
    for tool in m.agent_tools.values_mut() {
        if tool.digest == evil_digest {
            tool.digest = real_digest;
        }
    }
    reseal(&out, &mut m);
    assert_eq!(
        m.binaries,
        manifest(&real_out).binaries,
        "the forged manifest names exactly the real programs"
    );

    let o = verify(&out, &real);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("container.wasm is not built from the rootfs"),
        "{err}"
    );
}

#[test]
fn verify_rootfs_lists_programs_a_stale_build_lacks() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, out) = build_sample_copy(tmp.path(), &[]);
    assert!(verify(&out, &root).status.success());
    // A new WASI program after the build.
    write_exec(&root.join("usr/bin/newer"), &wat_program("newer\n", 0));
    std::os::unix::fs::symlink("/usr/bin/newer", root.join("bin/newer")).unwrap();
    let o = verify(&out, &root);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    for path in ["/usr/bin/newer", "/bin/newer"] {
        assert!(
            err.contains(&format!(
                "{path}: WASI program in the rootfs ({} as ",
                Digest::of(&wat_program("newer\n", 0))
            )) && err.contains("that the build lacks (stale build?)"),
            "{err}"
        );
    }
}

#[test]
fn the_manifest_records_the_options_a_rebuild_needs() {
    let tmp = tempfile::tempdir().unwrap();
    // A shard cap of 0 puts every program in a megabinary of its own; verify must rebuild
    // with the same cap (with the default it would get one megabinary).
    let (root, out) = build_sample_copy(tmp.path(), &["--max-shard-size", "0"]);
    let m = manifest(&out);
    let b = m.build.as_ref().expect("build options recorded");
    assert_eq!(b.max_shard_bytes, 0);
    assert_eq!(b.agent_tools["search_web"], "/opt/tools/search_web");
    assert!(m.megabinaries.len() > 1, "{:?}", m.megabinaries.keys());
    let o = verify(&out, &root);
    assert!(o.status.success(), "{}", stderr(&o));
    // A --config chosen at build time is recorded too (the rootfs's megabin.toml is not it).
    let cfg = tmp.path().join("other.toml");
    std::fs::write(&cfg, "[agent_tools]\nonly = \"/usr/bin/wc\"\n").unwrap();
    let out2 = tmp.path().join("out2");
    assert!(build(&root, &out2, &["--config", cfg.to_str().unwrap()])
        .status
        .success());
    assert_eq!(
        manifest(&out2)
            .build
            .unwrap()
            .agent_tools
            .keys()
            .collect::<Vec<_>>(),
        ["only"]
    );
    let o = verify(&out2, &root);
    assert!(o.status.success(), "{}", stderr(&o));
}
