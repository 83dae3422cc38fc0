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
//! One thing static glibc does differently matters here: `dlsym(RTLD_DEFAULT, ...)` finds
//! nothing in a static executable. The `getrandom` crate (seeding wasmtime-wasi's random
//! context for every program) looks up glibc's `getrandom` that way and, not finding it, falls
//! back to reading `/dev/urandom`, which a bare chroot does not have: every run panicked
//! ("could not initialize ThreadRng"). So `dlsym` is wrapped (`--wrap=dlsym`, a small C object
//! compiled here): a lookup of `getrandom` returns glibc's (static) `getrandom`, anything else
//! goes to glibc's `dlsym` unchanged.
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
    let out = PathBuf::from(var("OUT_DIR"));
    let dir = out.join("static-libs");
    match static_libs(&dir).and_then(|()| dlsym_wrapper(&out)) {
        Ok(wrapper) => {
            println!("cargo:rustc-link-arg-bins=-static-pie");
            println!("cargo:rustc-link-arg-bins=-L{}", dir.display());
            println!("cargo:rustc-link-arg-bins=-Wl,--wrap=dlsym");
            println!("cargo:rustc-link-arg-bins={}", wrapper.display());
            // The wrapper's references (`getrandom`, glibc's `dlsym`) come after libc on the
            // link line: search it once more.
            println!("cargo:rustc-link-arg-bins=-lc");
        }
        Err(why) => println!(
            "cargo:warning=megabin is linked dynamically: {why} (install glibc's static \
             libraries, e.g. Debian's libc6-dev, for a static build)"
        ),
    }
}

/// `dlsym` for a static executable: see the module documentation.
const DLSYM_WRAPPER: &str = r#"
#include <dlfcn.h>
#include <string.h>
#include <sys/random.h>

void *__real_dlsym(void *handle, const char *name);

void *__wrap_dlsym(void *handle, const char *name) {
    if (handle == RTLD_DEFAULT && name != NULL && strcmp(name, "getrandom") == 0)
        return (void *)&getrandom;
    return __real_dlsym(handle, name);
}
"#;

/// Compiles [`DLSYM_WRAPPER`] into `dir`; returns the object file.
fn dlsym_wrapper(dir: &Path) -> Result<PathBuf, String> {
    let (src, obj) = (dir.join("dlsym_wrapper.c"), dir.join("dlsym_wrapper.o"));
    std::fs::write(&src, DLSYM_WRAPPER)
        .map_err(|e| format!("cannot write {}: {e}", src.display()))?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-c", "-O2", "-fPIE", "-o"])
        .arg(&obj)
        .arg(&src)
        .status()
        .map_err(|e| format!("cannot run {cc}: {e}"))?;
    if !status.success() {
        return Err(format!("{cc} cannot compile {}", src.display()));
    }
    Ok(obj)
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
