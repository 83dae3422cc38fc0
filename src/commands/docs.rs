//! `megabin completions SHELL` and `megabin man [COMMAND]`: shell completion scripts and man
//! pages (roff), generated from the clap definitions of the command line, so they always
//! describe the options the binary accepts.

use super::error::{CliError, ErrorKind};
use super::Cli;
use clap::CommandFactory;
use clap_complete::Shell;
use std::process::ExitCode;

/// Print a shell completion script, e.g. `megabin completions bash > /etc/bash_completion.d/megabin`.
#[derive(Clone, Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: Shell,
}

/// Print the man page of megabin, or of one of its commands (`megabin man run`), as roff.
#[derive(Clone, Debug, clap::Args)]
pub struct ManArgs {
    /// A command, e.g. run (`megabin --help` lists them).
    pub command: Option<String>,
}

/// `megabin completions SHELL`: prints the completion script.
pub fn run_completions(a: CompletionsArgs) -> Result<ExitCode, CliError> {
    print_bytes(&completions(Cli::command(), a.shell))
}

/// `megabin man [COMMAND]`: prints the man page.
pub fn run_man(a: ManArgs) -> Result<ExitCode, CliError> {
    let page =
        man_page(Cli::command(), a.command.as_deref()).map_err(|e| CliError::usage("man", e))?;
    print_bytes(&page)
}

/// Writes generated text to stdout; a closed stdout (`| head`) is not an error worth a panic.
fn print_bytes(bytes: &[u8]) -> Result<ExitCode, CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(CliError::new(ErrorKind::Failed(format!(
            "cannot write to stdout: {e}"
        )))),
    }
}

/// The completion script of `cmd` (the whole `megabin` command line) for `shell`.
pub fn completions(mut cmd: clap::Command, shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "megabin", &mut out);
    out
}

/// The man page of `cmd` (`megabin(1)`), or of its subcommand `sub` (`megabin-run(1)`, …).
pub fn man_page(cmd: clap::Command, sub: Option<&str>) -> Result<Vec<u8>, String> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let source = format!("megabin {}", cmd.get_version().unwrap_or_default());
    let page = match sub {
        None => cmd,
        Some(name) => cmd.find_subcommand(name).cloned().ok_or_else(|| {
            let names: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
            format!("no command `{name}` (commands: {})", names.join(", "))
        })?,
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .source(source)
        .manual("megabin manual")
        .render(&mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}
