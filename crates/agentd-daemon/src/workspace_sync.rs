//! Workspace discovery: list the workspaces the token can see, register runtimes in new
//! ones, drop removed ones, and re-register tracked workspaces left with zero runtimes
//! (the safety net of self-healing, through the same gate as
//! [`Daemon::handle_runtime_gone`], so its failure backoff holds here too). Runs once at start (retried with backoff until the
//! server answers) and then every sync interval.

use std::sync::Arc;
use std::time::Duration;

use agentd_proto::health::HealthState;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::ApiError;
use crate::api::http::until_cancelled;
use crate::backoff::Backoff;
use crate::daemon::Daemon;
use crate::gate::REREGISTER_FAILURE_BACKOFF;
use crate::register::RegisterError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("list workspaces: {0}")]
    List(#[from] ApiError),
    #[error("failed to register runtimes for any of the {count} workspace(s): {last}")]
    NoneRegistered { count: usize, last: RegisterError },
}

impl SyncError {
    fn api(&self) -> Option<&ApiError> {
        match self {
            SyncError::List(e) => Some(e),
            SyncError::NoneRegistered {
                last: RegisterError::Api(e),
                ..
            } => Some(e),
            _ => None,
        }
    }
}

impl Daemon {
    /// One pass of workspace discovery.
    pub async fn sync_workspaces(self: &Arc<Self>) -> Result<(), SyncError> {
        let answer = until_cancelled(&self.root, self.client.list_workspaces()).await?;
        self.health.note_server_ok(answer.server_date);
        let listed = answer.body;
        let mut changed = false;
        let mut registered = 0usize;
        let mut last_err = None;
        for ws in &listed {
            if self.registry.is_tracked(&ws.id) {
                if !self.registry.workspace_needs_runtime_recovery(&ws.id) {
                    continue;
                }
                // The same gate as `handle_runtime_gone`: never while a peer's register
                // of this workspace runs, nor within the failure backoff of a failed one.
                match self
                    .gate
                    .run(&ws.id, Instant::now(), self.reregister_workspace(&ws.id))
                    .await
                {
                    None => {
                        tracing::debug!(workspace_id = %ws.id, "workspace has no runtimes; register gated (recent attempt or failure backoff)");
                    }
                    Some(Ok(())) => {
                        tracing::info!(workspace_id = %ws.id, "workspace had no runtimes; registered again");
                        registered += 1;
                    }
                    Some(Err(e)) => {
                        tracing::warn!(workspace_id = %ws.id, error = %e, retry_after = ?REREGISTER_FAILURE_BACKOFF, "re-register failed");
                        last_err = Some(e);
                    }
                }
                continue;
            }
            let resp = match self.register_runtimes_for_workspace(&ws.id).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(workspace_id = %ws.id, error = %e, "register failed");
                    last_err = Some(e);
                    continue;
                }
            };
            let fresh = match self.apply_register_response(&ws.id, &resp, true) {
                Ok(f) => f,
                Err(e) => {
                    last_err = Some(e);
                    continue;
                }
            };
            registered += 1;
            changed = true;
            self.recover_orphans(&fresh).await;
            tracing::info!(workspace_id = %ws.id, name = %ws.name, runtimes = resp.runtimes.len(), "watching workspace");
        }
        let listed_ids: Vec<&str> = listed.iter().map(|w| w.id.as_str()).collect();
        for id in self.registry.retain_workspaces(&listed_ids) {
            tracing::info!(workspace_id = %id, "workspace no longer visible; stopped watching it");
            changed = true;
        }
        if changed {
            self.registry.notify_changed();
        }
        if let Some(last) = last_err
            && registered == 0
            && self.registry.all_runtime_ids().is_empty()
            && !listed.is_empty()
        {
            return Err(SyncError::NoneRegistered {
                count: listed.len(),
                last,
            });
        }
        Ok(())
    }

    /// Runs the first sync, retrying with backoff (and saying why) until it succeeds or the
    /// daemon stops. Never gives up on a transient, auth or clock condition.
    pub async fn initial_sync(self: &Arc<Self>, cancel: &CancellationToken) -> bool {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        loop {
            match self.sync_workspaces().await {
                Ok(()) => return true,
                Err(e) => {
                    let delay = backoff.next_delay();
                    match e.api() {
                        Some(ApiError::Cancelled) => return false,
                        Some(api) => self.health.note_api_error(api),
                        None => self.health.set(HealthState::Starting, Some(e.to_string())),
                    }
                    tracing::warn!(error = %e, retry_in = ?delay, "cannot reach a working state with the server yet; retrying");
                    if cancel
                        .run_until_cancelled(tokio::time::sleep(delay))
                        .await
                        .is_none()
                    {
                        return false;
                    }
                }
            }
        }
    }
}

/// The periodic sync loop.
pub async fn workspace_sync_loop(d: Arc<Daemon>, cancel: CancellationToken) {
    loop {
        if cancel
            .run_until_cancelled(tokio::time::sleep(d.cfg.workspace_sync_interval))
            .await
            .is_none()
        {
            return;
        }
        if let Err(e) = d.sync_workspaces().await {
            tracing::debug!(error = %e, "workspace sync failed");
            if let Some(api) = e.api() {
                d.health.note_api_error(api);
            }
        }
    }
}
