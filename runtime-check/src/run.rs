//! Running a verified program with inherited stdio: a fresh store and instance from an
//! `InstancePre`, stock wasmtime-wasi preview1, entry through the module's own
//! `megabin_dispatch` with the verified digest, resource limits.

use std::path::PathBuf;
use std::time::Duration;
use wasmtime::{Engine, Linker, Module, ResourceLimiter, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

/// Exit code when `--timeout` stops the program (as `timeout(1)`).
pub const EXIT_TIMEOUT: i32 = 124;
/// Exit code when the program failed after `--max-memory` refused it memory.
pub const EXIT_MEMORY: i32 = 125;
/// Exit code when the program trapped (as SIGABRT in shells).
pub const EXIT_TRAP: i32 = 134;
/// Bridge address where the host places the 32-byte digest for `megabin_dispatch`
/// (bytes 0..64 of the bridge memory are reserved and never used by the megabinary).
pub const DIGEST_ADDR: usize = 0;

/// How to run.
#[derive(Clone, Debug, Default)]
pub struct RunConfig {
    /// argv including argv[0].
    pub args: Vec<String>,
    /// Environment (nothing from the host leaks in).
    pub env: Vec<(String, String)>,
    /// Preopened directories (host, guest).
    pub preopens: Vec<(PathBuf, String)>,
    /// Cap on all memories together, in bytes.
    pub max_memory: Option<usize>,
    /// Wall-clock limit.
    pub timeout: Option<Duration>,
}

/// How a run ended badly (the program's own exit codes are returned as `Ok`).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The megabinary could not be compiled or instantiated.
    #[error("cannot load the megabinary: {0}")]
    Load(String),
    /// The module has no `megabin_dispatch`, or it refused the digest.
    #[error("the megabinary refused the program: {0}")]
    Dispatch(String),
    /// The program trapped.
    #[error("program `{program}` trapped: {message}")]
    Trap { program: String, message: String },
    /// `--timeout` elapsed.
    #[error("program `{program}` stopped: time limit of {limit:?} exceeded")]
    Timeout { program: String, limit: Duration },
    /// `--max-memory` refused a growth and the program failed.
    #[error("program `{program}` stopped: memory limit of {limit} bytes exceeded ({message})")]
    Memory {
        program: String,
        limit: usize,
        message: String,
    },
}

impl RunError {
    /// The documented exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Load(_) | RunError::Dispatch(_) => crate::verify::EXIT_REFUSED,
            RunError::Trap { .. } => EXIT_TRAP,
            RunError::Timeout { .. } => EXIT_TIMEOUT,
            RunError::Memory { .. } => EXIT_MEMORY,
        }
    }
}

/// The store data of a run: the WASI context and the memory cap.
pub(crate) struct Host {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limits: MemoryCap,
}

/// Caps the total size of all memories of the instance and remembers whether it refused.
pub(crate) struct MemoryCap {
    pub(crate) max: Option<usize>,
    pub(crate) total: usize,
    pub(crate) denied: bool,
}

impl MemoryCap {
    /// A cap of `max` bytes (none: unlimited).
    pub(crate) fn new(max: Option<usize>) -> Self {
        MemoryCap {
            max,
            total: 0,
            denied: false,
        }
    }
}

/// A linker with the stock preview1 host for [`Host`] stores.
pub(crate) fn wasi_linker(engine: &Engine) -> wasmtime::Result<Linker<Host>> {
    let mut linker: Linker<Host> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |h: &mut Host| &mut h.wasi)?;
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
            self.denied = true;
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
    let mut linker: Linker<Host> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |h: &mut Host| &mut h.wasi)
        .map_err(|e| RunError::Load(e.to_string()))?;
    let pre = linker
        .instantiate_pre(module)
        .map_err(|e| RunError::Load(format!("{e:?}")))?;

    let mut b = WasiCtxBuilder::new();
    b.inherit_stdio().args(&config.args).envs(&config.env);
    for (host, guest) in &config.preopens {
        b.preopened_dir(host, guest, FsPerms::ReadWrite)
            .map_err(|e| RunError::Load(format!("cannot preopen {}: {e}", host.display())))?;
    }
    let mut store = Store::new(
        engine,
        Host {
            wasi: b.build_p1(),
            limits: MemoryCap {
                max: config.max_memory,
                total: 0,
                denied: false,
            },
        },
    );
    store.limiter(|h| &mut h.limits);
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

    let instance = pre
        .instantiate(&mut store)
        .map_err(|e| RunError::Load(format!("{e:?}")))?;
    let memory = instance
        .get_memory(&mut store, "memory")
        .ok_or_else(|| RunError::Dispatch("no bridge memory export".into()))?;
    memory
        .write(&mut store, DIGEST_ADDR, digest)
        .map_err(|e| RunError::Dispatch(e.to_string()))?;
    let dispatch = instance
        .get_typed_func::<i32, i32>(&mut store, "megabin_dispatch")
        .map_err(|e| RunError::Dispatch(e.to_string()))?;
    let result = dispatch.call(&mut store, DIGEST_ADDR as i32);
    drop(timer);
    let denied = store.data().limits.denied;
    let memory_error = |message: String| RunError::Memory {
        program: program.to_string(),
        limit: config.max_memory.unwrap_or_default(),
        message,
    };
    match result {
        Ok(0) => Ok(0),
        Ok(code) => Err(RunError::Dispatch(format!(
            "megabin_dispatch returned {code}: the digest is not in this megabinary"
        ))),
        Err(e) => {
            if let Some(I32Exit(code)) = e.downcast_ref::<I32Exit>() {
                if denied && *code != 0 {
                    return Err(memory_error(format!("the program exited with {code}")));
                }
                return Ok(*code);
            }
            let program = program.to_string();
            if let Some(wasmtime::Trap::Interrupt) = e.downcast_ref::<wasmtime::Trap>() {
                return Err(RunError::Timeout {
                    program,
                    limit: config.timeout.unwrap_or_default(),
                });
            }
            // The wasm backtrace (with the merged `<entry>::` names) and the trap itself.
            let message = match e.downcast_ref::<wasmtime::Trap>() {
                Some(trap) => format!("{e}\n\nCaused by:\n    {trap}"),
                None => format!("{e:#}"),
            };
            if denied {
                return Err(memory_error(
                    message.lines().next().unwrap_or_default().into(),
                ));
            }
            Err(RunError::Trap { program, message })
        }
    }
}
