//! Runtimes (list, delete) and agents (create, list, show, update) of a workspace.

use std::sync::Arc;

use agentd_proto::api::{AgentInfo, CreateAgentRequest, RuntimeInfo, UpdateAgentRequest};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::error::{ApiError, ApiJson};
use crate::App;
use crate::auth::Member;
use crate::service::{agent, runtime, runtime_info};

pub async fn list_runtimes(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(wid): Path<String>,
) -> Result<Json<Vec<RuntimeInfo>>, ApiError> {
    let rows = runtime::list(&app, &who, &wid).await?;
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
    let row = agent::create(&app, &who, &wid, req).await?;
    let info = agent::infos(&app, std::slice::from_ref(&row)).await?;
    Ok((
        StatusCode::CREATED,
        Json(info.into_iter().next().unwrap_or_default()),
    ))
}

pub async fn list(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(wid): Path<String>,
) -> Result<Json<Vec<AgentInfo>>, ApiError> {
    let rows = agent::list(&app, &who, &wid).await?;
    Ok(Json(agent::infos(&app, &rows).await?))
}

pub async fn show(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(id): Path<String>,
) -> Result<Json<AgentInfo>, ApiError> {
    let row = agent::load_for(&app, &who, &id).await?;
    let info = agent::infos(&app, std::slice::from_ref(&row)).await?;
    Ok(Json(info.into_iter().next().unwrap_or_default()))
}

pub async fn update(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateAgentRequest>,
) -> Result<Json<AgentInfo>, ApiError> {
    let row = agent::update(&app, &who, &id, req).await?;
    let info = agent::infos(&app, std::slice::from_ref(&row)).await?;
    Ok(Json(info.into_iter().next().unwrap_or_default()))
}
