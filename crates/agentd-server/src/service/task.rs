//! The task lifecycle: `queued → dispatched → running → completed | failed | cancelled`.
//! Every transition is a guarded update in the store, so concurrent actors lose cleanly.
//! Completion posts the agent's output as a comment and moves the issue to `in_review`;
//! failure posts the error and leaves the issue assigned. A retry is a new task, and a
//! task is retried at most once (a second retry is 409 `already_retried`, naming the
//! first). Cancelling a task that already ended is 409 `already_ended`. Each task keeps
//! who queued it and who cancelled it.
//!
//! Every report answers where the task stands ([`ReportResponse`]); a report about an
//! in-flight task renews its lease (expiry is the `sweeper`'s). A `complete` or `fail`
//! for a task that already ended changes nothing but is kept as a late report (the first
//! one, posted once as a `Late report:` comment); a resend of the very report that ended
//! the task is a plain replay and answers `late: false`.

use agentd_proto::api::{Actor, MessagesPage, RefMatch, TaskInfo};
use agentd_proto::{
    CompleteRequest, FailRequest, FailureReason, MessageKind, MessagesRequest, Repo,
    ReportResponse, Task, TaskAgent, TaskMessage, TaskStatus, UsageRequest,
};

use std::sync::Arc;

use crate::App;
use crate::auth::{Principal, TASK_TOKEN_PREFIX, hash_token, new_token};
use crate::service::{
    Error, actor_of, diff, is_uuid, new_id, repos_from_json, resolve, short, task_event, task_infos,
};
use crate::store::{
    AgentRow, CommentRow, IssueRow, MessageRow, RuntimeRow, StoreError, TaskRow, Transition,
    reason_text,
};

/// Claimed and not yet ended: the statuses a lease covers.
const IN_FLIGHT: [TaskStatus; 2] = [TaskStatus::Dispatched, TaskStatus::Running];
/// Not yet ended: what a cancellation stops.
const ACTIVE: [TaskStatus; 3] = [
    TaskStatus::Queued,
    TaskStatus::Dispatched,
    TaskStatus::Running,
];

/// Queues a task for the agent on the issue and wakes the agent's runtime. `queued_by`:
/// who caused it (`None`: the server).
pub async fn enqueue(
    app: &App,
    issue: &IssueRow,
    agent: &AgentRow,
    trigger_comment_id: Option<String>,
    parent_task_id: Option<String>,
    queued_by: Option<Actor>,
) -> Result<TaskRow, StoreError> {
    let task = new_task(
        app,
        issue,
        agent,
        trigger_comment_id,
        parent_task_id,
        queued_by,
    );
    app.store.insert_task(task.clone()).await?;
    task_event(app, "task", &task);
    wake(app, &task).await?;
    Ok(task)
}

/// Wakes the runtime a queued task waits for; for a pool agent's task (no runtime yet),
/// every online runtime of the pool, least loaded first (the first to claim takes it).
pub async fn wake(app: &App, task: &TaskRow) -> Result<(), StoreError> {
    let mut targets = Vec::new();
    if !task.runtime_id.is_empty() {
        targets.push(task.runtime_id.clone());
    } else if let Some(agent) = app.store.get_agent(task.agent_id.clone()).await? {
        let mut loads = Vec::new();
        for rt in super::pool::members(app, &agent).await? {
            if rt.status != "online" {
                continue;
            }
            let busy = app
                .store
                .runtime_tasks(rt.id.clone(), IN_FLIGHT.to_vec())
                .await?
                .len();
            loads.push((busy, rt.id));
        }
        loads.sort();
        targets.extend(loads.into_iter().map(|(_, id)| id));
    }
    for runtime_id in targets {
        crate::bus::publish(
            app,
            crate::bus::Signal::TaskAvailable {
                runtime_id,
                task_id: Some(task.id.clone()),
            },
        );
    }
    Ok(())
}

