//! Runtimes (list, delete) and agents (create, list, show, update) of a workspace.

use std::sync::Arc;

use agentd_proto::api::{AgentInfo, CreateAgentRequest, RuntimeInfo, UpdateAgentRequest};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::error::{ApiError, ApiJson};
use crate::App;
use crate::auth::{Member, SourceIp};
use crate::service::{agent, audit, runtime, runtime_info};

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
    SourceIp(ip): SourceIp,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rt = runtime::delete(&app, &who, &id).await?;
    audit::record(
        &app,
        audit::Entry::new(Some(&who), "runtime.delete", &ip)
            .workspace(&rt.workspace_id)
            .target(&rt.id)
            .detail(json!({"name": rt.name, "provider": rt.provider, "daemon_id": rt.daemon_id})),
    )
    .await;
    Ok(Json(json!({"status": "ok"})))
}

pub async fn create(
    State(app): State<Arc<App>>,
    Member(who): Member,
    SourceIp(ip): SourceIp,
    Path(wid): Path<String>,
    ApiJson(req): ApiJson<CreateAgentRequest>,
) -> Result<(StatusCode, Json<AgentInfo>), ApiError> {
    let row = agent::create(&app, &who, &wid, req).await?;
    audit::record(
        &app,
        audit::Entry::new(Some(&who), "agent.create", &ip)
            .workspace(&row.workspace_id)
            .target(&row.id)
            .detail(
                json!({"name": row.name, "env_keys": env_keys(&row.custom_env),
                           "args": json_list(&row.custom_args)}),
            ),
    )
    .await;
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
    SourceIp(ip): SourceIp,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateAgentRequest>,
) -> Result<Json<AgentInfo>, ApiError> {
    let (env_changed, args_changed) = (req.custom_env.is_some(), req.custom_args.is_some());
    let row = agent::update(&app, &who, &id, req).await?;
    // What an agent runs with: its environment (keys only, never values) and arguments.
    if env_changed || args_changed {
        audit::record(
            &app,
            audit::Entry::new(Some(&who), "agent.env_args", &ip)
                .workspace(&row.workspace_id)
                .target(&row.id)
                .detail(json!({
                    "name": row.name,
                    "env_keys": env_changed.then(|| env_keys(&row.custom_env)),
                    "args": args_changed.then(|| json_list(&row.custom_args)),
                })),
        )
        .await;
    }
    let info = agent::infos(&app, std::slice::from_ref(&row)).await?;
    Ok(Json(info.into_iter().next().unwrap_or_default()))
}

/// The keys of an agent's stored `custom_env` (a JSON object), for the audit log.
fn env_keys(custom_env: &str) -> Vec<String> {
    serde_json::from_str::<serde_json::Map<String, Value>>(custom_env)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// An agent's stored `custom_args` (a JSON array) as JSON, for the audit log.
fn json_list(custom_args: &str) -> Value {
    serde_json::from_str(custom_args).unwrap_or(Value::Null)
}
