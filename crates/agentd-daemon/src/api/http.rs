//! The HTTP client of the daemon API, and the classification of its errors.
//!
//! Every call returns [`ApiError`], whose variants say what the caller does: only
//! [`ApiError::RuntimeNotFound`] triggers self-healing; [`ApiError::TaskNotFound`]
//! interrupts the agent; [`ApiError::is_transient`] errors are retried and never heal.
//! The classification needs a 404 *and* the marker text in the body (as Multica does),
//! so a proxy's bare 404 page is an ordinary failure.

use std::time::Duration;

use agentd_proto::{
    ClaimResponse, DeregisterRequest, HeartbeatRequest, HeartbeatResponse, RecoverOrphansRequest,
    RecoverOrphansResponse, RegisterRequest, RegisterResponse, ReportResponse, Task,
    TaskStatusResponse, Workspace,
};
use reqwest::{Method, StatusCode};
use serde::{Serialize, de::DeserializeOwned};
use tokio_util::sync::CancellationToken;

/// How much of an error body is kept in an error.
const ERROR_BODY_LIMIT: usize = 4096;

/// The identity headers every request carries.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    pub version: String,
    pub os: String,
}

impl Default for ClientIdentity {
    fn default() -> Self {
        ClientIdentity {
            version: env!("CARGO_PKG_VERSION").to_string(),
            os: match std::env::consts::OS {
                "macos" => "macos".into(),
                "windows" => "windows".into(),
                _ => "linux".into(),
            },
        }
    }
}

/// What went wrong with a call, classified by what the caller must do about it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404 whose body says `runtime not found`: the server deleted the runtime. Self-heal.
    #[error("{method} {path}: runtime not found (404)")]
    RuntimeNotFound { method: Method, path: String },
    /// 404 whose body says `task not found`: the task was deleted. Stop the agent.
    #[error("{method} {path}: task not found (404)")]
    TaskNotFound { method: Method, path: String },
    /// 404 whose body says `workspace not found`: the workspace is gone. Drop it.
    #[error("{method} {path}: workspace not found (404)")]
    WorkspaceNotFound { method: Method, path: String },
    /// 401/403: the token is missing, wrong or revoked. Not fixed by retrying fast, but
    /// the daemon keeps retrying slowly so a fixed token heals without a restart.
    #[error("{method} {path}: unauthorized ({status}): {body}")]
    Unauthorized {
        method: Method,
        path: String,
        status: u16,
        body: String,
    },
    /// Any other status >= 400.
    #[error("{method} {path}: server answered {status}: {body}")]
    Status {
        method: Method,
        path: String,
        status: u16,
        body: String,
    },
    /// The request did not complete: connection refused, reset, timed out.
    #[error("{method} {path}: {source}")]
    Transport {
        method: Method,
        path: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server answered 2xx with a body we cannot decode.
    #[error("{method} {path}: malformed response: {message}")]
    Decode {
        method: Method,
        path: String,
        message: String,
    },
    /// The daemon is shutting down; the call was abandoned.
    #[error("cancelled by daemon shutdown")]
    Cancelled,
}

impl ApiError {
    /// Errors worth retrying with backoff: the server may be fine a moment later.
    /// Never a reason to self-heal.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Transport { .. } => true,
            ApiError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }

    pub fn is_runtime_not_found(&self) -> bool {
        matches!(self, ApiError::RuntimeNotFound { .. })
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::RuntimeNotFound { .. }
            | ApiError::TaskNotFound { .. }
            | ApiError::WorkspaceNotFound { .. } => Some(404),
            ApiError::Unauthorized { status, .. } | ApiError::Status { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }
}

