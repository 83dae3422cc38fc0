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
    /// sha256 over the megabinaries' digests and the binaries map (see [`container_id`]).
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
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_string(digest: &[u8; 32]) -> String {
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Parses `sha256:<64 hex>` into bytes.
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

/// The container id: sha256 of the canonical (compact, key-sorted) JSON of
/// `[format, megabinaries, binaries]`, so a change to any megabinary or any path, hash or
/// entry point changes it.
pub fn container_id(
    megabinaries: &BTreeMap<String, String>,
    binaries: &BTreeMap<String, Binary>,
) -> String {
    let canonical = serde_json::to_vec(&(FORMAT, megabinaries, binaries)).expect("maps serialize");
    sha256_string(&canonical)
}

impl Manifest {
    /// Whether `container_id` matches the contents.
    pub fn id_is_consistent(&self) -> bool {
        self.container_id == container_id(&self.megabinaries, &self.binaries)
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
    fn container_id_covers_megabinaries_and_binaries() {
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
            },
        );
        let id = container_id(&m, &b);
        let mut m2 = m.clone();
        m2.insert("container.wasm".into(), sha256_string(b"b"));
        assert_ne!(id, container_id(&m2, &b));
        let mut b2 = b.clone();
        b2.get_mut("/bin/x").unwrap().entry_point = "y_start".into();
        assert_ne!(id, container_id(&m, &b2));
        assert_eq!(
            parse_digest(&sha256_string(b"x")).map(|d| digest_string(&d)),
            Some(sha256_string(b"x"))
        );
        assert!(parse_digest("sha256:zz").is_none());
    }
}
