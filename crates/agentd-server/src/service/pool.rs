//! Runtime pools: which runtimes an agent's tasks may run on when the agent is not tied
//! to one runtime, and which pool agents a runtime serves.
//!
//! An agent has a `runtime_id` (its one runtime, as before), or a pool (`agents.pool`, the
//! JSON of an [`AgentPool`]): any runtime of the workspace among `runtime_ids` (when
//! given) with `provider` (when given) carrying every one of `labels`. A pool agent's task
//! is queued for no runtime (`runtime_id` `''`); the first runtime of the pool that claims
//! it with free capacity takes it (`store::shared::claim_sql`), and enqueueing wakes the
//! pool's online runtimes, least loaded first.
//!
//! [`PoolCache`] keeps each workspace's pool agents for at most [`TTL_MS`] so a claim does
//! not read them every time; any `agent` event drops the workspace's entry on every
//! instance (the bus), so a changed pool is seen within the bound everywhere (a read that
//! raced the change may be served until its entry ages out).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use agentd_proto::api::AgentPool;

use super::Error;
use crate::App;
use crate::store::{AgentRow, RuntimeRow, StoreError};

/// How long a workspace's pool agents may be served from memory (milliseconds).
pub const TTL_MS: i64 = 1_000;

/// A workspace's pool agents and when they were read (server clock, ms).
type Entry = (i64, Arc<Vec<AgentRow>>);

/// The pool agents of each workspace, as read at a time.
// Invariant: an entry is the result of one `list_agents` read at its time, filtered to
// pool agents; the lock is never held across an `.await`.
#[derive(Default)]
pub struct PoolCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl PoolCache {
    fn get(&self, workspace_id: &str, now: i64) -> Option<Arc<Vec<AgentRow>>> {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.get(workspace_id)
            .filter(|(at, _)| now - at < TTL_MS && *at <= now)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, workspace_id: String, at: i64, agents: Arc<Vec<AgentRow>>) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.clear();
        }
        map.insert(workspace_id, (at, agents));
    }

    /// Drops a workspace's entry (an agent of it was created, changed or deleted).
    pub fn forget(&self, workspace_id: &str) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(workspace_id);
    }

    /// Drops everything (a bus resync).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// The agent's pool, if it has one (a stored pool that does not parse counts as none).
pub fn of(agent: &AgentRow) -> Option<AgentPool> {
    agent
        .pool
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
}

/// The labels a runtime carries.
pub fn labels(rt: &RuntimeRow) -> Vec<String> {
    serde_json::from_str(&rt.labels).unwrap_or_default()
}

/// Whether `rt` belongs to `pool`.
pub fn matches(pool: &AgentPool, rt: &RuntimeRow) -> bool {
    if !pool.runtime_ids.is_empty() && !pool.runtime_ids.iter().any(|id| id == &rt.id) {
        return false;
    }
    if let Some(p) = &pool.provider
        && &rt.provider != p
    {
        return false;
    }
    let have = labels(rt);
    pool.labels.iter().all(|l| have.contains(l))
}

/// Checks a pool given by a user: something to select by, no empty names. Runtime ids
/// are resolved by the caller.
pub fn validate(pool: &AgentPool) -> Result<(), Error> {
    if pool.runtime_ids.is_empty() && pool.provider.as_deref().is_none_or(str::is_empty) {
        return Err(Error::bad(
            "a pool needs runtime_ids or a provider (e.g. {\"provider\": \"claude\"})",
        ));
    }
    if pool.labels.iter().any(|l| l.trim().is_empty()) {
        return Err(Error::bad("pool labels must not be empty"));
    }
    Ok(())
}

/// The runtimes of the workspace the agent's pool matches now (none without a pool).
pub async fn members(app: &App, agent: &AgentRow) -> Result<Vec<RuntimeRow>, StoreError> {
    let Some(pool) = of(agent) else {
        return Ok(Vec::new());
    };
    Ok(app
        .store
        .list_runtimes(agent.workspace_id.clone(), None)
        .await?
        .into_iter()
        .filter(|rt| matches(&pool, rt))
        .collect())
}

/// The pool agents whose unassigned tasks runtime `rt` may claim.
pub async fn served_by(app: &App, rt: &RuntimeRow) -> Result<Vec<String>, StoreError> {
    let now = app.now();
    let agents = match app.pools.get(&rt.workspace_id, now) {
        Some(a) => a,
        None => {
            let all = app.store.list_agents(rt.workspace_id.clone()).await?;
            let pooled = Arc::new(
                all.into_iter()
                    .filter(|a| a.pool.is_some())
                    .collect::<Vec<_>>(),
            );
            app.pools.put(rt.workspace_id.clone(), now, pooled.clone());
            pooled
        }
    };
    Ok(agents
        .iter()
        .filter(|a| of(a).is_some_and(|p| matches(&p, rt)))
        .map(|a| a.id.clone())
        .collect())
}
