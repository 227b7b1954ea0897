//! Agents: a name, instructions and settings, bound to one runtime of their workspace
//! or to a runtime pool ([`pool`]).
//! Rebinding an agent to another runtime moves its queued tasks along (and wakes the new
//! runtime); tasks already claimed stay with the daemon that holds them. `custom_env`
//! values are write-only: every answer masks them, and an update that sends a masked
//! value back keeps the stored one.

use std::collections::BTreeMap;

use agentd_proto::api::{
    AgentInfo, AgentPool, CreateAgentRequest, MASKED_ENV_VALUE, UpdateAgentRequest,
};

use crate::App;
use crate::auth::Principal;
use crate::service::{Error, agent_event, agent_info, new_id, pool, resolve, workspace};
use crate::store::{AgentRow, RuntimeRow};

/// The runtime an agent may be bound to: one of the agent's workspace, by any reference
/// ([`resolve::runtime`] in that workspace).
async fn runtime_in(
    app: &App,
    who: &Principal,
    workspace_id: &str,
    runtime: &str,
) -> Result<RuntimeRow, Error> {
    resolve::runtime(app, who, runtime, Some(workspace_id)).await
}

/// The `custom_env` to store for `new`: the given keys (the others are removed), where a
/// value equal to the mask keeps the stored value of that key — so a client can send back
/// what it was shown. A masked value for a key that has none stored is refused.
fn merge_env(stored: &str, new: BTreeMap<String, String>) -> Result<String, Error> {
    let old: BTreeMap<String, String> = serde_json::from_str(stored).unwrap_or_default();
    let mut out = BTreeMap::new();
    for (k, v) in new {
        let v = if v == MASKED_ENV_VALUE {
            match old.get(&k) {
                Some(kept) => kept.clone(),
                None => {
                    return Err(Error::bad(format!(
                        "custom_env {k}: {MASKED_ENV_VALUE} keeps a stored value, and {k} has none"
                    )));
                }
            }
        } else {
            v
        };
        out.insert(k, v);
    }
    Ok(serde_json::to_string(&out).unwrap_or_else(|_| "{}".into()))
}

/// Automatic retries of a transiently failed task when the agent does not say.
pub const DEFAULT_MAX_RETRIES: u32 = 2;

