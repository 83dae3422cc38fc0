//! Reading, classifying and hashing files, in parallel.
//!
//! Each file is read at most once, sequentially: the first bytes classify it; a core wasm
//! module is then read whole into memory (fed to the section scanner on the way) and hashed from
//! those bytes, which the build later merges without reading the file again (so the merged code
//! is the code the manifest digest names). Non-wasm files are never read past their first bytes;
//! a module larger than [`MAX_KEPT_BYTES`] (which the build refuses as too large anyway) is
//! streamed through SHA-256 instead of being kept.

use std::fs::File;
use std::io::{self, Read};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use sha2::{Digest, Sha256};

use super::classify::{classify_header, Header, ModuleKind, ModuleScanner, HEADER_LEN};
use super::shebang::{self, Shebang};
use super::{Content, ScanError, SkipReason};

/// Largest script the scan reads (a bigger one is skipped as a script too large to run).
pub(crate) const MAX_SCRIPT_BYTES: u64 = 64 << 20;

/// Largest module whose bytes the scan keeps (the largest module an engine accepts).
pub(crate) const MAX_KEPT_BYTES: u64 = merger::limits::MAX_MODULE_BYTES;

/// Size of the read buffer of each worker.
const BUF_SIZE: usize = 256 << 10;
/// Size of the first read, enough to classify any file without reading much of large data files.
const FIRST_READ: usize = 4 << 10;

/// A host file to classify.
#[derive(Debug, Clone)]
pub(crate) struct FileJob {
    /// The file.
    pub host: PathBuf,
    /// Whether any execute bit is set.
    pub executable: bool,
}

/// What a file turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileOutcome {
    /// An ordinary data file.
    Data,
    /// A WASI command module.
    Program {
        /// SHA-256 of the content.
        digest: [u8; 32],
        /// Content length.
        size: u64,
        /// The content, unless larger than [`MAX_KEPT_BYTES`].
        content: Option<Content>,
    },
    /// An executable script (starts with `#!`), hashed whole.
    Script {
        /// SHA-256 of the content.
        digest: [u8; 32],
        /// Content length.
        size: u64,
        /// Its `#!` line, or why it cannot be read as one.
        shebang: Result<Shebang, String>,
    },
    /// An executable (or wasm file) that is not a program.
    Skipped(SkipReason),
}

/// Processes every job with up to `threads` threads (including the calling one). Outcomes are
/// returned in job order, so the result does not depend on `threads`.
pub(crate) fn process_all(jobs: &[FileJob], threads: usize) -> Result<Vec<FileOutcome>, ScanError> {
    let threads = threads.clamp(1, jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let work = || {
        let mut buf = vec![0u8; BUF_SIZE];
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(job) = jobs.get(i) else { break };
            done.push((i, process_one(job, &mut buf)));
        }
        done
    };

    let mut outcomes: Vec<Option<FileOutcome>> = vec![None; jobs.len()];
    let mut panicked = false;
    thread::scope(|s| {
        let handles: Vec<_> = (1..threads)
            .filter_map(|i| {
                thread::Builder::new()
                    .name(format!("megabin-scan-{i}"))
                    .spawn_scoped(s, work)
                    .ok()
            })
            .collect();
        let mut parts = Vec::with_capacity(threads);
        match panic::catch_unwind(AssertUnwindSafe(&work)) {
            Ok(part) => parts.push(part),
            Err(_) => panicked = true,
        }
        for handle in handles {
            match handle.join() {
                Ok(part) => parts.push(part),
                Err(_) => panicked = true,
            }
        }
        for (i, outcome) in parts.into_iter().flatten() {
            outcomes[i] = Some(outcome);
        }
    });
    if panicked {
        return Err(ScanError::WorkerPanicked);
    }
    outcomes
        .into_iter()
        .map(|o| o.ok_or(ScanError::WorkerPanicked))
        .collect()
}

/// Classifies (and, for a command module, hashes) one file, using `buf` as read buffer.
pub(crate) fn process_one(job: &FileJob, buf: &mut [u8]) -> FileOutcome {
    match read_and_hash(job, buf) {
        Ok(outcome) => outcome,
        Err(e) => FileOutcome::Skipped(SkipReason::Unreadable(e.to_string())),
    }
}

