//! `megabin run`: verify, then run one program of a megabinary on stock Wasmtime.

use super::args::{self, TrustArgs};
use super::error::{status, CliError, ErrorKind};
use super::load::{load_code, open_cache, open_container};
use super::lookup::request_for;
use crate::rootfs;
use runtime_check::Cache;
use runtime_check::Container;
use runtime_check::LoadOptions;
use runtime_check::Measurer;
use runtime_check::{run_module, RunConfig};
use runtime_check::{Request, Verified};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const EXIT_CODES: &str = "Exit codes:
  N    the program's own exit status, any of 0..=255 (0 when it returns normally); a
       program may exit with one of the codes below itself
  1    the program called proc_exit with a status above 255
  2    usage error (also: --max-memory too small to instantiate the megabinary)
  124  --timeout elapsed
  125  --max-memory refused memory and the program then failed
  126  refused: the file's hash, the megabinary or the manifest does not match; or (the
       runner built without the compiler) the build has no AOT artifact it can load
  127  not found: path not in the manifest, skipped (not recompiled), unknown digest or tool
  134  the program trapped: one line names it and the trap (the wasm backtrace with
       --backtrace, or when RUST_BACKTRACE is set)";

/// Verify a program against the manifest, then run it from the megabinary.
#[derive(Clone, Debug, clap::Args)]
#[command(after_help = EXIT_CODES)]
pub struct RunArgs {
    /// Rootfs the program paths refer to.
    #[arg(long, default_value = "/")]
    pub rootfs: PathBuf,
    /// Preopen a host directory, optionally under another guest path.
    #[arg(long = "dir", value_name = "HOST[::GUEST]", value_parser = args::parse_dir)]
    pub dirs: Vec<(PathBuf, String)>,
    /// Set an environment variable for the program; `K` alone passes on the host's value of
    /// K, if any (no other host variable leaks in).
    #[arg(long = "env", value_name = "K[=V]", value_parser = args::parse_env)]
    pub env: Vec<Option<(String, String)>>,
    /// argv[0] for the program (default: the program path).
    #[arg(long)]
    pub argv0: Option<String>,
    /// Cap on all memories of the run together: bytes, or with a unit: 512M, 1.5G, 64K.
    #[arg(long, value_name = "SIZE", value_parser = args::parse_size)]
    pub max_memory: Option<usize>,
    /// Wall-clock limit, e.g. 10s or 500ms.
    #[arg(long, value_name = "DURATION", value_parser = args::parse_duration)]
    pub timeout: Option<Duration>,
    /// Run an agent tool from the manifest instead of a PROGRAM.
    #[arg(long)]
    pub tool: Option<String>,
    /// Never compile: run only precompiled code (the verified AOT artifact for this engine,
    /// or a compile-cache entry).
    #[arg(long)]
    pub require_aot: bool,
    /// Pin, cache and hashing flags.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Print the wasm backtrace when the program traps (also when RUST_BACKTRACE is set).
    #[arg(long)]
    pub backtrace: bool,
    /// Set by the exec path (binfmt_misc): PROGRAM was started by the kernel, so when it is the
    /// interpreter of a listed `#!` script and its arguments start the way the kernel starts
    /// that script, the run is the script's (verified as one).
    #[arg(skip)]
    pub exec: bool,
    /// Build output directory (manifest.json and megabinaries).
    pub out: PathBuf,
    /// PROGRAM (a rootfs path or sha256:<hex>; omitted with --tool) and its arguments.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PROGRAM [ARGS]",
        required_unless_present = "tool"
    )]
    pub command: Vec<String>,
}

