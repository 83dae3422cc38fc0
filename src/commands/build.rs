//! `megabin build ROOTFS`: the command line of the build pipeline ([`crate::build`]).

use super::args::default_jobs;
use super::error::CliError;
use crate::build::{self, BuildOptions, Summary};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

const EXIT_CODES: &str = "Exit codes:
  0  success
  1  internal or I/O error while building
  2  usage error (also: this megabin is the runner, built without the compiler)
  3  the rootfs does not exist, is not a directory, or cannot be read
  4  configuration error (megabin.toml, agent tool that is not a merged program)
  5  the output directory is unusable (not writable, a file, inside the rootfs)
  6  the rootfs holds no WASI command program";

/// Build container.wasm (+ shards) and manifest.json from a rootfs.
#[derive(Clone, Debug, clap::Args)]
#[command(after_help = EXIT_CODES)]
pub struct BuildArgs {
    /// The container root file system.
    pub rootfs: PathBuf,
    /// Output directory.
    #[arg(short, long, default_value = "megabin-out")]
    pub out: PathBuf,
    /// Configuration file (default: <ROOTFS>/megabin.toml when present).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Worker threads (default: available cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Split into several megabinaries above this estimated size in MiB.
    #[arg(long, value_name = "MIB", default_value_t = build::DEFAULT_MAX_SHARD_BYTES >> 20)]
    pub max_shard_size: u64,
    /// Also write AOT-compiled artifacts (container.cwasm) for `megabin run`.
    #[arg(long)]
    pub aot: bool,
    /// Merge programs that import non-WASI host functions: each such import becomes a
    /// function that traps, naming it, when called (also `stub_foreign_imports = true` in
    /// megabin.toml). Without it such programs are skipped.
    #[arg(long)]
    pub stub_foreign_imports: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Print nothing on success.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Runs the command: builds, then prints the summary (unless `--quiet`).
pub fn run(a: BuildArgs) -> Result<ExitCode, CliError> {
    let opts = BuildOptions {
        rootfs: a.rootfs,
        out: a.out,
        config: a.config,
        jobs: a.jobs.unwrap_or_else(default_jobs),
        max_shard_bytes: a.max_shard_size.saturating_mul(1 << 20),
        progress: !a.quiet && !a.json && std::io::stderr().is_terminal(),
        aot: a.aot,
        stub_foreign_imports: a.stub_foreign_imports,
    };
    let summary = build::build(&opts)?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("serializes")
        );
    } else if !a.quiet {
        print_summary(&opts, &summary);
    }
    Ok(ExitCode::SUCCESS)
}

/// The summary of a build: warnings on stderr, what was merged and skipped on stdout.
fn print_summary(opts: &BuildOptions, s: &Summary) {
    for w in &s.warnings {
        eprintln!("megabin: warning: {w}");
    }
    println!(
        "megabin: merged {} programs ({} paths) into {} in {}",
        s.programs,
        s.paths,
        s.megabinaries.join(", "),
        opts.out.display()
    );
    let skipped: Vec<String> = s.skipped.iter().map(|(k, n)| format!("{n} {k}")).collect();
    if !skipped.is_empty() {
        println!(
            "megabin: skipped {} (see manifest.json)",
            skipped.join(", ")
        );
    }
    println!(
        "megabin: {:.1} MiB of programs -> {:.1} MiB, {:.2} s; container_id {}",
        s.input_bytes as f64 / 1048576.0,
        s.output_bytes as f64 / 1048576.0,
        s.seconds,
        s.container_id
    );
}
