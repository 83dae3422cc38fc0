//! `#!` scripts run by a merged interpreter: the script's bytes are read once, verified
//! against the manifest, and that verified copy (not the rootfs file, which could change
//! after the check) is what the interpreter reads, from a private directory preopened
//! read-only at the script's directory. Nothing else of the rootfs is visible.

use crate::manifest::Script;
use crate::open::{open_regular, OpenError};
use crate::verify::{check_digest, not_found, refused, Refusal};
use megabin_format::Digest;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A script that passed verification, ready to hand to its interpreter.
#[derive(Clone, Debug)]
pub struct VerifiedScript {
    /// The script's rootfs path (absolute), as the interpreter sees it.
    pub path: String,
    /// argv before the caller's arguments: the interpreter as the `#!` line names it, its
    /// optional argument, then [`VerifiedScript::path`].
    pub argv: Vec<String>,
    /// The script's verified bytes.
    pub bytes: Vec<u8>,
}

/// A script's private directory: holds only the verified copy of the script, under its own
/// file name; removed when dropped.
#[derive(Debug)]
pub struct StagedScript {
    dir: tempfile::TempDir,
    guest: String,
}

impl StagedScript {
    /// The preopen that shows the script at its path: (host directory, guest directory),
    /// to be preopened read-only.
    pub fn preopen(&self) -> (PathBuf, String) {
        (self.dir.path().to_path_buf(), self.guest.clone())
    }
}

impl VerifiedScript {
    /// Writes the verified bytes into a fresh private directory (mode 0700) under the script's
    /// file name.
    pub fn stage(&self) -> std::io::Result<StagedScript> {
        let (parent, name) = self.path.rsplit_once('/').unwrap_or(("", &self.path));
        let dir = tempfile::Builder::new()
            .prefix("megabin-script-")
            .tempdir()?;
        std::fs::write(dir.path().join(name), &self.bytes)?;
        let guest = if parent.is_empty() { "/" } else { parent };
        Ok(StagedScript {
            dir,
            guest: guest.to_string(),
        })
    }
}

impl crate::verify::Verified {
    /// The argv before the caller's arguments: a script's interpreter argv and path, else
    /// `[argv0]` for the program itself.
    pub fn argv_prefix(&self, argv0: String) -> Vec<String> {
        match &self.script {
            Some(script) => script.argv.clone(),
            None => vec![argv0],
        }
    }

    /// For a script, its verified copy staged in a private directory (to preopen read-only
    /// with [`StagedScript::preopen`]); `None` for a program.
    pub fn stage_script(&self) -> std::io::Result<Option<StagedScript>> {
        self.script.as_ref().map(VerifiedScript::stage).transpose()
    }
}

/// Reads the script at `host` (rootfs path `path`) once, without following a final symlink
/// or blocking, and checks its bytes against the manifest's entry.
pub(crate) fn verify_script(
    path: &str,
    host: &Path,
    script: &Script,
) -> Result<VerifiedScript, Refusal> {
    let opened = open_regular(host).map_err(|e| match e {
        OpenError::Missing => not_found(format!("{path} does not exist in the rootfs")),
        e => refused(format!("{path} ({}) {e}", host.display())),
    })?;
    let mut bytes = Vec::with_capacity(script.size.min(64 << 20) as usize);
    // One byte more than the manifest's size tells a grown file from the verified one.
    (&opened.file)
        .take(script.size.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| refused(format!("cannot read {path} ({}): {e}", host.display())))?;
    let actual = Digest::of(&bytes);
    check_digest(path, &script.hash, &actual)?;
    let argv = script
        .argv
        .iter()
        .cloned()
        .chain(std::iter::once(path.to_string()))
        .collect();
    Ok(VerifiedScript {
        path: path.to_string(),
        argv,
        bytes,
    })
}
