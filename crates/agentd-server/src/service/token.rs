//! API tokens: create, list, revoke, and rotate the admin token (docs/api.md, "Tokens").
//!
//! - A new token is `member` or `daemon`, scoped to workspaces its creator can see, with
//!   an optional expiry that never outlives its creator's. Members may create tokens only
//!   when the server allows it (`members_can_mint_tokens`); the admin always may.
//! - The admin sees every token; a member sees itself and the tokens it created, and may
//!   revoke those. The admin token is not revoked this way but rotated.
//! - The plaintext is returned once, at creation; the store keeps its SHA-256.

use agentd_proto::api::{CreateTokenRequest, TokenCreated, TokenInfo, TokenKind};

use crate::App;
use crate::auth::{MEMBER_TOKEN_PREFIX, Principal, hash_token, new_token};
use crate::service::{Error, is_uuid, new_id, rfc3339, workspace};
use crate::store::TokenRow;

/// The longest expiry one can ask for (ten years), so the arithmetic cannot overflow.
const MAX_EXPIRES_IN_SECS: u64 = 10 * 365 * 24 * 3600;

pub async fn create(
    app: &App,
    who: &Principal,
    req: CreateTokenRequest,
) -> Result<TokenCreated, Error> {
    let Principal::Token {
        token_id,
        expires_at: creator_expires_at,
        ..
    } = who
    else {
        return Err(Error::Forbidden("a task token cannot create tokens".into()));
    };
    if !who.is_admin() && !app.config.members_can_mint_tokens {
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
    let mut workspace_ids: Vec<String> = Vec::new();
    for wid in &req.workspace_ids {
        if !workspace_ids.contains(wid) {
            workspace_ids.push(wid.clone());
        }
    }
    if workspace_ids.is_empty() {
        return Err(Error::bad("workspace_ids is required"));
    }
    for wid in &workspace_ids {
        workspace::visible(app, who, wid).await?;
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
    let expires_at = match (requested, *creator_expires_at) {
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
        created_by: Some(token_id.clone()),
        expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    let id = row.id.clone();
    app.store
        .create_token(row, hash_token(&token), workspace_ids.clone())
        .await?;
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
    Ok(app
        .store
        .list_tokens(scope(who))
        .await?
        .into_iter()
        .map(|(row, ws)| info(row, ws, who))
        .collect())
}

/// Revokes a token the caller sees (idempotent); answers it as it is now. The admin
/// token is refused (409): rotate it instead.
pub async fn revoke(app: &App, who: &Principal, id: &str) -> Result<TokenInfo, Error> {
    if !is_uuid(id) {
        return Err(Error::bad("invalid token id"));
    }
    let (row, _) = match app.store.get_token(id.to_string()).await? {
        Some((row, ws))
            if who.is_admin()
                || who.token_id() == Some(row.id.as_str())
                || row.created_by.as_deref() == who.token_id() =>
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
    }
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
    let token = crate::mint_admin_token(app.store.as_ref(), &app.config.data_dir, app.now())
        .await
        .map_err(|e| match e {
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
