//! Code generation for megabin megabinaries.
//!
//! - [`wasi`]: the one table describing every WASI preview1 function;
//! - [`bridge`]: per-program WASI trampolines that route calls through the bridge memory;
//! - [`dispatch`]: the hash- and argv[0]-based dispatcher (`_start`, `megabin_dispatch`).

pub mod bridge;
mod code;
pub mod dispatch;
pub mod wasi;

pub use code::LocalAlloc;
