//! The trust root of a build output (OUT), as `docs/security.md` describes it.
//!
//! [`Container::open`] is the only way to get at a build: it opens OUT once as a directory
//! (every file is then opened relative to that descriptor, final symlinks never followed),
//! decides what the manifest is trusted by, and refuses (126) before anything else is read:
//! - a **pin** (`--expect-id`): the manifest's own contents must hash to the pinned
//!   `container_id`; every byte loaded later is checked against digests that id covers, so
//!   OUT may live anywhere. Files that others can write are read into memory, hashed and used
//!   from that copy (never mapped);
//! - **ownership**, without a pin: OUT and every file read from it must be private (owned by
//!   the invoking user or root, not writable by group or others), as OpenSSH's StrictModes.

use crate::manifest::{Manifest, FORMAT};
use crate::measure::Measurer;
use crate::open::{not_private, open_dir, open_regular_at, read_all, OpenError, Opened};
use crate::verify::{refused, Refusal, EXIT_NOT_FOUND};
use megabin_format::Digest;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// Name of the manifest file in OUT.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Environment variable that pins the container id (as `--expect-id`).
pub const EXPECT_ID_ENV: &str = "MEGABIN_EXPECT_ID";
/// Largest manifest read.
const MAX_MANIFEST_BYTES: u64 = 256 << 20;

/// What the manifest of an opened build is trusted by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustRoot {
    /// The `container_id` pinned out of band (`sha256:<hex>`, lower case).
    Pinned(Digest),
    /// OUT and the files read from it are private to the invoking user (or root).
    Ownership,
}

/// A file of OUT whose content was verified against the manifest.
#[derive(Debug)]
pub enum VerifiedFile {
    /// A private file: verified through its descriptor, may be mapped.
    Mapped(File),
    /// A file others can write: its bytes, read once, hashed and to be used from here.
    Bytes(Vec<u8>),
}

/// Why a file of OUT cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// It does not exist.
    #[error("{0}")]
    Missing(String),
    /// It is not private and the build is not pinned.
    #[error("{0}")]
    Untrusted(String),
    /// It is not a regular file, or cannot be read.
    #[error("{0}")]
    Unusable(String),
    /// Its content does not hash to the manifest's digest: tampering.
    #[error("{0}")]
    Mismatch(String),
}

impl From<FileError> for Refusal {
    fn from(e: FileError) -> Refusal {
        match e {
            FileError::Missing(m) => Refusal {
                exit_code: EXIT_NOT_FOUND,
                message: m,
            },
            e => refused(e.to_string()),
        }
    }
}

/// An opened build output whose manifest is trusted (by a pin or by ownership).
#[derive(Debug)]
pub struct Container {
    out: PathBuf,
    dir: File,
    manifest: Manifest,
    trust: TrustRoot,
}

/// Parses a pin: `sha256:` and 64 hex digits (either case). Returns the canonical form.
pub fn parse_pin(s: &str) -> Result<Digest, String> {
    s.trim()
        .parse::<Digest>()
        .map_err(|_| format!("`{s}` is not a container id (sha256:<64 hex digits>)"))
}

fn ownership_refusal(what: &Path, why: &str) -> Refusal {
    refused(format!(
        "{} {why}: without a pinned container id, a build is trusted only when it and every \
         file in it are private to you (or root). Fix it (chown/chmod go-w), or pin the build \
         with --expect-id sha256:<container_id from the build log> (also MEGABIN_EXPECT_ID)",
        what.display()
    ))
}

/// A manifest file name must be a plain name inside OUT.
pub fn check_plain_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\0')
        || name == MANIFEST_FILE
    {
        return Err(format!(
            "`{name}` is not a plain file name inside the output directory"
        ));
    }
    Ok(())
}

impl Container {
    /// Opens OUT with an optional pin (the expected `container_id`, see [`parse_pin`]).
    pub fn open(out: &Path, pin: Option<Digest>) -> Result<Container, Refusal> {
        let (dir, meta) = open_dir(out).map_err(|e| match e {
            OpenError::Missing => Refusal {
                exit_code: EXIT_NOT_FOUND,
                message: format!("build output {} does not exist", out.display()),
            },
            e => refused(format!("build output {}: {e}", out.display())),
        })?;
        let trust = match pin {
            Some(p) => TrustRoot::Pinned(p),
            None => TrustRoot::Ownership,
        };
        if trust == TrustRoot::Ownership {
            if let Some(why) = not_private(&meta) {
                return Err(ownership_refusal(out, &why));
            }
        }
        let path = out.join(MANIFEST_FILE);
        let opened = open_out_file(&dir, out, &trust, MANIFEST_FILE).map_err(Refusal::from)?;
        if opened.meta.len() > MAX_MANIFEST_BYTES {
            return Err(refused(format!("{} is too large", path.display())));
        }
        let text = read_all(&opened.file, opened.meta.len())
            .map_err(|e| refused(format!("cannot read {}: {e}", path.display())))?;
        let m: Manifest = serde_json::from_slice(&text)
            .map_err(|e| refused(format!("{} is not a valid manifest: {e}", path.display())))?;
        check_manifest(&m, &trust, &path)?;
        Ok(Container {
            out: out.to_path_buf(),
            dir,
            manifest: m,
            trust,
        })
    }

