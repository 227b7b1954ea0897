//! Operations behind `agentd server migrate | backup | migrate-to` (docs/operations.md).
//! The binary parses flags and prints; these do the work.

use std::path::Path;

use crate::store::{self, Backend, SqliteStore, StoreError};
use crate::{ServerConfig, ServerError, create_private_dir};

/// Applies the pending migrations of the database `config` names; returns it and the
/// migrations applied now (version, description), none if it was up to date.
pub async fn migrate(config: &ServerConfig) -> Result<(Backend, Vec<(i64, String)>), ServerError> {
    let backend = config.backend()?;
    if let Backend::Sqlite(_) = backend {
        create_private_dir(&config.data_dir).map_err(|source| ServerError::Io {
            context: format!("cannot create data dir {}", config.data_dir.display()),
            source,
        })?;
    }
    let applied = store::migrate(&backend, config.db_connect_retry).await?;
    Ok((backend, applied))
}

/// Backs up the SQLite database `config` names to the new file `to`, consistent while
/// a server runs on it. PostgreSQL is backed up with `pg_dump` (the error says how).
pub async fn backup(config: &ServerConfig, to: &Path) -> Result<(), ServerError> {
    match config.backend()? {
        Backend::Sqlite(db) => Ok(SqliteStore::backup(&db, to).await?),
        Backend::Postgres(url) => Err(StoreError::Transfer(format!(
            "agentd does not back up PostgreSQL itself; use pg_dump, e.g. \
             `pg_dump --format=custom --file {} '{}'` (see docs/operations.md)",
            to.display(),
            store::postgres::redact_url(&url)
        ))
        .into()),
    }
}

/// Copies everything from the SQLite database `config` names into the empty PostgreSQL
/// database at `pg_url` (see [`store::transfer`]); the rows copied per table.
pub async fn migrate_to(
    config: &ServerConfig,
    pg_url: &str,
) -> Result<Vec<(&'static str, i64)>, ServerError> {
    let Backend::Sqlite(db) = config.backend()? else {
        return Err(StoreError::Transfer(
            "migrate-to copies from SQLite: the source (--database-url) must be SQLite or unset"
                .into(),
        )
        .into());
    };
    let Backend::Postgres(url) = Backend::from_url(&config.data_dir, Some(pg_url))? else {
        return Err(StoreError::Transfer(format!(
            "migrate-to copies into PostgreSQL: {pg_url:?} is not a postgres:// URL"
        ))
        .into());
    };
    if !store::transfer::sqlite_exists(&db) {
        return Err(StoreError::Transfer(format!(
            "no SQLite database at {} (pass the server's --data-dir)",
            db.display()
        ))
        .into());
    }
    // Brings the source to the current schema and gives every workspace its key, as a
    // server start would.
    let sqlite = SqliteStore::open(&db).await?;
    crate::service::workspace::backfill_keys(&sqlite).await?;
    let out = store::transfer::sqlite_to_postgres(&sqlite, &url, config.db_connect_retry).await;
    store::Store::close(&sqlite).await?;
    Ok(out?)
}