fn new_task(
    app: &App,
    issue: &IssueRow,
    agent: &AgentRow,
    trigger_comment_id: Option<String>,
    parent_task_id: Option<String>,
    queued_by: Option<Actor>,
) -> TaskRow {
    TaskRow {
        id: new_id(),
        workspace_id: issue.workspace_id.clone(),
        issue_id: issue.id.clone(),
        agent_id: agent.id.clone(),
        // A pool agent's task waits for whichever runtime of the pool claims it.
        runtime_id: if agent.pool.is_some() {
            String::new()
        } else {
            agent.runtime_id.clone()
        },
        status: TaskStatus::Queued,
        attempt: 1,
        trigger_comment_id,
        parent_task_id,
        queued_by,
        created_at: app.now(),
        ..Default::default()
    }
}

/// The task as users see it, with its token usage, issue key and agent name.
pub async fn info(app: &App, task: &TaskRow) -> Result<TaskInfo, StoreError> {
    let mut info = task_infos(app, std::slice::from_ref(task))
        .await?
        .pop()
        .unwrap_or_default();
    info.usage = app.store.list_usage(task.id.clone()).await?;
    info.diffstat = app
        .store
        .diffstats(vec![task.id.clone()])
        .await?
        .pop()
        .map(|(_, stat)| stat);
    info.pr = super::forge::pull_of_task(app, task)
        .await?
        .as_ref()
        .map(super::forge::pull_info);
    Ok(info)
}

/// Loads a task for the user API by any reference ([`resolve::task`]): one the caller
/// can see, and for a task token only the tasks of its own issue (404 `task not found`
/// otherwise).
pub async fn load_for_reader(app: &App, who: &Principal, task_id: &str) -> Result<TaskRow, Error> {
    resolve::task(app, who, task_id).await
}

/// Loads a task for a daemon call by its exact id: 404 `task not found` when missing, in a
/// workspace the caller cannot see, or — for a daemon token — neither claimed under it
/// nor on a runtime it registered (the same answer, so ids cannot be probed).
pub async fn load_for(app: &App, who: &Principal, task_id: &str) -> Result<TaskRow, Error> {
    if !is_uuid(task_id) {
        return Err(Error::bad("invalid task_id"));
    }
    let not_found = || Error::NotFound(agentd_proto::TASK_NOT_FOUND);
    let t = match app.store.get_task(task_id.to_string()).await? {
        Some(t) if who.sees_workspace(&t.workspace_id) => t,
        _ => return Err(not_found()),
    };
    who.check_role(&t.workspace_id)?;
    let Some(me) = who.daemon_token() else {
        return Ok(t);
    };
    // Claimed under this token: it may report about the task even after its runtime was
    // deleted and re-registered under a new id.
    if t.claimed_by.as_deref() == Some(me) {
        return Ok(t);
    }
    match app.store.get_runtime(t.runtime_id.clone()).await? {
        Some(rt) if super::runtime::owns(who, &rt) => Ok(t),
        _ => Err(not_found()),
    }
}

/// A page of the task's transcript: up to `limit` messages after `after_seq`, and where
/// the task stands.
pub async fn messages(
    app: &App,
    task: &TaskRow,
    after_seq: i64,
    limit: i64,
) -> Result<MessagesPage, Error> {
    let mut rows = app
        .store
        .list_messages(task.id.clone(), after_seq, limit + 1)
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit.max(0) as usize);
    let next = match rows.last() {
        Some(last) if more => Some(last.seq),
        _ => None,
    };
    let messages = rows
        .into_iter()
        .map(|m| TaskMessage {
            seq: m.seq,
            kind: serde_json::from_value(serde_json::Value::String(m.kind))
                .unwrap_or(MessageKind::Unknown),
            tool: m.tool,
            content: m.content,
            input: m.input.and_then(|s| serde_json::from_str(&s).ok()),
            output: m.output,
            created_at: Some(super::rfc3339(m.created_at)),
        })
        .collect();
    Ok(MessagesPage {
        task_status: task.status.as_str().to_string(),
        messages,
        next,
    })
}

