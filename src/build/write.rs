//! Atomic output: every file goes to a temporary in the output directory and is renamed into
//! place only when all of them are written, the manifest last. A failed build leaves the
//! previous outputs untouched and no temporaries behind.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Prefix of temporary files in the output directory.
const TMP_PREFIX: &str = ".megabin-tmp-";

/// Files being written; dropped without [`Staged::commit`] they are removed.
pub struct Staged {
    dir: PathBuf,
    files: Vec<(PathBuf, PathBuf)>,
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

    /// Writes `bytes` to a temporary that [`Staged::commit`] renames to `name`.
    pub fn add(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = self
            .dir
            .join(format!("{TMP_PREFIX}{}-{name}", std::process::id()));
        let final_path = self.dir.join(name);
        self.files.push((tmp.clone(), final_path));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    }

    /// Renames every staged file into place, in the order added.
    pub fn commit(mut self) -> std::io::Result<()> {
        for (tmp, final_path) in std::mem::take(&mut self.files) {
            if let Err(e) = std::fs::rename(&tmp, &final_path) {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        }
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        for (tmp, _) in &self.files {
            let _ = std::fs::remove_file(tmp);
        }
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
