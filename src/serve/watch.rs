//! Atomic updates: on SIGHUP, and when `OUT/manifest.json` is replaced (its identity is polled
//! every [`POLL`]), the new build is loaded completely and verified, then made current. Calls
//! in flight finish on the build they started with; clients are told the tool list changed.
//! A build that fails to load or verify is refused with a log line; the old one keeps serving.

use super::loaded::stamp;
use super::server::Server;
use std::sync::Arc;
use std::time::Duration;

/// How often `manifest.json` is looked at.
pub const POLL: Duration = Duration::from_secs(1);

/// Watches for new builds until the runtime stops.
pub async fn watch(server: Arc<Server>) {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    // The identity last tried (loaded or refused): a refused build is not retried every poll.
    let mut tried = server.current().stamp;
    loop {
        let signalled = tokio::select! {
            _ = async {
                match hup.as_mut() {
                    Some(h) => { h.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => true,
            _ = tokio::time::sleep(POLL) => false,
        };
        let now = stamp(&server.options().out);
        if !signalled && now == tried {
            continue;
        }
        tried = now;
        let why = if signalled {
            "SIGHUP"
        } else {
            "manifest.json replaced"
        };
        let s = server.clone();
        match tokio::task::spawn_blocking(move || s.reload()).await {
            Ok(Ok(true)) => {
                eprintln!(
                    "megabin: serve: {why}: now serving {}",
                    server.current().id()
                );
                server.notify_tools_changed().await;
            }
            Ok(Ok(false)) => eprintln!("megabin: serve: {why}: the build is unchanged"),
            Ok(Err(e)) => eprintln!(
                "megabin: serve: {why}: refused the new build, still serving {}: {e}",
                server.current().id()
            ),
            Err(e) => eprintln!("megabin: serve: {why}: reload failed: {e}"),
        }
    }
}
