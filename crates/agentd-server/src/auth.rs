//! Bearer tokens (docs/api.md, "Tokens"). API tokens (`agd_…`) are random, shown once
//! and stored as SHA-256 hex; each has a kind — `admin` (every workspace, every route),
//! `member` (a person: the user API of its workspaces) or `daemon` (a machine: the daemon
//! API of its workspaces, only on the runtimes it registered) — an optional expiry, a
//! `last_used_at` and can be revoked. Task tokens (`agt_…`) are minted per claim, stored
//! hashed on the task row, and are valid only while that task is dispatched or running,
//! and only for its issue.
//!
//! A board session is a cookie ([`SESSION_COOKIE`]) naming a row of `sessions`
//! ([`crate::service::account`]): it acts as its user, with the user's role in each
//! workspace. A state-changing request (any method but GET/HEAD/OPTIONS) authenticated
//! by the cookie must carry the session's CSRF token in [`CSRF_HEADER`], else 403; a
//! bearer token is never read from a cookie, so bearer requests need no CSRF token.
//!
//! Roles ([`Role`]): a user's token acts with its owner's role in each of its workspaces
//! (a workspace the owner left grants nothing); a server-admin user is owner everywhere;
//! a token with no owner (the admin token and tokens it minted before accounts) is owner
//! in its workspaces, as before.
//!
//! The extractors say who may call a route: [`Member`] (user routes; admin and member
//! tokens), [`Caller`] (user routes an agent's task token may also call), [`Daemon`]
//! (daemon routes; admin and daemon tokens) and [`Admin`]. A refused kind is 403 with a
//! message naming the token kind that is needed; a revoked or expired token is 401 on
//! every route.

use std::sync::Arc;

use agentd_proto::accounts::Role;
use agentd_proto::api::TokenKind;
use axum::extract::FromRequestParts;
use axum::http::Method;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::App;
use crate::authcache::CachedToken;
use crate::service::Error;
use crate::store::TaskRow;

pub const MEMBER_TOKEN_PREFIX: &str = "agd_";
pub const TASK_TOKEN_PREFIX: &str = "agt_";
/// The board session's cookie.
pub const SESSION_COOKIE: &str = "agentd_session";
/// The header a cookie-authenticated state-changing request echoes the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

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

/// A signed-in user (a board session).
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub user_id: String,
    pub email: String,
    pub name: String,
    /// A server admin: owner of every workspace.
    pub is_admin: bool,
    /// The user's role in each of its workspaces.
    pub roles: Vec<(String, Role)>,
    pub session_hash: String,
    pub csrf_token: String,
    pub expires_at: i64,
    /// The role the route needs in the workspace it acts on ([`required_role`]).
    pub need: Role,
}

impl SessionUser {
    /// What activity and comments call this user: the name, else the email.
    pub fn display_name(&self) -> String {
        if self.name.is_empty() {
            self.email.clone()
        } else {
            self.name.clone()
        }
    }
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
        /// The workspaces it acts in (those its owner still has a role in).
        workspaces: Vec<String>,
        /// Its role in each of `workspaces` (the owner's; see the module doc).
        roles: Vec<(String, Role)>,
        /// The user who owns it.
        owner: Option<String>,
        /// The role the route needs in the workspace it acts on ([`required_role`]).
        need: Role,
    },
    /// A user signed in to the board (a session cookie).
    User(Box<SessionUser>),
    /// An agent acting through the token of its active task.
    Task(Box<TaskRow>),
}

impl Principal {
    /// The admin token, or a server-admin user.
    pub fn is_admin(&self) -> bool {
        match self {
            Principal::Token { kind, .. } => *kind == TokenKind::Admin,
            Principal::User(u) => u.is_admin,
            Principal::Task(_) => false,
        }
    }