/// Claims the next task of the runtime (exactly-once; idempotent per `claim_key`) and
/// builds the claim response, including a fresh task token.
pub async fn claim(
    app: &App,
    rt: &RuntimeRow,
    claim_key: Option<String>,
) -> Result<Option<Task>, Error> {
    let now = app.now();
    // A claim is a sign of life.
    crate::liveness::seen(app, &rt.id, now, crate::liveness::Held::Nothing, false).await?;
    let token = new_token(TASK_TOKEN_PREFIX);
    let pool_agents = super::pool::served_by(app, rt).await?;
    let Some(row) = app
        .store
        .claim_task(
            rt.id.clone(),
            claim_key,
            hash_token(&token),
            now,
            pool_agents,
        )
        .await?
    else {
        return Ok(None);
    };
    task_event(app, "task", &row);
    Ok(Some(build_claimed(app, row, token).await?))
}

async fn build_claimed(app: &App, row: TaskRow, token: String) -> Result<Task, StoreError> {
    // One read for everything the answer carries (see `Store::claim_context`).
    let ctx = app.store.claim_context(row.clone()).await?;
    let repos: Vec<Repo> = match &ctx.repos {
        Some(urls) => repos_from_json(urls),
        None => Vec::new(),
    };
    let mut task = Task {
        id: row.id.clone(),
        agent_id: row.agent_id.clone(),
        runtime_id: row.runtime_id.clone(),
        issue_id: row.issue_id.clone(),
        workspace_id: row.workspace_id.clone(),
        repos,
        task_token: token,
        ..Default::default()
    };
    if let Some(name) = ctx.agent_name {
        task.agent = TaskAgent {
            id: row.agent_id.clone(),
            name,
            instructions: ctx.agent_instructions.unwrap_or_default(),
            skills: Vec::new(),
            custom_env: serde_json::from_str(ctx.agent_custom_env.as_deref().unwrap_or("{}"))
                .unwrap_or_default(),
            custom_args: serde_json::from_str(ctx.agent_custom_args.as_deref().unwrap_or("[]"))
                .unwrap_or_default(),
            mcp_config: None,
            model: ctx.agent_model.unwrap_or_default(),
        };
    }
    if let Some(title) = ctx.issue_title {
        task.issue_title = title;
        task.issue_description = ctx.issue_description.unwrap_or_default();
    }
    if let Some(id) = ctx.comment_id {
        task.trigger_comment_id = id;
        task.trigger_comment_content = ctx.comment_body.unwrap_or_default();
        task.trigger_author_type = ctx.comment_author_type.unwrap_or_default();
        task.trigger_author_name = ctx.comment_author_name.unwrap_or_default();
    }
    // Resume from the newest earlier run of this agent on this issue that left a session
    // (same runtime only: a session lives on one machine).
    if let Some(session) = ctx.prior_session_id {
        task.prior_session_id = session;
        task.prior_work_dir = ctx.prior_work_dir.unwrap_or_default();
    }
    // Continue on a branch: an open pull request's of this agent's work on the issue, else
    // the earlier run's (the daemon reuses its checkout, or checks that branch out anew).
    task.branch = ctx.branch;
    Ok(task)
}

/// `dispatched → running`. On a task that already ended, nothing moves and the answer
/// says where it stands, so the daemon stops the agent.
pub async fn start(app: &App, task: &TaskRow) -> Result<ReportResponse, Error> {
    let issue_status = issue_follows(app, &task.issue_id, TaskStatus::Running).await?;
    let moved = app
        .store
        .transition_task(Transition {
            task_id: task.id.clone(),
            from: vec![TaskStatus::Dispatched],
            to: TaskStatus::Running,
            issue_status,
            now: app.now(),
            ..Default::default()
        })
        .await?;
    if let Some(row) = &moved {
        task_event(app, "task", row);
        return Ok(answer(row.status, false));
    }
    let current = app
        .store
        .get_task(task.id.clone())
        .await?
        .ok_or_else(|| Error::NotFound(agentd_proto::TASK_NOT_FOUND))?;
    Ok(answer(current.status, false))
}

