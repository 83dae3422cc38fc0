//! megabin: turn a container rootfs full of WASI programs into one merged WebAssembly module.
//!
//! The pipeline is split into stages, each in its own module:
//!
//! - [`rootfs`]: walk the rootfs, resolve symlinks inside it, classify every file and hash every
//!   WASI command module, deduplicating identical programs;
//! - [`build`]: check programs, plan shards, merge them, write the outputs atomically;
//! - [`manifest`]: `manifest.json`, the container id;
//! - [`config`]: the `megabin.toml` configuration;
//! - `serve` (feature `serve`, on by default): the MCP execution controller;
//! - [`commands`]: the command line, one module per command, and the one mapping from errors
//!   to the documented exit codes.
#![warn(missing_docs)]

pub mod build;
pub mod commands;
pub mod config;
pub use runtime_check::manifest;
mod progress;
pub mod rootfs;
#[cfg(feature = "serve")]
pub mod serve;
