//! megabin's merge engine.
//!
//! [`merge`] turns N WASI preview1 command modules into ONE core module in which every program
//! keeps its own (renamed) memory, tables, globals, tags, functions, data and element segments.
//! Memory 0 is a *bridge memory* exported as `memory`, through which generated trampolines
//! route every WASI call, so the output runs on any stock WASI preview1 host with multi-memory.
//!
//! Programs are activated lazily: instantiating the output initialises no program; the export
//! `<name>_start` grows the program's memory and tables, applies its segments, runs its start
//! function and then its `_start`. A dispatcher (`_start`, `megabin_dispatch`) selects a program
//! by sha256 digest or by argv[0]. See `docs/format.md` for the full layout.

mod consteval;
mod error;
mod input;
mod isolation;
pub mod limits;
mod merge;
mod reindex;
mod segments;
mod types;

pub use error::{MergeError, Unsupported};
pub use input::features;
pub use isolation::{check_isolation, IsolationReport, Resources};
pub use limits::{fits, Footprint, LimitExceeded};
pub use merge::{parallel_map, ENTRIES_SECTION, RESERVED_NAMES};

use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Format tag written into the entries section and the manifest.
pub const FORMAT: &str = "megabin/1";

/// One program to merge.
#[derive(Clone, Debug)]
pub struct Program<'a> {
    /// Entry name: `[A-Za-z0-9_]+`, unique; the start export is `<name>_start`.
    pub name: String,
    /// The WASI preview1 command module.
    pub wasm: &'a [u8],
    /// argv[0] basenames that select this program in the dispatcher (may be empty: then only
    /// its digest selects it). Must be unique across programs.
    pub aliases: Vec<String>,
}

/// Merge settings.
#[derive(Clone, Copy, Debug)]
pub struct MergeOptions {
    /// Threads used for validating and re-encoding programs; the output does not depend on it.
    pub jobs: usize,
    /// Accept programs that import functions of host modules other than WASI preview1: each
    /// such import becomes a function of the program that traps (`unreachable`) when called,
    /// named `megabin::stub::<module>::<name>` in the name section so a trap's backtrace names
    /// it ([`router_gen::stub`]), and listed in [`EntryMap::stubbed_imports`]. Without it
    /// such programs are refused ([`Unsupported::ForeignImports`]).
    pub stub_foreign_imports: bool,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions {
            jobs: 1,
            stub_foreign_imports: false,
        }
    }
}

/// Changes to the output for tests and debugging; `megabin build` never sets them (which is
/// why they are kept apart from [`MergeOptions`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct DebugOptions {
    /// Also export every function an input exports as `<name>.<export>` (except an export
    /// named `memory`, whose name `<name>.memory` is taken), so a test can call any input
    /// function inside the merged module. The output is otherwise identical.
    pub export_functions: bool,
}

/// A merged module and where everything went.
#[derive(Debug)]
pub struct Merged {
    /// The megabinary.
    pub wasm: Vec<u8>,
    /// The merge map (also embedded, as JSON, in the `megabin.entries` custom section).
    pub map: MergeMap,
}

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
    /// argv[0] names that select it.
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
    /// ([`MergeOptions::stub_foreign_imports`]); they follow its trampolines in `functions`.
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

/// Merges `programs` into one module. Fails with a typed error naming the program when one
/// cannot be merged, or with [`MergeError::TooLarge`] when they do not fit one module.
pub fn merge(programs: &[Program<'_>], options: &MergeOptions) -> Result<Merged, MergeError> {
    merge::merge(programs, options, &DebugOptions::default())
}

/// [`merge`] with [`DebugOptions`] (tests and debugging).
pub fn merge_with(
    programs: &[Program<'_>],
    options: &MergeOptions,
    debug: &DebugOptions,
) -> Result<Merged, MergeError> {
    merge::merge(programs, options, debug)
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