/// Where an issue goes when its task moves to `to`: the issue's status follows its work.
/// A run that starts moves a *To do* issue to *In progress*; a run that completes moves
/// it to *In review* unless it is already done or cancelled; a run that fails or is
/// cancelled moves an *In progress* issue back to *To do* (the task keeps its reason, and
/// a failure posts it as a comment), so it never sits "in progress" with nothing running.
/// Any other status is the user's choice and stays. `None`: leave the issue as it is.
pub(super) async fn issue_follows(
    app: &App,
    issue_id: &str,
    to: TaskStatus,
) -> Result<Option<String>, StoreError> {
    let Some(issue) = app.store.get_issue(issue_id.to_string()).await? else {
        return Ok(None);
    };
    Ok(match (issue.status.as_str(), to) {
        ("todo", TaskStatus::Running) => Some("in_progress".into()),
        ("done" | "cancelled", TaskStatus::Completed) => None,
        (_, TaskStatus::Completed) => Some("in_review".into()),
        ("in_progress", TaskStatus::Failed | TaskStatus::Cancelled) => Some("todo".into()),
        _ => None,
    })
}

/// The answer to a task report: where the task stands now.
pub fn answer(status: TaskStatus, late: bool) -> ReportResponse {
    ReportResponse {
        status: "ok".into(),
        task_status: Some(status),
        late,
    }
}

/// A report about a task (not its end) arrived: the daemon holds it, so its lease is
/// renewed. Answers where the task stands.
pub async fn held(app: &App, task: &TaskRow) -> Result<ReportResponse, StoreError> {
    app.store
        .renew_task_lease(task.id.clone(), app.now())
        .await?;
    Ok(answer(task.status, false))
}

async fn agent_name(app: &App, agent_id: &str) -> Result<String, StoreError> {
    Ok(app
        .store
        .get_agent(agent_id.to_string())
        .await?
        .map(|a| a.name)
        .unwrap_or_else(|| "agent".into()))
}

fn comment(
    app: &App,
    task: &TaskRow,
    author_type: &str,
    author_name: String,
    body: String,
) -> CommentRow {
    CommentRow {
        id: new_id(),
        issue_id: task.issue_id.clone(),
        author_type: author_type.into(),
        author_id: task.agent_id.clone(),
        author_name,
        body,
        created_at: app.now(),
    }
}

/// Completes a task. On a task that already ended (the server failed it, a user
/// cancelled it), the result is not dropped: it is recorded as a late report.
/// A completion that carries a pushed branch opens (or updates) the issue's pull request
/// in the background ([`super::forge::open_pull`]).
pub async fn complete(
    app: &Arc<App>,
    task: &TaskRow,
    req: CompleteRequest,
) -> Result<ReportResponse, Error> {
    let name = agent_name(app, &task.agent_id).await?;
    let body = if req.output.trim().is_empty() {
        "(the agent finished without output)".to_string()
    } else {
        req.output.clone()
    };
    let issue_status = issue_follows(app, &task.issue_id, TaskStatus::Completed).await?;
    let now = app.now();
    let diff = req.diff.map(|d| diff::row(d, now));
    let changed = changed_line(diff.as_ref());
    let moved = app
        .store
        .transition_task(Transition {
            task_id: task.id.clone(),
            from: IN_FLIGHT.to_vec(),
            to: TaskStatus::Completed,
            output: Some(req.output.clone()),
            session_id: req.session_id,
            work_dir: req.work_dir,
            branch_name: req
                .branch_name
                .or_else(|| req.pushed.as_ref().map(|p| p.branch.clone())),
            comment: Some(comment(app, task, "agent", name.clone(), body.clone())),
            issue_status,
            diff,
            now,
            ..Default::default()
        })
        .await?;
    if let Some(row) = &moved {
        app.metrics.task_ended(row.status);
        task_event(app, "task", row);
        if let Some(pushed) = req.pushed {
            super::forge::pushed_in_background(app, row.clone(), pushed);
        }
        return Ok(answer(row.status, false));
    }
    late_report(
        app,
        task,
        &name,
        // A task completes only through its daemon's complete: another one is a replay.
        |now| now.status == TaskStatus::Completed,
        format!("the agent finished after the task had ended{changed}. Its result:\n\n{body}"),
    )
    .await
}

