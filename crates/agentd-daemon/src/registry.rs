//! [`Registry`]: the workspaces this daemon serves and their runtimes, the WS freshness
//! marks, and the runtime-set watcher. It is the only code that changes runtime ids:
//! a register answer *replaces* a workspace's runtime list ([`Registry::apply_register`]),
//! self-healing prunes one ([`Registry::remove_stale_runtime`]), workspace sync adds and
//! drops workspaces. Every change that alters the set nudges the watcher.

use std::collections::HashMap;
use std::sync::Mutex;

use agentd_proto::{RegisterResponse, Repo, Runtime};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::fsutil::lock;

/// One workspace the daemon serves.
///
/// **Invariant:** created once (by workspace sync) and then only mutated in place, never
/// replaced: what a register answer brought (the repos) must survive a sibling's pruning.
#[derive(Debug)]
struct WorkspaceState {
    /// Runtime ids of this workspace, in the order the last register returned them.
    runtime_ids: Vec<String>,
    /// Repositories the workspace allows (the register answer's, refreshed by each one).
    repos: Vec<Repo>,
}

/// Tracked workspaces and the runtime index.
///
/// **Invariant:** every id in some `workspaces[w].runtime_ids` has an entry in
/// `runtime_index`, and vice versa; both are changed under the same lock, which is never
/// held across an `.await`.
#[derive(Debug, Default)]
struct State {
    workspaces: HashMap<String, WorkspaceState>,
    runtime_index: HashMap<String, Runtime>,
}

pub struct Registry {
    state: Mutex<State>,
    /// Runtime id → time of its last good WS heartbeat ack. While younger than the
    /// freshness window, HTTP heartbeats for that runtime are skipped. Cleared entirely
    /// when the WS connection ends, so HTTP resumes on the next tick.
    ws_fresh: Mutex<HashMap<String, Instant>>,
    /// Bumped whenever the runtime set changes. Subscribers (heartbeat supervisor, poll
    /// supervisor, WS loop) hold a receiver: a watch channel is a 1-slot nudge whose
    /// notifications coalesce, and subscribers re-read the set rather than count edges.
    runtime_set: watch::Sender<u64>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            state: Mutex::default(),
            ws_fresh: Mutex::default(),
            runtime_set: watch::channel(0).0,
        }
    }
}

