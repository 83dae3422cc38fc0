//! Verification before anything runs: the manifest is consistent, the megabinary matches its
//! digest, and the requested program's file hashes to what the manifest says. Every refusal
//! carries the exit code the CLI uses (126 "found but refused", 127 "not found").

use crate::manifest::{Binary, Manifest};
use crate::measure::Measurer;
use crate::open::{open_regular, OpenError};
use crate::script::{verify_script, VerifiedScript};
use crate::trust::Container;
use megabin_format::Digest;
use std::path::{Path, PathBuf};

/// Exit code: not found (unlisted path, skipped program, unknown digest or tool).
pub use megabin_format::exit::NOT_FOUND as EXIT_NOT_FOUND;
/// Exit code: found but refused (hash mismatch, tampered megabinary or manifest).
pub use megabin_format::exit::REFUSED as EXIT_REFUSED;

/// Why a run was refused. No instance is created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// [`EXIT_REFUSED`] or [`EXIT_NOT_FOUND`].
    pub exit_code: i32,
    /// Human-readable reason (names the file and the digests involved).
    pub message: String,
}

/// A refusal with [`EXIT_REFUSED`].
pub(crate) fn refused(message: String) -> Refusal {
    Refusal {
        exit_code: EXIT_REFUSED,
        message,
    }
}

/// Checks a file's digest against the manifest's: a mismatch is refused, naming `what` (the
/// file's rootfs path, or how it relates to the request) and both digests.
pub(crate) fn check_digest(what: &str, expected: &Digest, actual: &Digest) -> Result<(), Refusal> {
    if actual == expected {
        return Ok(());
    }
    Err(refused(format!(
        "{what} was modified or replaced: the manifest expects {expected}, the file hashes to \
         {actual}"
    )))
}

/// A refusal with [`EXIT_NOT_FOUND`].
pub(crate) fn not_found(message: String) -> Refusal {
    Refusal {
        exit_code: EXIT_NOT_FOUND,
        message,
    }
}

/// What the caller asks to run.
#[derive(Clone, Debug)]
pub enum Request {
    /// A path inside the rootfs, with the host file it resolved to (`None`: it does not exist).
    Path {
        /// The path inside the rootfs.
        path: String,
        /// The host file it resolved to.
        host: Option<PathBuf>,
    },
    /// A digest `sha256:<hex>`.
    Digest(String),
    /// An agent tool name.
    Tool(String),
}

/// Where the rootfs paths a request needs besides its own are on the host (a script's
/// interpreter, an agent tool that is a script): the host file of a rootfs path, symlinks
/// resolved inside the rootfs, or `None` when it does not exist.
pub type Locate<'a> = &'a dyn Fn(&str) -> Option<PathBuf>;

/// A request that passed verification.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The program's digest (verified against the file when a path was given); for a script,
    /// its interpreter's.
    pub digest: Digest,
    /// Its entry point export.
    pub entry_point: String,
    /// The megabinary file that holds it.
    pub megabinary: String,
    /// For a `#!` script: the script the program interprets (its argv and verified bytes).
    pub script: Option<VerifiedScript>,
}

/// Loads `<out>/manifest.json` trusted by ownership (see [`Container::open`]).
pub fn load_manifest(out: &Path) -> Result<Manifest, Refusal> {
    Container::open(out, None).map(|c| c.manifest().clone())
}

/// Hashes a regular file by streaming it (final symlink not followed, never blocking).
pub fn hash_file(path: &Path) -> std::io::Result<[u8; 32]> {
    let opened = open_regular(path).map_err(|e| match e {
        OpenError::Io(e) => e,
        e => std::io::Error::other(e.to_string()),
    })?;
    crate::measure::hash_open_file(&opened)
}

fn by_digest<'a>(manifest: &'a Manifest, digest: &Digest) -> Option<&'a Binary> {
    manifest.binaries.values().find(|b| b.hash == *digest)
}

/// Shortest digest prefix accepted (as `sha256:<12 hex>`).
pub const MIN_DIGEST_PREFIX: usize = 12;

/// The binary with digest `d`: a full `sha256:<64 hex>` (either case) or a unique prefix of at
/// least [`MIN_DIGEST_PREFIX`] hex digits.
fn by_digest_or_prefix<'a>(manifest: &'a Manifest, d: &str) -> Result<&'a Binary, Refusal> {
    if let Ok(full) = d.parse::<Digest>() {
        return by_digest(manifest, &full)
            .ok_or_else(|| not_found(format!("no program with digest {full} in the manifest")));
    }
    let hex = d
        .strip_prefix("sha256:")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if hex.len() < MIN_DIGEST_PREFIX
        || hex.len() > 64
        || !hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(not_found(format!(
            "`{d}` is not a digest: sha256: and 64 hex digits, or a unique prefix of at least \
             {MIN_DIGEST_PREFIX}"
        )));
    }
    let prefix = format!("sha256:{hex}");
    // Several paths may share a program: count distinct digests.
    let found: std::collections::BTreeMap<Digest, &Binary> = manifest
        .binaries
        .values()
        .filter(|b| b.hash.hex().starts_with(&hex))
        .map(|b| (b.hash, b))
        .collect();
    match found.len() {
        0 => Err(not_found(format!(
            "no program with digest {prefix}… in the manifest"
        ))),
        1 => Ok(found.into_values().next().expect("one")),
        n => Err(not_found(format!(
            "digest prefix {prefix} is ambiguous: {n} programs start with it"
        ))),
    }
}