    /// The user behind the caller: a session's user, or a token's owner.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Principal::Token { owner, .. } => owner.as_deref(),
            Principal::User(u) => Some(&u.user_id),
            Principal::Task(_) => None,
        }
    }

    /// Ok if the caller has the role the route needs ([`required_role`]) in the workspace
    /// it acts on, else 403. Called where every route resolves its workspace
    /// (`service::resolve`, the daemon API's loaders), after the visibility check (which
    /// answers 404 outside the caller's workspaces). Task tokens pass (their scope is
    /// their issue, checked by their routes).
    pub fn check_role(&self, workspace_id: &str) -> Result<(), Error> {
        let need = match self {
            Principal::Token { need, .. } => *need,
            Principal::User(u) => u.need,
            Principal::Task(_) => return Ok(()),
        };
        self.require(workspace_id, need)
    }

    /// The caller's role in a workspace (`None`: none). Task tokens have no role (their
    /// scope is their issue); admins are owners everywhere.
    pub fn role_in(&self, workspace_id: &str) -> Option<Role> {
        if self.is_admin() {
            return Some(Role::Owner);
        }
        let roles = match self {
            Principal::Token { roles, .. } => roles,
            Principal::User(u) => &u.roles,
            Principal::Task(_) => return None,
        };
        roles
            .iter()
            .find(|(w, _)| w == workspace_id)
            .map(|(_, r)| *r)
    }

    /// Ok if the caller has at least role `min` in the workspace, else 403 naming the
    /// role needed. A task token passes (its routes check its own narrow scope).
    pub fn require(&self, workspace_id: &str, min: Role) -> Result<(), Error> {
        if matches!(self, Principal::Task(_)) {
            return Ok(());
        }
        match self.role_in(workspace_id) {
            Some(r) if r >= min => Ok(()),
            Some(r) => Err(Error::Forbidden(format!(
                "this needs the {} role in the workspace (you are {})",
                min.as_str(),
                r.as_str()
            ))),
            None => Err(Error::Forbidden(format!(
                "this needs the {} role in the workspace",
                min.as_str()
            ))),
        }
    }

    /// The id of the API token (not of a task token).
    pub fn token_id(&self) -> Option<&str> {
        match self {
            Principal::Token { token_id, .. } => Some(token_id),
            Principal::User(_) | Principal::Task(_) => None,
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
            Principal::User(u) => u.is_admin || u.roles.iter().any(|(w, _)| w == workspace_id),
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
            Principal::User(u) if u.is_admin => None,
            Principal::User(u) => Some(u.roles.iter().map(|(w, _)| w.clone()).collect()),
            Principal::Task(t) => Some(vec![t.workspace_id.clone()]),
        }
    }
}

/// The bearer token of the request → who is calling: 401 when it is missing, unknown,
/// revoked or expired (saying which). Records `last_used_at` (at most once a minute).
/// API tokens are read through [`crate::authcache`] (valid ones for at most
/// [`crate::authcache::TTL_MS`], dropped at once on revocation).
pub async fn authenticate(parts: &Parts, app: &App) -> Result<Principal, Error> {
    // Stamped by `stamp_required_role`; a route it missed needs the strongest role.
    let need = parts
        .extensions
        .get::<RequiredRole>()
        .map_or(Role::Owner, |r| r.0);
    let Some(header) = parts.headers.get(AUTHORIZATION) else {
        if let Some(sid) = session_cookie(parts) {
            let mut user = crate::service::account::session_user(app, &sid).await?;
            user.need = need;
            if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
                let sent = parts
                    .headers
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !constant_time_eq(sent.as_bytes(), user.csrf_token.as_bytes()) {
                    return Err(Error::Forbidden(format!(
                        "missing or wrong {CSRF_HEADER} header (a request signed in by the \
                         session cookie must echo the session's CSRF token)"
                    )));
                }
            }
            return Ok(Principal::User(Box::new(user)));
        }
        return Err(Error::Unauthenticated(
            "missing authorization header (or session cookie)".into(),
        ));
    };
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
            let roles = owner_roles(app, row.owner_user_id.as_deref(), &workspaces).await?;
            let t = CachedToken {
                token_id: row.id,
                name: row.name,
                kind,
                expires_at: row.expires_at,
                workspaces: roles.iter().map(|(w, _)| w.clone()).collect(),
                roles,
                owner: row.owner_user_id,
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
        roles: token.roles,
        owner: token.owner,
        need,
    })
}

