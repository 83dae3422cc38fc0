//! Typed merge errors. Every error that concerns one input names its entry.

use thiserror::Error;

/// Why a set of programs could not be merged.
#[derive(Debug, Error)]
pub enum MergeError {
    /// An input is not usable as a megabin entry.
    #[error("entry `{entry}`: {reason}")]
    Unsupported {
        /// The entry name given to [`crate::merge`].
        entry: String,
        /// What is wrong with it.
        reason: Unsupported,
    },
    /// Two inputs were given the same entry name, or a name is not a valid entry name.
    #[error("invalid entry name `{0}`: names must be unique, non-empty, [A-Za-z0-9_] only, and not `memory`, `megabin_dispatch`, `megabin` or `wasi`")]
    BadName(String),
    /// The dispatcher tables cannot be built (duplicate digests or `argv[0]` names).
    #[error("cannot route programs: {0}")]
    Route(String),
    /// No inputs were given.
    #[error("nothing to merge: no programs given")]
    Empty,
    /// The inputs together exceed an engine limit; split them into several modules.
    #[error("the programs do not fit one module: {0}")]
    TooLarge(LimitExceeded),
    /// The merger produced an invalid module: a bug in megabin.
    #[error("internal error: merged module does not validate: {0}")]
    Internal(String),
}

/// Why one input cannot become an entry.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Unsupported {
    /// A component-model binary instead of a core module.
    #[error("this is a WebAssembly component, not a core module")]
    Component,
    /// Not a WebAssembly binary at all, or fails validation.
    #[error("invalid WebAssembly: {0}")]
    Invalid(String),
    /// No `_start` export (a reactor or library).
    #[error("no `_start` export: not a WASI command (reactor modules are not supported yet)")]
    NoStart,
    /// `_start` exists but is not a `[] -> []` function.
    #[error("`_start` is not a function of type [] -> []")]
    BadStart,
    /// Imports of something other than WASI preview1 functions.
    #[error("imports other than WASI preview1 functions: {}", .0.join(", "))]
    ForeignImports(Vec<String>),
    /// A WASI import whose name is not a preview1 function.
    #[error("unknown WASI preview1 function `{0}`")]
    UnknownWasiFunction(String),
    /// A WASI import declared with the wrong signature.
    #[error("WASI function `{0}` imported with a wrong signature")]
    WasiSignature(String),
    /// Shared memories (the threads proposal).
    #[error("shared memory (threads) is not supported")]
    SharedMemory,
    /// 64-bit memories or tables.
    #[error("memory64 / table64 is not supported")]
    Memory64,
    /// Custom page sizes.
    #[error("custom memory page sizes are not supported")]
    CustomPageSize,
    /// Uses WebAssembly proposals the engine does not enable (see [`crate::features`]), e.g.
    /// legacy exception handling: it would fail to compile in the megabinary.
    #[error("{feature} is not enabled in the engine: {message}")]
    Feature {
        /// The proposal(s), e.g. `legacy-exceptions` (comma-separated if several are needed).
        feature: String,
        /// The validator's message with the engine's feature set.
        message: String,
    },
    /// A constant expression evaluated at instantiation (a global's or a table's initial value,
    /// an element segment item) allocates a GC array whose length is not a small constant. Such
    /// an expression can trap or exhaust memory, and in a megabinary every program's constant
    /// expressions are evaluated when the megabinary is instantiated: one program would make
    /// every other program of its megabinary fail.
    #[error("a constant expression allocates {0}; it could make instantiating the whole megabinary fail")]
    ConstAllocation(String),
    /// The module defines no memory, or more than one.
    #[error("a WASI command must define exactly one memory, this one defines {0}")]
    MemoryCount(usize),
}

/// Which engine limit a set of programs exceeds.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{needed} {what} needed, engines accept at most {limit}")]
pub struct LimitExceeded {
    /// The index space or size.
    pub what: &'static str,
    /// How much the merged module would need.
    pub needed: u64,
    /// The engine limit.
    pub limit: u64,
}

/// A re-encoding failure: the input validated, so this is a bug in megabin.
pub(crate) fn internal(e: wasm_encoder::reencode::Error<std::convert::Infallible>) -> MergeError {
    MergeError::Internal(e.to_string())
}
