//! Issues and comments, and the triggers that queue work: an issue assigned to an agent
//! (at creation or later) queues a task unless its status is backlog, done or cancelled;
//! a member's comment on an assigned issue queues one (unless one is already queued);
//! reassignment cancels the old agent's tasks; status `cancelled` cancels all of them.
//! An agent (task token) may read its own issue, comment on it and change its status,
//! which never queues anything.

use std::collections::HashMap;

use agentd_proto::TaskStatus;
use agentd_proto::api::{
    CreateIssueRequest, DiffStat, ISSUE_STATUSES, IssueDetail, IssuesPage, UpdateIssueRequest,
};

use crate::App;
use crate::auth::Principal;
use crate::service::{
    Error, comment_info, is_uuid, issue_event, issue_info, new_id, task, task_info, workspace,
};
use crate::store::{AgentRow, CommentRow, IssueRow, TaskRow};

fn check_status(s: &str) -> Result<(), Error> {
    if ISSUE_STATUSES.contains(&s) {
        Ok(())
    } else {
        Err(Error::bad(format!(
            "invalid status {s:?}; expected one of {}",
            ISSUE_STATUSES.join(", ")
        )))
    }
}

fn wants_work(status: &str) -> bool {
    !matches!(status, "backlog" | "done" | "cancelled")
}

/// Loads an issue the caller may see: a task token sees only its own issue.
pub async fn load_for(app: &App, who: &Principal, issue_id: &str) -> Result<IssueRow, Error> {
    if !is_uuid(issue_id) {
        return Err(Error::bad("invalid issue_id"));
    }
    let visible = |i: &IssueRow| match who {
        Principal::Task(t) => t.issue_id == i.id,
        _ => who.sees_workspace(&i.workspace_id),
    };
    match app.store.get_issue(issue_id.to_string()).await? {
        Some(i) if visible(&i) => Ok(i),
        _ => Err(Error::NotFound("issue not found")),
    }
}

/// Where a page of issues starts: after the issue created at `.0` with id `.1`. On the
/// wire an opaque `"<created_at>_<id>"` ([`IssueCursor::parse`], [`IssueCursor::encode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueCursor(pub i64, pub String);

impl IssueCursor {
    pub fn encode(&self) -> String {
        format!("{}_{}", self.0, self.1)
    }

    /// A cursor this server gave out (`next`); anything else is bad input.
    pub fn parse(s: &str) -> Result<IssueCursor, Error> {
        let bad = || Error::bad("invalid after: expected the `next` of a previous page");
        let (at, id) = s.split_once('_').ok_or_else(bad)?;
        let at = at.parse::<i64>().map_err(|_| bad())?;
        if !is_uuid(id) {
            return Err(bad());
        }
        Ok(IssueCursor(at, id.to_string()))
    }
}

/// One page of the issues of one workspace (`workspace_id`) or of all the caller can
/// see, oldest first, each with its latest task and pull request: `limit` issues after
/// `after`, and the cursor of the next page if there is one. Three queries whatever the
/// page size.
pub async fn list(
    app: &App,
    who: &Principal,
    workspace_id: Option<&str>,
    after: Option<IssueCursor>,
    limit: i64,
) -> Result<IssuesPage, Error> {
    let filter = match workspace_id {
        Some(wid) => Some(vec![workspace::visible(app, who, wid).await?.id]),
        None => who.workspace_filter(),
    };
    let mut rows = app
        .store
        .list_issues(filter, after.map(|c| (c.0, c.1)), limit + 1)
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit.max(0) as usize);
    let next = match rows.last() {
        Some(last) if more => Some(IssueCursor(last.created_at, last.id.clone()).encode()),
        _ => None,
    };
    let mut latest: HashMap<String, TaskRow> = app
        .store
        .latest_tasks(rows.iter().map(|r| r.id.clone()).collect())
        .await?
        .into_iter()
        .map(|t| (t.issue_id.clone(), t))
        .collect();
    let mut stats: HashMap<String, DiffStat> = app
        .store
        .diffstats(latest.values().map(|t| t.id.clone()).collect())
        .await?
        .into_iter()
        .collect();
    let mut pulls: HashMap<String, crate::store::PullRow> = app
        .store
        .latest_pulls(rows.iter().map(|r| r.id.clone()).collect())
        .await?
        .into_iter()
        .map(|p| (p.issue_id.clone(), p))
        .collect();
    let issues = rows
        .iter()
        .map(|row| {
            let mut info = issue_info(row);
            info.latest_task = latest.remove(&row.id).map(|t| {
                let mut task = task_info(&t);
                task.diffstat = stats.remove(&t.id);
                Box::new(task)
            });
            info.pr = pulls.remove(&row.id).as_ref().map(super::forge::pull_info);
            info
        })
        .collect();
    Ok(IssuesPage { issues, next })
}

