//! Registration: probing the configured agent CLIs and registering them as runtimes of a
//! workspace, then applying the server's answer to local state.
//!
//! The register response is authoritative for the workspace's runtime set: applying it
//! *replaces* the workspace's runtime list (never appends), so a sibling that survived a
//! deletion is not duplicated and a deleted one disappears.

use std::sync::Arc;

use agentd_proto::{RegisterRequest, RegisterResponse, RuntimeSpec};

use crate::api::ApiError;
use crate::api::http::until_cancelled;
use crate::daemon::Daemon;
use crate::metrics::inc;

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// No configured CLI passed its version probe: nothing to register.
    #[error(
        "no agent runtimes could be registered (every agent CLI was missing, broken or too old)"
    )]
    NoRuntimes,
    /// The server answered with an empty runtime list.
    #[error("register runtimes: empty response")]
    EmptyResponse,
    #[error("register runtimes: {0}")]
    Api(#[from] ApiError),
    /// The workspace was dropped while the register call was in flight.
    #[error("workspace {0} no longer tracked")]
    WorkspaceGone(String),
}

impl RegisterError {
    pub fn is_transient(&self) -> bool {
        match self {
            RegisterError::Api(e) => e.is_transient(),
            _ => false,
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

impl Daemon {
    /// Probes every configured agent and registers the ones that qualify in `workspace_id`.
    /// The call is abandoned when the daemon shuts down (never on a caller's token).
    pub async fn register_runtimes_for_workspace(
        &self,
        workspace_id: &str,
    ) -> Result<RegisterResponse, RegisterError> {
        let mut runtimes = Vec::new();
        for agent in &self.cfg.agents {
            match self.probe.probe(agent).await {
                Ok(version) => {
                    self.note_agent_version(&agent.provider, &version);
                    runtimes.push(RuntimeSpec {
                        name: format!("{} ({})", capitalize(&agent.provider), self.cfg.device_name),
                        provider: agent.provider.clone(),
                        version,
                        status: "online".into(),
                        sandbox: Some(self.sandbox.state),
                        capacity: u32::try_from(self.cfg.max_concurrent_tasks).ok(),
                        labels: self.cfg.labels.clone(),
                    });
                }
                Err(e) => {
                    tracing::warn!(provider = %agent.provider, error = %e, "skipping agent CLI");
                }
            }
        }
        if runtimes.is_empty() {
            return Err(RegisterError::NoRuntimes);
        }
        let req = RegisterRequest {
            workspace_id: workspace_id.to_string(),
            daemon_id: self.cfg.daemon_id.clone(),
            legacy_daemon_ids: self.cfg.legacy_daemon_ids.clone(),
            device_name: self.cfg.device_name.clone(),
            cli_version: self.cfg.cli_version.clone(),
            launched_by: self.cfg.launched_by.clone(),
            timezone: self.cfg.timezone.clone(),
            runtimes,
        };
        inc(&self.metrics.registers);
        let resp = until_cancelled(&self.root, self.client.register(&req))
            .await
            .inspect_err(|_| inc(&self.metrics.register_failures))?;
        if resp.runtimes.is_empty() {
            inc(&self.metrics.register_failures);
            return Err(RegisterError::EmptyResponse);
        }
        Ok(resp)
    }

    /// Applies a register response to a tracked workspace (creating it if `create`)
    /// through the registry, the only writer of runtime ids. Returns the runtime ids that
    /// are new to this daemon.
    pub(crate) fn apply_register_response(
        &self,
        workspace_id: &str,
        resp: &RegisterResponse,
        create: bool,
    ) -> Result<Vec<String>, RegisterError> {
        self.note_server_kind(resp.server);
        let fresh = self
            .registry
            .apply_register(workspace_id, resp, create)
            .ok_or_else(|| RegisterError::WorkspaceGone(workspace_id.to_string()))?;
        for id in &fresh {
            tracing::info!(workspace_id, runtime_id = %id, "runtime registered");
        }
        Ok(fresh)
    }

    /// Asks the server to fail the tasks these runtimes held before a restart, sparing
    /// every task this daemon still holds (running, or owed a report): self-healing one
    /// runtime never touches its siblings' work, nor a result on its way.
    pub(crate) async fn recover_orphans(&self, runtime_ids: &[String]) {
        if runtime_ids.is_empty() {
            return;
        }
        let held = self.runner.held_task_ids();
        for id in runtime_ids {
            match until_cancelled(&self.root, self.client.recover_orphans(id, held.clone())).await {
                Ok(r) if r.failed + r.requeued > 0 => {
                    tracing::info!(runtime_id = %id, failed = r.failed, requeued = r.requeued, "recovered orphaned tasks");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(runtime_id = %id, error = %e, "recover-orphans failed"),
            }
        }
    }

    /// Re-registers a tracked workspace after one of its runtimes was deleted server-side
    /// (or all of them drained), applies the answer and recovers orphans of the runtimes
    /// that are *new* (a surviving sibling's id, and its running task, are left alone).
    pub async fn reregister_workspace(
        self: &Arc<Self>,
        workspace_id: &str,
    ) -> Result<(), RegisterError> {
        let resp = self.register_runtimes_for_workspace(workspace_id).await?;
        let fresh = self.apply_register_response(workspace_id, &resp, false)?;
        self.registry.notify_changed();
        self.recover_orphans(&fresh).await;
        Ok(())
    }
}
