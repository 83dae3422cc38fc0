//! The private cache: one directory per user (mode 0700) holding
//! - `measured/`: verified-once measurements (see [`crate::measure`]), and
//! - `modules/`: compiled megabinaries, keyed by megabinary digest and engine id.
//!
//! Location: `$MEGABIN_CACHE_DIR`, else `$XDG_CACHE_HOME/megabin`, else `$HOME/.cache/megabin`.
//! Entries are written atomically (a new file with an unpredictable name, `O_EXCL`, then
//! renamed into place), so readers see a whole entry or none.

use crate::open::{not_private, open_dir, open_regular_at, OpenError, Opened};
use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Environment variable naming the cache directory.
pub const CACHE_DIR_ENV: &str = "MEGABIN_CACHE_DIR";

/// The cache directory the environment names, or `None` when it names none (no `HOME`).
pub fn default_location() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var(CACHE_DIR_ENV) {
        return Some(dir);
    }
    if let Some(xdg) = var("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Some(xdg.join("megabin"));
    }
    var("HOME").map(|h| h.join(".cache").join("megabin"))
}

/// An opened, private cache directory.
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    dir: File,
}

impl Cache {
    /// Opens (creating it with mode 0700 if needed) the cache at `root`. Refuses a directory
    /// that is not private: its entries would be trusted native code.
    pub fn open(root: &Path) -> Result<Cache, String> {
        let shown = root.display();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| format!("cannot create {shown}: {e}"))?;
        let (dir, meta) = open_dir(root).map_err(|e| format!("cannot open {shown}: {e}"))?;
        if let Some(why) = not_private(&meta) {
            return Err(format!(
                "{shown} {why}; it must be private to you (chmod 700)"
            ));
        }
        for sub in ["measured", "modules"] {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(root.join(sub))
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => Ok(()),
                    _ => Err(e),
                })
                .map_err(|e| format!("cannot create {shown}/{sub}: {e}"))?;
        }
        Ok(Cache {
            root: root.to_path_buf(),
            dir,
        })
    }

    /// The cache's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Opens entry `sub/name` as a private regular file; `Ok(None)` when it does not exist.
    pub fn open_entry(&self, sub: &str, name: &str) -> Result<Option<Opened>, String> {
        match open_regular_at(self.dir.as_fd(), &format!("{sub}/{name}")) {
            Ok(o) => match not_private(&o.meta) {
                None => Ok(Some(o)),
                Some(why) => Err(format!("{}/{sub}/{name} {why}", self.root.display())),
            },
            Err(OpenError::Missing) => Ok(None),
            Err(e) => Err(format!("{}/{sub}/{name} {e}", self.root.display())),
        }
    }

    /// Reads entry `sub/name` whole (small entries only: at most `limit` bytes).
    pub fn read_entry(&self, sub: &str, name: &str, limit: u64) -> Option<Vec<u8>> {
        let o = self.open_entry(sub, name).ok()??;
        if o.meta.len() > limit {
            return None;
        }
        crate::open::read_all(&o.file, o.meta.len()).ok()
    }

    /// Writes entry `sub/name` atomically (mode 0600). Returns its final path.
    pub fn write_entry(&self, sub: &str, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
        let dir = self.root.join(sub);
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .tempfile_in(&dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_data()?;
        let path = dir.join(name);
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(path)
    }

    /// Removes entry `sub/name` (a corrupt one); errors are ignored.
    pub fn remove_entry(&self, sub: &str, name: &str) {
        let _ = std::fs::remove_file(self.root.join(sub).join(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_a_private_directory_and_refuses_a_shared_one() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("c");
        let cache = Cache::open(&root).unwrap();
        let mode = std::fs::metadata(&root).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let p = cache.write_entry("modules", "x", b"abc").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"abc");
        assert_eq!(
            cache.read_entry("modules", "x", 10).as_deref(),
            Some(&b"abc"[..])
        );
        assert_eq!(cache.read_entry("modules", "x", 2), None);
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = Cache::open(&root).unwrap_err();
        assert!(err.contains("writable by group and others"), "{err}");
    }
}
