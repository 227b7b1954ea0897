//! Issues and comments. Task tokens reach `GET /issues/{id}`, `PATCH /issues/{id}`
//! (status only) and the comments of their own issue; everything else refuses them.

use std::collections::HashMap;
use std::sync::Arc;

use agentd_proto::api::{
    CommentInfo, CreateCommentRequest, CreateIssueRequest, ISSUES_DEFAULT_LIMIT, ISSUES_MAX_LIMIT,
    IssueDetail, IssueInfo, IssuesPage, UpdateIssueRequest,
};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::error::{ApiError, ApiJson, ApiQuery};
use crate::App;
use crate::auth::{Caller, Member};
use crate::service::{comment_info, issue, issue_info, workspace};

pub async fn create(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(wid): Path<String>,
    ApiJson(req): ApiJson<CreateIssueRequest>,
) -> Result<(StatusCode, Json<IssueInfo>), ApiError> {
    let ws = workspace::visible(&app, &who, &wid).await?;
    let row = issue::create(&app, &who, &ws.id, req).await?;
    Ok((StatusCode::CREATED, Json(issue_info(&row))))
}

/// `GET /api/v1/issues?workspace_id=W&status=S&assignee=A&q=TEXT&limit=N&after=C`: one
/// [`IssuesPage`] of the issues that pass every given filter.
pub async fn list(
    State(app): State<Arc<App>>,
    Member(who): Member,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> Result<Json<IssuesPage>, ApiError> {
    let limit = super::query_limit(&q, ISSUES_DEFAULT_LIMIT, ISSUES_MAX_LIMIT)?;
    let after = q
        .get("after")
        .map(|c| issue::IssueCursor::parse(c))
        .transpose()?;
    let query = issue::ListQuery {
        workspace_id: q.get("workspace_id").cloned(),
        status: q.get("status").cloned(),
        assignee: q.get("assignee").cloned(),
        q: q.get("q").cloned(),
    };
    Ok(Json(issue::list(&app, &who, query, after, limit).await?))
}

pub async fn show(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<IssueDetail>, ApiError> {
    Ok(Json(issue::detail(&app, &who, &id).await?))
}

pub async fn update(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateIssueRequest>,
) -> Result<Json<IssueInfo>, ApiError> {
    let row = issue::update(&app, &who, &id, req).await?;
    Ok(Json(issue_info(&row)))
}

pub async fn comments(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<CommentInfo>>, ApiError> {
    let rows = issue::comments(&app, &who, &id).await?;
    Ok(Json(rows.iter().map(comment_info).collect()))
}

pub async fn comment(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CreateCommentRequest>,
) -> Result<(StatusCode, Json<CommentInfo>), ApiError> {
    let c = issue::comment(&app, &who, &id, req.body).await?;
    Ok((StatusCode::CREATED, Json(comment_info(&c))))
}
