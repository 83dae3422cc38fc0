//! The `megabin` command line: parse, run the command, report an error once (one line on
//! stderr and its documented exit code, see [`megabin::commands::error`]).

use clap::Parser;
use megabin::commands::{binfmt, Cli};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Started by the kernel for an executed wasm file (the exec intercept).
    let result = if args.first().is_some_and(binfmt::started_as_interpreter) {
        binfmt::run_as_interpreter(args)
    } else {
        Cli::parse_from(args).run()
    };
    result.unwrap_or_else(|e| e.report())
}