impl Registry {
    /// Nudges every runtime-set subscriber.
    pub fn notify_changed(&self) {
        self.runtime_set.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.runtime_set.subscribe()
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

    /// `(workspace id, runtimes)` of every tracked workspace, sorted by workspace.
    pub fn workspaces(&self) -> Vec<(String, Vec<Runtime>)> {
        let st = lock(&self.state);
        let mut out: Vec<(String, Vec<Runtime>)> = st
            .workspaces
            .iter()
            .map(|(id, w)| {
                let rts = w
                    .runtime_ids
                    .iter()
                    .map(|r| {
                        st.runtime_index.get(r).cloned().unwrap_or_else(|| Runtime {
                            id: r.clone(),
                            ..Runtime::default()
                        })
                    })
                    .collect();
                (id.clone(), rts)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub fn is_tracked(&self, workspace_id: &str) -> bool {
        lock(&self.state).workspaces.contains_key(workspace_id)
    }

    pub fn runtime(&self, id: &str) -> Option<Runtime> {
        lock(&self.state).runtime_index.get(id).cloned()
    }

    /// The workspace a runtime belongs to.
    pub fn workspace_of(&self, runtime_id: &str) -> Option<String> {
        let st = lock(&self.state);
        st.workspaces
            .iter()
            .find(|(_, w)| w.runtime_ids.iter().any(|r| r == runtime_id))
            .map(|(id, _)| id.clone())
    }

    /// The repository URLs a workspace allows.
    pub fn allowed_repos(&self, workspace_id: &str) -> Vec<String> {
        lock(&self.state)
            .workspaces
            .get(workspace_id)
            .map(|w| w.repos.iter().map(|r| r.url.clone()).collect())
            .unwrap_or_default()
    }

    /// Removes a runtime from its workspace's list (in place), from the index and from the
    /// WS freshness map. Returns the workspace id, or `None` if the id is not tracked
    /// (a sibling already handled it, or the workspace was dropped).
    pub fn remove_stale_runtime(&self, runtime_id: &str) -> Option<String> {
        let workspace_id = {
            let mut st = lock(&self.state);
            let (id, ws) = st
                .workspaces
                .iter_mut()
                .find(|(_, w)| w.runtime_ids.iter().any(|r| r == runtime_id))?;
            ws.runtime_ids.retain(|r| r != runtime_id);
            let id = id.clone();
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

    /// Applies a register answer to a workspace (tracking it first if `create`):
    /// *replaces* its runtime list, re-indexes, takes its repos. Returns the runtime ids
    /// that are new to this daemon, or `None` when the workspace is not tracked (it was
    /// dropped while the register call was in flight). Does not nudge the watcher.
    pub fn apply_register(
        &self,
        workspace_id: &str,
        resp: &RegisterResponse,
        create: bool,
    ) -> Option<Vec<String>> {
        let mut st = lock(&self.state);
        if create && !st.workspaces.contains_key(workspace_id) {
            st.workspaces.insert(
                workspace_id.to_string(),
                WorkspaceState {
                    runtime_ids: Vec::new(),
                    repos: Vec::new(),
                },
            );
        }
        let returned: Vec<String> = resp.runtimes.iter().map(|r| r.id.clone()).collect();
        let ws = st.workspaces.get_mut(workspace_id)?;
        let previous = std::mem::replace(&mut ws.runtime_ids, returned.clone());
        if create || !resp.repos_version.is_empty() {
            ws.repos = resp.repos.clone();
        }
        for id in &previous {
            if !returned.contains(id) {
                st.runtime_index.remove(id);
            }
        }
        let mut fresh = Vec::new();
        for rt in &resp.runtimes {
            if st.runtime_index.insert(rt.id.clone(), rt.clone()).is_none() {
                fresh.push(rt.id.clone());
            }
        }
        Some(fresh)
    }

    /// Stops tracking every workspace not in `listed`; returns the ones dropped.
    pub fn retain_workspaces(&self, listed: &[&str]) -> Vec<String> {
        let mut st = lock(&self.state);
        let gone: Vec<String> = st
            .workspaces
            .keys()
            .filter(|id| !listed.contains(&id.as_str()))
            .cloned()
            .collect();
        for id in &gone {
            if let Some(ws) = st.workspaces.remove(id) {
                for rid in &ws.runtime_ids {
                    st.runtime_index.remove(rid);
                }
            }
        }
        gone
    }

    /// Records a good WS ack for a runtime.
    pub fn mark_ws_fresh(&self, runtime_id: &str) {
        lock(&self.ws_fresh).insert(runtime_id.to_string(), Instant::now());
    }

    /// True while the runtime's last WS ack is younger than `window`.
    pub fn ws_recently_acked(&self, runtime_id: &str, window: std::time::Duration) -> bool {
        lock(&self.ws_fresh)
            .get(runtime_id)
            .is_some_and(|t| t.elapsed() < window)
    }

    pub fn clear_ws_freshness(&self) {
        lock(&self.ws_fresh).clear();
    }

    #[cfg(test)]
    pub(crate) fn has_fresh_mark(&self, runtime_id: &str) -> bool {
        lock(&self.ws_fresh).contains_key(runtime_id)
    }

    #[cfg(test)]
    pub(crate) fn fresh_marks(&self) -> usize {
        lock(&self.ws_fresh).len()
    }

    /// Tracks a workspace with these `(id, provider)` runtimes and repos, as a register
    /// answer would (tests seed state this way).
    #[cfg(test)]
    pub(crate) fn track(&self, workspace_id: &str, runtimes: &[(&str, &str)], repos: &[&str]) {
        let resp = RegisterResponse {
            runtimes: runtimes
                .iter()
                .map(|(id, provider)| Runtime {
                    id: id.to_string(),
                    provider: provider.to_string(),
                    ..Runtime::default()
                })
                .collect(),
            repos: repos.iter().map(|u| Repo { url: u.to_string() }).collect(),
            ..RegisterResponse::default()
        };
        self.apply_register(workspace_id, &resp, true);
    }

    #[cfg(test)]
    pub(crate) fn runtime_ids(&self, workspace_id: &str) -> Vec<String> {
        lock(&self.state)
            .workspaces
            .get(workspace_id)
            .map(|w| w.runtime_ids.clone())
            .unwrap_or_default()
    }
}
