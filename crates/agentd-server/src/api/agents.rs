//! Runtimes (list, delete) and agents (create, list, show, update) of a workspace.

use std::sync::Arc;

use agentd_proto::api::{AgentInfo, CreateAgentRequest, RuntimeInfo, UpdateAgentRequest};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::error::{ApiError, ApiJson};
use super::workspaces::visible_workspace;
use crate::App;
use crate::auth::Member;
use crate::service::{agent_event, agent_info, is_uuid, new_id, runtime, runtime_info};
use crate::store::AgentRow;

pub async fn list_runtimes(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(wid): Path<String>,
) -> Result<Json<Vec<RuntimeInfo>>, ApiError> {
    let ws = visible_workspace(&app, &who, &wid).await?;
    let rows = app.store.list_runtimes(ws.id, None).await?;
    Ok(Json(rows.iter().map(runtime_info).collect()))
}

pub async fn delete_runtime(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    runtime::delete(&app, &who, &id).await?;
    Ok(Json(json!({"status": "ok"})))
}

pub async fn create(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(wid): Path<String>,
    ApiJson(req): ApiJson<CreateAgentRequest>,
) -> Result<(StatusCode, Json<AgentInfo>), ApiError> {
    let ws = visible_workspace(&app, &who, &wid).await?;
    if req.name.trim().is_empty() {
        return Err(ApiError::bad("name is required"));
    }
    if !is_uuid(&req.runtime_id) {
        return Err(ApiError::bad("invalid runtime_id"));
    }
    match app.store.get_runtime(req.runtime_id.clone()).await? {
        Some(rt) if rt.workspace_id == ws.id => {}
        _ => return Err(ApiError::not_found(agentd_proto::RUNTIME_NOT_FOUND)),
    }
    let row = AgentRow {
        id: new_id(),
        workspace_id: ws.id,
        runtime_id: req.runtime_id,
        name: req.name.trim().to_string(),
        instructions: req.instructions,
        model: req.model,
        custom_args: serde_json::to_string(&req.custom_args).unwrap_or_else(|_| "[]".into()),
        custom_env: serde_json::to_string(&req.custom_env).unwrap_or_else(|_| "{}".into()),
        created_at: app.now(),
    };
    app.store.create_agent(row.clone()).await?;
    agent_event(&app, &row);
    Ok((StatusCode::CREATED, Json(agent_info(&row))))
}

pub async fn list(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(wid): Path<String>,
) -> Result<Json<Vec<AgentInfo>>, ApiError> {
    let ws = visible_workspace(&app, &who, &wid).await?;
    let rows = app.store.list_agents(ws.id).await?;
    Ok(Json(rows.iter().map(agent_info).collect()))
}

pub async fn show(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(id): Path<String>,
) -> Result<Json<AgentInfo>, ApiError> {
    if !is_uuid(&id) {
        return Err(ApiError::bad("invalid agent_id"));
    }
    match app.store.get_agent(id).await? {
        Some(a) if who.sees_workspace(&a.workspace_id) => Ok(Json(agent_info(&a))),
        _ => Err(ApiError::not_found("agent not found")),
    }
}

pub async fn update(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateAgentRequest>,
) -> Result<Json<AgentInfo>, ApiError> {
    if !is_uuid(&id) {
        return Err(ApiError::bad("invalid agent_id"));
    }
    let mut a = match app.store.get_agent(id).await? {
        Some(a) if who.sees_workspace(&a.workspace_id) => a,
        _ => return Err(ApiError::not_found("agent not found")),
    };
    if let Some(rid) = req.runtime_id {
        if !is_uuid(&rid) {
            return Err(ApiError::bad("invalid runtime_id"));
        }
        match app.store.get_runtime(rid.clone()).await? {
            Some(rt) if rt.workspace_id == a.workspace_id => a.runtime_id = rt.id,
            _ => return Err(ApiError::not_found(agentd_proto::RUNTIME_NOT_FOUND)),
        }
    }
    if let Some(n) = req.name {
        if n.trim().is_empty() {
            return Err(ApiError::bad("name must not be empty"));
        }
        a.name = n.trim().to_string();
    }
    if let Some(i) = req.instructions {
        a.instructions = i;
    }
    if let Some(m) = req.model {
        a.model = m;
    }
    if let Some(args) = req.custom_args {
        a.custom_args = serde_json::to_string(&args).unwrap_or_else(|_| "[]".into());
    }
    if let Some(env) = req.custom_env {
        a.custom_env = serde_json::to_string(&env).unwrap_or_else(|_| "{}".into());
    }
    for t in app.store.update_agent(a.clone()).await? {
        app.hub.task_available(&t.runtime_id, &t.id);
    }
    agent_event(&app, &a);
    Ok(Json(agent_info(&a)))
}
