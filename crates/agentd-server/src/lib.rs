//! The agentd control-plane server (`agentd server`): workspaces, API tokens, runtimes,
//! agents, issues, comments and tasks, plus the daemon API of `docs/daemon-api.md` (HTTP
//! and the `/api/daemon/ws` hub).
//!
//! # Layout
//! - [`api`]: the axum router, one module per resource; [`api::error`] is the only place
//!   that maps failures to HTTP statuses.
//! - [`auth`]: bearer tokens (hashed with SHA-256) → a [`auth::Principal`].
//! - [`service`]: the domain rules (task lifecycle, runtime liveness, issue triggers).
//! - [`hub`]: WebSocket connections by runtime; pushes wake-ups and cancellations.
//! - [`events`]: change notifications, streamed to boards as server-sent events.
//! - [`web`]: the embedded web board (static assets; it talks to `/api/v1`).
//! - [`sweeper`]: marks silent runtimes offline and fails their in-flight tasks.
//! - [`store`]: the [`store::Store`] trait and its SQLite implementation.
//!
//! **Architecture Invariant:** every lease and timeout is measured on this server's clock
//! ([`now_ms`]); nothing a client sends is ever used as a time.

pub mod api;
pub mod auth;
pub mod events;
pub mod hub;
pub mod service;
pub mod store;
pub mod sweeper;
pub mod web;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::{SqliteStore, Store, StoreError};

/// Everything `serve` needs; plain data, filled by the binary (or a test).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Holds `agentd.db` and `admin-token`.
    pub data_dir: PathBuf,
    /// A runtime with no heartbeat for this long is marked offline.
    pub offline_after: Duration,
    /// After a daemon's WS closes, its runtimes go offline unless a heartbeat arrives
    /// within this grace.
    pub ws_close_grace: Duration,
    /// How often the sweeper runs.
    pub sweep_interval: Duration,
    /// A task claimed but not started within this long fails with `timeout` (its claim
    /// response was lost and never retried, or the daemon died right after claiming).
    pub dispatch_timeout: Duration,
    /// Request bodies above this size are refused with 413.
    pub max_body_bytes: usize,
    /// Interval of WS pings to daemons.
    pub ws_ping_interval: Duration,
}

impl ServerConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            data_dir: data_dir.into(),
            offline_after: Duration::from_secs(45),
            ws_close_grace: Duration::from_secs(5),
            sweep_interval: Duration::from_secs(5),
            dispatch_timeout: Duration::from_secs(300),
            max_body_bytes: 1024 * 1024,
            ws_ping_interval: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

/// Shared state of a running server.
pub struct App {
    pub store: Arc<dyn Store>,
    pub hub: hub::Hub,
    /// Change notifications for the board's live stream.
    pub events: events::Events,
    pub config: ServerConfig,
    pub shutdown: CancellationToken,
    /// Background work the server spawns (WS connections, grace timers, the sweeper);
    /// waited for on shutdown.
    pub tracker: TaskTracker,
}

/// The server's clock, unix milliseconds.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Path of the admin token file in a data dir.
pub fn admin_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin-token")
}

fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("agentd.db")
}

/// Creates the data dir and database if needed and, on first start, an admin token
/// written to `DIR/admin-token` (mode 0600). Returns the admin token. Idempotent.
pub async fn bootstrap(data_dir: &Path) -> Result<String, ServerError> {
    let store = open_store(data_dir).await?;
    let token = ensure_admin_token(&store, data_dir).await;
    store.close().await;
    token
}

async fn open_store(data_dir: &Path) -> Result<SqliteStore, ServerError> {
    std::fs::create_dir_all(data_dir).map_err(|source| ServerError::Io {
        context: format!("cannot create data dir {}", data_dir.display()),
        source,
    })?;
    Ok(SqliteStore::open(&db_path(data_dir)).await?)
}

async fn ensure_admin_token(store: &SqliteStore, data_dir: &Path) -> Result<String, ServerError> {
    let path = admin_token_path(data_dir);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_string();
        if !existing.is_empty()
            && store
                .find_token(auth::hash_token(&existing))
                .await?
                .is_some()
        {
            return Ok(existing);
        }
    }
    let token = auth::new_token(auth::MEMBER_TOKEN_PREFIX);
    store
        .create_token(
            store::TokenRow {
                id: uuid::Uuid::new_v4().to_string(),
                name: "admin".into(),
                is_admin: true,
                created_at: now_ms(),
            },
            auth::hash_token(&token),
            Vec::new(),
        )
        .await?;
    write_secret(&path, &token).map_err(|source| ServerError::Io {
        context: format!("cannot write {}", path.display()),
        source,
    })?;
    Ok(token)
}

fn write_secret(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(content.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Runs the server on `listener` until `shutdown` is cancelled, then stops accepting,
/// closes WS connections, waits for background work and closes the database.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: ServerConfig,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let store = Arc::new(open_store(&config.data_dir).await?);
    ensure_admin_token(&store, &config.data_dir).await?;
    let app = Arc::new(App {
        store: store.clone(),
        hub: hub::Hub::default(),
        events: events::Events::default(),
        config,
        shutdown: shutdown.clone(),
        tracker: TaskTracker::new(),
    });
    app.tracker.spawn(sweeper::run(app.clone()));
    let router = api::router(app.clone());
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;
    shutdown.cancel();
    app.tracker.close();
    app.tracker.wait().await;
    store.close().await;
    result.map_err(|source| ServerError::Io {
        context: "server failed".into(),
        source,
    })
}
