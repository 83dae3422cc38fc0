//! Running one exported function of a WASI command module with captured stdio.

use std::path::PathBuf;
use wasmtime::{Engine, Linker, Module, Store};
use wasmtime_wasi::cli::StdoutStream;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

/// Largest stdout/stderr captured per run.
const CAPTURE_LIMIT: usize = 256 << 20;

/// What a program is started with.
#[derive(Clone, Debug, Default)]
pub struct Invocation {
    /// argv, including argv[0].
    pub args: Vec<String>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Bytes on stdin.
    pub stdin: Vec<u8>,
    /// Preopened directories: (host path, guest path).
    pub preopens: Vec<(PathBuf, String)>,
    /// Directories preopened read-only (a script's private directory): (host path, guest path).
    pub read_only: Vec<(PathBuf, String)>,
}

/// Preopens `read_write` and then `read_only` directories (host path, guest path).
pub(crate) fn preopen(
    b: &mut WasiCtxBuilder,
    read_write: &[(PathBuf, String)],
    read_only: &[(PathBuf, String)],
) -> Result<(), String> {
    let all = read_write
        .iter()
        .map(|d| (d, FsPerms::ReadWrite))
        .chain(read_only.iter().map(|d| (d, FsPerms::ReadOnly)));
    for ((host, guest), perms) in all {
        b.preopened_dir(host, guest, perms)
            .map_err(|e| format!("cannot preopen {} as {guest}: {e}", host.display()))?;
    }
    Ok(())
}

impl Invocation {
    /// A preview1 context builder with this invocation's argv, environment, stdin and
    /// directories, writing to `stdout` and `stderr`.
    pub(crate) fn wasi(
        &self,
        stdout: impl StdoutStream + 'static,
        stderr: impl StdoutStream + 'static,
    ) -> Result<WasiCtxBuilder, String> {
        let mut b = WasiCtxBuilder::new();
        b.args(&self.args)
            .envs(&self.env)
            .stdin(MemoryInputPipe::new(self.stdin.clone()))
            .stdout(stdout)
            .stderr(stderr);
        preopen(&mut b, &self.preopens, &self.read_only)?;
        Ok(b)
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// `proc_exit(code)`, or 0 when the function returned.
    Exit(i32),
    /// A trap: the trap code (or error text) and the full message with backtrace.
    Trap {
        /// The trap code, or the error's text.
        code: String,
        /// The full message, with the wasm backtrace.
        message: String,
    },
}

/// Captured result of a run.
#[derive(Clone, Debug)]
pub struct Captured {
    /// Everything the program wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything the program wrote to stderr.
    pub stderr: Vec<u8>,
    /// How it ended.
    pub status: Status,
}

/// A Wasmtime engine with the preview1 host of [`crate::host`] linked in.
pub struct Runner {
    engine: Engine,
    linker: Linker<WasiP1Ctx>,
}

impl Runner {
    /// A runner on [`crate::new_engine`].
    pub fn new() -> wasmtime::Result<Self> {
        let engine = crate::new_engine()?;
        let mut linker = Linker::new(&engine);
        crate::host::add_wasi(&mut linker, |cx| cx)?;
        Ok(Runner { engine, linker })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles a module.
    #[cfg(feature = "compiler")]
    pub fn compile(&self, wasm: &[u8]) -> wasmtime::Result<Module> {
        Module::new(&self.engine, wasm)
    }

    /// Instantiates `module` in a fresh store, calls `export` and captures stdio.
    pub fn run_captured(
        &self,
        module: &Module,
        export: &str,
        inv: &Invocation,
    ) -> wasmtime::Result<Captured> {
        self.run_captured_seq(module, &[export], inv)
    }

    /// Like [`Runner::run_captured`], but calls several exports in turn in the same instance,
    /// stopping at the first exit or trap.
    pub fn run_captured_seq(
        &self,
        module: &Module,
        exports: &[&str],
        inv: &Invocation,
    ) -> wasmtime::Result<Captured> {
        let stdout = MemoryOutputPipe::new(CAPTURE_LIMIT);
        let stderr = MemoryOutputPipe::new(CAPTURE_LIMIT);
        let mut b = inv
            .wasi(stdout.clone(), stderr.clone())
            .map_err(wasmtime::Error::msg)?;
        let mut store = Store::new(&self.engine, b.build_p1());
        store.set_epoch_deadline(u64::MAX);
        let instance = self.linker.instantiate(&mut store, module)?;
        let mut result = Ok(());
        for export in exports {
            let func = instance.get_typed_func::<(), ()>(&mut store, export)?;
            result = func.call(&mut store, ());
            if result.is_err() {
                break;
            }
        }
        let status = match result {
            Ok(()) => Status::Exit(0),
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(I32Exit(code)) => Status::Exit(*code),
                None => Status::Trap {
                    code: e
                        .downcast_ref::<wasmtime::Trap>()
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| e.root_cause().to_string()),
                    message: format!("{e:?}"),
                },
            },
        };
        drop(store);
        Ok(Captured {
            stdout: stdout.contents().to_vec(),
            stderr: stderr.contents().to_vec(),
            status,
        })
    }

    /// Instantiates `module` without running anything and returns the size in pages of each
    /// exported memory, by export name (to observe lazy activation).
    pub fn memory_pages(&self, module: &Module) -> wasmtime::Result<Vec<(String, u64)>> {
        let mut store = Store::new(&self.engine, WasiCtxBuilder::new().build_p1());
        store.set_epoch_deadline(u64::MAX);
        let instance = self.linker.instantiate(&mut store, module)?;
        let names: Vec<String> = module
            .exports()
            .filter(|e| e.ty().memory().is_some())
            .map(|e| e.name().to_string())
            .collect();
        Ok(names
            .into_iter()
            .map(|n| {
                let pages = instance
                    .get_memory(&mut store, &n)
                    .map(|m| m.size(&store))
                    .unwrap_or(0);
                (n, pages)
            })
            .collect())
    }
}
