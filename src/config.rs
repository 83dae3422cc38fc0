//! `megabin.toml`: build configuration found at the rootfs root or given with `--config`.
//!
//! ```toml
//! [agent_tools]
//! search_web = "/opt/tools/search_web"
//!
//! [agent_tools.render_svg]
//! path = "/usr/bin/resvg"
//! description = "Render an SVG file to PNG"
//! timeout = "10s"
//! max_memory = "256M"
//! ```

use crate::commands::run::{parse_duration, parse_size};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The parsed configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Agent tool name → its configuration.
    #[serde(default)]
    pub agent_tools: BTreeMap<String, ToolConfig>,
}

/// One agent tool: `name = "/path"`, or a table.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ToolConfig {
    /// The absolute in-rootfs path only.
    Path(String),
    /// The table form.
    Table(ToolTable),
}

/// The table form of an agent tool.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ToolTable {
    /// Absolute path inside the rootfs.
    pub path: String,
    /// What the tool does (shown to agents by `megabin serve`).
    pub description: Option<String>,
    /// Per-call time limit (`10s`, `500ms`, `2m`).
    pub timeout: Option<String>,
    /// Per-call memory cap (`256M`).
    pub max_memory: Option<String>,
    /// JSON Schema of the arguments, narrowing the default one (an object schema whose
    /// properties are among `args`, `stdin` and `files`).
    pub input_schema: Option<toml::Value>,
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

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConfigError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// The argument names `megabin serve` understands (the default input schema's properties).
pub const TOOL_ARGUMENTS: [&str; 3] = ["args", "stdin", "files"];

impl ToolConfig {
    /// Validates the entry of tool `name`.
    pub fn resolve(&self, name: &str) -> Result<Tool, String> {
        let t = match self {
            ToolConfig::Path(p) => ToolTable {
                path: p.clone(),
                description: None,
                timeout: None,
                max_memory: None,
                input_schema: None,
            },
            ToolConfig::Table(t) => t.clone(),
        };
        if name.is_empty() || !t.path.starts_with('/') {
            return Err(format!(
                "agent tool `{name}`: the path must be absolute inside the rootfs, got `{}`",
                t.path
            ));
        }
        let timeout_ms = t
            .timeout
            .as_deref()
            .map(|s| parse_duration(s).map(|d| d.as_millis() as u64))
            .transpose()
            .map_err(|e| format!("agent tool `{name}`: timeout {e}"))?;
        if timeout_ms == Some(0) {
            return Err(format!("agent tool `{name}`: timeout must be positive"));
        }
        let max_memory = t
            .max_memory
            .as_deref()
            .map(|s| parse_size(s).map(|n| n as u64))
            .transpose()
            .map_err(|e| format!("agent tool `{name}`: max_memory {e}"))?;
        let input_schema = t.input_schema.map(|v| check_schema(name, v)).transpose()?;
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
fn check_schema(name: &str, v: toml::Value) -> Result<serde_json::Value, String> {
    let json =
        serde_json::to_value(&v).map_err(|e| format!("agent tool `{name}`: input_schema: {e}"))?;
    let bad = |why: &str| format!("agent tool `{name}`: input_schema {why}");
    if json.get("type").and_then(|t| t.as_str()) != Some("object") {
        return Err(bad("must have type = \"object\""));
    }
    if let Some(props) = json.get("properties") {
        let props = props
            .as_object()
            .ok_or_else(|| bad("properties must be a table"))?;
        if let Some(k) = props.keys().find(|k| !TOOL_ARGUMENTS.contains(&k.as_str())) {
            return Err(bad(&format!(
                "property `{k}` is not one of args, stdin, files"
            )));
        }
    }
    Ok(json)
}

impl Config {
    /// Loads `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let err = |reason: String| ConfigError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let config: Config = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        for (name, tool) in &config.agent_tools {
            tool.resolve(name).map_err(err)?;
        }
        Ok(config)
    }

    /// The validated agent tools.
    pub fn tools(&self) -> BTreeMap<String, Tool> {
        self.agent_tools
            .iter()
            .filter_map(|(n, t)| t.resolve(n).ok().map(|t| (n.clone(), t)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<BTreeMap<String, Tool>, String> {
        let c: Config = toml::from_str(s).map_err(|e| e.to_string())?;
        c.agent_tools
            .iter()
            .map(|(n, t)| t.resolve(n).map(|t| (n.clone(), t)))
            .collect()
    }

    #[test]
    fn plain_and_table_forms() {
        let t = parse(
            "[agent_tools]\nplain = \"/bin/a\"\n[agent_tools.full]\npath = \"/bin/b\"\n\
             description = \"B\"\ntimeout = \"10s\"\nmax_memory = \"256M\"\n\
             input_schema = { type = \"object\", properties = { stdin = { type = \"string\" } } }\n",
        )
        .unwrap();
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
        let e = parse("[agent_tools.x]\npath = \"/a\"\ntimeout = \"soon\"\n").unwrap_err();
        assert!(e.contains("timeout"), "{e}");
        let e = parse("[agent_tools.x]\npath = \"/a\"\nmax_memory = \"9Q\"\n").unwrap_err();
        assert!(e.contains("max_memory"), "{e}");
        let e = parse("[agent_tools.x]\npath = \"a\"\n").unwrap_err();
        assert!(e.contains("absolute"), "{e}");
        let e = parse("[agent_tools.x]\npath = \"/a\"\nbogus = 1\n").unwrap_err();
        assert!(e.contains("agent_tools"), "{e}");
        let e = parse(
            "[agent_tools.x]\npath = \"/a\"\ninput_schema = { type = \"object\", properties = { env = {} } }\n",
        )
        .unwrap_err();
        assert!(e.contains("env"), "{e}");
    }
}