/// Classifies a non-success answer.
pub fn classify(method: Method, path: &str, status: StatusCode, body: &str) -> ApiError {
    let path = path.to_string();
    let lower = body.to_ascii_lowercase();
    if status == StatusCode::NOT_FOUND {
        if lower.contains(agentd_proto::RUNTIME_NOT_FOUND) {
            return ApiError::RuntimeNotFound { method, path };
        }
        if lower.contains(agentd_proto::TASK_NOT_FOUND) {
            return ApiError::TaskNotFound { method, path };
        }
        if lower.contains(agentd_proto::WORKSPACE_NOT_FOUND) {
            return ApiError::WorkspaceNotFound { method, path };
        }
    }
    let mut body = body.to_string();
    if body.len() > ERROR_BODY_LIMIT {
        let mut cut = ERROR_BODY_LIMIT;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
    }
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return ApiError::Unauthorized {
            method,
            path,
            status: status.as_u16(),
            body,
        };
    }
    ApiError::Status {
        method,
        path,
        status: status.as_u16(),
        body,
    }
}

/// A successful answer: the decoded body and the server's `Date` header, if any.
pub struct Answer<T> {
    pub body: T,
    pub server_date: Option<jiff::Timestamp>,
}

/// A cheap-to-clone client of one server with one token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    identity: ClientIdentity,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl Client {
    /// `base` is an `http(s)://host[:port][/prefix]` URL without a trailing slash.
    pub fn new(base: &str, token: &str, timeout: Duration, identity: ClientIdentity) -> Client {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // agentd's server closes a connection idle for 30 s (its header-read
            // timeout); dropping ours sooner avoids reusing one just as it closes.
            .pool_idle_timeout(Duration::from_secs(20))
            .build()
            .unwrap_or_default();
        Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            identity,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn identity(&self) -> &ClientIdentity {
        &self.identity
    }

    async fn call<B: Serialize + ?Sized, T: DeserializeOwned + Default>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        headers: &[(&str, &str)],
    ) -> Result<Answer<T>, ApiError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token)
            .header("X-Client-Platform", "daemon")
            .header("X-Client-Version", &self.identity.version)
            .header("X-Client-OS", &self.identity.os);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let transport = |source| ApiError::Transport {
            method: method.clone(),
            path: path.to_string(),
            source,
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let server_date = resp
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| jiff::fmt::rfc2822::parse(s).ok())
            .map(|z| z.timestamp());
        let bytes = resp.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(classify(
                method,
                path,
                status,
                &String::from_utf8_lossy(&bytes),
            ));
        }
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            T::default()
        } else {
            serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode {
                method: method.clone(),
                path: path.to_string(),
                message: e.to_string(),
            })?
        };
        Ok(Answer { body, server_date })
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned + Default>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        Ok(self.call(Method::POST, path, Some(body), &[]).await?.body)
    }

    async fn get<T: DeserializeOwned + Default>(&self, path: &str) -> Result<T, ApiError> {
        Ok(self.call::<(), T>(Method::GET, path, None, &[]).await?.body)
    }

    pub async fn list_workspaces(&self) -> Result<Answer<Vec<Workspace>>, ApiError> {
        self.call::<(), _>(Method::GET, "/api/workspaces", None, &[])
            .await
    }

    pub async fn register(&self, req: &RegisterRequest) -> Result<RegisterResponse, ApiError> {
        self.post("/api/daemon/register", req).await
    }

    pub async fn deregister(&self, runtime_ids: &[String]) -> Result<(), ApiError> {
        let req = DeregisterRequest {
            runtime_ids: runtime_ids.to_vec(),
        };
        self.post::<_, IgnoredBody>("/api/daemon/deregister", &req)
            .await
            .map(drop)
    }

    /// A heartbeat for one runtime; `held` (every task this daemon holds) renews those
    /// tasks' leases on agentd's server.
    pub async fn heartbeat(
        &self,
        runtime_id: &str,
        held: Vec<String>,
    ) -> Result<Answer<HeartbeatResponse>, ApiError> {
        let req = HeartbeatRequest {
            runtime_id: runtime_id.to_string(),
            active_task_ids: Some(held),
        };
        self.call(Method::POST, "/api/daemon/heartbeat", Some(&req), &[])
            .await
    }

    /// Asks the server to fail the runtime's in-flight tasks that this daemon does not
    /// hold (`held`: the tasks it still runs or owes a report for).
    pub async fn recover_orphans(
        &self,
        runtime_id: &str,
        held: Vec<String>,
    ) -> Result<RecoverOrphansResponse, ApiError> {
        let path = format!("/api/daemon/runtimes/{runtime_id}/recover-orphans");
        let req = RecoverOrphansRequest {
            active_task_ids: Some(held),
        };
        self.post(&path, &req).await
    }

    /// Claims the next task for a runtime. `claim_id` goes out as `Idempotency-Key`: a
    /// retry with the same id after a lost response returns the same task from agentd's
    /// server (Multica's ignores the header).
    pub async fn claim(&self, runtime_id: &str, claim_id: &str) -> Result<Option<Task>, ApiError> {
        let path = format!("/api/daemon/runtimes/{runtime_id}/tasks/claim");
        let answer: Answer<ClaimResponse> = self
            .call(
                Method::POST,
                &path,
                Some(&serde_json::json!({})),
                &[("Idempotency-Key", claim_id)],
            )
            .await?;
        Ok(answer.body.task)
    }

    /// POSTs a task report (outbox records) and reads where the task stands. A 2xx
    /// answer that says nothing we understand (Multica's bodies, an empty body) is
    /// "delivered, nothing to say": a delivered report is never treated as refused.
    pub async fn post_report(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<ReportResponse, ApiError> {
        match self.call(Method::POST, path, Some(body), &[]).await {
            Ok(answer) => Ok(answer.body),
            Err(ApiError::Decode { .. }) => Ok(ReportResponse::default()),
            Err(e) => Err(e),
        }
    }

    pub async fn task_status(&self, task_id: &str) -> Result<TaskStatusResponse, ApiError> {
        self.get(&format!("/api/daemon/tasks/{task_id}/status"))
            .await
    }
}

