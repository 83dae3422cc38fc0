//! Verified once: the digest of a file is measured (hashed in full) once and remembered in
//! the private cache with the file's identity, as Linux IMA keeps a measurement until the
//! file changes. A later `fstat` of the opened file that matches the record skips the re-hash.
//!
//! The identity is (device, inode, size, mtime, ctime). Changing a file's content updates its
//! ctime, which no unprivileged user can set back; so a matching record means the same bytes.
//! Two guards close the remaining windows:
//! - a file is measured through the descriptor that is then used, and the record is kept
//!   only if its `fstat` did not change while it was hashed;
//! - "racy" files (as in git's index): timestamps have the kernel's coarse granularity, so a
//!   write in the same clock tick as the last change would leave them equal. A file whose
//!   ctime is within [`RACY_WINDOW`] of the moment hashing started is hashed but not
//!   recorded: it is hashed again next time.

use crate::cache::Cache;
use crate::open::Opened;
use megabin_format::Digest;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fs::Metadata;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Files changed this recently are not recorded (well above a clock tick at HZ=100).
pub const RACY_WINDOW: Duration = Duration::from_millis(100);

/// The identity of a file's content as `fstat` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Identity {
    fn of(m: &Metadata) -> Identity {
        Identity {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
            ctime_ns: m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
        }
    }

    fn record_name(&self) -> String {
        format!("{:x}-{:x}", self.dev, self.ino)
    }
}

/// One record in `measured/`.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    identity: Identity,
    /// The content's digest.
    digest: Digest,
}

/// Measures files, using and filling the cache's measurements when there is a cache.
#[derive(Debug, Default)]
pub struct Measurer<'a> {
    cache: Option<&'a Cache>,
    rehash: bool,
    memo: Option<&'a Memo>,
}

/// The measurement records a long-lived process (`megabin serve`) has read or written, kept
/// in memory so that a later check of an unchanged file is one `fstat` and a lookup, without
/// reading the record's file again. It holds exactly what the cache holds (same identity, same
/// digest), so it trusts nothing the cache would not; it is used only with a cache and never
/// with `rehash`.
#[derive(Debug, Default)]
pub struct Memo(std::sync::Mutex<std::collections::HashMap<Identity, Digest>>);

impl Memo {
    fn get(&self, id: &Identity) -> Option<Digest> {
        self.0.lock().ok()?.get(id).copied()
    }

    fn put(&self, id: &Identity, digest: &Digest) {
        if let Ok(mut m) = self.0.lock() {
            // A file replaced in place keeps its (dev, ino) key: one entry per file.
            m.retain(|k, _| (k.dev, k.ino) != (id.dev, id.ino));
            m.insert(*id, *digest);
        }
    }
}

impl<'a> Measurer<'a> {
    /// A measurer recording in `cache` (none: every file is hashed in full). With `rehash`,
    /// existing records are ignored (and replaced).
    pub fn new(cache: Option<&'a Cache>, rehash: bool) -> Self {
        Measurer {
            cache,
            rehash,
            memo: None,
        }
    }

    /// [`Measurer::new`] that also keeps the records it reads or writes in `memo` and looks
    /// there first (only when there is a cache and not `rehash`).
    pub fn with_memo(cache: Option<&'a Cache>, rehash: bool, memo: &'a Memo) -> Self {
        Measurer {
            cache,
            rehash,
            memo: cache.is_some().then_some(memo),
        }
    }

    /// The sha256 of the opened file's content: from a record that still matches its `fstat`,
    /// else by reading the whole file through its descriptor.
    pub fn digest(&self, opened: &Opened) -> std::io::Result<Digest> {
        let id = Identity::of(&opened.meta);
        if !self.rehash {
            if let Some(d) = self.recorded(&id) {
                return Ok(d);
            }
        }
        let started = SystemTime::now();
        let digest = Digest(hash_open_file(opened)?);
        let after = Identity::of(&opened.file.metadata()?);
        if after == id && !is_racy(&id, started) {
            self.record(&id, &digest);
        }
        Ok(digest)
    }

    fn recorded(&self, id: &Identity) -> Option<Digest> {
        if let Some(d) = self.memo.and_then(|m| m.get(id)) {
            return Some(d);
        }
        let bytes = self
            .cache?
            .read_entry("measured", &id.record_name(), 4096)?;
        let r: Record = serde_json::from_slice(&bytes).ok()?;
        let d = (r.identity == *id).then_some(r.digest)?;
        if let Some(m) = self.memo {
            m.put(id, &d);
        }
        Some(d)
    }

