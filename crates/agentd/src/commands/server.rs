//! `agentd server` and `agentd up`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::client::{Client, Settings, Source, enc, s as field};
use super::context::{self, CliContext};

#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port; the URL is printed).
    #[arg(long, env = "AGENTD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where the database and the admin token live. Default: `<data dir>/server`.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// The database: `postgres://USER:PASSWORD@HOST:PORT/DB` for PostgreSQL; unset (or
    /// `sqlite://`) for SQLite in the data dir (docs/operations.md).
    #[arg(
        long,
        env = "AGENTD_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// The admin token file. Default: `<data dir>/admin-token`. Instances on one
    /// PostgreSQL database may share one file (e.g. a mounted secret).
    #[arg(long, env = "AGENTD_ADMIN_TOKEN_FILE", global = true)]
    pub admin_token_file: Option<PathBuf>,
    /// Seconds an unreachable database is retried at start before giving up.
    #[arg(long, default_value_t = 30, global = true)]
    pub db_connect_retry_secs: u64,
    /// Maintenance instead of serving (docs/operations.md).
    #[command(subcommand)]
    pub op: Option<ServerOp>,
    /// Seconds without a heartbeat before a runtime is offline.
    #[arg(long, default_value_t = 45)]
    pub offline_after_secs: u64,
    /// Seconds before the automatic retry of a transiently failed task may run (doubled
    /// per earlier attempt).
    #[arg(long, default_value_t = 10)]
    pub retry_backoff_secs: u64,
    /// Seconds a connection may take to send a whole request head (slowloris defence;
    /// also how long an idle keep-alive connection is kept).
    #[arg(long, default_value_t = 30)]
    pub header_read_timeout_secs: u64,
    /// Seconds a request may take until its response starts; then 503. Event streams and
    /// WebSockets are not cut (they answer at once).
    #[arg(long, default_value_t = 60)]
    pub request_timeout_secs: u64,
    /// Connections served at once (daemon WebSockets and event streams included); at the
    /// limit new ones wait to be accepted.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Event streams (live board updates) one token may hold open at once.
    #[arg(long, default_value_t = 8)]
    pub max_event_streams_per_token: usize,
    /// Let workspaces name local repositories (`file://`, absolute paths) and plain
    /// `http://` ones. Daemons clone them as their own user, so leave this off unless
    /// every user of the server may read this machine's files (`agentd up` sets it).
    #[arg(long)]
    pub allow_local_repos: bool,
    /// The URL people reach this server at, for links in pull requests (default: the
    /// listen URL).
    #[arg(long, env = "AGENTD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// How often open pull requests are read from their forge, in seconds (a fallback for
    /// lost webhooks); 0 turns polling off.
    #[arg(long, default_value_t = 60)]
    pub forge_poll_interval_secs: u64,
    /// Print the listening URL (or a maintenance command's result) as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Let member tokens create tokens (member and daemon tokens for their workspaces).
    /// Off by default: the admin hands tokens out.
    #[arg(long)]
    pub members_can_mint_tokens: bool,
    /// Let member tokens create workspaces (they are granted the ones they create).
    /// Off by default.
    #[arg(long)]
    pub members_can_create_workspaces: bool,
    /// A load balancer or proxy in front of this server (an address or a CIDR range;
    /// repeat, or comma-separate in the variable). Its `X-Forwarded-For` names the
    /// client for the audit log and the per-IP sign-in limit; from anyone else the
    /// header is ignored.
    #[arg(long = "trusted-proxy", env = "AGENTD_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_proxy)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// OIDC single sign-on: the provider's issuer URL (docs/accounts.md, "Single sign-on
    /// (OIDC)"). The provider's redirect URI is `{public URL}/api/v1/oidc/callback`.
    #[arg(long, env = "AGENTD_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// The client id registered at the provider.
    #[arg(long, env = "AGENTD_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// A file holding the client secret (first line). Or set AGENTD_OIDC_CLIENT_SECRET;
    /// the secret is never a flag value (flags show in `ps`).
    #[arg(long, env = "AGENTD_OIDC_CLIENT_SECRET_FILE")]
    pub oidc_client_secret_file: Option<PathBuf>,
    /// Email domains allowed to sign in with OIDC (comma-separated or repeated); default
    /// any.
    #[arg(long, env = "AGENTD_OIDC_ALLOWED_DOMAINS", value_delimiter = ',')]
    pub oidc_allowed_domains: Vec<String>,
    /// The provider's name on the board's button ("Sign in with NAME").
    #[arg(long, env = "AGENTD_OIDC_NAME", default_value = "SSO")]
    pub oidc_name: String,
}

