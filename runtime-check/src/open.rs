//! Opening files the runner reads, without the classic traps: a final symlink is never
//! followed, a FIFO or device never blocks the open, and what was opened is checked with
//! `fstat` (on the open descriptor, not the path) to be a regular file or a directory.
//!
//! Also the ownership rule of `docs/security.md` (OpenSSH's StrictModes): a file is
//! *private* when only the invoking user or root can change it.

use rustix::fs::{Mode, OFlags};
use std::fs::{File, Metadata};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Flags of every open: read-only, no final symlink, no blocking on FIFOs/devices, no
/// controlling terminal, closed on exec.
fn read_flags() -> OFlags {
    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC
}

/// What kind of file was found where a regular file was expected (for messages).
pub fn kind_of(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "a regular file"
    }
}

/// An open regular file and its `fstat`.
#[derive(Debug)]
pub struct Opened {
    /// The open file (read-only, `O_NONBLOCK` cleared is not needed for regular files).
    pub file: File,
    /// `fstat` of [`Opened::file`].
    pub meta: Metadata,
}

/// Why a file could not be opened as a regular file.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// It does not exist.
    #[error("does not exist")]
    Missing,
    /// The final component is a symbolic link (never followed).
    #[error("is a symbolic link (not followed)")]
    Symlink,
    /// It is not a regular file.
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    /// Any other I/O error.
    #[error("{0}")]
    Io(std::io::Error),
}

fn io_error(e: rustix::io::Errno) -> OpenError {
    match e {
        rustix::io::Errno::NOENT => OpenError::Missing,
        // O_NOFOLLOW on a final symlink.
        rustix::io::Errno::LOOP => OpenError::Symlink,
        e => OpenError::Io(e.into()),
    }
}

fn checked_regular(fd: std::os::fd::OwnedFd) -> Result<Opened, OpenError> {
    let file = File::from(fd);
    let meta = file.metadata().map_err(OpenError::Io)?;
    if !meta.is_file() {
        return Err(OpenError::NotRegular(kind_of(&meta)));
    }
    Ok(Opened { file, meta })
}

/// Opens `path` as a regular file (final symlink not followed, never blocking).
pub fn open_regular(path: &Path) -> Result<Opened, OpenError> {
    let fd = rustix::fs::open(path, read_flags(), Mode::empty()).map_err(io_error)?;
    checked_regular(fd)
}

/// Opens `name` inside the directory `dir` as a regular file, like [`open_regular`].
pub fn open_regular_at(dir: BorrowedFd<'_>, name: &str) -> Result<Opened, OpenError> {
    let fd = rustix::fs::openat(dir, name, read_flags(), Mode::empty()).map_err(io_error)?;
    checked_regular(fd)
}

/// Opens `path` as a directory (final symlink followed: the caller names the directory it
/// means; what it resolves to is then checked through the descriptor).
pub fn open_dir(path: &Path) -> Result<(File, Metadata), OpenError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| match e {
        rustix::io::Errno::NOTDIR => OpenError::NotRegular("not a directory"),
        e => io_error(e),
    })?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(OpenError::Io)?;
    Ok((file, meta))
}

/// Why a file or directory is not private, or `None` when it is: owned by the invoking
/// user (effective uid) or root, and not writable by group or others.
pub fn not_private(meta: &Metadata) -> Option<String> {
    let me = rustix::process::geteuid().as_raw();
    let mode = meta.permissions().mode() & 0o7777;
    if meta.uid() != me && meta.uid() != 0 {
        return Some(format!(
            "is owned by uid {}, not by you (uid {me}) or root",
            meta.uid()
        ));
    }
    if mode & 0o022 != 0 {
        let who = match mode & 0o022 {
            0o020 => "group",
            0o002 => "others",
            _ => "group and others",
        };
        return Some(format!("is writable by {who} (mode {mode:04o})"));
    }
    None
}

/// Reads a whole open file (for files that are not private: never mapped, hashed and used
/// from this one copy).
pub fn read_all(file: &File, size_hint: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(size_hint.min(1 << 32) as usize);
    (&*file).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn refuses_symlinks_fifos_and_directories_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f"), b"x").unwrap();
        std::os::unix::fs::symlink("f", d.path().join("link")).unwrap();
        rustix::fs::mkfifoat(rustix::fs::CWD, d.path().join("fifo"), Mode::from(0o600)).unwrap();
        assert!(open_regular(&d.path().join("f")).is_ok());
        assert!(matches!(
            open_regular(&d.path().join("link")),
            Err(OpenError::Symlink)
        ));
        assert!(matches!(
            open_regular(&d.path().join("fifo")),
            Err(OpenError::NotRegular("a FIFO"))
        ));
        assert!(matches!(
            open_regular(d.path()),
            Err(OpenError::NotRegular("a directory"))
        ));
        assert!(matches!(
            open_regular(&d.path().join("nope")),
            Err(OpenError::Missing)
        ));
        let (dir, _) = open_dir(d.path()).unwrap();
        assert!(open_regular_at(dir.as_fd(), "f").is_ok());
        assert!(matches!(
            open_regular_at(dir.as_fd(), "link"),
            Err(OpenError::Symlink)
        ));
    }

    #[test]
    fn private_means_owner_and_no_group_or_other_write() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(not_private(&std::fs::metadata(&f).unwrap()), None);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o664)).unwrap();
        let why = not_private(&std::fs::metadata(&f).unwrap()).unwrap();
        assert!(why.contains("writable by group"), "{why}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        let why = not_private(&std::fs::metadata(&f).unwrap()).unwrap();
        assert!(why.contains("group and others"), "{why}");
    }
}
