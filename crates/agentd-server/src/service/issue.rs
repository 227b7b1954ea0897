//! Issues and comments, and the triggers that queue work: an issue assigned to an agent
//! (at creation or later) queues a task unless its status is backlog, done or cancelled;
//! a member's comment on an assigned issue queues one (unless one is already queued);
//! reassignment cancels the old agent's tasks, and so does unassigning (an
//! `assignee_agent_id` of `""` or `none`); status `cancelled` cancels all of them.
//! An agent (task token) may read its own issue, comment on it and change its status,
//! which never queues anything. Every change records who made it (`issue_events`, in the
//! transaction of the change; [`super::activity`] reads the history).

use std::collections::HashMap;

use agentd_proto::TaskStatus;
use agentd_proto::api::{
    Actor, CreateIssueRequest, DiffStat, ISSUE_STATUSES, IssueDetail, IssuesPage,
    UpdateIssueRequest,
};

use crate::App;
use crate::auth::Principal;
use crate::service::{
    Error, actor_of, comment_info, is_uuid, issue_event, issue_info, new_id, resolve, task,
    task_infos, workspace,
};
use crate::store::{AgentRow, CommentRow, EventRow, IssueFilter, IssueRow, TaskRow};

pub(crate) fn check_status(s: &str) -> Result<(), Error> {
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

/// Loads an issue the caller may see (a task token sees only its own issue), by any
/// reference ([`resolve::issue`]).
pub async fn load_for(app: &App, who: &Principal, issue_id: &str) -> Result<IssueRow, Error> {
    resolve::issue(app, who, issue_id).await
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

/// The filters of `GET /api/v1/issues` as the query gives them (each optional).
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub workspace_id: Option<String>,
    /// An issue status.
    pub status: Option<String>,
    /// An agent reference, or `none` for unassigned issues.
    pub assignee: Option<String>,
    /// A case-insensitive substring of the title, description or key.
    pub q: Option<String>,
}

/// One page of the issues of one workspace (`workspace_id`) or of all the caller can
/// see that pass the filters, oldest first, each with its latest task and pull request:
/// `limit` issues after `after`, and the cursor of the next page if there is one. Four
/// queries whatever the page size.
pub async fn list(
    app: &App,
    who: &Principal,
    query: ListQuery,
    after: Option<IssueCursor>,
    limit: i64,
) -> Result<IssuesPage, Error> {
    let ws = match &query.workspace_id {
        Some(wid) => Some(workspace::visible(app, who, wid).await?.id),
        None => None,
    };
    let scope = match &ws {
        Some(id) => Some(vec![id.clone()]),
        None => who.workspace_filter(),
    };
    if let Some(s) = &query.status {
        check_status(s)?;
    }
    let assignee = match query.assignee.as_deref().map(str::trim) {
        None => None,
        Some(a) if a.eq_ignore_ascii_case("none") => Some(None),
        Some(a) => Some(Some(resolve::agent(app, who, a, ws.as_deref()).await?.id)),
    };
    let filter = IssueFilter {
        status: query.status,
        assignee,
        q: query.q.filter(|q| !q.is_empty()),
    };
    let mut rows = app
        .store
        .list_issues(scope, filter, after.map(|c| (c.0, c.1)), limit + 1)
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
    let latest_rows: Vec<TaskRow> = latest.values().cloned().collect();
    let mut latest_infos: HashMap<String, agentd_proto::api::TaskInfo> =
        task_infos(app, &latest_rows)
            .await?
            .into_iter()
            .map(|t| (t.id.clone(), t))
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
            info.latest_task = latest.remove(&row.id).and_then(|t| {
                let mut task = latest_infos.remove(&t.id)?;
                task.diffstat = stats.remove(&t.id);
                Some(Box::new(task))
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
    let events = app.store.issue_events(i.id.clone()).await?;
    // Which member-type authors are the admin token (its comments say `member`).
    let mut admins = std::collections::HashSet::new();
    let mut seen = std::collections::HashSet::new();
    for c in comments.iter().filter(|c| c.author_type == "member") {
        if seen.insert(c.author_id.clone())
            && let Some((t, _)) = app.store.get_token(c.author_id.clone()).await?
            && t.kind == "admin"
        {
            admins.insert(t.id);
        }
    }
    let activity = super::activity::merge(&i, events, &comments, &admins, &tasks, &infos);
    Ok(IssueDetail {
        issue,
        tasks: infos,
        comments: comments.iter().map(comment_info).collect(),
        activity,
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

/// The agent an issue of workspace `workspace_id` is assigned to, by any reference
/// ([`resolve::agent`] in that workspace).
async fn agent_in(
    app: &App,
    who: &Principal,
    workspace_id: &str,
    agent: &str,
) -> Result<AgentRow, Error> {
    resolve::agent(app, who, agent, Some(workspace_id)).await
}

/// The issue as stored now (its `run_count` counts the runs this request queued), or as
/// it was if it is gone meanwhile.
async fn reloaded(app: &App, issue: IssueRow) -> Result<IssueRow, Error> {
    Ok(app
        .store
        .get_issue(issue.id.clone())
        .await?
        .unwrap_or(issue))
}

/// An `issue_events` row of `issue` by `actor` at `now`.
fn event(issue: &IssueRow, kind: &str, actor: &Actor, now: i64) -> EventRow {
    EventRow {
        issue_id: issue.id.clone(),
        kind: kind.into(),
        actor: actor.clone(),
        created_at: now,
        ..Default::default()
    }
}

pub async fn create(
    app: &App,
    who: &Principal,
    workspace_id: &str,
    req: CreateIssueRequest,
) -> Result<IssueRow, Error> {
    if req.title.trim().is_empty() {
        return Err(Error::bad("title is required"));
    }
    let status = req.status.unwrap_or_else(|| "todo".into());
    check_status(&status)?;
    let agent = match &req.assignee_agent_id {
        Some(id) => Some(agent_in(app, who, workspace_id, id).await?),
        None => None,
    };
    let actor = actor_of(app, who).await?;
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
        number: 0,
        workspace_key: String::new(),
        run_count: 0,
    };
    let mut created = event(&issue, "created", &actor, now);
    created.to_status = Some(issue.status.clone());
    let mut events = vec![created];
    if let Some(a) = &agent {
        let mut assigned = event(&issue, "assigned", &actor, now);
        assigned.detail = Some(a.name.clone());
        events.push(assigned);
    }
    let issue = app.store.create_issue(issue, events).await?;
    issue_event(app, "issue", &issue);
    if let Some(agent) = agent
        && wants_work(&issue.status)
    {
        task::enqueue(app, &issue, &agent, None, None, Some(actor)).await?;
    }
    reloaded(app, issue).await
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
    // `""` or `none` unassigns.
    let unassign = req
        .assignee_agent_id
        .as_deref()
        .map(str::trim)
        .is_some_and(|a| a.is_empty() || a.eq_ignore_ascii_case("none"))
        && issue.assignee_agent_id.is_some();
    let new_agent = match req.assignee_agent_id.as_deref().map(str::trim) {
        Some(a) if a.is_empty() || a.eq_ignore_ascii_case("none") => None,
        Some(id) => Some(agent_in(app, who, &issue.workspace_id, id).await?)
            .filter(|a| Some(&a.id) != issue.assignee_agent_id.as_ref()),
        None => None,
    };
    let actor = actor_of(app, who).await?;
    let now = app.now();
    let mut events = Vec::new();
    let old_status = issue.status.clone();
    if let Some(t) = req.title {
        let t = t.trim().to_string();
        if t != issue.title {
            let mut e = event(&issue, "edited", &actor, now);
            e.detail = Some("title".into());
            events.push(e);
        }
        issue.title = t;
    }
    if let Some(d) = req.description {
        if d != issue.description {
            let mut e = event(&issue, "edited", &actor, now);
            e.detail = Some("description".into());
            events.push(e);
        }
        issue.description = d;
    }
    if let Some(s) = req.status {
        if s != issue.status {
            let mut e = event(&issue, "status_changed", &actor, now);
            e.from_status = Some(issue.status.clone());
            e.to_status = Some(s.clone());
            events.push(e);
        }
        issue.status = s;
    }
    if let Some(a) = &new_agent {
        issue.assignee_agent_id = Some(a.id.clone());
        let mut e = event(&issue, "assigned", &actor, now);
        e.detail = Some(a.name.clone());
        events.push(e);
    } else if unassign {
        issue.assignee_agent_id = None;
        let mut e = event(&issue, "assigned", &actor, now);
        e.detail = Some(String::new());
        events.push(e);
    }
    issue.updated_at = now;
    app.store.update_issue(issue.clone(), events).await?;
    issue_event(app, "issue", &issue);

    let system = crate::store::system_actor();
    if issue.status == "cancelled" && old_status != "cancelled" {
        task::cancel_issue_tasks(app, &issue.id, "issue was cancelled", &system).await?;
    } else if unassign {
        task::cancel_issue_tasks(app, &issue.id, "issue was unassigned", &system).await?;
    } else if let Some(agent) = new_agent {
        task::cancel_issue_tasks(app, &issue.id, "issue was reassigned", &system).await?;
        if wants_work(&issue.status) {
            task::enqueue(app, &issue, &agent, None, None, Some(actor)).await?;
        }
    } else if matches!(who, Principal::Token { .. })
        && old_status == "backlog"
        && wants_work(&issue.status)
        && let Some(aid) = &issue.assignee_agent_id
        && let Some(agent) = app.store.get_agent(aid.clone()).await?
    {
        task::enqueue(app, &issue, &agent, None, None, Some(actor)).await?;
    }
    reloaded(app, issue).await
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
        Principal::User(u) => ("member", u.user_id.clone(), u.display_name()),
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
        follow_up(app, &issue, &agent, &c.id, actor_of(app, who).await?).await?;
    }
    Ok(c)
}

/// A comment someone wrote for the agent (a member on the board, a reviewer on the
/// forge) queues a task for `agent` on the issue with that comment as its trigger —
/// unless the issue is done or cancelled, or one is already queued (it will read the
/// issue's comments). Returns the new task, if one was queued; `by` (the comment's
/// author) is who queued it.
pub async fn follow_up(
    app: &App,
    issue: &IssueRow,
    agent: &AgentRow,
    comment_id: &str,
    by: Actor,
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
        task::enqueue(
            app,
            issue,
            agent,
            Some(comment_id.to_string()),
            None,
            Some(by),
        )
        .await?,
    ))
}
