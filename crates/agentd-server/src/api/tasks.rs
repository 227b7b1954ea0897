//! Tasks for users: show, transcript (`?after_seq=N&limit=L`, paged by `next`, polled by
//! `agentd task logs --follow`), diff, cancel and retry. `{id}` is any task reference
//! (`service::resolve`).

use std::collections::HashMap;
use std::sync::Arc;

use agentd_proto::TaskDiff;
use agentd_proto::api::{MESSAGES_DEFAULT_LIMIT, MESSAGES_MAX_LIMIT, MessagesPage, TaskInfo};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::error::{ApiError, ApiQuery};
use crate::App;
use crate::auth::{Caller, Member};
use crate::service::{diff, task};

pub async fn show(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(id): Path<String>,
) -> Result<Json<TaskInfo>, ApiError> {
    let t = task::load_for_reader(&app, &who, &id).await?;
    Ok(Json(task::info(&app, &t).await?))
}

pub async fn messages(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> Result<Json<MessagesPage>, ApiError> {
    let after = match q.get("after_seq") {
        None => 0,
        Some(s) => s
            .parse::<i64>()
            .map_err(|_| ApiError::bad("invalid after_seq: expected an integer"))?,
    };
    let limit = super::query_limit(&q, MESSAGES_DEFAULT_LIMIT, MESSAGES_MAX_LIMIT)?;
    let t = task::load_for_reader(&app, &who, &id).await?;
    Ok(Json(task::messages(&app, &t, after, limit).await?))
}

/// What the task's run changed (404 `no diff` when its final report carried none). Task
/// tokens may read the diffs of their own issue's tasks.
pub async fn diff(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<TaskDiff>, ApiError> {
    let t = task::load_for_reader(&app, &who, &id).await?;
    Ok(Json(diff::of_task(&app, &t).await?))
}

pub async fn cancel(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(id): Path<String>,
) -> Result<Json<TaskInfo>, ApiError> {
    let t = task::load_for_reader(&app, &who, &id).await?;
    let t = task::cancel_by(&app, &who, &t).await?;
    Ok(Json(task::info(&app, &t).await?))
}

pub async fn retry(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TaskInfo>), ApiError> {
    let t = task::load_for_reader(&app, &who, &id).await?;
    let new = task::retry(&app, &who, &t).await?;
    Ok((StatusCode::CREATED, Json(task::info(&app, &new).await?)))
}
