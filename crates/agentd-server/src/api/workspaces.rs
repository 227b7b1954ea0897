//! Workspaces: `GET /api/workspaces` (daemon), `GET|POST /api/v1/workspaces`,
//! `GET /api/v1/workspaces/{wid}`, `GET /api/v1/me`. A member token that creates a
//! workspace is granted access to it.

use std::sync::Arc;

use agentd_proto::Workspace;
use agentd_proto::api::{CreateWorkspaceRequest, WhoAmI, WorkspaceInfo};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::error::{ApiError, ApiJson};
use crate::App;
use crate::auth::{Member, Principal};
use crate::service::{is_uuid, new_id, workspace_info};
use crate::store::WorkspaceRow;

pub async fn me(who: Principal) -> Json<WhoAmI> {
    Json(match who {
        Principal::Member {
            admin, workspaces, ..
        } => WhoAmI {
            kind: if admin { "admin" } else { "member" }.into(),
            workspace_ids: workspaces,
        },
        Principal::Task(t) => WhoAmI {
            kind: "task".into(),
            workspace_ids: vec![t.workspace_id],
        },
    })
}

pub async fn list_for_daemon(
    State(app): State<Arc<App>>,
    Member(who): Member,
) -> Result<Json<Vec<Workspace>>, ApiError> {
    let rows = app.store.list_workspaces(who.workspace_filter()).await?;
    Ok(Json(
        rows.into_iter()
            .map(|w| Workspace {
                id: w.id,
                name: w.name,
            })
            .collect(),
    ))
}

pub async fn list(
    State(app): State<Arc<App>>,
    Member(who): Member,
) -> Result<Json<Vec<WorkspaceInfo>>, ApiError> {
    let rows = app.store.list_workspaces(who.workspace_filter()).await?;
    Ok(Json(rows.iter().map(workspace_info).collect()))
}

pub async fn show(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(wid): Path<String>,
) -> Result<Json<WorkspaceInfo>, ApiError> {
    let ws = visible_workspace(&app, &who, &wid).await?;
    Ok(Json(workspace_info(&ws)))
}

pub async fn create(
    State(app): State<Arc<App>>,
    Member(who): Member,
    ApiJson(req): ApiJson<CreateWorkspaceRequest>,
) -> Result<(StatusCode, Json<WorkspaceInfo>), ApiError> {
    let name = req.name.trim();
    if name.is_empty() {
        return Err(ApiError::bad("name is required"));
    }
    let row = WorkspaceRow {
        id: new_id(),
        name: name.to_string(),
        repos: serde_json::to_string(&req.repos).unwrap_or_else(|_| "[]".into()),
        created_at: app.now(),
    };
    let grant = match &who {
        Principal::Member {
            admin: false,
            token_id,
            ..
        } => Some(token_id.clone()),
        _ => None,
    };
    app.store.create_workspace(row.clone(), grant).await?;
    Ok((StatusCode::CREATED, Json(workspace_info(&row))))
}

/// A workspace the caller can see; 404 `workspace not found` otherwise.
pub async fn visible_workspace(
    app: &App,
    who: &Principal,
    wid: &str,
) -> Result<WorkspaceRow, ApiError> {
    if !is_uuid(wid) {
        return Err(ApiError::bad("invalid workspace_id"));
    }
    match app.store.get_workspace(wid.to_string()).await? {
        Some(ws) if who.sees_workspace(&ws.id) => Ok(ws),
        _ => Err(ApiError::not_found(agentd_proto::WORKSPACE_NOT_FOUND)),
    }
}