/// An issue with its tasks (and their usage) and comments.
pub async fn detail(app: &App, who: &Principal, issue_id: &str) -> Result<IssueDetail, Error> {
    let i = load_for(app, who, issue_id).await?;
    let tasks = app.store.list_issue_tasks(i.id.clone()).await?;
    let comments = app.store.list_comments(i.id.clone()).await?;
    let mut infos = Vec::with_capacity(tasks.len());
    for t in &tasks {
        infos.push(task::info(app, t).await?);
    }
    let mut issue = issue_info(&i);
    issue.pr = super::forge::latest_pull(app, &i)
        .await?
        .as_ref()
        .map(super::forge::pull_info);
    Ok(IssueDetail {
        issue,
        tasks: infos,
        comments: comments.iter().map(comment_info).collect(),
        activity: Vec::new(),
    })
}

/// The issue's comments, oldest first.
pub async fn comments(
    app: &App,
    who: &Principal,
    issue_id: &str,
) -> Result<Vec<CommentRow>, Error> {
    let i = load_for(app, who, issue_id).await?;
    Ok(app.store.list_comments(i.id).await?)
}

async fn agent_in(app: &App, workspace_id: &str, agent_id: &str) -> Result<AgentRow, Error> {
    if !is_uuid(agent_id) {
        return Err(Error::bad("invalid assignee_agent_id"));
    }
    match app.store.get_agent(agent_id.to_string()).await? {
        Some(a) if a.workspace_id == workspace_id => Ok(a),
        _ => Err(Error::NotFound("agent not found")),
    }
}

pub async fn create(
    app: &App,
    workspace_id: &str,
    req: CreateIssueRequest,
) -> Result<IssueRow, Error> {
    if req.title.trim().is_empty() {
        return Err(Error::bad("title is required"));
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
) -> Result<IssueRow, Error> {
    let mut issue = load_for(app, who, issue_id).await?;
    if matches!(who, Principal::Task(_))
        && (req.title.is_some() || req.description.is_some() || req.assignee_agent_id.is_some())
    {
        return Err(Error::Forbidden(
            "a task token may only change the issue's status".into(),
        ));
    }
    if let Some(s) = &req.status {
        check_status(s)?;
    }
    if let Some(t) = &req.title
        && t.trim().is_empty()
    {
        return Err(Error::bad("title must not be empty"));
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
    } else if matches!(who, Principal::Token { .. })
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
) -> Result<CommentRow, Error> {
    let issue = load_for(app, who, issue_id).await?;
    if body.trim().is_empty() {
        return Err(Error::bad("body is required"));
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
        Principal::Token { token_id, name, .. } => ("member", token_id.clone(), name.clone()),
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
        && let Some(aid) = &issue.assignee_agent_id
        && let Some(agent) = app.store.get_agent(aid.clone()).await?
    {
        follow_up(app, &issue, &agent, &c.id).await?;
    }
    Ok(c)
}

/// A comment someone wrote for the agent (a member on the board, a reviewer on the
/// forge) queues a task for `agent` on the issue with that comment as its trigger —
/// unless the issue is done or cancelled, or one is already queued (it will read the
/// issue's comments). Returns the new task, if one was queued.
pub async fn follow_up(
    app: &App,
    issue: &IssueRow,
    agent: &AgentRow,
    comment_id: &str,
) -> Result<Option<TaskRow>, Error> {
    if issue.status == "done" || issue.status == "cancelled" {
        return Ok(None);
    }
    let tasks = app.store.list_issue_tasks(issue.id.clone()).await?;
    let already_queued = tasks
        .iter()
        .any(|t| t.agent_id == agent.id && t.status == TaskStatus::Queued);
    if already_queued {
        return Ok(None);
    }
    Ok(Some(
        task::enqueue(app, issue, agent, Some(comment_id.to_string()), None).await?,
    ))
}
