//! The `megabin` command line.

use clap::{CommandFactory, Parser, Subcommand};
use megabin::build::{self, BuildOptions};
use megabin::commands::args;
use megabin::commands::load::TrustArgs;
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
        /// Never compile: run only precompiled code (the verified AOT artifact for this engine,
        /// or a compile-cache entry).
        #[arg(long)]
        require_aot: bool,
        #[command(flatten)]
        trust: TrustArgs,
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
    /// Check a build: its trust root, digests, entries, isolation; with --rootfs also every
    /// program file and the build's provenance. Reports every problem.
    #[command(after_help = VERIFY_EXIT_CODES)]
    Verify {
        /// Build output directory.
        out: PathBuf,
        /// The rootfs the build was made from.
        #[arg(long)]
        rootfs: Option<PathBuf>,
        /// The build's container_id, pinned out of band.
        #[arg(long, value_name = "sha256:HEX", env = runtime_check::trust::EXPECT_ID_ENV,
              value_parser = runtime_check::trust::parse_pin)]
        expect_id: Option<String>,
    },
    /// Compile every megabinary of a build into the private cache ahead of time (CI warm-up).
    #[command(after_help = COMPILE_EXIT_CODES)]
    Compile {
        #[command(flatten)]
        trust: TrustArgs,
        /// Build output directory.
        out: PathBuf,
    },
    /// List what can be run: every program's paths, names, short digest and entry; agent tools.
    List {
        /// Build output directory.
        out: PathBuf,
        #[arg(long, value_name = "sha256:HEX", env = runtime_check::trust::EXPECT_ID_ENV,
              value_parser = runtime_check::trust::parse_pin)]
        /// The build's container_id, pinned out of band.
        expect_id: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print (or --install) the binfmt_misc registration that makes the kernel run executed
    /// wasm files from this build (exec intercept).
    Binfmt {
        /// Build output directory (its absolute path is the registration's interpreter
        /// directory: the build must be at this path inside containers too).
        out: PathBuf,
        /// Create OUT/megabin-binfmt and write the registration.
        #[arg(long)]
        install: bool,
        /// Where to write the registration.
        #[arg(long, value_name = "FILE", default_value = megabin::commands::binfmt::REGISTER)]
        register_file: PathBuf,
    },
    /// Serve the agent tools of a build over the Model Context Protocol (stdio by default):
    /// each call verifies the tool's file, then runs it in a fresh sandboxed instance.
    #[cfg(feature = "serve")]
    #[command(after_help = SERVE_EXIT_CODES)]
    Serve {
        /// The rootfs whose tool files are verified on each call.
        #[arg(long, default_value = "/")]
        rootfs: PathBuf,
        /// Streamable HTTP instead of stdio: `127.0.0.1:PORT` or `unix:PATH` (endpoint /mcp).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Calls running at once (the rest wait); default: the number of cores.
        #[arg(long, value_name = "N")]
        max_concurrency: Option<usize>,
        /// Time limit per call (and upper bound of the tools' own), e.g. 10s.
        #[arg(long, value_parser = megabin::commands::args::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// Memory cap per call (and upper bound of the tools' own), e.g. 256M.
        #[arg(long, value_parser = megabin::commands::args::parse_size)]
        max_memory: Option<usize>,
        /// Also offer a `run` tool that runs any program of the manifest by path.
        #[arg(long)]
        expose_programs: bool,
        #[command(flatten)]
        trust: TrustArgs,
        /// Build output directory.
        out: PathBuf,
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
  126  refused: the file's hash, the megabinary or the manifest does not match; or (the
       runner built without the compiler) the build has no AOT artifact it can load
  127  not found: path not in the manifest, skipped (not recompiled), unknown digest or tool
  134  the program trapped: one line names it and the trap (the wasm backtrace with
       --backtrace, or when RUST_BACKTRACE is set)";

#[cfg(feature = "serve")]
const SERVE_EXIT_CODES: &str = "Exit codes:
  0    stdin closed (stdio transport)
  1    the transport failed (e.g. the address cannot be listened on)
  126  refused: the build does not verify (pin, ownership, a file does not match)
  127  the build output does not exist";

const VERIFY_EXIT_CODES: &str = "Exit codes:
  0    the build verifies
  1    problems found (each is listed)
  126  refused: the pin does not match, OUT is not trusted, or the manifest was modified
  127  the build output does not exist";

const COMPILE_EXIT_CODES: &str = "Exit codes:
  0    every megabinary is compiled and cached (or has a usable AOT artifact)
  1    the cache cannot be used or written
  2    usage error (also: this megabin is the runner, built without the compiler)
  126  refused: the pin does not match, OUT is not trusted, a file does not match
  127  the build output does not exist";

const BUILD_EXIT_CODES: &str = "Exit codes:
  0  success
  1  internal or I/O error while building
  2  usage error (also: this megabin is the runner, built without the compiler)
  3  the rootfs does not exist, is not a directory, or cannot be read
  4  configuration error (megabin.toml, agent tool that is not a merged program)
  5  the output directory is unusable (not writable, a file, inside the rootfs)
  6  the rootfs holds no WASI command program";

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args
        .first()
        .is_some_and(megabin::commands::binfmt::started_as_interpreter)
    {
        return exit(megabin::commands::binfmt::run_as_interpreter(args));
    }
    let cli = Cli::parse_from(args);
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
            trust,
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
                    trust,
                    backtrace: backtrace || args::backtrace_from_env(),
                },
            ))
        }
        Command::Verify {
            out,
            rootfs,
            expect_id,
        } => megabin::commands::verify::run(&out, rootfs.as_deref(), expect_id.as_deref()),
        Command::Compile { trust, out } => exit(megabin::commands::compile::run(&out, &trust)),
        Command::Inspect { target, json } => inspect(&target, json),
        Command::List {
            out,
            expect_id,
            json,
        } => list(&out, expect_id.as_deref(), json),
        Command::Binfmt {
            out,
            install,
            register_file,
        } => exit(megabin::commands::binfmt::command(
            &out,
            install,
            &register_file,
        )),
        #[cfg(feature = "serve")]
        Command::Serve {
            rootfs,
            listen,
            max_concurrency,
            timeout,
            max_memory,
            expose_programs,
            trust,
            out,
        } => {
            let opts = megabin::serve::Options {
                out,
                rootfs,
                trust,
                max_concurrency: max_concurrency
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
                timeout,
                max_memory,
                expose_programs,
            };
            exit(megabin::serve::run(opts, listen))
        }
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

fn list(out: &std::path::Path, pin: Option<&str>, json: bool) -> ExitCode {
    use megabin::commands::list;
    let container = match runtime_check::trust::Container::open(out, pin) {
        Ok(c) => c,
        Err(r) => {
            eprintln!("megabin: list: refused: {}", r.message);
            return exit(r.exit_code);
        }
    };
    let l = list::listing(container.manifest());
    if json {
        println!("{}", serde_json::to_string_pretty(&l).expect("serializes"));
    } else {
        list::print(&l);
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
