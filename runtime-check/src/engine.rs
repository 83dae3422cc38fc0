//! The one Wasmtime configuration used to compile, precompile and run megabinaries.

use wasmtime::{Config, Engine};

/// The engine configuration: multi-memory on (every program has its own memory), the
/// proposals the merger accepts, epoch interruption (for `--timeout`; stores without a
/// limit set their deadline to `u64::MAX`) and parallel Cranelift compilation.
pub fn engine_config() -> Config {
    let mut c = Config::new();
    c.wasm_multi_memory(true)
        .wasm_bulk_memory(true)
        .wasm_reference_types(true)
        .wasm_simd(true)
        .wasm_tail_call(true)
        .epoch_interruption(true)
        .parallel_compilation(true);
    c
}

/// An engine built from [`engine_config`].
pub fn new_engine() -> wasmtime::Result<Engine> {
    Engine::new(&engine_config())
}
