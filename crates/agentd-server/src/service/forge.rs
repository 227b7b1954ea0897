//! Forges and pull requests (docs/api.md, "Forges and pull requests").
//!
//! - **Connections**: one per workspace (`github` or `gitea`), set, shown and removed by
//!   its members. The API token is write-only; the webhook secret is made by the server
//!   and shown once, in the answer to the `PUT` that made it.
//! - **Opening**: a task that completes with a pushed branch (or a push reported later
//!   through `/pushed`) gets a pull request on the workspace's forge — head the branch,
//!   base the repository's default branch, the issue's title, the agent's output and a
//!   link back to the issue — unless one is already open for that branch (a follow-up
//!   push just updated it). A forge error becomes a system comment naming it; the task
//!   stays completed.
//! - **Tracking**: signed webhooks and a polling loop move the issue: merged → `done`,
//!   closed unmerged → `backlog` (a person decides; moving it to `todo` queues the agent
//!   again), reopened → `in_review`. A review asking for changes, or a review comment or
//!   conversation comment on the pull request, is posted on the issue as a `forge`
//!   comment by the reviewer and queues a follow-up task for the same agent, which
//!   continues on the same branch ([`agentd_proto::Task::branch`]) and session.

use std::sync::Arc;

use agentd_proto::api::{ForgeInfo, ForgeKind, PullRequestInfo, SetForgeRequest, WebhookAnswer};
use agentd_proto::forge::{CreatePull, ForgePull, WebhookPayload};
use agentd_proto::{FailureReason, PushedBranch, ReportResponse, TaskStatus};

use crate::App;
use crate::auth::Principal;
use crate::forge::{Client, checks_of_run, checks_of_status, repo_of_url, verify};
use crate::service::{Error, issue_event, new_id, rfc3339, task, task_event, workspace};
use crate::store::{CommentRow, ForgeRow, IssueRow, PullRow, PullUpdate, StoreError, TaskRow};

/// The most characters of the agent's output a pull request's body carries.
const MAX_OUTPUT_CHARS: usize = 60_000;

/// The API URL of a `github` connection that names none.
pub const GITHUB_API: &str = "https://api.github.com";

/// The pull request as users see it.
pub fn pull_info(p: &PullRow) -> PullRequestInfo {
    PullRequestInfo {
        url: p.url.clone(),
        number: p.number,
        state: p.state.clone(),
        head_branch: p.head_branch.clone(),
        review_state: p.review_state.clone(),
        checks_state: p.checks_state.clone(),
    }
}

fn kind_of(row: &ForgeRow) -> ForgeKind {
    ForgeKind::parse(&row.kind).unwrap_or(ForgeKind::Unknown)
}

fn forge_name(kind: ForgeKind) -> &'static str {
    match kind {
        ForgeKind::Gitea => "Gitea",
        _ => "GitHub",
    }
}

fn info(row: &ForgeRow, secret: Option<String>) -> ForgeInfo {
    ForgeInfo {
        workspace_id: row.workspace_id.clone(),
        kind: kind_of(row),
        api_url: row.api_url.clone(),
        repo: row.repo.clone(),
        token: agentd_proto::api::MASKED_ENV_VALUE.into(),
        poll: row.poll,
        webhook_path: format!("/api/v1/forge/webhooks/{}", row.kind),
        webhook_secret: secret,
        created_at: rfc3339(row.created_at),
        updated_at: rfc3339(row.updated_at),
    }
}

/// The workspace's connection (token masked, no secret); 404 `forge not connected`.
pub async fn show(app: &App, who: &Principal, wid: &str) -> Result<ForgeInfo, Error> {
    let ws = workspace::visible(app, who, wid).await?;
    match app.store.get_forge(ws.id).await? {
        Some(row) => Ok(info(&row, None)),
        None => Err(Error::NotFound("forge not connected")),
    }
}

