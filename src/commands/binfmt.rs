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

use super::args::TrustArgs;
use super::error::{CliError, ErrorKind};
use super::run::RunArgs;
use runtime_check::{parse_pin, EXPECT_ID_ENV};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// File name of the interpreter in OUT.
pub const INTERPRETER: &str = "megabin-binfmt";
/// Name of the binfmt_misc entry.
pub const ENTRY: &str = "megabin";
/// Where the kernel reads registrations.
pub const REGISTER: &str = "/proc/sys/fs/binfmt_misc/register";

/// Print (or --install) the binfmt_misc registration that makes the kernel run executed
/// wasm files from this build (exec intercept).
#[derive(Clone, Debug, clap::Args)]
pub struct BinfmtArgs {
    /// Build output directory (its absolute path is the registration's interpreter
    /// directory: the build must be at this path inside containers too).
    pub out: PathBuf,
    /// Create OUT/megabin-binfmt and write the registration.
    #[arg(long)]
    pub install: bool,
    /// Where to write the registration.
    #[arg(long, value_name = "FILE", default_value = REGISTER)]
    pub register_file: PathBuf,
}

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
pub fn run(a: BinfmtArgs) -> Result<ExitCode, CliError> {
    let out = std::path::absolute(&a.out)
        .map_err(|e| CliError::usage("binfmt", format!("{}: {e}", a.out.display())))?;
    if !out.join("manifest.json").is_file() {
        return Err(CliError::not_found(
            "binfmt",
            format!(
                "{} holds no manifest.json: give the build output directory",
                out.display()
            ),
        ));
    }
    let line = registration(&out);
    if line.len() > 255 {
        let message = format!("the path {} is too long for binfmt_misc", out.display());
        return Err(CliError::usage("binfmt", message));
    }
    if !a.install {
        println!("{line}");
        return Ok(ExitCode::SUCCESS);
    }
    install(&out, &line, &a.register_file)?;
    println!("megabin: binfmt: registered {line}");
    Ok(ExitCode::SUCCESS)
}

/// Links the interpreter into `out` and writes the registration `line` to `register`.
fn install(out: &Path, line: &str, register: &Path) -> Result<(), CliError> {
    let link = out.join(INTERPRETER);
    // The runner's own path; argv[0] where /proc is not mounted (a chroot).
    let argv0 = std::env::args_os().next().map(PathBuf::from);
    let exe = std::env::current_exe()
        .or_else(|e| argv0.filter(|p| p.is_absolute() && p.is_file()).ok_or(e))
        .map_err(|e| {
            CliError::failed("binfmt", format!("cannot find the runner's own path: {e}"))
        })?;
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&exe, &link).map_err(|e| {
        CliError::failed("binfmt", format!("cannot create {}: {e}", link.display()))
    })?;
    std::fs::write(register, format!("{line}\n")).map_err(|e| {
        CliError::failed(
            "binfmt",
            format!(
                "cannot write {}: {e} (mount binfmt_misc there, as root or in a user \
                 namespace on Linux 6.7+)",
                register.display()
            ),
        )
    })
}

/// The run the kernel asked for: `[interpreter, argv0, file, args...]`; the build is the
/// interpreter's directory, the rootfs is `/`.
pub fn run_as_interpreter(args: Vec<OsString>) -> Result<ExitCode, CliError> {
    let strings: Option<Vec<String>> = args.into_iter().map(|a| a.into_string().ok()).collect();
    let Some(args) = strings else {
        let message = "arguments that are not UTF-8 are not supported".to_string();
        return Err(CliError::new(ErrorKind::Unsupported(message)).in_command("exec"));
    };
    let [interp, argv0, file, rest @ ..] = args.as_slice() else {
        return Err(CliError::usage(
            "exec",
            format!(
                "started as {INTERPRETER} without the kernel's arguments (the registration \
                 needs the P flag)"
            ),
        ));
    };
    let out = Path::new(interp)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let file = std::path::absolute(file)
        .map_err(|e| CliError::not_found("exec", format!("{file}: {e}")))?;
    let expect_id = match std::env::var(EXPECT_ID_ENV) {
        Ok(v) => Some(
            parse_pin(&v).map_err(|e| CliError::usage("exec", format!("{EXPECT_ID_ENV}: {e}")))?,
        ),
        Err(_) => None,
    };
    // As an executed program would: the caller's environment (minus megabin's own settings)
    // and its working directory.
    let env = std::env::vars()
        .filter(|(k, _)| !k.starts_with("MEGABIN_"))
        .map(Some)
        .collect();
    let dirs = std::env::current_dir()
        .map(|d| vec![(d, ".".to_string())])
        .unwrap_or_default();
    let command = std::iter::once(file.display().to_string())
        .chain(rest.iter().cloned())
        .collect();
    super::run::run(RunArgs {
        rootfs: PathBuf::from("/"),
        dirs,
        env,
        argv0: Some(argv0.clone()),
        max_memory: None,
        timeout: None,
        tool: None,
        require_aot: false,
        trust: TrustArgs {
            expect_id,
            ..TrustArgs::default()
        },
        backtrace: false,
        exec: true,
        out,
        command,
    })
}
