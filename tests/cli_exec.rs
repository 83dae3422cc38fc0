//! The exec intercept for real: in a user + mount namespace (Linux 6.7+ lets it mount its own
//! binfmt_misc, with no effect on the host), register megabin for the wasm magic inside an
//! image directory, then let the kernel execute program files there. Also `megabin list`,
//! bare names, directory symlinks and short digests through `megabin run`.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Copies the runner and the shared libraries it needs (when it is not static) into `image`,
/// so it starts inside a chroot of it.
fn install_runner(image: &Path) -> PathBuf {
    let runner = image.join("megabin/megabin");
    std::fs::create_dir_all(runner.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_megabin"), &runner).unwrap();
    let ldd = Command::new("ldd").arg(&runner).output();
    for line in ldd.map(|o| text(&o.stdout)).unwrap_or_default().lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux... (0x...)"
        let lib = line
            .split("=>")
            .last()
            .and_then(|r| r.split_whitespace().next())
            .filter(|p| p.starts_with('/'));
        if let Some(lib) = lib {
            let to = image.join(lib.trim_start_matches('/'));
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(lib, &to).unwrap();
        }
    }
    runner
}

/// Runs `script` with `sh` in a new user + mount namespace; `None` when the kernel or the
/// sandbox does not allow one (the caller reports the skip).
fn in_namespace(script: &str) -> Option<Output> {
    let probe = Command::new("unshare")
        .args(["-Urm", "sh", "-c", "mkdir -p /tmp/.megabin-binfmt-probe && mount -t binfmt_misc binfmt_misc /tmp/.megabin-binfmt-probe"])
        .output()
        .ok()?;
    if !probe.status.success() {
        eprintln!(
            "SKIPPED: cannot mount binfmt_misc in a user namespace here (needs Linux 6.7+ and \
             unprivileged user namespaces): {}",
            text(&probe.stderr)
        );
        return None;
    }
    Some(
        Command::new("unshare")
            .args(["-Urm", "sh", "-c", script])
            .output()
            .unwrap(),
    )
}