/// The OIDC configuration of `agentd server`'s flags: none without `--oidc-issuer`; the
/// client id and a secret (from `--oidc-client-secret-file` or
/// `AGENTD_OIDC_CLIENT_SECRET`) are then required.
fn oidc_config(
    args: &ServerArgs,
) -> anyhow::Result<Option<agentd_server::service::oidc::OidcConfig>> {
    let Some(issuer) = args.oidc_issuer.clone().filter(|i| !i.trim().is_empty()) else {
        return Ok(None);
    };
    let client_id = args
        .oidc_client_id
        .clone()
        .filter(|c| !c.is_empty())
        .context("--oidc-issuer needs --oidc-client-id")?;
    let client_secret = match &args.oidc_client_secret_file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read --oidc-client-secret-file {}", f.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string(),
        None => std::env::var("AGENTD_OIDC_CLIENT_SECRET").unwrap_or_default(),
    };
    if client_secret.is_empty() {
        anyhow::bail!(
            "--oidc-issuer needs the client secret: --oidc-client-secret-file FILE or \
             AGENTD_OIDC_CLIENT_SECRET"
        );
    }
    Ok(Some(agentd_server::service::oidc::OidcConfig {
        issuer,
        client_id,
        client_secret,
        allowed_domains: args
            .oidc_allowed_domains
            .iter()
            .map(|d| d.trim().trim_start_matches('@').to_lowercase())
            .filter(|d| !d.is_empty())
            .collect(),
        display_name: args.oidc_name.clone(),
    }))
}

/// `--trusted-proxy`: a CIDR range, or one address (a /32 or /128).
fn parse_proxy(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is neither an IP address nor a CIDR range (e.g. 10.0.0.0/8)"))
}

/// `agentd server <op>`: maintenance of the server's database (docs/operations.md).
#[derive(clap::Subcommand, Debug)]
pub enum ServerOp {
    /// Apply the pending database migrations and exit (the server also migrates on
    /// start).
    #[command(
        after_help = "Examples:\n  agentd server migrate\n  agentd server migrate --database-url postgres://agentd@db.internal/agentd"
    )]
    Migrate,
    /// Back up the SQLite database to a new file, consistent while the server runs (for
    /// PostgreSQL use pg_dump).
    #[command(
        after_help = "Examples:\n  agentd server backup --to /backups/agentd-$(date +%F).db\n  agentd server backup --data-dir /srv/agentd --to /backups/agentd.db"
    )]
    Backup {
        /// The file to write (must not exist).
        #[arg(long)]
        to: PathBuf,
    },
    /// Copy everything from the SQLite database into an empty PostgreSQL database, in
    /// one transaction, and print the rows copied per table. Stop the server first.
    #[command(
        after_help = "Examples:\n  agentd server migrate-to postgres://agentd:secret@db.internal:5432/agentd\n  agentd server migrate-to --data-dir /srv/agentd postgres://agentd@db.internal/agentd"
    )]
    MigrateTo {
        /// The target: `postgres://USER:PASSWORD@HOST:PORT/DB` (an empty database).
        url: String,
    },
}

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// Address the server listens on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Data dir for the server (`server/`), the daemon (`daemon/`) and `up.json`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Print `{"url","workspace_id","workspace_key","state_file","context_file","repo"}`
    /// as one JSON line instead of the guide.
    #[arg(long)]
    pub json: bool,
    /// The repository tasks work on; their branches are pushed back into it. Default:
    /// the git repository around the current directory, if any.
    #[arg(long)]
    pub repo: Option<PathBuf>,
    /// The email of the board's first user, made when the server has none (default:
    /// `git config user.email`, else `admin@localhost`); its password is written to
    /// `DATA_DIR/first-user-password`.
    #[arg(long)]
    pub email: Option<String>,
}

