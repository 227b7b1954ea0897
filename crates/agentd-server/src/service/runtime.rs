//! Runtime registration and liveness. A runtime's identity is (workspace, daemon_id,
//! provider). It is online while heartbeats arrive; it is *shown* offline on deregister,
//! after `offline_after` of silence (sweeper), or when its daemon's WS closes and no
//! heartbeat follows within the grace. Going offline, and deleting a runtime, fail
//! nothing: a task ends only when its lease expires (`sweeper`), so a blip, a reset or a
//! deleted sibling never touch running work. Heartbeats renew the leases of the tasks
//! the daemon says it holds.

use agentd_proto::{HeartbeatResponse, RegisterRequest, RegisterResponse, Runtime};

use crate::App;
use crate::auth::Principal;
use crate::authcache::CachedRuntime;
use crate::liveness::Held;
use crate::service::{Error, new_id, repos, repos_version, runtime_event};
use crate::store::{RuntimeRow, StoreError, Touched};

pub async fn register(
    app: &App,
    who: &Principal,
    req: RegisterRequest,
) -> Result<RegisterResponse, Error> {
    let workspace_id = req.workspace_id.trim().to_string();
    let daemon_id = req.daemon_id.trim().to_string();
    if daemon_id.is_empty() {
        return Err(Error::bad("daemon_id is required"));
    }
    if workspace_id.is_empty() {
        return Err(Error::bad("workspace_id is required"));
    }
    if req.runtimes.is_empty() {
        return Err(Error::bad("at least one runtime is required"));
    }
    let ws = match app.store.get_workspace(workspace_id.clone()).await? {
        Some(ws) if who.sees_workspace(&ws.id) => ws,
        _ => return Err(Error::NotFound(agentd_proto::WORKSPACE_NOT_FOUND)),
    };
    who.check_role(&ws.id)?;
    let now = app.now();
    let existing = app
        .store
        .list_runtimes(ws.id.clone(), Some(daemon_id.clone()))
        .await?;
    let provider_of = |spec: &agentd_proto::RuntimeSpec| match spec.provider.trim() {
        "" => "unknown".to_string(),
        p => p.to_string(),
    };
    // Decide every runtime's owner before changing any, so a refusal changes nothing.
    let mut owners = Vec::with_capacity(req.runtimes.len());
    let mut takeovers: Vec<String> = Vec::new();
    for spec in &req.runtimes {
        let provider = provider_of(spec);
        let current = existing.iter().find(|r| r.provider == provider);
        let owner = owner_after_register(app, who, current, &mut takeovers).await?;
        owners.push(owner);
    }
    for (spec, owner_token_id) in req.runtimes.iter().zip(owners) {
        let provider = provider_of(spec);
        let name = match spec.name.trim() {
            "" if req.device_name.trim().is_empty() => provider.clone(),
            "" => format!("{provider} ({})", req.device_name.trim()),
            n => n.to_string(),
        };
        let status = if spec.status == "offline" {
            "offline"
        } else {
            "online"
        };
        let row = app
            .store
            .upsert_runtime(RuntimeRow {
                id: new_id(),
                workspace_id: ws.id.clone(),
                daemon_id: daemon_id.clone(),
                provider,
                name,
                version: spec.version.clone(),
                device_name: req.device_name.trim().to_string(),
                status: status.to_string(),
                last_seen_at: Some(now),
                created_at: now,
                owner_token_id,
                sandbox: spec.sandbox.map(|s| s.as_str().to_string()),
                capacity: spec.capacity.map(i64::from),
                labels: serde_json::to_string(&clean_labels(&spec.labels))
                    .unwrap_or_else(|_| "[]".into()),
            })
            .await?;
        runtime_event(app, &row, &row.status);
    }
    if let Some(me) = who.daemon_token() {
        for old in takeovers {
            let moved = app
                .store
                .reassign_claims(daemon_id.clone(), old.clone(), me.to_string())
                .await?;
            tracing::info!(
                workspace_id = %ws.id,
                daemon_id = %daemon_id,
                previous_token = %old,
                moved_tasks = moved,
                "a daemon token took over runtimes of a revoked or expired token"
            );
        }
    }
    let runtimes = app
        .store
        .list_runtimes(ws.id.clone(), Some(daemon_id))
        .await?
        .into_iter()
        .map(|r| Runtime {
            id: r.id,
            name: r.name,
            provider: r.provider,
            status: r.status,
        })
        .collect();
    tracing::info!(
        workspace_id = %ws.id,
        daemon_id = %req.daemon_id.trim(),
        runtimes = req.runtimes.len(),
        "daemon registered"
    );
    let repos = repos(&ws);
    Ok(RegisterResponse {
        runtimes,
        repos_version: repos_version(&repos),
        repos,
        settings: Some(serde_json::json!({})),
        server: Some(agentd_proto::ServerKind::Agentd),
    })
}

