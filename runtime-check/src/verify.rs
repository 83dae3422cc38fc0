//! Verification before anything runs: the manifest is consistent, the megabinary matches its
//! digest, and the requested program's file hashes to what the manifest says. Every refusal
//! carries the exit code the CLI uses (126 "found but refused", 127 "not found").

use crate::manifest::{digest_string, parse_digest, sha256_string, Binary, Manifest};
use std::path::{Path, PathBuf};

/// Exit code: found but refused (hash mismatch, tampered megabinary or manifest).
pub const EXIT_REFUSED: i32 = 126;
/// Exit code: not found (unlisted path, skipped program, unknown digest or tool).
pub const EXIT_NOT_FOUND: i32 = 127;

/// Why a run was refused. No instance is created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// [`EXIT_REFUSED`] or [`EXIT_NOT_FOUND`].
    pub exit_code: i32,
    /// Human-readable reason (names the file and the digests involved).
    pub message: String,
}

fn refused(message: String) -> Refusal {
    Refusal {
        exit_code: EXIT_REFUSED,
        message,
    }
}

fn not_found(message: String) -> Refusal {
    Refusal {
        exit_code: EXIT_NOT_FOUND,
        message,
    }
}

/// What the caller asks to run.
#[derive(Clone, Debug)]
pub enum Request {
    /// A path inside the rootfs, with the host file it resolved to (`None`: it does not exist).
    Path { path: String, host: Option<PathBuf> },
    /// A digest `sha256:<hex>`.
    Digest(String),
    /// An agent tool name.
    Tool(String),
}

/// A request that passed verification.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The program's digest (verified against the file when a path was given).
    pub digest: [u8; 32],
    /// Its entry point export.
    pub entry_point: String,
    /// The megabinary file that holds it.
    pub megabinary: String,
    /// The verified manifest.
    pub manifest: Manifest,
}

/// Loads `<out>/manifest.json` and checks that its `container_id` matches its contents.
pub fn load_manifest(out: &Path) -> Result<Manifest, Refusal> {
    let path = out.join("manifest.json");
    let text = std::fs::read(&path)
        .map_err(|e| not_found(format!("cannot read {}: {e}", path.display())))?;
    let m: Manifest = serde_json::from_slice(&text)
        .map_err(|e| refused(format!("{} is not a valid manifest: {e}", path.display())))?;
    if m.format != crate::manifest::FORMAT {
        return Err(refused(format!(
            "{}: unsupported format `{}`",
            path.display(),
            m.format
        )));
    }
    if !m.id_is_consistent() {
        return Err(refused(format!(
            "{}: container_id does not match its contents (the manifest was modified)",
            path.display()
        )));
    }
    Ok(m)
}

/// Reads megabinary `name` from `out` and checks it against the manifest digest.
pub fn load_megabinary(out: &Path, manifest: &Manifest, name: &str) -> Result<Vec<u8>, Refusal> {
    let expected = manifest
        .megabinaries
        .get(name)
        .ok_or_else(|| refused(format!("megabinary {name} is not listed in the manifest")))?;
    let path = out.join(name);
    let bytes = std::fs::read(&path)
        .map_err(|e| not_found(format!("cannot read {}: {e}", path.display())))?;
    let actual = sha256_string(&bytes);
    if &actual != expected {
        return Err(refused(format!(
            "{} does not match the manifest: expected {expected}, found {actual}",
            path.display()
        )));
    }
    Ok(bytes)
}

/// Hashes a file by streaming it.
pub fn hash_file(path: &Path) -> std::io::Result<[u8; 32]> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

fn by_digest<'a>(manifest: &'a Manifest, digest: &str) -> Option<&'a Binary> {
    manifest.binaries.values().find(|b| b.hash == digest)
}

/// Verifies `request` against the manifest in `out`. The code that runs it is verified when it
/// is loaded ([`crate::aot::load_module`]).
pub fn verify(out: &Path, request: &Request) -> Result<Verified, Refusal> {
    let manifest = load_manifest(out)?;
    let binary = match request {
        Request::Path { path, host } => {
            if let Some(reason) = manifest.skipped.get(path) {
                return Err(not_found(format!(
                    "{path} is not in the megabinary: {reason}"
                )));
            }
            let binary = manifest
                .binaries
                .get(path)
                .ok_or_else(|| not_found(format!("{path} is not listed in the manifest")))?;
            let host = host
                .as_ref()
                .ok_or_else(|| not_found(format!("{path} does not exist in the rootfs")))?;
            let actual = hash_file(host)
                .map_err(|e| not_found(format!("cannot read {path} ({}): {e}", host.display())))?;
            let actual = digest_string(&actual);
            if actual != binary.hash {
                return Err(refused(format!(
                    "{path} was modified or replaced: the manifest expects {}, the file hashes to {actual}",
                    binary.hash
                )));
            }
            binary
        }
        Request::Digest(d) => {
            if parse_digest(d).is_none() {
                return Err(not_found(format!("`{d}` is not a sha256:<64 hex> digest")));
            }
            by_digest(&manifest, d)
                .ok_or_else(|| not_found(format!("no program with digest {d} in the manifest")))?
        }
        Request::Tool(name) => {
            let d = manifest
                .agent_tools
                .get(name)
                .ok_or_else(|| not_found(format!("no agent tool `{name}` in the manifest")))?;
            by_digest(&manifest, d).ok_or_else(|| {
                refused(format!(
                    "agent tool `{name}` names {d}, which no binary has"
                ))
            })?
        }
    };
    let digest = parse_digest(&binary.hash)
        .ok_or_else(|| refused(format!("malformed digest {} in the manifest", binary.hash)))?;
    Ok(Verified {
        digest,
        entry_point: binary.entry_point.clone(),
        megabinary: binary.megabinary.clone(),
        manifest: manifest.clone(),
    })
}
