//! The signal bus: every signal one request sends to work outside it goes through here —
//! "a task is available for runtime R" (`daemon:task_available`), "task T was cancelled"
//! (`daemon:task_cancelled`), "push task T's branch again" (`daemon:task_push`), and the
//! board's [`WorkspaceEvent`]s.
//!
//! [`publish`] delivers a signal on this instance at once ([`deliver`]: the hub pushes it
//! to the daemon WebSockets *this* instance holds, the events go to *its* SSE
//! subscribers) and, on a shared bus, sends it to every other instance, which delivers it
//! the same way. Two implementations:
//!
//! - **local** (one instance, SQLite): nothing leaves the process; today's behaviour.
//! - **PostgreSQL**: `NOTIFY agentd_bus` on the pool, and `LISTEN` on a dedicated
//!   connection ([`sqlx::postgres::PgListener`]). Payloads are small — kinds and ids, never
//!   state (a receiver refetches what it needs) — and batched, several signals per NOTIFY
//!   (under PostgreSQL's 8,000-byte limit). Each carries its sender's instance id (an
//!   instance skips its own: it delivered them already) and the time it was sent (the
//!   NOTIFY lag in `/metrics`).
//!
//! **Nothing is missed silently.** NOTIFY is not durable: a listener that lost its
//! connection, or a sender whose NOTIFY failed, may have lost signals. So after the
//! listener reconnects (or after a failed NOTIFY, once one succeeds again) the instances
//! deliver [`Signal::Resync`]: every board stream gets `resync` (refetch) and every
//! daemon WebSocket a `daemon:task_available` without a task (claim now), the same
//! things a fresh connection gets. Signals are hints; the database is the truth.
//! *Proved by* `notify_reaches_the_other_instance_and_a_lost_listener_resyncs`
//! (`tests/signal_bus.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use agentd_proto::api::WorkspaceEvent;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::mpsc;

use crate::App;
use crate::events::Events;

/// The NOTIFY channel.
pub const CHANNEL: &str = "agentd_bus";
/// The `application_name` of every instance's LISTEN connection, before its instance id:
/// how an instance counts the others on the database ([`peers`]).
pub const APPLICATION_NAME: &str = "agentd-bus:";
/// Largest payload sent in one NOTIFY (PostgreSQL refuses 8,000 bytes and more).
const MAX_PAYLOAD: usize = 7_000;

/// A cross-request signal.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// Wake the daemon holding this runtime: a task is queued for it (`None`: poll).
    TaskAvailable {
        runtime_id: String,
        task_id: Option<String>,
    },
    /// The task was cancelled: the daemon holding this runtime stops it.
    TaskCancelled { runtime_id: String, task_id: String },
    /// Push the task's branch again: the first of `runtime_ids` a connection holds gets it.
    TaskPush {
        task_id: String,
        runtime_ids: Vec<String>,
    },
    /// A change a board shows.
    Board(WorkspaceEvent),
    /// A token was revoked or granted a workspace (`None`: the admin token was rotated —
    /// every token): every instance drops it from its cache (`authcache`).
    TokensChanged { token_id: Option<String> },
    /// Signals may have been lost: boards refetch, daemons claim, caches are dropped.
    Resync,
}

/// Counters of the bus (`/metrics`).
#[derive(Debug, Default)]
pub struct BusStats {
    /// NOTIFYs sent by this instance.
    pub notifies: AtomicU64,
    /// Signals received from other instances.
    pub received: AtomicU64,
    /// Resyncs delivered because signals may have been lost.
    pub resyncs: AtomicU64,
    /// The last NOTIFY's lag, sent → received, in milliseconds.
    pub last_lag_ms: AtomicI64,
}

/// This instance's end of the bus.
pub struct Bus {
    /// This instance's id (on every payload it sends).
    pub instance: String,
    shared: Option<Shared>,
    pub stats: BusStats,
}

struct Shared {
    pool: PgPool,
    tx: mpsc::UnboundedSender<Signal>,
    rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<Signal>>>,
}

