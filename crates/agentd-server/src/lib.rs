//! The agentd control-plane server (`agentd server`): workspaces, API tokens, runtimes,
//! agents, issues, comments and tasks, plus the daemon API of `docs/protocol.md` (HTTP
//! and the `/api/daemon/ws` hub).
//!
//! # Layout
//! - [`api`]: the axum router, one module per resource; handlers parse, call a service
//!   and render. [`api::error`] is the only place that maps failures (including the
//!   domain's [`service::Error`]) to HTTP statuses.
//! - [`auth`]: bearer tokens (hashed with SHA-256) → a [`auth::Principal`].
//! - [`service`]: the domain rules (task lifecycle and leases, runtime liveness, issue
//!   triggers, agents, workspaces, tokens); the only callers of the store.
//! - [`hub`]: WebSocket connections by runtime; pushes wake-ups and cancellations.
//! - [`events`]: change notifications, streamed to boards as server-sent events.
//! - [`bus`]: every cross-request signal (wake-ups, cancellations, pushes, board events),
//!   in process alone, over PostgreSQL's LISTEN/NOTIFY between instances.
//! - [`liveness`]: heartbeats kept in memory and written in batches.
//! - [`leader`]: which instance sweeps (an advisory lock on PostgreSQL).
//! - [`forge`]: the GitHub / Gitea client (pull requests) and webhook signatures.
//! - [`web`]: the embedded web board (static assets; it talks to `/api/v1`).
//! - [`ops`]: `agentd server migrate | backup | migrate-to`.
//! - [`sweeper`]: shows silent runtimes offline and fails the tasks whose lease expired.
//! - [`store`]: the [`store::Store`] trait and its SQLite and PostgreSQL implementations.
//!
//! **Architecture Invariant:** every lease and timeout is measured on this server's clock
//! ([`App::now`]); nothing a client sends is ever used as a time.

pub mod api;
pub mod auth;
pub mod authcache;
pub mod bus;
pub mod conn;
pub mod events;
pub mod forge;
pub mod hub;
pub mod leader;
pub mod liveness;
pub mod metrics;
pub mod ops;
pub mod service;
pub mod store;
pub mod sweeper;
pub mod web;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::{Backend, Store, StoreError};

/// Everything `serve` needs; plain data, filled by the binary (or a test).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Holds `admin-token` and, on SQLite, `agentd.db`.
    pub data_dir: PathBuf,
    /// The admin token file, when not `DATA_DIR/admin-token`: instances on one PostgreSQL
    /// database can share one (a mounted secret). See [`ServerConfig::admin_token_file`].
    pub admin_token_file: Option<PathBuf>,
    /// The database: `None` (or `sqlite://`) is `DATA_DIR/agentd.db`; `postgres://…`
    /// PostgreSQL ([`store::Backend::from_url`]).
    pub database_url: Option<String>,
    /// How long an unreachable database is retried at open before the server gives up
    /// (bad credentials and a missing database fail at once).
    pub db_connect_retry: Duration,
    /// The lease: a runtime with no sign of life for this long is shown offline, and an
    /// in-flight task whose daemon has not said it holds it for this long is failed.
    pub offline_after: Duration,
    /// After a daemon's WS closes, its runtimes go offline unless a heartbeat arrives
    /// within this grace.
    pub ws_close_grace: Duration,
    /// How often the sweeper runs (at most a quarter of `offline_after`, see
    /// [`ServerConfig::sweep_every`]).
    pub sweep_interval: Duration,
    /// Request bodies above this size are refused with 413.
    pub max_body_bytes: usize,
    /// Interval of WS pings to daemons.
    pub ws_ping_interval: Duration,
    /// Whether member tokens may create tokens (member and daemon tokens for their own
    /// workspaces). Off by default: in a team the admin hands tokens out.
    pub members_can_mint_tokens: bool,
    /// The load balancers and proxies in front of this server (addresses or CIDR
    /// ranges). A request from one of them is attributed to the address its
    /// `X-Forwarded-For` names (the nearest one that is not itself a trusted proxy): the
    /// audit log's source IP and the per-IP sign-in limit. Empty: the header is ignored.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Whether member tokens may create workspaces (and are granted the ones they create).
    /// Off by default.
    pub members_can_create_workspaces: bool,
    /// Whether workspaces may name local repositories (`file://`, absolute paths) and
    /// plain `http://` ones ([`service::repo_url`]). Off by default: daemons clone as
    /// their own user. `agentd up` (one user, one machine) turns it on.
    pub allow_local_repos: bool,
    /// A connection that has not sent a whole request head within this is closed (a
    /// slowloris; also a keep-alive connection idle this long).
    pub header_read_timeout: Duration,
    /// A request not answered within this gets 503 (its handler is dropped). Only the
    /// time to the response head counts, so event streams and WebSockets live on.
    pub request_timeout: Duration,
    /// Connections served at once (WebSockets included); at the limit the server stops
    /// accepting until one closes.
    pub max_connections: usize,
    /// Event streams (`/api/v1/workspaces/{wid}/events`) one token may hold open at once;
    /// one more is 429.
    pub max_event_streams_per_token: usize,
    /// The URL people reach this server at (links in pull requests point at the board
    /// there). `None`: the listen URL (`http://ADDR`).
    pub public_url: Option<String>,
    /// How often open pull requests are read from their forge (the fallback for lost
    /// webhooks); zero turns polling off.
    pub forge_poll_interval: Duration,
    /// A runtime's liveness in the database is rewritten once its latest heartbeat is
    /// this much newer than what was written (`liveness`).
    pub liveness_write_every: Duration,
    /// How often the liveness flusher runs.
    pub liveness_flush_interval: Duration,
    /// The wait before an automatic retry of a transiently failed task, doubled per
    /// earlier attempt (`service::task::auto_retry`).
    pub retry_backoff: Duration,
    /// OIDC single sign-on ([`service::oidc`]); `None`: email and password only.
    pub oidc: Option<service::oidc::OidcConfig>,
}