/// The repository `agentd up` works on: `--repo` (which must be a git repository), or
/// the one around the current directory, or none.
fn up_repo(arg: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    let toplevel = |dir: &Path| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["rev-parse", "--show-toplevel"])
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    };
    match arg {
        Some(p) => {
            let p = std::path::absolute(p).with_context(|| format!("--repo {}", p.display()))?;
            let top = toplevel(&p).with_context(|| {
                format!(
                    "--repo {}: not a git repository (run `git init` there first)",
                    p.display()
                )
            })?;
            Ok(Some(top))
        }
        None => Ok(std::env::current_dir().ok().and_then(|d| toplevel(&d))),
    }
}

async fn start_server(
    listen: SocketAddr,
    config: agentd_server::ServerConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<(
    String,
    tokio::task::JoinHandle<Result<(), agentd_server::ServerError>>,
)> {
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        let mut err = crate::error::CliError::new(
            crate::error::Kind::Other,
            format!("cannot listen on {listen}: {e}"),
        )
        .code("cannot_listen");
        if e.kind() == std::io::ErrorKind::AddrInUse {
            err = err.hint(
                "something else listens there (another agentd server or up?): stop it, or \
                     pass --listen with another address (127.0.0.1:0 picks a free port)",
            );
        }
        anyhow::Error::from(err)
    })?;
    let url = format!("http://{}", listener.local_addr()?);
    let handle = tokio::spawn(agentd_server::serve(listener, config, shutdown));
    Ok((url, handle))
}

pub async fn server(args: ServerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| crate::config::default_data_dir().join("server"));
    let mut config = agentd_server::ServerConfig::new(&dir);
    config.database_url = args.database_url.clone().filter(|u| !u.trim().is_empty());
    config.db_connect_retry = Duration::from_secs(args.db_connect_retry_secs);
    config.admin_token_file = args.admin_token_file.clone();
    if let Some(op) = args.op {
        return server_op(op, &config, args.json).await;
    }
    agentd_server::bootstrap_config(&config)
        .await
        .context("cannot open the server's database")?;
    config.offline_after = Duration::from_secs(args.offline_after_secs.max(1));
    config.retry_backoff = Duration::from_secs(args.retry_backoff_secs);
    config.members_can_mint_tokens = args.members_can_mint_tokens;
    config.trusted_proxies = args.trusted_proxies.clone();
    config.members_can_create_workspaces = args.members_can_create_workspaces;
    config.allow_local_repos = args.allow_local_repos;
    config.header_read_timeout = Duration::from_secs(args.header_read_timeout_secs.max(1));
    config.request_timeout = Duration::from_secs(args.request_timeout_secs.max(1));
    config.max_connections = args.max_connections.max(1);
    config.max_event_streams_per_token = args.max_event_streams_per_token.max(1);
    config.public_url = args.public_url.clone();
    config.forge_poll_interval = Duration::from_secs(args.forge_poll_interval_secs);
    config.oidc = oidc_config(&args)?;
    let database = config.backend().map(|b| b.describe()).unwrap_or_default();
    let token_file = config.admin_token_file();
    let (url, handle) = start_server(args.listen, config, shutdown).await?;
    if args.json {
        crate::outln!(
            "{}",
            json!({"url": url, "admin_token_file": token_file, "data_dir": dir,
                   "database": database})
        );
    } else {
        crate::outln!("agentd server listening on {url}");
        crate::outln!("admin token: {}", token_file.display());
        crate::outln!("database: {database}");
    }
    handle.await?.context("server failed")
}