impl Bus {
    /// The in-process bus of a lone instance.
    pub fn local() -> Bus {
        Bus {
            instance: uuid::Uuid::new_v4().to_string(),
            shared: None,
            stats: BusStats::default(),
        }
    }

    /// The PostgreSQL bus: NOTIFY on `pool`, LISTEN on a dedicated connection to the same
    /// database. Nothing runs until [`run`].
    pub fn postgres(pool: PgPool) -> Bus {
        let (tx, rx) = mpsc::unbounded_channel();
        Bus {
            instance: uuid::Uuid::new_v4().to_string(),
            shared: Some(Shared {
                pool,
                tx,
                rx: std::sync::Mutex::new(Some(rx)),
            }),
            stats: BusStats::default(),
        }
    }

    /// Whether other instances may share the database (and this bus).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }
}

/// How many other instances share the database: the LISTEN connections of the bus other
/// than this instance's (each instance holds one while it runs; a dead one's closes).
/// Zero on the local bus; on an error, assumes one (the cautious answer for leases).
pub async fn peers(app: &App) -> i64 {
    let Some(s) = &app.bus.shared else {
        return 0;
    };
    sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND starts_with(application_name, $1) AND application_name <> $2",
    )
    .bind(APPLICATION_NAME)
    .bind(format!("{APPLICATION_NAME}{}", app.bus.instance))
    .fetch_one(&s.pool)
    .await
    .unwrap_or(1)
}

/// How many instances serve the database on `pool` now (their bus LISTEN connections),
/// before this one has started its own.
pub async fn instances_on(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND starts_with(application_name, $1)",
    )
    .bind(APPLICATION_NAME)
    .fetch_one(pool)
    .await
}

/// Delivers `signal` on this instance now and sends it to the other instances.
pub fn publish(app: &App, signal: Signal) {
    deliver(app, &signal);
    if let Some(s) = &app.bus.shared {
        let _ = s.tx.send(signal);
    }
}

/// Acts on a signal on this instance: pushes to the daemon WebSockets it holds, events to
/// its board streams.
pub fn deliver(app: &App, signal: &Signal) {
    match signal {
        Signal::TaskAvailable {
            runtime_id,
            task_id,
        } => app.hub.task_available(runtime_id, task_id.as_deref()),
        Signal::TaskCancelled {
            runtime_id,
            task_id,
        } => app.hub.task_cancelled(runtime_id, task_id),
        Signal::TaskPush {
            task_id,
            runtime_ids,
        } => {
            if let Some(r) = runtime_ids.iter().find(|r| app.hub.holds(r)) {
                app.hub.task_push(r, task_id);
            }
        }
        Signal::Board(ev) => {
            if ev.kind == "agent" {
                // Created, changed or deleted: its workspace's pools are read again.
                app.pools.forget(&ev.workspace_id);
            }
            if ev.kind == "runtime"
                && let Some(rid) = &ev.runtime_id
            {
                // Registered (maybe by a new owner), offline or deleted: read it again.
                app.auth_cache.forget_runtime(rid);
            }
            if ev.kind == "runtime"
                && matches!(ev.status.as_deref(), Some("offline" | "deleted"))
                && let Some(rid) = &ev.runtime_id
            {
                // Its next sign of life is written at once, on every instance.
                app.liveness.forget(rid);
            }
            app.events.publish(ev.clone());
        }
        Signal::TokensChanged { token_id } => app.auth_cache.forget_token(token_id.as_deref()),
        Signal::Resync => {
            app.auth_cache.clear();
            app.pools.clear();
            app.bus.stats.resyncs.fetch_add(1, Ordering::Relaxed);
            app.events.publish(Events::event("resync", ""));
            app.hub.wake_all();
        }
    }
}

