//! Stage 5, write ([`write`]), and the output directory's checks.
//!
//! Atomic output: every file goes to a temporary in the output directory and is renamed into
//! place only when all of them are written, the manifest last. A failed build leaves the
//! previous outputs untouched and no temporaries behind.
//!
//! Temporaries are created with `O_CREAT | O_EXCL` under unpredictable names (a random suffix
//! from the `tempfile` crate, seeded by the OS): whatever someone planted in the output
//! directory (a symlink at a guessed staging name, a symlink at a final name) is never followed,
//! so its target is never written. `rename` replaces a planted symlink at a final name by the
//! new file without following it.

use super::{BuildError, BuildOptions, Built, MANIFEST_FILE};
use std::io::Write;
use std::path::{Path, PathBuf};
use tempfile::TempPath;

/// Prefix of temporary files in the output directory.
const TMP_PREFIX: &str = ".megabin-tmp-";

/// Files being written; dropped without [`Staged::commit`] they are removed.
pub struct Staged {
    dir: PathBuf,
    files: Vec<(TempPath, PathBuf)>,
}

impl Staged {
    /// Starts staging into `dir` (created if missing).
    pub fn new(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Staged {
            dir: dir.to_path_buf(),
            files: Vec::new(),
        })
    }

    /// Writes `bytes` to a new temporary (exclusive create, random name) that
    /// [`Staged::commit`] renames to `name`.
    pub fn add(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let mut file = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .suffix(&format!("-{name}"))
            .tempfile_in(&self.dir)?;
        let final_path = self.dir.join(name);
        file.write_all(bytes)?;
        file.as_file().sync_all()?;
        self.files.push((file.into_temp_path(), final_path));
        Ok(())
    }

    /// Renames every staged file into place, in the order added.
    pub fn commit(mut self) -> std::io::Result<()> {
        for (tmp, final_path) in std::mem::take(&mut self.files) {
            // On failure the temporary is removed when the returned error drops it.
            tmp.persist(&final_path).map_err(|e| e.error)?;
        }
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}
/// Removes megabinaries and artifacts (`container.cwasm`, `container-N.wasm`,
/// `container-N.cwasm`) of an earlier build that the new manifest does not list (called after
/// the new manifest is in place).
pub fn remove_stale_outputs(dir: &Path, keep: &[String]) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let stem = name
            .strip_suffix(".wasm")
            .or_else(|| name.strip_suffix(".cwasm"));
        let ours = stem.is_some_and(|s| {
            s == "container"
                || s.strip_prefix("container-")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        });
        if ours && !keep.contains(&name) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Stage 5, write: stages every file in `opts.out`, commits them atomically (manifest last),
/// then removes outputs of an earlier build that this one no longer has.
pub fn write(opts: &BuildOptions, built: &Built) -> Result<(), BuildError> {
    let out_err = |e: std::io::Error| BuildError::Output {
        path: opts.out.clone(),
        reason: e.to_string(),
    };
    let mut staged = Staged::new(&opts.out).map_err(out_err)?;
    for (file, bytes) in built.megabinaries.iter().chain(&built.artifacts) {
        staged.add(file, bytes).map_err(out_err)?;
    }
    staged
        .add(MANIFEST_FILE, &built.manifest.to_json())
        .map_err(out_err)?;
    staged.commit().map_err(out_err)?;
    let written: Vec<String> = built
        .megabinaries
        .iter()
        .chain(&built.artifacts)
        .map(|(f, _)| f.clone())
        .collect();
    remove_stale_outputs(&opts.out, &written);
    Ok(())
}

/// Refuses an output directory inside the rootfs (it would be scanned into the next build).
pub(super) fn check_output_dir(rootfs: &Path, out: &Path) -> Result<(), BuildError> {
    let abs = |p: &Path| -> PathBuf {
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        // Canonicalize the longest existing ancestor, then re-append the rest.
        let mut existing = p.clone();
        let mut rest = Vec::new();
        while !existing.exists() {
            match (existing.file_name(), existing.parent()) {
                (Some(n), Some(parent)) => {
                    rest.push(n.to_os_string());
                    existing = parent.to_path_buf();
                }
                _ => break,
            }
        }
        let mut c = existing.canonicalize().unwrap_or(existing);
        for n in rest.iter().rev() {
            c.push(n);
        }
        c
    };
    if let (Ok(root), out_abs) = (rootfs.canonicalize(), abs(out)) {
        if out_abs.starts_with(&root) {
            return Err(BuildError::Output {
                path: out.to_path_buf(),
                reason: format!("is inside the rootfs {}", rootfs.display()),
            });
        }
    }
    if out.exists() && !out.is_dir() {
        return Err(BuildError::Output {
            path: out.to_path_buf(),
            reason: "exists and is not a directory".into(),
        });
    }
    Ok(())
}
