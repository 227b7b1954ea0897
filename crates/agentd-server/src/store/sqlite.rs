//! The SQLite [`Store`]: one file in the data dir, WAL mode, `synchronous = NORMAL`.
//! Every write transaction starts with `BEGIN IMMEDIATE` and goes through one in-process
//! writer lock, so concurrent writers queue in order instead of spinning on SQLITE_BUSY.
//! All SQL uses `$n` placeholders so it ports to PostgreSQL unchanged, except the claim
//! (which on PostgreSQL would use `FOR UPDATE SKIP LOCKED`).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Sqlite, SqlitePool, Transaction};
use tokio::sync::Mutex;

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

const TOKEN_COLS: &str =
    "id, name, kind, created_at, created_by, expires_at, revoked_at, last_used_at";

pub struct SqliteStore {
    pub(super) pool: SqlitePool,
    writer: Mutex<()>,
}

impl SqliteStore {
    /// Opens (creating if missing) `path` and applies the embedded migrations.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore {
            pool,
            writer: Mutex::new(()),
        })
    }

    pub(super) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(
            &'c mut Transaction<'static, Sqlite>,
        )
            -> Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'c>>,
    {
        let _guard = self.writer.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let out = f(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }
}

pub(super) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store for SqliteStore {
    fn close(&self) -> StoreFut<'_, ()> {
        Box::pin(async move {
            self.pool.close().await;
            Ok(())
        })
    }

    fn create_workspace(
        &self,
        ws: WorkspaceRow,
        grant_token: Option<String>,
    ) -> StoreFut<'_, bool> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                if key_taken(tx, &ws.key).await? {
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO workspaces (id, name, repos, created_at, key) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&ws.id)
                .bind(&ws.name)
                .bind(&ws.repos)
                .bind(ws.created_at)
                .bind(&ws.key)
                .execute(&mut **tx)
                .await?;
                if let Some(token_id) = grant_token {
                    sqlx::query(
                        "INSERT INTO token_workspaces (token_id, workspace_id) VALUES ($1, $2)",
                    )
                    .bind(&token_id)
                    .bind(&ws.id)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(true)
            })
        }))
    }

    fn set_workspace_key(&self, id: String, key: String) -> StoreFut<'_, bool> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                if key_taken(tx, &key).await? {
                    return Ok(false);
                }
                let r = sqlx::query("UPDATE workspaces SET key = $2 WHERE id = $1 AND key IS NULL")
                    .bind(&id)
                    .bind(&key)
                    .execute(&mut **tx)
                    .await?;
                Ok(r.rows_affected() > 0)
            })
        }))
    }

    fn workspace_keys(&self) -> StoreFut<'_, Vec<String>> {
        Box::pin(async move {
            Ok(
                sqlx::query_scalar::<_, String>("SELECT key FROM workspaces WHERE key IS NOT NULL")
                    .fetch_all(&self.pool)
                    .await?,
            )
        })
    }

    fn workspaces_by_ref(
        &self,
        workspace_ids: Option<Vec<String>>,
        r: RefQuery,
    ) -> StoreFut<'_, Vec<WorkspaceRow>> {
        Box::pin(async move {
            let (clause, binds) = match &r {
                RefQuery::Name(_) => ("LOWER(name) = LOWER($1)".to_string(), 1),
                RefQuery::WorkspaceKey(_) => ("key = $1".to_string(), 1),
                RefQuery::Prefix(_) => ("id >= $1 AND id < $2".to_string(), 2),
                RefQuery::IssueKey(..) => return Ok(Vec::new()),
            };
            let (scope, _) = in_clause("id", workspace_ids.as_deref(), binds + 1);
            let sql = format!(
                "SELECT {WORKSPACE_COLS} FROM workspaces WHERE {clause}{scope} \
                 ORDER BY created_at, id LIMIT {REF_CANDIDATES}"
            );
            let mut q = sqlx::query_as::<_, WorkspaceRow>(AssertSqlSafe(sql));
            for b in ref_binds(&r) {
                q = q.bind(b);
            }
            for id in workspace_ids.into_iter().flatten() {
                q = q.bind(id);
            }
            Ok(q.fetch_all(&self.pool).await?)
        })
    }

    fn get_workspace(&self, id: String) -> StoreFut<'_, Option<WorkspaceRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, WorkspaceRow>(AssertSqlSafe(format!(
                "SELECT {WORKSPACE_COLS} FROM workspaces WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
        })
    }

    fn list_workspaces(&self, ids: Option<Vec<String>>) -> StoreFut<'_, Vec<WorkspaceRow>> {
        Box::pin(async move {
            let base = format!("SELECT {WORKSPACE_COLS} FROM workspaces");
            Ok(match ids {
                None => {
                    sqlx::query_as::<_, WorkspaceRow>(AssertSqlSafe(format!(
                        "{base} ORDER BY created_at, id"
                    )))
                    .fetch_all(&self.pool)
                    .await?
                }
                Some(ids) if ids.is_empty() => Vec::new(),
                Some(ids) => {
                    let sql = format!(
                        "{base} WHERE id IN ({}) ORDER BY created_at, id",
                        placeholders(1, ids.len())
                    );
                    let mut q = sqlx::query_as::<_, WorkspaceRow>(AssertSqlSafe(sql));
                    for id in ids {
                        q = q.bind(id);
                    }
                    q.fetch_all(&self.pool).await?
                }
            })
        })
    }

    fn create_token(
        &self,
        token: TokenRow,
        hash: String,
        workspace_ids: Vec<String>,
    ) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                insert_token(tx, &token, &hash).await?;
                for ws in workspace_ids {
                    sqlx::query(
                        "INSERT INTO token_workspaces (token_id, workspace_id) VALUES ($1, $2)",
                    )
                    .bind(&token.id)
                    .bind(ws)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            })
        }))
    }

    fn find_token(&self, hash: String) -> StoreFut<'_, Option<(TokenRow, Vec<String>)>> {
        Box::pin(async move {
            let token = sqlx::query_as::<_, TokenRow>(AssertSqlSafe(format!(
                "SELECT {TOKEN_COLS} FROM api_tokens WHERE token_hash = $1"
            )))
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
            self.with_workspaces(token).await
        })
    }

    fn get_token(&self, id: String) -> StoreFut<'_, Option<(TokenRow, Vec<String>)>> {
        Box::pin(async move {
            let token = sqlx::query_as::<_, TokenRow>(AssertSqlSafe(format!(
                "SELECT {TOKEN_COLS} FROM api_tokens WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            self.with_workspaces(token).await
        })
    }

    fn list_tokens(
        &self,
        self_or_creator: Option<String>,
    ) -> StoreFut<'_, Vec<(TokenRow, Vec<String>)>> {
        Box::pin(async move {
            let rows = sqlx::query_as::<_, TokenRow>(AssertSqlSafe(format!(
                "SELECT {TOKEN_COLS} FROM api_tokens \
                 WHERE $1 IS NULL OR id = $1 OR created_by = $1 ORDER BY created_at, id"
            )))
            .bind(self_or_creator)
            .fetch_all(&self.pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                if let Some(t) = self.with_workspaces(Some(row)).await? {
                    out.push(t);
                }
            }
            Ok(out)
        })
    }

    fn revoke_token(&self, id: String, now: i64) -> StoreFut<'_, bool> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let r = sqlx::query(
                    "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(&id)
                .bind(now)
                .execute(&mut **tx)
                .await?;
                Ok(r.rows_affected() > 0)
            })
        }))
    }

    fn touch_token(&self, id: String, now: i64, stale_before: i64) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 \
                     AND (last_used_at IS NULL OR last_used_at < $3)",
                )
                .bind(&id)
                .bind(now)
                .bind(stale_before)
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        }))
    }

    fn replace_admin_token(&self, token: TokenRow, hash: String, now: i64) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE api_tokens SET revoked_at = $1 \
                     WHERE kind = 'admin' AND revoked_at IS NULL",
                )
                .bind(now)
                .execute(&mut **tx)
                .await?;
                insert_token(tx, &token, &hash).await
            })
        }))
    }

    fn create_signin_code(
        &self,
        hash: String,
        token_id: String,
        now: i64,
        expires_at: i64,
    ) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                // Codes are short-lived: those expired a day ago go, so the table stays
                // small without a sweeper.
                sqlx::query("DELETE FROM signin_codes WHERE expires_at < $1")
                    .bind(now - 24 * 3_600_000)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO signin_codes (code_hash, token_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&hash)
                .bind(&token_id)
                .bind(now)
                .bind(expires_at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        }))
    }

    fn consume_signin_code(&self, hash: String, now: i64) -> StoreFut<'_, Option<String>> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                Ok(sqlx::query_scalar::<_, String>(
                    "UPDATE signin_codes SET used_at = $2 \
                     WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 \
                     RETURNING token_id",
                )
                .bind(&hash)
                .bind(now)
                .fetch_optional(&mut **tx)
                .await?)
            })
        }))
    }

    fn upsert_runtime(&self, rt: RuntimeRow) -> StoreFut<'_, RuntimeRow> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let sql = format!(
                    "INSERT INTO runtimes ({RUNTIME_COLS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (workspace_id, daemon_id, provider) DO UPDATE SET \
                     name = excluded.name, version = excluded.version, \
                     device_name = excluded.device_name, status = excluded.status, \
                     last_seen_at = excluded.last_seen_at, \
                     owner_token_id = excluded.owner_token_id, \
                     sandbox = excluded.sandbox \
                     RETURNING {RUNTIME_COLS}"
                );
                Ok(sqlx::query_as::<_, RuntimeRow>(AssertSqlSafe(sql))
                    .bind(&rt.id)
                    .bind(&rt.workspace_id)
                    .bind(&rt.daemon_id)
                    .bind(&rt.provider)
                    .bind(&rt.name)
                    .bind(&rt.version)
                    .bind(&rt.device_name)
                    .bind(&rt.status)
                    .bind(rt.last_seen_at)
                    .bind(rt.created_at)
                    .bind(&rt.owner_token_id)
                    .bind(&rt.sandbox)
                    .fetch_one(&mut **tx)
                    .await?)
            })
        }))
    }

    fn reassign_claims(&self, daemon_id: String, from: String, to: String) -> StoreFut<'_, u64> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let r = sqlx::query(
                    "UPDATE tasks SET claimed_by = $3 WHERE daemon_id = $1 AND claimed_by = $2 \
                     AND status IN ('dispatched', 'running')",
                )
                .bind(&daemon_id)
                .bind(&from)
                .bind(&to)
                .execute(&mut **tx)
                .await?;
                Ok(r.rows_affected())
            })
        }))
    }

    fn get_runtime(&self, id: String) -> StoreFut<'_, Option<RuntimeRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, RuntimeRow>(AssertSqlSafe(format!(
                "SELECT {RUNTIME_COLS} FROM runtimes WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
        })
    }

    fn list_runtimes(
        &self,
        workspace_id: String,
        daemon_id: Option<String>,
    ) -> StoreFut<'_, Vec<RuntimeRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, RuntimeRow>(AssertSqlSafe(format!(
                "SELECT {RUNTIME_COLS} FROM runtimes WHERE workspace_id = $1 \
                 AND ($2 IS NULL OR daemon_id = $2) ORDER BY created_at, id"
            )))
            .bind(workspace_id)
            .bind(daemon_id)
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn delete_runtime(&self, id: String) -> StoreFut<'_, bool> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let r = sqlx::query("DELETE FROM runtimes WHERE id = $1")
                    .bind(&id)
                    .execute(&mut **tx)
                    .await?;
                Ok(r.rows_affected() > 0)
            })
        }))
    }

    fn runtimes_by_ref(
        &self,
        workspace_ids: Option<Vec<String>>,
        r: RefQuery,
    ) -> StoreFut<'_, Vec<RuntimeRow>> {
        Box::pin(async move {
            let Some((clause, n)) = name_or_prefix(&r) else {
                return Ok(Vec::new());
            };
            let (scope, _) = in_clause("workspace_id", workspace_ids.as_deref(), n + 1);
            let sql = format!(
                "SELECT {RUNTIME_COLS} FROM runtimes WHERE {clause}{scope} \
                 ORDER BY created_at, id LIMIT {REF_CANDIDATES}"
            );
            let mut q = sqlx::query_as::<_, RuntimeRow>(AssertSqlSafe(sql));
            for b in ref_binds(&r) {
                q = q.bind(b);
            }
            for id in workspace_ids.into_iter().flatten() {
                q = q.bind(id);
            }
            Ok(q.fetch_all(&self.pool).await?)
        })
    }

    fn touch_runtime(&self, id: String, now: i64) -> StoreFut<'_, Touched> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                // Two guarded updates in one transaction: the first only matches a
                // runtime coming back, so the common heartbeat costs one cheap no-op.
                let back = sqlx::query_as::<_, RuntimeRow>(AssertSqlSafe(format!(
                    "UPDATE runtimes SET status = 'online', last_seen_at = $2 \
                     WHERE id = $1 AND status <> 'online' RETURNING {RUNTIME_COLS}"
                )))
                .bind(&id)
                .bind(now)
                .fetch_optional(&mut **tx)
                .await?;
                if let Some(row) = back {
                    return Ok(Touched::CameOnline(Box::new(row)));
                }
                let r = sqlx::query("UPDATE runtimes SET last_seen_at = $2 WHERE id = $1")
                    .bind(&id)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                Ok(if r.rows_affected() > 0 {
                    Touched::Seen
                } else {
                    Touched::Missing
                })
            })
        }))
    }

    fn set_runtime_offline(&self, id: String) -> StoreFut<'_, bool> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let r = sqlx::query("UPDATE runtimes SET status = 'offline' WHERE id = $1")
                    .bind(&id)
                    .execute(&mut **tx)
                    .await?;
                Ok(r.rows_affected() > 0)
            })
        }))
    }

    fn offline_stale_runtimes(&self, cutoff: i64) -> StoreFut<'_, Vec<RuntimeRow>> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                Ok(sqlx::query_as::<_, RuntimeRow>(AssertSqlSafe(format!(
                    "UPDATE runtimes SET status = 'offline' WHERE status = 'online' \
                     AND (last_seen_at IS NULL OR last_seen_at < $1) RETURNING {RUNTIME_COLS}"
                )))
                .bind(cutoff)
                .fetch_all(&mut **tx)
                .await?)
            })
        }))
    }

    fn daemon_seen_since(&self, daemon_id: String, since: i64) -> StoreFut<'_, bool> {
        Box::pin(async move {
            Ok(sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM runtimes WHERE daemon_id = $1 AND last_seen_at >= $2",
            )
            .bind(daemon_id)
            .bind(since)
            .fetch_one(&self.pool)
            .await?
                > 0)
        })
    }

    fn offline_if_unseen_since(&self, id: String, since: i64) -> StoreFut<'_, bool> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let r = sqlx::query(
                    "UPDATE runtimes SET status = 'offline' WHERE id = $1 AND status = 'online' \
                     AND (last_seen_at IS NULL OR last_seen_at <= $2)",
                )
                .bind(&id)
                .bind(since)
                .execute(&mut **tx)
                .await?;
                Ok(r.rows_affected() > 0)
            })
        }))
    }

    fn create_agent(&self, a: AgentRow) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO agents (id, workspace_id, runtime_id, name, instructions, model, \
                     custom_args, custom_env, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&a.id)
                .bind(&a.workspace_id)
                .bind(&a.runtime_id)
                .bind(&a.name)
                .bind(&a.instructions)
                .bind(&a.model)
                .bind(&a.custom_args)
                .bind(&a.custom_env)
                .bind(a.created_at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        }))
    }

    fn get_agent(&self, id: String) -> StoreFut<'_, Option<AgentRow>> {
        Box::pin(async move {
            Ok(
                sqlx::query_as::<_, AgentRow>("SELECT * FROM agents WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?,
            )
        })
    }

    fn list_agents(&self, workspace_id: String) -> StoreFut<'_, Vec<AgentRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, AgentRow>(
                "SELECT * FROM agents WHERE workspace_id = $1 ORDER BY created_at, id",
            )
            .bind(workspace_id)
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn agents_by_ref(
        &self,
        workspace_ids: Option<Vec<String>>,
        r: RefQuery,
    ) -> StoreFut<'_, Vec<AgentRow>> {
        Box::pin(async move {
            let Some((clause, n)) = name_or_prefix(&r) else {
                return Ok(Vec::new());
            };
            let (scope, _) = in_clause("workspace_id", workspace_ids.as_deref(), n + 1);
            let sql = format!(
                "SELECT * FROM agents WHERE {clause}{scope} \
                 ORDER BY created_at, id LIMIT {REF_CANDIDATES}"
            );
            let mut q = sqlx::query_as::<_, AgentRow>(AssertSqlSafe(sql));
            for b in ref_binds(&r) {
                q = q.bind(b);
            }
            for id in workspace_ids.into_iter().flatten() {
                q = q.bind(id);
            }
            Ok(q.fetch_all(&self.pool).await?)
        })
    }

    fn update_agent(&self, a: AgentRow) -> StoreFut<'_, Vec<TaskRow>> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE agents SET runtime_id = $2, name = $3, instructions = $4, model = $5, \
                     custom_args = $6, custom_env = $7 WHERE id = $1",
                )
                .bind(&a.id)
                .bind(&a.runtime_id)
                .bind(&a.name)
                .bind(&a.instructions)
                .bind(&a.model)
                .bind(&a.custom_args)
                .bind(&a.custom_env)
                .execute(&mut **tx)
                .await?;
                task_all(
                    sqlx::query_as::<_, TaskRecord>(AssertSqlSafe(format!(
                        "UPDATE tasks SET runtime_id = $2 WHERE agent_id = $1 AND status = 'queued' \
                         AND runtime_id <> $2 RETURNING {TASK_COLS}"
                    )))
                    .bind(&a.id)
                    .bind(&a.runtime_id)
                    .fetch_all(&mut **tx)
                    .await?,
                )
            })
        }))
    }
}