/// ` (3 files changed, +10 -2)` for a late report that carried a diff (the task keeps
/// none: a late report changes nothing in it).
fn changed_line(diff: Option<&crate::store::DiffRow>) -> String {
    match diff {
        Some(d) => format!(" ({})", diff::summary(&d.stat())),
        None => String::new(),
    }
}

/// Fails a task as the daemon reported. On a task that already ended it is recorded as a
/// late report.
pub async fn fail(app: &App, task: &TaskRow, req: FailRequest) -> Result<ReportResponse, Error> {
    let reason = req
        .failure_reason
        .filter(|r| *r != FailureReason::Unknown)
        .unwrap_or(FailureReason::AgentError);
    let name = agent_name(app, &task.agent_id).await?;
    let error = req.error.clone();
    let diff = req.diff.map(|d| diff::row(d, app.now()));
    let changed = changed_line(diff.as_ref());
    let report = Report {
        session_id: req.session_id,
        work_dir: req.work_dir,
        branch_name: req.branch_name,
        diff,
    };
    if fail_inner(app, task, req.error, reason, report).await? {
        return Ok(answer(TaskStatus::Failed, false));
    }
    late_report(
        app,
        task,
        &name,
        // The very fail that ended the task, sent again (its answer was lost).
        |now| {
            now.status == TaskStatus::Failed
                && now.error.as_deref() == Some(error.as_str())
                && now.failure_reason == Some(reason)
        },
        format!(
            "the daemon reported the run failed ({}){changed}: {error}",
            reason_text(reason)
        ),
    )
    .await
}

/// Records the first final report that arrived for a task that had already ended, as a
/// system comment on its issue beginning `Late report:` (a replay posts nothing twice),
/// and answers that the task is over. A report that `is_replay` of the one that ended
/// the task (the daemon resends what it has no answer for) is no late report: it
/// changes nothing and answers `late: false`.
async fn late_report(
    app: &App,
    task: &TaskRow,
    agent_name: &str,
    is_replay: impl FnOnce(&TaskRow) -> bool,
    what: String,
) -> Result<ReportResponse, Error> {
    let current = app
        .store
        .get_task(task.id.clone())
        .await?
        .ok_or_else(|| Error::NotFound(agentd_proto::TASK_NOT_FOUND))?;
    if is_replay(&current) {
        return Ok(answer(current.status, false));
    }
    let ended = match current.failure_reason {
        Some(r) if current.status != TaskStatus::Completed => {
            format!("{} ({})", current.status.as_str(), reason_text(r))
        }
        _ => current.status.as_str().to_string(),
    };
    let body = format!(
        "Late report: task {} had already ended as {ended}; {what}",
        task.id
    );
    let c = comment(app, task, "system", agent_name.to_string(), body.clone());
    if app
        .store
        .record_late_report(task.id.clone(), body, c)
        .await?
    {
        tracing::info!(task_id = %task.id, status = current.status.as_str(), "late report recorded");
        task_event(app, "task", &current);
        if let Some(issue) = app.store.get_issue(task.issue_id.clone()).await? {
            super::issue_event(app, "comment", &issue);
        }
    }
    Ok(answer(current.status, true))
}

/// Fails a task on the server's own initiative (lease expired, orphaned).
pub async fn fail_by_server(
    app: &App,
    task: &TaskRow,
    error: &str,
    reason: FailureReason,
) -> Result<bool, StoreError> {
    fail_inner(app, task, error.into(), reason, Report::default()).await
}

/// What a daemon's fail report brings besides the error (nothing when the server fails
/// a task).
#[derive(Default)]
struct Report {
    session_id: Option<String>,
    work_dir: Option<String>,
    branch_name: Option<String>,
    diff: Option<crate::store::DiffRow>,
}

