//! The one Wasmtime configuration used to compile, precompile and run megabinaries.

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Memories (and tables) of the largest megabinary: engines accept 100 per module, which is
/// what the merger's shards are cut to (`merger::limits::MAX_MEMORIES`).
pub const MODULE_MEMORIES: u32 = 100;
/// The largest table a module may declare (wasmparser's validation limit).
pub const MAX_TABLE_ELEMENTS: usize = 10_000_000;
/// Instances the pool of [`new_engine`] holds at once: one run at a time, plus headroom for
/// a caller instantiating the next while the previous one is being dropped.
pub const POOLED_INSTANCES: u32 = 2;

/// The engine configuration: multi-memory on (every program has its own memory), the
/// proposals the merger accepts, epoch interruption (for `--timeout`; stores without a
/// limit set their deadline to `u64::MAX`) and parallel Cranelift compilation (with the
/// `compiler` feature). Everything
/// here that changes generated code is covered by the AOT engine id; the allocation strategy
/// ([`pooled_config`]) is not, so artifacts work with both.
pub fn engine_config() -> Config {
    let mut c = Config::new();
    c.wasm_multi_memory(true)
        .wasm_bulk_memory(true)
        .wasm_reference_types(true)
        .wasm_simd(true)
        .wasm_tail_call(true)
        .epoch_interruption(true);
    #[cfg(feature = "compiler")]
    c.parallel_compilation(true);
    c
}

/// [`engine_config`] with Wasmtime's pooling instance allocator, sized for `instances`
/// concurrent instances of the largest megabinary.
///
/// Why: a megabinary defines one memory per program. With the default on-demand allocator,
/// every instantiation maps (and every drop unmaps) a 4 GiB reservation per memory, for all
/// programs of the megabinary although only one runs: start-up grows linearly with the number
/// of programs. The pool reserves the slots once, when the engine is created; instantiating
/// then takes a free slot per memory, and only the memory the program touched needs resetting.
/// Guard pages and bounds-check elision stay exactly as with the default allocator.
///
/// Limits differ from the on-demand allocator only at the extremes: a memory grows to at most
/// 4 GiB (the wasm32 maximum anyway), a table to [`MAX_TABLE_ELEMENTS`] slots.
pub fn pooled_config(instances: u32) -> Config {
    let mut c = engine_config();
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool_config(instances)));
    c
}

/// The pooling allocator's configuration of [`pooled_config`] (exposed for benchmarks that
/// vary it).
pub fn pool_config(instances: u32) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    let memories = MODULE_MEMORIES + 1; // + a GC heap
    pool.total_core_instances(instances)
        .total_memories(instances * memories)
        .total_gc_heaps(instances)
        .total_tables(instances * MODULE_MEMORIES)
        .max_memories_per_module(MODULE_MEMORIES)
        .max_tables_per_module(MODULE_MEMORIES)
        .table_elements(MAX_TABLE_ELEMENTS)
        .max_memory_size(1 << 32)
        // Only a bound checked at instantiation; nothing is reserved for it.
        .max_core_instance_size(1 << 30)
        // No async fibers and no components: their default pools (1000 stacks, each mapped
        // with a guard page) made engine creation cost ~3 ms per process instead of ~0.2 ms.
        .total_stacks(0)
        .total_component_instances(0)
        // Reset what a run dirtied with `memset` instead of `madvise(MADV_DONTNEED)`: every
        // entry's table (and the memories the run touched) had its first page decommitted by a
        // system call of its own on each drop (99 per run at N=99, each a TLB shootdown), and
        // refaulted on the next run. PAGEMAP_SCAN (Linux >= 6.7; ignored elsewhere) limits the
        // `memset` to the pages that are really resident. Measured (issue 14, docs/benchmarks.md
        // "megabin serve"): instantiate + run of hello 49 -> 29 µs at N=1, 246 -> 167 µs at N=99.
        // Not covered by the AOT engine id (an allocator setting, no generated code changes).
        .table_keep_resident(KEEP_RESIDENT)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto);
    pool
}

/// Bytes of each table and memory slot reset in place (kept resident) when an instance is
/// dropped, per [`pool_config`]; beyond them, slots are decommitted.
pub const KEEP_RESIDENT: usize = 64 << 10;

/// The engine megabinaries run on: [`pooled_config`] for [`POOLED_INSTANCES`] instances, or
/// [`engine_config`] (on-demand allocation) where the pool's address space cannot be reserved
/// (e.g. under a `ulimit -v`).
pub fn new_engine() -> wasmtime::Result<Engine> {
    Engine::new(&pooled_config(POOLED_INSTANCES)).or_else(|_| Engine::new(&engine_config()))
}
