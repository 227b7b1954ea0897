//! [`Daemon`]: the daemon's parts, each owning its state privately — the [`Registry`]
//! of workspaces and runtimes, the [`RecoveryGate`], the [`TaskRunner`], [`Health`] —
//! plus the configuration, the HTTP client, metrics and the root token and tracker every
//! loop runs under. The loops live in their own modules (`workspace_sync`, `heartbeat`,
//! `claim`, `recovery`, `task`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant as StdInstant;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agents::VersionProbe;
use crate::api::Client;
use crate::config::DaemonConfig;
use crate::fsutil::lock;
use crate::gate::RecoveryGate;
use crate::health::state::Health;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::task::runner::TaskRunner;

/// The daemon. Cheap to share as `Arc<Daemon>`.
pub struct Daemon {
    pub(crate) cfg: DaemonConfig,
    pub(crate) client: Client,
    pub(crate) probe: Arc<dyn VersionProbe>,
    /// Workspaces, runtimes, WS freshness, the runtime-set watcher.
    pub(crate) registry: Registry,
    /// Coalescing of re-registrations.
    pub(crate) gate: RecoveryGate,
    /// Slots, running tasks, the outbox, the repo cache, poller wake-ups.
    pub(crate) runner: TaskRunner,
    /// Cancelled only at daemon shutdown. Recoveries run on it, never on a caller's token.
    pub(crate) root: CancellationToken,
    /// Every background task the daemon spawns (recoveries included) is tracked here.
    pub(crate) tracker: TaskTracker,
    pub(crate) metrics: Metrics,
    /// What the health endpoint reports.
    pub(crate) health: Health,
    /// Whether agent runs are sandboxed, decided once at start.
    pub(crate) sandbox: crate::sandbox::SandboxStatus,
    /// Provider → version last probed.
    agent_versions: Mutex<HashMap<String, String>>,
    /// The kind of server the last register answer said it is (see [`Daemon::server_kind`]).
    answered_kind: Mutex<Option<agentd_proto::ServerKind>>,
    pub(crate) started: StdInstant,
}

impl Daemon {
    pub fn new(
        cfg: DaemonConfig,
        client: Client,
        probe: Arc<dyn VersionProbe>,
        root: CancellationToken,
    ) -> Arc<Daemon> {
        Arc::new(Daemon {
            runner: TaskRunner::new(cfg.max_concurrent_tasks),
            health: Health::new(cfg.clock_skew_tolerance),
            sandbox: crate::sandbox::status(&cfg.sandbox),
            cfg,
            client,
            probe,
            registry: Registry::default(),
            gate: RecoveryGate::default(),
            root,
            tracker: TaskTracker::new(),
            metrics: Metrics::default(),
            agent_versions: Mutex::default(),
            answered_kind: Mutex::default(),
            started: StdInstant::now(),
        })
    }

    /// The kind of server this daemon serves: the `server_kind` config key if set, else
    /// what the register answer said (agentd's server names itself; a Multica server,
    /// which does not, is served the way Multica's own daemon serves it).
    pub fn server_kind(&self) -> agentd_proto::ServerKind {
        self.cfg.server_kind.unwrap_or_else(|| {
            crate::fsutil::lock(&self.answered_kind).unwrap_or(agentd_proto::ServerKind::Multica)
        })
    }

    /// [`Daemon::server_kind`] once it is known (configured, or a register answered).
    pub fn known_server_kind(&self) -> Option<agentd_proto::ServerKind> {
        self.cfg
            .server_kind
            .or(*crate::fsutil::lock(&self.answered_kind))
    }

    /// Records what a register answer says about the server.
    pub(crate) fn note_server_kind(&self, answer: Option<agentd_proto::ServerKind>) {
        let kind = answer.unwrap_or(agentd_proto::ServerKind::Multica);
        let mut k = crate::fsutil::lock(&self.answered_kind);
        if *k != Some(kind) {
            tracing::info!(server_kind = kind.as_str(), fixed_by_config = ?self.cfg.server_kind, "serving this kind of server");
        }
        *k = Some(kind);
    }

    pub fn config(&self) -> &DaemonConfig {
        &self.cfg
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn root(&self) -> &CancellationToken {
        &self.root
    }

    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn runner(&self) -> &TaskRunner {
        &self.runner
    }

    /// True while the runtime's last WS ack is younger than the freshness window.
    pub fn ws_heartbeat_recently_acked(&self, runtime_id: &str) -> bool {
        self.registry
            .ws_recently_acked(runtime_id, self.cfg.ws_fresh_window())
    }

    pub(crate) fn note_agent_version(&self, provider: &str, version: &str) {
        lock(&self.agent_versions).insert(provider.to_string(), version.to_string());
    }

    pub(crate) fn agent_versions(&self) -> HashMap<String, String> {
        lock(&self.agent_versions).clone()
    }

    pub fn active_task_count(&self) -> usize {
        self.runner.active_count()
    }
}
