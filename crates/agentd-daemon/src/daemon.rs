//! [`Daemon`]: the state every loop shares — tracked workspaces and runtimes, WS
//! freshness marks, the runtime-set watcher, health — and the small operations on it.
//!
//! The loops themselves live in their own modules (`workspace_sync`, `heartbeat`,
//! `wakeup`, `claim`, `recovery`); this module only owns the data and its invariants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant as StdInstant;

use agentd_proto::health::HealthState;
use agentd_proto::{Repo, Runtime};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agents::VersionProbe;
use crate::api::Client;
use crate::config::DaemonConfig;
use crate::metrics::Metrics;
use crate::recovery::RecoveryGate;

/// One workspace the daemon serves.
///
/// **Invariant:** created once (by workspace sync) and then only mutated in place, never
/// replaced: `repo_lock` is held across long repository syncs, and a replaced entry would
/// hand a second caller a different lock. `remove_stale_runtime` and re-registration edit
/// `runtime_ids` in place for that reason.
#[derive(Debug)]
pub struct WorkspaceState {
    pub workspace_id: String,
    /// Runtime ids of this workspace, in the order the last register returned them.
    pub runtime_ids: Vec<String>,
    pub repos: Vec<Repo>,
    pub repos_version: String,
    pub settings: Option<serde_json::Value>,
    /// Serializes repository refreshes for this workspace.
    pub repo_lock: Arc<tokio::sync::Mutex<()>>,
}

