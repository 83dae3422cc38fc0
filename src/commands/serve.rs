//! `megabin serve OUT`: the command line of the MCP execution controller ([`crate::serve`]).

use super::args::{default_jobs, parse_duration, parse_size, TrustArgs};
use super::error::CliError;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const EXIT_CODES: &str = "Exit codes:
  0    stdin closed (stdio transport)
  1    the transport failed (e.g. the address cannot be listened on)
  126  refused: the build does not verify (pin, ownership, a file does not match)
  127  the build output does not exist";

/// Serve the agent tools of a build over the Model Context Protocol (stdio by default):
/// each call verifies the tool's file, then runs it in a fresh sandboxed instance.
#[derive(Clone, Debug, clap::Args)]
#[command(after_help = EXIT_CODES)]
pub struct ServeArgs {
    /// The rootfs whose tool files are verified on each call.
    #[arg(long, default_value = "/")]
    pub rootfs: PathBuf,
    /// Streamable HTTP instead of stdio: `127.0.0.1:PORT` or `unix:PATH` (endpoint /mcp).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Calls running at once (the rest wait); default: the number of cores.
    #[arg(long, value_name = "N")]
    pub max_concurrency: Option<usize>,
    /// Time limit per call (and upper bound of the tools' own), e.g. 10s.
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Memory cap per call (and upper bound of the tools' own), e.g. 256M.
    #[arg(long, value_parser = parse_size)]
    pub max_memory: Option<usize>,
    /// Also offer a `run` tool that runs any program of the manifest by path.
    #[arg(long)]
    pub expose_programs: bool,
    /// Pin, cache and hashing flags.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Build output directory.
    pub out: PathBuf,
}

/// Runs the command: serves until stdin closes (stdio) or the process is stopped (HTTP).
pub fn run(a: ServeArgs) -> Result<ExitCode, CliError> {
    let opts = crate::serve::Options {
        out: a.out,
        rootfs: a.rootfs,
        trust: a.trust,
        max_concurrency: a.max_concurrency.unwrap_or_else(default_jobs),
        timeout: a.timeout,
        max_memory: a.max_memory,
        expose_programs: a.expose_programs,
    };
    crate::serve::run(opts, a.listen)?;
    Ok(ExitCode::SUCCESS)
}
