//! The local health endpoint on 127.0.0.1: `GET /health` (the full document, always 200
//! while the process lives), `GET /livez` (liveness), `GET /readyz` (200 only while
//! registered and talking to the server; 503 with the reason otherwise) and `GET /metrics`
//! (Prometheus text format).

pub mod state;

use std::sync::Arc;

use agentd_proto::health::{Health, HealthAgent, HealthRuntime, HealthState, HealthWorkspace};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::daemon::Daemon;
use crate::metrics::Gauges;

pub fn router(d: Arc<Daemon>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(d)
}

impl Daemon {
    /// The health document.
    pub fn health(&self) -> Health {
        let h = self.health.info();
        let versions = self.agent_versions();
        let mut workspaces: Vec<HealthWorkspace> = self
            .registry
            .workspaces()
            .into_iter()
            .map(|(id, runtimes)| HealthWorkspace {
                id,
                runtimes: runtimes
                    .into_iter()
                    .map(|rt| HealthRuntime {
                        id: rt.id,
                        provider: rt.provider,
                        name: rt.name,
                    })
                    .collect(),
            })
            .collect();
        workspaces.sort_by(|a, b| a.id.cmp(&b.id));
        // A daemon that refuses tasks for want of a sandbox is not ready, whatever the
        // server says; a worse problem with the server still shows first.
        let (status, detail) = match h.state {
            HealthState::Running | HealthState::Starting if !self.sandbox.may_run() => {
                (HealthState::Unsandboxed, Some(self.sandbox.detail.clone()))
            }
            s => (s, h.detail),
        };
        Health {
            status,
            detail,
            ready: status == HealthState::Running,
            pid: std::process::id(),
            uptime: self.started.elapsed().as_secs(),
            daemon_id: self.cfg.daemon_id.clone(),
            device_name: self.cfg.device_name.clone(),
            server_url: self.cfg.server_url.clone(),
            cli_version: self.cfg.cli_version.clone(),
            active_task_count: self.active_task_count(),
            ws_connected: h.ws_connected,
            sandbox: Some(self.sandbox.state),
            server_kind: self.known_server_kind(),
            agents: self
                .cfg
                .agents
                .iter()
                .map(|a| HealthAgent {
                    provider: a.provider.clone(),
                    path: a.path.display().to_string(),
                    version: versions.get(&a.provider).cloned().unwrap_or_default(),
                })
                .collect(),
            workspaces,
        }
    }

    pub fn render_metrics(&self) -> String {
        let online = self.registry.all_runtime_ids().len();
        let recovering = self.gate.recovering();
        self.metrics.render(&Gauges {
            runtimes_online: online,
            runtimes_recovering: recovering,
            active_tasks: self.active_task_count(),
            ws_connected: self.health.info().ws_connected,
        })
    }
}

async fn health(State(d): State<Arc<Daemon>>) -> impl IntoResponse {
    axum::Json(d.health())
}

async fn ready(State(d): State<Arc<Daemon>>) -> impl IntoResponse {
    let h = d.health();
    let code = if h.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(h))
}

async fn metrics(State(d): State<Arc<Daemon>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        d.render_metrics(),
    )
}
