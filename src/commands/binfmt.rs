//! The exec intercept: a binfmt_misc registration that makes the kernel hand every executed
//! WebAssembly file (magic `\0asm\x01\0\0\0`) to megabin, which verifies it against the build
//! and runs it from the megabinary, as qemu-user-static runs foreign-architecture binaries.
//!
//! The rule that finds the build: the registration's interpreter is `<OUT>/megabin-binfmt`
//! (a symlink to the runner, created by `megabin binfmt --install OUT`). The kernel starts the
//! interpreter with that path as argv[0], so the runner knows it was started by the kernel (by
//! the file name) and which build to use (the directory). With the `F` flag the kernel opens
//! the interpreter once, at registration, so it also works in containers and chroots that do
//! not contain it; the build itself must be at the same path inside them (e.g. `/megabin`).
//! With the `P` flag the program's own argv[0] is preserved: the kernel passes
//! `[interpreter, argv0, file, args...]`.
//!
//! The program gets what an executed program gets: the caller's environment (minus
//! `MEGABIN_*`) and its working directory (preopened as `.`); `MEGABIN_EXPECT_ID` pins the
//! build as for `megabin run`.

use super::load::TrustArgs;
use super::run::RunArgs;
use runtime_check::trust::{parse_pin, EXPECT_ID_ENV};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// File name of the interpreter in OUT.
pub const INTERPRETER: &str = "megabin-binfmt";
/// Name of the binfmt_misc entry.
pub const ENTRY: &str = "megabin";
/// Where the kernel reads registrations.
pub const REGISTER: &str = "/proc/sys/fs/binfmt_misc/register";

/// The registration line for the build in `out` (an absolute path).
pub fn registration(out: &Path) -> String {
    format!(
        ":{ENTRY}:M::\\x00asm\\x01\\x00\\x00\\x00::{}:PF",
        out.join(INTERPRETER).display()
    )
}

/// Whether the process was started by the kernel as the binfmt interpreter.
pub fn started_as_interpreter(argv0: &OsString) -> bool {
    Path::new(argv0)
        .file_name()
        .is_some_and(|n| n == INTERPRETER)
}

/// `megabin binfmt [--install] [--register-file F] OUT`: prints the registration, or installs
/// the interpreter link and writes the registration where the kernel reads it.
pub fn command(out: &Path, install: bool, register: &Path) -> i32 {
    let out = match std::path::absolute(out) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("megabin: binfmt: {}: {e}", out.display());
            return 2;
        }
    };
    if !out.join("manifest.json").is_file() {
        eprintln!(
            "megabin: binfmt: {} holds no manifest.json: give the build output directory",
            out.display()
        );
        return 127;
    }
    let line = registration(&out);
    if line.len() > 255 {
        eprintln!(
            "megabin: binfmt: the path {} is too long for binfmt_misc",
            out.display()
        );
        return 2;
    }
    if !install {
        println!("{line}");
        return 0;
    }
    let link = out.join(INTERPRETER);
    // The runner's own path; argv[0] where /proc is not mounted (a chroot).
    let argv0 = std::env::args_os().next().map(PathBuf::from);
    let exe = match std::env::current_exe()
        .or_else(|e| argv0.filter(|p| p.is_absolute() && p.is_file()).ok_or(e))
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("megabin: binfmt: cannot find the runner's own path: {e}");
            return 1;
        }
    };
    let _ = std::fs::remove_file(&link);
    if let Err(e) = std::os::unix::fs::symlink(&exe, &link) {
        eprintln!("megabin: binfmt: cannot create {}: {e}", link.display());
        return 1;
    }
    match std::fs::write(register, format!("{line}\n")) {
        Ok(()) => {
            println!("megabin: binfmt: registered {line}");
            0
        }
        Err(e) => {
            eprintln!(
                "megabin: binfmt: cannot write {}: {e} (mount binfmt_misc there, as root or in \
                 a user namespace on Linux 6.7+)",
                register.display()
            );
            1
        }
    }
}

/// The run the kernel asked for: `[interpreter, argv0, file, args...]`; the build is the
/// interpreter's directory, the rootfs is `/`.
pub fn run_as_interpreter(args: Vec<OsString>) -> i32 {
    let strings: Option<Vec<String>> = args.into_iter().map(|a| a.into_string().ok()).collect();
    let Some(args) = strings else {
        eprintln!("megabin: exec: arguments that are not UTF-8 are not supported");
        return 126;
    };
    let [interp, argv0, file, rest @ ..] = args.as_slice() else {
        eprintln!(
            "megabin: exec: started as {INTERPRETER} without the kernel's arguments \
             (the registration needs the P flag)"
        );
        return 2;
    };
    let out = Path::new(interp)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let file = match std::path::absolute(file) {
        Ok(p) => p.display().to_string(),
        Err(e) => {
            eprintln!("megabin: exec: {file}: {e}");
            return 127;
        }
    };
    let expect_id = match std::env::var(EXPECT_ID_ENV) {
        Ok(v) => match parse_pin(&v) {
            Ok(pin) => Some(pin),
            Err(e) => {
                eprintln!("megabin: exec: {EXPECT_ID_ENV}: {e}");
                return 2;
            }
        },
        Err(_) => None,
    };
    // As an executed program would: the caller's environment (minus megabin's own settings)
    // and its working directory.
    let env = std::env::vars()
        .filter(|(k, _)| !k.starts_with("MEGABIN_"))
        .collect();
    let dirs = std::env::current_dir()
        .map(|d| vec![(d, ".".to_string())])
        .unwrap_or_default();
    super::run::run(&RunArgs {
        out,
        rootfs: PathBuf::from("/"),
        program: Some(file),
        tool: None,
        args: rest.to_vec(),
        argv0: Some(argv0.clone()),
        env,
        dirs,
        max_memory: None,
        timeout: None,
        require_aot: false,
        backtrace: super::args::backtrace_from_env(),
        trust: TrustArgs {
            expect_id,
            ..TrustArgs::default()
        },
    })
}