impl ServerConfig {
    /// Where the admin token is kept: `admin_token_file`, or `DATA_DIR/admin-token`.
    pub fn admin_token_file(&self) -> PathBuf {
        self.admin_token_file
            .clone()
            .unwrap_or_else(|| admin_token_path(&self.data_dir))
    }

    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            data_dir: data_dir.into(),
            admin_token_file: None,
            database_url: None,
            db_connect_retry: Duration::from_secs(30),
            offline_after: Duration::from_secs(45),
            ws_close_grace: Duration::from_secs(5),
            sweep_interval: Duration::from_secs(5),
            max_body_bytes: 1024 * 1024,
            ws_ping_interval: Duration::from_secs(20),
            members_can_mint_tokens: false,
            trusted_proxies: Vec::new(),
            members_can_create_workspaces: false,
            allow_local_repos: false,
            header_read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_event_streams_per_token: 8,
            public_url: None,
            forge_poll_interval: Duration::from_secs(60),
            liveness_write_every: Duration::from_secs(5),
            liveness_flush_interval: Duration::from_secs(1),
            retry_backoff: Duration::from_secs(10),
            oidc: None,
        }
    }
}

impl ServerConfig {
    /// How far the database's liveness may be behind the heartbeats an instance received
    /// (the rule of [`liveness`]): one write interval and one flush interval.
    pub fn liveness_lag(&self) -> Duration {
        self.liveness_write_every + self.liveness_flush_interval
    }

    /// The database this config names ([`store::Backend::from_url`]).
    pub fn backend(&self) -> Result<Backend, StoreError> {
        Backend::from_url(&self.data_dir, self.database_url.as_deref())
    }

    /// The sweeper's period: `sweep_interval`, but never more than a quarter of the lease,
    /// so a short lease (a drill) is still enforced within a quarter of itself.
    pub fn sweep_every(&self) -> Duration {
        self.sweep_interval
            .min(self.offline_after / 4)
            .max(Duration::from_millis(10))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// This instance has no valid admin token while others serve the database with one:
    /// minting a new one would revoke theirs. The operator copies the file.
    #[error(
        "{} holds no valid admin token, and {instances} other agentd instance(s) serve this \
         database with the current one; copy DATA_DIR/admin-token from one of them to {} \
         (or give every instance the same --admin-token-file). Minting a new admin token \
         here would revoke the one they use.",
        path.display(), path.display()
    )]
    AdminTokenElsewhere { path: PathBuf, instances: i64 },
}