/// Connects the workspace (or replaces its connection). The answer carries the webhook
/// secret when this call made one: at the first connection, or with
/// `rotate_webhook_secret`.
pub async fn set(
    app: &App,
    who: &Principal,
    wid: &str,
    req: SetForgeRequest,
) -> Result<ForgeInfo, Error> {
    let ws = workspace::visible(app, who, wid).await?;
    if req.kind == ForgeKind::Unknown {
        return Err(Error::bad("invalid kind: expected github or gitea"));
    }
    let repo = req.repo.trim().trim_matches('/').to_string();
    let mut parts = repo.split('/');
    let ok_part = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && p != "."
                && p != ".."
        })
    };
    if !(ok_part(parts.next()) && ok_part(parts.next()) && parts.next().is_none()) {
        return Err(Error::bad(format!(
            "invalid repo {:?}: expected owner/name",
            req.repo
        )));
    }
    let token = req.token.trim().to_string();
    if token.is_empty() || token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::bad("token is required (one line, no spaces)"));
    }
    let api_url = match (req.api_url.as_deref().map(str::trim), req.kind) {
        (Some(u), _) if !u.is_empty() => u.trim_end_matches('/').to_string(),
        (_, ForgeKind::Github) => GITHUB_API.to_string(),
        _ => {
            return Err(Error::bad(
                "api_url is required for gitea (https://HOST/api/v1)",
            ));
        }
    };
    let plain_http_ok = app.config.allow_local_repos;
    let scheme_ok =
        api_url.starts_with("https://") || (plain_http_ok && api_url.starts_with("http://"));
    if !scheme_ok || api_url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::bad(format!(
            "invalid api_url {api_url:?}: expected https://… (plain http only with \
             --allow-local-repos)"
        )));
    }
    let now = app.now();
    let old = app.store.get_forge(ws.id.clone()).await?;
    let new_secret = match &old {
        Some(_) if !req.rotate_webhook_secret => None,
        _ => Some(crate::auth::new_token("whs_")),
    };
    let row = ForgeRow {
        workspace_id: ws.id.clone(),
        kind: req.kind.as_str().into(),
        api_url,
        repo_key: repo.to_lowercase(),
        repo,
        token,
        webhook_secret: match (&new_secret, &old) {
            (Some(s), _) => s.clone(),
            (None, Some(o)) => o.webhook_secret.clone(),
            (None, None) => unreachable!("a first connection always makes a secret"),
        },
        poll: req.poll.unwrap_or(true),
        created_at: old.as_ref().map_or(now, |o| o.created_at),
        updated_at: now,
    };
    app.store.set_forge(row.clone()).await?;
    Ok(info(&row, new_secret))
}

/// Disconnects the workspace (its pull requests stay recorded, no longer tracked).
/// Disconnects the workspace's forge; returns the workspace's id (for the audit log).
pub async fn remove(app: &App, who: &Principal, wid: &str) -> Result<String, Error> {
    let ws = workspace::visible(app, who, wid).await?;
    if app.store.delete_forge(ws.id.clone()).await? {
        Ok(ws.id)
    } else {
        Err(Error::NotFound("forge not connected"))
    }
}

fn system_comment(app: &App, issue_id: &str, body: String) -> CommentRow {
    CommentRow {
        id: new_id(),
        issue_id: issue_id.to_string(),
        author_type: "system".into(),
        author_id: "forge".into(),
        author_name: "forge".into(),
        body,
        created_at: app.now(),
    }
}

async fn post_system(app: &App, issue_id: &str, body: String) -> Result<(), StoreError> {
    app.store
        .add_comment(system_comment(app, issue_id, body))
        .await?;
    if let Some(i) = app.store.get_issue(issue_id.to_string()).await? {
        issue_event(app, "comment", &i);
    }
    Ok(())
}

/// Opens (or finds) the pull request for a task's pushed branch in the background: the
/// daemon's report is answered without waiting on the forge.
pub fn pushed_in_background(app: &Arc<App>, task: TaskRow, pushed: PushedBranch) {
    let app2 = app.clone();
    app.tracker.spawn(async move {
        if let Err(e) = open_pull(&app2, &task, &pushed).await {
            tracing::warn!(task_id = %task.id, error = %e, "opening the pull request failed");
        }
    });
}

