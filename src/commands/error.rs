//! Why a command fails, and the one mapping from that to the exit codes `docs/usage.md`
//! documents ([`megabin_format::exit`]). Every command returns `Result<ExitCode, CliError>`;
//! `main` reports the error once ([`CliError::report`]): one line on stderr, then the code.

use crate::build::BuildError;
use megabin_format::exit;
use runtime_check::Refusal;
use runtime_check::RunError;
use std::fmt;
use std::process::ExitCode;

/// Why a command ends with one of megabin's own exit codes (a program that runs ends with its
/// own status, which is not an error).
#[derive(Debug)]
pub struct CliError {
    /// The command the message names (`megabin: verify: …`); `None` for messages that name none.
    command: Option<&'static str>,
    kind: ErrorKind,
}

/// What went wrong: it decides the exit code ([`CliError::code`]).
#[derive(Debug)]
pub enum ErrorKind {
    /// `megabin build` failed; the code depends on the stage ([`build_code`]).
    Build(BuildError),
    /// The build output, a file or a request was refused (126), or what was asked for is not
    /// in the build (127): the code the refusal carries.
    Refused(Refusal),
    /// The program could not start or did not end by itself (trap, timeout, memory, a status
    /// above 255): the runtime's code for it. `backtrace`: also print the wasm backtrace.
    Run {
        /// What happened.
        error: RunError,
        /// Print the wasm backtrace of a trap too.
        backtrace: bool,
    },
    /// Bad arguments, or something this megabin cannot do (2).
    Usage(String),
    /// What was named does not exist (127).
    NotFound(String),
    /// Input megabin refuses to handle (126).
    Unsupported(String),
    /// The command failed (1).
    Failed(String),
    /// The command failed and has already said why on stderr (1).
    Reported,
}

impl CliError {
    /// An error of kind `kind` whose message names no command.
    pub fn new(kind: ErrorKind) -> CliError {
        CliError {
            command: None,
            kind,
        }
    }

    /// The same error, its message naming `command` (`megabin: COMMAND: …`).
    pub fn in_command(mut self, command: &'static str) -> CliError {
        self.command = Some(command);
        self
    }

    /// A usage error (2) of `command`.
    pub fn usage(command: &'static str, message: impl Into<String>) -> CliError {
        CliError::new(ErrorKind::Usage(message.into())).in_command(command)
    }

    /// A failure (1) of `command`.
    pub fn failed(command: &'static str, message: impl Into<String>) -> CliError {
        CliError::new(ErrorKind::Failed(message.into())).in_command(command)
    }

    /// Something `command` was asked for does not exist (127).
    pub fn not_found(command: &'static str, message: impl Into<String>) -> CliError {
        CliError::new(ErrorKind::NotFound(message.into())).in_command(command)
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The documented exit code: the one mapping from errors to exit codes.
    pub fn code(&self) -> i32 {
        match &self.kind {
            ErrorKind::Build(e) => build_code(e),
            ErrorKind::Refused(r) => r.exit_code,
            ErrorKind::Run { error, .. } => error.exit_code(),
            ErrorKind::Usage(_) => exit::USAGE,
            ErrorKind::NotFound(_) => exit::NOT_FOUND,
            ErrorKind::Unsupported(_) => exit::REFUSED,
            ErrorKind::Failed(_) | ErrorKind::Reported => exit::FAILURE,
        }
    }

    /// Prints the message on stderr (`megabin: …`, and the wasm backtrace when asked for) and
    /// returns the exit code.
    pub fn report(&self) -> ExitCode {
        if !matches!(self.kind, ErrorKind::Reported) {
            eprintln!("megabin: {self}");
        }
        if let ErrorKind::Run {
            error,
            backtrace: true,
        } = &self.kind
        {
            if let Some(bt) = error.backtrace() {
                eprintln!("megabin: wasm backtrace:\n{bt}");
            }
        }
        status(self.code())
    }
}

/// The exit code of a failed build, by stage (documented in `megabin build --help`).
pub fn build_code(e: &BuildError) -> i32 {
    match e {
        BuildError::Merge { .. } | BuildError::Aot(_) => exit::FAILURE,
        BuildError::NoCompiler => exit::USAGE,
        BuildError::Rootfs(_) => exit::BUILD_ROOTFS,
        BuildError::Config(_) | BuildError::AgentTool { .. } => exit::BUILD_CONFIG,
        BuildError::Output { .. } => exit::BUILD_OUTPUT,
        BuildError::NothingToBuild(_) => exit::BUILD_NOTHING,
    }
}

/// A status as the process's exit code (a program's own status is already 0..=255).
pub fn status(code: i32) -> ExitCode {
    ExitCode::from(code.clamp(0, 255) as u8)
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(command) = self.command {
            write!(f, "{command}: ")?;
        }
        match &self.kind {
            ErrorKind::Build(e) => write!(f, "build failed: {e}"),
            ErrorKind::Refused(r) => write!(f, "refused: {}", r.message),
            ErrorKind::Run { error, .. } => write!(f, "{error}"),
            ErrorKind::Usage(m)
            | ErrorKind::NotFound(m)
            | ErrorKind::Unsupported(m)
            | ErrorKind::Failed(m) => f.write_str(m),
            ErrorKind::Reported => Ok(()),
        }
    }
}

impl std::error::Error for CliError {}

impl From<BuildError> for CliError {
    fn from(e: BuildError) -> CliError {
        CliError::new(ErrorKind::Build(e))
    }
}

impl From<Refusal> for CliError {
    fn from(r: Refusal) -> CliError {
        CliError::new(ErrorKind::Refused(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        let refusal = |exit_code| {
            CliError::from(Refusal {
                exit_code,
                message: "m".into(),
            })
        };
        assert_eq!(refusal(exit::REFUSED).code(), 126);
        assert_eq!(refusal(exit::NOT_FOUND).code(), 127);
        assert_eq!(CliError::usage("man", "m").code(), 2);
        assert_eq!(CliError::failed("verify", "m").code(), 1);
        assert_eq!(CliError::not_found("binfmt", "m").code(), 127);
        assert_eq!(
            CliError::new(ErrorKind::Unsupported("m".into())).code(),
            126
        );
        assert_eq!(CliError::from(BuildError::NoCompiler).code(), 2);
        let nothing = BuildError::NothingToBuild("/r".into());
        assert_eq!(CliError::from(nothing).code(), 6);
    }

    #[test]
    fn messages_name_their_command() {
        let r = CliError::from(Refusal {
            exit_code: exit::REFUSED,
            message: "not trusted".into(),
        });
        assert_eq!(r.to_string(), "refused: not trusted");
        assert_eq!(
            r.in_command("verify").to_string(),
            "verify: refused: not trusted"
        );
        let nothing = BuildError::NothingToBuild("/r".into());
        assert_eq!(
            CliError::from(nothing).to_string(),
            "build failed: no WASI command program found in rootfs /r"
        );
    }
}