/// Shared state of a running server.
pub struct App {
    /// The `Arc` this `App` lives in, for work that outlives a request ([`App::arc`]).
    me: std::sync::Weak<App>,
    pub store: Arc<dyn Store>,
    pub hub: hub::Hub,
    /// Change notifications for the board's live stream (fed by the bus).
    pub events: events::Events,
    /// Cross-request signals, to this instance and the others on the database.
    pub bus: bus::Bus,
    /// Heartbeats in memory, written in batches.
    pub liveness: liveness::Liveness,
    /// Tokens and runtime owners read recently (the heartbeat's hot path; `authcache`).
    pub auth_cache: authcache::AuthCache,
    /// The OIDC provider's discovery document and keys ([`service::oidc`]).
    pub oidc_cache: service::oidc::ProviderCache,
    /// Each workspace's pool agents, read recently (the claim's hot path; `service::pool`).
    pub pools: service::pool::PoolCache,
    /// Whether this instance runs the sweeper.
    pub leader: leader::Leader,
    /// Request, claim and task-outcome counters (`GET /metrics`).
    pub metrics: metrics::Metrics,
    pub config: ServerConfig,
    pub shutdown: CancellationToken,
    /// Background work the server spawns (WS connections, grace timers, the sweeper);
    /// waited for on shutdown.
    pub tracker: TaskTracker,
    /// When this server process started ([`App::now`]): no lease expires before one
    /// whole lease has passed since, so daemons get a lease to reach a restarted server.
    pub started_at_ms: i64,
    /// The clock every time of this server is taken from.
    pub clock: Clock,
    /// The HTTP client forge calls share (its connection pool).
    pub forge_http: reqwest::Client,
    /// `config.public_url`, or the listen URL once [`run`] knows it.
    pub public_url: std::sync::OnceLock<String>,
}

impl App {
    /// This `App` as an `Arc`, for a task that outlives the request that spawns it
    /// (`None` only while the server is being dropped).
    pub fn arc(&self) -> Option<Arc<App>> {
        self.me.upgrade()
    }

    /// How much older than the lease a database time may look and still be renewed by
    /// another instance's heartbeats not yet written: zero alone (the sweeper writes this
    /// instance's first), [`ServerConfig::liveness_lag`] while other instances share the
    /// database ([`bus::peers`]).
    pub async fn peer_lag_ms(&self) -> i64 {
        if bus::peers(self).await > 0 {
            self.config.liveness_lag().as_millis() as i64
        } else {
            0
        }
    }

    /// This server's time, unix milliseconds: what every stored time and every lease is
    /// measured with.
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Where people reach this server (no trailing slash).
    pub fn public_url(&self) -> String {
        self.public_url
            .get()
            .or(self.config.public_url.as_ref())
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_default()
    }
}

/// The system clock, unix milliseconds.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The server's clock: the system clock ([`now_ms`]) plus an offset that is zero unless a
/// test [`shift`](Clock::shift)s it, so a test can let a lease pass without waiting for it.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub fn now_ms(&self) -> i64 {
        now_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Moves this clock by `by_ms` (negative: back). Test seam; nothing else calls it.
    pub fn shift(&self, by_ms: i64) {
        self.offset_ms.fetch_add(by_ms, Ordering::Relaxed);
    }
}

/// Path of the admin token file in a data dir.
pub fn admin_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin-token")
}

/// Creates the data dir and database if needed and, on first start, an admin token
/// written to `DIR/admin-token` (mode 0600). Returns the admin token. Idempotent.
/// SQLite in `data_dir`; [`bootstrap_config`] for another database.
pub async fn bootstrap(data_dir: &Path) -> Result<String, ServerError> {
    bootstrap_config(&ServerConfig::new(data_dir)).await
}

/// [`bootstrap`] with the database `config` names.
pub async fn bootstrap_config(config: &ServerConfig) -> Result<String, ServerError> {
    let store = open_store(config).await?;
    let token = ensure_admin_token(store.as_ref(), &config.admin_token_file()).await;
    store.close().await?;
    token
}