/// The role a route needs in the workspace it acts on, stamped on the request by
/// [`stamp_required_role`] from the route's method and template (docs/accounts.md,
/// "Roles"). Reads need `viewer`; issues, comments and runs `member`; agents, runtimes,
/// forge connections, members, invitations and the daemon API `admin`; deleting a
/// workspace `owner`. Routes that act on the caller's own things (its tokens, session,
/// password) need only `viewer`; their services check ownership.
#[derive(Debug, Clone, Copy)]
pub struct RequiredRole(pub Role);

pub fn required_role(method: &Method, route: &str) -> Role {
    if route.starts_with("/api/daemon") || route == "/api/workspaces" {
        return Role::Admin;
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Role::Viewer;
    }
    match (method.as_str(), route) {
        ("DELETE", "/api/v1/workspaces/{wid}") => Role::Owner,
        ("DELETE", "/api/v1/runtimes/{id}")
        | ("POST", "/api/v1/workspaces/{wid}/agents")
        | ("PATCH", "/api/v1/agents/{id}")
        | ("PUT", "/api/v1/workspaces/{wid}/forge")
        | ("DELETE", "/api/v1/workspaces/{wid}/forge")
        | ("PUT", "/api/v1/workspaces/{wid}/settings")
        | ("PATCH", "/api/v1/workspaces/{wid}")
        | ("PUT", "/api/v1/workspaces/{wid}/members/{uid}")
        | ("DELETE", "/api/v1/workspaces/{wid}/members/{uid}")
        | ("POST", "/api/v1/workspaces/{wid}/invitations")
        | ("DELETE", "/api/v1/invitations/{id}") => Role::Admin,
        ("POST", "/api/v1/tokens")
        | ("DELETE", "/api/v1/tokens/{id}")
        | ("POST", "/api/v1/signin-codes")
        | ("POST", "/api/v1/session")
        | ("DELETE", "/api/v1/session")
        | ("PATCH", "/api/v1/users/{id}")
        | ("POST", "/api/v1/invitations/accept") => Role::Viewer,
        _ => Role::Member,
    }
}

/// Middleware: stamps [`RequiredRole`] on every matched request.
pub async fn stamp_required_role(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let role = required_role(req.method(), &route);
    req.extensions_mut().insert(RequiredRole(role));
    next.run(req).await
}

/// A token's role in each of its workspaces: its owner's (see the module doc). A
/// disabled owner's tokens are refused (401).
async fn owner_roles(
    app: &App,
    owner: Option<&str>,
    workspaces: &[String],
) -> Result<Vec<(String, Role)>, Error> {
    let Some(owner) = owner else {
        return Ok(workspaces
            .iter()
            .map(|w| (w.clone(), Role::Owner))
            .collect());
    };
    let user = app.store.get_user(owner.to_string()).await?;
    let Some(user) = user.filter(|u| !u.disabled) else {
        return Err(Error::Unauthenticated(
            "the token's owner is disabled or deleted".into(),
        ));
    };
    if user.is_admin {
        return Ok(workspaces
            .iter()
            .map(|w| (w.clone(), Role::Owner))
            .collect());
    }
    let memberships = app
        .store
        .list_memberships(None, Some(owner.to_string()))
        .await?;
    Ok(workspaces
        .iter()
        .filter_map(|w| {
            memberships
                .iter()
                .find(|m| &m.workspace_id == w)
                .and_then(|m| Role::parse(&m.role))
                .map(|r| (w.clone(), r))
        })
        .collect())
}

/// The session id in the request's `Cookie` header(s), if any.
pub fn session_cookie(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Compares secrets without an early exit on the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

/// A caller of a user route: an admin or member token, or a signed-in user. Task tokens
/// and daemon tokens are refused with 403.
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
            Principal::Token { .. } | Principal::User(_) => Err(Error::Forbidden(
                "the daemon API needs a daemon token; create one with \
                 `agentd token create --daemon --workspace WID`"
                    .into(),
            )),
        }
    }
}

/// The admin token or a server-admin user; every other caller is refused with 403.
pub struct Admin(pub Principal);

