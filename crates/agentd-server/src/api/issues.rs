//! Issues and comments. Task tokens reach `GET /issues/{id}`, `PATCH /issues/{id}`
//! (status only) and the comments of their own issue; everything else refuses them.

use std::collections::HashMap;
use std::sync::Arc;

use agentd_proto::api::{
    CommentInfo, CreateCommentRequest, CreateIssueRequest, IssueDetail, IssueInfo,
    UpdateIssueRequest,
};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::error::{ApiError, ApiJson, ApiQuery};
use super::workspaces::visible_workspace;
use crate::App;
use crate::auth::{Member, Principal};
use crate::service::{comment_info, issue, issue_info, task, task_info};

pub async fn create(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(wid): Path<String>,
    ApiJson(req): ApiJson<CreateIssueRequest>,
) -> Result<(StatusCode, Json<IssueInfo>), ApiError> {
    let ws = visible_workspace(&app, &who, &wid).await?;
    let row = issue::create(&app, &ws.id, req).await?;
    Ok((StatusCode::CREATED, Json(issue_info(&row))))
}

pub async fn list(
    State(app): State<Arc<App>>,
    Member(who): Member,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> Result<Json<Vec<IssueInfo>>, ApiError> {
    let filter = match q.get("workspace_id") {
        Some(wid) => Some(vec![visible_workspace(&app, &who, wid).await?.id]),
        None => who.workspace_filter(),
    };
    let rows = app.store.list_issues(filter).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut info = issue_info(row);
        let tasks = app.store.list_issue_tasks(row.id.clone()).await?;
        info.latest_task = tasks.last().map(|t| Box::new(task_info(t)));
        out.push(info);
    }
    Ok(Json(out))
}

pub async fn show(
    State(app): State<Arc<App>>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<IssueDetail>, ApiError> {
    let i = issue::load_for(&app, &who, &id).await?;
    let tasks = app.store.list_issue_tasks(i.id.clone()).await?;
    let comments = app.store.list_comments(i.id.clone()).await?;
    let mut infos = Vec::with_capacity(tasks.len());
    for t in &tasks {
        infos.push(task::info(&app, t).await?);
    }
    Ok(Json(IssueDetail {
        issue: issue_info(&i),
        tasks: infos,
        comments: comments.iter().map(comment_info).collect(),
    }))
}

pub async fn update(
    State(app): State<Arc<App>>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateIssueRequest>,
) -> Result<Json<IssueInfo>, ApiError> {
    let row = issue::update(&app, &who, &id, req).await?;
    Ok(Json(issue_info(&row)))
}

pub async fn comments(
    State(app): State<Arc<App>>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<Vec<CommentInfo>>, ApiError> {
    let i = issue::load_for(&app, &who, &id).await?;
    let rows = app.store.list_comments(i.id).await?;
    Ok(Json(rows.iter().map(comment_info).collect()))
}

pub async fn comment(
    State(app): State<Arc<App>>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CreateCommentRequest>,
) -> Result<(StatusCode, Json<CommentInfo>), ApiError> {
    let c = issue::comment(&app, &who, &id, req.body).await?;
    Ok((StatusCode::CREATED, Json(comment_info(&c))))
}
