//! `agentd daemon`: builds the config, takes the data-dir lock and runs the daemon.

use std::path::PathBuf;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::cli::DaemonArgs;

pub async fn run(args: DaemonArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let cfg = crate::config::daemon_config(&args)?;
    run_config(cfg, shutdown).await
}

async fn run_config(
    cfg: agentd_daemon::DaemonConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let _lock = agentd_daemon::identity::lock_data_dir(&cfg.data_dir)?;
    tracing::info!(data_dir = %cfg.data_dir.display(), "daemon identity {}", cfg.daemon_id);
    agentd_daemon::run(cfg, shutdown)
        .await
        .context("daemon stopped")
}

/// Starts a daemon for `agentd up`: same as `agentd daemon` with these values, the
/// daemon's data under `<data_dir>/daemon`, and the health endpoint on a free port.
pub async fn start_for_up(
    server_url: String,
    token: String,
    data_dir: PathBuf,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let args = DaemonArgs {
        server_url: Some(server_url),
        token: Some(token),
        data_dir: Some(data_dir.join("daemon")),
        health_port: Some(0),
        // The single-user case: repositories may be local paths.
        allow_local_repos: true,
        ..DaemonArgs::default()
    };
    let mut cfg = crate::config::daemon_config(&args)?;
    // The server's data (its admin token) and `up.json` sit beside the daemon's: the
    // whole `up` data dir is hidden from agents.
    cfg.sandbox.hidden.push(data_dir);
    run_config(cfg, shutdown).await
}
