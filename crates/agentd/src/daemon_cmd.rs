//! `agentd daemon`: builds the config, takes the data-dir lock and runs the daemon;
//! `agentd daemon detect`: lists the agent CLIs this machine has.

use std::path::PathBuf;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::cli::{DaemonAction, DaemonArgs, DetectArgs};
use crate::outln;

pub async fn run(args: DaemonArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    if let Some(DaemonAction::Detect(d)) = &args.action {
        crate::out::exit_on_broken_pipe();
        return detect(d).await;
    }
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

/// `agentd daemon detect`: every provider of the table and every custom profile of the
/// config file, where it was found and what its version command said.
async fn detect(args: &DetectArgs) -> anyhow::Result<()> {
    let (file, file_path) = crate::config::load_file(args.config.as_deref())?;
    let where_ = file_path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "<config dir>/agentd/daemon.toml".into());
    let configured = crate::config::pinned_agent_paths(&file);
    let custom = crate::config::custom_clis(&file, &where_)?;
    let probe = agentd_daemon::CommandProbe {
        // The daemon's own probe timeout (`DaemonConfig::version_probe_timeout`).
        timeout: std::time::Duration::from_secs(10),
        custom: custom
            .iter()
            .map(|c| (c.name.to_string(), c.version_args.clone()))
            .collect(),
    };
    let path_var = std::env::var_os("PATH");
    let rows =
        agentd_daemon::agents::survey(path_var.as_deref(), &configured, &custom, &probe).await;
    if args.json {
        let doc: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "provider": r.provider,
                    "name": r.display_name,
                    "custom": r.custom,
                    "found": r.path.is_some(),
                    "usable": r.usable(),
                    "path": r.path.as_ref().map(|p| p.display().to_string()),
                    "version": r.version,
                    "min_version": r.min_version,
                    "problem": r.problem,
                })
            })
            .collect();
        outln!("{}", serde_json::Value::Array(doc));
        return Ok(());
    }
    let st = crate::style::Style::stdout();
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.provider.clone(),
                r.display_name.clone(),
                match (&r.path, r.usable()) {
                    (_, true) => "usable".to_string(),
                    (Some(_), false) => "unusable".to_string(),
                    (None, _) => "not found".to_string(),
                },
                r.version.clone().unwrap_or_else(|| "-".into()),
                r.path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    outln!(
        "{}",
        crate::commands::render::table(
            &["PROVIDER", "CLI", "STATE", "VERSION", "PATH"],
            &table,
            st
        )
    );
    let problems: Vec<String> = rows
        .iter()
        .filter_map(|r| Some(format!("  {}: {}", r.provider, r.problem.as_ref()?)))
        .collect();
    if !problems.is_empty() {
        outln!();
        outln!("Not offered as runtimes:");
        for p in problems {
            outln!("{p}");
        }
    }
    Ok(())
}
