//! Accounts (docs/api.md, "Accounts"): board sessions — `POST /api/v1/session` (sign in
//! with email and password; no credentials needed), `GET` (who is signed in) and
//! `DELETE` (sign out) —, users — `GET|POST /api/v1/users`, `PATCH /api/v1/users/{id}`
//! (server admins; a user may change its own password) — and `GET /api/v1/audit`.

use std::sync::Arc;

use agentd_proto::accounts::{
    AuditPage, CreateUserRequest, Session, SignInRequest, UpdateUserRequest, User,
};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{ApiError, ApiJson, ApiQuery};
use crate::App;
use crate::auth::{Admin, Member, Principal, SESSION_COOKIE, SourceIp};
use crate::service::{Error, account, audit, is_uuid};

/// The session cookie: HttpOnly (scripts cannot read it), SameSite=Lax (not sent on
/// cross-site POSTs), Secure when the server's public URL is https, for the session's
/// lifetime. `None` clears it.
pub(super) fn cookie(app: &App, sid: Option<&str>) -> Result<HeaderValue, ApiError> {
    let secure = if app.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let (value, max_age) = match sid {
        Some(s) => (s, account::SESSION_TTL_MS / 1000),
        None => ("", 0),
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .map_err(|e| ApiError::Internal(format!("bad cookie: {e}")))
}

pub async fn sign_in(
    State(app): State<Arc<App>>,
    SourceIp(ip): SourceIp,
    ApiJson(req): ApiJson<SignInRequest>,
) -> Result<Response, ApiError> {
    let (session, sid) = account::sign_in(&app, &ip, &req.email, &req.password).await?;
    let mut resp = (StatusCode::CREATED, Json(session)).into_response();
    resp.headers_mut()
        .insert(SET_COOKIE, cookie(&app, Some(&sid))?);
    Ok(resp)
}

pub async fn current(
    State(app): State<Arc<App>>,
    Member(who): Member,
) -> Result<Json<Session>, ApiError> {
    Ok(Json(account::current(&app, &who).await?))
}

pub async fn sign_out(
    State(app): State<Arc<App>>,
    Member(who): Member,
    SourceIp(ip): SourceIp,
) -> Result<Response, ApiError> {
    account::sign_out(&app, &who, &ip).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(SET_COOKIE, cookie(&app, None)?);
    Ok(resp)
}

pub async fn list_users(
    State(app): State<Arc<App>>,
    Admin(_): Admin,
) -> Result<Json<Vec<User>>, ApiError> {
    Ok(Json(account::list_users(&app).await?))
}

pub async fn create_user(
    State(app): State<Arc<App>>,
    Admin(who): Admin,
    SourceIp(ip): SourceIp,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let u = account::create_user(
        &app,
        Some(&who),
        &ip,
        &req.email,
        &req.name,
        &req.password,
        req.is_admin,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(u)))
}

/// Server admins change any field; a user may change only its own password.
pub async fn update_user(
    State(app): State<Arc<App>>,
    Member(who): Member,
    SourceIp(ip): SourceIp,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateUserRequest>,
) -> Result<Json<User>, ApiError> {
    if !is_uuid(&id) {
        return Err(Error::bad("invalid user id").into());
    }
    if !who.is_admin() {
        if who.user_id() != Some(id.as_str()) || !matches!(who, Principal::User(_)) {
            return Err(Error::NotFound("user not found").into());
        }
        if req.email.is_some() || req.name.is_some() {
            return Err(Error::Forbidden(
                "only a server admin may change a user's email or name".into(),
            )
            .into());
        }
        let Some(p) = req.password.as_deref() else {
            return Err(Error::bad("nothing to change").into());
        };
        return Ok(Json(account::set_password(&app, &who, &ip, &id, p).await?));
    }
    Ok(Json(
        account::update_user(
            &app,
            &who,
            &ip,
            &id,
            req.email.as_deref(),
            req.name.as_deref(),
            req.password.as_deref(),
        )
        .await?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    workspace_id: Option<String>,
    action: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
}

pub async fn audit(
    State(app): State<Arc<App>>,
    Member(who): Member,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    if let Some(w) = &q.workspace_id
        && !is_uuid(w)
    {
        return Err(Error::bad("invalid workspace_id").into());
    }
    let entries = audit::list(
        &app,
        &who,
        q.workspace_id.as_deref(),
        q.action,
        q.before,
        q.limit,
    )
    .await?;
    Ok(Json(AuditPage { entries }))
}
