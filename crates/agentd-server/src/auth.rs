//! Bearer tokens (docs/api.md, "Tokens"). API tokens (`agd_…`) are random, shown once
//! and stored as SHA-256 hex; each has a kind — `admin` (every workspace, every route),
//! `member` (a person: the user API of its workspaces) or `daemon` (a machine: the daemon
//! API of its workspaces, only on the runtimes it registered) — an optional expiry, a
//! `last_used_at` and can be revoked. Task tokens (`agt_…`) are minted per claim, stored
//! hashed on the task row, and are valid only while that task is dispatched or running,
//! and only for its issue.
//!
//! The extractors say who may call a route: [`Member`] (user routes; admin and member
//! tokens), [`Caller`] (user routes an agent's task token may also call), [`Daemon`]
//! (daemon routes; admin and daemon tokens) and [`Admin`]. A refused kind is 403 with a
//! message naming the token kind that is needed; a revoked or expired token is 401 on
//! every route.

use std::sync::Arc;

use agentd_proto::api::TokenKind;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::App;
use crate::authcache::CachedToken;
use crate::service::Error;
use crate::store::TaskRow;

pub const MEMBER_TOKEN_PREFIX: &str = "agd_";
pub const TASK_TOKEN_PREFIX: &str = "agt_";

/// `last_used_at` is written at most this often per token, so a daemon's heartbeats do
/// not each cost a write.
pub const LAST_USED_RESOLUTION_MS: i64 = 60_000;

/// A fresh random token: prefix + 40 hex characters (20 random bytes).
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Principal {
    /// An API token: a person's (member), a machine's (daemon) or the admin token.
    Token {
        token_id: String,
        name: String,
        kind: TokenKind,
        /// When the token expires (its tokens may not outlive it).
        expires_at: Option<i64>,
        workspaces: Vec<String>,
    },
    /// An agent acting through the token of its active task.
    Task(Box<TaskRow>),
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Principal::Token {
                kind: TokenKind::Admin,
                ..
            }
        )
    }

    /// The id of the API token (not of a task token).
    pub fn token_id(&self) -> Option<&str> {
        match self {
            Principal::Token { token_id, .. } => Some(token_id),
            Principal::Task(_) => None,
        }
    }

    /// A daemon token's id: the owner its runtimes and claims must match. `None` for
    /// every other caller.
    pub fn daemon_token(&self) -> Option<&str> {
        match self {
            Principal::Token {
                kind: TokenKind::Daemon,
                token_id,
                ..
            } => Some(token_id),
            _ => None,
        }
    }

    pub fn sees_workspace(&self, workspace_id: &str) -> bool {
        match self {
            Principal::Token {
                kind: TokenKind::Admin,
                ..
            } => true,
            Principal::Token { workspaces, .. } => workspaces.iter().any(|w| w == workspace_id),
            Principal::Task(t) => t.workspace_id == workspace_id,
        }
    }

    /// Workspaces a listing covers: `None` = all (admin).
    pub fn workspace_filter(&self) -> Option<Vec<String>> {
        match self {
            Principal::Token {
                kind: TokenKind::Admin,
                ..
            } => None,
            Principal::Token { workspaces, .. } => Some(workspaces.clone()),
            Principal::Task(t) => Some(vec![t.workspace_id.clone()]),
        }
    }
}

