//! What both SQL stores share: the column lists and row records they read with (SQL
//! that is the same on both engines), the conversion of a stored task to a [`TaskRow`],
//! and placeholder / reference helpers. No query runs here: each engine's file owns its
//! SQL statements.

use super::*;

pub(super) const TASK_COLS: &str = "id, workspace_id, issue_id, agent_id, runtime_id, status, claim_key, \
    trigger_comment_id, output, error, failure_reason, session_id, work_dir, parent_task_id, \
    created_at, dispatched_at, started_at, completed_at, branch_name, daemon_id, held_at, late_report, claimed_by, \
    queued_by_kind, queued_by_name, cancelled_by_kind, cancelled_by_name, retry_task_id, \
    attempt, not_before";

/// How many columns [`TASK_COLS`] names.
pub(super) const TASK_COLS_N: usize = 30;

/// The columns of a [`WorkspaceRow`].
pub(super) const WORKSPACE_COLS: &str = "id, name, repos, created_at, COALESCE(key, '') AS key";

/// The columns of an [`IssueRow`] from `issues i JOIN workspaces w` (see [`ISSUE_FROM`]):
/// its workspace's key and its number of tasks are read with it (one query per page).
pub(super) const ISSUE_COLS: &str = "i.id, i.workspace_id, i.title, i.description, i.status, \
    i.assignee_agent_id, i.created_at, i.updated_at, i.number, \
    COALESCE(w.key, '') AS workspace_key, \
    (SELECT COUNT(*) FROM tasks rc WHERE rc.issue_id = i.id) AS run_count";
pub(super) const ISSUE_FROM: &str = "issues i JOIN workspaces w ON w.id = i.workspace_id";

/// The claim, in one statement: with an idempotency key ($3) that this runtime ($1)
/// already claimed a task under, that task again (a new task token $4 and lease time $2,
/// nothing else moves); otherwise the oldest claimable queued task, moved to `dispatched`
/// on this runtime. Claimable: queued for this runtime, or for no runtime yet by an agent
/// of a pool this runtime serves (the agent ids in the JSON array $5); past its
/// `not_before`; its (issue, agent) has no task in flight; the runtime has fewer tasks in
/// flight than its capacity; the agent fewer than its `max_concurrency`. The `status`
/// guard makes the hand-out exactly-once. `lock` is appended to the queued pick
/// (PostgreSQL's `FOR UPDATE SKIP LOCKED`; empty on SQLite, whose single writer
/// serializes claims); `pool_ids` is the engine's way to read $5 as a set of ids. SET
/// expressions read the row as it was, so `status = 'queued'` tells a claim from a replay.
pub(super) fn claim_sql(lock: &str, pool_ids: &str) -> String {
    // The oldest claimable task of one queue: this runtime's own (`runtime_id = $1`) or
    // its pools' (`runtime_id = ''`, an agent of $5). Each queue is read on its own, in
    // index order (tasks_claim ends in `created_at, id`, so nothing is sorted), stopping
    // at the first task that passes; the older of the two is handed out. The checks are
    // built to cost the same whatever PostgreSQL's statistics say (they predate a burst
    // of claims until autovacuum runs, and then read "nothing is in flight"):
    // - the busy check is a lookup per candidate: `LIMIT 1 OFFSET 0` keeps the planner
    //   from turning it into an anti-join that hashes every task in flight;
    // - the in-flight counts run only when the runtime has a capacity or the agent a
    //   `max_concurrency` (`CASE` fixes the order of evaluation).
    let pick = |queue: &str| {
        format!(
            "(SELECT q.id FROM tasks q WHERE q.status = 'queued' AND {queue} \
               AND (q.not_before IS NULL OR q.not_before <= $2) \
               AND NOT EXISTS (SELECT 1 FROM tasks a WHERE a.issue_id = q.issue_id \
                 AND a.agent_id = q.agent_id AND a.status IN ('dispatched', 'running') \
                 LIMIT 1 OFFSET 0) \
               AND NOT EXISTS (SELECT 1 FROM runtimes r WHERE r.id = $1 \
                 AND CASE WHEN r.capacity IS NULL THEN FALSE \
                   ELSE (SELECT COUNT(*) FROM tasks f WHERE f.runtime_id = $1 \
                     AND f.status IN ('dispatched', 'running')) >= r.capacity END) \
               AND NOT EXISTS (SELECT 1 FROM agents c WHERE c.id = q.agent_id \
                 AND CASE WHEN c.max_concurrency IS NULL THEN FALSE \
                   ELSE (SELECT COUNT(*) FROM tasks g WHERE g.agent_id = q.agent_id \
                     AND g.status IN ('dispatched', 'running')) >= c.max_concurrency END) \
               ORDER BY q.created_at, q.id LIMIT 1 {lock})"
        )
    };
    let own = pick("q.runtime_id = $1");
    let pooled = pick(&format!("q.runtime_id = '' AND q.agent_id IN {pool_ids}"));
    format!(
        "UPDATE tasks SET \
           status = CASE WHEN status = 'queued' THEN 'dispatched' ELSE status END, \
           dispatched_at = CASE WHEN status = 'queued' THEN $2 ELSE dispatched_at END, \
           claim_key = CASE WHEN status = 'queued' THEN $3 ELSE claim_key END, \
           daemon_id = CASE WHEN status = 'queued' \
             THEN (SELECT r.daemon_id FROM runtimes r WHERE r.id = $1) ELSE daemon_id END, \
           claimed_by = CASE WHEN status = 'queued' \
             THEN (SELECT r.owner_token_id FROM runtimes r WHERE r.id = $1) ELSE claimed_by END, \
           runtime_id = $1, task_token_hash = $4, held_at = $2 \
         WHERE id = COALESCE( \
           (SELECT k.id FROM tasks k WHERE k.runtime_id = $1 AND k.claim_key = $3 \
             AND k.status IN ('dispatched', 'running') LIMIT 1), \
           (SELECT o.id FROM tasks o WHERE o.id IN ({own}, {pooled}) \
             ORDER BY o.created_at, o.id LIMIT 1)) \
         AND (status = 'queued' OR (runtime_id = $1 AND claim_key = $3 \
           AND status IN ('dispatched', 'running'))) \
         RETURNING {TASK_COLS}"
    )
}