/// The pull request of a task's pushed branch: none when the workspace has no forge;
/// the recorded open one when the branch has one (the push updated it); otherwise a new
/// one on the forge (or the one the forge says is already open for the branch). A
/// forge refusal is posted on the issue.
pub async fn open_pull(
    app: &App,
    task: &TaskRow,
    pushed: &PushedBranch,
) -> Result<Option<PullRow>, StoreError> {
    let Some(conn) = app.store.get_forge(task.workspace_id.clone()).await? else {
        return Ok(None);
    };
    let kind = kind_of(&conn);
    if let Some(pushed_repo) = repo_of_url(&pushed.remote_url)
        && pushed_repo != conn.repo_key
    {
        post_system(
            app,
            &task.issue_id,
            format!(
                "No pull request: branch {} was pushed to {}, not to {} ({}), the \
                 repository this workspace's forge is connected to.",
                pushed.branch,
                pushed.remote_url,
                conn.repo,
                forge_name(kind)
            ),
        )
        .await?;
        return Ok(None);
    }
    if let Some(open) = app
        .store
        .open_pull_for_branch(task.workspace_id.clone(), pushed.branch.clone())
        .await?
    {
        let (row, _) = app
            .store
            .update_pull(PullUpdate {
                pull_id: open.id.clone(),
                head_sha: Some(pushed.commit.clone()),
                task_id: Some(task.id.clone()),
                now: app.now(),
                ..Default::default()
            })
            .await?
            .unwrap_or((open, false));
        if let Some(i) = app.store.get_issue(task.issue_id.clone()).await? {
            issue_event(app, "issue", &i);
        }
        return Ok(Some(row));
    }
    let Some(issue) = app.store.get_issue(task.issue_id.clone()).await? else {
        return Ok(None);
    };
    let client = Client::new(&app.forge_http, kind, &conn.api_url, &conn.token);
    let output = app
        .store
        .get_task(task.id.clone())
        .await?
        .and_then(|t| t.output)
        .unwrap_or_default();
    let link = format!("{}/#/issues/{}", app.public_url(), issue.id);
    // GitHub refuses bodies over 65,536 characters: keep the agent's output well below.
    let output = match output.char_indices().nth(MAX_OUTPUT_CHARS) {
        Some((at, _)) => format!(
            "{}\n\n… (cut; the whole output is on the issue)",
            &output[..at]
        ),
        None => output,
    };
    let body = if output.trim().is_empty() {
        format!(
            "Issue: {link}\n\n---\nOpened by agentd for task {}.",
            task.id
        )
    } else {
        format!(
            "{}\n\n---\nIssue: {link}\nOpened by agentd for task {}.",
            output.trim(),
            task.id
        )
    };
    let opened = async {
        let repo = client.repo(&conn.repo).await?;
        let req = CreatePull {
            title: issue.title.clone(),
            head: pushed.branch.clone(),
            base: repo.default_branch.clone(),
            body,
        };
        client.open_pull(&conn.repo, &req).await
    }
    .await;
    let pull = match opened {
        Ok(p) => p,
        Err(e) => {
            post_system(
                app,
                &issue.id,
                format!(
                    "Could not open a pull request for branch {} on {} ({}): {e}",
                    pushed.branch,
                    forge_name(kind),
                    conn.repo
                ),
            )
            .await?;
            return Ok(None);
        }
    };
    let now = app.now();
    let row = PullRow {
        id: new_id(),
        workspace_id: task.workspace_id.clone(),
        issue_id: issue.id.clone(),
        task_id: task.id.clone(),
        agent_id: task.agent_id.clone(),
        number: pull.number,
        url: pull.html_url.clone(),
        state: pull.agentd_state().into(),
        head_branch: pushed.branch.clone(),
        head_sha: if pull.head.sha.is_empty() {
            pushed.commit.clone()
        } else {
            pull.head.sha.clone()
        },
        base_branch: pull.base.branch.clone(),
        review_state: None,
        checks_state: None,
        polled_at: None,
        created_at: now,
        updated_at: now,
    };
    app.store.insert_pull(row.clone()).await?;
    post_system(
        app,
        &issue.id,
        format!(
            "Opened pull request #{} on {}: {}",
            pull.number,
            forge_name(kind),
            pull.html_url
        ),
    )
    .await?;
    issue_event(app, "issue", &issue);
    Ok(Some(row))
}

