//! Rootfs scan: find every WASI command module in a container root filesystem.
//!
//! [`scan`] walks every file under the rootfs directory (never following symlinked directories,
//! visiting entries in sorted order), resolves symlinks *inside* the rootfs as a `chroot` would,
//! classifies each file by content and reads each WASI command module once, in parallel, into
//! memory ([`Program::content`]), hashing (SHA-256) exactly those bytes.
//! Files with identical content (copies, hard links, symlinks) become a single [`Program`] that
//! lists all of their in-rootfs paths. Executables that cannot become part of the megabinary are
//! reported in [`Scan::skipped`] with a [`SkipReason`]; ordinary data files are ignored.
//!
//! The result is deterministic: it does not depend on directory read order, on the number of
//! worker threads, on timestamps or (apart from [`Program::host_path`]) on where the rootfs lives
//! on the host.
//!
//! [`entry_names`] derives a unique, identifier-safe entry name for each program.

mod classify;
mod hash;
mod names;
mod resolve;
pub mod shebang;
mod walk;

#[cfg(all(test, unix))]
mod tests;

use megabin_format::Digest;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use names::{entry_names, sanitize_name};
pub use resolve::{resolve, ResolveError, Target};
pub use shebang::Shebang;

/// The rootfs `PATH`: where a bare program name is looked up, in order (by `megabin run NAME`
/// and for a script's `#!/usr/bin/env NAME`), as a shell's default.
pub const DEFAULT_PATH: &[&str] = &["/usr/local/bin", "/usr/bin", "/bin"];

/// Maximum number of symlinks followed while resolving one path (as Linux' `MAXSYMLINKS`).
pub const MAX_SYMLINK_HOPS: usize = 40;

/// Options for [`scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOptions {
    /// Number of threads that read and hash files. `0` is treated as `1`. The result of the scan
    /// is identical whatever this value is.
    pub jobs: usize,
}

impl ScanOptions {
    /// Options using `jobs` hashing threads.
    pub fn with_jobs(jobs: usize) -> Self {
        ScanOptions { jobs }
    }
}

impl Default for ScanOptions {
    /// One job per available CPU (1 if that cannot be determined).
    fn default() -> Self {
        ScanOptions {
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// The result of scanning a rootfs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scan {
    /// Distinct WASI command modules, sorted by [`Program::digest`].
    pub programs: Vec<Program>,
    /// Executables and symlinks that will not be part of the megabinary, keyed by absolute
    /// in-rootfs path (e.g. `"/bin/bash"`).
    pub skipped: BTreeMap<String, SkipReason>,
    /// Executable `#!` scripts with a readable `#!` line, keyed by absolute in-rootfs path
    /// (symlinks to a script included): the build runs them through a merged interpreter, or
    /// skips them with the reason.
    pub scripts: BTreeMap<String, ScriptFile>,
    /// Human-readable warnings (dangling symlinks, unreadable files, ...), sorted. They name
    /// in-rootfs paths, never host paths.
    pub warnings: Vec<String>,
}

/// One distinct WASI command module (a core wasm module exporting `_start`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// SHA-256 of the module's bytes.
    pub digest: [u8; 32],
    /// Every in-rootfs path whose content is this module (copies, hard links and symlinks to
    /// it): absolute, `/`-separated, sorted, without duplicates, never empty.
    pub paths: Vec<String>,
    /// The path that best names the program: the first of [`Program::paths`] that is a regular
    /// file rather than a symlink (e.g. `/bin/busybox` rather than `/bin/[`), or the first path
    /// if every path is a symlink. Always an element of `paths`.
    pub primary_path: String,
    /// A host file that held the module's bytes when scanned (inside the scanned rootfs
    /// directory), for messages: the build uses [`Program::content`] and never reads it again.
    pub host_path: PathBuf,
    /// Size of the module in bytes.
    pub size: u64,
    /// The module's bytes as the scan read them (their digest is [`Program::digest`]); `None`
    /// only for a module larger than an engine accepts, which is not kept in memory.
    pub content: Option<Content>,
}

/// An executable script of the rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptFile {
    /// SHA-256 of the whole file.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Its `#!` line.
    pub shebang: Shebang,
}

/// A program's bytes as read once from the rootfs, with the SHA-256 computed from exactly those
/// bytes: the only constructor hashes what it holds, so the digest a manifest records for a
/// [`Content`] is always the digest of the bytes merged from it. Cloning shares the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Content {
    digest: Digest,
    bytes: Arc<Vec<u8>>,
}