impl FromRequestParts<Arc<App>> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Error> {
        match authenticate(parts, app).await? {
            p if p.is_admin() => Ok(Admin(p)),
            Principal::Task(_) => Err(Error::Forbidden(TASK_TOKEN_REFUSED.into())),
            p if p.daemon_token().is_some() => Err(Error::Forbidden(DAEMON_TOKEN_REFUSED.into())),
            _ => Err(Error::Forbidden(
                "only the admin token or a server admin may do this".into(),
            )),
        }
    }
}

/// Who sent the request, for the audit log's source IP and the per-IP sign-in limit: the
/// peer address of its connection, or, when that peer is one of the configured
/// [`ServerConfig::trusted_proxies`](crate::ServerConfig::trusted_proxies), the address
/// its `X-Forwarded-For` names (see [`client_ip`]). Empty when the connection has no
/// address (an in-process request).
pub struct SourceIp(pub String);

impl FromRequestParts<Arc<App>> for SourceIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        let Some(peer) = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip())
        else {
            return Ok(SourceIp(String::new()));
        };
        let forwarded: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let ip = client_ip(peer, &forwarded, &app.config.trusted_proxies);
        Ok(SourceIp(ip.to_string()))
    }
}

/// The client behind `peer`: `peer` itself unless it is a trusted proxy; then the
/// `X-Forwarded-For` entries (every header, in order) are read from the nearest hop
/// back, skipping trusted proxies, and the first other address is the client. An entry
/// that is not an IP address ends the walk there (what lies before it cannot be
/// trusted), and so does a chain of trusted proxies only: the last address read stands.
pub fn client_ip(
    peer: std::net::IpAddr,
    forwarded: &[&str],
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let trusts = |ip: &std::net::IpAddr| trusted.iter().any(|n| n.contains(ip));
    let mut client = peer;
    if !trusts(&client) {
        return client;
    }
    let hops = forwarded.iter().flat_map(|h| h.split(',')).map(str::trim);
    for hop in hops.collect::<Vec<_>>().into_iter().rev() {
        match hop.parse::<std::net::IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !trusts(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// A caller that may also be nobody: `None` when the request carries neither a bearer
/// token nor a session cookie; otherwise as [`Member`] (a bad credential is still 401).
pub struct MaybeMember(pub Option<Principal>);

impl FromRequestParts<Arc<App>> for MaybeMember {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Error> {
        if parts.headers.get(AUTHORIZATION).is_none() && session_cookie(parts).is_none() {
            return Ok(MaybeMember(None));
        }
        let Member(p) = Member::from_request_parts(parts, app).await?;
        Ok(MaybeMember(Some(p)))
    }
}

#[cfg(test)]
mod tests {
    use super::client_ip;

    fn ip(s: &str) -> std::net::IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_nearest_untrusted_hop() {
        let lb: Vec<ipnet::IpNet> = vec!["10.0.0.0/24".parse().unwrap()];
        // Not from a trusted proxy: the header is anyone's to forge.
        assert_eq!(
            client_ip(ip("192.0.2.1"), &["203.0.113.7"], &lb),
            ip("192.0.2.1")
        );
        // From the balancer: the hop it names.
        assert_eq!(
            client_ip(ip("10.0.0.5"), &["203.0.113.7"], &lb),
            ip("203.0.113.7")
        );
        // A forged entry before the real client is not believed.
        assert_eq!(
            client_ip(ip("10.0.0.5"), &["1.2.3.4, 203.0.113.7, 10.0.0.6"], &lb),
            ip("203.0.113.7")
        );
        // Several headers are one list, in order.
        assert_eq!(
            client_ip(ip("10.0.0.5"), &["1.2.3.4", "203.0.113.7"], &lb),
            ip("203.0.113.7")
        );
        // Garbage ends the walk; no header leaves the balancer.
        assert_eq!(
            client_ip(ip("10.0.0.5"), &["nonsense"], &lb),
            ip("10.0.0.5")
        );
        assert_eq!(client_ip(ip("10.0.0.5"), &[], &lb), ip("10.0.0.5"));
        // Only trusted hops: the farthest of them.
        assert_eq!(
            client_ip(ip("10.0.0.5"), &["10.0.0.9"], &lb),
            ip("10.0.0.9")
        );
    }
}
