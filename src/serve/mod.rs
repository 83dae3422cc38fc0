//! `megabin serve`: the long-lived execution controller, speaking the Model Context Protocol
//! (the official Rust SDK, `rmcp`) over stdio or streamable HTTP. See `docs/serve.md`.
//!
//! - [`loaded`]: one verified build, its code loaded and linked once;
//! - [`server`]: the current build, call slots, clients and the MCP handler;
//! - [`call`]: arguments, the per-call `/work` directory, results;
//! - [`transport`]: stdio, HTTP on TCP or a Unix socket;
//! - [`watch`]: atomic updates on SIGHUP or a replaced `manifest.json`;
//! - [`workdir`]: the per-call `/work` directories, emptied and reused.

pub mod call;
pub mod loaded;
pub mod server;
pub mod transport;
pub mod watch;
pub mod workdir;

pub use server::Options;

use crate::commands::error::CliError;
use crate::commands::load::open_cache;

/// Runs the server until stdin closes (stdio) or the process is stopped (HTTP). Logs go to
/// stderr only.
pub fn run(opts: Options, listen: Option<String>) -> Result<(), CliError> {
    let cache = open_cache(&opts.trust);
    let server =
        server::Server::start(opts, cache).map_err(|r| CliError::from(r).in_command("serve"))?;
    let loaded = server.current();
    eprintln!(
        "megabin: serve: serving {} ({} tools) from {}",
        loaded.id(),
        loaded.tools().len(),
        server.options().out.display()
    );
    drop(loaded);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .max_blocking_threads(server.options().max_concurrency.max(1) + 8)
        .build()
        .map_err(|e| CliError::failed("serve", format!("cannot start the async runtime: {e}")))?;
    let result = rt.block_on(async move {
        tokio::spawn(watch::watch(server.clone()));
        match listen {
            None => transport::stdio(server).await,
            Some(addr) => transport::http(server, &addr).await,
        }
    });
    // A blocked stdin read or a running call must not keep the process alive.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    result.map_err(|e| CliError::failed("serve", e.to_string()))
}