impl Content {
    /// Takes `bytes` and hashes them.
    pub fn new(bytes: Vec<u8>) -> Self {
        Content {
            digest: Digest::of(&bytes),
            bytes: Arc::new(bytes),
        }
    }

    /// SHA-256 of [`Content::bytes`].
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Content({}, {} bytes)", self.digest, self.bytes.len())
    }
}

impl Program {
    /// The digest as 64 lowercase hexadecimal digits.
    pub fn digest_hex(&self) -> String {
        Digest(self.digest).hex()
    }
}

/// Why a path in the rootfs is not part of the megabinary: found by the scan (the file is not
/// a WASI command) or by the build's check stage (the merger refuses the program, see
/// [`SkipReason::from`] a [`merger::Unsupported`]). It stays typed until the manifest is written.
///
/// [`Display`](fmt::Display) (and serde serialization) give the manifest strings: the
/// [`kind`](SkipReason::kind), then `": "` and the details if there are any, e.g.
/// `"not-recompiled-native"` or `"invalid-wasm: <message>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// An executable that is not WebAssembly (typically a native ELF binary).
    NotRecompiledNative,
    /// An executable script (starts with `#!`) that cannot run: no merged interpreter, an
    /// unreadable `#!` line, … (the details say which).
    Script(String),
    /// A WebAssembly component (component-model binary), not a core module.
    WasmComponent,
    /// A core wasm module that does not export `_start` (a reactor or library).
    WasmReactor,
    /// A file starting with the wasm magic that is not a valid (or supported) module.
    InvalidWasm(String),
    /// The file (or directory) could not be read.
    Unreadable(String),
    /// A symlink whose target does not exist inside the rootfs.
    DanglingSymlink,
    /// A symlink that needs more than [`MAX_SYMLINK_HOPS`] hops to resolve (usually a loop).
    SymlinkLoop,
    /// A program larger than one module may be, or that alone exceeds an engine limit.
    TooLarge(merger::LimitExceeded),
    /// A program that imports from host modules other than WASI preview1 (`module::name`,
    /// in import order), merged only with foreign function imports stubbed.
    ForeignImports(Vec<String>),
    /// A program that uses something else the merger does not support (a proposal, a
    /// memory shape, a bad `_start`, …).
    UnsupportedFeature(merger::Unsupported),
}

impl SkipReason {
    /// The kind of reason: the manifest string's part before `:` (e.g. `"invalid-wasm"`), the
    /// key of the build summary's counts.
    pub fn kind(&self) -> &'static str {
        match self {
            SkipReason::NotRecompiledNative => "not-recompiled-native",
            SkipReason::Script(_) => "script",
            SkipReason::WasmComponent => "wasm-component",
            SkipReason::WasmReactor => "wasm-reactor",
            SkipReason::InvalidWasm(_) => "invalid-wasm",
            SkipReason::Unreadable(_) => "unreadable",
            SkipReason::DanglingSymlink => "dangling-symlink",
            SkipReason::SymlinkLoop => "symlink-loop",
            SkipReason::TooLarge(_) => "too-large",
            SkipReason::ForeignImports(_) => "foreign-imports",
            SkipReason::UnsupportedFeature(_) => "unsupported-feature",
        }
    }

    /// What follows the kind in the manifest string, if anything.
    fn details(&self) -> Option<String> {
        match self {
            SkipReason::InvalidWasm(msg)
            | SkipReason::Unreadable(msg)
            | SkipReason::Script(msg) => Some(msg.clone()),
            SkipReason::TooLarge(e) => Some(e.to_string()),
            SkipReason::ForeignImports(list) => Some(list.join(", ")),
            SkipReason::UnsupportedFeature(merger::Unsupported::Feature { feature, .. }) => {
                Some(feature.clone())
            }
            SkipReason::UnsupportedFeature(other) => Some(other.to_string()),
            _ => None,
        }
    }
}

