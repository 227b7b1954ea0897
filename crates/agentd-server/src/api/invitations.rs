//! Invitations (docs/api.md, "Accounts"): `GET|POST /api/v1/workspaces/{wid}/invitations`
//! (pending ones; make one), `DELETE /api/v1/invitations/{id}` (revoke) and `POST
//! /api/v1/invitations/accept` (signed in, or not: then it makes an account and sets its
//! session cookie).

use std::sync::Arc;

use agentd_proto::accounts::{
    AcceptInvitationRequest, CreateInvitationRequest, Invitation, InvitationCreated,
};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ApiJson};
use crate::App;
use crate::auth::{MaybeMember, Member, SourceIp};
use crate::service::invitation;

pub async fn list(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(wid): Path<String>,
) -> Result<Json<Vec<Invitation>>, ApiError> {
    Ok(Json(invitation::pending(&app, &who, &wid).await?))
}

pub async fn create(
    State(app): State<Arc<App>>,
    Member(who): Member,
    SourceIp(ip): SourceIp,
    Path(wid): Path<String>,
    ApiJson(req): ApiJson<CreateInvitationRequest>,
) -> Result<(StatusCode, Json<InvitationCreated>), ApiError> {
    let created = invitation::create(
        &app,
        &who,
        &ip,
        &wid,
        req.role,
        req.email.as_deref(),
        req.expires_in_secs,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn revoke(
    State(app): State<Arc<App>>,
    Member(who): Member,
    SourceIp(ip): SourceIp,
    Path(id): Path<String>,
) -> Result<Json<Invitation>, ApiError> {
    Ok(Json(invitation::revoke(&app, &who, &ip, &id).await?))
}

pub async fn accept(
    State(app): State<Arc<App>>,
    MaybeMember(who): MaybeMember,
    SourceIp(ip): SourceIp,
    ApiJson(req): ApiJson<AcceptInvitationRequest>,
) -> Result<Response, ApiError> {
    let (accepted, sid) = invitation::accept(&app, who.as_ref(), &ip, &req).await?;
    let mut resp = (StatusCode::CREATED, Json(accepted)).into_response();
    if let Some(sid) = sid {
        resp.headers_mut()
            .insert(SET_COOKIE, super::accounts::cookie(&app, Some(&sid))?);
    }
    Ok(resp)
}