async fn fail_inner(
    app: &App,
    task: &TaskRow,
    error: String,
    reason: FailureReason,
    report: Report,
) -> Result<bool, StoreError> {
    let name = agent_name(app, &task.agent_id).await?;
    let body = format!("Task {} failed ({}): {error}", task.id, reason_text(reason));
    let issue_status = issue_follows(app, &task.issue_id, TaskStatus::Failed).await?;
    let moved = app
        .store
        .transition_task(Transition {
            task_id: task.id.clone(),
            from: IN_FLIGHT.to_vec(),
            to: TaskStatus::Failed,
            issue_status,
            error: Some(error),
            failure_reason: Some(reason),
            session_id: report.session_id,
            work_dir: report.work_dir,
            branch_name: report.branch_name,
            diff: report.diff,
            comment: Some(comment(app, task, "system", name, body)),
            now: app.now(),
            ..Default::default()
        })
        .await?;
    if let Some(row) = &moved {
        app.metrics.task_ended(row.status);
        task_event(app, "task", row);
        auto_retry(app, row).await?;
    }
    Ok(moved.is_some())
}

/// Whether a failure is worth another attempt: the machine or the model API went away
/// (the runtime silent past its lease, the daemon restarted or stopped, the model
/// overloaded or rate-limited), not the agent's own doing (its error, a timeout) nor a
/// person's (a cancel).
pub fn is_transient(reason: FailureReason) -> bool {
    matches!(
        reason,
        FailureReason::RuntimeOffline
            | FailureReason::Orphaned
            | FailureReason::DaemonShutdown
            | FailureReason::ModelUnavailable
    )
}

/// The wait before attempt `attempt + 1`: `config.retry_backoff` doubled per earlier
/// attempt, at most 64 times it.
fn backoff_ms(app: &App, attempt: i64) -> i64 {
    let base = i64::try_from(app.config.retry_backoff.as_millis()).unwrap_or(i64::MAX);
    base.saturating_mul(1 << (attempt - 1).clamp(0, 6))
}

/// After a transient failure, a new attempt of the task: linked to it (`parent_task_id`,
/// the parent's `retry_task_id`: one retry per task, also under a race), its attempt
/// number one higher, claimable after a backoff, on any runtime of the agent's pool (or
/// the agent's runtime). Up to the agent's `max_retries` per chain; the issue must still
/// be open. Wakes the runtimes when the backoff has passed.
async fn auto_retry(app: &App, failed: &TaskRow) -> Result<(), StoreError> {
    let Some(reason) = failed.failure_reason else {
        return Ok(());
    };
    if !is_transient(reason) || failed.retry_task_id.is_some() {
        return Ok(());
    }
    let Some(agent) = app.store.get_agent(failed.agent_id.clone()).await? else {
        return Ok(());
    };
    if failed.attempt > agent.max_retries {
        return Ok(());
    }
    let Some(issue) = app.store.get_issue(failed.issue_id.clone()).await? else {
        return Ok(());
    };
    if matches!(issue.status.as_str(), "done" | "cancelled") {
        return Ok(());
    }
    let wait = backoff_ms(app, failed.attempt);
    let mut new = new_task(
        app,
        &issue,
        &agent,
        failed.trigger_comment_id.clone(),
        Some(failed.id.clone()),
        None,
    );
    new.attempt = failed.attempt + 1;
    new.not_before = Some(app.now() + wait);
    if app.store.insert_retry(new.clone()).await?.is_err() {
        return Ok(()); // a person retried it first
    }
    tracing::info!(
        task_id = %failed.id,
        retry_task_id = %new.id,
        attempt = new.attempt,
        reason = reason_text(reason),
        wait_ms = wait,
        "transient failure: retrying"
    );
    task_event(app, "task", &new);
    let Some(app2) = app.arc() else {
        return Ok(());
    };
    let (task, shutdown) = (new, app.shutdown.clone());
    app.tracker.spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(wait.max(0) as u64)) => {
                if let Err(e) = wake(&app2, &task).await {
                    tracing::warn!(task_id = %task.id, "cannot wake runtimes for a retry: {e}");
                }
            }
            _ = shutdown.cancelled() => {}
        }
    });
    Ok(())
}

