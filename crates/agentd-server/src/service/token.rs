//! Member tokens: a new token is scoped to workspaces its creator can see. The plaintext
//! is returned once; the store keeps its SHA-256.

use agentd_proto::api::{CreateTokenRequest, TokenCreated};

use crate::App;
use crate::auth::{MEMBER_TOKEN_PREFIX, Principal, hash_token, new_token};
use crate::service::{Error, new_id, workspace};
use crate::store::TokenRow;

pub async fn create(
    app: &App,
    who: &Principal,
    req: CreateTokenRequest,
) -> Result<TokenCreated, Error> {
    if req.workspace_ids.is_empty() {
        return Err(Error::bad("workspace_ids is required"));
    }
    for wid in &req.workspace_ids {
        workspace::visible(app, who, wid).await?;
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
    Ok(TokenCreated {
        id,
        name,
        token,
        workspace_ids: req.workspace_ids,
    })
}
