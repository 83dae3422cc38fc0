//! The `megabin` command line.

use clap::{Parser, Subcommand};
use megabin::build::{self, BuildOptions};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "megabin",
    version,
    about = "Turn a container rootfs of WASI programs into one WebAssembly megabinary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build container.wasm (+ shards) and manifest.json from a rootfs.
    #[command(after_help = BUILD_EXIT_CODES)]
    Build {
        /// The container root file system.
        rootfs: PathBuf,
        /// Output directory.
        #[arg(short, long, default_value = "megabin-out")]
        out: PathBuf,
        /// Configuration file (default: <ROOTFS>/megabin.toml when present).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Worker threads (default: available cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Split into several megabinaries above this estimated size in MiB.
        #[arg(long, value_name = "MIB", default_value_t = build::DEFAULT_MAX_SHARD_BYTES >> 20)]
        max_shard_size: u64,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        /// Print nothing on success.
        #[arg(short, long)]
        quiet: bool,
    },
}

const BUILD_EXIT_CODES: &str = "Exit codes:
  0  success
  1  internal or I/O error while building
  2  usage error
  3  the rootfs does not exist, is not a directory, or cannot be read
  4  configuration error (megabin.toml, agent tool that is not a merged program)
  5  the output directory is unusable (not writable, a file, inside the rootfs)
  6  the rootfs holds no WASI command program";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Build {
            rootfs,
            out,
            config,
            jobs,
            max_shard_size,
            json,
            quiet,
        } => {
            let jobs =
                jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let opts = BuildOptions {
                rootfs,
                out,
                config,
                jobs,
                max_shard_bytes: max_shard_size.saturating_mul(1 << 20),
                progress: !quiet && !json && std::io::stderr().is_terminal(),
            };
            match build::build(&opts) {
                Ok(summary) => {
                    if json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&summary).expect("serializes")
                        );
                    } else if !quiet {
                        print_summary(&opts, &summary);
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("megabin: build failed: {e}");
                    ExitCode::from(e.exit_code() as u8)
                }
            }
        }
    }
}

fn print_summary(opts: &BuildOptions, s: &build::Summary) {
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