impl From<merger::Unsupported> for SkipReason {
    /// The reason to skip a program the merger refuses.
    fn from(u: merger::Unsupported) -> Self {
        use merger::Unsupported;
        match u {
            Unsupported::Component => SkipReason::WasmComponent,
            Unsupported::NoStart => SkipReason::WasmReactor,
            Unsupported::Invalid(msg) => SkipReason::InvalidWasm(msg),
            Unsupported::ForeignImports(list) => SkipReason::ForeignImports(list),
            other => SkipReason::UnsupportedFeature(other),
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.details() {
            Some(details) => write!(f, "{}: {details}", self.kind()),
            None => f.write_str(self.kind()),
        }
    }
}

impl serde::Serialize for SkipReason {
    /// Serializes as the [`Display`](fmt::Display) string.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A fatal scan error. Problems with individual files are not errors: they end up in
/// [`Scan::skipped`] and [`Scan::warnings`].
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The rootfs directory does not exist.
    #[error("rootfs {} does not exist", .0.display())]
    RootNotFound(PathBuf),
    /// The rootfs path exists but is not a directory.
    #[error("rootfs {} is not a directory", .0.display())]
    RootNotADirectory(PathBuf),
    /// The rootfs directory itself could not be read.
    #[error("cannot read rootfs {}: {source}", .path.display())]
    Io {
        /// The host path that could not be read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A worker thread panicked (a bug); the scan result would be incomplete.
    #[error("internal error: a rootfs scan worker thread panicked")]
    WorkerPanicked,
}

/// Identity of a host file, so that hard links are read only once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum FileKey {
    #[cfg(unix)]
    Inode(u64, u64),
    #[cfg_attr(unix, allow(dead_code))]
    Path(PathBuf),
}

impl FileKey {
    fn of(meta: &std::fs::Metadata, host: &Path) -> FileKey {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let _ = host;
            FileKey::Inode(meta.dev(), meta.ino())
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            FileKey::Path(host.to_path_buf())
        }
    }
}

/// Whether any execute permission bit is set.
fn is_executable(meta: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        false
    }
}

/// One distinct host file to classify, with every rootfs path that leads to it.
struct FileEntry {
    job: hash::FileJob,
    /// Paths that are the file itself (the file or a hard link to it).
    direct: Vec<String>,
    /// Symlink paths that resolve to the file.
    aliases: Vec<String>,
}

/// What the scan has set aside so far: paths skipped with their reason, and warnings.
struct SetAside {
    skipped: BTreeMap<String, SkipReason>,
    warnings: Vec<String>,
}

/// Scans the rootfs directory `root`. See the [module documentation](self).
///
/// # Errors
///
/// Fails only if `root` is missing, not a directory, or cannot be listed (or on an internal
/// error); unreadable files below it are reported in [`Scan::skipped`] instead.
pub fn scan(root: &Path, opts: &ScanOptions) -> Result<Scan, ScanError> {
    // Refuse a rootfs that is missing or not a directory.
    check_root(root)?;
    // Walk it in sorted order, without following symlinks.
    let walked = walk::walk(root)?;
    let mut aside = SetAside {
        skipped: walked.skipped.into_iter().collect(),
        warnings: walked.warnings,
    };
    // Group every path (symlinks resolved inside the rootfs) by the host file it leads to.
    let entries = file_entries(root, walked.files, walked.symlinks, &mut aside);
    // Classify, read and hash each host file once (in parallel).
    let jobs: Vec<hash::FileJob> = entries.iter().map(|e| e.job.clone()).collect();
    let outcomes = hash::process_all(&jobs, opts.jobs)?;
    // One program per distinct content, with every path that leads to it.
    let (programs, scripts) = programs(entries, outcomes, &mut aside);
    let SetAside {
        skipped,
        mut warnings,
    } = aside;
    warnings.sort();
    warnings.dedup();
    Ok(Scan {
        programs,
        skipped,
        scripts,
        warnings,
    })
}

/// Refuses a rootfs that does not exist or is not a directory.
fn check_root(root: &Path) -> Result<(), ScanError> {
    match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(ScanError::RootNotADirectory(root.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(ScanError::RootNotFound(root.to_path_buf()))
        }
        Err(source) => Err(ScanError::Io {
            path: root.to_path_buf(),
            source,
        }),
    }
}

/// Groups the walked files and the files symlinks resolve to by host file (hard links are
/// one file); symlinks that do not resolve to a file are set aside with their reason.
fn file_entries(
    root: &Path,
    files: Vec<walk::WalkedFile>,
    symlinks: Vec<String>,
    aside: &mut SetAside,
) -> Vec<FileEntry> {
    let mut entries: Vec<FileEntry> = Vec::new();
    let mut by_key: HashMap<FileKey, usize> = HashMap::new();
    let mut entry_for = |key: FileKey, host: PathBuf, meta: &std::fs::Metadata| -> usize {
        *by_key.entry(key).or_insert_with(|| {
            entries.push(FileEntry {
                job: hash::FileJob {
                    host,
                    executable: is_executable(meta),
                },
                direct: Vec::new(),
                aliases: Vec::new(),
            });
            entries.len() - 1
        })
    };
    let mut direct_of: Vec<(usize, String)> = Vec::new();
    for file in files {
        let idx = entry_for(FileKey::of(&file.meta, &file.host), file.host, &file.meta);
        direct_of.push((idx, file.path));
    }
    let mut alias_of: Vec<(usize, String)> = Vec::new();
    for link in symlinks {
        match resolve::resolve(root, &link) {
            Ok(target) if target.meta.is_file() => {
                let idx = entry_for(
                    FileKey::of(&target.meta, &target.host),
                    target.host,
                    &target.meta,
                );
                alias_of.push((idx, link));
            }
            // Symlinks to directories (walked anyway if inside the rootfs) and to special files.
            Ok(_) => {}
            Err(e) => set_aside_link(link, e, aside),
        }
    }
    for (idx, path) in direct_of {
        entries[idx].direct.push(path);
    }
    for (idx, path) in alias_of {
        entries[idx].aliases.push(path);
    }
    entries
}

