//! megabin's verifier and runner on stock Wasmtime with the stock `wasmtime-wasi` preview1
//! host: no custom WASI glue, the megabinary's own bridge does the memory routing.
//!
//! The run half of the pipeline, one module per stage: **load** (`trust`: the manifest from a
//! trusted source; `load`: the code from a verified AOT artifact, the compile cache or
//! compiling), **verify** (`verify`, `measure`: the requested file against the manifest,
//! verified once; `script`: a `#!` script's verified copy for its interpreter), **instantiate and run** (`engine`, `run`, `exec`, `host`; `session` for a
//! long-lived controller). What callers need is re-exported below; `manifest` (the on-disk
//! format) is public as a whole.
#![warn(missing_docs)]

mod aot;
mod cache;
/// Fixture programs and their expected behaviour, for tests of the whole workspace.
#[cfg(feature = "test-support")]
pub mod cases;
mod engine;
mod exec;
mod host;
mod load;
pub mod manifest;
mod measure;
mod open;
mod run;
mod script;
mod session;
mod trust;
mod verify;

#[cfg(feature = "compiler")]
pub use crate::aot::{engine_id, precompile};
#[cfg(feature = "compiler")]
pub use crate::run::run_program;
pub use crate::{
    aot::artifact_name,
    cache::{default_location, Cache, CACHE_DIR_ENV},
    engine::{engine_config, new_engine, pool_config, pooled_config, POOLED_INSTANCES},
    exec::{Captured, Invocation, Runner, Status},
    host::{add_wasi, InvalidExit, MAX_EXIT_STATUS},
    load::{load_module, LoadEvent, LoadOptions, Loaded, EXIT_NO_ARTIFACT},
    measure::{Measurer, Memo},
    open::{open_regular, read_all, OpenError, Opened},
    run::{run_module, RunConfig, RunError, EXIT_TIMEOUT},
    script::{StagedScript, VerifiedScript},
    session::{run_call, Call, Cancel, Ending, Outcome, Output, Prepared, Ticker},
    trust::{parse_pin, Container, FileError, VerifiedFile, EXPECT_ID_ENV, MANIFEST_FILE},
    verify::{
        hash_file, load_manifest, Locate, Refusal, Request, Verified, EXIT_NOT_FOUND, EXIT_REFUSED,
        MIN_DIGEST_PREFIX,
    },
};