/// `agentd server migrate | backup | migrate-to`.
async fn server_op(
    op: ServerOp,
    config: &agentd_server::ServerConfig,
    json_out: bool,
) -> anyhow::Result<()> {
    use agentd_server::ops;
    match op {
        ServerOp::Migrate => {
            let (backend, applied) = ops::migrate(config).await.context("migrate failed")?;
            if json_out {
                let applied: Vec<Value> = applied
                    .iter()
                    .map(|(v, d)| json!({"version": v, "description": d}))
                    .collect();
                crate::outln!(
                    "{}",
                    json!({"database": backend.describe(), "applied": applied})
                );
            } else if applied.is_empty() {
                crate::outln!("{}: up to date, no migration applied", backend.describe());
            } else {
                crate::outln!("{}: applied", backend.describe());
                for (v, d) in &applied {
                    crate::outln!("  {v:04} {d}");
                }
            }
        }
        ServerOp::Backup { to } => {
            ops::backup(config, &to).await.context("backup failed")?;
            let bytes = std::fs::metadata(&to).map(|m| m.len()).unwrap_or(0);
            if json_out {
                crate::outln!("{}", json!({"backup": to, "bytes": bytes}));
            } else {
                crate::outln!("backed up to {} ({bytes} bytes)", to.display());
            }
        }
        ServerOp::MigrateTo { url } => {
            let counts = ops::migrate_to(config, &url)
                .await
                .context("migrate-to failed")?;
            if json_out {
                let tables: serde_json::Map<String, Value> = counts
                    .iter()
                    .map(|(t, n)| (t.to_string(), json!(n)))
                    .collect();
                crate::outln!("{}", json!({"copied": tables}));
            } else {
                crate::outln!("copied into PostgreSQL (rows per table, verified):");
                for (t, n) in &counts {
                    crate::outln!("  {t:<18} {n}");
                }
                crate::outln!(
                    "start the server with --database-url on that database and the same --data-dir"
                );
            }
        }
    }
    Ok(())
}

/// What `agentd up` needs from `DIR/up.json` (mode 0600), which holds the default
/// workspace, a member token for you (`token`: the board and the CLI) and a daemon token
/// for its daemon (`daemon_token`).
struct UpState {
    workspace_id: String,
    token: String,
    daemon_token: String,
}

/// A workspace's name for a repository: its directory's name.
fn repo_name(repo: &Path) -> String {
    repo.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "default".into())
}

