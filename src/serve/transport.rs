//! The MCP transports: stdio (the default), streamable HTTP on a TCP address or on a Unix
//! socket (`unix:PATH`).

use super::server::{Handler, Server};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::ServiceExt;
use std::sync::Arc;

/// Serves one client on stdin/stdout until stdin closes.
pub async fn stdio(server: Arc<Server>) -> Result<(), String> {
    let running = Handler(server)
        .serve(rmcp::transport::stdio_pipes())
        .await
        .map_err(|e| format!("MCP session failed to start: {e}"))?;
    running
        .waiting()
        .await
        .map_err(|e| format!("MCP session failed: {e}"))?;
    Ok(())
}

/// Serves streamable HTTP (MCP endpoint `/mcp`) on `addr`: `HOST:PORT` or `unix:PATH`.
pub async fn http(server: Arc<Server>, addr: &str) -> Result<(), String> {
    let service = StreamableHttpService::new(
        move || Ok(Handler(server.clone())),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    if let Some(path) = addr.strip_prefix("unix:") {
        // A stale socket of an earlier run is replaced; anything else at PATH is an error.
        if std::fs::symlink_metadata(path)
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
        {
            let _ = std::fs::remove_file(path);
        }
        let listener = tokio::net::UnixListener::bind(path)
            .map_err(|e| format!("cannot listen on {path}: {e}"))?;
        eprintln!("megabin: serve: listening on unix:{path} (endpoint /mcp)");
        loop {
            match listener.accept().await {
                Ok((stream, _)) => spawn_connection(stream, service.clone()),
                Err(e) => eprintln!("megabin: serve: accept on {path}: {e}"),
            }
        }
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    eprintln!("megabin: serve: listening on http://{local}/mcp");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("megabin: serve: accept: {e}");
                continue;
            }
        };
        spawn_connection(stream, service.clone());
    }
}

fn spawn_connection<S>(stream: S, service: StreamableHttpService<Handler, LocalSessionManager>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let svc = TowerToHyperService::new(service);
        let conn =
            hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
        if let Err(e) = conn.await {
            eprintln!("megabin: serve: HTTP connection: {e}");
        }
    });
}
