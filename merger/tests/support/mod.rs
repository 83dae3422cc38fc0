//! A small Wasmtime harness for calling arbitrary exported functions, standalone and inside a
//! merged module, with fuel and deterministic WASI stubs (no host state shared between
//! programs, no pointers: generated programs only import pointer-free WASI functions).
#![allow(dead_code)]

use arbitrary::Unstructured;
use merger::{merge_with, DebugOptions, MergeOptions, Merged, Program};
use std::fmt;
use std::path::{Path, PathBuf};
use wasmtime::{Engine, Extern, Instance, Linker, Module, Store, Trap, Val, ValType};

// `check_baseline`, shared with the megabin crate's tests (`tests/common`).
mod baseline;
#[allow(unused_imports)] // not every test file compares baselines
pub use baseline::check_baseline;

// ---------------------------------------------------------------------------------------------
// Runs through `runtime_check` (the real WASI host).

/// An invocation of `_start` with these arguments and environment.
pub fn inv(args: &[&str], env: &[(&str, String)]) -> runtime_check::Invocation {
    runtime_check::Invocation {
        args: args.iter().map(|a| a.to_string()).collect(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        ..Default::default()
    }
}

/// Runs `_start` of `merged` for `name` with an environment variable of `env_bytes` bytes and
/// asserts that the start trapped after writing a message containing `message` to stderr.
pub fn assert_start_refused(merged: &[u8], name: &str, env_bytes: usize, message: &str) {
    let runner = runtime_check::Runner::new().unwrap();
    let mega = runner.compile(merged).unwrap();
    let huge = "y".repeat(env_bytes);
    let out = runner
        .run_captured(&mega, "_start", &inv(&[name], &[("H", huge)]))
        .unwrap();
    assert!(
        matches!(out.status, runtime_check::Status::Trap { .. }),
        "{out:?}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(message), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Inputs: fixtures, programs, merges.

/// `fixtures/hardening/<name>` (WAT) as a module.
pub fn hardening_fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join("hardening").join(name);
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The repository's `fixtures/` directory.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// A program without aliases.
pub fn program<'a>(name: &str, wasm: &'a [u8]) -> Program<'a> {
    Program {
        name: name.into(),
        wasm,
        aliases: vec![],
        validated: None,
    }
}

/// A program whose one `argv[0]` alias is its name.
pub fn aliased<'a>(name: &str, wasm: &'a [u8]) -> Program<'a> {
    Program {
        aliases: vec![name.into()],
        ..program(name, wasm)
    }
}

/// The fixture programs as entries: `hello-debug` becomes entry `hello_debug`, selected by the
/// alias `hello-debug`.
pub fn fixture_entries(fixtures: &[(String, Vec<u8>)]) -> Vec<Program<'_>> {
    fixtures
        .iter()
        .map(|(name, wasm)| Program {
            name: name.replace('-', "_"),
            wasm,
            aliases: vec![name.clone()],
            validated: None,
        })
        .collect()
}

