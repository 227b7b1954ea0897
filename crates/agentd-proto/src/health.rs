//! The daemon's local `GET /health` document.

use serde::{Deserialize, Serialize};

/// Overall state of a daemon as its health endpoint reports it. `Running` is the only
/// ready state; every other state names what is wrong so an operator need not read logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Starting: no workspace synced yet.
    #[default]
    Starting,
    /// Registered and heartbeating.
    Running,
    /// The server rejects our token (401/403). Not transient by itself, but the daemon keeps
    /// retrying so a fixed token on the server side heals it without a restart.
    Unauthorized,
    /// The server cannot be reached (connection refused, timeout, 5xx).
    ServerUnreachable,
    /// The server's clock differs from ours by more than the tolerated skew.
    ClockSkew,
    /// The sandbox is configured but cannot start here; no task is claimed until it
    /// can (or the config says `sandbox = "off"`). The detail says why.
    Unsandboxed,
    /// Shutting down.
    Stopping,
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct HealthRuntime {
    pub id: String,
    pub provider: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct HealthWorkspace {
    pub id: String,
    pub runtimes: Vec<HealthRuntime>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct HealthAgent {
    pub provider: String,
    pub path: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Health {
    /// `"running"` when ready; otherwise the problem (see [`HealthState`]).
    pub status: HealthState,
    /// Human-readable detail of a non-running status (the last error seen).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub ready: bool,
    pub pid: u32,
    /// Seconds since the daemon started.
    pub uptime: u64,
    pub daemon_id: String,
    pub device_name: String,
    pub server_url: String,
    pub cli_version: String,
    pub active_task_count: usize,
    pub ws_connected: bool,
    /// `bwrap`, `off` or `unavailable` (see [`crate::SandboxState`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<crate::SandboxState>,
    /// The kind of server served (`agentd` or `multica`): what agents are told and what is
    /// reported after a cancel (see `docs/multica.md`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_kind: Option<crate::ServerKind>,
    pub agents: Vec<HealthAgent>,
    pub workspaces: Vec<HealthWorkspace>,
}
