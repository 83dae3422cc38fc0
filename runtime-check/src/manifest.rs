//! `manifest.json`: what the build produced and what the runner trusts.
//!
//! Schema: `docs/manifest.md` and `docs/manifest.schema.json`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The manifest format tag.
pub const FORMAT: &str = "megabin/1";

/// The manifest of one build.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// sha256 over the megabinaries' digests, the binaries map, the agent tools and the AOT
    /// artifacts (see [`container_id`]).
    pub container_id: String,
    /// The first megabinary's file name.
    pub megabinary: String,
    /// Every megabinary file name → its `sha256:` digest.
    pub megabinaries: BTreeMap<String, String>,
    /// Absolute rootfs path → program.
    pub binaries: BTreeMap<String, Binary>,
    /// Agent tool name → program digest.
    pub agent_tools: BTreeMap<String, String>,
    /// Absolute rootfs path → why it is not in the megabinary.
    pub skipped: BTreeMap<String, String>,
    /// Ahead-of-time compiled artifacts, when built with `--aot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aot: Option<Aot>,
    /// The build options that shape the output, so `megabin verify --rootfs` can rebuild the
    /// megabinaries from the rootfs and compare. Absent in manifests of older builds. Not
    /// covered by `container_id`: altering it can only make that rebuild differ, never make
    /// code that is not from the rootfs match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildInfo>,
}

/// The options a build was made with (see [`Manifest::build`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BuildInfo {
    /// Cap on a megabinary's estimated size in bytes (`--max-shard-size`).
    pub max_shard_bytes: u64,
    /// The configuration's agent tools: name → absolute rootfs path (from `megabin.toml` or
    /// `--config`).
    pub agent_tools: BTreeMap<String, String>,
    /// Whether foreign imports were stubbed (`--stub-foreign-imports` or the configuration).
    #[serde(default)]
    pub stub_foreign_imports: bool,
}

/// Precompiled (native) artifacts of the megabinaries.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Aot {
    /// The engine the artifacts were compiled for (Wasmtime version and configuration); a
    /// runner with another engine id must not load them.
    pub engine: String,
    /// Artifact file name (`container.cwasm`) → its `sha256:` digest.
    pub artifacts: BTreeMap<String, String>,
}

/// One path that maps to a program.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Binary {
    /// `sha256:<hex>` of the file content.
    pub hash: String,
    /// Export that starts it, `<name>_start`.
    pub entry_point: String,
    /// File name of the megabinary that holds it.
    pub megabinary: String,
    /// File size in bytes.
    pub size: u64,
    /// Foreign function imports (`module::name`) that were replaced by stubs trapping when
    /// called (`megabin build --stub-foreign-imports`); absent when there are none. Part of the
    /// container id like every other field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stubbed_imports: Vec<String>,
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_string(digest: &[u8; 32]) -> String {
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Parses `sha256:<64 hex>` (hex digits in either case) into bytes.
pub fn parse_digest(s: &str) -> Option<[u8; 32]> {
    let hex = s.strip_prefix("sha256:")?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// sha256 of `bytes` as `sha256:<hex>`.
pub fn sha256_string(bytes: &[u8]) -> String {
    digest_string(&Sha256::digest(bytes).into())
}

/// The container id: sha256 of the compact JSON array
/// `[format, megabinaries, binaries, agent_tools, aot]` (maps with sorted keys, struct fields
/// in declaration order, `aot` null when absent), so a change to any megabinary, artifact,
/// path, hash, entry point or agent tool changes it.
pub fn container_id(
    megabinaries: &BTreeMap<String, String>,
    binaries: &BTreeMap<String, Binary>,
    agent_tools: &BTreeMap<String, String>,
    aot: Option<&Aot>,
) -> String {
    let canonical = serde_json::to_vec(&(FORMAT, megabinaries, binaries, agent_tools, aot))
        .expect("maps serialize");
    sha256_string(&canonical)
}

impl Manifest {
    /// Whether `container_id` matches the contents.
    pub fn id_is_consistent(&self) -> bool {
        self.container_id
            == container_id(
                &self.megabinaries,
                &self.binaries,
                &self.agent_tools,
                self.aot.as_ref(),
            )
    }

    /// Pretty JSON with a trailing newline (the on-disk form).
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("manifest serializes");
        v.push(b'\n');
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_id_covers_every_trusted_field() {
        let mut m = BTreeMap::new();
        m.insert("container.wasm".to_string(), sha256_string(b"a"));
        let mut b = BTreeMap::new();
        b.insert(
            "/bin/x".to_string(),
            Binary {
                hash: sha256_string(b"x"),
                entry_point: "x_start".into(),
                megabinary: "container.wasm".into(),
                size: 1,
                stubbed_imports: Vec::new(),
            },
        );
        let tools = BTreeMap::new();
        let id = container_id(&m, &b, &tools, None);
        let mut m2 = m.clone();
        m2.insert("container.wasm".into(), sha256_string(b"b"));
        assert_ne!(id, container_id(&m2, &b, &tools, None));
        let mut b2 = b.clone();
        b2.get_mut("/bin/x").unwrap().entry_point = "y_start".into();
        assert_ne!(id, container_id(&m, &b2, &tools, None));
        let mut b3 = b.clone();
        b3.get_mut("/bin/x").unwrap().stubbed_imports = vec!["env::host_call".into()];
        assert_ne!(id, container_id(&m, &b3, &tools, None));
        let mut t2 = tools.clone();
        t2.insert("tool".into(), sha256_string(b"x"));
        assert_ne!(id, container_id(&m, &b, &t2, None));
        let aot = Aot {
            engine: "e".into(),
            artifacts: [("container.cwasm".to_string(), sha256_string(b"n"))].into(),
        };
        assert_ne!(id, container_id(&m, &b, &tools, Some(&aot)));
        assert_eq!(
            parse_digest(&sha256_string(b"x")).map(|d| digest_string(&d)),
            Some(sha256_string(b"x"))
        );
        assert!(parse_digest("sha256:zz").is_none());
    }
}