/// Merges on `jobs` threads.
pub fn merge_jobs(programs: &[Program<'_>], jobs: usize) -> Result<Merged, merger::MergeError> {
    merger::merge(
        programs,
        &MergeOptions {
            jobs,
            ..Default::default()
        },
    )
}

/// Merges with every input function exported (tests call them), checking isolation.
pub fn merge_exporting(programs: &[Program<'_>]) -> Merged {
    let merged = merge_with(
        programs,
        &MergeOptions::default(),
        &DebugOptions {
            export_functions: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("merge: {e}"));
    merger::check_isolation(&merged.wasm).unwrap_or_else(|p| panic!("{}", p.join("\n")));
    merged
}

/// Lowercase hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A minimal hand assembler that writes every LEB128 in 5 bytes, as clang and wasm-ld leave
/// relocatable indices (e.g. call_indirect's table index).
pub mod overlong {
    /// Five 7-bit groups, `group(i)` being bits `7i..`, all but the last with the
    /// continuation bit.
    fn five(group: impl Fn(u32) -> u8) -> Vec<u8> {
        (0..5)
            .map(|i| {
                let b = group(i) & 0x7f;
                if i < 4 {
                    b | 0x80
                } else {
                    b
                }
            })
            .collect()
    }
    pub fn u(v: u32) -> Vec<u8> {
        five(|i| (v >> (7 * i)) as u8)
    }
    pub fn s(v: i32) -> Vec<u8> {
        five(|i| (v >> (7 * i)) as u8)
    }
    pub fn name(n: &str) -> Vec<u8> {
        let mut v = u(n.len() as u32);
        v.extend_from_slice(n.as_bytes());
        v
    }
    pub fn vec(items: &[Vec<u8>]) -> Vec<u8> {
        let mut v = u(items.len() as u32);
        for i in items {
            v.extend_from_slice(i);
        }
        v
    }
    pub fn section(id: u8, payload: Vec<u8>, out: &mut Vec<u8>) {
        out.push(id);
        out.extend(u(payload.len() as u32));
        out.extend(payload);
    }
    pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }
}

// ---------------------------------------------------------------------------------------------
// Running: a Wasmtime harness.

/// Fuel for one call (instantiation, a start export, an exported function).
pub const FUEL: u64 = 200_000;

/// `proc_exit` from a stub.
#[derive(Debug)]
pub struct Exit(pub i32);

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// How a call ended, in a form comparable between standalone and merged runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Returned these values (numbers as bits, NaNs canonical, references by null-ness).
    Values(Vec<String>),
    /// Trapped with this trap code.
    Trap(String),
    /// `proc_exit(code)`.
    Exit(i32),
    /// A Wasm exception escaped to the host.
    Exception,
    /// Out of fuel, stack or time: the exact point depends on code outside the function (the
    /// merged start wrapper), so the two sides are not comparable from here on.
    Inconclusive(String),
    /// Any other host error.
    Error(String),
}

impl Outcome {
    pub fn comparable(&self) -> bool {
        !matches!(self, Outcome::Inconclusive(_))
    }
}

/// The engine: the runner's configuration plus fuel.
pub struct Harness {
    pub engine: Engine,
    /// Fuel for each call ([`FUEL`] unless changed).
    pub fuel: u64,
    /// Wall-clock budget of each call in 10 ms epoch ticks ([`TICKS`] unless changed). Fuel
    /// counts instructions, not the work inside one (an exception unwinding 10,000 frames,
    /// a big GC allocation), so a few generated programs need this too.
    pub ticks: u64,
}

/// Default wall-clock budget of a call: about 0.3 s.
pub const TICKS: u64 = 30;

/// An instance in its own store.
pub struct Inst {
    pub store: Store<()>,
    pub instance: Instance,
}

/// Deterministic result of a WASI stub (errno), by function name.
fn stub_errno(name: &str, params: &[Val]) -> i32 {
    match name {
        "sched_yield" | "fd_write" => 0,
        "fd_close" | "fd_sync" | "fd_datasync" => 8, // EBADF
        "sock_shutdown" => 57,                       // ENOTSOCK
        _ => 52 + params.len() as i32,               // ENOSYS, varied a little
    }
}

impl Harness {
    pub fn new() -> Self {
        let mut config = runtime_check::engine_config();
        config.consume_fuel(true);
        config.parallel_compilation(false);
        // Both sides run on this engine, so optimisation does not matter; compiling fast does.
        config.cranelift_opt_level(wasmtime::OptLevel::None);
        // Copy-on-write memory images of modules with tens of thousands of scattered segments
        // take Wasmtime (with debug assertions, as in tests) very long to build.
        config.memory_init_cow(false);
        let engine = Engine::new(&config).expect("engine");
        let ticker = engine.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(10));
            ticker.increment_epoch();
        });
        Harness {
            engine,
            fuel: FUEL,
            ticks: TICKS,
        }
    }

    pub fn compile(&self, wasm: &[u8]) -> wasmtime::Result<Module> {
        Module::new(&self.engine, wasm)
    }

    fn linker(&self, module: &Module) -> Linker<()> {
        let mut linker = Linker::new(&self.engine);
        for import in module.imports() {
            let Some(ty) = import.ty().func().cloned() else {
                continue;
            };
            let name = import.name().to_string();
            let results: Vec<ValType> = ty.results().collect();
            linker
                .func_new(import.module(), import.name(), ty, move |_, params, out| {
                    if name == "proc_exit" {
                        let code = params[0].unwrap_i32();
                        return Err(wasmtime::Error::new(Exit(code)));
                    }
                    if let (Some(slot), Some(ValType::I32)) = (out.first_mut(), results.first()) {
                        *slot = Val::I32(stub_errno(&name, params));
                    }
                    Ok(())
                })
                .expect("define stub");
        }
        linker
    }

    /// Instantiates (running the start section): a failure is returned as an outcome.
    pub fn instantiate(&self, module: &Module) -> Result<Inst, Outcome> {
        let linker = self.linker(module);
        let mut store = Store::new(&self.engine, ());
        store.set_epoch_deadline(self.ticks);
        store.set_fuel(self.fuel).expect("fuel");
        match linker.instantiate(&mut store, module) {
            Ok(instance) => Ok(Inst { store, instance }),
            Err(e) => Err(outcome_of(&mut store, e)),
        }
    }

    /// Calls `export` with `args` on a fresh fuel budget.
    pub fn call(&self, inst: &mut Inst, export: &str, args: &[Val]) -> Outcome {
        let func = inst
            .instance
            .get_func(&mut inst.store, export)
            .unwrap_or_else(|| panic!("no export {export}"));
        let ty = func.ty(&inst.store);
        let mut results: Vec<Val> = ty
            .results()
            .map(|t| Val::default_for_ty(&t).unwrap_or(Val::I32(0)))
            .collect();
        inst.store.set_fuel(self.fuel).expect("fuel");
        inst.store.set_epoch_deadline(self.ticks);
        match func.call(&mut inst.store, args, &mut results) {
            Ok(()) => Outcome::Values(results.iter().map(show).collect()),
            Err(e) => outcome_of(&mut inst.store, e),
        }
    }

    /// The bytes of an exported memory.
    pub fn memory(&self, inst: &mut Inst, export: &str) -> Vec<u8> {
        match inst.instance.get_export(&mut inst.store, export) {
            Some(Extern::Memory(m)) => m.data(&inst.store).to_vec(),
            _ => panic!("no memory export {export}"),
        }
    }
}

