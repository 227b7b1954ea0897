//! The HTTP router: daemon API under `/api/daemon` (plus `GET /api/workspaces`), the
//! user API under `/api/v1` (see docs/api.md), `GET /health` and `GET /ready`, and the web board's
//! assets ([`crate::web`]). Layers: a body limit (413 above `max_body_bytes`), a request
//! timeout (503 when no response head is ready within `request_timeout`; an event stream
//! or a WebSocket upgrade answers at once, so it is never cut) and JSON 404/405
//! fallbacks.

pub mod accounts;
pub mod agents;
pub mod daemon;
pub mod error;
pub mod events;
pub mod forge;
pub mod invitations;
pub mod issues;
pub mod members;
pub mod oidc;
pub mod tasks;
pub mod tokens;
pub mod workspaces;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post, put};

use crate::App;
use error::ApiError;

pub fn router(app: Arc<App>) -> Router {
    let daemon = Router::new()
        .route("/register", post(daemon::register))
        .route("/deregister", post(daemon::deregister))
        .route("/heartbeat", post(daemon::heartbeat))
        .route("/ws", get(daemon::ws))
        .route("/workspaces/{wid}/repos", get(daemon::repos))
        .route("/runtimes/{rid}/tasks/claim", post(daemon::claim))
        .route(
            "/runtimes/{rid}/recover-orphans",
            post(daemon::recover_orphans),
        )
        .route("/tasks/{id}/start", post(daemon::start))
        .route("/tasks/{id}/progress", post(daemon::progress))
        .route("/tasks/{id}/messages", post(daemon::messages))
        .route("/tasks/{id}/usage", post(daemon::usage))
        .route("/tasks/{id}/session", post(daemon::session))
        .route("/tasks/{id}/complete", post(daemon::complete))
        .route("/tasks/{id}/fail", post(daemon::fail))
        .route("/tasks/{id}/pushed", post(forge::pushed))
        .route("/tasks/{id}/status", get(daemon::status));
    let v1 = Router::new()
        .route("/me", get(workspaces::me))
        .route(
            "/workspaces",
            get(workspaces::list).post(workspaces::create),
        )
        .route("/workspaces/{wid}", get(workspaces::show))
        .route("/workspaces/{wid}/events", get(events::stream))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", delete(tokens::revoke))
        .route("/admin/rotate-token", post(tokens::rotate_admin))
        .route("/signin-codes", post(tokens::signin_code))
        .route("/signin", post(tokens::signin))
        .route(
            "/session",
            get(accounts::current)
                .post(accounts::sign_in)
                .delete(accounts::sign_out),
        )
        .route(
            "/users",
            get(accounts::list_users).post(accounts::create_user),
        )
        .route("/users/{id}", patch(accounts::update_user))
        .route("/audit", get(accounts::audit))
        .route("/session/providers", get(oidc::providers))
        .route("/oidc/login", get(oidc::login))
        .route("/oidc/callback", get(oidc::callback))
        .route(
            "/workspaces/{wid}/settings",
            get(oidc::settings).put(oidc::set_settings),
        )
        .route("/workspaces/{wid}/members", get(members::list))
        .route(
            "/workspaces/{wid}/invitations",
            get(invitations::list).post(invitations::create),
        )
        .route("/invitations/{id}", delete(invitations::revoke))
        .route("/invitations/accept", post(invitations::accept))
        .route(
            "/workspaces/{wid}/members/{uid}",
            put(members::set).delete(members::remove),
        )
        .route("/workspaces/{wid}/runtimes", get(agents::list_runtimes))
        .route("/runtimes/{id}", delete(agents::delete_runtime))
        .route(
            "/workspaces/{wid}/agents",
            get(agents::list).post(agents::create),
        )
        .route("/agents/{id}", get(agents::show).patch(agents::update))
        .route("/workspaces/{wid}/issues", post(issues::create))
        .route("/issues", get(issues::list))
        .route("/issues/{id}", get(issues::show).patch(issues::update))
        .route(
            "/issues/{id}/comments",
            get(issues::comments).post(issues::comment),
        )
        .route("/tasks/{id}", get(tasks::show))
        .route("/tasks/{id}/messages", get(tasks::messages))
        .route("/tasks/{id}/diff", get(tasks::diff))
        .route("/tasks/{id}/cancel", post(tasks::cancel))
        .route("/tasks/{id}/retry", post(tasks::retry))
        .route("/tasks/{id}/push", post(forge::push))
        .route(
            "/workspaces/{wid}/forge",
            get(forge::show).put(forge::set).delete(forge::remove),
        )
        .route("/forge/webhooks/{kind}", post(forge::webhook));
    Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/metrics", get(metrics))
        .route("/ready", get(ready))
        .route("/api/workspaces", get(workspaces::list_for_daemon))
        .nest("/api/daemon", daemon)
        .nest("/api/v1", v1)
        .merge(crate::web::router())
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::metrics::count_requests,
        ))
        .route_layer(axum::middleware::from_fn(crate::auth::stamp_required_role))
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::Rejected(StatusCode::METHOD_NOT_ALLOWED, "method not allowed".into())
        })
        .layer(DefaultBodyLimit::max(app.config.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            app.config.request_timeout,
            request_timeout,
        ))
        .with_state(app)
}

