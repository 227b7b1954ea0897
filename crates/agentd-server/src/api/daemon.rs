//! `/api/daemon/*`: the daemon API of docs/protocol.md. Runtime-scoped calls answer 404
//! `runtime not found` for an unknown runtime, task-scoped calls 404 `task not found`;
//! any other store failure is a 500, so a transient fault never makes a daemon self-heal.
//! Every task report answers a `ReportResponse` (where the task stands).

use std::collections::HashMap;
use std::sync::Arc;

use agentd_proto::{
    ClaimResponse, CompleteRequest, DeregisterRequest, FailRequest, HeartbeatRequest,
    HeartbeatResponse, MessagesRequest, ProgressRequest, RecoverOrphansRequest,
    RecoverOrphansResponse, RegisterRequest, RegisterResponse, ReportResponse, ReposResponse,
    SessionRequest, TaskStatusResponse, UsageRequest,
};
use axum::Json;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::{ApiError, ApiJson, ApiOptionalJson, ApiQuery};
use crate::App;
use crate::auth::Daemon;
use crate::service::{runtime, task, workspace};

type St = State<Arc<App>>;

fn ok() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn register(
    State(app): St,
    Daemon(who): Daemon,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<Json<RegisterResponse>, ApiError> {
    Ok(Json(runtime::register(&app, &who, req).await?))
}

pub async fn deregister(
    State(app): St,
    Daemon(who): Daemon,
    ApiJson(req): ApiJson<DeregisterRequest>,
) -> Result<Json<Value>, ApiError> {
    if req.runtime_ids.is_empty() {
        return Err(ApiError::bad("runtime_ids is required"));
    }
    runtime::deregister(&app, &who, &req.runtime_ids).await?;
    Ok(ok())
}

pub async fn heartbeat(
    State(app): St,
    Daemon(who): Daemon,
    ApiJson(req): ApiJson<HeartbeatRequest>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    if req.runtime_id.is_empty() {
        return Err(ApiError::bad("runtime_id is required"));
    }
    let db_offline = runtime::heartbeat_check(&app, &who, &req.runtime_id).await?;
    match runtime::beat(&app, &req.runtime_id, req.active_task_ids, db_offline).await? {
        Some(ack) => Ok(Json(ack)),
        None => Err(ApiError::not_found(agentd_proto::RUNTIME_NOT_FOUND)),
    }
}

/// Largest inbound WS frame and message (ARCHITECTURE.md, "Hub"): a heartbeat is a few
/// hundred bytes; anything above this closes the socket.
pub const WS_MAX_MESSAGE_BYTES: usize = 64 * 1024;

pub async fn ws(
    State(app): St,
    Daemon(who): Daemon,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
    slot: Option<axum::Extension<crate::conn::ConnSlot>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let mut ids: Vec<String> = Vec::new();
    for key in ["runtime_ids", "runtime_id"] {
        for id in q.get(key).map(String::as_str).unwrap_or("").split(',') {
            let id = id.trim();
            if !id.is_empty() && !ids.iter().any(|x| x == id) {
                ids.push(id.to_string());
            }
        }
    }
    if ids.is_empty() {
        return Err(ApiError::bad("runtime_ids required"));
    }
    for id in &ids {
        runtime::load_for(&app, &who, id).await?;
    }
    // Not a WebSocket handshake: the same JSON error body as every other refusal.
    let upgrade = upgrade.map_err(|rej| ApiError::Rejected(rej.status(), rej.body_text()))?;
    let tracker = app.tracker.clone();
    Ok(upgrade
        .max_frame_size(WS_MAX_MESSAGE_BYTES)
        .max_message_size(WS_MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| {
            tracker.track_future(async move {
                // The socket keeps its connection's slot of `max_connections` until it closes.
                let _slot = slot;
                crate::hub::run_connection(app, socket, ids).await
            })
        })
        .into_response())
}

pub async fn repos(
    State(app): St,
    Daemon(who): Daemon,
    Path(wid): Path<String>,
) -> Result<Json<ReposResponse>, ApiError> {
    Ok(Json(workspace::repos_for_daemon(&app, &who, wid).await?))
}

pub async fn claim(
    State(app): St,
    Daemon(who): Daemon,
    Path(rid): Path<String>,
    headers: HeaderMap,
) -> Result<Json<ClaimResponse>, ApiError> {
    // Cached like a heartbeat's: a claim arrives every poll and after every wake-up.
    let rt = runtime::load_cached_for(&app, &who, &rid).await?;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string);
    if key.as_ref().is_some_and(|k| k.len() > 200) {
        return Err(ApiError::bad(
            "Idempotency-Key is longer than 200 characters",
        ));
    }
    let task = task::claim(&app, &rt, key).await?;
    match task {
        Some(_) => &app.metrics.claims,
        None => &app.metrics.empty_claims,
    }
    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(Json(ClaimResponse { task }))
}

