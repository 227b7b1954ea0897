//! The daemon WebSocket hub: which connection holds which runtime, the per-connection
//! read/write loops, and pushes (`daemon:task_available`, `daemon:task_cancelled`,
//! `daemon:task_push`).
//! Pushes arrive through the signal bus (`bus`), which delivers each one on every instance:
//! an instance pushes only to the connections it holds.
//! Pushes are best-effort hints: a full outbound queue drops the frame, and the daemon
//! still learns everything by polling. When a connection closes, each runtime it held is
//! shown offline after `ws_close_grace` unless a heartbeat (or another connection) shows
//! it alive; that fails no task (a connection is not a lease, see `sweeper`). WS
//! heartbeats renew task leases like HTTP ones.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use agentd_proto::ws::{TaskAvailable, TaskCancelled, TaskPush};
use agentd_proto::{HeartbeatResponse, WsMessage};
use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::{App, service};

const OUTBOUND_QUEUE: usize = 64;

/// Connections by runtime id: (connection id, outbound queue).
type ConnMap = HashMap<String, Vec<(u64, mpsc::Sender<String>)>>;

#[derive(Default)]
pub struct Hub {
    conns: Mutex<ConnMap>,
    next_id: AtomicU64,
}

impl Hub {
    fn register(&self, runtime_ids: &[String], tx: mpsc::Sender<String>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        for rid in runtime_ids {
            conns.entry(rid.clone()).or_default().push((id, tx.clone()));
        }
        id
    }

    fn unregister(&self, conn_id: u64, runtime_ids: &[String]) {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        for rid in runtime_ids {
            if let Some(list) = conns.get_mut(rid) {
                list.retain(|(id, _)| *id != conn_id);
                if list.is_empty() {
                    conns.remove(rid);
                }
            }
        }
    }

    /// Whether some connection currently holds this runtime.
    pub fn holds(&self, runtime_id: &str) -> bool {
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.get(runtime_id).is_some_and(|l| !l.is_empty())
    }

    fn push(&self, runtime_id: &str, frame: String) {
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        for (_, tx) in conns.get(runtime_id).into_iter().flatten() {
            // Best effort: a backed-up connection misses the hint and polls instead.
            let _ = tx.try_send(frame.clone());
        }
    }

    /// Wakes the daemon holding `runtime_id`: a task is queued for it (`None`: claim
    /// whatever there is).
    pub fn task_available(&self, runtime_id: &str, task_id: Option<&str>) {
        let frame = WsMessage::TaskAvailable(TaskAvailable {
            runtime_id: runtime_id.to_string(),
            task_id: task_id.map(str::to_string),
        });
        self.push(runtime_id, frame.encode());
    }

    /// Wakes every runtime this instance holds (signals may have been lost: claim now).
    pub fn wake_all(&self) {
        let held: Vec<String> = {
            let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
            conns.keys().cloned().collect()
        };
        for rid in held {
            self.task_available(&rid, None);
        }
    }

    /// How many WebSocket connections this instance holds.
    pub fn connections(&self) -> usize {
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<u64> = conns.values().flatten().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }

    /// Asks the daemon holding `runtime_id` to push a finished task's branch again.
    pub fn task_push(&self, runtime_id: &str, task_id: &str) {
        let frame = WsMessage::TaskPush(TaskPush {
            task_id: task_id.to_string(),
            runtime_id: Some(runtime_id.to_string()),
        });
        self.push(runtime_id, frame.encode());
    }

    pub fn task_cancelled(&self, runtime_id: &str, task_id: &str) {
        let frame = WsMessage::TaskCancelled(TaskCancelled {
            task_id: task_id.to_string(),
            runtime_id: Some(runtime_id.to_string()),
        });
        self.push(runtime_id, frame.encode());
    }
}

/// Serves one upgraded daemon connection holding `runtime_ids` (already authorised).
pub async fn run_connection(app: Arc<App>, socket: WebSocket, runtime_ids: Vec<String>) {
    let (tx, mut rx) = mpsc::channel::<String>(OUTBOUND_QUEUE);
    let conn_id = app.hub.register(&runtime_ids, tx.clone());
    let (mut sink, mut stream) = socket.split();
    let mut ping = tokio::time::interval(app.config.ws_ping_interval);
    ping.tick().await;
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => {
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
            _ = ping.tick() => {
                if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
            out = rx.recv() => {
                let Some(text) = out else { break };
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            incoming = stream.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let Ok(WsMessage::Heartbeat(hb)) = WsMessage::decode(text.as_str()) else {
                    continue;
                };
                if !runtime_ids.contains(&hb.runtime_id) {
                    continue;
                }
                let ack = match service::runtime::beat(&app, &hb.runtime_id, hb.active_task_ids.clone(), false).await {
                    Ok(Some(ack)) => ack,
                    Ok(None) => HeartbeatResponse {
                        runtime_id: hb.runtime_id.clone(),
                        status: "runtime_gone".into(),
                        runtime_gone: true,
                        server_time: Some(jiff::Timestamp::now().to_string()),
                        ..Default::default()
                    },
                    // A transient fault: no ack, the daemon falls back to HTTP.
                    Err(_) => continue,
                };
                let _ = tx.try_send(WsMessage::HeartbeatAck(ack).encode());
            }
        }
    }
    app.hub.unregister(conn_id, &runtime_ids);
    if app.shutdown.is_cancelled() {
        return;
    }
    let closed_at = app.now();
    for rid in runtime_ids {
        let app2 = app.clone();
        app.tracker.spawn(async move {
            tokio::select! {
                _ = app2.shutdown.cancelled() => return,
                _ = tokio::time::sleep(app2.config.ws_close_grace) => {}
            }
            // Other instances' heartbeats reach the database up to a lag late.
            let lag = std::time::Duration::from_millis(app2.peer_lag_ms().await as u64);
            if !lag.is_zero() {
                tokio::select! {
                    _ = app2.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(lag) => {}
                }
            }
            if app2.hub.holds(&rid) {
                return;
            }
            if let Err(e) = service::runtime::offline_if_unseen(&app2, &rid, closed_at).await {
                tracing::warn!(runtime_id = %rid, error = %e, "grace check after WS close failed");
            }
        });
    }
}
