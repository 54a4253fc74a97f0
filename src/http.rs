//! The /metrics, /healthz and /readyz endpoint of the long-running commands.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Whether the process is ready to work (caches synced, leader or standing by).
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Serves `GET /metrics` (Prometheus text), `/healthz` and `/readyz` until the process ends.
/// A plain HTTP/1.0-style responder: three fixed paths need no framework.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>, readiness: Readiness) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let registry = Arc::clone(&registry);
        let readiness = readiness.clone();
        tokio::spawn(async move {
            let mut request = vec![0; 1024];
            let Ok(read) = stream.read(&mut request).await else {
                return;
            };
            let line = String::from_utf8_lossy(&request[..read]);
            let path = line.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match path {
                "/metrics" => {
                    let mut text = String::new();
                    match prometheus_client::encoding::text::encode(&mut text, &registry) {
                        Ok(()) => ("200 OK", text),
                        Err(_) => ("500 Internal Server Error", String::new()),
                    }
                }
                "/healthz" => ("200 OK", "ok\n".to_owned()),
                "/readyz" if readiness.get() => ("200 OK", "ok\n".to_owned()),
                "/readyz" => ("503 Service Unavailable", "not ready\n".to_owned()),
                _ => ("404 Not Found", String::new()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

/// Binds the endpoint's address, naming it in the error.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (--metrics-addr): {e}"))
}
