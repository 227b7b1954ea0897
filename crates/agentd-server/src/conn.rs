//! The accept loop: the server's own, instead of `axum::serve`, because that one gives
//! hyper no timer (so hyper's header-read timeout is off) and accepts without bound
//! (review M9). Each connection is served by hyper's HTTP/1 with:
//! - a **header-read timeout** (`header_read_timeout`, 30 s): a client that has not sent a
//!   whole request head within it — a slowloris, or a keep-alive connection idle for that
//!   long — is disconnected;
//! - a **connection limit** (`max_connections`, 1024): at the limit the loop stops
//!   accepting (new connections wait in the kernel's backlog) and says so in the log once,
//!   until one closes. A connection upgraded to the daemon WebSocket keeps its slot until
//!   the socket closes ([`ConnSlot`]);
//! - upgrades (the daemon WebSocket).
//!
//! On shutdown the loop stops accepting and asks every connection to finish its request
//! in flight and close (graceful), then waits for them, as `axum::serve`'s graceful
//! shutdown did. Event streams end on shutdown by themselves; upgraded WebSockets are not
//! connections any more and are closed by the hub, tracked by the `App`'s tracker.
//!
//! The request timeout is a layer of the router ([`crate::api::router`]), not here.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// One of the `max_connections` slots, held by a connection for as long as it is open;
/// every request carries it (as an extension), so a request that upgrades (the daemon
/// WebSocket) can keep it for the socket's lifetime.
#[derive(Clone, Debug)]
pub struct ConnSlot {
    _permit: Arc<OwnedSemaphorePermit>,
}

/// The limits the loop enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown`, then closes every connection
/// gracefully and waits for them.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let conns = TaskTracker::new();
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                tracing::warn!(
                    limit = limits.max_connections,
                    "connection limit reached: not accepting new connections until one closes"
                );
                let got = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    got = slots.clone().acquire_owned() => got,
                };
                match got {
                    Ok(p) => {
                        tracing::info!("a connection closed: accepting again");
                        p
                    }
                    Err(_) => break, // never closed
                }
            }
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::error!(error = %e, "accept failed; retrying in 1 s");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        let slot = ConnSlot {
            _permit: Arc::new(permit),
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(slot.clone());
            // The peer's address: the source IP of the audit log and sign-in limits.
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            router.clone().oneshot(req)
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        let shutdown = shutdown.clone();
        conns.spawn(async move {
            let conn = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    conns.close();
    conns.wait().await;
}

/// Errors of one incoming connection (not of the listener): skip it and go on.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