/// `POST /api/daemon/tasks/{id}/pushed`: the daemon pushed a finished task's branch
/// after its final report. A task failed with `push_failed` becomes `completed` (a
/// system comment says so; the issue goes to `in_review`); a completed task stays so. In
/// both cases the pull request is opened (or updated). Any other state is 409.
pub async fn pushed_later(
    app: &Arc<App>,
    t: &TaskRow,
    pushed: PushedBranch,
) -> Result<ReportResponse, Error> {
    if pushed.branch.trim().is_empty() {
        return Err(Error::bad("pushed.branch is required"));
    }
    let row = match (t.status, t.failure_reason) {
        (TaskStatus::Completed, _) => t.clone(),
        (TaskStatus::Failed, Some(FailureReason::PushFailed)) => {
            let issue_status =
                super::task::issue_follows(app, &t.issue_id, TaskStatus::Completed).await?;
            let body = format!(
                "Task {} is completed: its push succeeded later (branch {} at {} on {}).",
                t.id, pushed.branch, pushed.commit, pushed.remote_url
            );
            let moved = app
                .store
                .complete_pushed(
                    t.id.clone(),
                    pushed.branch.clone(),
                    system_comment(app, &t.issue_id, body),
                    issue_status,
                    app.now(),
                )
                .await?;
            match moved {
                Some(row) => {
                    task_event(app, "task", &row);
                    if let Some(i) = app.store.get_issue(t.issue_id.clone()).await? {
                        issue_event(app, "issue", &i);
                    }
                    row
                }
                // Raced with another report: answer where it stands now.
                None => app
                    .store
                    .get_task(t.id.clone())
                    .await?
                    .ok_or(Error::NotFound(agentd_proto::TASK_NOT_FOUND))?,
            }
        }
        (status, reason) => {
            return Err(Error::Conflict(format!(
                "task is {}{}; only a completed task or one failed with push_failed can \
                 report a later push",
                status.as_str(),
                reason.map_or(String::new(), |r| format!(
                    " ({})",
                    crate::store::reason_text(r)
                ))
            )));
        }
    };
    if row.status == TaskStatus::Completed {
        pushed_in_background(app, row.clone(), pushed);
    }
    Ok(task::answer(row.status, false))
}

/// `POST /api/v1/tasks/{id}/push`: asks the daemon holding a `push_failed` task to push
/// its branch again (`daemon:task_push`); 409 for any other task, and when no WebSocket
/// of that daemon is connected (the push would go nowhere).
pub async fn retry_push(app: &App, t: &TaskRow) -> Result<(), Error> {
    if t.status != TaskStatus::Failed || t.failure_reason != Some(FailureReason::PushFailed) {
        return Err(Error::Conflict(format!(
            "task is {}{}; only a task failed with push_failed can be pushed again",
            t.status.as_str(),
            t.failure_reason.map_or(String::new(), |r| format!(
                " ({})",
                crate::store::reason_text(r)
            ))
        )));
    }
    // The runtime it ran on, or — after its runtime was deleted and re-registered under a
    // new id — a runtime of the same daemon in the workspace that a connection holds.
    let mut targets = vec![t.runtime_id.clone()];
    if let Some(daemon) = &t.daemon_id {
        for rt in app
            .store
            .list_runtimes(t.workspace_id.clone(), Some(daemon.clone()))
            .await?
        {
            if !targets.contains(&rt.id) {
                targets.push(rt.id);
            }
        }
    }
    // Alone, this instance knows whether the daemon is connected; while other instances
    // share the database, the one holding one of these runtimes pushes (`bus`).
    if !targets.iter().any(|r| app.hub.holds(r)) && crate::bus::peers(app).await == 0 {
        return Err(Error::Conflict(format!(
            "the daemon holding task {} is not connected; start it and try again",
            t.id
        )));
    }
    crate::bus::publish(
        app,
        crate::bus::Signal::TaskPush {
            task_id: t.id.clone(),
            runtime_ids: targets,
        },
    );
    Ok(())
}

