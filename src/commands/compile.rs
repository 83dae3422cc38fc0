//! `megabin compile OUT`: fill the private compile cache ahead of time (a CI warm-up step),
//! so the first `megabin run` of each megabinary starts as fast as with `--aot`.

use super::load::{load_code, open_cache, open_container, TrustArgs};
use runtime_check::load::{LoadOptions, Loaded};
use runtime_check::measure::Measurer;

/// Runs the command; returns the exit code.
pub fn run(out: &std::path::Path, trust: &TrustArgs) -> i32 {
    if !cfg!(feature = "compiler") {
        eprintln!(
            "megabin: compile: this megabin is the runner without the Cranelift compiler (built \
             without the `compiler` feature): it cannot compile; it runs only verified AOT \
             artifacts (`megabin build --aot`)"
        );
        return 2;
    }
    let container = match open_container(out, trust) {
        Ok(c) => c,
        Err(r) => {
            eprintln!("megabin: refused: {}", r.message);
            return r.exit_code;
        }
    };
    if trust.no_cache {
        eprintln!("megabin: compile: --no-cache leaves nothing to fill");
        return 2;
    }
    let Some(cache) = open_cache(trust) else {
        return 1;
    };
    let measurer = Measurer::new(Some(&cache), trust.rehash);
    let engine = match super::load::engine() {
        Ok(e) => e,
        Err(code) => return code,
    };
    let opts = LoadOptions {
        cache: Some(&cache),
        measurer: &measurer,
        require_aot: false,
    };
    for name in container.manifest().megabinaries.keys() {
        match load_code(&engine, &container, name, &opts) {
            Ok((_, Loaded::Artifact)) => println!("megabin: {name}: its AOT artifact is used"),
            Ok((_, Loaded::Cached(p))) => println!("megabin: {name}: cached in {}", p.display()),
            Ok((_, Loaded::Compiled(Some(p)))) => {
                println!("megabin: {name}: compiled, cached in {}", p.display())
            }
            Ok((_, Loaded::Compiled(None))) => {
                eprintln!("megabin: {name}: compiled, but the cache could not be written");
                return 1;
            }
            Err(r) => {
                eprintln!("megabin: refused: {}", r.message);
                return r.exit_code;
            }
        }
    }
    0
}
