//! `POST /api/v1/tokens`: a new member token scoped to workspaces the caller can see.
//! The plaintext is in the response only; the store keeps its SHA-256.

use std::sync::Arc;

use agentd_proto::api::{CreateTokenRequest, TokenCreated};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::error::{ApiError, ApiJson};
use crate::App;
use crate::auth::Member;
use crate::service::token;

pub async fn create(
    State(app): State<Arc<App>>,
    Member(who): Member,
    ApiJson(req): ApiJson<CreateTokenRequest>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(token::create(&app, &who, req).await?),
    ))
}
