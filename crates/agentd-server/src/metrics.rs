//! This instance's request, claim and task-outcome counters for `GET /metrics` (the
//! liveness and signal-bus counters live with their owners, `liveness` and `bus`).
//! Counters only move up; the map of requests is keyed by route template (`/api/v1/
//! issues/{id}`, never a concrete id) and status, so its size is bounded by the router.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use agentd_proto::TaskStatus;

#[derive(Debug, Default)]
pub struct Metrics {
    /// (method, route template, status) → requests answered. Invariant: only route
    /// templates from the router are keys; the lock is held for one map update, never
    /// across an `.await`.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// Claims that handed out a task (a replay of an idempotency key included).
    pub claims: AtomicU64,
    /// Claims that found nothing to hand out.
    pub empty_claims: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
}

impl Metrics {
    pub fn request(&self, method: &str, route: &str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((method.to_string(), route.to_string(), status))
            .or_insert(0) += 1;
    }

    /// A task reached `status` (counted by the request that moved it, once).
    pub fn task_ended(&self, status: TaskStatus) {
        match status {
            TaskStatus::Completed => &self.completed,
            TaskStatus::Failed => &self.failed,
            TaskStatus::Cancelled => &self.cancelled,
            _ => return,
        }
        .fetch_add(1, Relaxed);
    }

    /// The Prometheus text of these counters; `queued` is the queue depth read now.
    pub fn render(&self, queued: Option<i64>) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP agentd_http_requests_total Requests answered, by method, route and status.\n\
             # TYPE agentd_http_requests_total counter\n",
        );
        let map = self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for ((method, route, status), n) in map {
            out.push_str(&format!(
                "agentd_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}\n",
                route.replace('\\', "\\\\").replace('"', "\\\"")
            ));
        }
        out.push_str(
            "# HELP agentd_claims_total Claims answered, by whether they handed out a task.\n\
             # TYPE agentd_claims_total counter\n",
        );
        out.push_str(&format!(
            "agentd_claims_total{{result=\"task\"}} {}\nagentd_claims_total{{result=\"empty\"}} {}\n",
            self.claims.load(Relaxed),
            self.empty_claims.load(Relaxed)
        ));
        out.push_str(
            "# HELP agentd_tasks_ended_total Tasks this instance moved to an end state, by outcome.\n\
             # TYPE agentd_tasks_ended_total counter\n",
        );
        for (outcome, n) in [
            ("completed", &self.completed),
            ("failed", &self.failed),
            ("cancelled", &self.cancelled),
        ] {
            out.push_str(&format!(
                "agentd_tasks_ended_total{{outcome=\"{outcome}\"}} {}\n",
                n.load(Relaxed)
            ));
        }
        if let Some(q) = queued {
            out.push_str(&format!(
                "# HELP agentd_tasks_queued Tasks waiting for a daemon (all instances: read from the database).\n\
                 # TYPE agentd_tasks_queued gauge\nagentd_tasks_queued {q}\n"
            ));
        }
        out
    }
}

/// Counts every routed request by its route template and status (a `route_layer`: the
/// router has matched, so [`axum::extract::MatchedPath`] is set).
pub async fn count_requests(
    axum::extract::State(app): axum::extract::State<std::sync::Arc<crate::App>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    app.metrics.request(&method, &route, resp.status().as_u16());
    resp
}
