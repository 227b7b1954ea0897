//! `POST /api/v1/tokens`: a new member token scoped to workspaces the caller can see.
//! The plaintext is in the response only; the store keeps its SHA-256.

use std::sync::Arc;

use agentd_proto::api::{CreateTokenRequest, TokenCreated};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::error::{ApiError, ApiJson};
use super::workspaces::visible_workspace;
use crate::App;
use crate::auth::{MEMBER_TOKEN_PREFIX, Member, hash_token, new_token};
use crate::service::new_id;
use crate::store::TokenRow;

pub async fn create(
    State(app): State<Arc<App>>,
    Member(who): Member,
    ApiJson(req): ApiJson<CreateTokenRequest>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    if req.workspace_ids.is_empty() {
        return Err(ApiError::bad("workspace_ids is required"));
    }
    for wid in &req.workspace_ids {
        visible_workspace(&app, &who, wid).await?;
    }
    let token = new_token(MEMBER_TOKEN_PREFIX);
    let name = match req.name.trim() {
        "" => "token".to_string(),
        n => n.to_string(),
    };
    let row = TokenRow {
        id: new_id(),
        name: name.clone(),
        is_admin: false,
        created_at: app.now(),
    };
    let id = row.id.clone();
    app.store
        .create_token(row, hash_token(&token), req.workspace_ids.clone())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            id,
            name,
            token,
            workspace_ids: req.workspace_ids,
        }),
    ))
}
