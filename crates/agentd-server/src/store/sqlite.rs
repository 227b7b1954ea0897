//! The SQLite [`Store`]: one file in the data dir, WAL mode, `synchronous = NORMAL`.
//! Every write transaction starts with `BEGIN IMMEDIATE` and goes through one in-process
//! writer lock, so concurrent writers queue in order instead of spinning on SQLITE_BUSY.
//! Writes have their own connection (`writes`), so a writer holding the lock never waits
//! for a connection behind a crowd of readers (WAL lets those read side by side).
//! All SQL uses `$n` placeholders; [`super::postgres`] mirrors it statement for
//! statement (its claim adds `FOR UPDATE SKIP LOCKED`).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Sqlite, SqlitePool, Transaction};
use tokio::sync::Mutex;

use super::shared::*;
use super::*;

pub struct SqliteStore {
    /// Readers (and the transfer tool's reads).
    pub(super) pool: SqlitePool,
    /// The one write connection; used only under `writer`.
    writes: SqlitePool,
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
        let writes = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writes).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await?;
        Ok(SqliteStore {
            pool,
            writes,
            writer: Mutex::new(()),
        })
    }

    /// The migrations applied on this database (version and description), oldest first.
    pub async fn applied_migrations(&self) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(sqlx::query_as::<_, (i64, String)>(
            "SELECT version, description FROM _sqlx_migrations WHERE success ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The migrations applied on the database file at `path` (none if it does not exist
    /// or was never migrated), without creating or migrating it.
    pub async fn applied_at(path: &Path) -> Result<Vec<(i64, String)>, StoreError> {
        if std::fs::metadata(path)
            .map(|m| m.len() == 0)
            .unwrap_or(true)
        {
            return Ok(Vec::new());
        }
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .read_only(true);
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&opts).await?;
        let exists: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&mut conn)
        .await?;
        let out = if exists == 0 {
            Vec::new()
        } else {
            sqlx::query_as::<_, (i64, String)>(
                "SELECT version, description FROM _sqlx_migrations WHERE success ORDER BY version",
            )
            .fetch_all(&mut conn)
            .await?
        };
        sqlx::Connection::close(conn).await?;
        Ok(out)
    }

    /// Writes a consistent copy of the live database at `path` to the new file `to`
    /// (`VACUUM INTO`: one read transaction, so a running server's writes either are
    /// all in the copy or not at all). `to` must not exist; it is created 0600.
    pub async fn backup(path: &Path, to: &Path) -> Result<(), StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        if !super::transfer::sqlite_exists(path) {
            return Err(StoreError::Transfer(format!(
                "no database at {} to back up",
                path.display()
            )));
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(to)
            .map_err(|e| {
                StoreError::Transfer(format!(
                    "cannot create {}: {e} (a backup never overwrites a file)",
                    to.display()
                ))
            })?;
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .busy_timeout(Duration::from_secs(10));
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&opts).await?;
        let done = sqlx::query("VACUUM INTO $1")
            .bind(to.to_string_lossy().into_owned())
            .execute(&mut conn)
            .await;
        sqlx::Connection::close(conn).await?;
        if let Err(e) = done {
            let _ = std::fs::remove_file(to);
            return Err(e.into());
        }
        Ok(())
    }

    pub(super) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(
            &'c mut Transaction<'static, Sqlite>,
        )
            -> Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'c>>,
    {
        let _guard = self.writer.lock().await;
        let mut tx = self.writes.begin_with("BEGIN IMMEDIATE").await?;
        let out = f(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// One write statement on its own (SQLite makes a lone statement atomic), under the
    /// writer lock: a write transaction without the `BEGIN` and `COMMIT` round trips.
    pub(super) async fn write_one<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(
            &'c mut sqlx::SqliteConnection,
        )
            -> Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'c>>,
    {
        let _guard = self.writer.lock().await;
        let mut conn = self.writes.acquire().await?;
        f(&mut conn).await
    }
}

impl Store for SqliteStore {
    fn close(&self) -> StoreFut<'_, ()> {
        Box::pin(async move {
            self.pool.close().await;
            self.writes.close().await;
            Ok(())
        })
    }

    fn ping(&self) -> StoreFut<'_, ()> {
        Box::pin(async move {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        })
    }

    fn queued_count(&self) -> StoreFut<'_, i64> {
        Box::pin(async move {
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tasks WHERE status = 'queued'")
                .fetch_one(&self.pool)
                .await?;
            Ok(n)
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
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                     ON CONFLICT (workspace_id, daemon_id, provider) DO UPDATE SET \
                     name = excluded.name, version = excluded.version, \
                     device_name = excluded.device_name, status = excluded.status, \
                     last_seen_at = excluded.last_seen_at, \
                     owner_token_id = excluded.owner_token_id, \
                     sandbox = excluded.sandbox, capacity = excluded.capacity, \
                     labels = excluded.labels \
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
                    .bind(rt.capacity)
                    .bind(&rt.labels)
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
                     custom_args, custom_env, created_at, pool, max_retries, max_concurrency) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
                .bind(&a.pool)
                .bind(a.max_retries)
                .bind(a.max_concurrency)
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
                     custom_args = $6, custom_env = $7, pool = $8, max_retries = $9, \
                     max_concurrency = $10 WHERE id = $1",
                )
                .bind(&a.id)
                .bind(&a.runtime_id)
                .bind(&a.name)
                .bind(&a.instructions)
                .bind(&a.model)
                .bind(&a.custom_args)
                .bind(&a.custom_env)
                .bind(&a.pool)
                .bind(a.max_retries)
                .bind(a.max_concurrency)
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
         revoked_at, last_used_at, owner_user_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
    .bind(&t.owner_user_id)
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
