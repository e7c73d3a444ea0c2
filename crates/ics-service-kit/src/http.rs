//! The HTTP surface of a process (`ICS_HTTP_LISTEN`): plain HTTP/1.1 for browsers and scripts,
//! beside the gRPC listeners. Served with TLS when the gRPC listeners are (the same
//! certificate files and reload), and stopped with the same shutdown token.

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::Router;
use futures_util::StreamExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::tls::ReloadingTls;

/// Serves `router` on `listener` until `shutdown`, then lets open requests finish (live event
/// streams end with the shutdown token their handlers hold).
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    tls: Option<ReloadingTls>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let local = listener
        .local_addr()
        .context("the HTTP listener has no local address")?;
    tracing::info!(listen = %local, tls = tls.is_some(), "serving http");
    let stopped = shutdown.clone().cancelled_owned();
    let service = router.into_make_service();
    match tls {
        None => axum::serve(listener, service)
            .with_graceful_shutdown(stopped)
            .await
            .context("http server failed"),
        Some(tls) => {
            let connections = crate::tls::incoming(listener, tls, shutdown.clone());
            axum::serve(
                TlsListener {
                    connections: Box::pin(connections),
                    local,
                },
                service,
            )
            .with_graceful_shutdown(stopped)
            .await
            .context("https server failed")
        }
    }
}

type Connections = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = std::io::Result<TlsStream<TcpStream>>> + Send>,
>;

/// Connections that completed their TLS handshake, as axum's listener.
struct TlsListener {
    connections: Connections,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.connections.next().await {
                Some(Ok(stream)) => {
                    if let Ok(peer) = stream.get_ref().0.peer_addr() {
                        return (stream, peer);
                    }
                }
                Some(Err(_)) => continue,
                // The accept loop ended (shutdown): wait for the server to notice.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
