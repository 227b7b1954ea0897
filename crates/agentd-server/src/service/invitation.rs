//! Invitations (docs/accounts.md, "Invitations"): an admin of a workspace makes a
//! single-use link with a role (only an owner may invite an owner), lists the pending
//! ones and revokes them. Accepting uses the link once — one guarded update, in the same
//! transaction as the new membership — for the signed-in caller, or for a new local
//! account made from the email and password sent with it (which then gets a session).
//! A used, revoked or expired link is refused saying which; an unknown one is 404.

use agentd_proto::accounts::{
    AcceptInvitationRequest, Invitation, InvitationAccepted, InvitationCreated, Role,
};
use rand::RngCore;

use crate::App;
use crate::auth::{Principal, hash_token};
use crate::service::{Error, account, audit, is_uuid, new_id, workspace};
use crate::store::InvitationRow;

/// How long a link is good for unless the request says otherwise (7 days).
pub const DEFAULT_TTL_SECS: u64 = 7 * 24 * 3600;
const MAX_TTL_SECS: u64 = 90 * 24 * 3600;
/// The prefix of an invitation's secret.
pub const PREFIX: &str = "agi_";

pub fn info(r: InvitationRow) -> Invitation {
    Invitation {
        role: Role::parse(&r.role).unwrap_or(Role::Unknown),
        id: r.id,
        workspace_id: r.workspace_id,
        email: r.email,
        created_by: r.created_by,
        created_at: r.created_at,
        expires_at: r.expires_at,
        used_at: r.used_at,
        used_by: r.used_by,
        revoked_at: r.revoked_at,
    }
}

pub async fn create(
    app: &App,
    who: &Principal,
    ip: &str,
    wid: &str,
    role: Role,
    email: Option<&str>,
    expires_in_secs: Option<u64>,
) -> Result<InvitationCreated, Error> {
    let ws = workspace::visible(app, who, wid).await?;
    if role == Role::Unknown {
        return Err(Error::bad("role must be owner, admin, member or viewer"));
    }
    if role == Role::Owner && who.role_in(&ws.id) != Some(Role::Owner) {
        return Err(Error::Forbidden("only an owner may invite an owner".into()));
    }
    let ttl = expires_in_secs.unwrap_or(DEFAULT_TTL_SECS);
    if ttl == 0 || ttl > MAX_TTL_SECS {
        return Err(Error::bad("expires_in_secs must be between 1 and 90 days"));
    }
    let email = email
        .map(account::normalize_email)
        .filter(|e| !e.is_empty());
    let mut secret = [0u8; 20];
    rand::rng().fill_bytes(&mut secret);
    let token = format!("{PREFIX}{}", hex::encode(secret));
    let now = app.now();
    let row = InvitationRow {
        id: new_id(),
        token_hash: hash_token(&token),
        workspace_id: ws.id.clone(),
        role: role.as_str().into(),
        email: email.clone(),
        created_by: who.user_id().map(str::to_string),
        created_at: now,
        expires_at: now + (ttl as i64) * 1000,
        used_at: None,
        used_by: None,
        revoked_at: None,
    };
    app.store.create_invitation(row.clone()).await?;
    audit::record(
        app,
        audit::Entry::new(Some(who), "invitation.create", ip)
            .workspace(&ws.id)
            .target(&row.id)
            .detail(serde_json::json!({"role": role.as_str(), "email": email})),
    )
    .await;
    Ok(InvitationCreated {
        url: format!("{}/#/invite/{token}", app.public_url()),
        token,
        invitation: info(row),
    })
}

pub async fn pending(app: &App, who: &Principal, wid: &str) -> Result<Vec<Invitation>, Error> {
    let ws = workspace::visible(app, who, wid).await?;
    // Listing links is an admin's business, like making them.
    who.require(&ws.id, Role::Admin)?;
    Ok(app
        .store
        .pending_invitations(ws.id, app.now())
        .await?
        .into_iter()
        .map(info)
        .collect())
}

pub async fn revoke(app: &App, who: &Principal, ip: &str, id: &str) -> Result<Invitation, Error> {
    if !is_uuid(id) {
        return Err(Error::bad("invalid invitation id"));
    }
    let not_found = || Error::NotFound("invitation not found");
    let Some(row) = app
        .store
        .find_invitation(None, Some(id.to_ascii_lowercase()))
        .await?
    else {
        return Err(not_found());
    };
    if !who.sees_workspace(&row.workspace_id) {
        return Err(not_found());
    }
    who.check_role(&row.workspace_id)?;
    if !app
        .store
        .revoke_invitation(row.id.clone(), app.now())
        .await?
    {
        return Err(Error::Conflict(
            "the invitation was already used or revoked".into(),
        ));
    }
    audit::record(
        app,
        audit::Entry::new(Some(who), "invitation.revoke", ip)
            .workspace(&row.workspace_id)
            .target(&row.id),
    )
    .await;
    let row = app
        .store
        .find_invitation(None, Some(row.id))
        .await?
        .ok_or_else(not_found)?;
    Ok(info(row))
}

