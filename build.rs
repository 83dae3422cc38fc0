//! Release builds of `megabin` for x86_64 glibc Linux are linked statically (static-pie against
//! glibc's static libraries), so the binary runs in a `FROM scratch` image or a bare chroot
//! without a dynamic loader (docs/containers.md).
//!
//! How: rustc's `-C target-feature=+crt-static` cannot be set in the repository for host builds
//! (it would also apply to proc-macros, which cannot be linked statically, and a `rustflags` or
//! `linker` setting in `.cargo/config.toml` changes every crate's fingerprint, debug builds
//! included). Instead this script adds link arguments to the `megabin` executable only, in the
//! release profile only: `-static-pie`, and a directory searched before the system's in which
//! the libraries rustc's (dynamic) link line names resolve to glibc's static archives
//! (`-lgcc_s` to `libgcc_eh.a`, as `+crt-static` links it). Nothing else is affected: other
//! profiles, tests, build scripts and dependencies are compiled exactly as before.
//!
//! `MEGABIN_DYNAMIC=1 cargo build --release` links dynamically, as rustc does by default.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The libraries rustc links a std executable against on x86_64-unknown-linux-gnu, and the
/// static archive each one stands for.
const LIBS: [(&str, &str); 7] = [
    ("gcc_s", "libgcc_eh.a"),
    ("c", "libc.a"),
    ("m", "libm.a"),
    ("pthread", "libpthread.a"),
    ("dl", "libdl.a"),
    ("rt", "librt.a"),
    ("util", "libutil.a"),
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=MEGABIN_DYNAMIC");
    println!("cargo:rerun-if-env-changed=CC");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("PROFILE") != "release"
        || var("TARGET") != "x86_64-unknown-linux-gnu"
        || std::env::var_os("MEGABIN_DYNAMIC").is_some_and(|v| !v.is_empty() && v != "0")
    {
        return;
    }
    let dir = PathBuf::from(var("OUT_DIR")).join("static-libs");
    match static_libs(&dir) {
        Ok(()) => {
            println!("cargo:rustc-link-arg-bins=-static-pie");
            println!("cargo:rustc-link-arg-bins=-L{}", dir.display());
        }
        Err(why) => println!(
            "cargo:warning=megabin is linked dynamically: {why} (install glibc's static \
             libraries, e.g. Debian's libc6-dev, for a static build)"
        ),
    }
}

/// Fills `dir` with `lib<name>.a` links to the static archives of [`LIBS`].
fn static_libs(dir: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    for (name, archive) in LIBS {
        let out = Command::new(&cc)
            .arg(format!("-print-file-name={archive}"))
            .output()
            .map_err(|e| format!("cannot run {cc}: {e}"))?;
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        // `cc` prints the bare name back when it does not find the file.
        if !path.is_absolute() || !path.is_file() {
            return Err(format!("{cc} finds no {archive}"));
        }
        std::os::unix::fs::symlink(&path, dir.join(format!("lib{name}.a")))
            .map_err(|e| format!("cannot link {archive} into {}: {e}", dir.display()))?;
    }
    Ok(())
}
