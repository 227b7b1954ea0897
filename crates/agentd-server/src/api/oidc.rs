//! OIDC single sign-on (docs/api.md, "Accounts"; [`crate::service::oidc`]):
//! `GET /api/v1/oidc/login` (redirects to the provider), `GET /api/v1/oidc/callback`
//! (the provider redirects back; sets the session cookie and redirects to the board),
//! `GET /api/v1/session/providers` (what the sign-in form offers; no credentials) and
//! `GET|PUT /api/v1/workspaces/{wid}/settings` (the OIDC default role).

use std::sync::Arc;

use agentd_proto::accounts::{SignInProviders, WorkspaceSettings};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, LOCATION, SET_COOKIE};
use axum::http::{HeaderValue, StatusCode};
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

pub async fn login(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    see_other(&oidc::login(&app).await?)
}

pub async fn callback(
    State(app): State<Arc<App>>,
    SourceIp(ip): SourceIp,
    ApiQuery(q): ApiQuery<oidc::CallbackQuery>,
) -> Result<Response, ApiError> {
    let (_session, sid) = oidc::callback(&app, &ip, q).await?;
    let mut resp = see_other("/")?;
    resp.headers_mut()
        .insert(SET_COOKIE, cookie(&app, Some(&sid))?);
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
