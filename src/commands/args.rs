//! Flags several commands share ([`TrustArgs`], [`PinArgs`]) and the parsers of option values
//! as people type them (clap `value_parser`s: an error here is a usage error, exit 2).

use runtime_check::{parse_pin, EXPECT_ID_ENV};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Trust and cache flags of the commands that load a build (`run`, `compile`, `serve`).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct TrustArgs {
    /// The build's container_id, pinned out of band (CI log, image label): anything else is
    /// refused (126) before it is loaded, and OUT may then live anywhere.
    #[arg(long, value_name = "sha256:HEX", env = EXPECT_ID_ENV, value_parser = parse_pin)]
    pub expect_id: Option<megabin_format::Digest>,
    /// Do not use the private compile and measurement cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Hash every file in full, ignoring verified-once measurements.
    #[arg(long)]
    pub rehash: bool,
}

/// The pin of the commands that read a build without loading its code (`verify`, `list`).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct PinArgs {
    /// The build's container_id, pinned out of band.
    #[arg(long, value_name = "sha256:HEX", env = EXPECT_ID_ENV, value_parser = parse_pin)]
    pub expect_id: Option<megabin_format::Digest>,
}

/// The number of worker threads when none is asked for: the available cores.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
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

/// Parses `K=V`, or `K` alone: the host's value of `K` is passed on (as the `wasmtime` CLI
/// does), nothing when the host has no `K`. A host value that is not UTF-8 is an error.
pub fn parse_env(s: &str) -> Result<Option<(String, String)>, String> {
    let (key, value) = match s.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (s, None),
    };
    if key.is_empty() {
        return Err(format!("`{s}`: expected KEY=VALUE or KEY"));
    }
    let value = match value {
        Some(v) => v,
        None => match std::env::var(key) {
            Ok(v) => v,
            Err(std::env::VarError::NotPresent) => return Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(format!(
                    "`{key}`: the host's value of this variable is not valid UTF-8"
                ))
            }
        },
    };
    Ok(Some((key.to_string(), value)))
}

/// Parses a size in bytes: `1048576`, `64K`, `512M`, `1.5G`, `2T` (units are powers of 1024,
/// case-insensitive, optionally followed by `B` or `iB`: `64KiB`, `512mb`). A fractional
/// value is rounded down to whole bytes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let number_end = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(number_end);
    let unit = unit.trim_start();
    let bad = || format!("`{s}`: expected a size like 512M, 1.5G or a number of bytes");
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty()
        || fraction.contains('.')
        || fraction.len() > 18
        || (number.contains('.') && fraction.is_empty())
    {
        return Err(bad());
    }
    let mult: u128 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "ki" | "kib" => 1 << 10,
        "m" | "mb" | "mi" | "mib" => 1 << 20,
        "g" | "gb" | "gi" | "gib" => 1 << 30,
        "t" | "tb" | "ti" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "`{s}`: unknown size unit `{unit}` (use K, M, G or T)"
            ))
        }
    };
    let too_large = || format!("`{s}`: too large");
    let whole: u128 = match whole {
        "" => 0,
        w => w.parse().map_err(|_| too_large())?,
    };
    let scale = 10u128.pow(fraction.len() as u32);
    let fraction: u128 = match fraction {
        "" => 0,
        f => f.parse().map_err(|_| bad())?,
    };
    let bytes = whole
        .checked_mul(mult)
        .and_then(|b| b.checked_add(fraction * mult / scale))
        .ok_or_else(too_large)?;
    usize::try_from(bytes).map_err(|_| too_large())
}

/// Whether `RUST_BACKTRACE` asks for backtraces (set, and not `0`), as for Rust programs.
pub fn backtrace_from_env() -> bool {
    std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0")
}

/// Parses a duration: `500ms`, `10s`, `2m`, `1h`, or plain seconds.
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
    fn sizes_as_people_type_them() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(parse_size("0.5KiB"), Ok(512));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("2 MB"), Ok(2 << 20));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("1.3K"), Ok(1331), "rounded down");
        assert_eq!(parse_size(".5M"), Ok(1 << 19));
        for bad in [
            "12X",
            "",
            "M",
            "1.",
            "1.2.3G",
            "-1M",
            "1e3",
            "99999999999999999999999T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn env_values_and_inherited_names() {
        assert_eq!(parse_env("A=b=c"), Ok(Some(("A".into(), "b=c".into()))));
        assert_eq!(parse_env("A="), Ok(Some(("A".into(), String::new()))));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("").is_err());
        // PATH is set for any test process; a name no environment has is left out.
        let path = std::env::var("PATH").unwrap();
        assert_eq!(parse_env("PATH"), Ok(Some(("PATH".into(), path))));
        assert_eq!(parse_env("MEGABIN_TEST_SURELY_UNSET_VARIABLE"), Ok(None));
    }
}