/// A pool given by a user, checked ([`pool::validate`]) with its runtime references
/// resolved to ids of the workspace.
async fn pool_in(
    app: &App,
    who: &Principal,
    workspace_id: &str,
    mut p: AgentPool,
) -> Result<AgentPool, Error> {
    pool::validate(&p)?;
    let mut ids = Vec::new();
    for r in &p.runtime_ids {
        let id = runtime_in(app, who, workspace_id, r).await?.id;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    p.runtime_ids = ids;
    p.provider = p
        .provider
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    p.labels = p.labels.iter().map(|l| l.trim().to_string()).collect();
    Ok(p)
}

/// The agents as users see them, with what their pools match now and why their tasks
/// cannot run (`no runtime matches`).
pub async fn infos(app: &App, rows: &[AgentRow]) -> Result<Vec<AgentInfo>, Error> {
    let mut runtimes: BTreeMap<String, Vec<RuntimeRow>> = BTreeMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for a in rows {
        let mut info = agent_info(a);
        if let Some(p) = pool::of(a) {
            if !runtimes.contains_key(&a.workspace_id) {
                let all = app
                    .store
                    .list_runtimes(a.workspace_id.clone(), None)
                    .await?;
                runtimes.insert(a.workspace_id.clone(), all);
            }
            info.pool_runtimes = runtimes[&a.workspace_id]
                .iter()
                .filter(|rt| pool::matches(&p, rt))
                .map(|rt| rt.id.clone())
                .collect();
            if info.pool_runtimes.is_empty() {
                info.problem = Some(NO_RUNTIME_MATCHES.into());
            }
        }
        out.push(info);
    }
    Ok(out)
}

/// [`AgentInfo::problem`] of a pool that matches no runtime.
pub const NO_RUNTIME_MATCHES: &str = "no runtime matches";

/// Loads an agent the caller can see, by any reference ([`resolve::agent`]).
pub async fn load_for(app: &App, who: &Principal, agent_id: &str) -> Result<AgentRow, Error> {
    resolve::agent(app, who, agent_id, None).await
}

pub async fn list(app: &App, who: &Principal, wid: &str) -> Result<Vec<AgentRow>, Error> {
    let ws = workspace::visible(app, who, wid).await?;
    Ok(app.store.list_agents(ws.id).await?)
}

pub async fn create(
    app: &App,
    who: &Principal,
    wid: &str,
    req: CreateAgentRequest,
) -> Result<AgentRow, Error> {
    let ws = workspace::visible(app, who, wid).await?;
    if req.name.trim().is_empty() {
        return Err(Error::bad("name is required"));
    }
    let pool = match req.pool {
        Some(p) => Some(pool_in(app, who, &ws.id, p).await?),
        None => None,
    };
    let runtime_id = match (&pool, req.runtime_id.trim()) {
        (None, "") => return Err(Error::bad("runtime_id (or a pool) is required")),
        (Some(_), "") => String::new(),
        (_, rid) => runtime_in(app, who, &ws.id, rid).await?.id,
    };
    let row = AgentRow {
        id: new_id(),
        workspace_id: ws.id,
        runtime_id,
        pool: pool.map(|p| serde_json::to_string(&p).unwrap_or_default()),
        max_retries: i64::from(req.max_retries.unwrap_or(DEFAULT_MAX_RETRIES)),
        max_concurrency: req.max_concurrency.filter(|c| *c > 0).map(i64::from),
        name: req.name.trim().to_string(),
        instructions: req.instructions,
        model: req.model,
        custom_args: serde_json::to_string(&req.custom_args).unwrap_or_else(|_| "[]".into()),
        custom_env: merge_env("{}", req.custom_env)?,
        created_at: app.now(),
    };
    app.store.create_agent(row.clone()).await?;
    agent_event(app, &row);
    Ok(row)
}

pub async fn update(
    app: &App,
    who: &Principal,
    agent_id: &str,
    req: UpdateAgentRequest,
) -> Result<AgentRow, Error> {
    let mut a = load_for(app, who, agent_id).await?;
    if let Some(rid) = req.runtime_id {
        a.runtime_id = match rid.trim() {
            "" => String::new(),
            rid => runtime_in(app, who, &a.workspace_id, rid).await?.id,
        };
    }
    if let Some(p) = req.pool {
        a.pool = if p.runtime_ids.is_empty() && p.provider.is_none() {
            None
        } else {
            let p = pool_in(app, who, &a.workspace_id, p).await?;
            Some(serde_json::to_string(&p).unwrap_or_default())
        };
    }
    if a.pool.is_none() && a.runtime_id.is_empty() {
        return Err(Error::bad("an agent without a pool needs a runtime_id"));
    }
    if let Some(n) = req.max_retries {
        a.max_retries = i64::from(n);
    }
    if let Some(c) = req.max_concurrency {
        a.max_concurrency = (c > 0).then_some(i64::from(c));
    }
    if let Some(n) = req.name {
        if n.trim().is_empty() {
            return Err(Error::bad("name must not be empty"));
        }
        a.name = n.trim().to_string();
    }
    if let Some(i) = req.instructions {
        a.instructions = i;
    }
    if let Some(m) = req.model {
        a.model = m;
    }
    if let Some(args) = req.custom_args {
        a.custom_args = serde_json::to_string(&args).unwrap_or_else(|_| "[]".into());
    }
    if let Some(env) = req.custom_env {
        a.custom_env = merge_env(&a.custom_env, env)?;
    }
    // The pool is read again before the moved tasks wake anyone.
    agent_event(app, &a);
    for t in app.store.update_agent(a.clone()).await? {
        super::task::wake(app, &t).await?;
    }
    Ok(a)
}