/// Why a link cannot be used now (`None`: it can).
fn unusable(r: &InvitationRow, now: i64) -> Option<Error> {
    if r.used_at.is_some() {
        Some(Error::Conflict(
            "this invitation was already used (each link works once); ask for a new one".into(),
        ))
    } else if r.revoked_at.is_some() {
        Some(Error::Gone(
            "this invitation was revoked; ask for a new one".into(),
        ))
    } else if r.expires_at <= now {
        Some(Error::Gone(
            "this invitation expired; ask for a new one".into(),
        ))
    } else {
        None
    }
}

/// Accepts a link (see the module doc). The second value is the new account's session
/// cookie, when one was made.
pub async fn accept(
    app: &App,
    who: Option<&Principal>,
    ip: &str,
    req: &AcceptInvitationRequest,
) -> Result<(InvitationAccepted, Option<String>), Error> {
    let token = req.token.trim();
    let not_found = || Error::NotFound("invitation not found");
    if !token.starts_with(PREFIX) {
        return Err(not_found());
    }
    let Some(inv) = app
        .store
        .find_invitation(Some(hash_token(token)), None)
        .await?
    else {
        return Err(not_found());
    };
    let now = app.now();
    if let Some(e) = unusable(&inv, now) {
        return Err(e);
    }
    // Who joins: the caller, or a new account.
    let (user, new_account) = match who {
        Some(p) => {
            let Some(uid) = p.user_id() else {
                return Err(Error::Forbidden(
                    "an invitation is accepted by a user: sign in, or send an email and a \
                     password to make an account"
                        .into(),
                ));
            };
            let u = app
                .store
                .get_user(uid.to_string())
                .await?
                .ok_or_else(|| Error::Unauthenticated("unknown user".into()))?;
            (u, false)
        }
        None => {
            let (Some(email), Some(password)) = (req.email.as_deref(), req.password.as_deref())
            else {
                return Err(Error::bad(
                    "not signed in: send email and password to make an account, or sign in \
                     first",
                ));
            };
            let email = account::normalize_email(email);
            if let Some(want) = &inv.email
                && want != &email
            {
                return Err(Error::Forbidden(format!("this invitation is for {want}")));
            }
            let created = account::create_user(
                app,
                None,
                ip,
                &email,
                req.name.as_deref().unwrap_or(""),
                password,
                false,
            )
            .await?;
            let u = app
                .store
                .get_user(created.id)
                .await?
                .ok_or_else(|| Error::Internal("the new user vanished".into()))?;
            (u, true)
        }
    };
    if let Some(want) = &inv.email
        && want != &user.email
    {
        return Err(Error::Forbidden(format!("this invitation is for {want}")));
    }
    if !app
        .store
        .accept_invitation(inv.id.clone(), user.id.clone(), now)
        .await?
    {
        // Used, revoked or expired since it was read: say which.
        let now_row = app
            .store
            .find_invitation(None, Some(inv.id.clone()))
            .await?;
        return Err(now_row
            .and_then(|r| unusable(&r, app.now()))
            .unwrap_or_else(|| Error::Conflict("this invitation cannot be used".into())));
    }
    crate::bus::publish(app, crate::bus::Signal::TokensChanged { token_id: None });
    audit::record(
        app,
        audit::Entry::user(&user, "invitation.accept", ip)
            .workspace(&inv.workspace_id)
            .target(&inv.id)
            .detail(serde_json::json!({"role": inv.role, "new_account": new_account})),
    )
    .await;
    let membership = app
        .store
        .list_memberships(Some(inv.workspace_id.clone()), Some(user.id.clone()))
        .await?
        .into_iter()
        .next()
        .map(|m| account::membership_info(m, Some(&user)))
        .ok_or_else(|| Error::Internal("the membership vanished".into()))?;
    let (session, cookie) = if new_account {
        let (s, c) = account::new_session(app, &user).await?;
        (Some(s), Some(c))
    } else {
        (None, None)
    };
    Ok((
        InvitationAccepted {
            membership,
            session,
        },
        cookie,
    ))
}