    /// The build output directory.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// The trusted manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// What the manifest is trusted by.
    pub fn trust(&self) -> &TrustRoot {
        &self.trust
    }

    fn open_file(&self, name: &str) -> Result<Opened, FileError> {
        open_out_file(&self.dir, &self.out, &self.trust, name)
    }

    /// Opens `name` in OUT and checks that its content hashes to `expected` (`sha256:<hex>`).
    /// A private file is measured (a still-valid measurement skips the re-hash) and returned
    /// open; any other file is read once into memory and hashed there.
    pub fn verified_file(
        &self,
        name: &str,
        expected: &Digest,
        measurer: &Measurer,
    ) -> Result<VerifiedFile, FileError> {
        let path = self.out.join(name);
        let opened = self.open_file(name)?;
        let read_err =
            |e: std::io::Error| FileError::Unusable(format!("cannot read {}: {e}", path.display()));
        let (actual, file) = match not_private(&opened.meta) {
            None => (
                measurer.digest(&opened).map_err(read_err)?,
                VerifiedFile::Mapped(opened.file),
            ),
            Some(_) => {
                let bytes = read_all(&opened.file, opened.meta.len()).map_err(read_err)?;
                (Digest::of(&bytes), VerifiedFile::Bytes(bytes))
            }
        };
        if actual != *expected {
            return Err(FileError::Mismatch(format!(
                "{} does not match the manifest: expected {expected}, found {actual}",
                path.display()
            )));
        }
        Ok(file)
    }

    /// The bytes of megabinary `name`, verified against the manifest.
    pub fn megabinary_bytes(&self, name: &str, measurer: &Measurer) -> Result<Vec<u8>, Refusal> {
        let expected =
            self.manifest.megabinaries.get(name).ok_or_else(|| {
                refused(format!("megabinary {name} is not listed in the manifest"))
            })?;
        match self.verified_file(name, expected, measurer)? {
            VerifiedFile::Bytes(b) => Ok(b),
            VerifiedFile::Mapped(f) => {
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                read_all(&f, len).map_err(|e| {
                    refused(format!(
                        "cannot read {}: {e}",
                        self.out.join(name).display()
                    ))
                })
            }
        }
    }
}

/// Opens `name` in OUT: a regular file, never through a final symlink, and private unless
/// the build is pinned.
fn open_out_file(
    dir: &File,
    out: &Path,
    trust: &TrustRoot,
    name: &str,
) -> Result<Opened, FileError> {
    let path = out.join(name);
    let opened = open_regular_at(dir.as_fd(), name).map_err(|e| match e {
        OpenError::Missing => FileError::Missing(format!("{} does not exist", path.display())),
        e => FileError::Unusable(format!("{} {e}", path.display())),
    })?;
    if *trust == TrustRoot::Ownership {
        if let Some(why) = not_private(&opened.meta) {
            return Err(FileError::Untrusted(ownership_refusal(&path, &why).message));
        }
    }
    Ok(opened)
}

/// Checks a parsed manifest: format, the pin or its own id, plain file names.
fn check_manifest(m: &Manifest, trust: &TrustRoot, path: &Path) -> Result<(), Refusal> {
    let shown = path.display();
    if m.format != FORMAT {
        return Err(refused(format!(
            "{shown}: unsupported format `{}`",
            m.format
        )));
    }
    let computed = m.computed_id();
    if let TrustRoot::Pinned(pin) = trust {
        if computed != *pin {
            return Err(refused(format!(
                "{shown}: the build is not the pinned one: its contents have container_id \
                     {computed}, --expect-id is {pin}"
            )));
        }
    }
    if m.container_id != computed {
        return Err(refused(format!(
            "{shown}: container_id does not match its contents (the manifest was modified)"
        )));
    }
    let names = m
        .megabinaries
        .keys()
        .chain(std::iter::once(&m.megabinary))
        .chain(m.binaries.values().map(|b| &b.megabinary))
        .chain(m.aot.iter().flat_map(|a| a.artifacts.keys()));
    for name in names {
        check_plain_name(name).map_err(|e| refused(format!("{shown}: {e}")))?;
    }
    Ok(())
}