/// Who owns a runtime after `who` registers it. A new runtime, or one registered before
/// owners were recorded, is `who`'s. One owned by another token is taken over only when
/// that token is revoked or expired (a machine given a new token; the old token's tokens
/// go to `takeovers`), otherwise refused with 409. The admin token may register any
/// runtime and leaves an existing owner in place.
async fn owner_after_register(
    app: &App,
    who: &Principal,
    current: Option<&RuntimeRow>,
    takeovers: &mut Vec<String>,
) -> Result<Option<String>, Error> {
    let me = who.token_id().map(str::to_string);
    let Some(owner) = current.and_then(|r| r.owner_token_id.clone()) else {
        return Ok(me);
    };
    if me.as_deref() == Some(owner.as_str()) || who.is_admin() {
        return Ok(Some(owner));
    }
    let now = app.now();
    let owner_gone = match app.store.get_token(owner.clone()).await? {
        None => true,
        Some((t, _)) => t.revoked_at.is_some() || t.expires_at.is_some_and(|at| at <= now),
    };
    if !owner_gone {
        let rt = current.map(|r| r.provider.as_str()).unwrap_or_default();
        let daemon = current.map(|r| r.daemon_id.as_str()).unwrap_or_default();
        return Err(Error::Conflict(format!(
            "runtime {rt} of daemon {daemon} is registered by another token ({owner}) that is \
             still valid; revoke that token (`agentd token revoke {owner}`) or delete the \
             runtime first"
        )));
    }
    if !takeovers.contains(&owner) {
        takeovers.push(owner);
    }
    Ok(me)
}

/// Records a heartbeat and renews the leases of the tasks the daemon holds
/// (`active_task_ids`; `None`: all of the daemon's in-flight tasks), in memory or at once
/// ([`crate::liveness::seen`]). `db_offline`: the caller read the runtime's row and it says
/// offline. `Ok(None)`: the runtime does not exist (deleted).
pub async fn beat(
    app: &App,
    runtime_id: &str,
    active_task_ids: Option<Vec<String>>,
    db_offline: bool,
) -> Result<Option<HeartbeatResponse>, StoreError> {
    let now = app.now();
    let held = match active_task_ids {
        None => Held::All,
        Some(ids) => Held::Tasks(ids.into_iter().filter(|id| super::is_uuid(id)).collect()),
    };
    if !crate::liveness::seen(app, runtime_id, now, held, db_offline).await? {
        app.auth_cache.forget_runtime(runtime_id);
        return Ok(None);
    }
    Ok(Some(HeartbeatResponse {
        runtime_id: runtime_id.to_string(),
        status: "ok".into(),
        runtime_gone: false,
        server_time: Some(jiff::Timestamp::now().to_string()),
        ..Default::default()
    }))
}

/// Writes a sign of life at once: the runtime is online, seen `now`. Tells boards when it
/// was offline until now. False if the runtime does not exist. Heartbeats and claims go
/// through [`crate::liveness::seen`], which calls this only when memory is not enough.
pub async fn touch(app: &App, runtime_id: &str, now: i64) -> Result<bool, StoreError> {
    Ok(
        match app.store.touch_runtime(runtime_id.to_string(), now).await? {
            Touched::Missing => false,
            Touched::Seen => true,
            Touched::CameOnline(row) => {
                runtime_event(app, &row, "online");
                true
            }
        },
    )
}

/// Loads a runtime for a daemon call: 404 `runtime not found` if it does not exist, and
/// the same answer if it is in a workspace the token cannot see or — for a daemon token —
/// was registered by another token (ids cannot be probed).
pub async fn load_for(app: &App, who: &Principal, runtime_id: &str) -> Result<RuntimeRow, Error> {
    if !super::is_uuid(runtime_id) {
        return Err(Error::bad("invalid runtime_id"));
    }
    match app.store.get_runtime(runtime_id.to_string()).await? {
        Some(rt) if who.sees_workspace(&rt.workspace_id) && owns(who, &rt) => {
            who.check_role(&rt.workspace_id)?;
            Ok(rt)
        }
        _ => Err(Error::NotFound(agentd_proto::RUNTIME_NOT_FOUND)),
    }
}

