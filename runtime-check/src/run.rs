//! Running a verified program with inherited stdio: a fresh store and instance from an
//! `InstancePre`, stock wasmtime-wasi preview1 (with `proc_exit` passing every status 0..=255
//! through, see [`crate::host`]), entry through the module's own `megabin_dispatch` with the
//! verified digest, resource limits, and how the run ended ([`RunError`]).

use crate::host::InvalidExit;
use megabin_format::names;
use std::path::PathBuf;
use std::time::Duration;
use wasmtime::{Engine, Linker, Module, ResourceLimiter, Store, WasmBacktrace};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

/// Exit code when the program failed after `--max-memory` refused it memory.
pub use megabin_format::exit::MEMORY as EXIT_MEMORY;
/// Exit code when `--timeout` stops the program (as `timeout(1)`).
pub use megabin_format::exit::TIMEOUT as EXIT_TIMEOUT;
/// Exit code when the program trapped (as SIGABRT in shells).
pub use megabin_format::exit::TRAP as EXIT_TRAP;
/// Bridge address where the host places the 32-byte digest for `megabin_dispatch`
/// (bytes 0..64 of the bridge memory are reserved and never used by the megabinary).
pub const DIGEST_ADDR: usize = 0;

/// Why `megabin_dispatch` refused to run anything, from the code it returned (docs/format.md
/// §5: 1 for a digest not in the megabinary, 2 for one placed outside bytes 0–63).
pub(crate) fn dispatch_refusal(code: i32) -> String {
    let why = match code {
        1 => "the digest is not in this megabinary",
        2 => "the digest was not placed in bytes 0-63 of the exported memory",
        _ => "an unknown refusal",
    };
    format!("megabin_dispatch returned {code}: {why}")
}

/// How to run.
#[derive(Clone, Debug, Default)]
pub struct RunConfig {
    /// argv including argv[0].
    pub args: Vec<String>,
    /// Environment (nothing from the host leaks in).
    pub env: Vec<(String, String)>,
    /// Preopened directories (host, guest).
    pub preopens: Vec<(PathBuf, String)>,
    /// Directories preopened read-only (a script's private directory): (host, guest).
    pub read_only: Vec<(PathBuf, String)>,
    /// Cap on all memories together, in bytes.
    pub max_memory: Option<usize>,
    /// Wall-clock limit.
    pub timeout: Option<Duration>,
}

/// Exit code when the program called `proc_exit` with a status above 255 (as the stock
/// `wasmtime` CLI exits for a status it refuses).
pub use megabin_format::exit::FAILURE as EXIT_INVALID_STATUS;
/// Exit code when `--max-memory` is too small to even instantiate the megabinary: a usage
/// error, like a malformed option.
pub use megabin_format::exit::USAGE as EXIT_USAGE;

/// How a run ended badly (the program's own exit codes are returned as `Ok`). `Display` is
/// one line; a trap's wasm backtrace is kept apart ([`RunError::backtrace`]).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The megabinary could not be compiled or instantiated.
    #[error("cannot load the megabinary: {0}")]
    Load(String),
    /// The module has no `megabin_dispatch`, or it refused the digest.
    #[error("the megabinary refused the program: {0}")]
    Dispatch(String),
    /// `--max-memory` is below what instantiating the megabinary takes.
    #[error(
        "--max-memory {} is too small: instantiating the megabinary needs at least {}",
        size(*limit),
        size(*needed)
    )]
    MemoryTooSmall {
        /// The cap, in bytes.
        limit: usize,
        /// What instantiating takes, in bytes.
        needed: usize,
    },
    /// The program trapped.
    #[error("program `{program}` trapped: {trap}")]
    Trap {
        /// The program's name.
        program: String,
        /// What happened, on one line.
        trap: String,
        /// The wasm backtrace (function names from the megabinary's name section).
        backtrace: Option<String>,
    },
    /// `--timeout` elapsed.
    #[error("program `{program}` stopped: time limit of {limit:?} exceeded")]
    Timeout {
        /// The program's name.
        program: String,
        /// The limit that elapsed.
        limit: Duration,
    },
    /// `--max-memory` refused a growth and the program failed.
    #[error(
        "program `{program}` stopped: memory limit of {} exceeded ({outcome})",
        size(*limit)
    )]
    Memory {
        /// The program's name.
        program: String,
        /// The cap, in bytes.
        limit: usize,
        /// How the program ended after the refusal.
        outcome: String,
        /// The wasm backtrace when it trapped.
        backtrace: Option<String>,
    },
    /// `proc_exit` with a status no process can have.
    #[error("program `{program}` exited with status {status}, outside 0..=255")]
    InvalidExit {
        /// The program's name.
        program: String,
        /// The status it passed to `proc_exit`.
        status: u32,
    },
}

