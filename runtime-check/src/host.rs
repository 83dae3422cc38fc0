//! The WASI preview1 host megabinaries run on: stock `wasmtime-wasi`, with one difference,
//! `proc_exit`, so that exit statuses pass through as they do for native programs.
//!
//! wasmtime-wasi's `proc_exit` refuses statuses of 126 and above (WASI reserves them) and turns
//! them into an error; the stock `wasmtime` CLI then prints that error and exits 1. A program
//! exiting with 130 would then look to its caller like a generic failure. Here every status
//! a process can have (0..=255) ends the run with that status; larger values are refused
//! with [`InvalidExit`] (a native `exit(256)` would silently become 0).

use wasmtime::{Caller, Linker};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::I32Exit;

/// Largest exit status a process can report.
pub const MAX_EXIT_STATUS: u32 = 255;

/// `proc_exit` was called with a status no process can exit with (above [`MAX_EXIT_STATUS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("exit status {0} is outside 0..=255")]
pub struct InvalidExit(pub u32);

/// Adds stock wasmtime-wasi preview1 to `linker`, with `proc_exit` passing statuses 0..=255
/// through as [`I32Exit`].
pub fn add_wasi<T: Send + 'static>(
    linker: &mut Linker<T>,
    wasi: impl Fn(&mut T) -> &mut WasiP1Ctx + Copy + Send + Sync + 'static,
) -> wasmtime::Result<()> {
    wasmtime_wasi::p1::add_to_linker_sync(linker, wasi)?;
    linker.allow_shadowing(true);
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "proc_exit",
        |_: Caller<'_, T>, status: i32| -> wasmtime::Result<()> {
            let status = status as u32;
            if status > MAX_EXIT_STATUS {
                return Err(InvalidExit(status).into());
            }
            Err(I32Exit(status as i32).into())
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