pub async fn recover_orphans(
    State(app): St,
    Daemon(who): Daemon,
    Path(rid): Path<String>,
    ApiOptionalJson(req): ApiOptionalJson<RecoverOrphansRequest>,
) -> Result<Json<RecoverOrphansResponse>, ApiError> {
    // Multica's daemon sends `{}` or nothing: that holds no task.
    let req = req.unwrap_or_default();
    let rt = runtime::load_for(&app, &who, &rid).await?;
    let failed = task::recover_orphans(&app, &rt.id, req.active_task_ids).await?;
    Ok(Json(RecoverOrphansResponse {
        failed,
        requeued: 0,
    }))
}

pub async fn start(
    State(app): St,
    Daemon(who): Daemon,
    Path(id): Path<String>,
) -> Result<Json<ReportResponse>, ApiError> {
    let t = task::load_for(&app, &who, &id).await?;
    Ok(Json(task::start(&app, &t).await?))
}

pub async fn progress(
    State(app): St,
    Daemon(who): Daemon,
    Path(id): Path<String>,
    ApiJson(_req): ApiJson<ProgressRequest>,
) -> Result<Json<ReportResponse>, ApiError> {
    // Progress is a live hint for a board; it is not persisted (it renews the lease).
    let t = task::load_for(&app, &who, &id).await?;
    Ok(Json(task::held(&app, &t).await?))
}

pub async fn messages(
    State(app): St,
    Daemon(who): Daemon,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<MessagesRequest>,
) -> Result<Json<ReportResponse>, ApiError> {
    let t = task::load_for(&app, &who, &id).await?;
    Ok(Json(task::add_messages(&app, &t, req).await?))
}

pub async fn usage(
    State(app): St,
    Daemon(who): Daemon,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UsageRequest>,
) -> Result<Json<ReportResponse>, ApiError> {
    let t = task::load_for(&app, &who, &id).await?;
    Ok(Json(task::add_usage(&app, &t, req).await?))
}

pub async fn session(
    State(app): St,
    Daemon(who): Daemon,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SessionRequest>,
) -> Result<Json<ReportResponse>, ApiError> {
    let t = task::load_for(&app, &who, &id).await?;
    if req.session_id.is_none() && req.work_dir.is_none() {
        return Err(ApiError::bad("session_id or work_dir required"));
    }
    Ok(Json(task::pin_session(&app, &t, req).await?))
}

pub async fn complete(
    State(app): St,
    Daemon(who): Daemon,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CompleteRequest>,
) -> Result<Json<ReportResponse>, ApiError> {
    let t = task::load_for(&app, &who, &id).await?;
    Ok(Json(task::complete(&app, &t, req).await?))
}

pub async fn fail(
    State(app): St,
    Daemon(who): Daemon,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<FailRequest>,
) -> Result<Json<ReportResponse>, ApiError> {
    let t = task::load_for(&app, &who, &id).await?;
    Ok(Json(task::fail(&app, &t, req).await?))
}

pub async fn status(
    State(app): St,
    Daemon(who): Daemon,
    Path(id): Path<String>,
) -> Result<Json<TaskStatusResponse>, ApiError> {
    let t = task::load_for(&app, &who, &id).await?;
    Ok(Json(TaskStatusResponse { status: t.status }))
}
