//! The PostgreSQL [`Store`]: a pool of connections to a database named by a
//! `postgres://` URL, migrated from `migrations/postgres` on open. Write transactions
//! run at READ COMMITTED without an in-process lock (several server instances share the
//! database): every guard is a conditional `UPDATE … WHERE` (PostgreSQL re-checks the
//! WHERE on the row it locks), and the claim picks its row with `FOR UPDATE SKIP LOCKED`.
//! The SQL mirrors [`super::sqlite`]'s statement for statement; where it differs, a
//! comment says why.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool, Postgres, Transaction};

use super::shared::*;
use super::*;

pub struct PgStore {
    pub(super) pool: PgPool,
}

/// How long a query waits for a connection before it fails (with the database gone,
/// requests answer 503 after this instead of hanging until the request timeout).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

impl PgStore {
    /// Connects to `url` and applies the embedded migrations. A failed connection is
    /// retried with backoff for up to `retry_for` while the cause may pass (refused,
    /// unreachable, timed out, the server starting up); bad credentials and a missing
    /// database fail at once. The error names host, port, user and database and the
    /// cause, never the password.
    pub async fn open(url: &str, retry_for: Duration) -> Result<PgStore, StoreError> {
        let store = PgStore::connect(url, retry_for).await?;
        sqlx::migrate!("./migrations/postgres")
            .run(&store.pool)
            .await?;
        Ok(store)
    }

    /// Connects without migrating (see [`PgStore::open`]).
    pub async fn connect(url: &str, retry_for: Duration) -> Result<PgStore, StoreError> {
        let opts: PgConnectOptions = url.parse().map_err(|e| {
            StoreError::Connect(format!("invalid database URL {}: {e}", redact_url(url)))
        })?;
        let deadline = tokio::time::Instant::now() + retry_for;
        let mut delay = Duration::from_millis(250);
        loop {
            // One plain connection first: the pool would retry a refused connection
            // until its acquire timeout and report only that it timed out.
            let e = match <sqlx::PgConnection as sqlx::Connection>::connect_with(&opts).await {
                Ok(conn) => {
                    let _ = sqlx::Connection::close(conn).await;
                    match PgPoolOptions::new()
                        .max_connections(16)
                        .acquire_timeout(ACQUIRE_TIMEOUT)
                        .connect_with(opts.clone())
                        .await
                    {
                        Ok(pool) => return Ok(PgStore { pool }),
                        Err(e) => e,
                    }
                }
                Err(e) => e,
            };
            let message = connect_error(&opts, &e);
            if !transient(&e) || tokio::time::Instant::now() + delay > deadline {
                return Err(StoreError::Connect(message));
            }
            tracing::warn!(error = %message, retry_in = ?delay, "database not reachable yet; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// The connection pool (for PostgreSQL-only machinery beside the [`Store`] trait,
    /// e.g. LISTEN/NOTIFY or advisory locks).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The migrations applied on this database (version and description), oldest first.
    pub async fn applied_migrations(&self) -> Result<Vec<(i64, String)>, StoreError> {
        applied(&self.pool).await
    }

    pub(super) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(
            &'c mut Transaction<'static, Postgres>,
        )
            -> Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'c>>,
    {
        let mut tx = self.pool.begin().await?;
        let out = f(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }
}

/// Text as PostgreSQL can hold it: its TEXT cannot contain NUL (SQLite's can), so each
/// NUL becomes U+FFFD, as `service::diff` does for patches on both engines. Every text
/// this store binds goes through it (a lookup by a value with NUL then finds nothing,
/// as on SQLite, instead of failing).
pub(super) fn nn<T: NoNul>(v: T) -> T::Out {
    v.no_nul()
}

pub(super) fn no_nul_str(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s.to_string()
    }
}

/// See [`nn`].
pub(super) trait NoNul {
    type Out;
    fn no_nul(self) -> Self::Out;
}

impl NoNul for &str {
    type Out = String;
    fn no_nul(self) -> String {
        no_nul_str(self)
    }
}

impl NoNul for &String {
    type Out = String;
    fn no_nul(self) -> String {
        no_nul_str(self)
    }
}

impl NoNul for String {
    type Out = String;
    fn no_nul(self) -> String {
        no_nul_str(&self)
    }
}

impl NoNul for &Option<String> {
    type Out = Option<String>;
    fn no_nul(self) -> Option<String> {
        self.as_deref().map(no_nul_str)
    }
}

impl NoNul for Option<String> {
    type Out = Option<String>;
    fn no_nul(self) -> Option<String> {
        self.as_deref().map(no_nul_str)
    }
}

impl NoNul for &&str {
    type Out = String;
    fn no_nul(self) -> String {
        no_nul_str(self)
    }
}

/// [`name_or_prefix`] with the name's `LOWER` in the "C" collation, like the column's:
/// both fold ASCII only, as SQLite's `LOWER` does, whatever the database's locale.
fn pg_name_or_prefix(r: &RefQuery) -> Option<(String, usize)> {
    match r {
        RefQuery::Name(_) => Some((pg_name_clause(), 1)),
        _ => name_or_prefix(r),
    }
}

fn pg_name_clause() -> String {
    "LOWER(name) = LOWER($1 COLLATE \"C\")".to_string()
}

/// `SELECT version, description FROM _sqlx_migrations` (none before the first run).
async fn applied(pool: &PgPool) -> Result<Vec<(i64, String)>, StoreError> {
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
        .fetch_one(pool)
        .await?;
    if exists.is_none() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as::<_, (i64, String)>(
        "SELECT version, description FROM _sqlx_migrations WHERE success ORDER BY version",
    )
    .fetch_all(pool)
    .await?)
}

/// Whether a failed connection attempt may succeed later (the server is down, starting
/// or unreachable), unlike bad credentials or a missing database.
fn transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(d) => matches!(
            d.code().as_deref(),
            Some("57P03" | "57P01" | "53300" | "08000" | "08001" | "08006")
        ),
        _ => false,
    }
}

