//! The Dockerfile recipe of docs/containers.md, tested without Docker: the static release
//! `megabin` builds the app's rootfs with `--aot` (the CI recipe: pin the container_id from
//! the build's output, `megabin verify`), then the final image is assembled as a directory
//! exactly as the Dockerfile's last stage does (the static runner at /megabin/megabin, the
//! build output at /megabin, the program files at their paths, nothing else) and programs run
//! inside it with `chroot` in a user namespace, by `megabin run` and through binfmt_misc:
//! proof that nothing outside the image is needed.
//!
//! The release binaries are built by .ci/run before `cargo test` (a release build from a test
//! would take minutes): `MEGABIN_TEST_STATIC` names the full static `megabin`,
//! `MEGABIN_TEST_RUNNER` the static runner built without the `compiler` feature. Without them,
//! or without user namespaces, the tests say "SKIPPED: ..." and pass.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary named by `var`, or `None` (after saying why the test is skipped).
fn binary_from_env(var: &str, what: &str) -> Option<PathBuf> {
    let Some(path) = std::env::var_os(var).filter(|v| !v.is_empty()) else {
        eprintln!("SKIPPED: {var} is not set (the path of {what}; .ci/run builds it and sets it)");
        return None;
    };
    let path = PathBuf::from(path);
    assert!(path.is_file(), "{var}={} is not a file", path.display());
    Some(path)
}

/// Whether the ELF executable at `path` asks for a dynamic loader (has a PT_INTERP header).
fn needs_loader(path: &Path) -> bool {
    let b = std::fs::read(path).unwrap();
    assert!(
        b.starts_with(b"\x7fELF\x02\x01"),
        "{} is not a 64-bit little-endian ELF file",
        path.display()
    );
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().unwrap()) as usize;
    let (entsize, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).any(|i| {
        let at = phoff + i * entsize;
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) == 3 // PT_INTERP
    })
}

/// Whether `unshare -Ur` works here (`None`), or why not.
fn user_namespace_refused() -> Option<String> {
    match Command::new("unshare").args(["-Ur", "true"]).output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(text(&o.stderr).trim().to_string()),
        Err(e) => Some(format!("cannot run unshare: {e}")),
    }
}

/// `binary ARGS...`, with a cache of the test run's own and no pin from the environment.
fn cmd(binary: &Path) -> Command {
    let mut c = Command::new(binary);
    c.env(
        "MEGABIN_CACHE_DIR",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("megabin-cache"),
    )
    .env_remove("MEGABIN_EXPECT_ID");
    c
}

/// Stage 2 of the Dockerfile and the CI recipe: `megabin build ROOTFS -o OUT --aot --json`,
/// the container_id pinned from its output, `megabin verify` against it. Returns the pin.
fn build_and_verify(megabin: &Path, rootfs: &Path, out: &Path, aot: bool) -> String {
    let mut c = cmd(megabin);
    c.arg("build").arg(rootfs).arg("-o").arg(out).arg("--json");
    if aot {
        c.arg("--aot");
    }
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = summary["container_id"].as_str().unwrap().to_string();
    let o = cmd(megabin)
        .arg("verify")
        .arg(out)
        .arg("--rootfs")
        .arg(rootfs)
        .arg("--expect-id")
        .arg(&id)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    id
}