/// Wakes the runtimes of every retry whose backoff has passed by `now` and that was not
/// woken by the sweeper before (see [`crate::store::Store::take_due_retries`]). Its timer
/// in [`auto_retry`] lives in one instance's memory; this, run by the sweeper, is what
/// still wakes the retry after that instance restarted or died.
pub async fn wake_due_retries(app: &App, now: i64) -> Result<(), StoreError> {
    for task in app.store.take_due_retries(now).await? {
        wake(app, &task).await?;
    }
    Ok(())
}

/// Cancels a queued or in-flight task and pushes `daemon:task_cancelled` to its runtime;
/// `by` is recorded as who cancelled it. Returns whether it was active.
pub async fn cancel(app: &App, task: &TaskRow, why: &str, by: &Actor) -> Result<bool, StoreError> {
    let issue_status = issue_follows(app, &task.issue_id, TaskStatus::Cancelled).await?;
    let moved = app
        .store
        .transition_task(Transition {
            task_id: task.id.clone(),
            from: ACTIVE.to_vec(),
            to: TaskStatus::Cancelled,
            issue_status,
            error: Some(why.to_string()),
            failure_reason: Some(FailureReason::Cancelled),
            cancelled_by: Some(by.clone()),
            now: app.now(),
            ..Default::default()
        })
        .await?;
    if let Some(row) = &moved {
        app.metrics.task_ended(row.status);
        task_event(app, "task", row);
        crate::bus::publish(
            app,
            crate::bus::Signal::TaskCancelled {
                runtime_id: task.runtime_id.clone(),
                task_id: task.id.clone(),
            },
        );
    }
    Ok(moved.is_some())
}

/// A user cancels a task: it must not have ended (409 `already_ended`, naming its
/// status, when it has — also when it ended while this request ran). Returns the task
/// as it is now.
pub async fn cancel_by(app: &App, who: &Principal, task: &TaskRow) -> Result<TaskRow, Error> {
    let by = actor_of(app, who).await?;
    let cancelled =
        ACTIVE.contains(&task.status) && cancel(app, task, "cancelled by user", &by).await?;
    let now = app
        .store
        .get_task(task.id.clone())
        .await?
        .ok_or(Error::NotFound(agentd_proto::TASK_NOT_FOUND))?;
    if !cancelled {
        return Err(Error::Refused {
            code: agentd_proto::ERROR_ALREADY_ENDED,
            message: format!(
                "task {} already {}; nothing to cancel",
                short(&task.id),
                now.status.as_str()
            ),
            matches: Vec::new(),
        });
    }
    Ok(now)
}

/// Cancels every active task of an issue (`by`: who made that happen).
pub async fn cancel_issue_tasks(
    app: &App,
    issue_id: &str,
    why: &str,
    by: &Actor,
) -> Result<(), StoreError> {
    for t in app.store.list_issue_tasks(issue_id.to_string()).await? {
        if ACTIVE.contains(&t.status) {
            cancel(app, &t, why, by).await?;
        }
    }
    Ok(())
}

/// A new task for the same agent and issue (on the agent's current runtime), queued by
/// the caller. Only a failed or cancelled task can be retried, and only once: a second
/// retry, also a concurrent one, is 409 `already_retried` with the retry in `matches`.
pub async fn retry(app: &App, who: &Principal, task: &TaskRow) -> Result<TaskRow, Error> {
    if let Some(r) = &task.retry_task_id {
        return Err(already_retried(app, task, r.clone()).await?);
    }
    if !matches!(task.status, TaskStatus::Failed | TaskStatus::Cancelled) {
        return Err(Error::Conflict(format!(
            "task is {}; only failed or cancelled tasks can be retried",
            task.status.as_str()
        )));
    }
    let issue = app
        .store
        .get_issue(task.issue_id.clone())
        .await?
        .ok_or_else(|| Error::NotFound("issue not found"))?;
    let agent = app
        .store
        .get_agent(task.agent_id.clone())
        .await?
        .ok_or_else(|| Error::NotFound("agent not found"))?;
    let new = new_task(
        app,
        &issue,
        &agent,
        task.trigger_comment_id.clone(),
        Some(task.id.clone()),
        Some(actor_of(app, who).await?),
    );
    let new = TaskRow {
        attempt: task.attempt + 1,
        ..new
    };
    if let Err(existing) = app.store.insert_retry(new.clone()).await? {
        return Err(already_retried(app, task, existing).await?);
    }
    task_event(app, "task", &new);
    wake(app, &new).await?;
    Ok(new)
}

