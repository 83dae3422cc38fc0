//! Engine limits and planning: does a set of programs fit one module?
//!
//! Wasmtime, browsers and wasmparser agree on per-module limits. The merged module adds a
//! bridge memory, WASI imports, a dispatcher and per-entry helpers; [`Footprint`] counts what
//! each program contributes so the build can plan shards without merging first.

use crate::input::Input;
use crate::segments;
use std::fmt;

/// Limits enforced by engines (wasmparser's `limits.rs`, the JS API).
pub const MAX_MEMORIES: u64 = 100;
/// Maximum tables per module.
pub const MAX_TABLES: u64 = 100;
/// Maximum functions (imported + defined) per module.
pub const MAX_FUNCTIONS: u64 = 1_000_000;
/// Maximum data segments per module.
pub const MAX_DATA_SEGMENTS: u64 = 100_000;
/// Maximum element segments per module.
pub const MAX_ELEMENT_SEGMENTS: u64 = 100_000;
/// Maximum globals per module.
pub const MAX_GLOBALS: u64 = 1_000_000;
/// Maximum types per module.
pub const MAX_TYPES: u64 = 1_000_000;
/// Maximum tags per module.
pub const MAX_TAGS: u64 = 1_000_000;
/// Maximum module size in bytes.
pub const MAX_MODULE_BYTES: u64 = 1 << 30;
/// At most this many programs share one module: memory 0 is the bridge.
pub const MAX_ENTRIES: u64 = MAX_MEMORIES - 1;

/// What one program (or a whole merged module) takes of each limited index space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    pub memories: u64,
    pub tables: u64,
    pub functions: u64,
    pub data_segments: u64,
    pub element_segments: u64,
    pub globals: u64,
    pub types: u64,
    pub tags: u64,
    /// Upper estimate of the bytes the program adds to the output.
    pub bytes: u64,
}

/// Which limit a set of programs exceeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitExceeded {
    /// The index space or size.
    pub what: &'static str,
    /// How much the merged module would need.
    pub needed: u64,
    /// The engine limit.
    pub limit: u64,
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} needed, engines accept at most {}",
            self.needed, self.what, self.limit
        )
    }
}

impl std::error::Error for LimitExceeded {}

impl Footprint {
    /// What the module adds besides its programs: the bridge memory, up to every WASI import,
    /// the bridge allocator and the dispatcher, the cursor global, the static-data segment and
    /// the declarative element segment.
    pub fn base() -> Self {
        Footprint {
            memories: 1,
            functions: router_gen::wasi::WASI_FUNCS.len() as u64
                + 1
                + router_gen::dispatch::Router::FUNCS as u64,
            data_segments: 1,
            element_segments: 1,
            globals: 1,
            types: 16,
            bytes: 64 * 1024,
            ..Default::default()
        }
    }

    /// The footprint of one parsed program, after segment coalescing.
    pub(crate) fn of_input(input: &Input<'_>, wasm_len: usize) -> Self {
        let (passive, active) = split_data(input);
        let coalesced = segments::coalesce(active).len() as u64;
        let trampolines = distinct_imports(input) as u64;
        let stubs = (input.imports.len()
            - input.imports.iter().filter(|i| i.wasi().is_some()).count())
            as u64;
        Footprint {
            memories: 1,
            tables: input.tables.len() as u64,
            // trampolines + stubs + defined functions + the entry's start function
            functions: trampolines + stubs + input.functions.len() as u64 + 1,
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
    pub fn of(wasm: &[u8]) -> Result<Self, crate::Unsupported> {
        Self::of_with(wasm, &crate::MergeOptions::default())
    }

    /// [`Footprint::of`] for a merge with `options` (which decide, e.g., whether foreign
    /// function imports are refused or stubbed).
    pub fn of_with(wasm: &[u8], options: &crate::MergeOptions) -> Result<Self, crate::Unsupported> {
        if wasm.len() as u64 > MAX_MODULE_BYTES {
            return Ok(Self::oversized(wasm.len()));
        }
        let input = Input::parse(wasm, options.stub_foreign_imports)?;
        Ok(Self::of_input(&input, wasm.len()))
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

/// Counts passive data segments and collects the active ones in order.
pub(crate) fn split_data<'a>(
    input: &Input<'a>,
) -> (u64, Vec<(wasmparser::ConstExpr<'a>, &'a [u8])>) {
    let mut passive = 0;
    let mut active = Vec::new();
    for d in &input.data {
        match &d.kind {
            wasmparser::DataKind::Passive => passive += 1,
            wasmparser::DataKind::Active { offset_expr, .. } => {
                active.push((offset_expr.clone(), d.data))
            }
        }
    }
    (passive, active)
}

/// Number of distinct WASI functions a program imports (one trampoline each).
pub(crate) fn distinct_imports(input: &Input<'_>) -> usize {
    let mut names: Vec<&str> = input
        .imports
        .iter()
        .filter_map(|i| i.wasi().map(|f| f.name))
        .collect();
    names.sort_unstable();
    names.dedup();
    names.len()
}
