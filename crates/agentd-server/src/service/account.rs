//! Local accounts and board sessions (docs/accounts.md): users with argon2id password
//! hashes, password sign-in with per-account and per-IP limits, sessions (a random id in
//! an HttpOnly cookie, stored hashed, with a CSRF token; they expire and can be
//! revoked), and the server admins' user management.
//!
//! - **Same answer.** A wrong password, an unknown email and a disabled or
//!   password-less user all get the same 401 [`SIGNIN_REFUSED`], after the same argon2id
//!   work (an unknown email is verified against a dummy hash), so neither the answer nor
//!   its timing says whether the email exists.
//! - **Limits.** Failed sign-ins are audit entries (`signin.failed`, target = the email
//!   as typed, lowercased); at [`MAX_FAILED_PER_ACCOUNT`] failures for one email or
//!   [`MAX_FAILED_PER_IP`] from one IP within [`FAILED_WINDOW_MS`], further attempts are
//!   429 without checking the password (and logged as `signin.throttled`). The count is
//!   read from the database, so it holds across server instances.

use agentd_proto::accounts::{Membership, Role, Session, User};
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use rand::RngCore;

use crate::App;
use crate::auth::{Principal, SessionUser, hash_token};
use crate::service::{Error, audit, new_id};
use crate::store::{MembershipRow, SessionRow, UserRow};

/// argon2id cost: 24 MiB of memory, two passes, one lane — one hash takes about 50–100
/// ms on the reference machine (docs/benchmarks.md, "Accounts"; 19 MiB × 2, OWASP's
/// minimum, measured 51 ms and 32 MiB × 2 96 ms there).
pub const ARGON2_M_KIB: u32 = 24 * 1024;
pub const ARGON2_T: u32 = 2;
pub const ARGON2_P: u32 = 1;
/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;
/// A session lasts this long from sign-in (not sliding).
pub const SESSION_TTL_MS: i64 = 7 * 24 * 3600 * 1000;
/// Failed sign-ins counted over this window.
pub const FAILED_WINDOW_MS: i64 = 15 * 60 * 1000;
pub const MAX_FAILED_PER_ACCOUNT: i64 = 5;
pub const MAX_FAILED_PER_IP: i64 = 20;
/// The answer to every refused sign-in.
pub const SIGNIN_REFUSED: &str = "wrong email or password";
const THROTTLED: &str = "too many failed sign-ins; try again in 15 minutes";

fn hasher() -> Argon2<'static> {
    // The constants are valid parameters (a unit test hashes with them).
    let params = Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None).unwrap_or(Params::DEFAULT);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The argon2id PHC string of `password` with a fresh random salt (off the async
/// runtime: it takes tens of milliseconds).
pub async fn hash_password(password: &str) -> Result<String, Error> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        hasher()
            .hash_password_with_salt(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("cannot hash the password: {e}")))
    })
    .await
    .map_err(|e| Error::Internal(format!("password hashing stopped: {e}")))?
}

/// Whether `password` matches the PHC string `hash` (a malformed hash matches nothing).
/// `None` still does the work, against a dummy hash.
pub async fn verify_password(password: &str, hash: Option<String>) -> bool {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        let real = hash.is_some();
        let hash = hash.unwrap_or_else(dummy_hash);
        let ok = hasher()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok();
        ok && real
    })
    .await
    .unwrap_or(false)
}

/// A valid hash of a random password, with the current parameters.
fn dummy_hash() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| {
            let mut pw = [0u8; 16];
            rand::rng().fill_bytes(&mut pw);
            hasher()
                .hash_password_with_salt(&pw, b"agentd-dummy-salt")
                .map(|h| h.to_string())
                .unwrap_or_default()
        })
        .clone()
}

/// Emails are compared trimmed and lowercased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn check_email(email: &str) -> Result<(), Error> {
    let ok = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(a, d)| !a.is_empty() && !d.is_empty() && !d.contains('@'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(Error::bad(format!("not an email address: {email:?}")))
    }
}

fn check_password(password: &str) -> Result<(), Error> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::bad(format!(
            "the password must be at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if password.len() > 1024 {
        return Err(Error::bad("the password is longer than 1024 bytes"));
    }
    Ok(())
}

pub fn user_info(u: &UserRow) -> User {
    User {
        id: u.id.clone(),
        email: u.email.clone(),
        name: u.name.clone(),
        is_admin: u.is_admin,
        disabled: u.disabled,
        has_password: u.password_hash.is_some(),
        created_at: u.created_at,
    }
}

