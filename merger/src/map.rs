//! The merge map: where each program went, returned with the module and embedded in it as
//! JSON in the [`ENTRIES_SECTION`] custom section (see docs/format.md).

use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Format tag written into the entries section and the manifest.
pub const FORMAT: &str = "megabin/1";

/// Name of the custom section that describes the entries (JSON, see docs/format.md).
pub const ENTRIES_SECTION: &str = "megabin.entries";

/// Where each program went in the merged module.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MergeMap {
    /// [`FORMAT`].
    pub format: String,
    /// One per program, in input order.
    pub entries: Vec<EntryMap>,
}

/// One program's place in the merged module.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EntryMap {
    /// Entry name.
    pub name: String,
    /// sha256 of the program bytes.
    #[serde(with = "hex_digest")]
    pub digest: [u8; 32],
    /// `argv[0]` names that select it.
    pub aliases: Vec<String>,
    /// Export that starts it: `<name>_start`.
    pub start_export: String,
    /// Its memory index.
    pub memory: u32,
    /// All its functions: trampolines, stubs, its own functions, its start function.
    pub functions: Range<u32>,
    /// Its WASI trampolines.
    pub trampolines: Range<u32>,
    /// Its tables.
    pub tables: Range<u32>,
    /// Its globals (the first is its "started" flag).
    pub globals: Range<u32>,
    /// Its exception tags.
    pub tags: Range<u32>,
    /// Its element segments.
    pub elements: Range<u32>,
    /// Its data segments (after coalescing).
    pub data: Range<u32>,
    /// Size of its code section entries in the input.
    pub code_bytes: u64,
    /// Size of its data segments in the input.
    pub data_bytes: u64,
    /// Foreign function imports (`module::name`, in import order) replaced by trapping stubs
    /// ([`crate::MergeOptions::stub_foreign_imports`]); they follow its trampolines in `functions`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stubbed_imports: Vec<String>,
}

mod hex_digest {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&format!("sha256:{hex}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| D::Error::custom("digest must start with sha256:"))?;
        let mut out = [0u8; 32];
        if hex.len() != 64 {
            return Err(D::Error::custom("digest must have 64 hex digits"));
        }
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(D::Error::custom)?;
        }
        Ok(out)
    }
}

/// Reads the merge map embedded in a megabinary, if any.
pub fn read_entries_section(wasm: &[u8]) -> Option<MergeMap> {
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        if let Ok(wasmparser::Payload::CustomSection(c)) = payload {
            if c.name() == ENTRIES_SECTION {
                return serde_json::from_slice(c.data()).ok();
            }
        }
    }
    None
}
