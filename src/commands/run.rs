//! `megabin run`: verify, then run one program of a megabinary on stock Wasmtime.

use super::load::{load_code, open_cache, open_container, TrustArgs};
use super::lookup::request_for;
use runtime_check::load::LoadOptions;
use runtime_check::measure::Measurer;
use runtime_check::run::{run_module, RunConfig};
use runtime_check::verify::{Refusal, Request, EXIT_NOT_FOUND};
use std::path::{Path, PathBuf};
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
    let engine = match runtime_check::new_engine() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("megabin: cannot create the Wasmtime engine: {e}");
            return 1;
        }
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
    match run_module(&engine, &module, &program, &verified.digest, &config) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("megabin: {e}");
            e.exit_code()
        }
    }
}

/// Parses `HOST[::GUEST]` (GUEST defaults to HOST).
pub fn parse_dir(s: &str) -> Result<(PathBuf, String), String> {
    let (host, guest) = match s.split_once("::") {
        Some((h, g)) => (h, g),
        None => (s, s),
    };
    if host.is_empty() || guest.is_empty() {
        return Err(format!("`{s}`: expected HOST[::GUEST]"));
    }
    if !Path::new(host).is_dir() {
        return Err(format!("{host} is not a directory"));
    }
    Ok((PathBuf::from(host), guest.to_string()))
}

/// Parses `K=V`.
pub fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}`: expected KEY=VALUE"))
}

/// Parses a size: `1048576`, `64K`, `512M`, `2G` (also `KiB`, `MiB`, `GiB`).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let n: usize = n
        .parse()
        .map_err(|_| format!("`{s}`: expected a size like 512M"))?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("`{s}`: unknown size unit `{unit}`")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}`: too large"))
}

/// Parses a duration: `500ms`, `10s`, `2m`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}`: expected a duration like 10s"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("`{s}`: unknown duration unit `{unit}`")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_durations_and_env() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("12X").is_err());
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_env("=x").is_err());
    }
}
