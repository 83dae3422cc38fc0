//! The `megabin` command line.

use clap::{CommandFactory, Parser, Subcommand};
use megabin::build::{self, BuildOptions};
use megabin::commands::args;
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
        /// Also write AOT-compiled artifacts (container.cwasm) for `megabin run`.
        #[arg(long)]
        aot: bool,
        /// Merge programs that import non-WASI host functions: each such import becomes a
        /// function that traps, naming it, when called (also `stub_foreign_imports = true` in
        /// megabin.toml). Without it such programs are skipped.
        #[arg(long)]
        stub_foreign_imports: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        /// Print nothing on success.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Verify a program against the manifest, then run it from the megabinary.
    #[command(after_help = RUN_EXIT_CODES)]
    Run {
        /// Rootfs the program paths refer to.
        #[arg(long, default_value = "/")]
        rootfs: PathBuf,
        /// Preopen a host directory, optionally under another guest path.
        #[arg(long = "dir", value_name = "HOST[::GUEST]", value_parser = args::parse_dir)]
        dirs: Vec<(PathBuf, String)>,
        /// Set an environment variable for the program; `K` alone passes on the host's value of
        /// K, if any (no other host variable leaks in).
        #[arg(long = "env", value_name = "K[=V]", value_parser = args::parse_env)]
        env: Vec<Option<(String, String)>>,
        /// argv[0] for the program (default: the program path).
        #[arg(long)]
        argv0: Option<String>,
        /// Cap on all memories of the run together: bytes, or with a unit: 512M, 1.5G, 64K.
        #[arg(long, value_name = "SIZE", value_parser = args::parse_size)]
        max_memory: Option<usize>,
        /// Wall-clock limit, e.g. 10s or 500ms.
        #[arg(long, value_name = "DURATION", value_parser = args::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// Run an agent tool from the manifest instead of a PROGRAM.
        #[arg(long)]
        tool: Option<String>,
        /// Refuse to run unless a verified AOT artifact for this engine is present.
        #[arg(long)]
        require_aot: bool,
        /// Print the wasm backtrace when the program traps (also when RUST_BACKTRACE is set).
        #[arg(long)]
        backtrace: bool,
        /// Build output directory (manifest.json and megabinaries).
        out: PathBuf,
        /// PROGRAM (a rootfs path or sha256:<hex>; omitted with --tool) and its arguments.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "PROGRAM [ARGS]",
            required_unless_present = "tool"
        )]
        command: Vec<String>,
    },
    /// Check a build against its rootfs: hashes, entries, isolation. Reports every problem.
    Verify {
        /// Build output directory.
        out: PathBuf,
        /// The rootfs the build was made from.
        #[arg(long)]
        rootfs: PathBuf,
    },
    /// Show the programs of a megabinary.
    Inspect {
        /// Build output directory or a megabinary file.
        target: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script, e.g. `megabin completions bash > /etc/bash_completion.d/megabin`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page of megabin, or of one of its commands (`megabin man run`), as roff.
    Man {
        /// A command (build, run, verify, inspect, completions, man).
        command: Option<String>,
    },
}

const RUN_EXIT_CODES: &str = "Exit codes:
  N    the program's own exit status, any of 0..=255 (0 when it returns normally); a
       program may exit with one of the codes below itself
  1    the program called proc_exit with a status above 255
  2    usage error (also: --max-memory too small to instantiate the megabinary)
  124  --timeout elapsed
  125  --max-memory refused memory and the program then failed
  126  refused: the file's hash, the megabinary or the manifest does not match
  127  not found: path not in the manifest, skipped (not recompiled), unknown digest or tool
  134  the program trapped: one line names it and the trap (the wasm backtrace with
       --backtrace, or when RUST_BACKTRACE is set)";

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
            aot,
            stub_foreign_imports,
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
                aot,
                stub_foreign_imports,
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
                    exit(e.exit_code())
                }
            }
        }
        Command::Run {
            rootfs,
            dirs,
            env,
            argv0,
            max_memory,
            timeout,
            tool,
            require_aot,
            backtrace,
            out,
            command,
        } => {
            let (program, args) = match (&tool, command.split_first()) {
                (Some(_), _) => (None, command.clone()),
                (None, Some((p, rest))) => (Some(p.clone()), rest.to_vec()),
                (None, None) => (None, Vec::new()),
            };
            exit(megabin::commands::run::run(
                &megabin::commands::run::RunArgs {
                    out,
                    rootfs,
                    program,
                    tool,
                    args,
                    argv0,
                    env: env.into_iter().flatten().collect(),
                    dirs,
                    max_memory,
                    timeout,
                    require_aot,
                    backtrace: backtrace || args::backtrace_from_env(),
                },
            ))
        }
        Command::Verify { out, rootfs } => {
            let problems = megabin::commands::verify::verify_build(&out, &rootfs);
            for p in &problems {
                eprintln!("megabin: verify: {p}");
            }
            if problems.is_empty() {
                println!(
                    "megabin: verify: {} is consistent with {}",
                    out.display(),
                    rootfs.display()
                );
                ExitCode::SUCCESS
            } else {
                eprintln!("megabin: verify: {} problem(s)", problems.len());
                ExitCode::from(1)
            }
        }
        Command::Inspect { target, json } => inspect(&target, json),
        Command::Completions { shell } => {
            print_bytes(&megabin::commands::docs::completions(Cli::command(), shell))
        }
        Command::Man { command } => {
            match megabin::commands::docs::man_page(Cli::command(), command.as_deref()) {
                Ok(page) => print_bytes(&page),
                Err(e) => {
                    eprintln!("megabin: man: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// Writes generated text to stdout; a closed stdout (`| head`) is not an error worth a panic.
fn print_bytes(bytes: &[u8]) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("megabin: cannot write to stdout: {e}");
            ExitCode::from(1)
        }
    }
}

fn inspect(target: &std::path::Path, json: bool) -> ExitCode {
    use megabin::commands::inspect;
    let (files, manifest) = if target.is_dir() {
        match runtime_check::verify::load_manifest(target) {
            Ok(m) => (
                m.megabinaries
                    .keys()
                    .map(|f| target.join(f))
                    .collect::<Vec<_>>(),
                Some(m),
            ),
            Err(e) => {
                eprintln!("megabin: inspect: {}", e.message);
                return ExitCode::from(1);
            }
        }
    } else {
        (vec![target.to_path_buf()], None)
    };
    let mut all = Vec::new();
    for f in files {
        match inspect::inspect_file(&f, manifest.as_ref()) {
            Ok(i) => all.push(i),
            Err(e) => {
                eprintln!("megabin: inspect: {e}");
                return ExitCode::from(1);
            }
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&all).expect("serializes")
        );
    } else {
        all.iter().for_each(inspect::print);
    }
    ExitCode::SUCCESS
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(code.clamp(0, 255) as u8)
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