/// Creates a local account (a server admin's call, or `agentd up` for the first
/// user). 409 if the email is taken.
pub async fn create_user(
    app: &App,
    who: Option<&Principal>,
    ip: &str,
    email: &str,
    name: &str,
    password: &str,
    is_admin: bool,
) -> Result<User, Error> {
    let email = normalize_email(email);
    check_email(&email)?;
    check_password(password)?;
    let row = UserRow {
        id: new_id(),
        email: email.clone(),
        name: name.trim().to_string(),
        password_hash: Some(hash_password(password).await?),
        is_admin,
        disabled: false,
        created_at: app.now(),
    };
    if !app.store.create_user(row.clone()).await? {
        return Err(Error::Conflict(format!("a user with email {email} exists")));
    }
    audit::record(
        app,
        audit::Entry::new(who, "user.create", ip)
            .target(&email)
            .detail(serde_json::json!({"user_id": row.id, "is_admin": is_admin})),
    )
    .await;
    Ok(user_info(&row))
}

/// Sets a user's password (a server admin's call, or the user's own). Revokes nothing.
pub async fn set_password(
    app: &App,
    who: &Principal,
    ip: &str,
    user_id: &str,
    password: &str,
) -> Result<User, Error> {
    if !who.is_admin() && who.user_id() != Some(user_id) {
        return Err(Error::NotFound("user not found"));
    }
    check_password(password)?;
    let Some(mut u) = app.store.get_user(user_id.to_string()).await? else {
        return Err(Error::NotFound("user not found"));
    };
    u.password_hash = Some(hash_password(password).await?);
    app.store.update_user(u.clone()).await?;
    audit::record(
        app,
        audit::Entry::new(Some(who), "user.password", ip).target(&u.email),
    )
    .await;
    Ok(user_info(&u))
}

/// Takes over a user (the upgrade's admin, `admin@agentd.invalid`): sets its email,
/// name and password. Server admins only (the route says so).
pub async fn update_user(
    app: &App,
    who: &Principal,
    ip: &str,
    user_id: &str,
    email: Option<&str>,
    name: Option<&str>,
    password: Option<&str>,
) -> Result<User, Error> {
    let Some(mut u) = app.store.get_user(user_id.to_string()).await? else {
        return Err(Error::NotFound("user not found"));
    };
    if let Some(e) = email {
        let e = normalize_email(e);
        check_email(&e)?;
        u.email = e;
    }
    if let Some(n) = name {
        u.name = n.trim().to_string();
    }
    if let Some(p) = password {
        check_password(p)?;
        u.password_hash = Some(hash_password(p).await?);
    }
    if !app.store.update_user(u.clone()).await? {
        return Err(Error::Conflict(format!(
            "a user with email {} exists",
            u.email
        )));
    }
    audit::record(
        app,
        audit::Entry::new(Some(who), "user.update", ip)
            .target(&u.email)
            .detail(serde_json::json!({"user_id": u.id, "password_changed": password.is_some()})),
    )
    .await;
    Ok(user_info(&u))
}

pub async fn list_users(app: &App) -> Result<Vec<User>, Error> {
    Ok(app
        .store
        .list_users()
        .await?
        .iter()
        .map(user_info)
        .collect())
}

/// A new board session for the user with this email and password: the session (its
/// CSRF token included) and the cookie's value. See the module doc for the refusals.
pub async fn sign_in(
    app: &App,
    ip: &str,
    email: &str,
    password: &str,
) -> Result<(Session, String), Error> {
    let email = normalize_email(email);
    let now = app.now();
    let (by_account, by_ip) = app
        .store
        .count_audit(
            "signin.failed".into(),
            email.clone(),
            ip.to_string(),
            now - FAILED_WINDOW_MS,
        )
        .await?;
    if by_account >= MAX_FAILED_PER_ACCOUNT || (!ip.is_empty() && by_ip >= MAX_FAILED_PER_IP) {
        audit::record(
            app,
            audit::Entry::anonymous("signin.throttled", ip).target(&email),
        )
        .await;
        return Err(Error::TooManyAttempts(THROTTLED.into()));
    }
    let user = app.store.user_by_email(email.clone()).await?;
    let hash = user
        .as_ref()
        .filter(|u| !u.disabled)
        .and_then(|u| u.password_hash.clone());
    let user = match user {
        Some(u) if verify_password(password, hash).await => u,
        _ => {
            // `verify_password` did the same work for an unknown email.
            audit::record(
                app,
                audit::Entry::anonymous("signin.failed", ip).target(&email),
            )
            .await;
            return Err(Error::Unauthenticated(SIGNIN_REFUSED.into()));
        }
    };
    let (session, cookie) = new_session(app, &user).await?;
    audit::record(
        app,
        audit::Entry::user(&user, "signin", ip)
            .target(&user.email)
            .detail(serde_json::json!({"method": "password"})),
    )
    .await;
    Ok((session, cookie))
}

