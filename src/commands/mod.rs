//! The `megabin` command line: [`Cli`] (its clap definition), one module per command with its
//! clap `Args` and its `run(args) -> Result<ExitCode, CliError>`, the flags several commands
//! share ([`args`]), and [`CliError`], the one mapping from errors to the documented exit codes.
//! The pipelines themselves live in [`crate::build`], `crate::serve` and `runtime_check`.

pub mod args;
pub mod binfmt;
pub mod build;
pub mod compile;
pub mod docs;
pub mod error;
pub mod inspect;
pub mod list;
pub mod load;
pub mod lookup;
pub mod provenance;
pub mod run;
#[cfg(feature = "serve")]
pub mod serve;
pub mod verify;

pub use error::CliError;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The whole command line.
#[derive(Parser)]
#[command(
    name = "megabin",
    version,
    about = "Turn a container rootfs of WASI programs into one WebAssembly megabinary"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

// The commands. Their help texts are the doc comments of their `Args` (a doc comment here
// would replace it).
#[derive(Subcommand)]
enum Command {
    Build(build::BuildArgs),
    Run(run::RunArgs),
    Verify(verify::VerifyArgs),
    Compile(compile::CompileArgs),
    List(list::ListArgs),
    Binfmt(binfmt::BinfmtArgs),
    #[cfg(feature = "serve")]
    Serve(serve::ServeArgs),
    Inspect(inspect::InspectArgs),
    Completions(docs::CompletionsArgs),
    Man(docs::ManArgs),
}

impl Cli {
    /// Runs the command given.
    pub fn run(self) -> Result<ExitCode, CliError> {
        match self.command {
            Command::Build(a) => build::run(a),
            Command::Run(a) => run::run(a),
            Command::Verify(a) => verify::run(a),
            Command::Compile(a) => compile::run(a),
            Command::List(a) => list::run(a),
            Command::Binfmt(a) => binfmt::run(a),
            #[cfg(feature = "serve")]
            Command::Serve(a) => serve::run(a),
            Command::Inspect(a) => inspect::run(a),
            Command::Completions(a) => docs::run_completions(a),
            Command::Man(a) => docs::run_man(a),
        }
    }
}
