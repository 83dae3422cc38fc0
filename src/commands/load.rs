//! The controller's load path, shared by `run`, `compile` and `verify`: open the build output
//! under its trust root, open the private cache, load a megabinary's code while telling the
//! user what happens (a spinner on a terminal while compiling).

use super::args::TrustArgs;
use super::error::CliError;
use crate::progress::Progress;
use runtime_check::Container;
use runtime_check::Refusal;
use runtime_check::{default_location, Cache};
use runtime_check::{load_module, LoadEvent, LoadOptions, Loaded};
use std::io::IsTerminal;
use std::path::Path;
use wasmtime::{Engine, Module};

/// Opens OUT under the pin of `t` (or ownership).
pub fn open_container(out: &Path, t: &TrustArgs) -> Result<Container, Refusal> {
    Container::open(out, t.expect_id)
}

/// The private cache, unless `--no-cache`; a cache that cannot be used is reported once and
/// bypassed (every run then hashes in full and compiles).
pub fn open_cache(t: &TrustArgs) -> Option<Cache> {
    if t.no_cache {
        return None;
    }
    let Some(root) = default_location() else {
        eprintln!(
            "megabin: note: no cache directory (set MEGABIN_CACHE_DIR, XDG_CACHE_HOME or HOME); \
             nothing is cached"
        );
        return None;
    };
    match Cache::open(&root) {
        Ok(c) => Some(c),
        Err(why) => {
            eprintln!("megabin: note: not using the cache: {why}");
            None
        }
    }
}

/// The runner's engine, or why there is none.
pub fn engine() -> Result<Engine, CliError> {
    runtime_check::new_engine().map_err(|e| {
        let message = format!("cannot create the Wasmtime engine: {e}");
        CliError::new(super::error::ErrorKind::Failed(message))
    })
}

/// Loads `megabinary`'s code, printing notes and a compile message (with a spinner on a
/// terminal) on stderr.
pub fn load_code(
    engine: &Engine,
    container: &Container,
    megabinary: &str,
    opts: &LoadOptions,
) -> Result<(Module, Loaded), Refusal> {
    let mut progress: Option<Progress> = None;
    let result = load_module(
        engine,
        container,
        megabinary,
        opts,
        &mut |event| match event {
            LoadEvent::ArtifactNotUsed(why) => {
                eprintln!("megabin: note: not using the AOT artifact ({why})")
            }
            LoadEvent::CacheProblem(why) => eprintln!("megabin: note: {why}"),
            LoadEvent::Compiling {
                megabinary,
                bytes,
                cache,
            } => {
                let msg = match &cache {
                    Some(dir) => format!(
                        "compiling {megabinary} ({}), once; cached in {}",
                        human_size(bytes),
                        dir.display()
                    ),
                    None => format!(
                        "compiling {megabinary} ({}); not cached (--no-cache or no cache)",
                        human_size(bytes)
                    ),
                };
                eprintln!("megabin: {msg}");
                let p = Progress::new(std::io::stderr().is_terminal());
                p.stage(&msg);
                progress = Some(p);
            }
            LoadEvent::Compiled => progress = None,
        },
    );
    drop(progress);
    result
}

/// `1.5 MB`-style sizes for messages.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.0} {}", UNITS[u])
    }
}
