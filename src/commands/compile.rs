//! `megabin compile OUT`: fill the private compile cache ahead of time (a CI warm-up step),
//! so the first `megabin run` of each megabinary starts as fast as with `--aot`.

use super::args::TrustArgs;
use super::error::{CliError, ErrorKind};
use super::load::{load_code, open_cache, open_container};
use runtime_check::Measurer;
use runtime_check::{LoadOptions, Loaded};
use std::path::PathBuf;
use std::process::ExitCode;

const EXIT_CODES: &str = "Exit codes:
  0    every megabinary is compiled and cached (or has a usable AOT artifact)
  1    the cache cannot be used or written
  2    usage error (also: this megabin is the runner, built without the compiler)
  126  refused: the pin does not match, OUT is not trusted, a file does not match
  127  the build output does not exist";

/// Compile every megabinary of a build into the private cache ahead of time (CI warm-up).
#[derive(Clone, Debug, clap::Args)]
#[command(after_help = EXIT_CODES)]
pub struct CompileArgs {
    /// Pin, cache and hashing flags.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Build output directory.
    pub out: PathBuf,
}

/// Runs the command: loads (compiling and caching) every megabinary, saying what it did.
pub fn run(a: CompileArgs) -> Result<ExitCode, CliError> {
    if !cfg!(feature = "compiler") {
        return Err(CliError::usage(
            "compile",
            "this megabin is the runner without the Cranelift compiler (built without the \
             `compiler` feature): it cannot compile; it runs only verified AOT artifacts \
             (`megabin build --aot`)",
        ));
    }
    let container = open_container(&a.out, &a.trust)?;
    if a.trust.no_cache {
        return Err(CliError::usage(
            "compile",
            "--no-cache leaves nothing to fill",
        ));
    }
    // open_cache has said why there is none.
    let cache = open_cache(&a.trust).ok_or(CliError::new(ErrorKind::Reported))?;
    let measurer = Measurer::new(Some(&cache), a.trust.rehash);
    let engine = super::load::engine()?;
    let opts = LoadOptions {
        cache: Some(&cache),
        measurer: &measurer,
        require_aot: false,
    };
    for name in container.manifest().megabinaries.keys() {
        match load_code(&engine, &container, name, &opts)?.1 {
            Loaded::Artifact => println!("megabin: {name}: its AOT artifact is used"),
            Loaded::Cached(p) => println!("megabin: {name}: cached in {}", p.display()),
            Loaded::Compiled(Some(p)) => {
                println!("megabin: {name}: compiled, cached in {}", p.display())
            }
            Loaded::Compiled(None) => {
                let message = format!("{name}: compiled, but the cache could not be written");
                return Err(CliError::new(ErrorKind::Failed(message)));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