/// [`load_for`] through [`crate::authcache`], for the daemon's hot calls (heartbeats and
/// claims): the same 404 for an unknown, foreign or deleted runtime. The row may be up to
/// [`crate::authcache::TTL_MS`] old, never older than the runtime's last `runtime` event
/// (registered, taken over, offline, deleted) on any instance; a deleted runtime is never
/// cached.
pub async fn load_cached_for(
    app: &App,
    who: &Principal,
    runtime_id: &str,
) -> Result<CachedRuntime, Error> {
    if !super::is_uuid(runtime_id) {
        return Err(Error::bad("invalid runtime_id"));
    }
    let now = app.now();
    let rt = match app.auth_cache.runtime(runtime_id, now) {
        Some(rt) => rt,
        None => {
            let generation = app.auth_cache.generation();
            let Some(row) = app.store.get_runtime(runtime_id.to_string()).await? else {
                return Err(Error::NotFound(agentd_proto::RUNTIME_NOT_FOUND));
            };
            let rt = CachedRuntime::new(row);
            app.auth_cache
                .put_runtime(generation, runtime_id.to_string(), rt.clone(), now);
            rt
        }
    };
    if !who.sees_workspace(&rt.workspace_id) || !owns(who, &rt) {
        return Err(Error::NotFound(agentd_proto::RUNTIME_NOT_FOUND));
    }
    who.check_role(&rt.workspace_id)?;
    Ok(rt)
}

/// [`load_cached_for`] for a heartbeat: whether the row showed the runtime offline.
pub async fn heartbeat_check(app: &App, who: &Principal, runtime_id: &str) -> Result<bool, Error> {
    let rt = load_cached_for(app, who, runtime_id).await?;
    Ok(rt.status != "online")
}

/// Whether `who` may act on the runtime as its daemon: a daemon token only on runtimes it
/// registered; the admin and member tokens are not limited by owner (members never reach
/// the daemon API; they may delete any runtime of their workspaces).
pub fn owns(who: &Principal, rt: &RuntimeRow) -> bool {
    match who.daemon_token() {
        Some(me) => rt.owner_token_id.as_deref() == Some(me),
        None => true,
    }
}

/// The runtimes of a workspace the caller can see.
pub async fn list(app: &App, who: &Principal, wid: &str) -> Result<Vec<RuntimeRow>, Error> {
    let ws = super::workspace::visible(app, who, wid).await?;
    Ok(app.store.list_runtimes(ws.id, None).await?)
}

/// Marks runtimes offline (daemon shutdown); foreign or unknown ids are skipped.
pub async fn deregister(app: &App, who: &Principal, ids: &[String]) -> Result<(), Error> {
    for id in ids {
        let Ok(rt) = load_for(app, who, id).await else {
            continue;
        };
        if app.store.set_runtime_offline(rt.id.clone()).await? {
            went_offline(app, &rt.id).await?;
        }
    }
    Ok(())
}

/// After a WS close: offline unless seen since `closed_at`.
pub async fn offline_if_unseen(
    app: &App,
    runtime_id: &str,
    closed_at: i64,
) -> Result<(), StoreError> {
    // What this instance received is in the database first (`liveness`).
    crate::liveness::flush(app, true).await?;
    if app
        .store
        .offline_if_unseen_since(runtime_id.to_string(), closed_at)
        .await?
    {
        tracing::info!(
            runtime_id,
            "runtime offline: WS closed and no heartbeat followed"
        );
        went_offline(app, runtime_id).await?;
    }
    Ok(())
}

/// Tells boards a runtime went offline. Fails nothing: its tasks keep their leases,
/// which only their daemon's silence lets expire.
pub async fn went_offline(app: &App, runtime_id: &str) -> Result<(), StoreError> {
    if let Some(rt) = app.store.get_runtime(runtime_id.to_string()).await? {
        runtime_event(app, &rt, "offline");
    }
    Ok(())
}

/// Deletes a runtime (user action). Its in-flight tasks go on: their daemon still runs
/// them and reports by task id, and renews their leases under its new runtime ids. The
/// daemon learns on its next heartbeat (404 `runtime not found` / `runtime_gone`) and
/// re-registers.
/// Deletes a runtime the caller may; returns it (for the audit log).
pub async fn delete(app: &App, who: &Principal, runtime_id: &str) -> Result<RuntimeRow, Error> {
    let rt = super::resolve::runtime(app, who, runtime_id, None).await?;
    app.store.delete_runtime(rt.id.clone()).await?;
    runtime_event(app, &rt, "deleted");
    Ok(rt)
}

/// A daemon's labels as stored: trimmed, without empties and repeats, at most 32 of at
/// most 64 bytes each (the rest is dropped: labels only select, they hold no data).
fn clean_labels(labels: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in labels {
        let l = l.trim();
        if !l.is_empty() && l.len() <= 64 && !out.iter().any(|o| o == l) && out.len() < 32 {
            out.push(l.to_string());
        }
    }
    out
}
