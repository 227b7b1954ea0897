//! API tokens: create, list, revoke, and rotate the admin token (docs/api.md, "Tokens").
//!
//! - A new token is `member` or `daemon`, scoped to workspaces its creator can see, with
//!   an optional expiry that never outlives its creator's. Members may create tokens only
//!   when the server allows it (`members_can_mint_tokens`); the admin always may.
//! - The admin sees every token; a member sees itself and the tokens it created, and may
//!   revoke those. The admin token is not revoked this way but rotated.
//! - The plaintext is returned once, at creation; the store keeps its SHA-256.
//! - One-time board sign-in codes: a member (or the admin) makes one (`asc_` + 32 hex,
//!   good for `SIGNIN_CODE_TTL_SECS`); the board exchanges it once, without a token, for
//!   a new member token `board session` with the maker's workspaces, expiring after
//!   `BOARD_SESSION_TTL_SECS` but never after the maker. The store keeps the code's
//!   SHA-256 and consumes it with one guarded update, so two exchanges give one token.

use agentd_proto::accounts::Role;
use agentd_proto::api::{
    BOARD_SESSION_TTL_SECS, CreateTokenRequest, SIGNIN_CODE_TTL_SECS, SigninCode, TokenCreated,
    TokenInfo, TokenKind,
};
use rand::RngCore;

use crate::App;
use crate::auth::{MEMBER_TOKEN_PREFIX, Principal, hash_token, new_token};
use crate::service::{Error, audit, is_uuid, new_id, rfc3339, workspace};
use crate::store::TokenRow;

/// The longest expiry one can ask for (ten years), so the arithmetic cannot overflow.
const MAX_EXPIRES_IN_SECS: u64 = 10 * 365 * 24 * 3600;