/// [`claim_sql`]'s `pool_ids` on SQLite.
pub(super) const SQLITE_POOL_IDS: &str = "(SELECT value FROM json_each($5))";
/// [`claim_sql`]'s `pool_ids` on PostgreSQL (inside `agentd_claim`, migration 0005; the
/// unit test below checks the function runs `claim_sql` with it).
#[cfg(test)]
pub(super) const PG_POOL_IDS: &str = "(SELECT jsonb_array_elements_text($5::jsonb))";

/// Everything a claim's answer carries beyond the task row, in one read: the agent
/// ($1), the issue ($2), the workspace's repos ($3), the triggering comment ($4), the
/// newest earlier run of this agent on this issue and runtime ($5) that left a session
/// (other than the task $6 itself), and the branch to continue on: the agent's newest
/// open pull request's on the issue, else that earlier run's. See [`ClaimContext`].
pub(super) const CLAIM_CONTEXT_SQL: &str = "SELECT \
    a.name AS agent_name, a.instructions AS agent_instructions, a.model AS agent_model, \
    a.custom_env AS agent_custom_env, a.custom_args AS agent_custom_args, \
    i.title AS issue_title, i.description AS issue_description, w.repos AS repos, \
    c.id AS comment_id, c.body AS comment_body, c.author_type AS comment_author_type, \
    c.author_name AS comment_author_name, \
    pt.session_id AS prior_session_id, pt.work_dir AS prior_work_dir, \
    COALESCE(pr.head_branch, pt.branch_name) AS branch \
    FROM (SELECT 1 AS one) one \
    LEFT JOIN agents a ON a.id = $1 \
    LEFT JOIN issues i ON i.id = $2 \
    LEFT JOIN workspaces w ON w.id = $3 \
    LEFT JOIN comments c ON c.id = $4 \
    LEFT JOIN (SELECT p.session_id, p.work_dir, p.branch_name FROM tasks p WHERE p.issue_id = $2 \
      AND p.agent_id = $1 AND p.runtime_id = $5 AND p.id <> $6 \
      AND p.status IN ('completed', 'failed') AND p.session_id IS NOT NULL \
      ORDER BY p.created_at DESC, p.id DESC LIMIT 1) pt ON 1 = 1 \
    LEFT JOIN (SELECT q.head_branch FROM pull_requests q WHERE q.issue_id = $2 \
      AND q.agent_id = $1 AND q.state = 'open' \
      ORDER BY q.created_at DESC, q.id DESC LIMIT 1) pr ON 1 = 1";

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
    attempt: i64,
    not_before: Option<i64>,
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
            attempt: r.attempt,
            not_before: r.not_before,
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
    status, last_seen_at, created_at, owner_token_id, sandbox, capacity, labels";

pub(super) const TOKEN_COLS: &str =
    "id, name, kind, created_at, created_by, expires_at, revoked_at, last_used_at, owner_user_id";
pub(super) const USER_COLS: &str = "id, email, name, password_hash, is_admin, disabled, created_at";
pub(super) const SESSION_COLS: &str =
    "id_hash, user_id, csrf_token, created_at, expires_at, revoked_at";
pub(super) const INVITATION_COLS: &str = "id, token_hash, workspace_id, role, email, created_by, \
     created_at, expires_at, used_at, used_by, revoked_at";
pub(super) const MEMBERSHIP_COLS: &str = "workspace_id, user_id, role, created_at";
pub(super) const AUDIT_COLS: &str =
    "id, at, actor_kind, actor_id, actor_name, action, workspace_id, target, source_ip, detail";

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

#[cfg(test)]
mod tests {
    /// Whitespace-insensitive form of SQL text.
    fn words(sql: &str) -> String {
        sql.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// PostgreSQL runs the claim as the function `agentd_claim` of a migration; SQLite runs
    /// `claim_sql`. They must be the same statement.
    #[test]
    fn the_postgres_claim_function_runs_claim_sql() {
        let migration = words(include_str!(
            "../../migrations/postgres/0005_claim_plan.sql"
        ));
        let claim = words(&super::claim_sql(
            "FOR UPDATE SKIP LOCKED",
            super::PG_POOL_IDS,
        ))
        .replace(
            &words(&format!("RETURNING {}", super::TASK_COLS)),
            "RETURNING *",
        );
        assert!(
            migration.contains(&claim),
            "migrations/postgres/0005_claim_plan.sql no longer runs claim_sql:\n{claim}"
        );
    }
}