/// The pull request of this task's branch, for `TaskInfo.pr`.
pub async fn pull_of_task(app: &App, t: &TaskRow) -> Result<Option<PullRow>, StoreError> {
    let Some(branch) = &t.branch_name else {
        return Ok(None);
    };
    Ok(app
        .store
        .issue_pulls(t.issue_id.clone())
        .await?
        .into_iter()
        .rev()
        .find(|p| &p.head_branch == branch))
}

/// The branch a new task of `agent` on `issue` continues on: that of the issue's open
/// pull request for the agent's work.
pub async fn branch_to_continue(
    app: &App,
    issue_id: &str,
    agent_id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(app
        .store
        .issue_pulls(issue_id.to_string())
        .await?
        .into_iter()
        .rev()
        .find(|p| p.state == "open" && p.agent_id == agent_id)
        .map(|p| p.head_branch))
}

/// What the webhook route read from the request's headers.
#[derive(Debug, Default)]
pub struct Delivery {
    /// GitHub's `X-GitHub-Event`; Gitea's `X-Gitea-Event-Type` (or `X-Gitea-Event`).
    pub event: String,
    pub delivery_id: Option<String>,
    /// The hex HMAC (GitHub's with its `sha256=` prefix).
    pub signature: Option<String>,
}

/// A webhook delivery: verified (401 unsigned or wrongly signed, 404 for a repository no
/// workspace is connected to), deduplicated by delivery id, then applied.
pub async fn webhook(
    app: &App,
    kind: &str,
    d: Delivery,
    body: &[u8],
) -> Result<WebhookAnswer, Error> {
    let kind = match ForgeKind::parse(kind) {
        Some(k) => k,
        None => return Err(Error::NotFound("unknown forge kind (github or gitea)")),
    };
    let header = match kind {
        ForgeKind::Gitea => "X-Gitea-Signature",
        _ => "X-Hub-Signature-256",
    };
    let Some(signature) = d.signature.as_deref().filter(|s| !s.trim().is_empty()) else {
        return Err(Error::Unauthenticated(format!(
            "missing webhook signature ({header})"
        )));
    };
    let payload: WebhookPayload = serde_json::from_slice(body)
        .map_err(|e| Error::bad(format!("invalid webhook payload: {e}")))?;
    let Some(repo) = payload
        .repository
        .as_ref()
        .map(|r| r.full_name.trim().to_lowercase())
        .filter(|r| !r.is_empty())
    else {
        return Err(Error::bad(
            "invalid webhook payload: no repository.full_name",
        ));
    };
    let conns = app
        .store
        .forges_by_repo(kind.as_str().into(), repo.clone())
        .await?;
    if conns.is_empty() {
        return Err(Error::NotFound(
            "no workspace is connected to this repository",
        ));
    }
    let Some(conn) = conns
        .into_iter()
        .find(|c| verify(&c.webhook_secret, body, signature))
    else {
        return Err(Error::Unauthenticated(format!(
            "webhook signature does not match ({header})"
        )));
    };
    let ok = |note: String| WebhookAnswer {
        status: "ok".into(),
        note,
    };
    if let Some(id) = d.delivery_id.filter(|s| !s.is_empty())
        && !app
            .store
            .record_delivery(conn.workspace_id.clone(), id, app.now())
            .await?
    {
        return Ok(ok("duplicate delivery".into()));
    }
    Ok(ok(apply(app, &conn, kind, &d.event, payload).await?))
}

/// The pull request number a payload is about.
fn pull_number(p: &WebhookPayload) -> Option<i64> {
    p.pull_request
        .as_ref()
        .map(|pr| pr.number)
        .filter(|n| *n > 0)
        .or(p.number)
        .or(p.issue.as_ref().map(|i| i.number))
}

