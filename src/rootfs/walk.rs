//! Deterministic directory walk of the rootfs.

use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::path::{Path, PathBuf};

use super::{ScanError, SkipReason};

/// A regular file found by the walk.
pub(crate) struct WalkedFile {
    /// Absolute in-rootfs path, e.g. `/usr/bin/ls`.
    pub path: String,
    /// The file on the host.
    pub host: PathBuf,
    /// Its metadata (not following symlinks).
    pub meta: Metadata,
}

/// Everything the walk found, in sorted depth-first order.
#[derive(Default)]
pub(crate) struct Walked {
    /// Regular files.
    pub files: Vec<WalkedFile>,
    /// In-rootfs paths of symlinks (to be resolved inside the rootfs).
    pub symlinks: Vec<String>,
    /// Directories that could not be listed.
    pub skipped: Vec<(String, SkipReason)>,
    /// Problems met on the way.
    pub warnings: Vec<String>,
}

/// Walks every entry under `root` without following symlinks. Directory entries are visited in
/// sorted (byte-wise) name order. Special files (FIFOs, sockets, devices) are ignored, as are
/// names that are not valid UTF-8 (with a warning).
///
/// Fails only if `root` itself cannot be listed.
pub(crate) fn walk(root: &Path) -> Result<Walked, ScanError> {
    let mut out = Walked::default();
    // (in-rootfs path of the directory, "" for the root; host path), popped from the end.
    let mut stack: Vec<(String, PathBuf)> = vec![(String::new(), root.to_path_buf())];
    while let Some((dir, host_dir)) = stack.pop() {
        let entries = match list_dir(&host_dir, &dir, &mut out.warnings) {
            Ok(entries) => entries,
            Err(source) if dir.is_empty() => {
                return Err(ScanError::Io {
                    path: host_dir,
                    source,
                })
            }
            Err(e) => {
                out.warnings
                    .push(format!("{dir}: cannot list directory: {e}"));
                out.skipped
                    .push((dir, SkipReason::Unreadable(e.to_string())));
                continue;
            }
        };
        let mut subdirs = Vec::new();
        for (name, entry) in entries {
            let host = entry.path();
            let Some(name) = name.to_str() else {
                out.warnings.push(format!(
                    "{dir}/{}: ignored (file name is not valid UTF-8)",
                    name.to_string_lossy()
                ));
                continue;
            };
            let path = format!("{dir}/{name}");
            let file_type = match entry.file_type() {
                Ok(t) => t,
                Err(e) => {
                    out.warnings.push(format!("{path}: cannot stat: {e}"));
                    continue;
                }
            };
            if file_type.is_dir() {
                subdirs.push((path, host));
            } else if file_type.is_symlink() {
                out.symlinks.push(path);
            } else if file_type.is_file() {
                match entry.metadata() {
                    Ok(meta) => out.files.push(WalkedFile { path, host, meta }),
                    Err(e) => {
                        out.warnings.push(format!("{path}: cannot stat: {e}"));
                        out.skipped
                            .push((path, SkipReason::Unreadable(e.to_string())));
                    }
                }
            }
        }
        // Reverse so the stack pops subdirectories in sorted order.
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(out)
}

/// Lists a directory sorted by name. Errors on individual entries become warnings.
fn list_dir(
    host_dir: &Path,
    dir: &str,
    warnings: &mut Vec<String>,
) -> std::io::Result<Vec<(OsString, fs::DirEntry)>> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(host_dir)? {
        match entry {
            Ok(entry) => entries.push((entry.file_name(), entry)),
            Err(e) => warnings.push(format!("{dir}/: error while listing directory: {e}")),
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}
