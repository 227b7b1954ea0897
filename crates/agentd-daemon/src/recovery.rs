//! Self-healing when the server forgets a runtime: [`Daemon::handle_runtime_gone`].
//!
//! Three triggers (an HTTP heartbeat 404 `runtime not found` or `runtime_gone: true`, a
//! WS ack with `runtime_gone: true`, a claim 404) all land here, detached from the caller
//! (whose task is torn down when the runtime set changes). The algorithm, pinned by the
//! seed tests:
//!
//! 1. an empty id returns at once; `entry_at` is captured first thing;
//! 2. an in-flight set makes a second call for the same id a no-op while the first runs;
//! 3. the runtime is pruned from local state ([`Daemon::remove_stale_runtime`]); an
//!    unknown id returns;
//! 4. the runtime-set watcher is nudged (its heartbeat worker and poller stop, the WS
//!    reconnects with the new id list);
//! 5. [`Daemon::try_claim_register_slot`] coalesces a wave of callers into one register;
//! 6. the workspace is re-registered on the daemon's root token, so shutdown aborts it;
//! 7. [`Daemon::record_register_completion`] stamps success or arms the failure backoff.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::daemon::{Daemon, lock};
use crate::metrics::inc;

/// A peer's claimed slot blocks other registers of the workspace this long.
pub const REREGISTER_COALESCE_WINDOW: Duration = Duration::from_secs(30);
/// After a failed register, no new register of the workspace for this long.
pub const REREGISTER_FAILURE_BACKOFF: Duration = Duration::from_secs(60);

/// The coalescing state of re-registrations.
///
/// **Invariant:** read and written only under its mutex, as one unit per decision
/// (`try_claim_register_slot` reads and writes both maps atomically); never held across
/// an `.await`.
#[derive(Debug, Default)]
pub struct RecoveryGate {
    /// Runtime ids whose recovery is running now.
    pub inflight: HashSet<String>,
    /// Workspace → earliest time a new register may start. In the future means "a peer
    /// holds the slot" or "a failure backoff runs".
    pub next_attempt: HashMap<String, Instant>,
    /// Workspace → completion time of the last *successful* register.
    pub last_completed_at: HashMap<String, Instant>,
}

/// Removes a runtime id from the in-flight set when its recovery ends, however it ends.
struct InflightGuard<'a> {
    daemon: &'a Daemon,
    runtime_id: String,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        lock(&self.daemon.gate).inflight.remove(&self.runtime_id);
    }
}

impl Daemon {
    /// Spawns [`Daemon::handle_runtime_gone`] detached from the caller, on the daemon's
    /// tracker, so the caller may be cancelled without cancelling the recovery.
    pub fn spawn_runtime_gone(self: &Arc<Self>, runtime_id: &str) {
        let this = Arc::clone(self);
        let id = runtime_id.to_string();
        self.tracker
            .spawn(async move { this.handle_runtime_gone(&id).await });
    }

    /// Prunes a runtime the server deleted and re-registers its workspace, coalescing
    /// concurrent callers. See the module docs for the algorithm.
    pub async fn handle_runtime_gone(self: &Arc<Self>, runtime_id: &str) {
        if runtime_id.is_empty() {
            return;
        }
        let entry_at = Instant::now();
        if !lock(&self.gate).inflight.insert(runtime_id.to_string()) {
            return;
        }
        let _inflight = InflightGuard {
            daemon: self,
            runtime_id: runtime_id.to_string(),
        };
        let Some(workspace_id) = self.remove_stale_runtime(runtime_id) else {
            return;
        };
        inc(&self.metrics.runtime_gone);
        tracing::info!(
            runtime_id,
            workspace_id,
            "runtime deleted server-side; pruned from local state"
        );
        self.notify_runtime_set_changed();
        if !self.try_claim_register_slot(&workspace_id, entry_at, Instant::now()) {
            tracing::debug!(
                workspace_id,
                "skip re-register: coalescing with recent attempt"
            );
            return;
        }
        let result = self.reregister_workspace(&workspace_id).await;
        let err = result.as_ref().err();
        self.record_register_completion(
            &workspace_id,
            Instant::now(),
            err.map(|e| e as &dyn std::error::Error),
        );
        if let Some(e) = err {
            tracing::warn!(workspace_id, error = %e, "re-register after runtime gone failed; workspace sync will retry");
        }
    }

    /// Decides, atomically, whether a caller that entered at `entry_at` and reached the
    /// gate at `now` may register the workspace. Bails while a peer holds the slot or a
    /// failure backoff runs, and when a peer's register succeeded after we entered (same
    /// wave, already covered); otherwise claims the slot for the coalesce window.
    pub fn try_claim_register_slot(
        &self,
        workspace_id: &str,
        entry_at: Instant,
        now: Instant,
    ) -> bool {
        let mut gate = lock(&self.gate);
        if gate
            .next_attempt
            .get(workspace_id)
            .is_some_and(|t| now < *t)
        {
            return false;
        }
        if gate
            .last_completed_at
            .get(workspace_id)
            .is_some_and(|t| *t >= entry_at)
        {
            return false;
        }
        gate.next_attempt
            .insert(workspace_id.to_string(), now + REREGISTER_COALESCE_WINDOW);
        true
    }

    /// Records how a register ended. Success stamps `last_completed_at` and frees the slot
    /// (a genuinely later deletion may register at once); failure arms the failure backoff
    /// and stamps nothing (a failed register covered nothing, so a same-wave straggler may
    /// retry once the backoff has passed).
    pub fn record_register_completion(
        &self,
        workspace_id: &str,
        completed_at: Instant,
        err: Option<&dyn std::error::Error>,
    ) {
        let mut gate = lock(&self.gate);
        match err {
            Some(_) => {
                gate.next_attempt.insert(
                    workspace_id.to_string(),
                    completed_at + REREGISTER_FAILURE_BACKOFF,
                );
            }
            None => {
                gate.last_completed_at
                    .insert(workspace_id.to_string(), completed_at);
                gate.next_attempt.remove(workspace_id);
            }
        }
    }
}
