//! The agentd daemon: registers the agent CLIs of this machine as runtimes of every
//! workspace its token can see, keeps them alive with HTTP and WebSocket heartbeats,
//! heals itself when the server forgets a runtime, claims tasks and runs them.
//!
//! # Layout
//! - [`config`]: [`DaemonConfig`], plain data. [`identity`]: persisted daemon id + lock.
//! - [`agents`]: CLI detection and `--version` probing.
//! - [`api`]: HTTP client with classified errors; the WebSocket session.
//! - [`daemon`]: [`Daemon`], the parts every loop shares: [`registry`] (workspaces and
//!   runtimes), [`gate`] (re-register coalescing), [`task::runner`] (running tasks).
//! - [`fsutil`]: the poison-tolerant lock and the one atomic file write.
//! - [`workspace_sync`], [`register`], [`heartbeat`], [`claim`]: the loops of the spec.
//! - [`recovery`]: `handle_runtime_gone` — the self-healing the seed tests pin down.
//! - [`supervisor`]: one worker per runtime, following the runtime set.
//! - [`sandbox`]: what an agent run can see, reach and leave behind (bwrap, the env
//!   allow-list, egress, limits).
//! - [`task`]: running claimed tasks. [`health`]: `/health` and `/metrics`.
//! - [`backoff`]: exponential backoff with full jitter. [`metrics`]: counters.
//!
//! Entry point: [`run`]. Every loop runs under one root cancellation token and one
//! task tracker; shutdown stops claiming, gives running tasks a grace period, then
//! deregisters every runtime.

pub mod agents;
pub mod api;
pub mod backend;
pub mod backoff;
pub mod claim;
pub mod config;
pub mod daemon;
pub mod execenv;
pub mod fsutil;
pub mod gate;
pub mod gc;
pub mod health;
pub mod heartbeat;
pub mod identity;
pub mod metrics;
pub mod process;
pub mod recovery;
pub mod register;
pub mod registry;
pub mod sandbox;
pub mod supervisor;
pub mod task;
pub mod workspace_sync;

#[cfg(test)]
mod recovery_tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agentd_proto::health::HealthState;
use tokio_util::sync::CancellationToken;

pub use agents::{CommandProbe, FixedVersion, VersionProbe};
pub use api::{ApiError, Client, ClientIdentity};
pub use config::{AgentEntry, DaemonConfig};
pub use daemon::Daemon;

/// Why the daemon could not run at all (configuration, not the server's state).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "cannot bind the health endpoint on {addr}: {source} (is another daemon running? use --health-port)"
    )]
    HealthBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Builds a daemon for `cfg` with the real HTTP client and version probe.
pub fn build(cfg: DaemonConfig, root: CancellationToken) -> Arc<Daemon> {
    let client = Client::new(
        &cfg.server_url,
        &cfg.token,
        cfg.http_timeout,
        ClientIdentity {
            version: cfg.cli_version.clone(),
            ..ClientIdentity::default()
        },
    );
    let probe = Arc::new(CommandProbe {
        timeout: cfg.version_probe_timeout,
        custom: cfg
            .custom_agents
            .iter()
            .map(|c| (c.name.to_string(), c.version_args.clone()))
            .collect(),
    });
    Daemon::new(cfg, client, probe, root)
}

/// Runs the daemon until `shutdown` is cancelled.
pub async fn run(cfg: DaemonConfig, shutdown: CancellationToken) -> Result<(), DaemonError> {
    let d = build(cfg, shutdown);
    run_daemon(d).await
}

/// Runs an already built daemon until its root token is cancelled. The health endpoint's
/// bound address is written to `<data_dir>/daemon.health` for tools and tests.
pub async fn run_daemon(d: Arc<Daemon>) -> Result<(), DaemonError> {
    let root = d.root.clone();
    if let Some(addr) = d.cfg.health_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| DaemonError::HealthBind { addr, source })?;
        let bound = listener.local_addr().unwrap_or(addr);
        tracing::info!(%bound, "health endpoint listening");
        let _ = std::fs::write(d.cfg.data_dir.join("daemon.health"), bound.to_string());
        let app = health::router(Arc::clone(&d));
        let stop = root.clone();
        d.tracker.spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
    }
    tracing::info!(
        server = %d.cfg.server_url,
        daemon_id = %d.cfg.daemon_id,
        agents = ?d.cfg.agents.iter().map(|a| a.provider.as_str()).collect::<Vec<_>>(),
        "starting daemon"
    );
    match d.sandbox.state {
        agentd_proto::SandboxState::Bwrap => {
            tracing::info!(bwrap = %d.sandbox.detail, "agents run in the bubblewrap sandbox")
        }
        agentd_proto::SandboxState::Off => tracing::warn!("{}", d.sandbox.detail),
        _ => tracing::error!("{}", d.sandbox.detail),
    }

    match task::outbox::Outbox::open(&d.cfg.data_dir.join("outbox")) {
        Ok(ob) => {
            let ob = Arc::new(ob);
            let pending = ob.pending_count();
            if pending > 0 {
                tracing::info!(pending, "replaying task reports left from a previous run");
            }
            d.runner.set_outbox(Arc::clone(&ob));
            let reporter = Arc::clone(&d);
            d.tracker.spawn(task::outbox::sender(
                d.client.clone(),
                ob,
                d.on_task_over(),
                Arc::new(move |e| reporter.health.note_api_error(e)),
                root.child_token(),
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, dir = %d.cfg.data_dir.join("outbox").display(), "cannot open the task outbox; reports will be sent without durability")
        }
    }

    if d.initial_sync(&root).await {
        let loops = root.child_token();
        d.tracker.spawn(workspace_sync::workspace_sync_loop(
            Arc::clone(&d),
            loops.clone(),
        ));
        d.tracker.spawn(api::ws::run(Arc::clone(&d), loops.clone()));
        d.tracker.spawn(supervisor::per_runtime(
            Arc::clone(&d),
            loops.clone(),
            heartbeat::heartbeat_worker,
        ));
        d.tracker.spawn(supervisor::per_runtime(
            Arc::clone(&d),
            loops.clone(),
            claim::poller,
        ));
        d.tracker.spawn(gc::gc_loop(Arc::clone(&d), loops.clone()));
        root.cancelled().await;
    }
    shutdown(&d).await;
    Ok(())
}

/// Stops claiming (the root token is cancelled), gives running tasks the grace period,
/// stops what is left, then deregisters every runtime within 5 s.
async fn shutdown(d: &Arc<Daemon>) {
    d.health.set(HealthState::Stopping, None);
    let active = d.active_task_count();
    if active > 0 {
        tracing::info!(active, grace = ?d.cfg.shutdown_grace, "waiting for running tasks");
        let deadline = tokio::time::Instant::now() + d.cfg.shutdown_grace;
        while d.active_task_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    d.runner.stop_all();
    d.tracker.close();
    if tokio::time::timeout(Duration::from_secs(10), d.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("timed out waiting for background tasks");
    }
    if let Some(ob) = d.runner.outbox() {
        task::outbox::drain(&d.client, ob, &d.on_task_over(), Duration::from_secs(5)).await;
    }
    let ids = d.registry.all_runtime_ids();
    if !ids.is_empty() {
        match tokio::time::timeout(Duration::from_secs(5), d.client.deregister(&ids)).await {
            Ok(Ok(())) => tracing::info!(runtimes = ids.len(), "deregistered runtimes"),
            Ok(Err(e)) => tracing::warn!(error = %e, "deregister failed"),
            Err(_) => tracing::warn!("deregister timed out"),
        }
    }
}
