//! The command-line tree. `daemon` is defined here; the user-facing commands live in
//! `commands` and are flattened in.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "agentd",
    version,
    about = "Hand work to AI coding agents the way you hand it to a colleague."
)]
pub struct Cli {
    /// Log filter (tracing syntax), e.g. `info` or `agentd_daemon=debug`. RUST_LOG wins.
    #[arg(long, global = true, env = "AGENTD_LOG", default_value = "info")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: register this machine's agent CLIs with a server and run tasks.
    Daemon(DaemonArgs),
    /// (internal) The daemon's launcher for one sandboxed agent run: puts itself under
    /// the run's memory and process limits, then executes the rest of its arguments.
    #[command(hide = true)]
    SandboxExec(SandboxExecArgs),
    /// (internal) Runs inside an allow-list sandbox: relays 127.0.0.1:3128 to the
    /// daemon's egress proxy socket while it runs the agent CLI.
    #[command(hide = true)]
    SandboxRelay(SandboxRelayArgs),
    #[command(flatten)]
    Other(crate::commands::Command),
}

#[derive(Args, Debug, Clone)]
pub struct SandboxExecArgs {
    /// The run's name (its cgroups are `agentd-<run>`).
    #[arg(long)]
    pub run: String,
    /// Memory cap in bytes.
    #[arg(long)]
    pub memory: Option<u64>,
    /// Process cap.
    #[arg(long)]
    pub pids: Option<u64>,
    /// The program to execute and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Args, Debug, Clone)]
pub struct SandboxRelayArgs {
    /// Where to listen inside the sandbox.
    #[arg(long, default_value = "127.0.0.1:3128")]
    pub listen: std::net::SocketAddr,
    /// The egress proxy's socket as bound into the sandbox.
    #[arg(long)]
    pub socket: PathBuf,
    /// The agent CLI and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<std::ffi::OsString>,
}

/// Flags of `agentd daemon`. Precedence: flag > environment > config file > default.
#[derive(Args, Debug, Default, Clone)]
pub struct DaemonArgs {
    /// Config file (TOML). Default: `<config dir>/agentd/daemon.toml`, if it exists.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Control-plane server URL (http, https, ws or wss).
    #[arg(long, env = "AGENTD_SERVER_URL")]
    pub server_url: Option<String>,
    /// API token of the server.
    #[arg(long, env = "AGENTD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Heartbeat interval, e.g. `15s`.
    #[arg(long)]
    pub heartbeat_interval: Option<String>,
    /// Poll interval when no WebSocket wake-up arrives, e.g. `30s`.
    #[arg(long)]
    pub poll_interval: Option<String>,
    /// Port of the local health endpoint on 127.0.0.1 (0 picks a free one).
    #[arg(long)]
    pub health_port: Option<u16>,
    /// Tasks run at once at most.
    #[arg(long)]
    pub max_concurrent_tasks: Option<usize>,
    /// Name of this machine as the server shows it.
    #[arg(long)]
    pub device_name: Option<String>,
    /// Where the daemon keeps its identity and task directories.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// A task run is stopped after this long, e.g. `2h`.
    #[arg(long)]
    pub agent_timeout: Option<String>,
    /// A run whose agent prints nothing for this long is stopped, e.g. `10m`.
    #[arg(long)]
    pub inactivity_timeout: Option<String>,
    /// Timeout of one HTTP request to the server, e.g. `30s`.
    #[arg(long)]
    pub http_timeout: Option<String>,
    /// Run agents in a bubblewrap sandbox (`bwrap`, the default) or not (`off`).
    #[arg(long, env = "AGENTD_SANDBOX")]
    pub sandbox: Option<String>,
    /// Agents' network: `open` (default) or `allowlist` (only the egress proxy).
    #[arg(long)]
    pub network: Option<String>,
    /// Clone `file://` URLs and local paths (single-user setups).
    #[arg(long)]
    pub allow_local_repos: bool,
}