impl WorkspaceState {
    pub fn new(workspace_id: &str, runtime_ids: Vec<String>) -> WorkspaceState {
        WorkspaceState {
            workspace_id: workspace_id.to_string(),
            runtime_ids,
            repos: Vec::new(),
            repos_version: String::new(),
            settings: None,
            repo_lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}

/// Tracked workspaces and the runtime index.
///
/// **Invariant:** every id in some `workspaces[w].runtime_ids` has an entry in
/// `runtime_index`, and vice versa; both are changed under the same lock, which is never
/// held across an `.await`.
#[derive(Debug, Default)]
pub struct State {
    pub workspaces: HashMap<String, WorkspaceState>,
    pub runtime_index: HashMap<String, Runtime>,
}

/// What the health endpoint reports.
#[derive(Debug, Clone)]
pub struct HealthInfo {
    pub state: HealthState,
    pub detail: Option<String>,
    pub ws_connected: bool,
}

/// The daemon's shared state. Cheap to share as `Arc<Daemon>`.
pub struct Daemon {
    pub(crate) cfg: DaemonConfig,
    pub(crate) client: Client,
    pub(crate) probe: Arc<dyn VersionProbe>,
    pub(crate) state: Mutex<State>,
    /// Runtime id → time of its last good WS heartbeat ack. While younger than the
    /// freshness window, HTTP heartbeats for that runtime are skipped. Cleared entirely
    /// when the WS connection ends, so HTTP resumes on the next tick.
    pub(crate) ws_fresh: Mutex<HashMap<String, Instant>>,
    pub(crate) gate: Mutex<RecoveryGate>,
    /// Bumped whenever the runtime set changes. Subscribers (heartbeat supervisor, poll
    /// supervisor, WS loop) hold a receiver: a watch channel is a 1-slot nudge whose
    /// notifications coalesce, and subscribers re-read the set rather than count edges.
    pub(crate) runtime_set: watch::Sender<u64>,
    /// Bumped by WS `task_available` (and on WS connect): wakes every poller now.
    pub(crate) wakeups: watch::Sender<u64>,
    /// Cancelled only at daemon shutdown. Recoveries run on it, never on a caller's token.
    pub(crate) root: CancellationToken,
    /// Parent of every running task's token. Cancelled after the shutdown grace, not at
    /// the signal, so running agents get time to finish.
    pub(crate) task_root: CancellationToken,
    /// Every background task the daemon spawns (recoveries included) is tracked here.
    pub(crate) tracker: TaskTracker,
    pub(crate) metrics: Metrics,
    pub(crate) health: Mutex<HealthInfo>,
    /// Provider → version last probed.
    pub(crate) agent_versions: Mutex<HashMap<String, String>>,
    /// Task id → the token that stops its agent, for every task running now.
    pub(crate) active_tasks: Mutex<HashMap<String, CancellationToken>>,
    /// Bounds concurrently running tasks (max concurrent tasks).
    pub(crate) slots: Arc<tokio::sync::Semaphore>,
    pub(crate) started: StdInstant,
    /// The durable outbox of task reports; set by `run_daemon` (tests may leave it unset:
    /// reports are then sent directly).
    pub(crate) outbox: std::sync::OnceLock<Arc<crate::task::outbox::Outbox>>,
    pub(crate) repo_cache: crate::execenv::RepoCache,
}

/// Locks a std mutex, recovering the data if a panicking thread poisoned it: every
/// critical section here leaves the data consistent at each statement.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Daemon {
    pub fn new(
        cfg: DaemonConfig,
        client: Client,
        probe: Arc<dyn VersionProbe>,
        root: CancellationToken,
    ) -> Arc<Daemon> {
        Arc::new(Daemon {
            slots: Arc::new(tokio::sync::Semaphore::new(cfg.max_concurrent_tasks.max(1))),
            cfg,
            client,
            probe,
            state: Mutex::default(),
            ws_fresh: Mutex::default(),
            gate: Mutex::default(),
            runtime_set: watch::channel(0).0,
            wakeups: watch::channel(0).0,
            root,
            task_root: CancellationToken::new(),
            tracker: TaskTracker::new(),
            metrics: Metrics::default(),
            health: Mutex::new(HealthInfo {
                state: HealthState::Starting,
                detail: None,
                ws_connected: false,
            }),
            agent_versions: Mutex::default(),
            active_tasks: Mutex::default(),
            started: StdInstant::now(),
            outbox: std::sync::OnceLock::new(),
            repo_cache: crate::execenv::RepoCache::default(),
        })
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

    /// Nudges every runtime-set subscriber.
    pub fn notify_runtime_set_changed(&self) {
        self.runtime_set.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn subscribe_runtime_set(&self) -> watch::Receiver<u64> {
        self.runtime_set.subscribe()
    }

    /// Wakes every poller (WS `task_available`, WS connect).
    pub fn wake_pollers(&self) {
        self.wakeups.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Every tracked runtime id, sorted.
    pub fn all_runtime_ids(&self) -> Vec<String> {
        let st = lock(&self.state);
        let mut ids: Vec<String> = st
            .workspaces
            .values()
            .flat_map(|w| w.runtime_ids.iter().cloned())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// `(workspace id, runtime ids)` of every tracked workspace, sorted by workspace.
    pub fn workspace_runtimes(&self) -> Vec<(String, Vec<String>)> {
        let st = lock(&self.state);
        let mut out: Vec<_> = st
            .workspaces
            .values()
            .map(|w| (w.workspace_id.clone(), w.runtime_ids.clone()))
            .collect();
        out.sort();
        out
    }

    pub fn runtime(&self, id: &str) -> Option<Runtime> {
        lock(&self.state).runtime_index.get(id).cloned()
    }

    /// The workspace a runtime belongs to.
    pub fn workspace_of(&self, runtime_id: &str) -> Option<String> {
        let st = lock(&self.state);
        st.workspaces
            .values()
            .find(|w| w.runtime_ids.iter().any(|r| r == runtime_id))
            .map(|w| w.workspace_id.clone())
    }

    /// Removes a runtime from its workspace's list (in place), from the index and from the
    /// WS freshness map. Returns the workspace id, or `None` if the id is not tracked
    /// (a sibling already handled it, or the workspace was dropped).
    pub fn remove_stale_runtime(&self, runtime_id: &str) -> Option<String> {
        let workspace_id = {
            let mut st = lock(&self.state);
            let ws = st
                .workspaces
                .values_mut()
                .find(|w| w.runtime_ids.iter().any(|r| r == runtime_id))?;
            ws.runtime_ids.retain(|r| r != runtime_id);
            let id = ws.workspace_id.clone();
            st.runtime_index.remove(runtime_id);
            id
        };
        lock(&self.ws_fresh).remove(runtime_id);
        Some(workspace_id)
    }

    /// True when a tracked workspace has no runtimes left (all were pruned and the
    /// re-register failed): the workspace sync loop retries it.
    pub fn workspace_needs_runtime_recovery(&self, workspace_id: &str) -> bool {
        lock(&self.state)
            .workspaces
            .get(workspace_id)
            .is_some_and(|w| w.runtime_ids.is_empty())
    }

    /// Records a good WS ack for a runtime.
    pub fn mark_ws_fresh(&self, runtime_id: &str) {
        lock(&self.ws_fresh).insert(runtime_id.to_string(), Instant::now());
    }

    /// True while the runtime's last WS ack is younger than the freshness window.
    pub fn ws_heartbeat_recently_acked(&self, runtime_id: &str) -> bool {
        let window = self.cfg.ws_fresh_window();
        lock(&self.ws_fresh)
            .get(runtime_id)
            .is_some_and(|t| t.elapsed() < window)
    }

    pub fn clear_ws_freshness(&self) {
        lock(&self.ws_fresh).clear();
    }

    /// Sets the health state (and its detail), logging transitions once.
    pub fn set_health(&self, state: HealthState, detail: Option<String>) {
        let mut h = lock(&self.health);
        if h.state != state {
            match state {
                HealthState::Running => tracing::info!("daemon is healthy"),
                _ => {
                    tracing::warn!(state = ?state, detail = detail.as_deref().unwrap_or(""), "daemon health changed")
                }
            }
        }
        h.state = state;
        h.detail = detail;
    }

    pub fn health_state(&self) -> HealthState {
        lock(&self.health).state
    }

    pub fn set_ws_connected(&self, connected: bool) {
        lock(&self.health).ws_connected = connected;
    }

    pub fn active_task_count(&self) -> usize {
        lock(&self.active_tasks).len()
    }
}