impl RunError {
    /// The documented exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Load(_) | RunError::Dispatch(_) => crate::verify::EXIT_REFUSED,
            RunError::MemoryTooSmall { .. } => EXIT_USAGE,
            RunError::Trap { .. } => EXIT_TRAP,
            RunError::Timeout { .. } => EXIT_TIMEOUT,
            RunError::Memory { .. } => EXIT_MEMORY,
            RunError::InvalidExit { .. } => EXIT_INVALID_STATUS,
        }
    }

    /// The wasm backtrace of a trap, one frame a line (shown with `megabin run --backtrace`).
    pub fn backtrace(&self) -> Option<&str> {
        match self {
            RunError::Trap { backtrace, .. } | RunError::Memory { backtrace, .. } => {
                backtrace.as_deref()
            }
            _ => None,
        }
    }
}

/// `16777216 bytes (16 MiB)`, or just `N bytes` below 1 KiB.
fn size(bytes: usize) -> String {
    const UNITS: [(&str, usize); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    match UNITS.iter().find(|(_, u)| bytes >= *u) {
        Some((name, u)) => {
            let v = bytes as f64 / *u as f64;
            let v = format!("{v:.2}");
            let v = v.trim_end_matches('0').trim_end_matches('.');
            format!("{bytes} bytes ({v} {name})")
        }
        None => format!("{bytes} bytes"),
    }
}

/// The store data of a run: the WASI context and the memory cap.
pub(crate) struct Host {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limits: MemoryCap,
}

impl Host {
    /// A fresh store for one run: the preview1 context `wasi` builds, all memories together
    /// capped at `max_memory` bytes.
    pub(crate) fn store(
        engine: &Engine,
        mut wasi: WasiCtxBuilder,
        max_memory: Option<usize>,
    ) -> Store<Host> {
        let mut store = Store::new(
            engine,
            Host {
                wasi: wasi.build_p1(),
                limits: MemoryCap::new(max_memory),
            },
        );
        store.limiter(|h| &mut h.limits);
        store
    }
}

/// Caps the total size of all memories of the instance and remembers whether it refused.
pub(crate) struct MemoryCap {
    pub(crate) max: Option<usize>,
    pub(crate) total: usize,
    /// The total the first refused growth asked for.
    pub(crate) denied: Option<usize>,
}

impl MemoryCap {
    /// A cap of `max` bytes (none: unlimited).
    pub(crate) fn new(max: Option<usize>) -> Self {
        MemoryCap {
            max,
            total: 0,
            denied: None,
        }
    }
}

/// A linker with the stock preview1 host for [`Host`] stores (exit statuses passed through).
pub(crate) fn wasi_linker(engine: &Engine) -> wasmtime::Result<Linker<Host>> {
    let mut linker: Linker<Host> = Linker::new(engine);
    crate::host::add_wasi(&mut linker, |h: &mut Host| &mut h.wasi)?;
    Ok(linker)
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total - current.min(self.total) + desired;
        if self.max.is_some_and(|max| total > max) {
            self.denied.get_or_insert(total);
            return Ok(false);
        }
        self.total = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// Compiles the verified megabinary and runs the program with `digest`; returns its exit code.
#[cfg(feature = "compiler")]
pub fn run_program(
    engine: &Engine,
    wasm: &[u8],
    program: &str,
    digest: &[u8; 32],
    config: &RunConfig,
) -> Result<i32, RunError> {
    let module = Module::new(engine, wasm).map_err(|e| RunError::Load(format!("{e:?}")))?;
    run_module(engine, &module, program, digest, config)
}

/// Runs the program with `digest` from an already compiled (and verified) megabinary.
pub fn run_module(
    engine: &Engine,
    module: &Module,
    program: &str,
    digest: &[u8; 32],
    config: &RunConfig,
) -> Result<i32, RunError> {
    let linker = wasi_linker(engine).map_err(|e| RunError::Load(e.to_string()))?;
    let pre = linker
        .instantiate_pre(module)
        .map_err(|e| RunError::Load(format!("{e:?}")))?;

    let mut b = WasiCtxBuilder::new();
    b.inherit_stdio().args(&config.args).envs(&config.env);
    crate::exec::preopen(&mut b, &config.preopens, &config.read_only).map_err(RunError::Load)?;
    let mut store = Host::store(engine, b, config.max_memory);
    store.set_epoch_deadline(u64::MAX);
    let timer = config.timeout.map(|limit| {
        store.set_epoch_deadline(1);
        let engine = engine.clone();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if rx.recv_timeout(limit).is_err() {
                engine.increment_epoch();
            }
        });
        tx
    });

    let instance = match pre.instantiate(&mut store) {
        Ok(i) => i,
        Err(e) => {
            return Err(match (store.data().limits.denied, config.max_memory) {
                (Some(needed), Some(limit)) => RunError::MemoryTooSmall { limit, needed },
                _ => RunError::Load(format!("{e:?}")),
            })
        }
    };
    let memory = instance
        .get_memory(&mut store, names::BRIDGE_MEMORY_EXPORT)
        .ok_or_else(|| RunError::Dispatch("no bridge memory export".into()))?;
    memory
        .write(&mut store, DIGEST_ADDR, digest)
        .map_err(|e| RunError::Dispatch(e.to_string()))?;
    let dispatch = instance
        .get_typed_func::<i32, i32>(&mut store, names::DISPATCH_EXPORT)
        .map_err(|e| RunError::Dispatch(e.to_string()))?;
    let result = dispatch.call(&mut store, DIGEST_ADDR as i32);
    drop(timer);
    let denied = store.data().limits.denied.is_some();
    let program = program.to_string();
    let memory_error = |outcome: String, backtrace: Option<String>| RunError::Memory {
        program: program.clone(),
        limit: config.max_memory.unwrap_or_default(),
        outcome,
        backtrace,
    };
    let e = match result {
        Ok(0) => return Ok(0),
        Ok(code) => return Err(RunError::Dispatch(dispatch_refusal(code))),
        Err(e) => e,
    };
    if let Some(I32Exit(code)) = e.downcast_ref::<I32Exit>() {
        if denied && *code != 0 {
            return Err(memory_error(
                format!("a memory growth was refused, then it exited with {code}"),
                None,
            ));
        }
        return Ok(*code);
    }
    if let Some(InvalidExit(status)) = e.downcast_ref::<InvalidExit>() {
        return Err(RunError::InvalidExit {
            program,
            status: *status,
        });
    }
    if let Some(wasmtime::Trap::Interrupt) = e.downcast_ref::<wasmtime::Trap>() {
        return Err(RunError::Timeout {
            program,
            limit: config.timeout.unwrap_or_default(),
        });
    }
    let (trap, backtrace) = describe_trap(&e);
    if denied {
        return Err(memory_error(
            format!("a memory growth was refused, then it trapped: {trap}"),
            backtrace,
        ));
    }
    Err(RunError::Trap {
        program,
        trap,
        backtrace,
    })
}

/// One line saying what ended the run (the trap, or the root cause of a host error), and the
/// wasm backtrace. A trap in the stub of a foreign import names the import.
pub(crate) fn describe_trap(e: &wasmtime::Error) -> (String, Option<String>) {
    let bt = e.downcast_ref::<WasmBacktrace>();
    let stub = bt
        .and_then(|bt| bt.frames().first())
        .and_then(|f| f.func_name())
        .and_then(router_gen::stub::import_of);
    let what = match (stub, e.downcast_ref::<wasmtime::Trap>()) {
        (Some(import), Some(wasmtime::Trap::UnreachableCodeReached)) => format!(
            "called `{import}`, a foreign import stubbed at build time (--stub-foreign-imports)"
        ),
        (_, Some(trap)) => {
            let trap = trap.to_string();
            trap.strip_prefix("wasm trap: ")
                .unwrap_or(&trap)
                .to_string()
        }
        (_, None) => e.root_cause().to_string(),
    };
    let what = what.lines().next().unwrap_or_default().trim().to_string();
    let backtrace = bt
        .filter(|bt| !bt.frames().is_empty())
        .map(|bt| bt.to_string().trim_end().to_string());
    (what, backtrace)
}