/// `GET /metrics`: this instance's counters in Prometheus' text format — heartbeats and
/// what the liveness path wrote (`liveness`), WebSocket connections, the signal bus, and
/// requests by route template and status, claims, task outcomes and the queue depth
/// ([`crate::metrics`]).
/// Counts only, no names or ids, so it needs no token (scrapers rarely carry one).
async fn metrics(axum::extract::State(app): axum::extract::State<Arc<App>>) -> String {
    // The queue depth is read from the database (every instance's tasks); a database
    // that does not answer within the readiness bound leaves the gauge out.
    let queued = match tokio::time::timeout(READY_TIMEOUT, app.store.queued_count()).await {
        Ok(Ok(n)) => Some(n),
        _ => None,
    };
    use std::sync::atomic::Ordering::Relaxed;
    let lv = &app.liveness.stats;
    let bus = &app.bus.stats;
    let rows: [(&str, &str, &str, f64); 9] = [
        (
            "agentd_heartbeats_total",
            "counter",
            "Signs of life received (heartbeats, claims).",
            lv.beats.load(Relaxed) as f64,
        ),
        (
            "agentd_liveness_writes_total",
            "counter",
            "Database write transactions made for liveness (immediate and batched).",
            lv.writes.load(Relaxed) as f64,
        ),
        (
            "agentd_liveness_rows_written_total",
            "counter",
            "Runtime rows those liveness writes carried.",
            lv.rows.load(Relaxed) as f64,
        ),
        (
            "agentd_liveness_runtimes",
            "gauge",
            "Runtimes this instance holds liveness for in memory.",
            app.liveness.len() as f64,
        ),
        (
            "agentd_ws_connections",
            "gauge",
            "Daemon WebSocket connections this instance holds.",
            app.hub.connections() as f64,
        ),
        (
            "agentd_bus_notifies_total",
            "counter",
            "NOTIFYs this instance sent on the signal bus.",
            bus.notifies.load(Relaxed) as f64,
        ),
        (
            "agentd_bus_signals_received_total",
            "counter",
            "Signals received from other instances.",
            bus.received.load(Relaxed) as f64,
        ),
        (
            "agentd_bus_resyncs_total",
            "counter",
            "Resyncs delivered because signals may have been lost.",
            bus.resyncs.load(Relaxed) as f64,
        ),
        (
            "agentd_bus_notify_lag_seconds",
            "gauge",
            "The last received NOTIFY's lag, sent to received.",
            bus.last_lag_ms.load(Relaxed) as f64 / 1000.0,
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, v) in rows {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        ));
    }
    out.push_str(&app.metrics.render(queued));
    out
}

/// `GET /ready`, for a load balancer: 200 `{"status":"ready"}` when a trivial query
/// answers within a second, else 503 `{"status":"unready","error":"database
/// unreachable: …"}`. (`GET /health` is liveness: 200 while the process runs.)
async fn ready(State(app): State<Arc<App>>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let error = match tokio::time::timeout(READY_TIMEOUT, app.store.ping()).await {
        Ok(Ok(())) => {
            return axum::Json(serde_json::json!({"status": "ready"})).into_response();
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {READY_TIMEOUT:?}"),
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(
            serde_json::json!({"status": "unready", "error": format!("database unreachable: {error}")}),
        ),
    )
        .into_response()
}

/// How long `/ready` waits for the database.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The `limit` query parameter of a paginated list: `default` when absent, else an
/// integer in 1..=`max` (400 naming the range otherwise).
pub(crate) fn query_limit(
    q: &std::collections::HashMap<String, String>,
    default: i64,
    max: i64,
) -> Result<i64, ApiError> {
    match q.get("limit") {
        None => Ok(default),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad(format!("invalid limit: expected an integer in 1..={max}"))
            }),
    }
}

/// Answers 503 `{"error"}` when the route has no response head within `limit` (the
/// handler is dropped). 503, not 408: a daemon retries a 5xx, whereas it takes a 4xx
/// report as refused for good, and a slow store must not cost a report. Only the time to
/// the response head is bounded, so an event stream or a WebSocket lives on.
async fn request_timeout(
    axum::extract::State(limit): axum::extract::State<std::time::Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::Rejected(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("request timed out after {} ms", limit.as_millis()),
        )
        .into_response(),
    }
}
