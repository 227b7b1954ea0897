//! Agents: a name, instructions and settings, bound to one runtime of their workspace.
//! Rebinding an agent to another runtime moves its queued tasks along (and wakes the new
//! runtime); tasks already claimed stay with the daemon that holds them. `custom_env`
//! values are write-only: every answer masks them, and an update that sends a masked
//! value back keeps the stored one.

use std::collections::BTreeMap;

use agentd_proto::api::{CreateAgentRequest, MASKED_ENV_VALUE, UpdateAgentRequest};

use crate::App;
use crate::auth::Principal;
use crate::service::{Error, agent_event, new_id, resolve, workspace};
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
    let rt = runtime_in(app, who, &ws.id, &req.runtime_id).await?;
    let row = AgentRow {
        id: new_id(),
        workspace_id: ws.id,
        runtime_id: rt.id,
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
        a.runtime_id = runtime_in(app, who, &a.workspace_id, &rid).await?.id;
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
    for t in app.store.update_agent(a.clone()).await? {
        crate::bus::publish(
            app,
            crate::bus::Signal::TaskAvailable {
                runtime_id: t.runtime_id.clone(),
                task_id: Some(t.id.clone()),
            },
        );
    }
    agent_event(app, &a);
    Ok(a)
}