fn outcome_of(store: &mut Store<()>, e: wasmtime::Error) -> Outcome {
    if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
        return Outcome::Exit(*code);
    }
    if e.downcast_ref::<wasmtime::ThrownException>().is_some() {
        let _ = store.take_pending_exception();
        return Outcome::Exception;
    }
    // The GC heap's size depends on the store's history (the merged store holds every
    // program's objects), so running out of it is a resource limit like fuel, not behaviour.
    if format!("{e:?}").contains("GC heap out of memory") {
        return Outcome::Inconclusive("GC heap out of memory".into());
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Outcome::Inconclusive("out of fuel".into()),
        Some(Trap::StackOverflow) => Outcome::Inconclusive("stack overflow".into()),
        Some(Trap::Interrupt) => Outcome::Inconclusive("out of time".into()),
        Some(t) => Outcome::Trap(format!("{t:?}")),
        None => Outcome::Error(format!("{e}")),
    }
}

/// A value as comparable text.
pub fn show(v: &Val) -> String {
    match v {
        Val::I32(x) => format!("i32:{x}"),
        Val::I64(x) => format!("i64:{x}"),
        Val::F32(b) => {
            if f32::from_bits(*b).is_nan() {
                "f32:nan".into()
            } else {
                format!("f32:{b:#x}")
            }
        }
        Val::F64(b) => {
            if f64::from_bits(*b).is_nan() {
                "f64:nan".into()
            } else {
                format!("f64:{b:#x}")
            }
        }
        Val::V128(x) => format!("v128:{:#x}", x.as_u128()),
        Val::FuncRef(r) => format!("funcref:{}", if r.is_some() { "some" } else { "null" }),
        Val::ExternRef(r) => format!("externref:{}", if r.is_some() { "some" } else { "null" }),
        Val::AnyRef(r) => format!("anyref:{}", if r.is_some() { "some" } else { "null" }),
        Val::ExnRef(r) => format!("exnref:{}", if r.is_some() { "some" } else { "null" }),
        Val::ContRef(r) => format!("contref:{}", if r.is_some() { "some" } else { "null" }),
    }
}

/// The generator of fuzz case `case` (the same case always generates the same modules).
pub fn case_rng(case: u64) -> Rng {
    Rng(case.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x6d65_6761_6269_6e21)
}