/// Starts a session for `user` (after a password or OIDC sign-in): the session and the
/// cookie value (the plaintext id; the store keeps its SHA-256).
pub async fn new_session(app: &App, user: &UserRow) -> Result<(Session, String), Error> {
    let now = app.now();
    let sid = random_hex(32);
    let row = SessionRow {
        id_hash: hash_token(&sid),
        user_id: user.id.clone(),
        csrf_token: random_hex(32),
        created_at: now,
        expires_at: now + SESSION_TTL_MS,
        revoked_at: None,
    };
    app.store.create_session(row.clone()).await?;
    let session = Session {
        user: user_info(user),
        csrf_token: row.csrf_token,
        expires_at: row.expires_at,
        memberships: memberships(app, &user.id).await?,
    };
    Ok((session, sid))
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// The user's memberships with the workspaces' ids and roles.
pub async fn memberships(app: &App, user_id: &str) -> Result<Vec<Membership>, Error> {
    Ok(app
        .store
        .list_memberships(None, Some(user_id.to_string()))
        .await?
        .into_iter()
        .map(|m| membership_info(m, None))
        .collect())
}

pub fn membership_info(m: MembershipRow, user: Option<&UserRow>) -> Membership {
    Membership {
        role: Role::parse(&m.role).unwrap_or(Role::Unknown),
        workspace_id: m.workspace_id,
        user_id: m.user_id,
        email: user.map(|u| u.email.clone()).unwrap_or_default(),
        name: user.map(|u| u.name.clone()).unwrap_or_default(),
        created_at: m.created_at,
    }
}

/// The signed-in user of a session cookie: 401 if the session is unknown, revoked or
/// expired, or its user is disabled.
pub async fn session_user(app: &App, sid: &str) -> Result<SessionUser, Error> {
    let hash = hash_token(sid);
    let Some((s, u)) = app.store.find_session(hash.clone()).await? else {
        return Err(Error::Unauthenticated(
            "not signed in (unknown session)".into(),
        ));
    };
    if s.revoked_at.is_some() {
        return Err(Error::Unauthenticated(
            "session revoked; sign in again".into(),
        ));
    }
    if s.expires_at <= app.now() {
        return Err(Error::Unauthenticated(
            "session expired; sign in again".into(),
        ));
    }
    if u.disabled {
        return Err(Error::Unauthenticated("this user is disabled".into()));
    }
    let roles = if u.is_admin {
        Vec::new()
    } else {
        app.store
            .list_memberships(None, Some(u.id.clone()))
            .await?
            .into_iter()
            .filter_map(|m| Role::parse(&m.role).map(|r| (m.workspace_id, r)))
            .collect()
    };
    Ok(SessionUser {
        user_id: u.id,
        email: u.email,
        name: u.name,
        is_admin: u.is_admin,
        roles,
        session_hash: hash,
        csrf_token: s.csrf_token,
        expires_at: s.expires_at,
        need: Role::Owner,
    })
}

/// The caller's session (`GET /api/v1/session`).
pub async fn current(app: &App, who: &Principal) -> Result<Session, Error> {
    let Principal::User(u) = who else {
        return Err(Error::Unauthenticated(
            "not signed in with a session (this is a token)".into(),
        ));
    };
    let Some(user) = app.store.get_user(u.user_id.clone()).await? else {
        return Err(Error::Unauthenticated("not signed in".into()));
    };
    Ok(Session {
        user: user_info(&user),
        csrf_token: u.csrf_token.clone(),
        expires_at: u.expires_at,
        memberships: memberships(app, &user.id).await?,
    })
}

/// Ends the caller's session (sign-out).
pub async fn sign_out(app: &App, who: &Principal, ip: &str) -> Result<(), Error> {
    let Principal::User(u) = who else {
        return Err(Error::bad(
            "sign-out ends a session; this request has a token",
        ));
    };
    app.store
        .revoke_session(u.session_hash.clone(), app.now())
        .await?;
    audit::record(
        app,
        audit::Entry::new(Some(who), "signout", ip).target(&u.email),
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ_by_salt() {
        let a = hash_password("correct horse").await.unwrap();
        let b = hash_password("correct horse").await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=24576,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(verify_password("correct horse", Some(a.clone())).await);
        assert!(!verify_password("correct horsf", Some(a)).await);
        assert!(!verify_password("x", Some("not a hash".into())).await);
        assert!(!verify_password("x", None).await, "no hash never matches");
    }

    #[test]
    fn emails_are_checked_and_normalised() {
        assert_eq!(normalize_email("  Ann@Example.COM "), "ann@example.com");
        assert!(check_email("ann@example.com").is_ok());
        for bad in ["", "ann", "@x", "ann@", "a b@x", "a@b@c"] {
            assert!(check_email(bad).is_err(), "{bad:?}");
        }
        assert!(check_password("short").is_err());
        assert!(check_password("long enough").is_ok());
    }
}
