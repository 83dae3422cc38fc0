//! `megabin run`: verify, then run one program of a megabinary on stock Wasmtime.

use super::load::{load_code, open_cache, open_container, TrustArgs};
use super::lookup::request_for;
use runtime_check::load::LoadOptions;
use runtime_check::measure::Measurer;
use runtime_check::run::{run_module, RunConfig};
use runtime_check::verify::{Refusal, Request, EXIT_NOT_FOUND};
use std::path::PathBuf;
use std::time::Duration;

/// Everything `megabin run` was asked.
#[derive(Clone, Debug)]
pub struct RunArgs {
    pub out: PathBuf,
    pub rootfs: PathBuf,
    /// `sha256:<hex>` or an absolute path inside the rootfs; `None` with `tool`.
    pub program: Option<String>,
    pub tool: Option<String>,
    pub args: Vec<String>,
    pub argv0: Option<String>,
    pub env: Vec<(String, String)>,
    pub dirs: Vec<(PathBuf, String)>,
    pub max_memory: Option<usize>,
    pub timeout: Option<Duration>,
    /// Refuse to compile: run only from a verified AOT artifact.
    pub require_aot: bool,
    /// Pin, cache and hashing flags.
    pub trust: TrustArgs,
    /// Print the wasm backtrace of a trap (`--backtrace`, or `RUST_BACKTRACE` set).
    pub backtrace: bool,
}

/// Runs the command; returns the process exit code. Messages go to stderr, prefixed `megabin:`.
pub fn run(a: &RunArgs) -> i32 {
    let refuse = |Refusal { exit_code, message }: Refusal| {
        eprintln!("megabin: refused: {message}");
        exit_code
    };
    let container = match open_container(&a.out, &a.trust) {
        Ok(c) => c,
        Err(r) => return refuse(r),
    };
    let (request, shown) = match (&a.tool, &a.program) {
        (Some(tool), _) => (Request::Tool(tool.clone()), tool.clone()),
        (None, Some(p)) => match request_for(p, &a.rootfs, container.manifest()) {
            // argv[0] is what was typed; a relative path is taken from the rootfs root.
            Ok(r) if p.contains('/') && !p.starts_with('/') => (r, format!("/{p}")),
            Ok(r) => (r, p.clone()),
            Err(r) => return refuse(r),
        },
        (None, None) => {
            eprintln!("megabin: run: give a PROGRAM (path, name or sha256:digest) or --tool NAME");
            return EXIT_NOT_FOUND;
        }
    };
    let cache = open_cache(&a.trust);
    let measurer = Measurer::new(cache.as_ref(), a.trust.rehash);
    let verified = match container.verify_request(&request, &measurer) {
        Ok(v) => v,
        Err(r) => return refuse(r),
    };
    let argv0 = a.argv0.clone().unwrap_or(shown);
    let config = RunConfig {
        args: std::iter::once(argv0)
            .chain(a.args.iter().cloned())
            .collect(),
        env: a.env.clone(),
        preopens: a.dirs.clone(),
        max_memory: a.max_memory,
        timeout: a.timeout,
    };
    let engine = match super::load::engine() {
        Ok(e) => e,
        Err(code) => return code,
    };
    let opts = LoadOptions {
        cache: cache.as_ref(),
        measurer: &measurer,
        require_aot: a.require_aot,
    };
    let module = match load_code(&engine, &container, &verified.megabinary, &opts) {
        Ok((module, _)) => module,
        Err(r) => return refuse(r),
    };
    let program = verified.entry_point.trim_end_matches("_start").to_string();
    match run_module(&engine, &module, &program, verified.digest.bytes(), &config) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("megabin: {e}");
            if let Some(bt) = e.backtrace().filter(|_| a.backtrace) {
                eprintln!("megabin: wasm backtrace:\n{bt}");
            }
            e.exit_code()
        }
    }
}
