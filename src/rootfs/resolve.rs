//! Symlink resolution confined to the rootfs, like path lookup after `chroot(root)`.
//!
//! Absolute symlink targets are relative to the rootfs root, `..` never climbs above the root,
//! intermediate symlinked directories are resolved the same way, and at most
//! [`MAX_SYMLINK_HOPS`] symlinks are followed.

use std::ffi::{OsStr, OsString};
use std::fs::{self, Metadata};
use std::io;
use std::path::{Component, Path, PathBuf};

use super::MAX_SYMLINK_HOPS;

/// The final, non-symlink file a path resolves to.
#[derive(Debug)]
pub struct Target {
    /// Host path of the file (under the rootfs root, free of symlinks below the root).
    pub host: PathBuf,
    /// Its metadata (it is not a symlink).
    pub meta: Metadata,
}

/// Why a path could not be resolved.
#[derive(Debug, PartialEq, Eq)]
pub enum ResolveError {
    /// Some component does not exist, or a non-directory is used as a directory.
    Dangling,
    /// More than [`MAX_SYMLINK_HOPS`] symlinks were followed.
    Loop,
    /// Another I/O error (message).
    Io(String),
}

/// Resolves the in-rootfs path `path` (e.g. `/usr/bin/ls`, which may itself be a symlink) to
/// the file it designates inside `root`, following every symlink.
pub fn resolve(root: &Path, path: &str) -> Result<Target, ResolveError> {
    // Components still to process, in reverse order (next one at the end).
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&mut pending, Path::new(path));
    // Resolved components: each one is a real (non-symlink) directory, except possibly the last.
    let mut current: Vec<OsString> = Vec::new();
    let mut last_meta: Option<Metadata> = None;
    let mut hops = 0usize;

    while let Some(component) = pending.pop() {
        if component == ".." {
            current.pop();
            last_meta = None;
            continue;
        }
        let mut candidate = host_path(root, &current);
        candidate.push(&component);
        let meta = match fs::symlink_metadata(&candidate) {
            Ok(meta) => meta,
            Err(e) => return Err(classify_io_error(&e)),
        };
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > MAX_SYMLINK_HOPS {
                return Err(ResolveError::Loop);
            }
            let target = fs::read_link(&candidate).map_err(|e| classify_io_error(&e))?;
            if target.as_os_str().is_empty() {
                return Err(ResolveError::Dangling);
            }
            if target.has_root() {
                current.clear();
                last_meta = None;
            }
            push_components(&mut pending, &target);
            continue;
        }
        if !meta.is_dir() && !pending.is_empty() {
            // "file/..." : ENOTDIR.
            return Err(ResolveError::Dangling);
        }
        current.push(component);
        last_meta = Some(meta);
    }

    let host = host_path(root, &current);
    let meta = match last_meta {
        Some(meta) => meta,
        // Resolved to the root itself, or after a trailing "..": a directory.
        None => fs::metadata(&host).map_err(|e| classify_io_error(&e))?,
    };
    Ok(Target { host, meta })
}

