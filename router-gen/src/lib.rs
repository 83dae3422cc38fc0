//! Code generation for megabin megabinaries.
//!
//! - [`wasi`]: the one table describing every WASI preview1 function;
//! - [`bridge`]: per-program WASI trampolines that route calls through the bridge memory;
//! - [`dispatch`]: the hash- and argv[0]-based dispatcher (`_start`, `megabin_dispatch`);
//! - [`stub`]: trapping stand-ins for foreign (non-WASI) function imports.

pub mod bridge;
mod code;
pub mod dispatch;
pub mod stub;
pub mod wasi;

pub use code::LocalAlloc;
