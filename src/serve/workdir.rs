//! The per-call `/work` directories, reused.
//!
//! Creating and removing a directory costs more than running a small program: on ext4, `mkdir`
//! and `rmdir` each go through the journal (the two were ~9 % of a serve's samples under
//! `perf`, more than the hello tool's own run). So a call takes an empty directory from a pool
//! of private ones, and gives it back **emptied**: everything the call left in it is removed
//! (symlinks are removed, never followed) before another call can get it, so no file survives
//! from one call to the next. A directory that cannot be emptied is removed instead.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Most emptied directories kept for reuse.
const KEEP: usize = 64;

/// The pool: private directories (mode 0700) under one temporary directory of the server.
pub struct WorkDirs {
    root: tempfile::TempDir,
    free: Mutex<Vec<PathBuf>>,
    next: AtomicU64,
}

/// A call's directory, empty when taken; emptied and given back when dropped.
pub struct WorkDir<'a> {
    pool: &'a WorkDirs,
    path: PathBuf,
}

impl WorkDirs {
    /// A pool under a fresh temporary directory.
    pub fn new() -> std::io::Result<WorkDirs> {
        let root = tempfile::Builder::new()
            .prefix("megabin-serve-")
            .tempdir()?;
        Ok(WorkDirs {
            root,
            free: Mutex::new(Vec::new()),
            next: AtomicU64::new(0),
        })
    }

    /// An empty directory for one call.
    pub fn take(&self) -> std::io::Result<WorkDir<'_>> {
        let reused = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let path = match reused {
            Some(p) => p,
            None => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                let p = self.root.path().join(format!("call-{n}"));
                std::fs::create_dir(&p)?;
                p
            }
        };
        Ok(WorkDir { pool: self, path })
    }

    fn give_back(&self, path: PathBuf) {
        if empty(&path).is_ok() {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            if free.len() < KEEP {
                free.push(path);
                return;
            }
        }
        let _ = std::fs::remove_dir_all(&path);
    }
}

impl WorkDir<'_> {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir<'_> {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.path));
    }
}

/// Removes everything inside `dir` (not following symlinks) and checks it is left empty.
fn empty(dir: &Path) -> std::io::Result<()> {
    let mut removed = false;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
        removed = true;
    }
    // Listed empty the first time (the usual case): nothing to check again.
    if removed && std::fs::read_dir(dir)?.next().is_some() {
        return Err(std::io::Error::other("not empty"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_comes_back_empty_and_is_reused() {
        let pool = WorkDirs::new().unwrap();
        let first = {
            let w = pool.take().unwrap();
            let p = w.path().to_path_buf();
            std::fs::create_dir_all(p.join("sub/deeper")).unwrap();
            std::fs::write(p.join("sub/deeper/f"), "x").unwrap();
            std::fs::write(p.join("top"), "y").unwrap();
            // A symlink out of the directory is removed, its target untouched.
            let outside = pool.root.path().join("outside");
            std::fs::write(&outside, "keep").unwrap();
            std::os::unix::fs::symlink(&outside, p.join("link")).unwrap();
            p
        };
        let w = pool.take().unwrap();
        assert_eq!(w.path(), first, "reused");
        assert_eq!(std::fs::read_dir(w.path()).unwrap().count(), 0, "emptied");
        assert_eq!(
            std::fs::read_to_string(pool.root.path().join("outside")).unwrap(),
            "keep"
        );
        // Taken twice at once: two directories.
        let other = pool.take().unwrap();
        assert_ne!(other.path(), w.path());
    }

    #[test]
    fn a_directory_that_cannot_be_emptied_is_not_reused() {
        let pool = WorkDirs::new().unwrap();
        let path = {
            let w = pool.take().unwrap();
            let p = w.path().to_path_buf();
            // Replaced by a file: cannot be listed, so it is dropped from the pool.
            std::fs::remove_dir(&p).unwrap();
            std::fs::write(&p, "not a directory").unwrap();
            p
        };
        assert!(pool.free.lock().unwrap().is_empty());
        let _ = std::fs::remove_file(&path);
        let w = pool.take().unwrap();
        assert_ne!(w.path(), path);
    }
}