fn read_and_hash(job: &FileJob, buf: &mut [u8]) -> io::Result<FileOutcome> {
    let mut file = File::open(&job.host)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        // Replaced by something else since the walk.
        return Ok(FileOutcome::Data);
    }
    let first = FIRST_READ.min(buf.len());
    let mut filled = 0;
    while filled < HEADER_LEN {
        let n = read_some(&mut file, &mut buf[filled..first])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    let module = match classify_header(&buf[..filled.min(HEADER_LEN)], job.executable) {
        Header::CoreModule => ModuleScanner::new(),
        Header::Component => return Ok(skip(SkipReason::WasmComponent)),
        Header::InvalidWasm(msg) => return Ok(skip(SkipReason::InvalidWasm(msg))),
        Header::Script => return script(&mut file, buf, filled),
        Header::Native => return Ok(skip(SkipReason::NotRecompiledNative)),
        Header::Data => return Ok(FileOutcome::Data),
    };
    let mut scanner = module;
    // The bytes read so far, while they fit MAX_KEPT_BYTES; past that, a streaming hash.
    let mut kept: Option<Vec<u8>> = (meta.len() <= MAX_KEPT_BYTES)
        .then(|| Vec::with_capacity(meta.len().max(filled as u64) as usize));
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut take = |chunk: &[u8], kept: &mut Option<Vec<u8>>| {
        size += chunk.len() as u64;
        match kept {
            Some(v) if size <= MAX_KEPT_BYTES => v.extend_from_slice(chunk),
            Some(v) => {
                // Grew past the bound while being read: stop keeping it.
                hasher.update(&v[..]);
                hasher.update(chunk);
                *kept = None;
            }
            None => hasher.update(chunk),
        }
    };
    take(&buf[..filled], &mut kept);
    let mut chunk_start = HEADER_LEN;
    let mut chunk_end = filled;
    loop {
        if let Err(msg) = scanner.feed(&buf[chunk_start..chunk_end]) {
            return Ok(skip(SkipReason::InvalidWasm(msg)));
        }
        if scanner.known_reactor() {
            return Ok(skip(SkipReason::WasmReactor));
        }
        let n = read_some(&mut file, buf)?;
        if n == 0 {
            break;
        }
        take(&buf[..n], &mut kept);
        chunk_start = 0;
        chunk_end = n;
    }
    Ok(match scanner.finish() {
        Ok(ModuleKind::Command) => match kept {
            // The digest is computed from the very bytes the build will merge.
            Some(bytes) => {
                let content = Content::new(bytes);
                FileOutcome::Program {
                    digest: content.digest().0,
                    size: content.bytes().len() as u64,
                    content: Some(content),
                }
            }
            None => FileOutcome::Program {
                digest: hasher.finalize().into(),
                size,
                content: None,
            },
        },
        Ok(ModuleKind::Reactor) => skip(SkipReason::WasmReactor),
        Err(msg) => skip(SkipReason::InvalidWasm(msg)),
    })
}

/// Hashes the rest of a script whose first `filled` bytes are in `buf`, and parses its `#!`
/// line from the first [`shebang::LINE_MAX`] bytes.
fn script(file: &mut File, buf: &mut [u8], mut filled: usize) -> io::Result<FileOutcome> {
    let line_max = shebang::LINE_MAX.min(buf.len());
    while filled < line_max {
        let n = read_some(file, &mut buf[filled..line_max])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    let whole = filled < line_max;
    let shebang = shebang::parse(&buf[..filled.min(line_max)], whole);
    let mut hasher = Sha256::new();
    hasher.update(&buf[..filled]);
    let mut size = filled as u64;
    loop {
        let n = read_some(file, buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if size > MAX_SCRIPT_BYTES {
            return Ok(skip(SkipReason::Script(format!(
                "larger than {} MiB",
                MAX_SCRIPT_BYTES >> 20
            ))));
        }
        hasher.update(&buf[..n]);
    }
    Ok(FileOutcome::Script {
        digest: hasher.finalize().into(),
        size,
        shebang,
    })
}

fn skip(reason: SkipReason) -> FileOutcome {
    FileOutcome::Skipped(reason)
}

/// `read`, retrying on `Interrupted`.
fn read_some(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn open_error_is_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let job = FileJob {
            host: dir.path().join("missing"),
            executable: true,
        };
        let mut buf = vec![0; 64];
        assert!(matches!(
            process_one(&job, &mut buf),
            FileOutcome::Skipped(SkipReason::Unreadable(_))
        ));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn read_error_is_unreadable() {
        // A regular file whose reads fail (EIO: address 0 is not mapped), even for root.
        let job = FileJob {
            host: "/proc/self/mem".into(),
            executable: false,
        };
        let mut buf = vec![0; 64];
        assert!(matches!(
            process_one(&job, &mut buf),
            FileOutcome::Skipped(SkipReason::Unreadable(_))
        ));
    }

    #[test]
    fn small_buffers_and_many_threads() {
        let dir = tempfile::tempdir().unwrap();
        let mut jobs = Vec::new();
        for i in 0..20u8 {
            let path = dir.path().join(format!("f{i}"));
            let content: &[u8] = match i % 3 {
                0 => b"#!/bin/sh\n",
                1 => b"\x7fELF....",
                _ => b"\0asm\x01\0\0\0",
            };
            std::fs::write(&path, content).unwrap();
            jobs.push(FileJob {
                host: path,
                executable: true,
            });
        }
        let one = process_all(&jobs, 1).unwrap();
        assert_eq!(process_all(&jobs, 0).unwrap(), one);
        assert_eq!(process_all(&jobs, 7).unwrap(), one);
        assert_eq!(process_all(&jobs, 100).unwrap(), one);
        assert!(matches!(
            &one[0],
            FileOutcome::Script { size: 10, shebang: Ok(s), .. } if s.interpreter == "/bin/sh"
        ));
        assert_eq!(
            one[1],
            FileOutcome::Skipped(SkipReason::NotRecompiledNative)
        );
        assert_eq!(one[2], FileOutcome::Skipped(SkipReason::WasmReactor));
        assert!(process_all(&[], 4).unwrap().is_empty());
    }
}