impl SqliteStore {
    /// The token with its workspaces.
    async fn with_workspaces(
        &self,
        token: Option<TokenRow>,
    ) -> Result<Option<(TokenRow, Vec<String>)>, StoreError> {
        let Some(token) = token else {
            return Ok(None);
        };
        let ws: Vec<(String,)> = sqlx::query_as(
            "SELECT workspace_id FROM token_workspaces WHERE token_id = $1 ORDER BY workspace_id",
        )
        .bind(&token.id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some((token, ws.into_iter().map(|(w,)| w).collect())))
    }
}

/// Whether a workspace has this key.
async fn key_taken(tx: &mut Transaction<'static, Sqlite>, key: &str) -> Result<bool, StoreError> {
    Ok(
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM workspaces WHERE key = $1")
            .bind(key)
            .fetch_one(&mut **tx)
            .await?
            > 0,
    )
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
fn name_or_prefix(r: &RefQuery) -> Option<(String, usize)> {
    match r {
        RefQuery::Name(_) => Some(("LOWER(name) = LOWER($1)".into(), 1)),
        RefQuery::Prefix(_) => Some(("id >= $1 AND id < $2".into(), 2)),
        _ => None,
    }
}

/// Records an issue event.
pub(super) async fn insert_event(
    tx: &mut Transaction<'static, Sqlite>,
    e: &EventRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO issue_events (issue_id, kind, actor_kind, actor_name, from_status, \
         to_status, detail, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&e.issue_id)
    .bind(&e.kind)
    .bind(actor_kind_text(e.actor.kind))
    .bind(&e.actor.name)
    .bind(&e.from_status)
    .bind(&e.to_status)
    .bind(&e.detail)
    .bind(e.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Moves an issue to `to` because its work moved (the server did it): records a
/// `status_changed` event by the system when the status really changes.
pub(super) async fn move_issue(
    tx: &mut Transaction<'static, Sqlite>,
    issue_id: &str,
    to: &str,
    now: i64,
) -> Result<(), StoreError> {
    let from: Option<String> = sqlx::query_scalar("SELECT status FROM issues WHERE id = $1")
        .bind(issue_id)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(from) = from else {
        return Ok(());
    };
    sqlx::query("UPDATE issues SET status = $2, updated_at = $3 WHERE id = $1")
        .bind(issue_id)
        .bind(to)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    if from != to {
        insert_event(
            tx,
            &EventRow {
                issue_id: issue_id.to_string(),
                kind: "status_changed".into(),
                actor: system_actor(),
                from_status: Some(from),
                to_status: Some(to.to_string()),
                detail: None,
                created_at: now,
            },
        )
        .await?;
    }
    Ok(())
}

async fn insert_token(
    tx: &mut Transaction<'static, Sqlite>,
    t: &TokenRow,
    hash: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_tokens (id, token_hash, name, kind, created_at, created_by, expires_at, \
         revoked_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&t.id)
    .bind(hash)
    .bind(&t.name)
    .bind(&t.kind)
    .bind(t.created_at)
    .bind(&t.created_by)
    .bind(t.expires_at)
    .bind(t.revoked_at)
    .bind(t.last_used_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) async fn insert_comment(
    tx: &mut Transaction<'static, Sqlite>,
    c: &CommentRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO comments (id, issue_id, author_type, author_id, author_name, body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&c.id)
    .bind(&c.issue_id)
    .bind(&c.author_type)
    .bind(&c.author_id)
    .bind(&c.author_name)
    .bind(&c.body)
    .bind(c.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
