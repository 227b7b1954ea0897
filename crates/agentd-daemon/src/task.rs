//! Running claimed tasks: bookkeeping of active tasks (their cancel tokens), the slot
//! each one holds, and cancellation requests from the server.

use std::sync::Arc;

use agentd_proto::{FailRequest, FailureReason, Task};
use tokio::sync::OwnedSemaphorePermit;

use crate::api::http::until_cancelled;
use crate::daemon::{Daemon, lock};

impl Daemon {
    /// Starts a claimed task on the tracker; it holds `permit` until it ends.
    pub fn spawn_task(self: &Arc<Self>, task: Task, permit: OwnedSemaphorePermit) {
        let token = self.task_root.child_token();
        lock(&self.active_tasks).insert(task.id.clone(), token.clone());
        let this = Arc::clone(self);
        self.tracker.spawn(async move {
            let _permit = permit;
            let id = task.id.clone();
            this.execute(task, token).await;
            lock(&this.active_tasks).remove(&id);
        });
    }

    /// Stops a running task's agent (WS `task_cancelled`, status poll, shutdown).
    pub fn cancel_task(&self, task_id: &str, why: &str) {
        if let Some(token) = lock(&self.active_tasks).get(task_id) {
            tracing::info!(task_id, why, "stopping task");
            token.cancel();
        }
    }

    async fn execute(self: &Arc<Self>, task: Task, _cancel: tokio_util::sync::CancellationToken) {
        // This build registers and heals runtimes but has no agent executor wired in yet:
        // fail the task at once with a visible reason rather than leave it dispatched.
        let req = FailRequest {
            error:
                "this agentd daemon cannot run tasks yet (no executor); the task was not started"
                    .into(),
            failure_reason: Some(FailureReason::AgentError),
            ..FailRequest::default()
        };
        if let Err(e) = until_cancelled(&self.root, self.client.fail(&task.id, &req)).await {
            tracing::warn!(task_id = %task.id, error = %e, "could not report task failure");
        }
    }
}
