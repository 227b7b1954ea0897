//! `agentd server migrate-to`: copies every row of a SQLite database into an empty
//! PostgreSQL one, in one PostgreSQL transaction, and checks the row count of every
//! table before it commits. The column lists come from PostgreSQL's catalog (its
//! migrations define the target schema), so a column added to both schemas is copied
//! without touching this file; a SQLite table or column PostgreSQL lacks is refused
//! before anything is written, so nothing is dropped silently.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use sqlx::{AssertSqlSafe, QueryBuilder, Row};

use super::{PgStore, SqliteStore, StoreError};

/// The tables in an order that satisfies their foreign keys.
pub const TABLES: &[&str] = &[
    "workspaces",
    "users",
    "api_tokens",
    "token_workspaces",
    "runtimes",
    "agents",
    "issues",
    "comments",
    "tasks",
    "task_messages",
    "task_usage",
    "task_diffs",
    "issue_events",
    "forge_connections",
    "pull_requests",
    "forge_deliveries",
    "signin_codes",
    "memberships",
    "sessions",
    "invitations",
    "audit_log",
    "oidc_logins",
];

/// A column's type on PostgreSQL, which decides how the SQLite value is read.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Int,
    Bool,
}

/// Copies everything from `sqlite` (already opened and migrated by the caller) into the
/// PostgreSQL database at `url`, migrating it first; refuses a database that holds any
/// row. Returns each table with the number of rows copied (equal on both sides).
pub async fn sqlite_to_postgres(
    sqlite: &SqliteStore,
    url: &str,
    connect_retry: Duration,
) -> Result<Vec<(&'static str, i64)>, StoreError> {
    let pg = PgStore::open(url, connect_retry).await?;
    let out = copy(sqlite, &pg).await;
    pg.pool.close().await;
    out
}

async fn copy(sqlite: &SqliteStore, pg: &PgStore) -> Result<Vec<(&'static str, i64)>, StoreError> {
    let target = pg_database(pg).await?;
    // Every SQLite table must have a home.
    let sqlite_tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&sqlite.pool)
    .await?;
    if let Some(t) = sqlite_tables.iter().find(|t| !TABLES.contains(&t.as_str())) {
        return Err(StoreError::Transfer(format!(
            "the SQLite database has a table `{t}` this version cannot copy (is the server \
             newer than this binary?); nothing was written"
        )));
    }
    let mut plan = Vec::new();
    for &table in TABLES {
        let pg_cols: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&pg.pool)
        .await?;
        let sqlite_cols: BTreeSet<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                .bind(table)
                .fetch_all(&sqlite.pool)
                .await?
                .into_iter()
                .collect();
        let pg_names: BTreeSet<String> = pg_cols.iter().map(|(n, _)| n.clone()).collect();
        if let Some(c) = sqlite_cols.difference(&pg_names).next() {
            return Err(StoreError::Transfer(format!(
                "column {table}.{c} of the SQLite database has no place in PostgreSQL; \
                 nothing was written"
            )));
        }
        let mut cols = Vec::new();
        for (name, ty) in pg_cols {
            let kind = match ty.as_str() {
                "bigint" | "integer" | "smallint" => Kind::Int,
                "boolean" => Kind::Bool,
                "text" | "character varying" => Kind::Text,
                other => {
                    return Err(StoreError::Transfer(format!(
                        "column {table}.{name} has PostgreSQL type {other}, which migrate-to \
                         does not copy"
                    )));
                }
            };
            if !sqlite_cols.contains(&name) {
                return Err(StoreError::Transfer(format!(
                    "column {table}.{name} is missing from the SQLite database (run `agentd \
                     server migrate` on it first); nothing was written"
                )));
            }
            cols.push((name, kind));
        }
        plan.push((table, cols));
    }

    // All reads of SQLite in one read transaction: one consistent snapshot, even if a
    // server still writes to it (docs/operations.md says to stop it first: later writes
    // would not be copied).
    let mut src = sqlite.pool.begin().await?;
    let mut tx = pg.pool.begin().await?;
    // Refuse a database that holds anything (checked in the copying transaction).
    for &table in TABLES {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&mut *tx)
            .await?;
        if n > 0 {
            return Err(StoreError::Transfer(format!(
                "the PostgreSQL database {target} is not empty (table {table} has {n} rows); \
                 migrate-to copies into an empty database only, so nothing was written"
            )));
        }
    }
    let mut counts = Vec::new();
    for (table, cols) in &plan {
        let names = cols
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        // Table and column names come from the fixed list and PostgreSQL's catalog.
        let rows = sqlx::query(AssertSqlSafe(format!("SELECT {names} FROM {table}")))
            .fetch_all(&mut *src)
            .await?;
        // PostgreSQL takes at most 65,535 parameters per statement.
        let per_insert = (60_000 / cols.len()).clamp(1, 1000);
        for chunk in rows.chunks(per_insert) {
            let mut qb: QueryBuilder<sqlx::Postgres> =
                QueryBuilder::new(format!("INSERT INTO {table} ({names}) "));
            let mut err = None;
            qb.push_values(chunk, |mut b, row| {
                for (i, (name, kind)) in cols.iter().enumerate() {
                    let bound = match kind {
                        // PostgreSQL's TEXT cannot hold NUL (see `postgres::nn`).
                        Kind::Text => row.try_get::<Option<String>, _>(i).map(|v| {
                            b.push_bind(v.as_deref().map(super::postgres::no_nul_str));
                        }),
                        Kind::Int => row.try_get::<Option<i64>, _>(i).map(|v| {
                            b.push_bind(v);
                        }),
                        Kind::Bool => row.try_get::<Option<bool>, _>(i).map(|v| {
                            b.push_bind(v);
                        }),
                    };
                    if let Err(e) = bound {
                        err.get_or_insert_with(|| {
                            StoreError::Transfer(format!("reading {table}.{name} from SQLite: {e}"))
                        });
                        b.push_bind(None::<String>);
                    }
                }
            });
            if let Some(e) = err {
                return Err(e);
            }
            qb.build().execute(&mut *tx).await?;
        }
        counts.push((*table, rows.len() as i64));
    }
    // The identity of issue_events continues after the copied sequence numbers.
    sqlx::query(
        "SELECT setval(pg_get_serial_sequence('issue_events', 'seq'), \
         COALESCE((SELECT MAX(seq) FROM issue_events), 0) + 1, false)",
    )
    .execute(&mut *tx)
    .await?;
    // Verify: every table holds as many rows as SQLite's, before committing.
    for (table, copied) in &counts {
        let source: i64 =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut *src)
                .await?;
        let target_n: i64 =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut *tx)
                .await?;
        if source != *copied || target_n != *copied {
            return Err(StoreError::Transfer(format!(
                "row counts of {table} differ (SQLite {source}, copied {copied}, PostgreSQL \
                 {target_n}); rolled back, nothing was written"
            )));
        }
    }
    tx.commit().await?;
    src.rollback().await?;
    Ok(counts)
}

/// `NAME on HOST:PORT`, for messages.
async fn pg_database(pg: &PgStore) -> Result<String, StoreError> {
    let row = sqlx::query(
        "SELECT current_database()::text, COALESCE(host(inet_server_addr()), 'socket'), \
         COALESCE(inet_server_port(), 0)",
    )
    .fetch_one(&pg.pool)
    .await?;
    let (db, host, port): (String, String, i32) = (row.get(0), row.get(1), row.get(2));
    Ok(format!("{db} on {host}:{port}"))
}

/// Whether `path` is a SQLite database with data (exists and is not empty).
pub fn sqlite_exists(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() > 0)
}