pub async fn create(
    app: &App,
    who: &Principal,
    ip: &str,
    req: CreateTokenRequest,
) -> Result<TokenCreated, Error> {
    // A user's new token is the user's; a token's, its owner's.
    let (token_id, creator_expires_at, owner) = match who {
        Principal::Token {
            token_id,
            expires_at,
            owner,
            ..
        } => (Some(token_id.clone()), *expires_at, owner.clone()),
        Principal::User(u) => (None, None, Some(u.user_id.clone())),
        Principal::Task(_) => {
            return Err(Error::Forbidden("a task token cannot create tokens".into()));
        }
    };
    // Users (signed in, or through a token of theirs) mint tokens for themselves
    // (`agentd login`); those act with the user's own role, so no more than the user may.
    // The server setting limits tokens that belong to no user.
    if !who.is_admin() && who.user_id().is_none() && !app.config.members_can_mint_tokens {
        return Err(Error::Forbidden(
            "members may not create tokens on this server; ask the admin \
             (or run the server with --members-can-mint-tokens)"
                .into(),
        ));
    }
    let kind = match req.kind {
        TokenKind::Member | TokenKind::Daemon => req.kind,
        _ => {
            return Err(Error::bad(
                "kind must be member or daemon (the admin token is rotated, not created)",
            ));
        }
    };
    if req.workspace_ids.is_empty() {
        return Err(Error::bad("workspace_ids is required"));
    }
    // Each a reference to a workspace the caller sees; the token stores their ids.
    let mut workspace_ids: Vec<String> = Vec::new();
    for r in &req.workspace_ids {
        let id = workspace::visible(app, who, r).await?.id;
        // A daemon token registers runtimes: the admin role's business.
        if kind == TokenKind::Daemon {
            who.require(&id, Role::Admin)?;
        }
        if !workspace_ids.contains(&id) {
            workspace_ids.push(id);
        }
    }
    let now = app.now();
    let requested = match req.expires_in_secs {
        Some(0) => return Err(Error::bad("expires_in_secs must be positive")),
        Some(s) if s > MAX_EXPIRES_IN_SECS => {
            return Err(Error::bad("expires_in_secs is more than ten years"));
        }
        Some(s) => Some(now + (s as i64) * 1000),
        None => None,
    };
    // A token never outlives the token that created it, or expiry could be sidestepped.
    let expires_at = match (requested, creator_expires_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let token = new_token(MEMBER_TOKEN_PREFIX);
    let name = match req.name.trim() {
        "" => kind.as_str().to_string(),
        n => n.to_string(),
    };
    let row = TokenRow {
        id: new_id(),
        name: name.clone(),
        kind: kind.as_str().to_string(),
        created_at: now,
        created_by: token_id,
        expires_at,
        revoked_at: None,
        last_used_at: None,
        owner_user_id: owner,
    };
    let id = row.id.clone();
    app.store
        .create_token(row, hash_token(&token), workspace_ids.clone())
        .await?;
    for w in &workspace_ids {
        audit::record(
            app,
            audit::Entry::new(Some(who), "token.create", ip)
                .workspace(w)
                .target(&id)
                .detail(serde_json::json!({"name": name, "kind": kind.as_str()})),
        )
        .await;
    }
    Ok(TokenCreated {
        id,
        name,
        token,
        kind,
        workspace_ids,
        expires_at: expires_at.map(rfc3339),
    })
}

fn info(row: TokenRow, workspace_ids: Vec<String>, who: &Principal) -> TokenInfo {
    TokenInfo {
        current: who.token_id() == Some(row.id.as_str()),
        kind: TokenKind::parse(&row.kind).unwrap_or(TokenKind::Unknown),
        id: row.id,
        name: row.name,
        workspace_ids,
        created_by: row.created_by,
        created_at: rfc3339(row.created_at),
        expires_at: row.expires_at.map(rfc3339),
        last_used_at: row.last_used_at.map(rfc3339),
        revoked_at: row.revoked_at.map(rfc3339),
    }
}

/// Whose tokens the caller sees: `None` every token (admin), else its own id (itself and
/// the tokens it created).
fn scope(who: &Principal) -> Option<String> {
    match who {
        p if p.is_admin() => None,
        p => Some(p.token_id().unwrap_or_default().to_string()),
    }
}

/// The tokens the caller sees, oldest first, revoked ones included.
pub async fn list(app: &App, who: &Principal) -> Result<Vec<TokenInfo>, Error> {
    let rows = match who {
        // A user sees the tokens it owns.
        Principal::User(u) if !u.is_admin => app
            .store
            .list_tokens(None)
            .await?
            .into_iter()
            .filter(|(t, _)| t.owner_user_id.as_deref() == Some(u.user_id.as_str()))
            .collect(),
        _ => app.store.list_tokens(scope(who)).await?,
    };
    Ok(rows
        .into_iter()
        .map(|(row, ws)| info(row, ws, who))
        .collect())
}

/// Revokes a token the caller sees (idempotent); answers it as it is now. The admin
/// token is refused (409): rotate it instead.
pub async fn revoke(app: &App, who: &Principal, ip: &str, id: &str) -> Result<TokenInfo, Error> {
    if !is_uuid(id) {
        return Err(Error::bad("invalid token id"));
    }
    let (row, _) = match app.store.get_token(id.to_string()).await? {
        Some((row, ws))
            if who.is_admin()
                || who.token_id() == Some(row.id.as_str())
                || (who.token_id().is_some() && row.created_by.as_deref() == who.token_id())
                || (matches!(who, Principal::User(_))
                    && row.owner_user_id.is_some()
                    && row.owner_user_id.as_deref() == who.user_id()) =>
        {
            (row, ws)
        }
        _ => return Err(Error::NotFound("token not found")),
    };
    if row.kind == "admin" {
        return Err(Error::Conflict(
            "the admin token cannot be revoked; rotate it (`agentd admin rotate-token`)".into(),
        ));
    }
    if app.store.revoke_token(row.id.clone(), app.now()).await? {
        tracing::info!(token_id = %row.id, kind = %row.kind, "token revoked");
        audit::record(
            app,
            audit::Entry::new(Some(who), "token.revoke", ip)
                .target(&row.id)
                .detail(serde_json::json!({"name": row.name, "kind": row.kind})),
        )
        .await;
    }
    // Dropped here before answering, and on every other instance (`authcache`).
    crate::bus::publish(
        app,
        crate::bus::Signal::TokensChanged {
            token_id: Some(row.id.clone()),
        },
    );
    let (row, ws) = app
        .store
        .get_token(row.id)
        .await?
        .ok_or(Error::NotFound("token not found"))?;
    Ok(info(row, ws, who))
}

/// Mints a new admin token, revokes the old one and writes the new one to the server's
/// `admin-token` file. The caller must be the admin (the route's extractor says so).
pub async fn rotate_admin(app: &App, who: &Principal) -> Result<TokenCreated, Error> {
    if !who.is_admin() {
        return Err(Error::Forbidden("only the admin token may do this".into()));
    }
    let minted = crate::mint_admin_token(
        app.store.as_ref(),
        &app.config.admin_token_file(),
        app.now(),
    )
    .await;
    // The old admin token may be revoked even when saving the new one failed.
    crate::bus::publish(app, crate::bus::Signal::TokensChanged { token_id: None });
    let token = minted.map_err(|e| match e {
        crate::ServerError::Store(e) => Error::Store(e),
        // The new token is in the database but not in the file: a restart mints a
        // fresh one (the file's token is revoked), so the admin is never locked out.
        other => Error::Internal(format!(
            "the admin token was rotated but could not be saved ({other}); \
                 restart the server to mint a new one"
        )),
    })?;
    tracing::info!("admin token rotated");
    let (row, _) = app
        .store
        .find_token(hash_token(&token))
        .await?
        .ok_or(Error::NotFound("token not found"))?;
    Ok(TokenCreated {
        id: row.id,
        name: row.name,
        token,
        kind: TokenKind::Admin,
        workspace_ids: Vec::new(),
        expires_at: None,
    })
}

/// The name of the tokens sign-in codes are exchanged for.
pub const BOARD_SESSION_NAME: &str = "board session";
/// The answer to every refused exchange (unknown, used or expired code, or a maker that
/// was revoked or expired since).
const SIGNIN_REFUSED: &str = "sign-in code is invalid or expired";

/// A one-time board sign-in code made by the caller (a member or the admin token; the
/// route refuses the others).
pub async fn signin_code(app: &App, who: &Principal) -> Result<SigninCode, Error> {
    let Some(token_id) = who.token_id() else {
        return Err(Error::Forbidden(
            "a task token cannot make sign-in codes".into(),
        ));
    };
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let code = format!("asc_{}", hex::encode(bytes));
    let now = app.now();
    let expires_at = now + (SIGNIN_CODE_TTL_SECS as i64) * 1000;
    app.store
        .create_signin_code(hash_token(&code), token_id.to_string(), now, expires_at)
        .await?;
    Ok(SigninCode {
        url: format!("{}/#/signin/{code}", app.public_url()),
        code,
        expires_at: rfc3339(expires_at),
    })
}

/// Exchanges a sign-in code, once, for a new member token (see the module doc). Every
/// refusal is 401 [`SIGNIN_REFUSED`].
pub async fn signin(app: &App, code: &str) -> Result<TokenCreated, Error> {
    let refused = || Error::Unauthenticated(SIGNIN_REFUSED.into());
    let code = code.trim();
    if code.is_empty() {
        return Err(refused());
    }
    let now = app.now();
    let Some(maker_id) = app.store.consume_signin_code(hash_token(code), now).await? else {
        return Err(refused());
    };
    let Some((maker, maker_workspaces)) = app.store.get_token(maker_id).await? else {
        return Err(refused());
    };
    if maker.revoked_at.is_some() || maker.expires_at.is_some_and(|at| at <= now) {
        return Err(refused());
    }
    let workspace_ids = match TokenKind::parse(&maker.kind) {
        Some(TokenKind::Admin) => app
            .store
            .list_workspaces(None)
            .await?
            .into_iter()
            .map(|w| w.id)
            .collect(),
        Some(TokenKind::Member) => maker_workspaces,
        _ => return Err(refused()),
    };
    let session = now + (BOARD_SESSION_TTL_SECS as i64) * 1000;
    let expires_at = Some(maker.expires_at.map_or(session, |m| m.min(session)));
    let token = new_token(MEMBER_TOKEN_PREFIX);
    let row = TokenRow {
        id: new_id(),
        name: BOARD_SESSION_NAME.into(),
        kind: TokenKind::Member.as_str().into(),
        created_at: now,
        created_by: Some(maker.id.clone()),
        expires_at,
        revoked_at: None,
        last_used_at: None,
        owner_user_id: maker.owner_user_id.clone(),
    };
    let id = row.id.clone();
    app.store
        .create_token(row, hash_token(&token), workspace_ids.clone())
        .await?;
    tracing::info!(token_id = %id, maker = %maker.id, "board sign-in code exchanged");
    Ok(TokenCreated {
        id,
        name: BOARD_SESSION_NAME.into(),
        token,
        kind: TokenKind::Member,
        workspace_ids,
        expires_at: expires_at.map(rfc3339),
    })
}
