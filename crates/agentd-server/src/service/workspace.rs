//! Workspaces: listing and creating them, and the visibility rule every workspace-scoped
//! call starts with (a token sees its workspaces; an admin token sees all). A member token
//! that creates a workspace (when the server lets members: `members_can_create_workspaces`)
//! is granted it.
//!
//! Each workspace has a `key`, the prefix of its issue keys (`AGD` → `AGD-12`): given at
//! creation (2 to 6 ASCII letters or digits starting with a letter, stored upper-case)
//! or derived from the name ([`derive_key`]) with 2, 3, … appended until it is unique on
//! the server. Workspaces made before keys existed get theirs when the server opens
//! ([`backfill_keys`]).

use agentd_proto::ReposResponse;
use agentd_proto::api::CreateWorkspaceRequest;

use crate::App;
use crate::auth::Principal;
use crate::service::{Error, new_id, repo_url, repos, repos_version, resolve};
use crate::store::{Store, StoreError, WorkspaceRow};

/// A workspace the caller can see, by any reference ([`resolve::workspace`]); 404
/// `workspace not found` otherwise.
pub async fn visible(app: &App, who: &Principal, wid: &str) -> Result<WorkspaceRow, Error> {
    resolve::workspace(app, who, wid).await
}

/// The key a workspace named `name` gets unless one is given: the initials of its words
/// when it has several, else its first three letters — ASCII letters and digits only,
/// upper-cased, at most 6, starting with a letter — or `WS` when that leaves fewer than
/// two characters.
pub fn derive_key(name: &str) -> String {
    let words: Vec<String> = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let pick = |s: String| -> Option<String> {
        let s: String = s
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .chars()
            .take(6)
            .collect();
        (s.len() >= 2).then_some(s)
    };
    let initials: String = words.iter().filter_map(|w| w.chars().next()).collect();
    let first3: String = words
        .concat()
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .chars()
        .take(3)
        .collect();
    if words.len() >= 2
        && let Some(k) = pick(initials)
    {
        return k;
    }
    pick(first3).unwrap_or_else(|| "WS".to_string())
}

/// `base`, then `base2`, `base3`, … (cut so each is at most 6 characters): the first
/// that is not in `taken`.
fn free_key(base: &str, taken: &[String]) -> String {
    if !taken.iter().any(|k| k == base) {
        return base.to_string();
    }
    (2u32..)
        .map(|n| {
            let n = n.to_string();
            let keep = 6usize.saturating_sub(n.len()).min(base.len());
            format!("{}{n}", &base[..keep])
        })
        .find(|k| !taken.iter().any(|t| t == k))
        .unwrap_or_else(|| "WS".to_string())
}

/// A key given at creation, checked and upper-cased (400 naming the rule otherwise).
fn given_key(k: &str) -> Result<String, Error> {
    let k = k.trim();
    if resolve::looks_like_key(k) {
        Ok(k.to_ascii_uppercase())
    } else {
        Err(Error::bad(format!(
            "invalid key {k:?}: 2 to 6 ASCII letters or digits, starting with a letter"
        )))
    }
}

/// Gives every workspace without a key one derived from its name, oldest first (at open,
/// for workspaces made before keys existed).
pub async fn backfill_keys(store: &dyn Store) -> Result<(), StoreError> {
    for ws in store.list_workspaces(None).await? {
        if !ws.key.is_empty() {
            continue;
        }
        // The writer lock makes the check and the write one step; a lost race (another
        // server process) just tries the next number.
        loop {
            let key = free_key(&derive_key(&ws.name), &store.workspace_keys().await?);
            if store.set_workspace_key(ws.id.clone(), key.clone()).await? {
                tracing::info!(workspace_id = %ws.id, key = %key, "workspace key assigned");
                break;
            }
            if store
                .get_workspace(ws.id.clone())
                .await?
                .is_none_or(|w| !w.key.is_empty())
            {
                break;
            }
        }
    }
    Ok(())
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
    let given = req.key.as_deref().map(given_key).transpose()?;
    let mut row = WorkspaceRow {
        id: new_id(),
        name: name.to_string(),
        repos: serde_json::to_string(&req.repos).unwrap_or_else(|_| "[]".into()),
        created_at: app.now(),
        key: String::new(),
    };
    let grant = match who {
        p if p.is_admin() => None,
        p => p.token_id().map(str::to_string),
    };
    // The store inserts only if the key is still free (checked in its write
    // transaction): a derived key that another create took meanwhile moves to the next.
    for _ in 0..100 {
        row.key = match &given {
            Some(k) => k.clone(),
            None => free_key(&derive_key(name), &app.store.workspace_keys().await?),
        };
        if app
            .store
            .create_workspace(row.clone(), grant.clone())
            .await?
        {
            // The creating user (a session's, or the token's owner) owns it.
            if let Some(user_id) = who.user_id().filter(|_| !who.is_admin()) {
                app.store
                    .set_membership(crate::store::MembershipRow {
                        workspace_id: row.id.clone(),
                        user_id: user_id.to_string(),
                        role: agentd_proto::accounts::Role::Owner.as_str().into(),
                        created_at: row.created_at,
                    })
                    .await?;
                crate::bus::publish(app, crate::bus::Signal::TokensChanged { token_id: None });
            }
            if let Some(token_id) = grant {
                // The creator's token sees one more workspace: drop its cached copy.
                crate::bus::publish(
                    app,
                    crate::bus::Signal::TokensChanged {
                        token_id: Some(token_id),
                    },
                );
            }
            return Ok(row);
        }
        if given.is_some() {
            return Err(Error::Conflict(format!(
                "key {:?} is taken by another workspace; choose another",
                row.key
            )));
        }
    }
    Err(Error::Internal("no free workspace key was found".into()))
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
    who.check_role(&ws.id)?;
    let repos = repos(&ws);
    Ok(ReposResponse {
        workspace_id: ws.id,
        repos_version: repos_version(&repos),
        repos,
    })
}