/// The bearer token of the request → who is calling: 401 when it is missing, unknown,
/// revoked or expired (saying which). Records `last_used_at` (at most once a minute).
/// API tokens are read through [`crate::authcache`] (valid ones for at most
/// [`crate::authcache::TTL_MS`], dropped at once on revocation).
pub async fn authenticate(parts: &Parts, app: &App) -> Result<Principal, Error> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| Error::Unauthenticated("missing authorization header".into()))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::Unauthenticated("invalid authorization format".into()))?;
    let hash = hash_token(token);
    if token.starts_with(TASK_TOKEN_PREFIX) {
        return match app.store.find_task_by_token(hash).await? {
            Some(task) => Ok(Principal::Task(Box::new(task))),
            None => Err(Error::Unauthenticated(
                "invalid token (a task token is valid only while its task is active)".into(),
            )),
        };
    }
    let now = app.now();
    let token = match app.auth_cache.token(&hash, now) {
        Some(t) => t,
        None => {
            let generation = app.auth_cache.generation();
            let Some((row, workspaces)) = app.store.find_token(hash.clone()).await? else {
                return Err(Error::Unauthenticated("invalid token".into()));
            };
            if row.revoked_at.is_some() {
                return Err(Error::Unauthenticated("token revoked".into()));
            }
            let kind = TokenKind::parse(&row.kind).ok_or_else(|| {
                Error::Store(crate::store::StoreError::Corrupt(format!(
                    "unknown token kind {:?}",
                    row.kind
                )))
            })?;
            let t = CachedToken {
                token_id: row.id,
                name: row.name,
                kind,
                expires_at: row.expires_at,
                workspaces,
                last_used_at: row.last_used_at,
            };
            // Stored only if no revocation happened since the read began (`authcache`).
            app.auth_cache
                .put_token(generation, hash.clone(), t.clone(), now);
            t
        }
    };
    // Checked on every use, cached or not.
    if token.expires_at.is_some_and(|at| at <= now) {
        return Err(Error::Unauthenticated("token expired".into()));
    }
    let stale_before = now - LAST_USED_RESOLUTION_MS;
    if token.last_used_at.is_none_or(|at| at < stale_before) {
        app.auth_cache.used(&hash, now);
        if let Err(e) = app
            .store
            .touch_token(token.token_id.clone(), now, stale_before)
            .await
        {
            // Bookkeeping only: a failed write must not refuse a valid token.
            tracing::warn!(error = %e, token_id = %token.token_id, "cannot record the token's last use");
        }
    }
    Ok(Principal::Token {
        token_id: token.token_id,
        name: token.name,
        kind: token.kind,
        expires_at: token.expires_at,
        workspaces: token.workspaces,
    })
}

const TASK_TOKEN_REFUSED: &str =
    "a task token may only read its issue, comment on it and change its status";
const DAEMON_TOKEN_REFUSED: &str = "a daemon token may only call the daemon API \
     (/api/daemon/* and GET /api/workspaces); use a member token";

/// A caller of a user route that task tokens may also call (their issue): any token but
/// a daemon token (403).
pub struct Caller(pub Principal);

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Error> {
        match authenticate(parts, app).await? {
            p if p.daemon_token().is_some() => Err(Error::Forbidden(DAEMON_TOKEN_REFUSED.into())),
            p => Ok(Caller(p)),
        }
    }
}

/// A caller of a user route: an admin or member token. Task tokens and daemon tokens are
/// refused with 403.
pub struct Member(pub Principal);

impl FromRequestParts<Arc<App>> for Member {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Error> {
        match authenticate(parts, app).await? {
            Principal::Task(_) => Err(Error::Forbidden(TASK_TOKEN_REFUSED.into())),
            p if p.daemon_token().is_some() => Err(Error::Forbidden(DAEMON_TOKEN_REFUSED.into())),
            p => Ok(Member(p)),
        }
    }
}

/// A caller of the daemon API: a daemon token (or the admin token). Member tokens and
/// task tokens are refused with 403.
pub struct Daemon(pub Principal);

impl FromRequestParts<Arc<App>> for Daemon {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Error> {
        match authenticate(parts, app).await? {
            Principal::Task(_) => Err(Error::Forbidden(TASK_TOKEN_REFUSED.into())),
            p @ Principal::Token {
                kind: TokenKind::Admin | TokenKind::Daemon,
                ..
            } => Ok(Daemon(p)),
            Principal::Token { .. } => Err(Error::Forbidden(
                "the daemon API needs a daemon token; create one with \
                 `agentd token create --daemon --workspace WID`"
                    .into(),
            )),
        }
    }
}

/// The admin token; every other token is refused with 403.
pub struct Admin(pub Principal);

impl FromRequestParts<Arc<App>> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Error> {
        match authenticate(parts, app).await? {
            p if p.is_admin() => Ok(Admin(p)),
            Principal::Task(_) => Err(Error::Forbidden(TASK_TOKEN_REFUSED.into())),
            p if p.daemon_token().is_some() => Err(Error::Forbidden(DAEMON_TOKEN_REFUSED.into())),
            _ => Err(Error::Forbidden("only the admin token may do this".into())),
        }
    }
}