/// A signal as a compact JSON array (kinds and ids only).
fn encode(s: &Signal) -> Value {
    match s {
        Signal::TaskAvailable {
            runtime_id,
            task_id,
        } => json!(["a", runtime_id, task_id]),
        Signal::TaskCancelled {
            runtime_id,
            task_id,
        } => json!(["c", runtime_id, task_id]),
        Signal::TaskPush {
            task_id,
            runtime_ids,
        } => json!(["p", task_id, runtime_ids]),
        Signal::Board(e) => json!([
            "e",
            e.kind,
            e.workspace_id,
            e.issue_id,
            e.task_id,
            e.runtime_id,
            e.agent_id,
            e.status
        ]),
        Signal::TokensChanged { token_id } => json!(["k", token_id]),
        Signal::Resync => json!(["r"]),
    }
}

fn decode(v: &Value) -> Option<Signal> {
    let a = v.as_array()?;
    let s = |i: usize| a.get(i).and_then(Value::as_str).map(str::to_string);
    Some(match a.first()?.as_str()? {
        "a" => Signal::TaskAvailable {
            runtime_id: s(1)?,
            task_id: s(2),
        },
        "c" => Signal::TaskCancelled {
            runtime_id: s(1)?,
            task_id: s(2)?,
        },
        "p" => Signal::TaskPush {
            task_id: s(1)?,
            runtime_ids: a
                .get(2)?
                .as_array()?
                .iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect(),
        },
        "e" => Signal::Board(WorkspaceEvent {
            kind: s(1)?,
            workspace_id: s(2)?,
            issue_id: s(3),
            task_id: s(4),
            runtime_id: s(5),
            agent_id: s(6),
            status: s(7),
        }),
        "k" => Signal::TokensChanged { token_id: s(1) },
        "r" => Signal::Resync,
        _ => return None,
    })
}

/// The payloads carrying `signals`, each under [`MAX_PAYLOAD`] bytes.
fn payloads(instance: &str, sent_ms: i64, signals: &[Signal]) -> Vec<String> {
    let wrap = |items: &[Value]| json!({"i": instance, "t": sent_ms, "s": items}).to_string();
    let mut out = Vec::new();
    let mut items: Vec<Value> = Vec::new();
    let mut size = 0;
    for s in signals {
        let v = encode(s);
        let len = v.to_string().len() + 1;
        if !items.is_empty() && size + len > MAX_PAYLOAD - 100 {
            out.push(wrap(&items));
            items.clear();
            size = 0;
        }
        size += len;
        items.push(v);
    }
    if !items.is_empty() {
        out.push(wrap(&items));
    }
    out
}

/// The signals of a payload sent by another instance (`None`: sent by this one, or not
/// ours), with the time it was sent.
fn parse(instance: &str, payload: &str) -> Option<(i64, Vec<Signal>)> {
    let v: Value = serde_json::from_str(payload).ok()?;
    if v["i"].as_str()? == instance {
        return None;
    }
    let sent = v["t"].as_i64().unwrap_or_default();
    Some((sent, v["s"].as_array()?.iter().filter_map(decode).collect()))
}

/// Runs the shared bus until shutdown: the sender (NOTIFY) and the listener (LISTEN). A
/// no-op on the local bus.
pub async fn run(app: Arc<App>) {
    let Some(shared) = &app.bus.shared else {
        return;
    };
    let rx = shared.rx.lock().unwrap_or_else(|e| e.into_inner()).take();
    let Some(rx) = rx else {
        return;
    };
    tokio::join!(
        send_loop(&app, &shared.pool, rx),
        listen_loop(&app, &shared.pool)
    );
}

async fn send_loop(app: &App, pool: &PgPool, mut rx: mpsc::UnboundedReceiver<Signal>) {
    let mut lost = false;
    loop {
        let first = tokio::select! {
            _ = app.shutdown.cancelled() => None,
            s = rx.recv() => s,
        };
        let Some(first) = first else { return };
        let mut batch = vec![first];
        while let Ok(s) = rx.try_recv() {
            batch.push(s);
        }
        if lost {
            // Some earlier NOTIFY failed: the others may have missed signals.
            batch.push(Signal::Resync);
        }
        for payload in payloads(&app.bus.instance, crate::now_ms(), &batch) {
            match sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(&payload)
                .execute(pool)
                .await
            {
                Ok(_) => {
                    app.bus.stats.notifies.fetch_add(1, Ordering::Relaxed);
                    lost = false;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "NOTIFY failed; the other instances will resync");
                    lost = true;
                }
            }
        }
    }
}