/// The digest of the program file at `host` (rootfs path `path`), opened without blocking
/// and without following a final symlink; measured once (see [`Measurer`]).
fn program_digest(path: &str, host: &Path, measurer: &Measurer) -> Result<Digest, Refusal> {
    let opened = open_regular(host).map_err(|e| match e {
        OpenError::Missing => not_found(format!("{path} does not exist in the rootfs")),
        e => refused(format!("{path} ({}) {e}", host.display())),
    })?;
    let d = measurer
        .digest(&opened)
        .map_err(|e| refused(format!("cannot read {path} ({}): {e}", host.display())))?;
    Ok(d)
}

impl Container {
    /// Verifies `request` against the trusted manifest: the program file (for a path) hashes to
    /// the manifest's digest; for a `#!` script, the script and its interpreter's file both
    /// hash to theirs (other rootfs files are found with `locate`). The code that runs it is
    /// verified when it is loaded ([`crate::load::load_module`]).
    pub fn verify_request(
        &self,
        request: &Request,
        locate: Locate<'_>,
        measurer: &Measurer,
    ) -> Result<Verified, Refusal> {
        let manifest = self.manifest();
        let binary =
            match request {
                Request::Path { path, host } => {
                    if let Some(reason) = manifest.skipped.get(path) {
                        return Err(not_found(format!(
                            "{path} is not in the megabinary: {reason}"
                        )));
                    }
                    if manifest.scripts.contains_key(path) {
                        return self.verify_script(path, host.as_deref(), locate, measurer);
                    }
                    let binary = manifest.binaries.get(path).ok_or_else(|| {
                        not_found(format!("{path} is not listed in the manifest"))
                    })?;
                    let host = host
                        .as_ref()
                        .ok_or_else(|| not_found(format!("{path} does not exist in the rootfs")))?;
                    let actual = program_digest(path, host, measurer)?;
                    check_digest(path, &binary.hash, &actual)?;
                    binary
                }
                Request::Digest(d) => by_digest_or_prefix(manifest, d)?,
                Request::Tool(name) => {
                    let tool = manifest.agent_tools.get(name).ok_or_else(|| {
                        not_found(format!("no agent tool `{name}` in the manifest"))
                    })?;
                    let d = &tool.digest;
                    // A script tool: its file is read from the rootfs, so it is verified there.
                    let script = tool
                        .path
                        .as_ref()
                        .filter(|p| manifest.scripts.get(*p).is_some_and(|s| s.hash == *d));
                    if let Some(path) = script {
                        return self.verify_script(path, locate(path).as_deref(), locate, measurer);
                    }
                    by_digest(manifest, d).ok_or_else(|| {
                        refused(format!(
                            "agent tool `{name}` names {d}, which no binary has"
                        ))
                    })?
                }
            };
        Ok(Verified {
            digest: binary.hash,
            entry_point: binary.entry_point.clone(),
            megabinary: binary.megabinary.clone(),
            script: None,
        })
    }

    /// Verifies the script at rootfs `path` (host file `host`) and its interpreter's file.
    fn verify_script(
        &self,
        path: &str,
        host: Option<&Path>,
        locate: Locate<'_>,
        measurer: &Measurer,
    ) -> Result<Verified, Refusal> {
        let manifest = self.manifest();
        let script = &manifest.scripts[path];
        let host = host.ok_or_else(|| not_found(format!("{path} does not exist in the rootfs")))?;
        let verified = verify_script(path, host, script)?;
        let interpreter = &script.interpreter;
        let binary = manifest.binaries.get(interpreter).ok_or_else(|| {
            refused(format!(
                "{path}: its interpreter {interpreter} is not a program of the manifest"
            ))
        })?;
        let interpreter_host = locate(interpreter).ok_or_else(|| {
            not_found(format!(
                "{path}: its interpreter {interpreter} does not exist in the rootfs"
            ))
        })?;
        let actual = program_digest(interpreter, &interpreter_host, measurer)?;
        let what = format!("{path}: its interpreter {interpreter}");
        check_digest(&what, &binary.hash, &actual)?;
        Ok(Verified {
            digest: binary.hash,
            entry_point: binary.entry_point.clone(),
            megabinary: binary.megabinary.clone(),
            script: Some(verified),
        })
    }
}