/// Opens the store `config` names (creating the data dir, migrating the database and
/// giving every workspace its key).
pub async fn open_store(config: &ServerConfig) -> Result<Arc<dyn Store>, ServerError> {
    let data_dir = &config.data_dir;
    create_private_dir(data_dir).map_err(|source| ServerError::Io {
        context: format!("cannot create data dir {}", data_dir.display()),
        source,
    })?;
    let backend = config.backend()?;
    if let Backend::Sqlite(db) = &backend {
        private_db_files(db).map_err(|source| ServerError::Io {
            context: format!("cannot make {} private", db.display()),
            source,
        })?;
    }
    let store = store::open(&backend, config.db_connect_retry).await?;
    service::workspace::backfill_keys(store.as_ref()).await?;
    Ok(store)
}

/// Creates `dir` (and any missing parent) readable by the owner only (0700), and makes an
/// existing `dir` 0700 too: it holds the admin token and the database (issues,
/// transcripts, agents' `custom_env`), which no other local user may read.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode != 0o700 {
        tracing::info!(dir = %dir.display(), from = format!("{mode:o}"), "making the data dir private (0700)");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Makes the database owner-only before SQLite opens it: creates `agentd.db` empty with
/// mode 0600 if it does not exist (SQLite creates its `-wal` and `-shm` files with the
/// database file's mode), and sets 0600 on those that exist (a data dir of an older
/// version, created under the umask).
fn private_db_files(db: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(db)?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        match std::fs::metadata(&path) {
            Ok(m) if m.permissions().mode() & 0o777 != 0o600 => {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The admin token in `path` (`DIR/admin-token` by default) if it is still a valid admin
/// token; otherwise (first start, file lost or holding a revoked token) a fresh one, which
/// revokes every earlier admin token: there is only ever one valid admin token, the one in
/// the file. On PostgreSQL, while other instances serve the database with a valid admin
/// token, this instance refuses to start instead ([`ServerError::AdminTokenElsewhere`]):
/// a rolling restart with a forgotten token file must not lock the others out.
async fn ensure_admin_token(store: &dyn Store, path: &Path) -> Result<String, ServerError> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim().to_string();
        if !existing.is_empty()
            && let Some((row, _)) = store.find_token(auth::hash_token(&existing)).await?
            && row.kind == "admin"
            && row.revoked_at.is_none()
        {
            // A token file an older version (or a hand) left readable to others.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
                |source| ServerError::Io {
                    context: format!("cannot make {} private", path.display()),
                    source,
                },
            )?;
            return Ok(existing);
        }
    }
    if let Some(pool) = store.postgres_pool() {
        let valid = store
            .list_tokens(None)
            .await?
            .iter()
            .any(|(t, _)| t.kind == "admin" && t.revoked_at.is_none());
        let instances = bus::instances_on(&pool).await.map_err(StoreError::from)?;
        if valid && instances > 0 {
            return Err(ServerError::AdminTokenElsewhere {
                path: path.to_path_buf(),
                instances,
            });
        }
    }
    mint_admin_token(store, path, now_ms()).await
}

/// Mints a new admin token, revokes every earlier one (one transaction) and writes the new
/// one to `path` (mode 0600, atomically). Used at bootstrap and by
/// `POST /api/v1/admin/rotate-token`.
pub async fn mint_admin_token(
    store: &dyn Store,
    path: &Path,
    now: i64,
) -> Result<String, ServerError> {
    let token = auth::new_token(auth::MEMBER_TOKEN_PREFIX);
    store
        .replace_admin_token(
            store::TokenRow {
                id: uuid::Uuid::new_v4().to_string(),
                name: "admin".into(),
                kind: "admin".into(),
                created_at: now,
                created_by: None,
                expires_at: None,
                revoked_at: None,
                last_used_at: None,
                owner_user_id: None,
            },
            auth::hash_token(&token),
            now,
        )
        .await?;
    write_secret(path, &token).map_err(|source| ServerError::Io {
        context: format!("cannot write {}", path.display()),
        source,
    })?;
    Ok(token)
}

