//! The sweeper: every [`ServerConfig::sweep_every`](crate::ServerConfig::sweep_every) it
//! (1) shows runtimes silent for `offline_after` as offline — for display only, it fails
//! nothing — and (2) expires task leases: an in-flight task whose daemon has not said it
//! holds it (claim, a heartbeat listing it, any report about it) for a whole lease is
//! failed. Nothing expires until one whole lease has passed since this server started,
//! so daemons have a lease to reach a restarted server. All times are the server's.
//! (3) It wakes the runtimes of retries whose backoff has passed (their timer may have
//! died with the instance that scheduled them).
//!
//! The reason says who lost the task: `timeout` (claimed, never started and never held
//! since: the claim response was lost or the daemon died right after), `orphaned` (its
//! daemon is alive but no longer runs it), `runtime_offline` (its daemon was silent on
//! every channel and every runtime for the whole lease).
//!
//! Only the leader sweeps ([`crate::leader`]: an advisory lock on PostgreSQL), and it
//! decides from the database alone: it writes its own instance's liveness first, and while
//! other instances share the database it gives their unwritten heartbeats
//! [`crate::ServerConfig::liveness_lag`] on top of the lease (see [`crate::liveness`]).

use std::sync::Arc;

use agentd_proto::{FailureReason, TaskStatus};

use crate::store::StoreError;
use crate::{App, service};

pub async fn run(app: Arc<App>) {
    let mut tick = tokio::time::interval(app.config.sweep_every());
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // One instance sweeps at a time (`leader`); the others check again next tick.
        let leads = tokio::select! {
            _ = app.shutdown.cancelled() => return,
            leads = app.leader.is_leader() => leads,
        };
        if !leads {
            continue;
        }
        if let Err(e) = sweep(&app, app.now()).await {
            tracing::warn!(error = %e, "sweep failed");
        }
    }
}

/// One sweep at server time `now`.
pub async fn sweep(app: &App, now: i64) -> Result<(), StoreError> {
    // The database decides (`liveness`): this instance's heartbeats are written first, and
    // other instances' may be `peer_lag_ms` behind, which they get on top of the lease.
    crate::liveness::flush(app, true).await?;
    let lease = app.config.offline_after.as_millis() as i64;
    let cutoff = now - lease - app.peer_lag_ms().await;
    for rt in app.store.offline_stale_runtimes(cutoff).await? {
        tracing::info!(runtime_id = %rt.id, "runtime offline: no heartbeat");
        service::runtime::went_offline(app, &rt.id).await?;
    }
    service::task::wake_due_retries(app, now).await?;
    if now < app.started_at_ms + lease {
        // Within the first lease after a (re)start nobody could have renewed anything.
        return Ok(());
    }
    for t in app.store.expired_leases(cutoff).await? {
        let daemon_alive = match &t.daemon_id {
            Some(d) => app.store.daemon_seen_since(d.clone(), cutoff).await?,
            None => false,
        };
        let secs = app.config.offline_after.as_secs_f64();
        let (reason, why) = if t.status == TaskStatus::Dispatched {
            (
                FailureReason::Timeout,
                format!(
                    "task was claimed but its daemon never took it up (no word of it for {secs:.0} s)"
                ),
            )
        } else if daemon_alive {
            (
                FailureReason::Orphaned,
                format!("its daemon is alive but has not run this task for {secs:.0} s"),
            )
        } else {
            (
                FailureReason::RuntimeOffline,
                format!("no sign of life from its daemon for {secs:.0} s (the lease)"),
            )
        };
        tracing::info!(task_id = %t.id, reason = ?reason, "task lease expired");
        service::task::fail_by_server(app, &t, &why, reason).await?;
    }
    Ok(())
}
