//! Self-healing when the server forgets a runtime: [`Daemon::handle_runtime_gone`].
//!
//! Three triggers (an HTTP heartbeat 404 `runtime not found` or `runtime_gone: true`, a
//! WS ack with `runtime_gone: true`, a claim 404) all land here, detached from the caller
//! (whose task is torn down when the runtime set changes). The algorithm, pinned by the
//! seed tests:
//!
//! 1. an empty id returns at once; `entry_at` is captured first thing;
//! 2. an in-flight set makes a second call for the same id a no-op while the first runs;
//! 3. the runtime is pruned from local state ([`Registry::remove_stale_runtime`](crate::registry::Registry::remove_stale_runtime)); an
//!    unknown id returns;
//! 4. the runtime-set watcher is nudged (its heartbeat worker and poller stop, the WS
//!    reconnects with the new id list);
//! 5. [`RecoveryGate::run`](crate::gate::RecoveryGate::run) claims the register slot
//!    (coalescing a wave of callers into one register), 6. re-registers the workspace on
//!    the daemon's root token, so shutdown aborts it, and 7. stamps success or arms the
//!    failure backoff.

use std::sync::Arc;

use tokio::time::Instant;

use crate::daemon::Daemon;
use crate::metrics::inc;

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
        let Some(_inflight) = self.gate.enter(runtime_id) else {
            return;
        };
        let Some(workspace_id) = self.registry.remove_stale_runtime(runtime_id) else {
            return;
        };
        inc(&self.metrics.runtime_gone);
        tracing::info!(
            runtime_id,
            workspace_id,
            "runtime deleted server-side; pruned from local state"
        );
        self.registry.notify_changed();
        match self
            .gate
            .run(
                &workspace_id,
                entry_at,
                self.reregister_workspace(&workspace_id),
            )
            .await
        {
            None => tracing::debug!(
                workspace_id,
                "skip re-register: coalescing with recent attempt"
            ),
            Some(Ok(())) => {}
            Some(Err(e)) => {
                tracing::warn!(workspace_id, error = %e, "re-register after runtime gone failed; workspace sync will retry")
            }
        }
    }
}
