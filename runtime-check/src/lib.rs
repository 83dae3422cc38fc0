//! megabin's verifier and runner on stock Wasmtime with the stock `wasmtime-wasi` preview1
//! host: no custom WASI glue, the megabinary's own bridge does the memory routing.
#![warn(missing_docs)]

pub mod aot;
pub mod cache;
/// Fixture programs and their expected behaviour, for tests of the whole workspace.
#[cfg(feature = "test-support")]
pub mod cases;
mod engine;
mod exec;
pub mod host;
pub mod load;
pub mod manifest;
pub mod measure;
pub mod open;
pub mod run;
pub mod session;
pub mod trust;
pub mod verify;

pub use engine::{engine_config, new_engine, pool_config, pooled_config, POOLED_INSTANCES};
pub use exec::{Captured, Invocation, Runner, Status};