async fn apply(
    app: &App,
    conn: &ForgeRow,
    kind: ForgeKind,
    event: &str,
    p: WebhookPayload,
) -> Result<String, Error> {
    let reviewer = |p: &WebhookPayload| {
        p.review
            .as_ref()
            .and_then(|r| r.user.clone())
            .or(p.comment.as_ref().and_then(|c| c.user.clone()))
            .or(p.sender.clone())
            .map(|u| u.login)
            .unwrap_or_else(|| "someone".into())
    };
    match event {
        "ping" => return Ok("pong".into()),
        "check_suite" | "check_run" | "status" => return checks(app, conn, kind, &p).await,
        _ => {}
    }
    let Some(number) = pull_number(&p) else {
        return Ok(format!("ignored {event}: no pull request number"));
    };
    let Some(pr) = app
        .store
        .get_pull(conn.workspace_id.clone(), number)
        .await?
    else {
        return Ok(format!(
            "ignored {event}: #{number} is not a pull request agentd opened"
        ));
    };
    match (event, p.action.as_str()) {
        ("pull_request", "closed" | "reopened") => {
            let pull = p.pull_request.clone().unwrap_or_default();
            let state = if p.action == "reopened" {
                "open"
            } else if pull.merged == Some(true) || pull.merged_at.is_some() {
                "merged"
            } else {
                "closed"
            };
            Ok(set_state(app, &pr, state, kind).await?)
        }
        ("pull_request", "synchronize") | ("pull_request_sync", _) => {
            let sha = p.pull_request.map(|x| x.head.sha).filter(|s| !s.is_empty());
            app.store
                .update_pull(PullUpdate {
                    pull_id: pr.id.clone(),
                    head_sha: sha,
                    now: app.now(),
                    ..Default::default()
                })
                .await?;
            Ok(format!("pull request #{number}: new commits"))
        }
        ("pull_request_review", "submitted") => {
            let review = p.review.clone().unwrap_or_default();
            let body = review.body.clone().unwrap_or_default();
            let state = review.state.to_lowercase();
            match state.as_str() {
                "approved" => Ok(set_review(app, &pr, "approved").await?),
                "changes_requested" => {
                    feedback(app, &pr, kind, &reviewer(&p), &body, "changes_requested").await
                }
                "commented" if !body.trim().is_empty() => {
                    feedback(app, &pr, kind, &reviewer(&p), &body, "commented").await
                }
                _ => Ok(format!("pull request #{number}: review {state} noted")),
            }
        }
        // Gitea: the review kind is the event type; the text is `review.content`.
        ("pull_request_review_approved", _) => Ok(set_review(app, &pr, "approved").await?),
        ("pull_request_review_rejected", _) => {
            let body = p.review.clone().unwrap_or_default().content;
            feedback(app, &pr, kind, &reviewer(&p), &body, "changes_requested").await
        }
        ("pull_request_review_comment" | "pull_request_comment" | "issue_comment", action)
            if action == "created" || action == "reviewed" =>
        {
            let (body, path) = match (&p.comment, &p.review) {
                (Some(c), _) => (c.body.clone(), c.path.clone()),
                (None, Some(r)) => (r.content.clone(), None),
                _ => (String::new(), None),
            };
            let is_pull = event != "issue_comment"
                || p.is_pull == Some(true)
                || p.issue.as_ref().is_some_and(|i| i.pull_request.is_some());
            if !is_pull || body.trim().is_empty() {
                return Ok(format!("ignored {event}: not a comment on a pull request"));
            }
            let body = match path {
                Some(path) if !path.is_empty() => format!("On `{path}`:\n\n{body}"),
                _ => body,
            };
            feedback(app, &pr, kind, &reviewer(&p), &body, "commented").await
        }
        (event, action) => Ok(format!("ignored {event} {action}")),
    }
}

