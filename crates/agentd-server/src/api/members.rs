//! Members of a workspace (docs/api.md, "Accounts"): `GET
//! /api/v1/workspaces/{wid}/members`, `PUT|DELETE /api/v1/workspaces/{wid}/members/{uid}`
//! (`uid` a user id or email).

use std::sync::Arc;

use agentd_proto::accounts::{Membership, SetRoleRequest};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::error::{ApiError, ApiJson};
use crate::App;
use crate::auth::{Member, SourceIp};
use crate::service::member;

pub async fn list(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(wid): Path<String>,
) -> Result<Json<Vec<Membership>>, ApiError> {
    Ok(Json(member::list(&app, &who, &wid).await?))
}

pub async fn set(
    State(app): State<Arc<App>>,
    Member(who): Member,
    SourceIp(ip): SourceIp,
    Path((wid, uid)): Path<(String, String)>,
    ApiJson(req): ApiJson<SetRoleRequest>,
) -> Result<Json<Membership>, ApiError> {
    Ok(Json(
        member::set_role(&app, &who, &ip, &wid, &uid, req.role).await?,
    ))
}

pub async fn remove(
    State(app): State<Arc<App>>,
    Member(who): Member,
    SourceIp(ip): SourceIp,
    Path((wid, uid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    member::remove(&app, &who, &ip, &wid, &uid).await?;
    Ok(StatusCode::NO_CONTENT)
}
