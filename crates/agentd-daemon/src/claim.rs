//! Pollers: one per runtime. A poller takes a slot (max concurrent tasks), claims, and
//! hands a claimed task to the task pipeline; with nothing to claim it sleeps the poll
//! interval or until a WS wake-up. A claim 404 `runtime not found` heals and ends the
//! poller (the runtime-set watcher starts one for the new id).
//!
//! Each claim carries an idempotency key, reused when the call is retried after a
//! transport error: agentd's server then returns the task it already handed out, so a
//! lost claim response costs one retry instead of stranding the task.

use std::sync::Arc;
use std::time::Duration;

use agentd_proto::Task;
use tokio_util::sync::CancellationToken;

use crate::api::ApiError;
use crate::daemon::Daemon;
use crate::metrics::inc;

/// Retries of one claim (same key) after a transport error, and their delays.
const CLAIM_RETRY_DELAYS: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(300),
    Duration::from_millis(600),
];

pub async fn poller(d: Arc<Daemon>, runtime_id: String, cancel: CancellationToken) {
    let mut wakeups = d.wakeups.subscribe();
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => return,
            p = Arc::clone(&d.slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        wakeups.borrow_and_update();
        match claim_with_retry(&d, &runtime_id, &cancel).await {
            Ok(Some(task)) => {
                inc(&d.metrics.claimed_tasks);
                tracing::info!(runtime_id, task_id = %task.id, issue_id = %task.issue_id, "claimed task");
                d.spawn_task(task, permit);
                continue;
            }
            Ok(None) => {}
            Err(ApiError::Cancelled) => return,
            Err(e) if e.is_runtime_not_found() => {
                d.spawn_runtime_gone(&runtime_id);
                return;
            }
            Err(e) => {
                inc(&d.metrics.claim_failures);
                tracing::warn!(runtime_id, error = %e, "claim failed");
                d.note_api_error(&e);
            }
        }
        drop(permit);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(d.cfg.poll_interval) => {}
            r = wakeups.changed() => if r.is_err() { return },
        }
    }
}

async fn claim_with_retry(
    d: &Daemon,
    runtime_id: &str,
    cancel: &CancellationToken,
) -> Result<Option<Task>, ApiError> {
    let claim_id = uuid::Uuid::new_v4().to_string();
    let mut retries = CLAIM_RETRY_DELAYS.iter();
    loop {
        inc(&d.metrics.claims);
        let result = match cancel
            .run_until_cancelled(d.client.claim(runtime_id, &claim_id))
            .await
        {
            None => return Err(ApiError::Cancelled),
            Some(r) => r,
        };
        match result {
            Err(ApiError::Transport { .. }) => match retries.next() {
                Some(delay) => {
                    tracing::debug!(
                        runtime_id,
                        claim_id,
                        "claim response lost; retrying with the same key"
                    );
                    if cancel
                        .run_until_cancelled(tokio::time::sleep(*delay))
                        .await
                        .is_none()
                    {
                        return Err(ApiError::Cancelled);
                    }
                }
                None => return result,
            },
            other => {
                if other.is_ok() {
                    d.note_server_ok(None);
                }
                return other;
            }
        }
    }
}
