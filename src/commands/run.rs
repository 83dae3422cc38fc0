//! `megabin run`: verify, then run one program of a megabinary on stock Wasmtime.

use crate::rootfs;
use runtime_check::aot::{load_module, Loaded};
use runtime_check::run::{run_module, RunConfig};
use runtime_check::verify::{verify, Refusal, Request, EXIT_NOT_FOUND};
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
    /// Print the wasm backtrace of a trap (`--backtrace`, or `RUST_BACKTRACE` set).
    pub backtrace: bool,
}

/// Runs the command; returns the process exit code. Messages go to stderr, prefixed `megabin:`.
pub fn run(a: &RunArgs) -> i32 {
    let (request, shown) = match (&a.tool, &a.program) {
        (Some(tool), _) => (Request::Tool(tool.clone()), tool.clone()),
        (None, Some(p)) if p.starts_with("sha256:") => (Request::Digest(p.clone()), p.clone()),
        (None, Some(p)) => {
            let path = if p.starts_with('/') {
                p.clone()
            } else {
                format!("/{p}")
            };
            let host = rootfs::resolve(&a.rootfs, &path).ok().map(|t| t.host);
            (
                Request::Path {
                    path: path.clone(),
                    host,
                },
                path,
            )
        }
        (None, None) => {
            eprintln!("megabin: run: give a PROGRAM (path or sha256:digest) or --tool NAME");
            return EXIT_NOT_FOUND;
        }
    };
    let verified = match verify(&a.out, &request) {
        Ok(v) => v,
        Err(Refusal { exit_code, message }) => {
            eprintln!("megabin: refused: {message}");
            return exit_code;
        }
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
    let engine = match runtime_check::new_engine() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("megabin: cannot create the Wasmtime engine: {e}");
            return 1;
        }
    };
    let module = match load_module(
        &engine,
        &a.out,
        &verified.manifest,
        &verified.megabinary,
        a.require_aot,
    ) {
        Ok((module, Loaded::Artifact)) | Ok((module, Loaded::Compiled(None))) => module,
        Ok((module, Loaded::Compiled(Some(why)))) => {
            eprintln!(
                "megabin: note: not using the AOT artifact ({why}); compiled {} instead",
                verified.megabinary
            );
            module
        }
        Err(Refusal { exit_code, message }) => {
            eprintln!("megabin: refused: {message}");
            return exit_code;
        }
    };
    let program = verified.entry_point.trim_end_matches("_start").to_string();
    match run_module(&engine, &module, &program, &verified.digest, &config) {
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