    /// Records the digest of a file this process has just written itself into the private
    /// cache, from the bytes it wrote (so the next run does not hash it): no racy-timestamp
    /// guard is needed, since nobody but the cache's owner can write there, and a later
    /// change of the file still changes its ctime.
    pub fn record_written(&self, path: &std::path::Path, digest: &Digest) {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if meta.is_file() {
                self.record(&Identity::of(&meta), digest);
            }
        }
    }

    fn record(&self, id: &Identity, digest: &Digest) {
        if let Some(m) = self.memo {
            m.put(id, digest);
        }
        if let Some(cache) = self.cache {
            let r = Record {
                identity: *id,
                digest: *digest,
            };
            let bytes = serde_json::to_vec(&r).expect("record serializes");
            // A cache that cannot be written only costs a re-hash next time.
            let _ = cache.write_entry("measured", &id.record_name(), &bytes);
        }
    }
}

fn is_racy(id: &Identity, started: SystemTime) -> bool {
    let started_ns = started
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    started_ns - id.ctime_ns < RACY_WINDOW.as_nanos() as i128
}

/// sha256 of an open file's whole content, read with positioned reads.
pub fn hash_open_file(opened: &Opened) -> std::io::Result<[u8; 32]> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    loop {
        let n = opened.file.read_at(&mut buf, offset)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        offset += n as u64;
    }
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::open::open_regular;

    /// A private cache and a file `f` holding `content`, in a temporary directory.
    fn cache_and_file(content: &[u8]) -> (tempfile::TempDir, Cache, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::open(&d.path().join("cache")).unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, content).unwrap();
        (d, cache, f)
    }

    #[test]
    fn a_record_is_used_until_the_file_changes() {
        let (_d, cache, f) = cache_and_file(b"one");
        std::thread::sleep(RACY_WINDOW * 2);
        let m = Measurer::new(Some(&cache), false);
        let first = m.digest(&open_regular(&f).unwrap()).unwrap();
        assert_eq!(first, Digest::of(b"one"));
        let id = Identity::of(&std::fs::metadata(&f).unwrap());
        assert_eq!(m.recorded(&id), Some(first));
        // Forge the record: a matching identity is trusted (that is the point), ...
        let fake = Digest([7u8; 32]);
        m.record(&id, &fake);
        assert_eq!(m.digest(&open_regular(&f).unwrap()).unwrap(), fake);
        // ... --rehash is not fooled, and any change of the file means a full re-hash.
        let rehash = Measurer::new(Some(&cache), true);
        assert_eq!(rehash.digest(&open_regular(&f).unwrap()).unwrap(), first);
        m.record(&id, &fake);
        std::fs::write(&f, b"two").unwrap();
        assert_eq!(
            m.digest(&open_regular(&f).unwrap()).unwrap(),
            Digest::of(b"two")
        );
    }

    #[test]
    fn a_memo_answers_without_reading_the_record_until_the_file_changes() {
        let (_d, cache, f) = cache_and_file(b"one");
        std::thread::sleep(RACY_WINDOW * 2);
        let memo = Memo::default();
        let m = Measurer::with_memo(Some(&cache), false, &memo);
        let first = m.digest(&open_regular(&f).unwrap()).unwrap();
        assert_eq!(first, Digest::of(b"one"));
        // Forge the record on disk: a measurer without the memo reads it, the memo does not.
        let id = Identity::of(&std::fs::metadata(&f).unwrap());
        let fake = Digest([7u8; 32]);
        let plain = Measurer::new(Some(&cache), false);
        plain.record(&id, &fake);
        assert_eq!(plain.digest(&open_regular(&f).unwrap()).unwrap(), fake);
        assert_eq!(m.digest(&open_regular(&f).unwrap()).unwrap(), first);
        // A changed file has another identity: measured again.
        std::fs::write(&f, b"two").unwrap();
        assert_eq!(
            m.digest(&open_regular(&f).unwrap()).unwrap(),
            Digest::of(b"two")
        );
        // Without a cache there is no memo either: every file is hashed.
        let none = Measurer::with_memo(None, false, &memo);
        assert!(none.memo.is_none());
    }

    #[test]
    fn a_file_changed_just_now_is_not_recorded() {
        let (_d, cache, f) = cache_and_file(b"new");
        let m = Measurer::new(Some(&cache), false);
        m.digest(&open_regular(&f).unwrap()).unwrap();
        let id = Identity::of(&std::fs::metadata(&f).unwrap());
        assert_eq!(m.recorded(&id), None);
    }
}
