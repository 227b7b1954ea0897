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
    #[command(flatten)]
    Other(crate::commands::Command),
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
}
