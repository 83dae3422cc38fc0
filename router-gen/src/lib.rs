//! Code generation for megabin megabinaries.
//!
//! - [`wasi`]: the one table describing every WASI preview1 function, with its [`Role`];
//! - [`bridge`]: per-program WASI trampolines that route calls through the bridge memory;
//! - [`dispatch`]: the hash- and `argv[0]`-based dispatcher (`_start`, `megabin_dispatch`);
//! - [`stub`]: trapping stand-ins for foreign (non-WASI) function imports;
//! - [`names`]: the naming conventions of a megabinary (exports, name-section names).
//!
//! The bridge memory's static layout (where the dispatcher's tables and messages live, which
//! the trampolines rely on too) is private to this crate; what callers need of it is
//! re-exported below.

#![warn(missing_docs)]

pub mod bridge;
mod code;
pub mod dispatch;
mod layout;
pub use megabin_format::names;
pub mod stub;
pub mod wasi;

pub use crate::{
    code::LocalAlloc,
    dispatch::{DispatchFunc, DispatchImports, GenFunc, Router, EXIT_NOT_FOUND},
    layout::{BridgeEnv, RouteEntry, RouteError},
    wasi::{Param, Role, Used, WasiFunc, WASI_FUNCS, WASI_MODULE},
};