/// A response body the daemon does not read (any JSON, or nothing).
#[derive(Default)]
struct IgnoredBody;

impl<'de> serde::Deserialize<'de> for IgnoredBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| IgnoredBody)
    }
}

/// Runs `fut` unless `cancel` fires first, in which case the call is abandoned (the
/// connection is dropped) and [`ApiError::Cancelled`] returned.
pub async fn until_cancelled<T>(
    cancel: &CancellationToken,
    fut: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    match cancel.run_until_cancelled(fut).await {
        Some(r) => r,
        None => Err(ApiError::Cancelled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_status_and_body() {
        let c = |s: u16, b: &str| classify(Method::POST, "/p", StatusCode::from_u16(s).unwrap(), b);
        assert!(c(404, r#"{"error":"Runtime Not Found"}"#).is_runtime_not_found());
        assert!(matches!(
            c(404, "task not found"),
            ApiError::TaskNotFound { .. }
        ));
        assert!(matches!(
            c(404, "workspace not found"),
            ApiError::WorkspaceNotFound { .. }
        ));
        // A bare 404 (a proxy's page) never heals.
        let bare = c(404, "<html>not found</html>");
        assert!(matches!(bare, ApiError::Status { status: 404, .. }));
        assert!(!bare.is_transient());
        // A 500 that happens to mention the marker is transient, never a heal.
        let e500 = c(500, "runtime not found");
        assert!(!e500.is_runtime_not_found());
        assert!(e500.is_transient());
        assert!(matches!(c(401, "bad token"), ApiError::Unauthorized { .. }));
        assert!(matches!(c(403, "forbidden"), ApiError::Unauthorized { .. }));
    }

    #[test]
    fn error_bodies_are_capped() {
        let long = "é".repeat(5000);
        match classify(Method::GET, "/p", StatusCode::BAD_GATEWAY, &long) {
            ApiError::Status { body, .. } => assert!(body.len() <= ERROR_BODY_LIMIT),
            other => panic!("unexpected {other:?}"),
        }
    }
}