/// "cannot connect to PostgreSQL at HOST:PORT as user USER (database DB): CAUSE".
fn connect_error(opts: &PgConnectOptions, e: &sqlx::Error) -> String {
    let at = match opts.get_socket() {
        Some(dir) => format!("{} (socket dir {})", opts.get_port(), dir.display()),
        None => format!("{}:{}", opts.get_host(), opts.get_port()),
    };
    let cause = match e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused (is PostgreSQL running and listening there?)".to_string()
        }
        sqlx::Error::Io(io) => format!("network error: {io}"),
        sqlx::Error::PoolTimedOut => "timed out".to_string(),
        sqlx::Error::Database(d) => match d.code().as_deref() {
            Some("28P01") => format!("password authentication failed: {}", d.message()),
            Some("3D000") => format!("database does not exist: {}", d.message()),
            _ => d.message().to_string(),
        },
        other => other.to_string(),
    };
    format!(
        "cannot connect to PostgreSQL at {at} as user {} (database {}): {cause}",
        opts.get_username(),
        opts.get_database().unwrap_or("(default)"),
    )
}

/// `url` with its password (if any) replaced by `***`, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((auth, host)) => (auth, host),
        None => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

impl Store for PgStore {
    fn close(&self) -> StoreFut<'_, ()> {
        Box::pin(async move {
            self.pool.close().await;
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
                // Another instance may take the key between the check and the insert.
                let inserted = sqlx::query(
                    "INSERT INTO workspaces (id, name, repos, created_at, key) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO NOTHING",
                )
                .bind(nn(&ws.id))
                .bind(nn(&ws.name))
                .bind(nn(&ws.repos))
                .bind(ws.created_at)
                .bind(nn(&ws.key))
                .execute(&mut **tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    return Ok(false);
                }
                if let Some(token_id) = grant_token {
                    sqlx::query(
                        "INSERT INTO token_workspaces (token_id, workspace_id) VALUES ($1, $2)",
                    )
                    .bind(nn(&token_id))
                    .bind(nn(&ws.id))
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
                    .bind(nn(&id))
                    .bind(nn(&key))
                    .execute(&mut **tx)
                    .await;
                match r {
                    Ok(r) => Ok(r.rows_affected() > 0),
                    // Taken by another instance since the check.
                    Err(sqlx::Error::Database(d)) if d.code().as_deref() == Some("23505") => {
                        Ok(false)
                    }
                    Err(e) => Err(e.into()),
                }
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
                RefQuery::Name(_) => (pg_name_clause(), 1),
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
                q = q.bind(nn(b));
            }
            for id in workspace_ids.into_iter().flatten() {
                q = q.bind(nn(id));
            }
            Ok(q.fetch_all(&self.pool).await?)
        })
    }

    fn get_workspace(&self, id: String) -> StoreFut<'_, Option<WorkspaceRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, WorkspaceRow>(AssertSqlSafe(format!(
                "SELECT {WORKSPACE_COLS} FROM workspaces WHERE id = $1"
            )))
            .bind(nn(id))
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
                        q = q.bind(nn(id));
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
                    .bind(nn(&token.id))
                    .bind(nn(ws))
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
            .bind(nn(hash))
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
            .bind(nn(id))
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
            .bind(nn(self_or_creator))
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
                .bind(nn(&id))
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
                .bind(nn(&id))
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
                .bind(nn(&hash))
                .bind(nn(&token_id))
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
                .bind(nn(&hash))
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
                    .bind(nn(&rt.id))
                    .bind(nn(&rt.workspace_id))
                    .bind(nn(&rt.daemon_id))
                    .bind(nn(&rt.provider))
                    .bind(nn(&rt.name))
                    .bind(nn(&rt.version))
                    .bind(nn(&rt.device_name))
                    .bind(nn(&rt.status))
                    .bind(rt.last_seen_at)
                    .bind(rt.created_at)
                    .bind(nn(&rt.owner_token_id))
                    .bind(nn(&rt.sandbox))
                    .bind(rt.capacity)
                    .bind(nn(&rt.labels))
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
                .bind(nn(&daemon_id))
                .bind(nn(&from))
                .bind(nn(&to))
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
            .bind(nn(id))
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
            .bind(nn(workspace_id))
            .bind(nn(daemon_id))
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn delete_runtime(&self, id: String) -> StoreFut<'_, bool> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let r = sqlx::query("DELETE FROM runtimes WHERE id = $1")
                    .bind(nn(&id))
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
            let Some((clause, n)) = pg_name_or_prefix(&r) else {
                return Ok(Vec::new());
            };
            let (scope, _) = in_clause("workspace_id", workspace_ids.as_deref(), n + 1);
            let sql = format!(
                "SELECT {RUNTIME_COLS} FROM runtimes WHERE {clause}{scope} \
                 ORDER BY created_at, id LIMIT {REF_CANDIDATES}"
            );
            let mut q = sqlx::query_as::<_, RuntimeRow>(AssertSqlSafe(sql));
            for b in ref_binds(&r) {
                q = q.bind(nn(b));
            }
            for id in workspace_ids.into_iter().flatten() {
                q = q.bind(nn(id));
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
                .bind(nn(&id))
                .bind(now)
                .fetch_optional(&mut **tx)
                .await?;
                if let Some(row) = back {
                    return Ok(Touched::CameOnline(Box::new(row)));
                }
                let r = sqlx::query("UPDATE runtimes SET last_seen_at = $2 WHERE id = $1")
                    .bind(nn(&id))
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
                    .bind(nn(&id))
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
            .bind(nn(daemon_id))
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
                .bind(nn(&id))
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
                .bind(nn(&a.id))
                .bind(nn(&a.workspace_id))
                .bind(nn(&a.runtime_id))
                .bind(nn(&a.name))
                .bind(nn(&a.instructions))
                .bind(nn(&a.model))
                .bind(nn(&a.custom_args))
                .bind(nn(&a.custom_env))
                .bind(a.created_at)
                .bind(nn(&a.pool))
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
                    .bind(nn(id))
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
            .bind(nn(workspace_id))
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
            let Some((clause, n)) = pg_name_or_prefix(&r) else {
                return Ok(Vec::new());
            };
            let (scope, _) = in_clause("workspace_id", workspace_ids.as_deref(), n + 1);
            let sql = format!(
                "SELECT * FROM agents WHERE {clause}{scope} \
                 ORDER BY created_at, id LIMIT {REF_CANDIDATES}"
            );
            let mut q = sqlx::query_as::<_, AgentRow>(AssertSqlSafe(sql));
            for b in ref_binds(&r) {
                q = q.bind(nn(b));
            }
            for id in workspace_ids.into_iter().flatten() {
                q = q.bind(nn(id));
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
                .bind(nn(&a.id))
                .bind(nn(&a.runtime_id))
                .bind(nn(&a.name))
                .bind(nn(&a.instructions))
                .bind(nn(&a.model))
                .bind(nn(&a.custom_args))
                .bind(nn(&a.custom_env))
                .bind(nn(&a.pool))
                .bind(a.max_retries)
                .bind(a.max_concurrency)
                .execute(&mut **tx)
                .await?;
                task_all(
                    sqlx::query_as::<_, TaskRecord>(AssertSqlSafe(format!(
                        "UPDATE tasks SET runtime_id = $2 WHERE agent_id = $1 AND status = 'queued' \
                         AND runtime_id <> $2 RETURNING {TASK_COLS}"
                    )))
                    .bind(nn(&a.id))
                    .bind(nn(&a.runtime_id))
                    .fetch_all(&mut **tx)
                    .await?,
                )
            })
        }))
    }
}

