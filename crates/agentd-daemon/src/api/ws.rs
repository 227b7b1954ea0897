//! The daemon's WebSocket session with the server (`/api/daemon/ws`).
//!
//! One connection carries every tracked runtime: heartbeats go out through a single
//! writer queue (dropped, not queued forever, when it is backed up), acks come back and
//! mark runtimes WS-fresh, `task_available` wakes the pollers, `task_cancelled` stops a
//! running agent. A connection that stays silent past twice the heartbeat interval (no
//! ack, no pong to our pings) is presumed dead and replaced, even if TCP looks open.
//! Reconnects back off 1 s → 30 s with full jitter; a change of the runtime set
//! reconnects at once with the new id list. Polling keeps working while WS is down.

use std::sync::Arc;
use std::time::Duration;

use agentd_proto::HeartbeatRequest;
use agentd_proto::ws::WsMessage;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::daemon::Daemon;
use crate::metrics::inc;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_FRAME: usize = 64 * 1024;

/// Builds the WS URL: http→ws, https→wss, `/api/daemon/ws`, sorted ids joined by commas.
pub fn ws_url(base: &str, runtime_ids: &[String]) -> Result<String, String> {
    let mut url = url::Url::parse(base).map_err(|e| format!("server URL {base:?}: {e}"))?;
    let scheme = match url.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => {
            return Err(format!(
                "server URL scheme {other:?} cannot carry a WebSocket"
            ));
        }
    };
    url.set_scheme(scheme)
        .map_err(|_| format!("cannot switch {base:?} to {scheme}"))?;
    let path = format!("{}/api/daemon/ws", url.path().trim_end_matches('/'));
    url.set_path(&path);
    let mut ids = runtime_ids.to_vec();
    ids.sort();
    url.query_pairs_mut()
        .clear()
        .append_pair("runtime_ids", &ids.join(","));
    Ok(url.to_string())
}

enum Ended {
    Cancelled,
    RuntimeSetChanged,
    /// The connection failed or died; `connected` says whether it had been up.
    Failed {
        error: String,
        connected: bool,
    },
}

/// The ceiling of the WS reconnect backoff.
const RECONNECT_CAP: Duration = Duration::from_secs(30);
/// The widest first-reconnect window after a lost session.
const MAX_RECONNECT_SPREAD: Duration = Duration::from_secs(10);

/// The backoff after a session that was up ended (server restart, network blip): the
/// first three retries are full-jittered over `min(heartbeat interval, 10 s)` (at least
/// 1 s), then the window doubles to the 30 s cap.
///
/// A server restart drops every daemon's WS in the same instant; a `[0, 1 s]` first retry
/// made a fleet of 1,000 reconnect within one second (7.9× the mean rate). Holding the
/// window for three tries brings back, within the same spread, the daemons whose first
/// tries fell in a short outage, instead of stretching the recovery over a 20–30 s tail.
/// Spreading over up to one heartbeat interval costs no liveness — HTTP heartbeats take
/// over as soon as WS acks stop being fresh — only wake-up latency, which the claim poll
/// bounds meanwhile.
fn backoff_after_lost_session(heartbeat_interval: Duration) -> Backoff {
    let spread = heartbeat_interval.clamp(Duration::from_secs(1), MAX_RECONNECT_SPREAD);
    Backoff::new(spread, RECONNECT_CAP).holding(2)
}

/// The WS loop. Runs until `cancel`.
pub async fn run(d: Arc<Daemon>, cancel: CancellationToken) {
    let mut runtime_set = d.registry.subscribe();
    let mut backoff = Backoff::new(Duration::from_secs(1), RECONNECT_CAP);
    loop {
        runtime_set.borrow_and_update();
        let ids = d.registry.all_runtime_ids();
        if ids.is_empty() {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = runtime_set.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            continue;
        }
        let ended = session(&d, &ids, &cancel, &mut runtime_set).await;
        d.registry.clear_ws_freshness();
        d.health.set_ws_connected(false);
        match ended {
            Ended::Cancelled => return,
            Ended::RuntimeSetChanged => backoff.reset(),
            Ended::Failed { error, connected } => {
                inc(&d.metrics.ws_reconnects);
                if connected {
                    backoff = backoff_after_lost_session(d.cfg.heartbeat_interval);
                }
                let delay = backoff.next_delay();
                tracing::debug!(%error, ?delay, "task wakeup websocket unavailable; polling fallback remains active");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                    _ = runtime_set.changed() => backoff.reset(),
                }
            }
        }
    }
}