#[test]
fn executed_wasm_files_run_from_the_megabinary_through_binfmt_misc() {
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("image");
    copy_tree(&sample_rootfs(), &image, false);
    // Scripts cat interprets: the kernel starts /bin/cat with the script's path.
    let show = "#!/bin/cat\nprinted by cat\n";
    write_exec(&image.join("usr/local/bin/show"), show.as_bytes());
    write_exec(&image.join("usr/local/bin/edited"), show.as_bytes());
    // The build, made from the image's own tree, lives at /megabin inside it.
    let out = tmp.path().join("out");
    let o = build(&image, &out, &["--aot"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    copy_tree(&out, &image.join("megabin"), false);
    install_runner(&image);
    std::fs::create_dir_all(image.join("binfmt")).unwrap();
    std::fs::create_dir_all(image.join("tmp/cache")).unwrap();
    // A wasm file the build does not know, and a modified copy of a known one.
    write_exec(
        &image.join("usr/local/bin/stranger"),
        &wat_program("who?\n", 0),
    );
    let mut modified = std::fs::read(image.join("usr/bin/wc")).unwrap();
    let n = modified.len();
    modified[n - 1] ^= 1;
    write_exec(&image.join("usr/bin/wc"), &modified);
    write_exec(&image.join("usr/local/bin/edited"), b"#!/bin/cat\nedited\n");

    let d = image.display();
    let script = format!(
        "set -e
         mount -t binfmt_misc binfmt_misc {d}/binfmt
         chroot {d} /megabin/megabin binfmt --install /megabin --register-file /binfmt/register
         export MEGABIN_CACHE_DIR=/tmp/cache
         echo '--- hello'
         chroot {d} /usr/bin/hello one two
         echo '--- symlink'
         chroot {d} /usr/bin/hi
         set +e
         echo '--- stranger'
         chroot {d} /usr/local/bin/stranger; echo \"status $?\"
         echo '--- tampered'
         chroot {d} /usr/bin/wc; echo \"status $?\"
         echo '--- exit'
         chroot {d} /usr/bin/exitcode 7; echo \"status $?\"
         echo '--- script'
         chroot {d} /usr/local/bin/show; echo \"status $?\"
         echo '--- edited script'
         chroot {d} /usr/local/bin/edited; echo \"status $?\""
    );
    let Some(o) = in_namespace(&script) else {
        return;
    };
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{stdout}\n{stderr}");
    // The kernel ran /usr/bin/hello through megabin, argv[0] as given by the caller.
    assert!(
        stdout.contains("--- hello\nhello from megabin fixture\n/usr/bin/hello\none\ntwo\n"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("--- symlink\nhello from megabin fixture\n/usr/bin/hi\n"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("--- stranger\nstatus 127"),
        "{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("who?"), "an unknown program never runs");
    assert!(
        stdout.contains("--- tampered\nstatus 126"),
        "{stdout}\n{stderr}"
    );
    assert!(stderr.contains("/usr/bin/wc was modified"), "{stderr}");
    assert!(stdout.contains("exit(7)\nstatus 7"), "{stdout}\n{stderr}");
    // The kernel ran the script's interpreter; megabin verified the script and gave cat its
    // verified copy at its path.
    assert!(
        stdout.contains(&format!("--- script\n{show}status 0")),
        "{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("--- edited script\nstatus 126"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("/usr/local/bin/edited was modified"),
        "{stderr}"
    );
}

#[test]
fn the_registration_names_the_build_and_preserves_argv0() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    assert!(build(&sample_rootfs(), &out, &[]).status.success());
    let o = megabin().arg("binfmt").arg(&out).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout).trim(),
        format!(
            ":megabin:M::\\x00asm\\x01\\x00\\x00\\x00::{}/megabin-binfmt:PF",
            out.display()
        )
    );
    let o = megabin().arg("binfmt").arg(tmp.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(127));
    assert!(text(&o.stderr).contains("holds no manifest.json"));
}

fn run(out: &Path, root: &Path, program: &[&str]) -> Output {
    run_cmd(out, root, &[], program).output().unwrap()
}

#[test]
fn programs_are_found_by_bare_name_directory_symlink_and_short_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    copy_tree(&sample_rootfs(), &root, false);
    // A merged-/usr layout: /sbin -> usr/bin (relative), /opt/bin -> /usr/bin (absolute).
    std::os::unix::fs::symlink("usr/bin", root.join("sbin")).unwrap();
    std::os::unix::fs::symlink("/usr/bin", root.join("opt/bin")).unwrap();
    let out = tmp.path().join("out");
    assert!(build(&root, &out, &[]).status.success());
    compile(&out);
    let hello = "hello from megabin fixture\n";
    for (program, argv0) in [
        ("hello", "hello"),
        ("/sbin/hello", "/sbin/hello"),
        ("/opt/bin/hello", "/opt/bin/hello"),
    ] {
        let o = run(&out, &root, &[program]);
        assert_eq!(o.status.code(), Some(0), "{program}: {}", text(&o.stderr));
        assert_eq!(text(&o.stdout), format!("{hello}{argv0}\n"), "{program}");
    }
    let digest = manifest(&out).binaries["/usr/bin/hello"].hash.to_string();
    let o = run(&out, &root, &[&digest[..7 + 12]]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with(hello));
    let o = run(&out, &root, &[&digest[..7 + 11]]);
    assert_eq!(o.status.code(), Some(127));
    // Not found: the message names the rootfs and hints at --rootfs.
    let o = run(&out, &root, &["nosuchprogram"]);
    assert_eq!(o.status.code(), Some(127));
    let err = text(&o.stderr);
    assert!(
        err.contains("pass --rootfs DIR") && err.contains(&root.display().to_string()),
        "{err}"
    );
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = run(&out, &empty, &["/usr/bin/hello"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(
        text(&o.stderr).contains("does not exist in the rootfs"),
        "{}",
        text(&o.stderr)
    );
    assert!(text(&o.stderr).contains("pass --rootfs DIR"));
}

#[test]
fn list_shows_every_runnable_path_name_and_tool() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    assert!(build(&sample_rootfs(), &out, &[]).status.success());
    let m = manifest(&out);
    let o = megabin()
        .arg("list")
        .arg(&out)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let l: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(l["container_id"], m.container_id.to_string());
    let mut paths: Vec<String> = l["programs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["paths"].as_array().unwrap().iter())
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    paths.sort();
    assert_eq!(paths, m.binaries.keys().cloned().collect::<Vec<_>>());
    let hello = l["programs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["digest"] == m.binaries["/usr/bin/hello"].hash.to_string())
        .unwrap();
    assert!(hello["names"].as_array().unwrap().contains(&"hello".into()));
    assert_eq!(
        l["agent_tools"].as_object().unwrap().len(),
        m.agent_tools.len()
    );
    let o = megabin().arg("list").arg(&out).output().unwrap();
    let table = text(&o.stdout);
    let short = &m.binaries["/usr/bin/hello"].hash.to_string()[..7 + 12];
    assert!(
        table.contains(short) && table.contains("/usr/bin/hello"),
        "{table}"
    );
    assert!(
        table.contains("agent tools:") && table.contains("search_web"),
        "{table}"
    );
}
