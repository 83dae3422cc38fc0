//! `megabin.toml`: build configuration found at the rootfs root or given with `--config`.
//!
//! ```toml
//! stub_foreign_imports = true   # as `megabin build --stub-foreign-imports`
//!
//! [agent_tools]
//! search_web = "/opt/tools/search_web"
//!
//! [agent_tools.render_svg]
//! path = "/usr/bin/resvg"
//! description = "Render an SVG file to PNG"
//! timeout = "10s"
//! max_memory = "256M"
//! ```
//!
//! The rootfs's `megabin.toml` is looked up inside the rootfs like every other path (symlinks
//! resolved as after `chroot`, see [`crate::rootfs::resolve`]): a symlink to `/etc/passwd`
//! means `<rootfs>/etc/passwd`, never the host's. Either file must be a regular file of at most
//! [`MAX_CONFIG_BYTES`]; it is opened without blocking (a FIFO is refused at once), and no error
//! message ever quotes what was read from it (errors give a line and column instead).

use crate::commands::args::{parse_duration, parse_size};
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
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Agent tool name → its configuration.
    #[serde(default)]
    pub agent_tools: BTreeMap<String, ToolConfig>,
    /// Merge programs importing non-WASI host functions, each such import stubbed by a
    /// function that traps when called (as `--stub-foreign-imports`).
    #[serde(default)]
    pub stub_foreign_imports: bool,
}

/// One agent tool: `name = "/path"`, or a table.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum ToolConfig {
    /// The absolute in-rootfs path only.
    Path(String),
    /// The table form.
    Table(ToolTable),
}

/// The table form of an agent tool.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ToolTable {
    /// Absolute path inside the rootfs.
    pub path: String,
    /// What the tool does (shown to agents by `megabin serve`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Per-call time limit (`10s`, `500ms`, `2m`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Per-call memory cap (`256M`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<String>,
    /// JSON Schema of the arguments, narrowing the default one (an object schema whose
    /// properties are among `args`, `stdin` and `files`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<serde_json::Value>,
}

/// An agent tool after validation.
#[derive(Clone, Debug, PartialEq)]
pub struct Tool {
    /// Absolute path inside the rootfs.
    pub path: String,
    /// Description.
    pub description: Option<String>,
    /// Time limit in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Memory cap in bytes.
    pub max_memory: Option<u64>,
    /// Argument schema.
    pub input_schema: Option<serde_json::Value>,
}

/// The argument names `megabin serve` understands (the default input schema's properties).
pub const TOOL_ARGUMENTS: [&str; 3] = ["args", "stdin", "files"];

impl ToolConfig {
    /// Validates the entry. Errors never quote the configuration's text.
    pub fn resolve(&self) -> Result<Tool, String> {
        let t = match self {
            ToolConfig::Path(p) => ToolTable {
                path: p.clone(),
                ..ToolTable::default()
            },
            ToolConfig::Table(t) => t.clone(),
        };
        if !t.path.starts_with('/') {
            return Err("the path must be absolute inside the rootfs".into());
        }
        let timeout_ms = match t.timeout.as_deref().map(parse_duration) {
            None => None,
            Some(Ok(d)) if !d.is_zero() => Some(d.as_millis() as u64),
            Some(_) => {
                return Err("timeout must be a positive duration such as 500ms, 10s, 2m".into())
            }
        };
        let max_memory = match t.max_memory.as_deref().map(parse_size) {
            None => None,
            Some(Ok(n)) => Some(n as u64),
            Some(Err(_)) => return Err("max_memory must be a size such as 64K, 256M, 1.5G".into()),
        };
        let input_schema = t.input_schema.map(check_schema).transpose()?;
        Ok(Tool {
            path: t.path,
            description: t.description,
            timeout_ms,
            max_memory,
            input_schema,
        })
    }
}

/// An input schema must describe an object whose properties are among [`TOOL_ARGUMENTS`].
fn check_schema(json: serde_json::Value) -> Result<serde_json::Value, String> {
    let bad = |why: &str| format!("input_schema {why}");
    if json.get("type").and_then(|t| t.as_str()) != Some("object") {
        return Err(bad("must have type = \"object\""));
    }
    if let Some(props) = json.get("properties") {
        let props = props
            .as_object()
            .ok_or_else(|| bad("properties must be a table"))?;
        if props.keys().any(|k| !TOOL_ARGUMENTS.contains(&k.as_str())) {
            return Err(bad("properties must be among args, stdin, files"));
        }
    }
    Ok(json)
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
            "expected `stub_foreign_imports` and an [agent_tools] table of `name = \"/path\"` \
             or tables with path, description, timeout, max_memory and input_schema"
                .to_string()
        })?;
        for (i, (name, tool)) in config.agent_tools.iter().enumerate() {
            let checked = match name.is_empty() {
                true => Err("the name must be non-empty".into()),
                false => tool.resolve().map(drop),
            };
            if let Err(why) = checked {
                return Err(format!("agent tool #{} (in name order): {why}", i + 1));
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

impl Config {
    /// The validated agent tools (the configuration was checked when parsed).
    pub fn tools(&self) -> BTreeMap<String, Tool> {
        self.agent_tools
            .iter()
            .filter_map(|(n, t)| t.resolve().ok().map(|t| (n.clone(), t)))
            .collect()
    }
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
        assert_eq!(ok.tools()["t"].path, "/bin/t");
    }

    #[test]
    fn plain_and_table_forms() {
        let t = Config::parse(
            "[agent_tools]\nplain = \"/bin/a\"\n[agent_tools.full]\npath = \"/bin/b\"\n\
             description = \"B\"\ntimeout = \"10s\"\nmax_memory = \"256M\"\n\
             input_schema = { type = \"object\", properties = { stdin = { type = \"string\" } } }\n",
        )
        .unwrap()
        .tools();
        assert_eq!(t["plain"].path, "/bin/a");
        assert_eq!(t["plain"].timeout_ms, None);
        assert_eq!(t["full"].description.as_deref(), Some("B"));
        assert_eq!(t["full"].timeout_ms, Some(10_000));
        assert_eq!(t["full"].max_memory, Some(256 << 20));
        assert_eq!(
            t["full"].input_schema.as_ref().unwrap()["properties"]["stdin"]["type"],
            "string"
        );
    }

    #[test]
    fn bad_tables_are_refused_with_the_reason() {
        let parse = Config::parse;
        let e = parse("[agent_tools.x]\npath = \"/a\"\ntimeout = \"soon\"\n").unwrap_err();
        assert!(e.contains("timeout") && !e.contains("soon"), "{e}");
        let e = parse("[agent_tools.x]\npath = \"/a\"\nmax_memory = \"9Q\"\n").unwrap_err();
        assert!(e.contains("max_memory") && !e.contains("9Q"), "{e}");
        let e = parse("[agent_tools.x]\npath = \"a\"\n").unwrap_err();
        assert!(e.contains("absolute"), "{e}");
        let e = parse("[agent_tools.x]\npath = \"/a\"\nbogus = 1\n").unwrap_err();
        assert!(e.contains("agent_tools") && !e.contains("bogus"), "{e}");
        let e = parse(
            "[agent_tools.x]\npath = \"/a\"\ninput_schema = { type = \"object\", properties = { env = {} } }\n",
        )
        .unwrap_err();
        assert!(e.contains("input_schema"), "{e}");
    }
}
