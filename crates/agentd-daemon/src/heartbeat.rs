//! Heartbeats: one HTTP loop per runtime (first beat after a random delay of up to one
//! interval, so a fleet started together does not beat together), skipped while the WS
//! heartbeat for that runtime is fresh; and the handling of WS heartbeat acks.
//!
//! Every answer from the server also feeds the health state: reachable, unauthorized, or
//! clock skew (compared with the server's `Date` header; reported, never fatal).

use std::sync::Arc;

use agentd_proto::HeartbeatResponse;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::full_jitter;
use crate::daemon::Daemon;
use crate::metrics::inc;

/// One runtime's HTTP heartbeat loop. Ends when cancelled (the runtime left the set or
/// the daemon stops) or when the server says the runtime is gone.
pub async fn heartbeat_worker(d: Arc<Daemon>, runtime_id: String, cancel: CancellationToken) {
    let interval = d.cfg.heartbeat_interval;
    if cancel
        .run_until_cancelled(tokio::time::sleep(full_jitter(interval)))
        .await
        .is_none()
    {
        return;
    }
    loop {
        if !heartbeat_tick(&d, &runtime_id, &cancel).await {
            return;
        }
        if cancel
            .run_until_cancelled(tokio::time::sleep(interval))
            .await
            .is_none()
        {
            return;
        }
    }
}

/// One tick. Returns false when the loop should end.
pub async fn heartbeat_tick(d: &Arc<Daemon>, runtime_id: &str, cancel: &CancellationToken) -> bool {
    if d.ws_heartbeat_recently_acked(runtime_id) {
        inc(&d.metrics.heartbeats_skipped_ws_fresh);
        return true;
    }
    inc(&d.metrics.heartbeats_http);
    let started = Instant::now();
    match cancel
        .run_until_cancelled(d.client.heartbeat(runtime_id, d.runner.held_task_ids()))
        .await
    {
        None => false,
        Some(Ok(answer)) => {
            d.metrics.observe_heartbeat_rtt(started.elapsed());
            d.health.note_server_ok(answer.server_date);
            if answer.body.runtime_gone {
                d.spawn_runtime_gone(runtime_id);
                return false;
            }
            true
        }
        Some(Err(e)) if e.is_runtime_not_found() => {
            d.spawn_runtime_gone(runtime_id);
            false
        }
        Some(Err(e)) => {
            inc(&d.metrics.heartbeat_failures);
            tracing::warn!(runtime_id, error = %e, "heartbeat failed");
            d.health.note_api_error(&e);
            true
        }
    }
}

impl Daemon {
    /// Handles a WS `daemon:heartbeat_ack`. A gone runtime heals and records no freshness
    /// (a mark would make the HTTP heartbeat skip its tick); an empty ack is ignored.
    pub fn handle_ws_heartbeat_ack(self: &Arc<Self>, ack: Option<&HeartbeatResponse>) {
        let Some(ack) = ack else { return };
        if ack.runtime_id.is_empty() {
            return;
        }
        if ack.runtime_gone {
            self.spawn_runtime_gone(&ack.runtime_id);
            return;
        }
        inc(&self.metrics.ws_acks);
        self.registry.mark_ws_fresh(&ack.runtime_id);
        if let Some(t) = ack.server_time.as_deref().and_then(|s| s.parse().ok()) {
            self.health.note_server_ok(Some(t));
        }
    }
}
