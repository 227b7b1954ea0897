//! Issues and comments, and the triggers that queue work: an issue assigned to an agent
//! (at creation or later) queues a task unless its status is backlog, done or cancelled;
//! a member's comment on an assigned issue queues one (unless one is already queued);
//! reassignment cancels the old agent's tasks; status `cancelled` cancels all of them.
//! An agent (task token) may read its own issue, comment on it and change its status,
//! which never queues anything.

use agentd_proto::api::{CreateIssueRequest, ISSUE_STATUSES, UpdateIssueRequest};

use crate::App;
use crate::api::error::ApiError;
use crate::auth::Principal;
use crate::service::{is_uuid, issue_event, new_id, task};
use crate::store::{AgentRow, CommentRow, IssueRow};

fn check_status(s: &str) -> Result<(), ApiError> {
    if ISSUE_STATUSES.contains(&s) {
        Ok(())
    } else {
        Err(ApiError::bad(format!(
            "invalid status {s:?}; expected one of {}",
            ISSUE_STATUSES.join(", ")
        )))
    }
}

fn wants_work(status: &str) -> bool {
    !matches!(status, "backlog" | "done" | "cancelled")
}

/// Loads an issue the caller may see: a task token sees only its own issue.
pub async fn load_for(app: &App, who: &Principal, issue_id: &str) -> Result<IssueRow, ApiError> {
    if !is_uuid(issue_id) {
        return Err(ApiError::bad("invalid issue_id"));
    }
    let visible = |i: &IssueRow| match who {
        Principal::Task(t) => t.issue_id == i.id,
        _ => who.sees_workspace(&i.workspace_id),
    };
    match app.store.get_issue(issue_id.to_string()).await? {
        Some(i) if visible(&i) => Ok(i),
        _ => Err(ApiError::not_found("issue not found")),
    }
}

async fn agent_in(app: &App, workspace_id: &str, agent_id: &str) -> Result<AgentRow, ApiError> {
    if !is_uuid(agent_id) {
        return Err(ApiError::bad("invalid assignee_agent_id"));
    }
    match app.store.get_agent(agent_id.to_string()).await? {
        Some(a) if a.workspace_id == workspace_id => Ok(a),
        _ => Err(ApiError::not_found("agent not found")),
    }
}

pub async fn create(
    app: &App,
    workspace_id: &str,
    req: CreateIssueRequest,
) -> Result<IssueRow, ApiError> {
    if req.title.trim().is_empty() {
        return Err(ApiError::bad("title is required"));
    }
    let status = req.status.unwrap_or_else(|| "todo".into());
    check_status(&status)?;
    let agent = match &req.assignee_agent_id {
        Some(id) => Some(agent_in(app, workspace_id, id).await?),
        None => None,
    };
    let now = app.now();
    let issue = IssueRow {
        id: new_id(),
        workspace_id: workspace_id.to_string(),
        title: req.title.trim().to_string(),
        description: req.description,
        status,
        assignee_agent_id: agent.as_ref().map(|a| a.id.clone()),
        created_at: now,
        updated_at: now,
    };
    app.store.create_issue(issue.clone()).await?;
    issue_event(app, "issue", &issue);
    if let Some(agent) = agent
        && wants_work(&issue.status)
    {
        task::enqueue(app, &issue, &agent, None, None).await?;
    }
    Ok(issue)
}

pub async fn update(
    app: &App,
    who: &Principal,
    issue_id: &str,
    req: UpdateIssueRequest,
) -> Result<IssueRow, ApiError> {
    let mut issue = load_for(app, who, issue_id).await?;
    if matches!(who, Principal::Task(_))
        && (req.title.is_some() || req.description.is_some() || req.assignee_agent_id.is_some())
    {
        return Err(ApiError::Forbidden(
            "a task token may only change the issue's status".into(),
        ));
    }
    if let Some(s) = &req.status {
        check_status(s)?;
    }
    if let Some(t) = &req.title
        && t.trim().is_empty()
    {
        return Err(ApiError::bad("title must not be empty"));
    }
    let new_agent = match &req.assignee_agent_id {
        Some(id) if Some(id) != issue.assignee_agent_id.as_ref() => {
            Some(agent_in(app, &issue.workspace_id, id).await?)
        }
        _ => None,
    };
    let old_status = issue.status.clone();
    if let Some(t) = req.title {
        issue.title = t.trim().to_string();
    }
    if let Some(d) = req.description {
        issue.description = d;
    }
    if let Some(s) = req.status {
        issue.status = s;
    }
    if let Some(a) = &new_agent {
        issue.assignee_agent_id = Some(a.id.clone());
    }
    issue.updated_at = app.now();
    app.store.update_issue(issue.clone()).await?;
    issue_event(app, "issue", &issue);

    if issue.status == "cancelled" && old_status != "cancelled" {
        task::cancel_issue_tasks(app, &issue.id, "issue was cancelled").await?;
    } else if let Some(agent) = new_agent {
        task::cancel_issue_tasks(app, &issue.id, "issue was reassigned").await?;
        if wants_work(&issue.status) {
            task::enqueue(app, &issue, &agent, None, None).await?;
        }
    } else if matches!(who, Principal::Member { .. })
        && old_status == "backlog"
        && wants_work(&issue.status)
        && let Some(aid) = &issue.assignee_agent_id
        && let Some(agent) = app.store.get_agent(aid.clone()).await?
    {
        task::enqueue(app, &issue, &agent, None, None).await?;
    }
    Ok(issue)
}

pub async fn comment(
    app: &App,
    who: &Principal,
    issue_id: &str,
    body: String,
) -> Result<CommentRow, ApiError> {
    let issue = load_for(app, who, issue_id).await?;
    if body.trim().is_empty() {
        return Err(ApiError::bad("body is required"));
    }
    let (author_type, author_id, author_name) = match who {
        Principal::Task(t) => {
            let name = app
                .store
                .get_agent(t.agent_id.clone())
                .await?
                .map(|a| a.name)
                .unwrap_or_else(|| "agent".into());
            ("agent", t.agent_id.clone(), name)
        }
        Principal::Member { token_id, name, .. } => ("member", token_id.clone(), name.clone()),
    };
    let c = CommentRow {
        id: new_id(),
        issue_id: issue.id.clone(),
        author_type: author_type.into(),
        author_id,
        author_name,
        body,
        created_at: app.now(),
    };
    app.store.add_comment(c.clone()).await?;
    issue_event(app, "comment", &issue);
    if author_type == "member"
        && issue.status != "done"
        && issue.status != "cancelled"
        && let Some(aid) = &issue.assignee_agent_id
        && let Some(agent) = app.store.get_agent(aid.clone()).await?
    {
        let tasks = app.store.list_issue_tasks(issue.id.clone()).await?;
        let already_queued = tasks
            .iter()
            .any(|t| t.agent_id == agent.id && t.status == "queued");
        if !already_queued {
            task::enqueue(app, &issue, &agent, Some(c.id.clone()), None).await?;
        }
    }
    Ok(c)
}
