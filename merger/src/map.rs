//! The merge map: where each program went, returned with the module and embedded in it as
//! JSON in the [`ENTRIES_SECTION`] custom section (see docs/format.md).

use megabin_format::Digest;
use serde::{Deserialize, Serialize};
use std::ops::Range;

pub use megabin_format::FORMAT;

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
    pub digest: Digest,
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