/// Writes a secret (`content` and a newline) to `path`, atomically and readable by the
/// owner only: a temp file beside it (created fresh, mode 0600, fsynced) renamed over
/// `path`, then the directory fsynced. A reader sees the old file or the new one, never a
/// part, and the secret is never readable by others, not even for a moment. The one
/// secret writer of the server side (the admin token; the binary reuses it).
pub fn write_secret(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "secret path has no file name",
        )
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    // A leftover temp file (a crash mid-write) may have other permissions: `mode` applies
    // only to a file this call creates, so start from none.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(content.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

/// Runs the server on `listener` until `shutdown` is cancelled, then stops accepting,
/// closes WS connections, waits for background work and closes the database:
/// [`open`] then [`run`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: ServerConfig,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    run(open(config, shutdown).await?, listener).await
}

/// Opens the store in `config.data_dir` (creating it and the admin token if needed) and
/// builds the server's state; nothing runs yet. `serve` is `open` + [`run`]; tests call
/// them apart to reach the [`App`] (its clock, [`sweeper::sweep`]).
pub async fn open(
    config: ServerConfig,
    shutdown: CancellationToken,
) -> Result<Arc<App>, ServerError> {
    let store = open_store(&config).await?;
    ensure_admin_token(store.as_ref(), &config.admin_token_file()).await?;
    let clock = Clock::default();
    // On PostgreSQL other instances may share the database: signals go through
    // LISTEN/NOTIFY and one instance at a time sweeps. SQLite is one instance.
    let (bus, leader) = match store.postgres_pool() {
        Some(pool) => {
            let bus = bus::Bus::postgres(pool.clone());
            let leader = leader::Leader::postgres(&pool, &bus.instance);
            (bus, leader)
        }
        None => (bus::Bus::local(), leader::Leader::Alone),
    };
    Ok(Arc::new_cyclic(|me| App {
        me: me.clone(),
        store,
        hub: hub::Hub::default(),
        events: events::Events::default(),
        bus,
        liveness: liveness::Liveness::new(
            config.liveness_write_every,
            config.offline_after.max(Duration::from_secs(60)),
        ),
        auth_cache: authcache::AuthCache::default(),
        oidc_cache: service::oidc::ProviderCache::default(),
        pools: service::pool::PoolCache::default(),
        leader,
        metrics: metrics::Metrics::default(),
        config,
        shutdown,
        tracker: TaskTracker::new(),
        started_at_ms: clock.now_ms(),
        clock,
        forge_http: reqwest::Client::new(),
        public_url: std::sync::OnceLock::new(),
    }))
}

/// Starts the sweeper and serves `app` on `listener` until `app.shutdown` is cancelled,
/// then closes WS connections, waits for background work and closes the database.
pub async fn run(app: Arc<App>, listener: tokio::net::TcpListener) -> Result<(), ServerError> {
    let listen_url = listener
        .local_addr()
        .map(|a| format!("http://{a}"))
        .unwrap_or_default();
    let _ = app.public_url.set(
        app.config
            .public_url
            .clone()
            .unwrap_or(listen_url)
            .trim_end_matches('/')
            .to_string(),
    );
    app.tracker.spawn(bus::run(app.clone()));
    app.tracker.spawn(liveness::run_flusher(app.clone()));
    app.tracker.spawn(sweeper::run(app.clone()));
    app.tracker.spawn(service::forge::run_poller(app.clone()));
    let router = api::router(app.clone());
    let limits = conn::Limits {
        header_read_timeout: app.config.header_read_timeout,
        max_connections: app.config.max_connections,
    };
    conn::serve(listener, router, limits, app.shutdown.clone()).await;
    app.shutdown.cancel();
    app.tracker.close();
    app.tracker.wait().await;
    app.leader.release().await;
    if let Err(e) = app.store.close().await {
        tracing::warn!(error = %e, "closing the store failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn write_secret_replaces_the_file_owner_only_even_over_a_stale_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin-token");
        std::fs::write(&path, "old\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let stale = dir.path().join(".admin-token.tmp");
        std::fs::write(&stale, "half a secr").unwrap();
        std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();

        write_secret(&path, "agd_new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "agd_new\n");
        assert_eq!(mode(&path), 0o600);
        assert!(!stale.exists(), "the temp file was renamed into place");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("admin-token")]);
    }
}