/// A deterministic pseudo-random generator (SplitMix64): the tests need no `rand`.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// An argument of type `ty`: random numbers, null references; `None` for a non-nullable
/// reference (the function is then not called).
pub fn arg(rng: &mut Rng, ty: &ValType) -> Option<Val> {
    Some(match ty {
        ValType::I32 => Val::I32(interesting(rng) as i32),
        ValType::I64 => Val::I64(interesting(rng) as i64),
        ValType::F32 => Val::F32((interesting(rng) as u32).rotate_left(7)),
        ValType::F64 => Val::F64(interesting(rng).rotate_left(13)),
        ValType::V128 => Val::V128(((rng.next() as u128) << 64 | rng.next() as u128).into()),
        ValType::Ref(r) if r.is_nullable() => Val::null_ref(r.heap_type()),
        ValType::Ref(_) => return None,
    })
}

fn interesting(rng: &mut Rng) -> u64 {
    match rng.below(6) {
        0 => 0,
        1 => 1,
        2 => u64::MAX,
        3 => rng.below(100),
        4 => 1 << rng.below(64),
        _ => rng.next(),
    }
}

// ---------------------------------------------------------------------------------------------
// Fuzz shapes: wasm-smith modules in the shape of WASI commands.

/// Signatures of the exported functions a generated module may have (besides `_start`).
const SIGNATURES: &[&str] = &[
    "(param i32) (result i32)",
    "(param i64 i32) (result i64)",
    "(param f32 f64) (result f64)",
    "(result i32 i64 f32)",
    "(param v128) (result v128)",
    "(param i32)",
    "",
    "(param i32 i32) (result i32)",
    "(param externref) (result i32)",
    "(result funcref)",
    "(param i64) (result i64 i64)",
];

/// WASI functions generated modules may import: pointer-free ones only, so the documented
/// deviation (a bad pointer traps in the bridge instead of returning EFAULT) never shows.
const WASI_IMPORTS: &str = r#"(module
  (import "wasi_snapshot_preview1" "sched_yield" (func (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
  (import "wasi_snapshot_preview1" "proc_raise" (func (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_shutdown" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_sync" (func (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func (param i32) (result i32))))"#;

/// The exports a generated module must have: `memory`, `_start` and a few functions.
fn shape(rng: &mut Rng) -> (String, Vec<String>) {
    let min = rng.below(3);
    let max = match rng.below(3) {
        0 => String::new(),
        _ => (min + rng.below(3)).to_string(),
    };
    let mut wat = format!(
        "(module (memory (export \"memory\") {min} {max}) (func (export \"_start\") unreachable)"
    );
    let mut names = Vec::new();
    for i in 0..1 + rng.below(4) {
        let sig = SIGNATURES[rng.below(SIGNATURES.len() as u64) as usize];
        wat.push_str(&format!("(func (export \"f{i}\") {sig} unreachable)"));
        names.push(format!("f{i}"));
    }
    wat.push(')');
    (wat, names)
}

/// One generated module in the shape of a WASI command.
pub fn generate(rng: &mut Rng) -> (Vec<u8>, Vec<String>) {
    let (exports, names) = shape(rng);
    let mut config = wasm_smith::Config {
        exports: Some(wat::parse_str(&exports).unwrap()),
        available_imports: Some(wat::parse_str(WASI_IMPORTS).unwrap()),
        max_imports: rng.below(4) as usize,
        // the exported memory is generated on top of these: exactly one in all
        min_memories: 0,
        max_memories: 0,
        max_memory32_bytes: 4 << 16,
        memory64_enabled: false,
        threads_enabled: false,
        shared_everything_threads_enabled: false,
        custom_page_sizes_enabled: false,
        wide_arithmetic_enabled: false,
        custom_descriptors_enabled: false,
        max_tables: 3,
        max_table_elements: 64,
        max_funcs: 12,
        max_instructions: 60,
        max_globals: 8,
        max_tags: 4,
        max_types: 20,
        max_data_segments: 12,
        max_element_segments: 6,
        max_elements: 16,
        canonicalize_nans: true,
        gc_enabled: rng.below(3) == 0,
        ..Default::default()
    };
    config.max_type_size = 200;
    let len = 512 + rng.below(8192) as usize;
    let bytes = rng.bytes(len);
    let module = wasm_smith::Module::new(config, &mut Unstructured::new(&bytes))
        .expect("wasm-smith generates a module");
    (module.to_bytes(), names)
}