async fn listen_loop(app: &App, pool: &PgPool) {
    // A dedicated connection (its own one-connection pool, which PgListener reconnects),
    // named so that instances can count each other.
    let opts = (*pool.connect_options())
        .clone()
        .application_name(&format!("{APPLICATION_NAME}{}", app.bus.instance));
    let own = PgPoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(opts);
    let mut listener: Option<PgListener> = None;
    let mut lost = false;
    let mut backoff = Duration::from_millis(100);
    loop {
        if listener.is_none() {
            let attempt = async {
                let mut l = PgListener::connect_with(&own).await?;
                l.listen(CHANNEL).await?;
                Ok::<_, sqlx::Error>(l)
            };
            let got = tokio::select! {
                _ = app.shutdown.cancelled() => return,
                got = attempt => got,
            };
            match got {
                Ok(l) => {
                    listener = Some(l);
                    backoff = Duration::from_millis(100);
                    if std::mem::take(&mut lost) {
                        tracing::info!("signal bus listening again; resyncing boards and daemons");
                        deliver(app, &Signal::Resync);
                    }
                }
                Err(e) => {
                    if !lost {
                        tracing::warn!(error = %e, "signal bus cannot LISTEN; retrying");
                    }
                    lost = true;
                    tokio::select! {
                        _ = app.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            }
        }
        let Some(l) = listener.as_mut() else { continue };
        let got = tokio::select! {
            _ = app.shutdown.cancelled() => return,
            got = l.try_recv() => got,
        };
        match got {
            Ok(Some(n)) => {
                let Some((sent, signals)) = parse(&app.bus.instance, n.payload()) else {
                    continue;
                };
                let stats = &app.bus.stats;
                stats
                    .last_lag_ms
                    .store(crate::now_ms() - sent, Ordering::Relaxed);
                stats
                    .received
                    .fetch_add(signals.len() as u64, Ordering::Relaxed);
                for s in &signals {
                    deliver(app, s);
                }
            }
            Ok(None) => {
                // The connection was lost and re-established: what was sent meanwhile is gone.
                tracing::info!("signal bus reconnected; resyncing boards and daemons");
                deliver(app, &Signal::Resync);
            }
            Err(e) => {
                tracing::warn!(error = %e, "signal bus connection failed; reconnecting");
                listener = None;
                lost = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_round_trip_and_split_under_the_notify_limit() {
        let ev = WorkspaceEvent {
            kind: "task".into(),
            workspace_id: "w".into(),
            task_id: Some("t".into()),
            status: Some("queued".into()),
            ..Default::default()
        };
        let all = vec![
            Signal::TaskAvailable {
                runtime_id: "r".into(),
                task_id: None,
            },
            Signal::TaskCancelled {
                runtime_id: "r".into(),
                task_id: "t".into(),
            },
            Signal::TaskPush {
                task_id: "t".into(),
                runtime_ids: vec!["r1".into(), "r2".into()],
            },
            Signal::Board(ev),
            Signal::TokensChanged {
                token_id: Some("k".into()),
            },
            Signal::TokensChanged { token_id: None },
            Signal::Resync,
        ];
        let p = payloads("me", 7, &all);
        assert_eq!(p.len(), 1);
        assert!(parse("me", &p[0]).is_none(), "an instance skips its own");
        assert_eq!(parse("other", &p[0]), Some((7, all.clone())));

        let many: Vec<Signal> = (0..500)
            .map(|i| Signal::TaskAvailable {
                runtime_id: format!("{i:036}"),
                task_id: Some(format!("{i:036}")),
            })
            .collect();
        let p = payloads("me", 1, &many);
        assert!(p.len() > 1);
        assert!(p.iter().all(|x| x.len() < 8_000));
        let back: Vec<Signal> = p
            .iter()
            .flat_map(|x| parse("other", x).unwrap().1)
            .collect();
        assert_eq!(back, many);
    }
}
