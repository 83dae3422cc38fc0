//! `megabin.toml`: build configuration found at the rootfs root or given with `--config`.
//!
//! ```toml
//! stub_foreign_imports = true   # as `megabin build --stub-foreign-imports`
//!
//! [agent_tools]
//! search_web = "/opt/tools/search_web"
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The parsed configuration.
#[derive(Clone, Debug, Default, Deserialize)]
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
    /// What is wrong.
    pub reason: String,
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
            if name.is_empty() || !tool.starts_with('/') {
                return Err(err(format!(
                    "agent tool `{name}`: the path must be absolute inside the rootfs, got `{tool}`"
                )));
            }
        }
        Ok(config)
    }
}