async fn session(
    d: &Arc<Daemon>,
    ids: &[String],
    cancel: &CancellationToken,
    runtime_set: &mut watch::Receiver<u64>,
) -> Ended {
    let failed = |error: String, connected: bool| Ended::Failed { error, connected };
    let url = match ws_url(d.client.base_url(), ids) {
        Ok(u) => u,
        Err(e) => return failed(e, false),
    };
    let mut req = match url.as_str().into_client_request() {
        Ok(r) => r,
        Err(e) => return failed(e.to_string(), false),
    };
    let headers = req.headers_mut();
    let identity = d.client.identity();
    for (k, v) in [
        ("authorization", format!("Bearer {}", d.client.token())),
        ("x-client-platform", "daemon".to_string()),
        ("x-client-version", identity.version.clone()),
        ("x-client-os", identity.os.clone()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    }
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME));
    let connect = tokio_tungstenite::connect_async_with_config(req, Some(config), false);
    let stream = tokio::select! {
        _ = cancel.cancelled() => return Ended::Cancelled,
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, connect) => match r {
            Err(_) => return failed("handshake timed out".into(), false),
            Ok(Err(e)) => return failed(e.to_string(), false),
            Ok(Ok((s, _))) => s,
        },
    };
    inc(&d.metrics.ws_connects);
    d.health.set_ws_connected(true);
    tracing::info!(runtimes = ids.len(), "task wakeup websocket connected");
    d.runner.wake_pollers();

    let (mut sink, mut stream) = stream.split();
    let (tx, mut rx) = mpsc::channel::<Message>((2 * ids.len()).max(16));
    let interval = d.cfg.heartbeat_interval.max(Duration::from_millis(10));
    let dead_after = interval * 2 + Duration::from_secs(1);
    let mut beat = tokio::time::interval(interval);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(Message::Close(None))).await;
                return Ended::Cancelled;
            }
            _ = runtime_set.changed() => return Ended::RuntimeSetChanged,
            _ = beat.tick() => {
                for id in ids {
                    let frame = WsMessage::Heartbeat(HeartbeatRequest { runtime_id: id.clone(), active_task_ids: Some(d.runner.held_task_ids()) }).encode();
                    if tx.try_send(Message::text(frame)).is_err() {
                        tracing::debug!(runtime_id = %id, "ws writer backed up; heartbeat dropped");
                    } else {
                        inc(&d.metrics.ws_heartbeats);
                    }
                }
                let _ = tx.try_send(Message::Ping(Vec::new().into()));
            }
            Some(msg) = rx.recv() => {
                match tokio::time::timeout(WRITE_TIMEOUT, sink.send(msg)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return failed(format!("write: {e}"), true),
                    Err(_) => return failed("write timed out".into(), true),
                }
            }
            frame = stream.next() => {
                last_heard = Instant::now();
                match frame {
                    None => return failed("server closed the connection".into(), true),
                    Some(Err(e)) => return failed(format!("read: {e}"), true),
                    Some(Ok(Message::Text(text))) => handle_frame(d, text.as_str()),
                    Some(Ok(Message::Close(_))) => return failed("server closed the connection".into(), true),
                    Some(Ok(_)) => {}
                }
            }
            _ = tokio::time::sleep_until(last_heard + dead_after) => {
                return failed(format!("no frame from the server for {dead_after:?}; connection presumed dead"), true);
            }
        }
    }
}

fn handle_frame(d: &Arc<Daemon>, text: &str) {
    match WsMessage::decode(text) {
        Ok(WsMessage::HeartbeatAck(ack)) => d.handle_ws_heartbeat_ack(Some(&ack)),
        Ok(WsMessage::TaskAvailable(_)) => d.runner.wake_pollers(),
        Ok(WsMessage::TaskCancelled(c)) => {
            d.runner
                .task_over(&c.task_id, agentd_proto::TaskStatus::Cancelled);
        }
        Ok(WsMessage::TaskPush(p)) => d.spawn_push_retry(&p.task_id),
        Ok(WsMessage::Heartbeat(_)) | Ok(WsMessage::Unknown(_)) => {}
        Err(e) => tracing::debug!(error = %e, "ignoring undecodable websocket frame"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_ws_urls() {
        assert_eq!(
            ws_url(
                "http://localhost:8080",
                &["runtime-b".into(), "runtime-a".into()]
            )
            .unwrap(),
            "ws://localhost:8080/api/daemon/ws?runtime_ids=runtime-a%2Cruntime-b"
        );
        assert_eq!(
            ws_url("https://api.example.com/multica", &["r".into()]).unwrap(),
            "wss://api.example.com/multica/api/daemon/ws?runtime_ids=r"
        );
    }

    fn ceilings(mut b: Backoff, n: usize) -> Vec<u64> {
        (0..n)
            .map(|_| {
                let c = b.ceiling();
                assert!(b.next_delay() <= c);
                c.as_secs()
            })
            .collect()
    }

    #[test]
    fn a_lost_session_spreads_the_first_reconnect_over_the_heartbeat_interval() {
        // Reference 15 s heartbeat: three tries in [0, 10 s], then 20 s, then the cap.
        let b = backoff_after_lost_session(Duration::from_secs(15));
        assert_eq!(ceilings(b, 6), [10, 10, 10, 20, 30, 30]);
        // A fast heartbeat keeps reconnects quick.
        let b = backoff_after_lost_session(Duration::from_secs(2));
        assert_eq!(ceilings(b, 7), [2, 2, 2, 4, 8, 16, 30]);
        // Never under one second.
        let b = backoff_after_lost_session(Duration::from_millis(200));
        assert_eq!(ceilings(b, 4), [1, 1, 1, 2]);
    }
}
