//! The SQLite [`Store`]: one file in the data dir, WAL mode, `synchronous = NORMAL`.
//! Every write transaction starts with `BEGIN IMMEDIATE` and goes through one in-process
//! writer lock, so concurrent writers queue in order instead of spinning on SQLITE_BUSY.
//! All SQL uses `$n` placeholders so it ports to PostgreSQL unchanged, except the claim
//! (which on PostgreSQL would use `FOR UPDATE SKIP LOCKED`).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use agentd_proto::UsageEntry;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Sqlite, SqlitePool, Transaction};
use tokio::sync::Mutex;

use super::*;

const TASK_COLS: &str = "id, workspace_id, issue_id, agent_id, runtime_id, status, claim_key, \
    trigger_comment_id, output, error, failure_reason, session_id, work_dir, parent_task_id, \
    created_at, dispatched_at, started_at, completed_at";

const RUNTIME_COLS: &str = "id, workspace_id, daemon_id, provider, name, version, device_name, \
    status, last_seen_at, created_at";

pub struct SqliteStore {
    pool: SqlitePool,
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

    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
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

fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store for SqliteStore {
    fn create_workspace(&self, ws: WorkspaceRow, grant_token: Option<String>) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO workspaces (id, name, repos, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(&ws.id)
                .bind(&ws.name)
                .bind(&ws.repos)
                .bind(ws.created_at)
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
                Ok(())
            })
        }))
    }

    fn get_workspace(&self, id: String) -> StoreFut<'_, Option<WorkspaceRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, WorkspaceRow>(
                "SELECT id, name, repos, created_at FROM workspaces WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
        })
    }

    fn list_workspaces(&self, ids: Option<Vec<String>>) -> StoreFut<'_, Vec<WorkspaceRow>> {
        Box::pin(async move {
            let base = "SELECT id, name, repos, created_at FROM workspaces";
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
                sqlx::query(
                    "INSERT INTO api_tokens (id, token_hash, name, is_admin, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&token.id)
                .bind(&hash)
                .bind(&token.name)
                .bind(token.is_admin)
                .bind(token.created_at)
                .execute(&mut **tx)
                .await?;
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
            let Some(token) = sqlx::query_as::<_, TokenRow>(
                "SELECT id, name, is_admin, created_at FROM api_tokens WHERE token_hash = $1",
            )
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?
            else {
                return Ok(None);
            };
            let ws: Vec<(String,)> =
                sqlx::query_as("SELECT workspace_id FROM token_workspaces WHERE token_id = $1")
                    .bind(&token.id)
                    .fetch_all(&self.pool)
                    .await?;
            Ok(Some((token, ws.into_iter().map(|(w,)| w).collect())))
        })
    }

    fn upsert_runtime(&self, rt: RuntimeRow) -> StoreFut<'_, RuntimeRow> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let sql = format!(
                    "INSERT INTO runtimes ({RUNTIME_COLS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (workspace_id, daemon_id, provider) DO UPDATE SET \
                     name = excluded.name, version = excluded.version, \
                     device_name = excluded.device_name, status = excluded.status, \
                     last_seen_at = excluded.last_seen_at \
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
                    .fetch_one(&mut **tx)
                    .await?)
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

    fn touch_runtime(&self, id: String, now: i64) -> StoreFut<'_, bool> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let r = sqlx::query(
                    "UPDATE runtimes SET status = 'online', last_seen_at = $2 WHERE id = $1",
                )
                .bind(&id)
                .bind(now)
                .execute(&mut **tx)
                .await?;
                Ok(r.rows_affected() > 0)
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
                Ok(sqlx::query_as::<_, TaskRow>(AssertSqlSafe(format!(
                    "UPDATE tasks SET runtime_id = $2 WHERE agent_id = $1 AND status = 'queued' \
                     AND runtime_id <> $2 RETURNING {TASK_COLS}"
                )))
                .bind(&a.id)
                .bind(&a.runtime_id)
                .fetch_all(&mut **tx)
                .await?)
            })
        }))
    }

    fn create_issue(&self, i: IssueRow) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO issues (id, workspace_id, title, description, status, \
                     assignee_agent_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&i.id)
                .bind(&i.workspace_id)
                .bind(&i.title)
                .bind(&i.description)
                .bind(&i.status)
                .bind(&i.assignee_agent_id)
                .bind(i.created_at)
                .bind(i.updated_at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        }))
    }

    fn get_issue(&self, id: String) -> StoreFut<'_, Option<IssueRow>> {
        Box::pin(async move {
            Ok(
                sqlx::query_as::<_, IssueRow>("SELECT * FROM issues WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?,
            )
        })
    }

    fn list_issues(&self, ids: Option<Vec<String>>) -> StoreFut<'_, Vec<IssueRow>> {
        Box::pin(async move {
            Ok(match ids {
                None => {
                    sqlx::query_as::<_, IssueRow>("SELECT * FROM issues ORDER BY created_at, id")
                        .fetch_all(&self.pool)
                        .await?
                }
                Some(ids) if ids.is_empty() => Vec::new(),
                Some(ids) => {
                    let sql = format!(
                        "SELECT * FROM issues WHERE workspace_id IN ({}) ORDER BY created_at, id",
                        placeholders(1, ids.len())
                    );
                    let mut q = sqlx::query_as::<_, IssueRow>(AssertSqlSafe(sql));
                    for id in ids {
                        q = q.bind(id);
                    }
                    q.fetch_all(&self.pool).await?
                }
            })
        })
    }

    fn update_issue(&self, i: IssueRow) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE issues SET title = $2, description = $3, status = $4, \
                     assignee_agent_id = $5, updated_at = $6 WHERE id = $1",
                )
                .bind(&i.id)
                .bind(&i.title)
                .bind(&i.description)
                .bind(&i.status)
                .bind(&i.assignee_agent_id)
                .bind(i.updated_at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        }))
    }

    fn add_comment(&self, c: CommentRow) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| Box::pin(async move { insert_comment(tx, &c).await })))
    }

    fn get_comment(&self, id: String) -> StoreFut<'_, Option<CommentRow>> {
        Box::pin(async move {
            Ok(
                sqlx::query_as::<_, CommentRow>("SELECT * FROM comments WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?,
            )
        })
    }

    fn list_comments(&self, issue_id: String) -> StoreFut<'_, Vec<CommentRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, CommentRow>(
                "SELECT * FROM comments WHERE issue_id = $1 ORDER BY created_at, id",
            )
            .bind(issue_id)
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn insert_task(&self, t: TaskRow) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO tasks ({TASK_COLS}) VALUES ({})",
                    placeholders(1, 18)
                )))
                .bind(&t.id)
                .bind(&t.workspace_id)
                .bind(&t.issue_id)
                .bind(&t.agent_id)
                .bind(&t.runtime_id)
                .bind(&t.status)
                .bind(&t.claim_key)
                .bind(&t.trigger_comment_id)
                .bind(&t.output)
                .bind(&t.error)
                .bind(&t.failure_reason)
                .bind(&t.session_id)
                .bind(&t.work_dir)
                .bind(&t.parent_task_id)
                .bind(t.created_at)
                .bind(t.dispatched_at)
                .bind(t.started_at)
                .bind(t.completed_at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        }))
    }

    fn get_task(&self, id: String) -> StoreFut<'_, Option<TaskRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, TaskRow>(AssertSqlSafe(format!(
                "SELECT {TASK_COLS} FROM tasks WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
        })
    }

    fn list_issue_tasks(&self, issue_id: String) -> StoreFut<'_, Vec<TaskRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, TaskRow>(AssertSqlSafe(format!(
                "SELECT {TASK_COLS} FROM tasks WHERE issue_id = $1 ORDER BY created_at, id"
            )))
            .bind(issue_id)
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn runtime_tasks(
        &self,
        runtime_id: String,
        statuses: Vec<&'static str>,
    ) -> StoreFut<'_, Vec<TaskRow>> {
        Box::pin(async move {
            let sql = format!(
                "SELECT {TASK_COLS} FROM tasks WHERE runtime_id = $1 AND status IN ({}) \
                 ORDER BY created_at, id",
                placeholders(2, statuses.len())
            );
            let mut q = sqlx::query_as::<_, TaskRow>(AssertSqlSafe(sql)).bind(runtime_id);
            for s in statuses {
                q = q.bind(s);
            }
            Ok(q.fetch_all(&self.pool).await?)
        })
    }

    fn claim_task(
        &self,
        runtime_id: String,
        claim_key: Option<String>,
        token_hash: String,
        now: i64,
    ) -> StoreFut<'_, Option<TaskRow>> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                if let Some(key) = &claim_key {
                    let replay = sqlx::query_as::<_, TaskRow>(AssertSqlSafe(format!(
                        "UPDATE tasks SET task_token_hash = $3 WHERE runtime_id = $1 \
                         AND claim_key = $2 AND status IN ('dispatched', 'running') \
                         RETURNING {TASK_COLS}"
                    )))
                    .bind(&runtime_id)
                    .bind(key)
                    .bind(&token_hash)
                    .fetch_optional(&mut **tx)
                    .await?;
                    if replay.is_some() {
                        return Ok(replay);
                    }
                }
                // The oldest queued task of this runtime whose (issue, agent) has no task in
                // flight; the status guard in the outer UPDATE makes the hand-out exactly-once.
                Ok(sqlx::query_as::<_, TaskRow>(AssertSqlSafe(format!(
                    "UPDATE tasks SET status = 'dispatched', dispatched_at = $2, claim_key = $3, \
                     task_token_hash = $4 \
                     WHERE status = 'queued' AND id = ( \
                       SELECT q.id FROM tasks q WHERE q.runtime_id = $1 AND q.status = 'queued' \
                       AND NOT EXISTS (SELECT 1 FROM tasks a WHERE a.issue_id = q.issue_id \
                         AND a.agent_id = q.agent_id AND a.status IN ('dispatched', 'running')) \
                       ORDER BY q.created_at, q.id LIMIT 1) \
                     RETURNING {TASK_COLS}"
                )))
                .bind(&runtime_id)
                .bind(now)
                .bind(&claim_key)
                .bind(&token_hash)
                .fetch_optional(&mut **tx)
                .await?)
            })
        }))
    }

    fn find_task_by_token(&self, hash: String) -> StoreFut<'_, Option<TaskRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, TaskRow>(AssertSqlSafe(format!(
                "SELECT {TASK_COLS} FROM tasks WHERE task_token_hash = $1 \
                 AND status IN ('dispatched', 'running')"
            )))
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?)
        })
    }

    fn transition_task(&self, t: Transition) -> StoreFut<'_, Option<TaskRow>> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let terminal = matches!(t.to, "completed" | "failed" | "cancelled");
                let sql = format!(
                    "UPDATE tasks SET status = $2, \
                     output = COALESCE($3, output), error = COALESCE($4, error), \
                     failure_reason = COALESCE($5, failure_reason), \
                     session_id = COALESCE($6, session_id), work_dir = COALESCE($7, work_dir), \
                     started_at = CASE WHEN $2 = 'running' THEN $8 ELSE started_at END, \
                     completed_at = CASE WHEN $9 THEN $8 ELSE completed_at END \
                     WHERE id = $1 AND status IN ({}) RETURNING {TASK_COLS}",
                    placeholders(10, t.from.len())
                );
                let mut q = sqlx::query_as::<_, TaskRow>(AssertSqlSafe(sql))
                    .bind(&t.task_id)
                    .bind(t.to)
                    .bind(&t.output)
                    .bind(&t.error)
                    .bind(&t.failure_reason)
                    .bind(&t.session_id)
                    .bind(&t.work_dir)
                    .bind(t.now)
                    .bind(terminal);
                for s in &t.from {
                    q = q.bind(*s);
                }
                let Some(row) = q.fetch_optional(&mut **tx).await? else {
                    return Ok(None);
                };
                if let Some(c) = &t.comment {
                    insert_comment(tx, c).await?;
                }
                if let Some(status) = &t.issue_status {
                    sqlx::query("UPDATE issues SET status = $2, updated_at = $3 WHERE id = $1")
                        .bind(&row.issue_id)
                        .bind(status)
                        .bind(t.now)
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(Some(row))
            })
        }))
    }

    fn pin_session(
        &self,
        task_id: String,
        session_id: Option<String>,
        work_dir: Option<String>,
    ) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE tasks SET session_id = COALESCE($2, session_id), \
                     work_dir = COALESCE($3, work_dir) \
                     WHERE id = $1 AND status IN ('dispatched', 'running')",
                )
                .bind(&task_id)
                .bind(&session_id)
                .bind(&work_dir)
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        }))
    }

    fn upsert_messages(&self, messages: Vec<MessageRow>) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                for m in &messages {
                    sqlx::query(
                        "INSERT INTO task_messages (task_id, seq, kind, tool, content, input, \
                         output, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                         ON CONFLICT (task_id, seq) DO NOTHING",
                    )
                    .bind(&m.task_id)
                    .bind(m.seq)
                    .bind(&m.kind)
                    .bind(&m.tool)
                    .bind(&m.content)
                    .bind(&m.input)
                    .bind(&m.output)
                    .bind(m.created_at)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            })
        }))
    }

    fn list_messages(
        &self,
        task_id: String,
        after_seq: i64,
        limit: i64,
    ) -> StoreFut<'_, Vec<MessageRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, MessageRow>(
                "SELECT * FROM task_messages WHERE task_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(task_id)
            .bind(after_seq)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn upsert_usage(&self, task_id: String, usage: Vec<UsageEntry>) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                for u in &usage {
                    sqlx::query(
                        "INSERT INTO task_usage (task_id, provider, model, input_tokens, \
                         output_tokens, cache_read_tokens, cache_write_tokens) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (task_id, provider, model) DO UPDATE SET \
                         input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens, \
                         cache_read_tokens = excluded.cache_read_tokens, \
                         cache_write_tokens = excluded.cache_write_tokens",
                    )
                    .bind(&task_id)
                    .bind(&u.provider)
                    .bind(&u.model)
                    .bind(u.input_tokens)
                    .bind(u.output_tokens)
                    .bind(u.cache_read_tokens)
                    .bind(u.cache_write_tokens)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            })
        }))
    }
}

async fn insert_comment(
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
