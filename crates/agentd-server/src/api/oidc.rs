//! OIDC single sign-on (docs/api.md, "Accounts"; [`crate::service::oidc`]):
//! `GET /api/v1/oidc/login` (redirects to the provider and sets the state cookie),
//! `GET /api/v1/oidc/callback` (the provider redirects back; checks the state cookie,
//! sets the session cookie and redirects to the board),
//! `GET /api/v1/session/providers` (what the sign-in form offers; no credentials) and
//! `GET|PUT /api/v1/workspaces/{wid}/settings` (the OIDC default role).

use std::sync::Arc;

use agentd_proto::accounts::{SignInProviders, WorkspaceSettings};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::accounts::cookie;
use super::error::{ApiError, ApiJson, ApiQuery};
use crate::App;
use crate::auth::{Member, SourceIp};
use crate::service::oidc;

fn see_other(to: &str) -> Result<Response, ApiError> {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    let h = resp.headers_mut();
    h.insert(
        LOCATION,
        HeaderValue::from_str(to).map_err(|e| ApiError::Internal(format!("bad location: {e}")))?,
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// The [`oidc::STATE_COOKIE`]: the state of this browser's sign-in, sent back only to
/// the callback, for the sign-in's lifetime; `None` clears it.
fn state_cookie(app: &App, state: Option<&str>) -> Result<HeaderValue, ApiError> {
    let secure = if app.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let (value, max_age) = match state {
        Some(s) => (s, oidc::LOGIN_TTL_MS / 1000),
        None => ("", 0),
    };
    HeaderValue::from_str(&format!(
        "{}={value}; Path={}; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        oidc::STATE_COOKIE,
        oidc::CALLBACK_PATH
    ))
    .map_err(|e| ApiError::Internal(format!("bad cookie: {e}")))
}

/// The value of the cookie `name` in the request, if any.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

pub async fn login(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let (to, state) = oidc::login(&app).await?;
    let mut resp = see_other(&to)?;
    resp.headers_mut()
        .insert(SET_COOKIE, state_cookie(&app, Some(&state))?);
    Ok(resp)
}

pub async fn callback(
    State(app): State<Arc<App>>,
    SourceIp(ip): SourceIp,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<oidc::CallbackQuery>,
) -> Result<Response, ApiError> {
    let browser_state = cookie_value(&headers, oidc::STATE_COOKIE);
    let (_session, sid) = oidc::callback(&app, &ip, q, browser_state.as_deref()).await?;
    let mut resp = see_other("/")?;
    resp.headers_mut()
        .append(SET_COOKIE, cookie(&app, Some(&sid))?);
    resp.headers_mut()
        .append(SET_COOKIE, state_cookie(&app, None)?);
    Ok(resp)
}

pub async fn providers(State(app): State<Arc<App>>) -> Json<SignInProviders> {
    Json(oidc::providers(&app))
}

pub async fn settings(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(wid): Path<String>,
) -> Result<Json<WorkspaceSettings>, ApiError> {
    Ok(Json(oidc::settings(&app, &who, &wid).await?))
}

pub async fn set_settings(
    State(app): State<Arc<App>>,
    Member(who): Member,
    SourceIp(ip): SourceIp,
    Path(wid): Path<String>,
    ApiJson(req): ApiJson<WorkspaceSettings>,
) -> Result<Json<WorkspaceSettings>, ApiError> {
    Ok(Json(
        oidc::set_default_role(&app, &who, &ip, &wid, req).await?,
    ))
}
