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
//! by sha256 digest or by `argv[0]`. See `docs/format.md` for the full layout.
//!
//! The merge runs in phases (`merge.rs`): check and parse the inputs (`input.rs`), check the
//! engine limits (`footprint.rs`, `limits.rs`), plan every index space (`plan.rs`), then emit the
//! module the plan describes (`emit.rs`).

#![warn(missing_docs)]

mod consteval;
mod emit;
mod error;
mod footprint;
mod input;
mod isolation;
pub mod limits;
mod map;
mod merge;
mod parallel;
mod plan;
mod reindex;
mod segments;
mod types;

pub use error::{LimitExceeded, MergeError, Unsupported};
pub use footprint::{fits, Footprint, Validated};
pub use input::features;
pub use isolation::{check_isolation, IsolationReport, Resources};
pub use map::{read_entries_section, EntryMap, MergeMap, ENTRIES_SECTION, FORMAT};
pub use merge::RESERVED_NAMES;
pub use parallel::parallel_map;

/// One program to merge.
#[derive(Clone, Debug)]
pub struct Program<'a> {
    /// Entry name: `[A-Za-z0-9_]+`, unique; the start export is `<name>_start`.
    pub name: String,
    /// The WASI preview1 command module.
    pub wasm: &'a [u8],
    /// `argv[0]` basenames that select this program in the dispatcher (may be empty: then only
    /// its digest selects it). Must be unique across programs.
    pub aliases: Vec<String>,
    /// The proof that these bytes validated ([`Footprint::checked`]): the merge then does not
    /// validate them again. `None`: the merge validates them.
    pub validated: Option<Validated>,
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
    /// Give every program its own memory and the WASI bridge, as megabin did before programs
    /// could use the exported memory as their own (to compare the two; see `docs/format.md`).
    pub bridge_all: bool,
}

/// A merged module and where everything went.
#[derive(Debug)]
pub struct Merged {
    /// The megabinary.
    pub wasm: Vec<u8>,
    /// The merge map (also embedded, as JSON, in the `megabin.entries` custom section).
    pub map: MergeMap,
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
