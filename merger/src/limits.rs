//! Engine limits: what one module may hold. Wasmtime, browsers and wasmparser agree on these
//! per-module limits; [`crate::Footprint`] counts what each program takes of them.

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