/// Moves the pull request to `state` and the issue with it (merged → `done`, closed →
/// `backlog`, reopened → `in_review`), posting a system comment once per change.
async fn set_state(
    app: &App,
    pr: &PullRow,
    state: &str,
    kind: ForgeKind,
) -> Result<String, StoreError> {
    let issue = app.store.get_issue(pr.issue_id.clone()).await?;
    let issue_cancelled = issue.as_ref().is_some_and(|i| i.status == "cancelled");
    let (issue_status, body) = match state {
        "merged" => (
            "done",
            format!(
                "Pull request #{} was merged on {}: the issue is done.",
                pr.number,
                forge_name(kind)
            ),
        ),
        "closed" => (
            "backlog",
            format!(
                "Pull request #{} was closed without merging on {}: the issue is back in \
                 the backlog. Reopen the pull request, or move the issue to todo to have \
                 the agent try again.",
                pr.number,
                forge_name(kind)
            ),
        ),
        _ => (
            "in_review",
            format!(
                "Pull request #{} was reopened on {}: the issue is in review again.",
                pr.number,
                forge_name(kind)
            ),
        ),
    };
    let updated = app
        .store
        .update_pull(PullUpdate {
            pull_id: pr.id.clone(),
            state: Some(state.into()),
            // A cancelled issue stays cancelled: only the comment tells.
            issue_status: (!issue_cancelled).then(|| issue_status.to_string()),
            comment: Some(system_comment(app, &pr.issue_id, body)),
            now: app.now(),
            ..Default::default()
        })
        .await?;
    let changed = updated.is_some_and(|(_, c)| c);
    if changed && let Some(i) = app.store.get_issue(pr.issue_id.clone()).await? {
        issue_event(app, "issue", &i);
        issue_event(app, "comment", &i);
    }
    Ok(if changed {
        format!("pull request #{} {state}: issue {issue_status}", pr.number)
    } else {
        format!("pull request #{} already {state}", pr.number)
    })
}

async fn set_review(app: &App, pr: &PullRow, review: &str) -> Result<String, StoreError> {
    app.store
        .update_pull(PullUpdate {
            pull_id: pr.id.clone(),
            review_state: Some(review.into()),
            now: app.now(),
            ..Default::default()
        })
        .await?;
    if let Some(i) = app.store.get_issue(pr.issue_id.clone()).await? {
        issue_event(app, "issue", &i);
    }
    Ok(format!("pull request #{}: review {review}", pr.number))
}

/// The review loop: the reviewer's text becomes a `forge` comment on the issue (by the
/// reviewer) and, like a member's comment, queues a follow-up task for the pull
/// request's agent, which continues on the pull request's branch.
async fn feedback(
    app: &App,
    pr: &PullRow,
    kind: ForgeKind,
    reviewer: &str,
    body: &str,
    review: &str,
) -> Result<String, Error> {
    set_review(app, pr, review).await?;
    let Some(issue) = app.store.get_issue(pr.issue_id.clone()).await? else {
        return Ok("ignored: the issue is gone".into());
    };
    let what = if review == "changes_requested" {
        "requested changes"
    } else {
        "commented"
    };
    let text = if body.trim().is_empty() {
        format!(
            "{reviewer} {what} on pull request #{} ({}).",
            pr.number, pr.url
        )
    } else {
        format!(
            "{reviewer} {what} on pull request #{} ({}):\n\n{}",
            pr.number,
            pr.url,
            body.trim()
        )
    };
    let c = CommentRow {
        id: new_id(),
        issue_id: issue.id.clone(),
        author_type: "forge".into(),
        author_id: format!("{}:{reviewer}", kind.as_str()),
        author_name: format!("{reviewer} ({})", forge_name(kind)),
        body: text,
        created_at: app.now(),
    };
    app.store.add_comment(c.clone()).await?;
    issue_event(app, "comment", &issue);
    let Some(agent) = app.store.get_agent(pr.agent_id.clone()).await? else {
        return Ok(format!(
            "pull request #{}: {review}; the agent is gone",
            pr.number
        ));
    };
    let by = agentd_proto::api::Actor {
        kind: agentd_proto::api::ActorKind::Forge,
        name: c.author_name.clone(),
    };
    let queued = super::issue::follow_up(app, &issue, &agent, &c.id, by).await?;
    Ok(match queued {
        Some(t) => format!(
            "pull request #{}: {review}; task {} queued",
            pr.number, t.id
        ),
        None => format!("pull request #{}: {review}; comment posted", pr.number),
    })
}

