//! `megabin.toml`: build configuration found at the rootfs root or given with `--config`.
//!
//! ```toml
//! stub_foreign_imports = true   # as `megabin build --stub-foreign-imports`
//!
//! [agent_tools]
//! search_web = "/opt/tools/search_web"
//! ```
//!
//! The rootfs's `megabin.toml` is looked up inside the rootfs like every other path (symlinks
//! resolved as after `chroot`, see [`crate::rootfs::resolve`]): a symlink to `/etc/passwd`
//! means `<rootfs>/etc/passwd`, never the host's. Either file must be a regular file of at most
//! [`MAX_CONFIG_BYTES`]; it is opened without blocking (a FIFO is refused at once), and no error
//! message ever quotes what was read from it (errors give a line and column instead).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Largest configuration file accepted.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Name of the configuration file looked up at the rootfs root.
pub const CONFIG_FILE: &str = "megabin.toml";

/// The parsed configuration.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Agent tool name → absolute path inside the rootfs.
    #[serde(default)]
    pub agent_tools: BTreeMap<String, String>,
    /// Merge programs importing non-WASI host functions, each such import stubbed by a
    /// function that traps when called (as `--stub-foreign-imports`).
    #[serde(default)]
    pub stub_foreign_imports: bool,
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConfigError {
    /// The file.
    pub path: String,
    /// What is wrong (never content read from the file).
    pub reason: String,
}

impl Config {
    /// Loads the host file `path` (`--config`, chosen by the user: symlinks are followed).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let name = path.display().to_string();
        let file = open_nonblocking(path, false).map_err(|e| ConfigError {
            path: name.clone(),
            reason: e.to_string(),
        })?;
        Self::read_from(file, &name)
    }

    /// Loads `<rootfs>/megabin.toml`, resolved inside the rootfs; `None` when there is no such
    /// path. Anything there that is not a readable regular file (a directory, a dangling
    /// symlink, a FIFO) is an error, not silently no configuration.
    pub fn load_from_rootfs(rootfs: &Path) -> Result<Option<Self>, ConfigError> {
        let host = rootfs.join(CONFIG_FILE);
        if host.symlink_metadata().is_err() {
            return Ok(None);
        }
        let name = host.display().to_string();
        let err = |reason: String| ConfigError {
            path: name.clone(),
            reason,
        };
        let target = crate::rootfs::resolve(rootfs, &format!("/{CONFIG_FILE}")).map_err(|e| {
            err(match e {
                crate::rootfs::ResolveError::Dangling => {
                    "dangling symlink (resolved inside the rootfs)".into()
                }
                crate::rootfs::ResolveError::Loop => "symlink loop".into(),
                crate::rootfs::ResolveError::Io(m) => m,
            })
        })?;
        if !target.meta.is_file() {
            return Err(err(not_regular(&target.meta)));
        }
        // The resolved path has no symlink below the rootfs; refuse one planted since.
        let file = open_nonblocking(&target.host, true).map_err(|e| err(e.to_string()))?;
        Self::read_from(file, &name).map(Some)
    }

    /// Checks the opened file (regular, bounded), reads and parses it.
    fn read_from(file: File, name: &str) -> Result<Self, ConfigError> {
        let err = |reason: String| ConfigError {
            path: name.to_string(),
            reason,
        };
        let meta = file.metadata().map_err(|e| err(e.to_string()))?;
        if !meta.is_file() {
            return Err(err(not_regular(&meta)));
        }
        let too_large = || err(format!("larger than {MAX_CONFIG_BYTES} bytes"));
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| err(e.to_string()))?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(too_large());
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            let (line, col) = line_col(&e.as_bytes()[..e.utf8_error().valid_up_to()]);
            err(format!("not UTF-8 text (line {line}, column {col})"))
        })?;
        Self::parse(&text).map_err(err)
    }

    /// Parses and checks configuration text. Errors locate the problem by line and column and
    /// never quote the text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let at = |span: Option<std::ops::Range<usize>>| match span {
            Some(r) => {
                let (line, col) = line_col(&text.as_bytes()[..r.start.min(text.len())]);
                format!(" at line {line}, column {col}")
            }
            None => String::new(),
        };
        let value: toml::Table =
            toml::from_str(text).map_err(|e| format!("not valid TOML{}", at(e.span())))?;
        let config: Config = Config::deserialize(value).map_err(|_| {
            "expected only an [agent_tools] table of `name = \"/absolute/path\"` strings"
                .to_string()
        })?;
        for (i, (name, tool)) in config.agent_tools.iter().enumerate() {
            if name.is_empty() || !tool.starts_with('/') {
                return Err(format!(
                    "agent tool #{} (in name order): the name must be non-empty and the path \
                     absolute inside the rootfs",
                    i + 1
                ));
            }
        }
        Ok(config)
    }
}

/// What a non-regular file is, for messages.
fn not_regular(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    let what = if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    };
    format!("is {what}, not a regular file")
}

/// Opens `path` read-only without blocking (a FIFO with no writer does not hang), and without
/// following a final symlink when `no_follow`.
fn open_nonblocking(path: &Path, no_follow: bool) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    if no_follow {
        flags |= libc::O_NOFOLLOW;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
}

/// 1-based line and column after `prefix`.
fn line_col(prefix: &[u8]) -> (usize, usize) {
    let line = prefix.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = prefix.len()
        - prefix
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_locate_without_quoting() {
        let e = Config::parse("[agent_tools]\nx = \"/a\"\nSECRET-LINE here\n").unwrap_err();
        assert!(e.contains("line 3") && !e.contains("SECRET"), "{e}");
        let e = Config::parse("secret_key = 1\n").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
        let e = Config::parse("[agent_tools]\nsecret_name = \"relative\"\n").unwrap_err();
        assert!(!e.contains("secret") && !e.contains("relative"), "{e}");
        let ok = Config::parse("[agent_tools]\nt = \"/bin/t\"\n").unwrap();
        assert_eq!(ok.agent_tools["t"], "/bin/t");
    }
}
