//! `agentd server` and `agentd up`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::client::{Client, ClientArgs};

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
    /// Seconds an unreachable database is retried at start before giving up.
    #[arg(long, default_value_t = 30, global = true)]
    pub db_connect_retry_secs: u64,
    /// Maintenance instead of serving (docs/operations.md).
    #[command(subcommand)]
    pub op: Option<ServerOp>,
    /// Seconds without a heartbeat before a runtime is offline.
    #[arg(long, default_value_t = 45)]
    pub offline_after_secs: u64,
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
}

/// `agentd server <op>`: maintenance of the server's database (docs/operations.md).
#[derive(clap::Subcommand, Debug)]
pub enum ServerOp {
    /// Apply the pending database migrations and exit (the server also migrates on
    /// start).
    Migrate,
    /// Back up the SQLite database to a new file, consistent while the server runs (for
    /// PostgreSQL use pg_dump).
    Backup {
        /// The file to write (must not exist).
        #[arg(long)]
        to: PathBuf,
    },
    /// Copy everything from the SQLite database into an empty PostgreSQL database, in
    /// one transaction, and print the rows copied per table. Stop the server first.
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
    /// Print `{"url","workspace_id","state_file","repo"}` as one JSON line instead of the
    /// guide.
    #[arg(long)]
    pub json: bool,
    /// The repository tasks work on; their branches are pushed back into it. Default:
    /// the git repository around the current directory, if any.
    #[arg(long)]
    pub repo: Option<PathBuf>,
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
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
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
    if let Some(op) = args.op {
        return server_op(op, &config, args.json).await;
    }
    agentd_server::bootstrap_config(&config)
        .await
        .context("cannot open the server's database")?;
    config.offline_after = Duration::from_secs(args.offline_after_secs.max(1));
    config.members_can_mint_tokens = args.members_can_mint_tokens;
    config.members_can_create_workspaces = args.members_can_create_workspaces;
    config.allow_local_repos = args.allow_local_repos;
    config.header_read_timeout = Duration::from_secs(args.header_read_timeout_secs.max(1));
    config.request_timeout = Duration::from_secs(args.request_timeout_secs.max(1));
    config.max_connections = args.max_connections.max(1);
    config.max_event_streams_per_token = args.max_event_streams_per_token.max(1);
    config.public_url = args.public_url.clone();
    config.forge_poll_interval = Duration::from_secs(args.forge_poll_interval_secs);
    let database = config.backend().map(|b| b.describe()).unwrap_or_default();
    let (url, handle) = start_server(args.listen, config, shutdown).await?;
    let token_file = agentd_server::admin_token_path(&dir);
    if args.json {
        println!(
            "{}",
            json!({"url": url, "admin_token_file": token_file, "data_dir": dir,
                   "database": database})
        );
    } else {
        println!("agentd server listening on {url}");
        println!("admin token: {}", token_file.display());
        println!("database: {database}");
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
                println!(
                    "{}",
                    json!({"database": backend.describe(), "applied": applied})
                );
            } else if applied.is_empty() {
                println!("{}: up to date, no migration applied", backend.describe());
            } else {
                println!("{}: applied", backend.describe());
                for (v, d) in &applied {
                    println!("  {v:04} {d}");
                }
            }
        }
        ServerOp::Backup { to } => {
            ops::backup(config, &to).await.context("backup failed")?;
            let bytes = std::fs::metadata(&to).map(|m| m.len()).unwrap_or(0);
            if json_out {
                println!("{}", json!({"backup": to, "bytes": bytes}));
            } else {
                println!("backed up to {} ({bytes} bytes)", to.display());
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
                println!("{}", json!({"copied": tables}));
            } else {
                println!("copied into PostgreSQL (rows per table, verified):");
                for (t, n) in &counts {
                    println!("  {t:<18} {n}");
                }
                println!(
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
    daemon_token: String,
}

/// A workspace's name for a repository: its directory's name.
fn repo_name(repo: &Path) -> String {
    repo.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "default".into())
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
    let client = |token: &str| {
        Client::new(&ClientArgs {
            server_url: url.to_string(),
            token: Some(token.to_string()),
            json: false,
        })
    };
    let saved: Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let admin = client(admin)?;
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
        let client = token.map(client);
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
                    json!({"name": format!("agentd up ({kind})"), "kind": kind,
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
        daemon_token,
    })
}

pub async fn up(args: UpArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let dir = args
        .data_dir
        .unwrap_or_else(crate::config::default_data_dir);
    // The daemon's task directories, the server's data and up.json's token live here.
    agentd_server::create_private_dir(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
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
    let state = match up_state(&dir, &url, &admin, repo.as_deref()).await {
        Ok(v) => v,
        Err(e) => {
            server_shutdown.cancel();
            let _ = server.await;
            return Err(e);
        }
    };
    let ws = state.workspace_id;
    let state_file = dir.join("up.json");
    if args.json {
        println!(
            "{}",
            json!({"url": url, "workspace_id": ws, "state_file": state_file, "repo": repo})
        );
    } else {
        print_guide(&url, &ws, &state_file, repo.as_deref());
    }
    let daemon =
        crate::daemon_cmd::start_for_up(url, state.daemon_token, dir, shutdown.clone()).await;
    if let Err(e) = &daemon {
        eprintln!("agentd: the daemon stopped: {e:#}; the server keeps running (Ctrl-C to stop)");
    }
    shutdown.cancelled().await;
    server_shutdown.cancel();
    server.await?.context("server failed")?;
    Ok(())
}

fn print_guide(url: &str, ws: &str, state_file: &Path, repo: Option<&Path>) {
    println!("agentd is up: server {url}, workspace {ws}");
    match repo {
        Some(r) => println!(
            "Repository: {} — each task's branch is pushed back there (`git branch --list 'agentd/*'`, then `git switch` to one)",
            r.display()
        ),
        None => println!(
            "No repository: run `agentd up` inside one (or pass --repo PATH) to have tasks work on it"
        ),
    }
    println!(
        "Board: open {url}/ in a browser and sign in with the token (\"token\") in {}",
        state_file.display()
    );
    println!("Next:");
    println!(
        "  export AGENTD_SERVER_URL={url} AGENTD_TOKEN=$(jq -r .token {})",
        state_file.display()
    );
    println!("  agentd runtime list --workspace {ws}");
    println!("  agentd agent create my-agent --workspace {ws} --runtime <RUNTIME_ID>");
    println!("  agentd issue create \"Fix the flaky test\" --workspace {ws} --assign <AGENT_ID>");
    println!("  agentd issue show <ISSUE_ID>");
}
