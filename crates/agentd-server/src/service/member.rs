//! A workspace's members (docs/accounts.md, "Roles"): list them, give a user a role,
//! remove one. The route needs the admin role ([`crate::auth::required_role`]); only an
//! owner may make or unmake an owner, and the last owner stays. Removing a member
//! revokes the user's sessions and takes the workspace from the user's tokens (a token
//! left with none is revoked), in one transaction; every instance drops its cached
//! tokens on the bus.

use agentd_proto::accounts::{Membership, Role};

use crate::App;
use crate::auth::Principal;
use crate::service::{Error, account, audit, is_uuid, workspace};
use crate::store::{MembershipRow, UserRow};

/// The members of a workspace the caller sees, oldest first, with their emails.
pub async fn list(app: &App, who: &Principal, wid: &str) -> Result<Vec<Membership>, Error> {
    let ws = workspace::visible(app, who, wid).await?;
    let users = app.store.list_users().await?;
    Ok(app
        .store
        .list_memberships(Some(ws.id), None)
        .await?
        .into_iter()
        .map(|m| {
            let u = users.iter().find(|u| u.id == m.user_id);
            account::membership_info(m, u)
        })
        .collect())
}

/// A user by id or email (404 `user not found`).
async fn user(app: &App, r: &str) -> Result<UserRow, Error> {
    let found = if r.contains('@') {
        app.store.user_by_email(account::normalize_email(r)).await?
    } else if is_uuid(r) {
        app.store.get_user(r.to_ascii_lowercase()).await?
    } else {
        return Err(Error::bad("invalid user: expected a user id or an email"));
    };
    found.ok_or(Error::NotFound("user not found"))
}

async fn role_of(app: &App, ws: &str, user_id: &str) -> Result<Option<Role>, Error> {
    Ok(app
        .store
        .list_memberships(Some(ws.to_string()), Some(user_id.to_string()))
        .await?
        .first()
        .and_then(|m| Role::parse(&m.role)))
}

async fn owners(app: &App, ws: &str) -> Result<usize, Error> {
    Ok(app
        .store
        .list_memberships(Some(ws.to_string()), None)
        .await?
        .iter()
        .filter(|m| m.role == Role::Owner.as_str())
        .count())
}

/// Only an owner (or a server admin) touches owners.
fn check_owner_rule(
    who: &Principal,
    ws: &str,
    old: Option<Role>,
    new: Option<Role>,
) -> Result<(), Error> {
    let touches_owner = old == Some(Role::Owner) || new == Some(Role::Owner);
    if touches_owner && who.role_in(ws) != Some(Role::Owner) {
        return Err(Error::Forbidden(
            "only an owner may make, change or remove an owner".into(),
        ));
    }
    Ok(())
}

/// Gives the user `role` in the workspace (adding it, or changing its role).
pub async fn set_role(
    app: &App,
    who: &Principal,
    ip: &str,
    wid: &str,
    user_ref: &str,
    role: Role,
) -> Result<Membership, Error> {
    let ws = workspace::visible(app, who, wid).await?;
    if role == Role::Unknown {
        return Err(Error::bad("role must be owner, admin, member or viewer"));
    }
    let u = user(app, user_ref).await?;
    let old = role_of(app, &ws.id, &u.id).await?;
    check_owner_rule(who, &ws.id, old, Some(role))?;
    if old == Some(Role::Owner) && role != Role::Owner && owners(app, &ws.id).await? <= 1 {
        return Err(Error::Conflict(
            "this is the workspace's last owner: make another owner first".into(),
        ));
    }
    let row = MembershipRow {
        workspace_id: ws.id.clone(),
        user_id: u.id.clone(),
        role: role.as_str().into(),
        created_at: app.now(),
    };
    app.store.set_membership(row.clone()).await?;
    crate::bus::publish(app, crate::bus::Signal::TokensChanged { token_id: None });
    audit::record(
        app,
        audit::Entry::new(
            Some(who),
            if old.is_some() {
                "member.role"
            } else {
                "member.add"
            },
            ip,
        )
        .workspace(&ws.id)
        .target(&u.email)
        .detail(serde_json::json!({
            "user_id": u.id,
            "role": role.as_str(),
            "previous": old.map(Role::as_str),
        })),
    )
    .await;
    Ok(account::membership_info(row, Some(&u)))
}

/// Removes the user from the workspace (see the module doc).
pub async fn remove(
    app: &App,
    who: &Principal,
    ip: &str,
    wid: &str,
    user_ref: &str,
) -> Result<(), Error> {
    let ws = workspace::visible(app, who, wid).await?;
    let u = user(app, user_ref).await?;
    let old = role_of(app, &ws.id, &u.id).await?;
    if old.is_none() {
        return Err(Error::NotFound("member not found"));
    }
    check_owner_rule(who, &ws.id, old, None)?;
    if old == Some(Role::Owner) && owners(app, &ws.id).await? <= 1 {
        return Err(Error::Conflict(
            "this is the workspace's last owner: make another owner first".into(),
        ));
    }
    let Some(tokens) = app
        .store
        .remove_membership(ws.id.clone(), u.id.clone(), app.now())
        .await?
    else {
        return Err(Error::NotFound("member not found"));
    };
    crate::bus::publish(app, crate::bus::Signal::TokensChanged { token_id: None });
    audit::record(
        app,
        audit::Entry::new(Some(who), "member.remove", ip)
            .workspace(&ws.id)
            .target(&u.email)
            .detail(serde_json::json!({
                "user_id": u.id,
                "role": old.map(Role::as_str),
                "tokens_touched": tokens,
            })),
    )
    .await;
    Ok(())
}
