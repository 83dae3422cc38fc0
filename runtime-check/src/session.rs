//! Running verified programs for a long-lived controller (`megabin serve`): one compiled
//! module prepared once ([`Prepared`], an `InstancePre`), then for every call a fresh store and
//! instance with captured, size-capped stdio, a memory cap, a time limit and cancellation.
//!
//! Time limits and cancellation use epoch interruption: a [`Ticker`] thread advances the
//! engine's epoch every [`TICK`]; each call's store checks, on every tick, its own deadline
//! and cancel flag (so concurrent calls never interrupt each other). A program blocked inside
//! a host call (e.g. a WASI sleep) is stopped when that call returns.

use crate::exec::Invocation;
use crate::host::InvalidExit;
use crate::run::{describe_trap, wasi_linker, Host, DIGEST_ADDR};
use bytes::Bytes;
use megabin_format::names;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmtime::{Engine, InstancePre, Module, UpdateDeadline};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::I32Exit;

/// How often the [`Ticker`] advances the epoch: the latency of a timeout or cancellation.
pub const TICK: Duration = Duration::from_millis(10);

/// A compiled megabinary, linked with the preview1 host once, ready to instantiate.
pub struct Prepared {
    pre: InstancePre<Host>,
}

impl Prepared {
    /// Links `module` (already verified and loaded) with the stock preview1 host.
    pub fn new(engine: &Engine, module: &Module) -> Result<Prepared, String> {
        let linker = wasi_linker(engine).map_err(|e| e.to_string())?;
        let pre = linker
            .instantiate_pre(module)
            .map_err(|e| format!("cannot link the megabinary: {e:?}"))?;
        Ok(Prepared { pre })
    }
}

/// Advances an engine's epoch every [`TICK`] until dropped.
pub struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    /// Starts the ticker thread for `engine`.
    pub fn start(engine: &Engine) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.clone();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("megabin-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        Ticker { stop, thread }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A cancel flag shared between a call and whoever may cancel it.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Stops the call at its next epoch check.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What one call runs with. Nothing of the host is visible beyond this.
#[derive(Clone, Debug, Default)]
pub struct Call {
    /// argv, environment, stdin and preopened directories.
    pub invocation: Invocation,
    /// Cap on all memories together, in bytes.
    pub max_memory: Option<usize>,
    /// Wall-clock limit.
    pub timeout: Option<Duration>,
    /// Bytes kept of stdout and of stderr each; the rest is counted and dropped.
    pub output_limit: usize,
}

/// How a call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The program exited with this code (0 when `_start` returned).
    Exit(i32),
    /// The program trapped (the message has the wasm backtrace).
    Trap(String),
    /// The time limit elapsed.
    Timeout(Duration),
    /// The call was cancelled.
    Cancelled,
    /// The memory cap refused a growth and the program failed.
    Memory {
        /// The cap, in bytes.
        limit: usize,
        /// How the program ended after the refusal.
        message: String,
    },
    /// The instance could not be created or the megabinary refused the digest.
    Failed(String),
}

impl Ending {
    /// The exit code `megabin run` would use for it (see `docs/usage.md`).
    pub fn exit_code(&self) -> i32 {
        match self {
            Ending::Exit(c) => *c,
            Ending::Trap(_) => crate::run::EXIT_TRAP,
            Ending::Timeout(_) | Ending::Cancelled => crate::run::EXIT_TIMEOUT,
            Ending::Memory { .. } => crate::run::EXIT_MEMORY,
            Ending::Failed(_) => crate::verify::EXIT_REFUSED,
        }
    }
}

/// One captured output stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// The first `output_limit` bytes.
    pub bytes: Vec<u8>,
    /// How many bytes the program wrote in all.
    pub total: u64,
}

impl Output {
    /// Whether bytes were dropped.
    pub fn truncated(&self) -> bool {
        self.total > self.bytes.len() as u64
    }
}

/// The result of a call.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// How it ended.
    pub ending: Ending,
    /// Captured stdout.
    pub stdout: Output,
    /// Captured stderr.
    pub stderr: Output,
}

/// Runs the program with `digest` in a fresh instance of `prepared` (see the module docs).
/// Needs a running [`Ticker`] on `engine` for `call.timeout` and `cancel` to take effect.
pub fn run_call(
    engine: &Engine,
    prepared: &Prepared,
    digest: &[u8; 32],
    call: &Call,
    cancel: &Cancel,
) -> Outcome {
    let stdout = CappedPipe::new(call.output_limit);
    let stderr = CappedPipe::new(call.output_limit);
    let ending = run_in_store(engine, prepared, digest, call, cancel, &stdout, &stderr);
    Outcome {
        ending,
        stdout: stdout.output(),
        stderr: stderr.output(),
    }
}

