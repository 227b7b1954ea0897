//! Workspaces: listing and creating them, and the visibility rule every workspace-scoped
//! call starts with (a token sees its workspaces; an admin token sees all). A member token
//! that creates a workspace (when the server lets members: `members_can_create_workspaces`)
//! is granted it.

use agentd_proto::ReposResponse;
use agentd_proto::api::CreateWorkspaceRequest;

use crate::App;
use crate::auth::Principal;
use crate::service::{Error, is_uuid, new_id, repo_url, repos, repos_version};
use crate::store::WorkspaceRow;

/// A workspace the caller can see; 404 `workspace not found` otherwise.
pub async fn visible(app: &App, who: &Principal, wid: &str) -> Result<WorkspaceRow, Error> {
    if !is_uuid(wid) {
        return Err(Error::bad("invalid workspace_id"));
    }
    match app.store.get_workspace(wid.to_string()).await? {
        Some(ws) if who.sees_workspace(&ws.id) => Ok(ws),
        _ => Err(Error::NotFound(agentd_proto::WORKSPACE_NOT_FOUND)),
    }
}

/// The workspaces the caller can see.
pub async fn list(app: &App, who: &Principal) -> Result<Vec<WorkspaceRow>, Error> {
    Ok(app.store.list_workspaces(who.workspace_filter()).await?)
}

pub async fn create(
    app: &App,
    who: &Principal,
    req: CreateWorkspaceRequest,
) -> Result<WorkspaceRow, Error> {
    if !who.is_admin() && !app.config.members_can_create_workspaces {
        return Err(Error::Forbidden(
            "members may not create workspaces on this server; ask the admin \
             (or run the server with --members-can-create-workspaces)"
                .into(),
        ));
    }
    let name = req.name.trim();
    if name.is_empty() {
        return Err(Error::bad("name is required"));
    }
    for url in &req.repos {
        let url = url.trim();
        if url.is_empty() {
            continue;
        }
        repo_url::check(url, app.config.allow_local_repos)
            .map_err(|why| Error::bad(format!("invalid repo {url:?}: {why}")))?;
    }
    let row = WorkspaceRow {
        id: new_id(),
        name: name.to_string(),
        repos: serde_json::to_string(&req.repos).unwrap_or_else(|_| "[]".into()),
        created_at: app.now(),
    };
    let grant = match who {
        p if p.is_admin() => None,
        p => p.token_id().map(str::to_string),
    };
    app.store.create_workspace(row.clone(), grant).await?;
    Ok(row)
}

/// The workspace's repos for a daemon (any id it cannot see is `workspace not found`).
pub async fn repos_for_daemon(
    app: &App,
    who: &Principal,
    wid: String,
) -> Result<ReposResponse, Error> {
    let ws = match app.store.get_workspace(wid).await? {
        Some(ws) if who.sees_workspace(&ws.id) => ws,
        _ => return Err(Error::NotFound(agentd_proto::WORKSPACE_NOT_FOUND)),
    };
    let repos = repos(&ws);
    Ok(ReposResponse {
        workspace_id: ws.id,
        repos_version: repos_version(&repos),
        repos,
    })
}