/// Runs the command: verifies, loads and runs the program; ends with its exit status.
/// Messages go to stderr, prefixed `megabin:`.
pub fn run(a: RunArgs) -> Result<ExitCode, CliError> {
    let container = open_container(&a.out, &a.trust)?;
    let (request, shown, args) = request(&a, &container)?;
    let cache = open_cache(&a.trust);
    let measurer = Measurer::new(cache.as_ref(), a.trust.rehash);
    let locate = |path: &str| rootfs::resolve(&a.rootfs, path).ok().map(|t| t.host);
    let verified = container.verify_request(&request, &locate, &measurer)?;
    // A script: the interpreter's argv before the caller's arguments, the script's verified
    // copy readable (only) at its path.
    let staged = verified
        .stage_script()
        .map_err(|e| CliError::failed("run", format!("cannot stage the script: {e}")))?;
    let argv = verified.argv_prefix(shown);
    let config = RunConfig {
        args: a
            .argv0
            .iter()
            .cloned()
            .chain(argv.into_iter().skip(usize::from(a.argv0.is_some())))
            .chain(args)
            .collect(),
        env: a.env.iter().flatten().cloned().collect(),
        preopens: a.dirs.clone(),
        read_only: staged.iter().map(|s| s.preopen()).collect(),
        max_memory: a.max_memory,
        timeout: a.timeout,
    };
    execute(
        &a,
        &container,
        cache.as_ref(),
        &measurer,
        &verified,
        &config,
    )
}

/// What PROGRAM (or `--tool`) asks for, how argv[0] shows it by default, and the program's
/// arguments.
fn request(a: &RunArgs, container: &Container) -> Result<(Request, String, Vec<String>), CliError> {
    if let Some(tool) = &a.tool {
        return Ok((Request::Tool(tool.clone()), tool.clone(), a.command.clone()));
    }
    let Some((program, args)) = a.command.split_first() else {
        return Err(CliError::not_found(
            "run",
            "give a PROGRAM (path, name or sha256:digest) or --tool NAME",
        ));
    };
    let request = request_for(program, &a.rootfs, container.manifest())?;
    if a.exec {
        if let Some(script) = exec_of_script(&request, args, &a.rootfs, container.manifest()) {
            return Ok(script);
        }
    }
    // argv[0] is what was typed; a relative path is taken from the rootfs root.
    let shown = match program.contains('/') && !program.starts_with('/') {
        true => format!("/{program}"),
        false => program.clone(),
    };
    Ok((request, shown, args.to_vec()))
}

/// The kernel runs a `#!` script by executing its interpreter with
/// `[interpreter, (arg,) script, args...]` (for `#!/usr/bin/env NAME`: env with
/// `[env, NAME, script, args...]`). When PROGRAM and `args` have that shape for a listed script
/// (relative script paths are taken from the working directory, as the kernel does), the
/// request for the script and its own arguments.
fn exec_of_script(
    request: &Request,
    args: &[String],
    root: &std::path::Path,
    manifest: &crate::manifest::Manifest,
) -> Option<(Request, String, Vec<String>)> {
    let Request::Path { path: program, .. } = request else {
        return None;
    };
    let hash = manifest.binaries.get(program)?.hash;
    let is_env = program.rsplit('/').next() == Some("env");
    (0..args.len().min(2)).find_map(|k| {
        let script_path = absolute(&args[k])?;
        let script = manifest.scripts.get(&script_path)?;
        let shape = if is_env {
            k == 1 && script.argv.len() == 1 && args[0] == script.argv[0]
        } else {
            manifest.binaries.get(&script.interpreter)?.hash == hash
                && args[..k] == script.argv[1..]
        };
        shape.then(|| {
            let host = rootfs::resolve(root, &script_path).ok().map(|t| t.host);
            let request = Request::Path {
                path: script_path.clone(),
                host,
            };
            (request, script_path, args[k + 1..].to_vec())
        })
    })
}

/// `arg` as an absolute path, relative ones from the working directory.
fn absolute(arg: &str) -> Option<String> {
    let path = std::path::absolute(arg).ok()?;
    path.to_str().map(str::to_string)
}

/// Loads the verified program's megabinary and runs the program.
fn execute(
    a: &RunArgs,
    container: &Container,
    cache: Option<&Cache>,
    measurer: &Measurer,
    verified: &Verified,
    config: &RunConfig,
) -> Result<ExitCode, CliError> {
    let engine = super::load::engine()?;
    let opts = LoadOptions {
        cache,
        measurer,
        require_aot: a.require_aot,
    };
    let (module, _) = load_code(&engine, container, &verified.megabinary, &opts)?;
    let program = megabin_format::names::entry_of_start_export(&verified.entry_point)
        .unwrap_or(&verified.entry_point);
    match run_module(&engine, &module, program, verified.digest.bytes(), config) {
        Ok(code) => Ok(status(code)),
        Err(error) => Err(CliError::new(ErrorKind::Run {
            error,
            backtrace: a.backtrace || args::backtrace_from_env(),
        })),
    }
}
