//! Tokens: `GET|POST /api/v1/tokens`, `DELETE /api/v1/tokens/{id}` (revoke) and
//! `POST /api/v1/admin/rotate-token`, and board sign-in: `POST /api/v1/signin-codes`
//! (member or admin) and `POST /api/v1/signin` (no bearer token: the code is the
//! credential). The plaintext is in the creating response only; the store keeps its
//! SHA-256.

use std::sync::Arc;

use agentd_proto::api::{CreateTokenRequest, SigninCode, SigninRequest, TokenCreated, TokenInfo};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::error::{ApiError, ApiJson};
use crate::App;
use crate::auth::{Admin, Member, SourceIp};
use crate::service::token;

pub async fn create(
    State(app): State<Arc<App>>,
    Member(who): Member,
    SourceIp(ip): SourceIp,
    ApiJson(req): ApiJson<CreateTokenRequest>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(token::create(&app, &who, &ip, req).await?),
    ))
}

pub async fn list(
    State(app): State<Arc<App>>,
    Member(who): Member,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    Ok(Json(token::list(&app, &who).await?))
}

pub async fn revoke(
    State(app): State<Arc<App>>,
    Member(who): Member,
    SourceIp(ip): SourceIp,
    Path(id): Path<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    Ok(Json(token::revoke(&app, &who, &ip, &id).await?))
}

pub async fn rotate_admin(
    State(app): State<Arc<App>>,
    Admin(who): Admin,
) -> Result<Json<TokenCreated>, ApiError> {
    Ok(Json(token::rotate_admin(&app, &who).await?))
}

pub async fn signin_code(
    State(app): State<Arc<App>>,
    Member(who): Member,
) -> Result<(StatusCode, Json<SigninCode>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(token::signin_code(&app, &who).await?),
    ))
}

/// No bearer token: the one-time code in the body is the credential.
pub async fn signin(
    State(app): State<Arc<App>>,
    ApiJson(req): ApiJson<SigninRequest>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(token::signin(&app, &req.code).await?),
    ))
}
