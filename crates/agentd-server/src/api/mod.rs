//! The HTTP router: daemon API under `/api/daemon` (plus `GET /api/workspaces`), the
//! user API under `/api/v1` (see docs/api.md), `GET /health`, and the web board's
//! assets ([`crate::web`]). Layers: a body limit
//! (413 above `max_body_bytes`) and JSON 404/405 fallbacks.

pub mod agents;
pub mod daemon;
pub mod error;
pub mod events;
pub mod issues;
pub mod tasks;
pub mod tokens;
pub mod workspaces;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};

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
        .route("/tasks/{id}/cancel", post(tasks::cancel))
        .route("/tasks/{id}/retry", post(tasks::retry));
    Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/api/workspaces", get(workspaces::list_for_daemon))
        .nest("/api/daemon", daemon)
        .nest("/api/v1", v1)
        .merge(crate::web::router())
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::Rejected(StatusCode::METHOD_NOT_ALLOWED, "method not allowed".into())
        })
        .layer(DefaultBodyLimit::max(app.config.max_body_bytes))
        .with_state(app)
}