/// Pushes the components of `path` onto the reversed stack `pending`, dropping the root and
/// `.` components.
fn push_components(pending: &mut Vec<OsString>, path: &Path) {
    let parts: Vec<&OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name),
            Component::ParentDir => Some(OsStr::new("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    pending.extend(parts.into_iter().rev().map(OsStr::to_os_string));
}

fn host_path(root: &Path, components: &[OsString]) -> PathBuf {
    let mut host = root.to_path_buf();
    host.extend(components);
    host
}

fn classify_io_error(e: &io::Error) -> ResolveError {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => ResolveError::Dangling,
        _ => ResolveError::Io(e.to_string()),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("bin/real"), b"x").unwrap();
        dir
    }

    /// Creates each `(target, link)` symlink, `link` relative to `root`.
    fn links(root: &Path, links: &[(&str, &str)]) {
        for (target, link) in links {
            symlink(target, root.join(link)).unwrap();
        }
    }

    fn resolved(root: &Path, path: &str) -> Result<PathBuf, ResolveError> {
        resolve(root, path).map(|t| t.host.strip_prefix(root).unwrap().to_path_buf())
    }

    #[test]
    fn plain_file_resolves_to_itself() {
        let dir = setup();
        assert_eq!(resolved(dir.path(), "/bin/real"), Ok("bin/real".into()));
    }

    /// Relative and absolute targets, chains, and `..` clamped at the root as a kernel does
    /// under `chroot`: every link reaches `/bin/real`.
    #[test]
    fn links_resolve_inside_the_root() {
        let dir = setup();
        let root = dir.path();
        let cases = [
            ("real", "bin/rel"),
            ("/bin/real", "bin/abs"),
            ("../../bin/rel", "usr/lib/chain"),
            ("../../../../../../bin/real", "usr/lib/up"),
            ("/../../etc/../bin/real", "bin/abs_up"),
        ];
        links(root, &cases);
        for (_, link) in cases {
            assert_eq!(
                resolved(root, &format!("/{link}")),
                Ok("bin/real".into()),
                "{link}"
            );
        }
        // Like the kernel, `missing/..` does not exist.
        symlink("/nope/../bin/real", root.join("bin/missing_up")).unwrap();
        assert_eq!(
            resolved(root, "/bin/missing_up"),
            Err(ResolveError::Dangling)
        );
    }

    #[test]
    fn symlinked_directories_in_the_middle() {
        let dir = setup();
        let root = dir.path();
        links(root, &[("/bin", "sbin"), ("../sbin/real", "usr/x")]);
        assert_eq!(resolved(root, "/usr/x"), Ok("bin/real".into()));
        let target = resolve(root, "/sbin").unwrap();
        assert!(target.meta.is_dir());
    }

    #[test]
    fn to_root_is_a_directory() {
        let dir = setup();
        let root = dir.path();
        links(root, &[("/", "bin/rootlink"), ("..", "bin/parent")]);
        assert!(resolve(root, "/bin/rootlink").unwrap().meta.is_dir());
        assert!(resolve(root, "/bin/parent").unwrap().meta.is_dir());
    }

    #[test]
    fn dangling_and_loops() {
        let dir = setup();
        let root = dir.path();
        links(
            root,
            &[
                ("/nope", "bin/dangling"),
                ("real/x", "bin/through_file"),
                ("b", "bin/a"),
                ("a", "bin/b"),
                ("self", "bin/self"),
            ],
        );
        assert_eq!(resolved(root, "/bin/dangling"), Err(ResolveError::Dangling));
        assert_eq!(
            resolved(root, "/bin/through_file"),
            Err(ResolveError::Dangling)
        );
        assert_eq!(resolved(root, "/bin/a"), Err(ResolveError::Loop));
        assert_eq!(resolved(root, "/bin/self"), Err(ResolveError::Loop));
    }

    #[test]
    fn host_absolute_target_is_not_followed_outside() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("root");
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::write(outer.path().join("decoy"), b"outside").unwrap();
        symlink(outer.path().join("decoy"), root.join("bin/escape")).unwrap();
        symlink("../../decoy", root.join("bin/escape2")).unwrap();
        assert_eq!(resolved(&root, "/bin/escape"), Err(ResolveError::Dangling));
        assert_eq!(resolved(&root, "/bin/escape2"), Err(ResolveError::Dangling));
    }

    #[test]
    fn long_chain_under_limit_resolves() {
        let dir = setup();
        let root = dir.path();
        let mut prev = "real".to_string();
        for i in 0..MAX_SYMLINK_HOPS {
            let name = format!("l{i}");
            symlink(&prev, root.join("bin").join(&name)).unwrap();
            prev = name;
        }
        let last = format!("/bin/{prev}");
        assert_eq!(resolved(root, &last), Ok("bin/real".into()));
        symlink(&prev, root.join("bin/too_long")).unwrap();
        assert_eq!(resolved(root, "/bin/too_long"), Err(ResolveError::Loop));
    }
}