/// The name of a token `agentd up` mints: the member token is you (your login name, what
/// the activity of issues calls you), the daemon token is the machine's.
fn token_name(kind: &str) -> String {
    let login = ["USER", "LOGNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|u| !u.trim().is_empty());
    match (kind, login) {
        ("member", Some(user)) => user.trim().to_string(),
        _ => format!("agentd up ({kind})"),
    }
}

/// A client of `url` with `token`, ignoring the context file (`up` writes it).
fn direct_client(url: &str, token: &str) -> anyhow::Result<Client> {
    Client::with_settings(
        Settings {
            server_url: url.to_string(),
            server_source: Source::Flag,
            token: Some(token.to_string()),
            token_source: Source::Flag,
            context_workspace: None,
            context_elsewhere: None,
        },
        false,
    )
}

/// Loads `DIR/up.json`, keeping what still works and minting (with the admin token) what
/// is missing or no longer valid — a revoked token, or the single token of an older
/// `up.json`, which served both the board and the daemon.
async fn up_state(
    dir: &Path,
    url: &str,
    admin: &str,
    repo: Option<&Path>,
) -> anyhow::Result<UpState> {
    let path = dir.join("up.json");
    let saved: Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let admin = direct_client(url, admin)?;
    // One workspace per repository: run in another repository, and `up` moves to (or
    // makes) that repository's workspace.
    let repo_str = repo.map(|r| r.display().to_string());
    let same_repo = saved["repo"].as_str() == repo_str.as_deref();
    let ws_id = match saved["workspace_id"].as_str() {
        Some(ws) if same_repo && admin.get(&format!("/api/v1/workspaces/{ws}")).await.is_ok() => {
            ws.to_string()
        }
        _ => {
            let (name, repos) = match repo {
                Some(r) => (repo_name(r), vec![r.display().to_string()]),
                None => ("default".to_string(), Vec::new()),
            };
            let ws = admin
                .post("/api/v1/workspaces", json!({"name": name, "repos": repos}))
                .await?;
            ws["id"].as_str().context("no workspace id")?.to_string()
        }
    };
    let works = |token: Option<&str>, path: String| {
        let client = token.map(|t| direct_client(url, t));
        async move {
            match client {
                Some(Ok(c)) => c.get(&path).await.is_ok(),
                _ => false,
            }
        }
    };
    let mint = |kind: &'static str| {
        let (admin, ws_id) = (&admin, ws_id.clone());
        async move {
            let tok = admin
                .post(
                    "/api/v1/tokens",
                    json!({"name": token_name(kind), "kind": kind,
                           "workspace_ids": [ws_id]}),
                )
                .await?;
            anyhow::Ok(tok["token"].as_str().context("no token")?.to_string())
        }
    };
    let mut changed = saved["workspace_id"].as_str() != Some(ws_id.as_str()) || !same_repo;
    let token = match saved["token"].as_str() {
        Some(t) if works(Some(t), format!("/api/v1/workspaces/{ws_id}")).await => t.to_string(),
        _ => {
            changed = true;
            mint("member").await?
        }
    };
    let daemon_token = match saved["daemon_token"].as_str() {
        Some(t) if works(Some(t), format!("/api/daemon/workspaces/{ws_id}/repos")).await => {
            t.to_string()
        }
        _ => {
            changed = true;
            mint("daemon").await?
        }
    };
    if changed {
        let state = serde_json::to_string_pretty(&json!({
            "workspace_id": ws_id, "token": token, "daemon_token": daemon_token,
            "repo": repo_str,
        }))?;
        agentd_daemon::fsutil::write_atomic(&path, state.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(UpState {
        workspace_id: ws_id,
        token,
        daemon_token,
    })
}

/// The lock that keeps one `agentd up` per data dir: `DIR/up.lock`, held (with the
/// process's pid and board URL written in it) for the process's life.
struct UpLock {
    file: std::fs::File,
}

impl UpLock {
    fn take(dir: &Path) -> anyhow::Result<UpLock> {
        let path = dir.join("up.lock");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let held = std::fs::read_to_string(&path).unwrap_or_default();
                let mut lines = held.lines();
                let pid = lines.next().filter(|p| !p.is_empty()).unwrap_or("unknown");
                let url = lines
                    .next()
                    .filter(|u| !u.is_empty())
                    .unwrap_or("its board URL not known yet");
                return Err(crate::error::CliError::new(
                    crate::error::Kind::Other,
                    format!(
                        "agentd up is already running with data dir {} (pid {pid}, {url}): stop \
                         it first, or pass --data-dir for a separate one",
                        dir.display()
                    ),
                )
                .code("already_running")
                .into());
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        let mut lock = UpLock { file };
        lock.record("");
        Ok(lock)
    }

    /// Writes `pid\nurl` into the lock file (for the refusal of a second `up`).
    fn record(&mut self, url: &str) {
        use std::io::{Seek, Write};
        let _ = self.file.set_len(0);
        let _ = self.file.rewind();
        let _ = write!(self.file, "{}\n{url}\n", std::process::id());
        let _ = self.file.sync_all();
    }
}

pub async fn up(args: UpArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let dir = args
        .data_dir
        .unwrap_or_else(crate::config::default_data_dir);
    // The daemon's task directories, the server's data and up.json's token live here.
    agentd_server::create_private_dir(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    // Before anything starts: a second `up` on this data dir never starts a server.
    let mut lock = UpLock::take(&dir)?;
    let repo = up_repo(args.repo.as_deref())?;
    let server_dir = dir.join("server");
    let admin = agentd_server::bootstrap(&server_dir).await?;
    let mut config = agentd_server::ServerConfig::new(&server_dir);
    // One user on one machine: the member token in up.json is yours, so the board may
    // create workspaces and tokens with it.
    config.members_can_mint_tokens = true;
    config.members_can_create_workspaces = true;
    // One user on one machine: local repositories are theirs to use.
    config.allow_local_repos = true;
    // The server stops after the daemon, so the daemon's final deregister still lands.
    let server_shutdown = CancellationToken::new();
    let (url, server) = start_server(args.listen, config, server_shutdown.clone()).await?;
    lock.record(&format!("{url}/"));
    let state = match up_state(&dir, &url, &admin, repo.as_deref()).await {
        Ok(v) => v,
        Err(e) => {
            server_shutdown.cancel();
            let _ = server.await;
            return Err(e);
        }
    };
    let first_user = match first_user(&dir, &url, &admin, args.email.as_deref()).await {
        Ok(u) => u,
        Err(e) => {
            eprintln!("agentd: cannot create the board's first user: {e:#}");
            None
        }
    };
    let ws = state.workspace_id.clone();
    let me = direct_client(&url, &state.token)?;
    let ws_info = me
        .get(&format!("/api/v1/workspaces/{}", enc(&ws)))
        .await
        .unwrap_or(Value::Null);
    let ws_ref = match field(&ws_info, "key") {
        k if k.is_empty() => ws.clone(),
        k => k,
    };
    // The CLI's context: every command works in a new shell with no exports.
    let ctx = CliContext {
        server_url: Some(url.clone()),
        token: Some(state.token.clone()),
        workspace: Some(ws_ref.clone()),
    };
    let context_file = match context::save(&ctx) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("agentd: cannot save the CLI's context: {e:#}");
            None
        }
    };
    let state_file = dir.join("up.json");
    if args.json {
        crate::outln!(
            "{}",
            json!({"url": url, "workspace_id": ws, "workspace_key": field(&ws_info, "key"),
                   "state_file": state_file, "context_file": context_file, "repo": repo})
        );
    }
    let daemon = tokio::spawn(crate::daemon_cmd::start_for_up(
        url.clone(),
        state.daemon_token,
        dir,
        shutdown.clone(),
    ));
    if !args.json {
        let runtimes = wait_for_runtimes(&me, &ws, &shutdown).await;
        let agents = me
            .get(&format!("/api/v1/workspaces/{}/agents", enc(&ws)))
            .await
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        let signin = me.post("/api/v1/signin-codes", json!({})).await;
        let guide = Guide {
            url: &url,
            ws: &ws_info,
            ws_ref: &ws_ref,
            repo: repo.as_deref(),
            context_file: context_file.as_deref(),
            runtimes: &runtimes,
            agents: &agents,
            signin_url: signin
                .as_ref()
                .ok()
                .map(|v| field(v, "url"))
                .filter(|u| !u.is_empty()),
            first_user: first_user.as_ref(),
        };
        crate::outln!("{}", guide.render(crate::style::Style::stdout()));
    }
    // The daemon ends after its final deregister; only then does the server stop.
    let report = |res: Result<anyhow::Result<()>, tokio::task::JoinError>| match res {
        Ok(Err(e)) => eprintln!(
            "agentd: the daemon stopped: {e:#}; the server keeps running (Ctrl-C to stop)"
        ),
        Err(e) => {
            eprintln!("agentd: the daemon stopped: {e}; the server keeps running (Ctrl-C to stop)")
        }
        Ok(Ok(())) => {}
    };
    let mut daemon = daemon;
    tokio::select! {
        res = &mut daemon => {
            report(res);
            shutdown.cancelled().await;
        }
        _ = shutdown.cancelled() => {
            if let Ok(Err(e)) = daemon.await {
                eprintln!("agentd: the daemon stopped: {e:#}");
            }
        }
    }
    server_shutdown.cancel();
    server.await?.context("server failed")?;
    drop(lock);
    Ok(())
}

/// The workspace's runtimes once the daemon registered some (at most ~8 s; fewer when
/// the machine has no agent CLI).
async fn wait_for_runtimes(c: &Client, ws: &str, shutdown: &CancellationToken) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    loop {
        let list = c
            .get(&format!("/api/v1/workspaces/{}/runtimes", enc(ws)))
            .await
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        if list.iter().any(|r| r["status"] == "online") || tokio::time::Instant::now() >= deadline {
            return list;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return list,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// What `agentd up` prints for people: real names, no placeholders, no `jq`.
struct Guide<'a> {
    url: &'a str,
    ws: &'a Value,
    ws_ref: &'a str,
    repo: Option<&'a Path>,
    context_file: Option<&'a Path>,
    runtimes: &'a [Value],
    agents: &'a [Value],
    signin_url: Option<String>,
    /// The user `up` made now: its email and the file with its password.
    first_user: Option<&'a (String, PathBuf)>,
}

/// When the server has no user yet: makes a server-admin user (`--email`, else `git
/// config user.email`, else `admin@localhost`) with a random password, written to
/// `DIR/first-user-password` (0600). Returns its email and that file.
async fn first_user(
    dir: &Path,
    url: &str,
    admin: &str,
    email: Option<&str>,
) -> anyhow::Result<Option<(String, PathBuf)>> {
    let c = direct_client(url, admin)?;
    let users = c.get("/api/v1/users").await?;
    if users.as_array().is_some_and(|u| !u.is_empty()) {
        return Ok(None);
    }
    let email = match email {
        Some(e) => e.to_string(),
        None => std::process::Command::new("git")
            .args(["config", "user.email"])
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|e| e.contains('@'))
            .unwrap_or_else(|| "admin@localhost".into()),
    };
    let password = agentd_server::auth::new_token("");
    let file = dir.join("first-user-password");
    agentd_daemon::fsutil::write_atomic(&file, format!("{password}\n").as_bytes())
        .with_context(|| format!("cannot write {}", file.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", file.display()))?;
    }
    c.post(
        "/api/v1/users",
        json!({"email": email, "password": password, "is_admin": true}),
    )
    .await?;
    Ok(Some((email, file)))
}

/// `s` quoted for a POSIX shell when it needs it.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

impl Guide<'_> {
    /// How to name a runtime on the command line: its provider (`claude`) when it is the
    /// workspace's only runtime of that provider (the server resolves providers), else
    /// its name, quoted for the shell.
    fn runtime_ref(&self, r: &Value) -> String {
        let provider = field(r, "provider");
        let same = self
            .runtimes
            .iter()
            .filter(|o| field(o, "provider") == provider)
            .count();
        if !provider.is_empty() && same == 1 {
            shell_word(&provider)
        } else {
            shell_word(&field(r, "name"))
        }
    }

    fn render(&self, st: crate::style::Style) -> String {
        let url = self.url;
        let mut out = Vec::new();
        out.push(format!(
            "{} board {url}/ — workspace {} (key {}, issues are {}-1, {}-2, …)",
            st.bold("agentd is up:"),
            field(self.ws, "name"),
            field(self.ws, "key"),
            field(self.ws, "key"),
            field(self.ws, "key"),
        ));
        match &self.signin_url {
            Some(link) => out.push(format!(
                "Sign in to the board: {link}\n  (one click; the link works once, for {} minutes; later: `agentd up` prints a new one)",
                agentd_proto::api::SIGNIN_CODE_TTL_SECS / 60
            )),
            None => out.push(format!(
                "Sign in to the board with the token in {} (this server makes no sign-in links)",
                self.context_file
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(context::path_text)
            )),
        }
        if let Some((email, file)) = self.first_user {
            out.push(format!(
                "Board user: {email} (server admin), password in {} — sign in with it from \
                 another browser; `agentd user create` adds teammates",
                file.display()
            ));
        }
        match self.repo {
            Some(r) => out.push(format!(
                "Repository: {} — each task's branch is pushed back there (`git branch --list 'agentd/*'`, then `git switch` to one)",
                r.display()
            )),
            None => out.push(
                "No repository: run `agentd up` inside one (or pass --repo PATH) to have tasks work on it".into(),
            ),
        }
        let online: Vec<&Value> = self
            .runtimes
            .iter()
            .filter(|r| r["status"] == "online")
            .collect();
        if online.is_empty() {
            out.push(
                "Runtimes: none online yet — install an agent CLI (claude, codex, opencode or gemini) on PATH and run `agentd up` again".into(),
            );
        } else {
            out.push(format!(
                "Runtimes: {}",
                online
                    .iter()
                    .map(|r| field(r, "name"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        match self.context_file {
            Some(p) => out.push(format!(
                "The CLI is set up for this server and workspace ({}); in any shell:",
                p.display()
            )),
            None => out.push(format!(
                "Next (the CLI's context could not be saved: pass --server-url {url} and --token):"
            )),
        }
        let agent = self.agents.first().map(|a| field(a, "name"));
        let mut next = vec!["agentd runtime list".to_string()];
        let agent_name = match (&agent, online.first()) {
            (Some(a), _) => shell_word(a),
            (None, Some(r)) => {
                next.push(format!(
                    "agentd agent create my-agent --runtime {}",
                    self.runtime_ref(r)
                ));
                "my-agent".into()
            }
            (None, None) => String::new(),
        };
        if !agent_name.is_empty() {
            next.push(format!(
                "agentd issue create \"Fix the flaky test\" --assign {agent_name}"
            ));
        } else {
            next.push("agentd issue create \"Fix the flaky test\"".into());
        }
        next.push("agentd issue list".into());
        if !field(self.ws, "key").is_empty() {
            next.push(format!("agentd issue show {}-1", field(self.ws, "key")));
        }
        let _ = self.ws_ref;
        for n in next {
            out.push(format!("  {n}"));
        }
        out.join("\n")
    }
}