fn run_in_store(
    engine: &Engine,
    prepared: &Prepared,
    digest: &[u8; 32],
    call: &Call,
    cancel: &Cancel,
    stdout: &CappedPipe,
    stderr: &CappedPipe,
) -> Ending {
    let b = match call.invocation.wasi(stdout.clone(), stderr.clone()) {
        Ok(b) => b,
        Err(e) => return Ending::Failed(e),
    };
    let mut store = Host::store(engine, b, call.max_memory);
    let deadline = call.timeout.map(|t| Instant::now() + t);
    let interrupted: Arc<Mutex<Option<Ending>>> = Arc::default();
    let flag = cancel.clone();
    let why = interrupted.clone();
    let limit = call.timeout.unwrap_or_default();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        let stop = if flag.is_cancelled() {
            Some(Ending::Cancelled)
        } else if deadline.is_some_and(|d| Instant::now() >= d) {
            Some(Ending::Timeout(limit))
        } else {
            None
        };
        match stop {
            None => Ok(UpdateDeadline::Continue(1)),
            Some(e) => {
                *why.lock().unwrap() = Some(e);
                Err(wasmtime::Trap::Interrupt.into())
            }
        }
    });
    if cancel.is_cancelled() {
        return Ending::Cancelled;
    }
    let instance = match prepared.pre.instantiate(&mut store) {
        Ok(i) => i,
        Err(e) => return Ending::Failed(format!("cannot instantiate: {e:?}")),
    };
    let Some(memory) = instance.get_memory(&mut store, names::BRIDGE_MEMORY_EXPORT) else {
        return Ending::Failed("no bridge memory export".into());
    };
    if let Err(e) = memory.write(&mut store, DIGEST_ADDR, digest) {
        return Ending::Failed(e.to_string());
    }
    let dispatch = match instance.get_typed_func::<i32, i32>(&mut store, names::DISPATCH_EXPORT) {
        Ok(f) => f,
        Err(e) => return Ending::Failed(e.to_string()),
    };
    let result = dispatch.call(&mut store, DIGEST_ADDR as i32);
    let denied = store.data().limits.denied.is_some();
    let memory_error = |message: String| Ending::Memory {
        limit: call.max_memory.unwrap_or_default(),
        message,
    };
    match result {
        Ok(0) => Ending::Exit(0),
        Ok(code) => Ending::Failed(crate::run::dispatch_refusal(code)),
        Err(e) => {
            if let Some(I32Exit(code)) = e.downcast_ref::<I32Exit>() {
                if denied && *code != 0 {
                    return memory_error(format!("the program exited with {code}"));
                }
                return Ending::Exit(*code);
            }
            if let Some(InvalidExit(status)) = e.downcast_ref::<InvalidExit>() {
                return Ending::Failed(format!(
                    "the program exited with status {status}, outside 0..=255"
                ));
            }
            if let Some(wasmtime::Trap::Interrupt) = e.downcast_ref::<wasmtime::Trap>() {
                if let Some(why) = interrupted.lock().unwrap().take() {
                    return why;
                }
            }
            let (trap, _backtrace) = describe_trap(&e);
            if denied {
                return memory_error(format!(
                    "a memory growth was refused, then it trapped: {trap}"
                ));
            }
            Ending::Trap(trap)
        }
    }
}

/// An output stream that keeps the first `limit` bytes and counts the rest: a program that
/// writes more never sees an error (its output is only truncated in the result).
#[derive(Clone)]
struct CappedPipe {
    limit: usize,
    inner: Arc<Mutex<Output>>,
}

impl CappedPipe {
    fn new(limit: usize) -> Self {
        CappedPipe {
            limit,
            inner: Arc::default(),
        }
    }

    fn push(&self, bytes: &[u8]) {
        let mut o = self.inner.lock().unwrap();
        let room = self.limit.saturating_sub(o.bytes.len());
        o.bytes.extend_from_slice(&bytes[..bytes.len().min(room)]);
        o.total += bytes.len() as u64;
    }

    fn output(&self) -> Output {
        self.inner.lock().unwrap().clone()
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(1 << 20)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CappedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module shaped like a megabinary: a bridge memory and `megabin_dispatch` running `body`.
    fn prepared(engine: &Engine, body: &str) -> Prepared {
        let wat = format!(
            r#"(module
              (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
              (memory (export "memory") 1)
              (data (i32.const 100) "0123456789")
              (func (export "megabin_dispatch") (param i32) (result i32) {body}))"#
        );
        let module = Module::new(engine, wat::parse_str(wat).unwrap()).unwrap();
        Prepared::new(engine, &module).unwrap()
    }

    const SPIN: &str = "(loop $l (br $l)) (i32.const 0)";

    #[test]
    fn cancel_and_timeout_stop_only_their_own_call() {
        let engine = crate::new_engine().unwrap();
        let _ticker = Ticker::start(&engine);
        let spin = prepared(&engine, SPIN);
        let cancel = Cancel::default();
        let c2 = cancel.clone();
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            c2.cancel();
        });
        let timed = Call {
            timeout: Some(Duration::from_millis(300)),
            ..Call::default()
        };
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| run_call(&engine, &spin, &[0; 32], &Call::default(), &cancel));
            let b = s.spawn(|| run_call(&engine, &spin, &[0; 32], &timed, &Cancel::default()));
            (a.join().unwrap(), b.join().unwrap())
        });
        canceller.join().unwrap();
        assert_eq!(a.ending, Ending::Cancelled);
        assert_eq!(b.ending, Ending::Timeout(Duration::from_millis(300)));
        assert_eq!(b.ending.exit_code(), crate::run::EXIT_TIMEOUT);
    }

    #[test]
    fn output_beyond_the_limit_is_counted_not_failed() {
        let engine = crate::new_engine().unwrap();
        // Three writes of the 10 digits to stdout; returns fd_write's errno of the last.
        let body =
            "(i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 10))
            (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
            (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
            (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))";
        let p = prepared(&engine, body);
        let call = Call {
            output_limit: 15,
            ..Call::default()
        };
        let o = run_call(&engine, &p, &[0; 32], &call, &Cancel::default());
        assert_eq!(o.ending, Ending::Exit(0), "every write succeeded");
        assert_eq!(o.stdout.bytes, b"012345678901234");
        assert_eq!(o.stdout.total, 30);
        assert!(o.stdout.truncated() && !o.stderr.truncated());
    }
}
