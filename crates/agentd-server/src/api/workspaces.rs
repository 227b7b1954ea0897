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
use agentd_proto::accounts::WorkspaceRole;

use crate::auth::{Caller, Daemon, Member, Principal, SourceIp};
use crate::service::{self, workspace, workspace_info};

pub async fn me(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
) -> Result<Json<WhoAmI>, ApiError> {
    let name = service::actor_of(&app, &who).await?.name;
    let kind = match &who {
        Principal::Token { kind, .. } => kind.as_str().to_string(),
        Principal::User(_) => "user".into(),
        Principal::Task(_) => "task".into(),
    };
    let workspace_ids = match (&who, who.workspace_filter()) {
        (Principal::Task(t), _) => vec![t.workspace_id.clone()],
        (_, Some(ids)) => ids,
        (_, None) => app
            .store
            .list_workspaces(None)
            .await
            .map_err(service::Error::from)?
            .into_iter()
            .map(|w| w.id)
            .collect(),
    };
    let roles = workspace_ids
        .iter()
        .filter_map(|w| {
            who.role_in(w).map(|role| WorkspaceRole {
                workspace_id: w.clone(),
                role,
            })
        })
        .collect();
    Ok(Json(WhoAmI {
        kind,
        workspace_ids,
        user_id: who.user_id().map(str::to_string),
        roles,
        name,
    }))
}

pub async fn list_for_daemon(
    State(app): State<Arc<App>>,
    Daemon(who): Daemon,
) -> Result<Json<Vec<Workspace>>, ApiError> {
    let rows = workspace::list(&app, &who).await?;
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
    let rows = workspace::list(&app, &who).await?;
    Ok(Json(rows.iter().map(workspace_info).collect()))
}

pub async fn show(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(wid): Path<String>,
) -> Result<Json<WorkspaceInfo>, ApiError> {
    let ws = workspace::visible(&app, &who, &wid).await?;
    Ok(Json(workspace_info(&ws)))
}

pub async fn create(
    State(app): State<Arc<App>>,
    Member(who): Member,
    SourceIp(ip): SourceIp,
    ApiJson(req): ApiJson<CreateWorkspaceRequest>,
) -> Result<(StatusCode, Json<WorkspaceInfo>), ApiError> {
    let row = workspace::create(&app, &who, req).await?;
    service::audit::record(
        &app,
        service::audit::Entry::new(Some(&who), "workspace.create", &ip)
            .workspace(&row.id)
            .target(&row.key)
            .detail(serde_json::json!({"name": row.name, "repos": serde_json::from_str::<serde_json::Value>(&row.repos).unwrap_or_default()})),
    )
    .await;
    Ok((StatusCode::CREATED, Json(workspace_info(&row))))
}