/// The 409 of a second retry of `task`: it names the retry (`matches`, labelled like an
/// ambiguous task: issue key, status, creation time).
async fn already_retried(app: &App, task: &TaskRow, retry_id: String) -> Result<Error, StoreError> {
    let label = match app.store.get_task(retry_id.clone()).await? {
        Some(r) => {
            let key = task_infos(app, std::slice::from_ref(&r))
                .await?
                .pop()
                .map(|i| i.issue_key)
                .unwrap_or_default();
            format!(
                "{key} {} {}",
                r.status.as_str(),
                super::rfc3339(r.created_at)
            )
        }
        None => format!("retry of task {}", short(&task.id)),
    };
    Ok(Error::Refused {
        code: agentd_proto::ERROR_ALREADY_RETRIED,
        message: format!("task {} was already retried as {retry_id}", short(&task.id)),
        matches: vec![RefMatch {
            id: retry_id,
            label,
        }],
    })
}

/// Fails the in-flight tasks of this runtime that its daemon does not hold:
/// `active_task_ids` are the tasks it still runs (or still owes a report for) and are
/// left alone; `None` (a daemon that does not say) means it holds none of them.
pub async fn recover_orphans(
    app: &App,
    runtime_id: &str,
    active_task_ids: Option<Vec<String>>,
) -> Result<i64, StoreError> {
    let held = active_task_ids.unwrap_or_default();
    let mut n = 0;
    for t in app
        .store
        .runtime_tasks(runtime_id.to_string(), IN_FLIGHT.to_vec())
        .await?
    {
        if held.contains(&t.id) {
            continue;
        }
        if fail_by_server(
            app,
            &t,
            "daemon restarted while the task was in flight",
            FailureReason::Orphaned,
        )
        .await?
        {
            n += 1;
        }
    }
    Ok(n)
}

/// Pins the task's session and work dir (while it is in flight) and renews its lease.
pub async fn pin_session(
    app: &App,
    task: &TaskRow,
    req: agentd_proto::SessionRequest,
) -> Result<ReportResponse, Error> {
    app.store
        .pin_session(task.id.clone(), req.session_id, req.work_dir)
        .await?;
    task_event(app, "task", task);
    Ok(held(app, task).await?)
}

/// Stores a batch of transcript messages (upsert on (task, seq)), also after the task
/// ended: what the agent said is never dropped. Renews the lease of an in-flight task.
pub async fn add_messages(
    app: &App,
    task: &TaskRow,
    req: MessagesRequest,
) -> Result<ReportResponse, Error> {
    let now = app.now();
    let rows = req
        .messages
        .into_iter()
        .map(|m| MessageRow {
            task_id: task.id.clone(),
            seq: m.seq,
            kind: m.kind.as_str().to_string(),
            tool: m.tool,
            content: m.content,
            input: m.input.map(|v| v.to_string()),
            output: m.output,
            created_at: now,
        })
        .collect();
    app.store.upsert_messages(rows).await?;
    task_event(app, "messages", task);
    Ok(held(app, task).await?)
}

/// Stores token usage (also after the task ended) and renews the lease.
pub async fn add_usage(
    app: &App,
    task: &TaskRow,
    req: UsageRequest,
) -> Result<ReportResponse, Error> {
    app.store.upsert_usage(task.id.clone(), req.usage).await?;
    task_event(app, "task", task);
    Ok(held(app, task).await?)
}