impl PgStore {
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
        .bind(nn(&token.id))
        .fetch_all(&self.pool)
        .await?;
        Ok(Some((token, ws.into_iter().map(|(w,)| w).collect())))
    }
}

/// Whether a workspace has this key.
async fn key_taken(tx: &mut Transaction<'static, Postgres>, key: &str) -> Result<bool, StoreError> {
    Ok(
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM workspaces WHERE key = $1")
            .bind(nn(key))
            .fetch_one(&mut **tx)
            .await?
            > 0,
    )
}

/// Records an issue event.
pub(super) async fn insert_event(
    tx: &mut Transaction<'static, Postgres>,
    e: &EventRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO issue_events (issue_id, kind, actor_kind, actor_name, from_status, \
         to_status, detail, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(nn(&e.issue_id))
    .bind(nn(&e.kind))
    .bind(nn(actor_kind_text(e.actor.kind)))
    .bind(nn(&e.actor.name))
    .bind(nn(&e.from_status))
    .bind(nn(&e.to_status))
    .bind(nn(&e.detail))
    .bind(e.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Moves an issue to `to` because its work moved (the server did it): records a
/// `status_changed` event by the system when the status really changes.
pub(super) async fn move_issue(
    tx: &mut Transaction<'static, Postgres>,
    issue_id: &str,
    to: &str,
    now: i64,
) -> Result<(), StoreError> {
    let from: Option<String> =
        sqlx::query_scalar("SELECT status FROM issues WHERE id = $1 FOR UPDATE")
            .bind(nn(issue_id))
            .fetch_optional(&mut **tx)
            .await?;
    let Some(from) = from else {
        return Ok(());
    };
    sqlx::query("UPDATE issues SET status = $2, updated_at = $3 WHERE id = $1")
        .bind(nn(issue_id))
        .bind(nn(to))
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
    tx: &mut Transaction<'static, Postgres>,
    t: &TokenRow,
    hash: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_tokens (id, token_hash, name, kind, created_at, created_by, expires_at, \
         revoked_at, last_used_at, owner_user_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(nn(&t.id))
    .bind(nn(hash))
    .bind(nn(&t.name))
    .bind(nn(&t.kind))
    .bind(t.created_at)
    .bind(nn(&t.created_by))
    .bind(t.expires_at)
    .bind(t.revoked_at)
    .bind(t.last_used_at)
    .bind(nn(&t.owner_user_id))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) async fn insert_comment(
    tx: &mut Transaction<'static, Postgres>,
    c: &CommentRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO comments (id, issue_id, author_type, author_id, author_name, body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(nn(&c.id))
    .bind(nn(&c.issue_id))
    .bind(nn(&c.author_type))
    .bind(nn(&c.author_id))
    .bind(nn(&c.author_name))
    .bind(nn(&c.body))
    .bind(c.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
