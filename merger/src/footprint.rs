//! Planning without merging: [`Footprint`] counts what each program takes of every limited
//! index space (the merged module adds a bridge memory, WASI imports, a dispatcher and
//! per-entry helpers), so the build can plan shards before merging anything.

use crate::error::{LimitExceeded, Unsupported};
use crate::input::Input;
use crate::limits::*;
use crate::{plan, segments, MergeOptions};
use sha2::{Digest as _, Sha256};

/// Proof that the merger has validated a program's bytes, bound to them by their sha256: only
/// [`Footprint::checked`] makes one. A [`crate::Program`] carrying the proof for its bytes is
/// parsed without being validated again; for any other bytes the proof does not match and the
/// program is validated as usual.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validated([u8; 32]);

impl Validated {
    /// Whether this is the proof for the bytes with sha256 `digest`.
    pub(crate) fn is_for(&self, digest: &[u8; 32]) -> bool {
        self.0 == *digest
    }
}

/// What one program (or a whole merged module) takes of each limited index space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Memories (one per program, plus the bridge memory).
    pub memories: u64,
    /// Tables.
    pub tables: u64,
    /// Functions, imported and defined.
    pub functions: u64,
    /// Data segments.
    pub data_segments: u64,
    /// Element segments.
    pub element_segments: u64,
    /// Globals.
    pub globals: u64,
    /// Types (an upper bound: types shared between programs count once per program).
    pub types: u64,
    /// Exception tags.
    pub tags: u64,
    /// Upper estimate of the bytes the program adds to the output.
    pub bytes: u64,
}

impl Footprint {
    /// What the module adds besides its programs: the bridge memory, up to every WASI import,
    /// the bridge allocator and the dispatcher, the cursor and activation globals, the
    /// static-data segment and the declarative element segment.
    pub fn base() -> Self {
        Footprint {
            memories: 1,
            functions: router_gen::wasi::WASI_FUNCS.len() as u64
                + 1
                + router_gen::dispatch::Router::FUNCS as u64
                + router_gen::bridge::ENVIRON_HELPERS as u64,
            data_segments: 1,
            element_segments: 1,
            globals: 2,
            types: 16,
            bytes: 64 * 1024,
            ..Default::default()
        }
    }

    /// The footprint of one parsed program, after segment coalescing.
    pub(crate) fn of_input(input: &Input<'_>, wasm_len: usize) -> Self {
        let (passive, active) = plan::split_data(input);
        let coalesced = segments::coalesce(active).len() as u64;
        let trampolines = plan::trampolines(input).len() as u64;
        let stubs = plan::stub_count(input) as u64;
        Footprint {
            memories: 1,
            tables: input.tables.len() as u64,
            // trampolines + stubs + defined functions + the entry's start function and at
            // most two checked grows (memory 0, the shared table)
            functions: trampolines + stubs + input.functions.len() as u64 + 3,
            data_segments: passive + coalesced,
            element_segments: input.elements.len() as u64,
            // the program's globals + its "started" flag
            globals: input.globals.len() as u64 + 1,
            types: input.func_types.len() as u64,
            tags: input.tags.len() as u64,
            // input bytes, plus trampolines and the start function
            bytes: wasm_len as u64 + trampolines * 512 + stubs * 64 + 1024,
        }
    }

    /// Parses and validates one program and returns its footprint. A program larger than a
    /// whole module may be ([`MAX_MODULE_BYTES`]) is not parsed at all: its footprint only
    /// counts its bytes, which is enough for [`fits`] to refuse it.
    pub fn of(wasm: &[u8]) -> Result<Self, Unsupported> {
        Self::of_with(wasm, &MergeOptions::default())
    }

    /// [`Footprint::of`] for a merge with `options` (which decide, e.g., whether foreign
    /// function imports are refused or stubbed).
    pub fn of_with(wasm: &[u8], options: &MergeOptions) -> Result<Self, Unsupported> {
        Self::checked(wasm, options).map(|(footprint, _)| footprint)
    }

    /// [`Footprint::of_with`], and the proof that `wasm` validated ([`Validated`]; `None` for a
    /// program too large to parse), so that [`crate::merge`] does not validate it again.
    pub fn checked(
        wasm: &[u8],
        options: &MergeOptions,
    ) -> Result<(Self, Option<Validated>), Unsupported> {
        if wasm.len() as u64 > MAX_MODULE_BYTES {
            return Ok((Self::oversized(wasm.len()), None));
        }
        let input = Input::parse(wasm, options.stub_foreign_imports, None)?;
        let validated = Validated(Sha256::digest(wasm).into());
        Ok((Self::of_input(&input, wasm.len()), Some(validated)))
    }

    /// The footprint of a program too large to parse: one memory and its bytes.
    pub(crate) fn oversized(len: usize) -> Self {
        Footprint {
            memories: 1,
            bytes: len as u64,
            ..Default::default()
        }
    }

    /// Sum of two footprints.
    pub fn plus(self, o: Self) -> Self {
        Footprint {
            memories: self.memories + o.memories,
            tables: self.tables + o.tables,
            functions: self.functions + o.functions,
            data_segments: self.data_segments + o.data_segments,
            element_segments: self.element_segments + o.element_segments,
            globals: self.globals + o.globals,
            types: self.types + o.types,
            tags: self.tags + o.tags,
            bytes: self.bytes + o.bytes,
        }
    }

    /// Checks a whole module's footprint (base included) against the engine limits.
    pub fn check(&self) -> Result<(), LimitExceeded> {
        let rows = [
            ("memories", self.memories, MAX_MEMORIES),
            ("tables", self.tables, MAX_TABLES),
            ("functions", self.functions, MAX_FUNCTIONS),
            ("data segments", self.data_segments, MAX_DATA_SEGMENTS),
            (
                "element segments",
                self.element_segments,
                MAX_ELEMENT_SEGMENTS,
            ),
            ("globals", self.globals, MAX_GLOBALS),
            ("types", self.types, MAX_TYPES),
            ("tags", self.tags, MAX_TAGS),
            ("bytes", self.bytes, MAX_MODULE_BYTES),
        ];
        for (what, needed, limit) in rows {
            if needed > limit {
                return Err(LimitExceeded {
                    what,
                    needed,
                    limit,
                });
            }
        }
        Ok(())
    }
}

/// Whether programs with these footprints fit one module together.
pub fn fits(programs: &[Footprint]) -> Result<Footprint, LimitExceeded> {
    let total = programs
        .iter()
        .fold(Footprint::base(), |acc, p| acc.plus(*p));
    total.check().map(|()| total)
}
