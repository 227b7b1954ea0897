//! What both SQL stores share: the column lists and row records they read with (SQL
//! that is the same on both engines), the conversion of a stored task to a [`TaskRow`],
//! and placeholder / reference helpers. No query runs here: each engine's file owns its
//! SQL statements.

use super::*;

pub(super) const TASK_COLS: &str = "id, workspace_id, issue_id, agent_id, runtime_id, status, claim_key, \
    trigger_comment_id, output, error, failure_reason, session_id, work_dir, parent_task_id, \
    created_at, dispatched_at, started_at, completed_at, branch_name, daemon_id, held_at, late_report, claimed_by, \
    queued_by_kind, queued_by_name, cancelled_by_kind, cancelled_by_name, retry_task_id";

/// How many columns [`TASK_COLS`] names.
pub(super) const TASK_COLS_N: usize = 28;

/// The columns of a [`WorkspaceRow`].
pub(super) const WORKSPACE_COLS: &str = "id, name, repos, created_at, COALESCE(key, '') AS key";

/// The columns of an [`IssueRow`] from `issues i JOIN workspaces w` (see [`ISSUE_FROM`]):
/// its workspace's key and its number of tasks are read with it (one query per page).
pub(super) const ISSUE_COLS: &str = "i.id, i.workspace_id, i.title, i.description, i.status, \
    i.assignee_agent_id, i.created_at, i.updated_at, i.number, \
    COALESCE(w.key, '') AS workspace_key, \
    (SELECT COUNT(*) FROM tasks rc WHERE rc.issue_id = i.id) AS run_count";
pub(super) const ISSUE_FROM: &str = "issues i JOIN workspaces w ON w.id = i.workspace_id";

/// A `tasks` row as stored (statuses and reasons as TEXT); converted to [`TaskRow`] at
/// the boundary of every query by [`task_one`] / [`task_all`].
#[derive(sqlx::FromRow)]
pub(super) struct TaskRecord {
    id: String,
    workspace_id: String,
    issue_id: String,
    agent_id: String,
    runtime_id: String,
    status: String,
    claim_key: Option<String>,
    trigger_comment_id: Option<String>,
    output: Option<String>,
    error: Option<String>,
    failure_reason: Option<String>,
    session_id: Option<String>,
    work_dir: Option<String>,
    parent_task_id: Option<String>,
    created_at: i64,
    dispatched_at: Option<i64>,
    started_at: Option<i64>,
    completed_at: Option<i64>,
    branch_name: Option<String>,
    daemon_id: Option<String>,
    held_at: Option<i64>,
    late_report: Option<String>,
    claimed_by: Option<String>,
    queued_by_kind: Option<String>,
    queued_by_name: Option<String>,
    cancelled_by_kind: Option<String>,
    cancelled_by_name: Option<String>,
    retry_task_id: Option<String>,
}

impl TryFrom<TaskRecord> for TaskRow {
    type Error = StoreError;

    fn try_from(r: TaskRecord) -> Result<TaskRow, StoreError> {
        Ok(TaskRow {
            status: parse_status(&r.status)?,
            failure_reason: r.failure_reason.as_deref().map(parse_reason),
            id: r.id,
            workspace_id: r.workspace_id,
            issue_id: r.issue_id,
            agent_id: r.agent_id,
            runtime_id: r.runtime_id,
            claim_key: r.claim_key,
            trigger_comment_id: r.trigger_comment_id,
            output: r.output,
            error: r.error,
            session_id: r.session_id,
            work_dir: r.work_dir,
            parent_task_id: r.parent_task_id,
            created_at: r.created_at,
            dispatched_at: r.dispatched_at,
            started_at: r.started_at,
            completed_at: r.completed_at,
            branch_name: r.branch_name,
            daemon_id: r.daemon_id,
            held_at: r.held_at,
            late_report: r.late_report,
            claimed_by: r.claimed_by,
            queued_by: stored_actor(r.queued_by_kind, r.queued_by_name),
            cancelled_by: stored_actor(r.cancelled_by_kind, r.cancelled_by_name),
            retry_task_id: r.retry_task_id,
        })
    }
}

pub(super) fn task_one(r: Option<TaskRecord>) -> Result<Option<TaskRow>, StoreError> {
    r.map(TaskRow::try_from).transpose()
}

pub(super) fn task_all(rows: Vec<TaskRecord>) -> Result<Vec<TaskRow>, StoreError> {
    rows.into_iter().map(TaskRow::try_from).collect()
}

pub(super) const RUNTIME_COLS: &str = "id, workspace_id, daemon_id, provider, name, version, device_name, \
    status, last_seen_at, created_at, owner_token_id, sandbox";

pub(super) const TOKEN_COLS: &str =
    "id, name, kind, created_at, created_by, expires_at, revoked_at, last_used_at";

pub(super) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// ` AND col IN ($start, …)` for a workspace scope (`None`: no condition; an empty scope
/// matches nothing), and the number of placeholders it uses.
pub(super) fn in_clause(col: &str, ids: Option<&[String]>, start: usize) -> (String, usize) {
    match ids {
        None => (String::new(), 0),
        Some([]) => (" AND 1 = 0".to_string(), 0),
        Some(ids) => (
            format!(" AND {col} IN ({})", placeholders(start, ids.len())),
            ids.len(),
        ),
    }
}

/// The half-open range of ids starting with `prefix` (`id >= lo AND id < hi`), which an
/// index serves, unlike `LIKE`: `hi` is `prefix` with its last character incremented.
pub(super) fn prefix_range(prefix: &str) -> (String, String) {
    let mut hi: Vec<char> = prefix.chars().collect();
    if let Some(last) = hi.pop() {
        hi.push(char::from_u32(last as u32 + 1).unwrap_or(char::MAX));
    }
    (prefix.to_string(), hi.into_iter().collect())
}

/// The text values a [`RefQuery`] binds, in placeholder order (an issue key binds its
/// number separately).
pub(super) fn ref_binds(r: &RefQuery) -> Vec<String> {
    match r {
        RefQuery::Prefix(p) => {
            let (lo, hi) = prefix_range(p);
            vec![lo, hi]
        }
        RefQuery::Name(n) => vec![n.clone()],
        RefQuery::WorkspaceKey(k) => vec![k.clone()],
        RefQuery::IssueKey(k, _) => vec![k.clone()],
    }
}

/// The condition of a name or id-prefix reference on a table with `id` and `name`
/// columns, and how many placeholders it uses; `None` for the other kinds.
pub(super) fn name_or_prefix(r: &RefQuery) -> Option<(String, usize)> {
    match r {
        RefQuery::Name(_) => Some(("LOWER(name) = LOWER($1)".into(), 1)),
        RefQuery::Prefix(_) => Some(("id >= $1 AND id < $2".into(), 2)),
        _ => None,
    }
}

/// `s` with LIKE's wildcards and the escape character escaped (by `\`).
pub(super) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A count as a 64-bit SQL integer holds it (a count past `i64::MAX` is stored as that).
pub(super) fn stored_count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored count (never negative).
pub(super) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub(super) const FORGE_COLS: &str = "workspace_id, kind, api_url, repo, repo_key, token, webhook_secret, \
    poll, created_at, updated_at";
pub(super) const PULL_COLS: &str = "id, workspace_id, issue_id, task_id, agent_id, number, url, state, \
    head_branch, head_sha, base_branch, review_state, checks_state, polled_at, created_at, \
    updated_at";
