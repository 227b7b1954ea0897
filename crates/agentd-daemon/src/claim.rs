//! Pollers: one per runtime. A poller takes a slot (max concurrent tasks), claims, and
//! hands a claimed task to the task pipeline; with nothing to claim it sleeps the poll
//! interval or until a WS wake-up. A claim 404 `runtime not found` heals and ends the
//! poller (the runtime-set watcher starts one for the new id).
//!
//! While claims fail (server down, 5xx), the wait between polls grows: the poll interval
//! plus a full-jittered extra that doubles with each consecutive failure, up to
//! [`CLAIM_BACKOFF_CAP`]; a success resets it, and a WS wake-up still cuts any wait short.
//!
//! Each claim carries an idempotency key, reused when the call is retried after a
//! transport error: agentd's server then returns the task it already handed out, so a
//! lost claim response costs one retry instead of stranding the task.

use std::sync::Arc;
use std::time::Duration;

use agentd_proto::Task;
use tokio_util::sync::CancellationToken;

use crate::api::ApiError;
use crate::backoff::Backoff;
use crate::daemon::Daemon;
use crate::metrics::inc;

/// Retries of one claim (same key) after a transport error, and their delays.
const CLAIM_RETRY_DELAYS: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(300),
    Duration::from_millis(600),
];

/// The most a failing poller adds to the poll interval between claims.
pub const CLAIM_BACKOFF_CAP: Duration = Duration::from_secs(60);

/// A fresh failure backoff for a poller polling every `poll_interval`.
fn claim_backoff(poll_interval: Duration) -> Backoff {
    Backoff::new(poll_interval.max(Duration::from_secs(1)), CLAIM_BACKOFF_CAP)
}

/// How long to wait before the next poll: the poll interval, plus the failure backoff's
/// next delay when the last claim failed.
fn next_wait(poll_interval: Duration, failed: bool, backoff: &mut Backoff) -> Duration {
    if failed {
        poll_interval + backoff.next_delay()
    } else {
        backoff.reset();
        poll_interval
    }
}

pub async fn poller(d: Arc<Daemon>, runtime_id: String, cancel: CancellationToken) {
    let mut wakeups = d.runner.subscribe_wakeups();
    let mut failures = claim_backoff(d.cfg.poll_interval);
    if !d.sandbox.may_run() {
        // Fail closed: the runtime stays registered (the board shows why) but takes no
        // work until the operator fixes the sandbox or turns it off and restarts.
        tracing::error!(runtime_id, detail = %d.sandbox.detail, "not claiming tasks");
        cancel.cancelled().await;
        return;
    }
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => return,
            p = d.runner.slots().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        wakeups.borrow_and_update();
        let mut failed = false;
        match claim_with_retry(&d, &runtime_id, &cancel).await {
            Ok(Some(task)) => {
                failures.reset();
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
                failed = true;
                inc(&d.metrics.claim_failures);
                tracing::warn!(runtime_id, error = %e, "claim failed");
                d.health.note_api_error(&e);
            }
        }
        drop(permit);
        let wait = next_wait(d.cfg.poll_interval, failed, &mut failures);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
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
                    d.health.note_server_ok(None);
                }
                return other;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_claims_back_off_and_a_success_resets() {
        let poll = Duration::from_secs(1);
        let mut b = claim_backoff(poll);
        // Each consecutive failure: the poll interval plus a jittered extra whose ceiling
        // doubles (1, 2, 4, … s) up to the 60 s cap.
        let mut ceilings = Vec::new();
        for _ in 0..8 {
            let ceiling = b.ceiling();
            let wait = next_wait(poll, true, &mut b);
            assert!(wait >= poll && wait <= poll + ceiling, "{wait:?}");
            ceilings.push(ceiling.as_secs());
        }
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60]);
        // A good claim (even an empty one) brings back the plain poll interval.
        assert_eq!(next_wait(poll, false, &mut b), poll);
        assert_eq!(b.ceiling(), Duration::from_secs(1));
        // At the reference 30 s poll the first failure waits 30–60 s.
        let mut b = claim_backoff(Duration::from_secs(30));
        let wait = next_wait(Duration::from_secs(30), true, &mut b);
        assert!(wait >= Duration::from_secs(30) && wait <= Duration::from_secs(60));
    }
}