/// Stage 3 of the Dockerfile, as a directory: the program files at their paths, the build
/// output at /megabin, the runner at /megabin/megabin. Nothing else.
fn assemble_image(image: &Path, rootfs: &Path, out: &Path, runner: &Path) {
    use std::os::unix::fs::PermissionsExt;
    copy_tree(rootfs, image, false);
    copy_tree(out, &image.join("megabin"), false);
    let to = image.join("megabin/megabin");
    std::fs::copy(runner, &to).unwrap();
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs `script` with `sh` under `unshare FLAGS`, in an empty environment but for `PATH`
/// (for the host's `sh`, `chroot`, `mount`: the commands inside the image get nothing from
/// it, and `env -i` gives them an empty environment).
fn in_namespace(flags: &str, script: &str) -> Output {
    Command::new("unshare")
        .args([flags, "sh", "-c", script])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .unwrap()
}

#[test]
fn the_dockerfile_image_runs_programs_with_nothing_from_outside_it() {
    let Some(full) = binary_from_env("MEGABIN_TEST_STATIC", "the static release megabin") else {
        return;
    };
    let runner = binary_from_env(
        "MEGABIN_TEST_RUNNER",
        "the static runner (built without the compiler feature)",
    );
    let runner = runner.unwrap_or_else(|| {
        eprintln!("note: the image gets the full static megabin instead of the runner");
        full.clone()
    });
    assert!(!needs_loader(&full), "{} is not static", full.display());
    assert!(!needs_loader(&runner), "{} is not static", runner.display());

    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    copy_tree(&sample_rootfs(), &rootfs, false);
    let out = tmp.path().join("out");
    let id = build_and_verify(&full, &rootfs, &out, true);
    let image = tmp.path().join("image");
    assemble_image(&image, &rootfs, &out, &runner);
    // The mount point of the namespace's own binfmt_misc (as /proc/sys/fs/binfmt_misc is
    // on a host): the kernel's interface, not a file anything runs from.
    std::fs::create_dir(image.join("binfmt")).unwrap();

    if let Some(why) = user_namespace_refused() {
        eprintln!("SKIPPED: no user namespace here (unshare -Ur: {why})");
        return;
    }
    let d = image.display();
    let script = format!(
        "set -e
         C=$(command -v chroot)
         echo '--- run'
         env -i \"$C\" {d} /megabin/megabin run --expect-id {id} /megabin /usr/bin/hello one two
         echo '--- bare name'
         env -i \"$C\" {d} /megabin/megabin run /megabin hello
         echo '--- verify'
         env -i \"$C\" {d} /megabin/megabin verify /megabin --rootfs / --expect-id {id}
         set +e
         echo '--- exit'
         env -i \"$C\" {d} /megabin/megabin run /megabin /usr/bin/exitcode 7; echo \"status $?\"
         echo '--- wrong pin'
         env -i \"$C\" {d} /megabin/megabin run --expect-id sha256:{zeros} /megabin hello
         echo \"status $?\"",
        zeros = "0".repeat(64)
    );
    let o = in_namespace("-Ur", &script);
    let hello = "hello from megabin fixture\n";
    let stderr = succeeded_with(
        &o,
        &[
            format!("--- run\n{hello}/usr/bin/hello\none\ntwo\n"),
            format!("--- bare name\n{hello}hello\n"),
            "exit(7)\nstatus 7".into(),
            "--- wrong pin\nstatus 126".into(),
        ],
    );
    // Only the verified artifact ran: nothing was compiled in the image.
    assert!(!stderr.contains("compiling"), "{stderr}");

    // The exec intercept: the kernel hands executed wasm files to the runner in the image.
    let script = format!(
        "set -e
         C=$(command -v chroot)
         mount -t binfmt_misc binfmt_misc {d}/binfmt
         env -i \"$C\" {d} /megabin/megabin binfmt --install /megabin --register-file /binfmt/register
         echo '--- hello'
         env -i \"$C\" {d} /usr/bin/hello one two
         echo '--- symlink'
         env -i MEGABIN_EXPECT_ID={id} \"$C\" {d} /usr/bin/hi
         set +e
         echo '--- exit'
         env -i \"$C\" {d} /usr/bin/exitcode 7; echo \"status $?\""
    );
    let probe = in_namespace(
        "-Urm",
        &format!("mount -t binfmt_misc binfmt_misc {d}/binfmt"),
    );
    if !probe.status.success() {
        eprintln!(
            "SKIPPED (binfmt part): cannot mount binfmt_misc in a user namespace here (needs \
             Linux 6.7+): {}",
            text(&probe.stderr)
        );
        return;
    }
    let o = in_namespace("-Urm", &script);
    succeeded_with(
        &o,
        &[
            format!("--- hello\n{hello}/usr/bin/hello\none\ntwo\n"),
            format!("--- symlink\n{hello}/usr/bin/hi\n"),
            "exit(7)\nstatus 7".into(),
        ],
    );
}

/// Asserts that the script of `o` succeeded and printed each of `parts`; returns its stderr.
fn succeeded_with(o: &Output, parts: &[String]) -> String {
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{stdout}\n{stderr}");
    for part in parts {
        assert!(
            stdout.contains(part.as_str()),
            "{part:?} in\n{stdout}\n{stderr}"
        );
    }
    stderr
}

#[test]
fn the_runner_runs_only_verified_artifacts_and_says_what_needs_the_compiler() {
    let Some(full) = binary_from_env("MEGABIN_TEST_STATIC", "the static release megabin") else {
        return;
    };
    let Some(runner) = binary_from_env(
        "MEGABIN_TEST_RUNNER",
        "the static runner (built without the compiler feature)",
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = sample_rootfs();
    let aot = tmp.path().join("aot");
    build_and_verify(&full, &root, &aot, true);
    let plain = tmp.path().join("plain");
    build_and_verify(&full, &root, &plain, false);
    let run = |out: &Path| {
        cmd(&runner)
            .arg("run")
            .arg("--rootfs")
            .arg(&root)
            .arg(out)
            .args(["/usr/bin/hello", "x"])
            .output()
            .unwrap()
    };
    let o = run(&aot);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "hello from megabin fixture\n/usr/bin/hello\nx\n"
    );
    // A build without artifacts: refused (126), saying why and what to do.
    let o = run(&plain);
    assert_eq!(o.status.code(), Some(126), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("runner without the Cranelift compiler") && err.contains("build --aot"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
    // A modified artifact is refused as tampering, not loaded.
    let cwasm = aot.join("container.cwasm");
    let mut bytes = std::fs::read(&cwasm).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    std::fs::write(&cwasm, &bytes).unwrap();
    let o = run(&aot);
    assert_eq!(o.status.code(), Some(126), "{}", text(&o.stderr));
    assert!(o.stdout.is_empty());
    // The commands that need the compiler say so (exit 2).
    let o = cmd(&runner)
        .arg("build")
        .arg(&root)
        .arg("-o")
        .arg(tmp.path().join("again"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("without the Cranelift compiler"),
        "{}",
        text(&o.stderr)
    );
    assert!(!tmp.path().join("again").exists());
    let o = cmd(&runner).arg("compile").arg(&plain).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("without the Cranelift compiler"),
        "{}",
        text(&o.stderr)
    );
}
