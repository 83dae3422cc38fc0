//! What a PROGRAM argument names, the way a kernel resolving it inside the rootfs would:
//! - `sha256:<hex>` (a full digest, or a unique prefix of 12+ hex digits): that program;
//! - a bare name (`hello`): the first of the rootfs's `PATH` directories that has it
//!   ([`DEFAULT_PATH`], as a shell's default);
//! - a path (`/bin/hello`, relative paths are taken from the rootfs root): symlinks followed
//!   inside the rootfs, directory symlinks included (`/bin -> usr/bin`); the manifest entry is
//!   the path as given, else the path it resolves to.

use crate::manifest::Manifest;
use crate::rootfs;
use runtime_check::{Refusal, Request, EXIT_NOT_FOUND};
use std::path::Path;

pub use crate::rootfs::DEFAULT_PATH;

fn not_found(message: String) -> Refusal {
    Refusal {
        exit_code: EXIT_NOT_FOUND,
        message,
    }
}

/// The request for PROGRAM, or why nothing in the rootfs matches it.
pub fn request_for(program: &str, root: &Path, manifest: &Manifest) -> Result<Request, Refusal> {
    if program.starts_with("sha256:") {
        return Ok(Request::Digest(program.to_string()));
    }
    let path = if program.contains('/') {
        if program.starts_with('/') {
            program.to_string()
        } else {
            format!("/{program}")
        }
    } else {
        find_in_path(program, root)?
    };
    let resolved = rootfs::resolve(root, &path).ok();
    let listed = if manifest.binaries.contains_key(&path) || manifest.skipped.contains_key(&path) {
        path.clone()
    } else {
        // Reached through a directory symlink: look up the path it resolves to.
        resolved
            .as_ref()
            .and_then(|t| in_rootfs_path(root, &t.host))
            .filter(|c| manifest.binaries.contains_key(c) || manifest.skipped.contains_key(c))
            .unwrap_or(path.clone())
    };
    if resolved.is_none() && manifest.binaries.contains_key(&listed) {
        return Err(not_found(format!(
            "{path} does not exist in the rootfs {}; pass --rootfs DIR, the directory you \
             built from",
            root.display()
        )));
    }
    Ok(Request::Path {
        path: listed,
        host: resolved.map(|t| t.host),
    })
}

/// `host` (under `root`) as an absolute path inside the rootfs.
fn in_rootfs_path(root: &Path, host: &Path) -> Option<String> {
    let rel = host.strip_prefix(root).ok()?;
    Some(format!("/{}", rel.to_str()?))
}

fn find_in_path(name: &str, root: &Path) -> Result<String, Refusal> {
    DEFAULT_PATH
        .iter()
        .map(|dir| format!("{dir}/{name}"))
        .find(|p| rootfs::resolve(root, p).is_ok())
        .ok_or_else(|| {
            not_found(format!(
                "{name}: not found in {} of the rootfs {}; pass --rootfs DIR, the directory you \
                 built from, or a full path",
                DEFAULT_PATH.join(":"),
                root.display()
            ))
        })
}