/// A symlink that does not resolve: skipped, with a warning.
fn set_aside_link(link: String, e: resolve::ResolveError, aside: &mut SetAside) {
    let (warning, reason) = match e {
        resolve::ResolveError::Dangling => (
            format!("{link}: dangling symlink"),
            SkipReason::DanglingSymlink,
        ),
        resolve::ResolveError::Loop => (
            format!("{link}: symlink loop (more than {MAX_SYMLINK_HOPS} links followed)"),
            SkipReason::SymlinkLoop,
        ),
        resolve::ResolveError::Io(msg) => (
            format!("{link}: cannot resolve symlink: {msg}"),
            SkipReason::Unreadable(msg),
        ),
    };
    aside.warnings.push(warning);
    aside.skipped.insert(link, reason);
}

/// The programs with one content, while they are collected.
struct Group {
    paths: BTreeSet<String>,
    direct: BTreeSet<String>,
    host: Option<(String, PathBuf)>,
    size: u64,
    content: Option<Content>,
}

/// One [`Program`] per distinct content (sorted by digest) from each host file's outcome,
/// and every path of each script; executables that are neither are set aside with their
/// reason.
fn programs(
    entries: Vec<FileEntry>,
    outcomes: Vec<hash::FileOutcome>,
    aside: &mut SetAside,
) -> (Vec<Program>, BTreeMap<String, ScriptFile>) {
    let mut groups: BTreeMap<[u8; 32], Group> = BTreeMap::new();
    let mut scripts = BTreeMap::new();
    for (entry, outcome) in entries.into_iter().zip(outcomes) {
        match outcome {
            hash::FileOutcome::Data => {}
            hash::FileOutcome::Script {
                digest,
                size,
                shebang,
            } => {
                for path in entry.direct.into_iter().chain(entry.aliases) {
                    match &shebang {
                        Ok(shebang) => {
                            let file = ScriptFile {
                                digest: Digest(digest),
                                size,
                                shebang: shebang.clone(),
                            };
                            scripts.insert(path, file);
                        }
                        Err(why) => {
                            aside.skipped.insert(path, SkipReason::Script(why.clone()));
                        }
                    }
                }
            }
            hash::FileOutcome::Skipped(reason) => {
                if let SkipReason::Unreadable(msg) = &reason {
                    let first = entry.direct.iter().chain(&entry.aliases).min();
                    if let Some(first) = first {
                        aside.warnings.push(format!("{first}: unreadable: {msg}"));
                    }
                }
                for path in entry.direct.into_iter().chain(entry.aliases) {
                    aside.skipped.insert(path, reason.clone());
                }
            }
            hash::FileOutcome::Program {
                digest,
                size,
                content,
            } => {
                // Identical copies: the first one read is kept, the others dropped here.
                let group = groups.entry(digest).or_insert_with(|| Group {
                    paths: BTreeSet::new(),
                    direct: BTreeSet::new(),
                    host: None,
                    size,
                    content,
                });
                // The host file of the entry with the smallest path, so the choice is
                // deterministic.
                let first = entry.direct.iter().chain(&entry.aliases).min().cloned();
                if let Some(first) = first {
                    if group.host.as_ref().is_none_or(|(p, _)| first < *p) {
                        group.host = Some((first, entry.job.host.clone()));
                    }
                }
                group.direct.extend(entry.direct.iter().cloned());
                group.paths.extend(entry.direct);
                group.paths.extend(entry.aliases);
            }
        }
    }
    let programs = groups
        .into_iter()
        .filter_map(|(digest, group)| {
            let (_, host_path) = group.host?;
            let primary_path = group
                .direct
                .first()
                .or_else(|| group.paths.first())?
                .clone();
            Some(Program {
                digest,
                paths: group.paths.into_iter().collect(),
                primary_path,
                host_path,
                size: group.size,
                content: group.content,
            })
        })
        .collect();
    (programs, scripts)
}