/// A check or status event: the pull requests it names (by number, or by branch for a
/// `status`) get their checks state, asked of the forge for the whole head commit (one
/// check run says little about the others), or read from the payload if that fails.
async fn checks(
    app: &App,
    conn: &ForgeRow,
    kind: ForgeKind,
    p: &WebhookPayload,
) -> Result<String, Error> {
    let mut pulls = Vec::new();
    let mut from_payload = None;
    if let Some(check) = p.check_suite.as_ref().or(p.check_run.as_ref()) {
        from_payload = Some(checks_of_run(&check.status, check.conclusion.as_deref()));
        for n in &check.pull_requests {
            if let Some(pr) = app
                .store
                .get_pull(conn.workspace_id.clone(), n.number)
                .await?
            {
                pulls.push(pr);
            }
        }
    } else if let Some(state) = &p.state {
        from_payload = checks_of_status(state);
        for b in &p.branches {
            if let Some(pr) = app
                .store
                .open_pull_for_branch(conn.workspace_id.clone(), b.name.clone())
                .await?
            {
                pulls.push(pr);
            }
        }
    }
    let client = Client::new(&app.forge_http, kind, &conn.api_url, &conn.token);
    let mut notes = Vec::new();
    for pr in pulls {
        let state = match client.checks_state(&conn.repo, &pr.head_sha).await {
            Ok(Some(s)) => Some(s),
            Ok(None) => from_payload.map(str::to_string),
            Err(e) => {
                tracing::warn!(error = %e, "reading checks from the forge failed");
                from_payload.map(str::to_string)
            }
        };
        if let Some(s) = state {
            app.store
                .update_pull(PullUpdate {
                    pull_id: pr.id.clone(),
                    checks_state: Some(s.clone()),
                    now: app.now(),
                    ..Default::default()
                })
                .await?;
            if let Some(i) = app.store.get_issue(pr.issue_id.clone()).await? {
                issue_event(app, "issue", &i);
            }
            notes.push(format!("pull request #{}: checks {s}", pr.number));
        }
    }
    Ok(if notes.is_empty() {
        "ignored: no pull request agentd opened".into()
    } else {
        notes.join("; ")
    })
}

/// The polling fallback, every `forge_poll_interval` (off when zero).
pub async fn run_poller(app: Arc<App>) {
    let every = app.config.forge_poll_interval;
    if every.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = poll(&app, app.now()).await {
            tracing::warn!(error = %e, "polling the forges failed");
        }
    }
}

/// One poll at server time `now`: every open pull request of a connection with `poll`
/// on that was not polled for `forge_poll_interval` is read from its forge (state and
/// checks), with the webhooks' transitions. Returns how many were read.
pub async fn poll(app: &App, now: i64) -> Result<usize, StoreError> {
    let every = app.config.forge_poll_interval.as_millis() as i64;
    if every == 0 {
        return Ok(0);
    }
    let due = app.store.pulls_to_poll(now - every).await?;
    let mut n = 0;
    for pr in due {
        let Some(conn) = app.store.get_forge(pr.workspace_id.clone()).await? else {
            continue;
        };
        let kind = kind_of(&conn);
        let client = Client::new(&app.forge_http, kind, &conn.api_url, &conn.token);
        let pull: Result<ForgePull, _> = client.get_pull(&conn.repo, pr.number).await;
        let checks = match &pull {
            Ok(p) if !p.head.sha.is_empty() => client
                .checks_state(&conn.repo, &p.head.sha)
                .await
                .ok()
                .flatten(),
            _ => None,
        };
        app.store
            .update_pull(PullUpdate {
                pull_id: pr.id.clone(),
                head_sha: pull
                    .as_ref()
                    .ok()
                    .map(|p| p.head.sha.clone())
                    .filter(|s| !s.is_empty()),
                checks_state: checks,
                polled_at: Some(now),
                now,
                ..Default::default()
            })
            .await?;
        match pull {
            Ok(p) => {
                n += 1;
                let state = p.agentd_state();
                if state != pr.state {
                    set_state(app, &pr, state, kind).await?;
                }
            }
            Err(e) => {
                tracing::warn!(pull = pr.number, error = %e, "polling a pull request failed");
            }
        }
    }
    Ok(n)
}

/// Whether `issue` has a pull request (for a caller that only needs to know).
pub async fn latest_pull(app: &App, issue: &IssueRow) -> Result<Option<PullRow>, StoreError> {
    Ok(app.store.issue_pulls(issue.id.clone()).await?.pop())
}
