//! A scriptable fake of the daemon API (HTTP + WebSocket) on 127.0.0.1:0, playing the
//! control-plane server the way the seed's `httptest` fixtures do, with upsert semantics
//! for register: a runtime row is keyed by (workspace, daemon_id, provider); a surviving
//! provider keeps its id, a deleted one gets a fresh id on the next register.
//!
//! Tests script it ([`FakeServer::set_register_mode`], [`FakeServer::delete_runtime`],
//! [`FakeServer::push`], [`FakeServer::drop_ws`], …) and read what the daemon did
//! (register calls, heartbeats, deregistered ids, reports).
//!
//! By default it answers register as agentd's server does (`"server": "agentd"`: the
//! daemon serves it with agentd's extensions). [`FakeServer::set_multica`] makes it
//! behave like a Multica server: its register answer names no kind, it never pushes
//! `task_cancelled` over WS (a cancel is seen only by polling `…/status`), and a task
//! marked deleted answers `404 task not found`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use agentd_proto::ws::WsMessage;
use agentd_proto::{
    ClaimResponse, DeregisterRequest, HeartbeatRequest, HeartbeatResponse, RegisterRequest,
    RegisterResponse, Runtime, Task, Workspace,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// How the fake answers `POST /api/daemon/register`.
#[derive(Debug, Clone)]
pub enum RegisterMode {
    /// Upsert by (workspace, daemon, provider) — the real server's semantics.
    Upsert,
    /// Always answer these runtimes (the seed's `rt-new` fixture).
    Fixed(Vec<Runtime>),
    /// Answer this status with an error body.
    Fail(u16),
    /// Hold the request until the client goes away (or `hang_for` elapses), then 500.
    Hang(Duration),
}

#[derive(Debug, Clone)]
struct RuntimeRow {
    id: String,
    workspace_id: String,
    daemon_id: String,
    provider: String,
    name: String,
    deleted: bool,
}

struct Inner {
    token: String,
    /// What register answers say the server is (`None`: nothing, like Multica).
    server_kind: Option<agentd_proto::ServerKind>,
    /// Multica behaviour: no WS cancel pushes.
    multica: bool,
    /// `POST …/usage` bodies, in arrival order.
    usage: Vec<(String, agentd_proto::UsageRequest)>,
    workspaces: Vec<Workspace>,
    runtimes: Vec<RuntimeRow>,
    register_mode: RegisterMode,
    register_requests: Vec<RegisterRequest>,
    heartbeats: Vec<String>,
    ws_heartbeats: Vec<String>,
    deregistered: Vec<Vec<String>>,
    recovered: Vec<String>,
    ws_clients: Vec<(Vec<String>, mpsc::UnboundedSender<Message>)>,
    ws_silent: bool,
    ws_disabled: bool,
    ws_connects: u64,
    tasks: HashMap<String, Vec<Task>>,
    failed_tasks: Vec<(String, String)>,
    /// Task id → seq → message (upsert on (task, seq), as the real server).
    messages: HashMap<String, std::collections::BTreeMap<i64, agentd_proto::TaskMessage>>,
    completed: Vec<(String, agentd_proto::CompleteRequest)>,
    fail_requests: Vec<(String, agentd_proto::FailRequest)>,
    /// Workspace id → the repository URLs its register answers list.
    repos: HashMap<String, Vec<String>>,
    /// `POST …/pushed` reports (retried pushes), in arrival order.
    pushed: Vec<(String, agentd_proto::PushedRequest)>,
    /// `POST …/progress` summaries, in arrival order.
    progress: Vec<(String, String)>,
    started: Vec<String>,
    statuses: HashMap<String, agentd_proto::TaskStatus>,
    /// Task report endpoints (start excluded) answer 503 while set.
    reports_failing: bool,
    /// Report calls that were refused while failing.
    refused_reports: u64,
    next_id: u64,
    /// Answer the workspace list with this status instead (e.g. 401, 503).
    list_status: Option<u16>,
    /// Answer every call with malformed JSON.
    garbage: bool,
    /// Seconds added to the `Date` header of JSON answers (a server with a wrong clock).
    clock_skew_secs: i64,
}

/// Shared state behind the fake's handlers.
pub struct Shared {
    inner: Mutex<Inner>,
    pub register_calls: AtomicU64,
    pub heartbeat_calls: AtomicU64,
    pub claim_calls: AtomicU64,
    /// Signalled each time a register request arrives.
    pub register_entered: Notify,
    /// Set when a register handler saw its client go away before it answered.
    pub register_abandoned: AtomicU64,
}

pub struct FakeServer {
    pub url: String,
    pub shared: Arc<Shared>,
    stop: CancellationToken,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn lock(s: &Shared) -> MutexGuard<'_, Inner> {
    s.inner.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeServer {
    /// Starts a fake that accepts `token` and lists `workspaces`.
    pub async fn start(token: &str, workspaces: &[&str]) -> FakeServer {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                token: token.to_string(),
                server_kind: Some(agentd_proto::ServerKind::Agentd),
                multica: false,
                usage: Vec::new(),
                workspaces: workspaces
                    .iter()
                    .map(|w| Workspace {
                        id: w.to_string(),
                        name: format!("Workspace {w}"),
                    })
                    .collect(),
                runtimes: Vec::new(),
                register_mode: RegisterMode::Upsert,
                register_requests: Vec::new(),
                heartbeats: Vec::new(),
                ws_heartbeats: Vec::new(),
                deregistered: Vec::new(),
                recovered: Vec::new(),
                ws_clients: Vec::new(),
                ws_silent: false,
                ws_disabled: false,
                ws_connects: 0,
                tasks: HashMap::new(),
                failed_tasks: Vec::new(),
                messages: HashMap::new(),
                completed: Vec::new(),
                pushed: Vec::new(),
                repos: HashMap::new(),
                progress: Vec::new(),
                fail_requests: Vec::new(),
                started: Vec::new(),
                statuses: HashMap::new(),
                reports_failing: false,
                refused_reports: 0,
                next_id: 0,
                list_status: None,
                garbage: false,
                clock_skew_secs: 0,
            }),
            register_calls: AtomicU64::new(0),
            heartbeat_calls: AtomicU64::new(0),
            claim_calls: AtomicU64::new(0),
            register_entered: Notify::new(),
            register_abandoned: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/api/workspaces", get(list_workspaces))
            .route("/api/daemon/register", post(register))
            .route("/api/daemon/deregister", post(deregister))
            .route("/api/daemon/heartbeat", post(heartbeat))
            .route("/api/daemon/runtimes/{rid}/recover-orphans", post(recover))
            .route("/api/daemon/runtimes/{rid}/tasks/claim", post(claim))
            .route("/api/daemon/tasks/{tid}/fail", post(fail))
            .route("/api/daemon/tasks/{tid}/start", post(start))
            .route("/api/daemon/tasks/{tid}/messages", post(messages))
            .route("/api/daemon/tasks/{tid}/complete", post(complete))
            .route("/api/daemon/tasks/{tid}/pushed", post(pushed))
            .route("/api/daemon/tasks/{tid}/progress", post(progress))
            .route("/api/daemon/tasks/{tid}/usage", post(usage))
            .route("/api/daemon/tasks/{tid}/status", get(status))
            .route("/api/daemon/ws", get(ws))
            .fallback(|| async { StatusCode::OK })
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake server");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(s.cancelled_owned())
                .await;
        });
        FakeServer { url, shared, stop }
    }

    pub fn set_register_mode(&self, mode: RegisterMode) {
        lock(&self.shared).register_mode = mode;
    }

    /// Pre-creates a runtime row (as if an earlier register had made it).
    pub fn seed_runtime(&self, workspace_id: &str, daemon_id: &str, provider: &str, id: &str) {
        lock(&self.shared).runtimes.push(RuntimeRow {
            id: id.into(),
            workspace_id: workspace_id.into(),
            daemon_id: daemon_id.into(),
            provider: provider.into(),
            name: provider.into(),
            deleted: false,
        });
    }

    /// Deletes a runtime server-side: heartbeats answer 404 `runtime not found`, WS acks
    /// say `runtime_gone`, the next register mints a fresh id for its provider.
    pub fn delete_runtime(&self, id: &str) {
        for r in lock(&self.shared).runtimes.iter_mut() {
            if r.id == id {
                r.deleted = true;
            }
        }
    }

    /// Deletes the live runtime of a provider (the seed's `markDeleted`).
    pub fn delete_provider(&self, provider: &str) {
        for r in lock(&self.shared).runtimes.iter_mut() {
            if r.provider == provider {
                r.deleted = true;
            }
        }
    }

    /// The live runtime id of a provider.
    pub fn runtime_id_of(&self, provider: &str) -> Option<String> {
        lock(&self.shared)
            .runtimes
            .iter()
            .find(|r| r.provider == provider && !r.deleted)
            .map(|r| r.id.clone())
    }

    /// Live (not deleted) runtime ids.
    pub fn live_runtime_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.shared)
            .runtimes
            .iter()
            .filter(|r| !r.deleted)
            .map(|r| r.id.clone())
            .collect();
        ids.sort();
        ids
    }

    pub fn register_count(&self) -> u64 {
        self.shared.register_calls.load(Ordering::SeqCst)
    }

    pub fn register_requests(&self) -> Vec<RegisterRequest> {
        lock(&self.shared).register_requests.clone()
    }

    /// Runtime ids of HTTP heartbeats, in arrival order.
    pub fn heartbeats(&self) -> Vec<String> {
        lock(&self.shared).heartbeats.clone()
    }

    /// Runtime ids of WS heartbeats, in arrival order.
    pub fn ws_heartbeats(&self) -> Vec<String> {
        lock(&self.shared).ws_heartbeats.clone()
    }

    pub fn deregistered(&self) -> Vec<Vec<String>> {
        lock(&self.shared).deregistered.clone()
    }

    pub fn recovered(&self) -> Vec<String> {
        lock(&self.shared).recovered.clone()
    }

    pub fn ws_connects(&self) -> u64 {
        lock(&self.shared).ws_connects
    }

    pub fn ws_connected_clients(&self) -> usize {
        lock(&self.shared)
            .ws_clients
            .iter()
            .filter(|(_, tx)| !tx.is_closed())
            .count()
    }

    /// Behaves like a Multica server from now on (see the module docs).
    pub fn set_multica(&self) {
        let mut g = lock(&self.shared);
        g.server_kind = None;
        g.multica = true;
    }

    /// `POST …/usage` bodies received, in arrival order.
    pub fn usage(&self) -> Vec<(String, agentd_proto::UsageRequest)> {
        lock(&self.shared).usage.clone()
    }

    /// Sends a frame to every connected WS client (a Multica server sends no
    /// `task_cancelled`: that frame is dropped in Multica mode).
    pub fn push(&self, msg: &WsMessage) {
        let text = msg.encode();
        let g = lock(&self.shared);
        if g.multica && matches!(msg, WsMessage::TaskCancelled(_)) {
            return;
        }
        for (_, tx) in &g.ws_clients {
            let _ = tx.send(Message::text(text.clone()));
        }
    }

    /// Closes every WS connection.
    pub fn drop_ws(&self) {
        lock(&self.shared).ws_clients.clear();
    }

    /// While set, WS connections are accepted but the server neither reads nor answers
    /// (a connection that looks open but is dead).
    pub fn set_ws_silent(&self, silent: bool) {
        lock(&self.shared).ws_silent = silent;
    }

    /// While set, WS upgrades are refused with 503 (a server or proxy without WS): the
    /// daemon must live on HTTP heartbeats and polling alone.
    pub fn set_ws_enabled(&self, enabled: bool) {
        lock(&self.shared).ws_disabled = !enabled;
    }

    /// Makes `GET /api/workspaces` answer this status (None: normal).
    pub fn set_list_status(&self, status: Option<u16>) {
        lock(&self.shared).list_status = status;
    }

    /// Skews the `Date` header of JSON answers by this many seconds.
    pub fn set_clock_skew(&self, secs: i64) {
        lock(&self.shared).clock_skew_secs = secs;
    }

    /// Makes every answer malformed JSON.
    pub fn set_garbage(&self, garbage: bool) {
        lock(&self.shared).garbage = garbage;
    }

    /// Queues a task for a runtime.
    pub fn queue_task(&self, runtime_id: &str, task: Task) {
        lock(&self.shared)
            .tasks
            .entry(runtime_id.to_string())
            .or_default()
            .push(task);
    }

    pub fn failed_tasks(&self) -> Vec<(String, String)> {
        lock(&self.shared).failed_tasks.clone()
    }

    /// Full fail requests, in arrival order.
    pub fn fail_requests(&self) -> Vec<(String, agentd_proto::FailRequest)> {
        lock(&self.shared).fail_requests.clone()
    }

    /// Messages stored for a task, by seq.
    pub fn messages(&self, task_id: &str) -> Vec<agentd_proto::TaskMessage> {
        lock(&self.shared)
            .messages
            .get(task_id)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn completed(&self) -> Vec<(String, agentd_proto::CompleteRequest)> {
        lock(&self.shared).completed.clone()
    }

    /// The repositories the workspace allows (sent with every later register answer).
    pub fn set_repos(&self, workspace_id: &str, urls: &[&str]) {
        lock(&self.shared).repos.insert(
            workspace_id.into(),
            urls.iter().map(|u| u.to_string()).collect(),
        );
    }

    /// `POST …/pushed` reports so far.
    pub fn pushed(&self) -> Vec<(String, agentd_proto::PushedRequest)> {
        lock(&self.shared).pushed.clone()
    }

    /// `POST …/progress` summaries so far.
    pub fn progress(&self) -> Vec<(String, String)> {
        lock(&self.shared).progress.clone()
    }

    pub fn started(&self) -> Vec<String> {
        lock(&self.shared).started.clone()
    }

    /// While set, messages/complete/fail answer 503 (a server having a bad minute).
    pub fn set_reports_failing(&self, failing: bool) {
        lock(&self.shared).reports_failing = failing;
    }

    pub fn refused_reports(&self) -> u64 {
        lock(&self.shared).refused_reports
    }

    /// Sets what `GET /tasks/{id}/status` answers (cancel without a WS push);
    /// [`TaskStatus::Unknown`](agentd_proto::TaskStatus::Unknown): the task was deleted
    /// (`404 task not found`).
    pub fn set_task_status(&self, task_id: &str, status: agentd_proto::TaskStatus) {
        lock(&self.shared)
            .statuses
            .insert(task_id.to_string(), status);
    }
}

fn authorized(s: &Shared, headers: &HeaderMap) -> bool {
    let want = format!("Bearer {}", lock(s).token);
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == want)
}

fn json_error(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": msg }))).into_response()
}

fn answer<T: serde::Serialize>(s: &Shared, body: &T) -> Response {
    let (garbage, skew) = {
        let g = lock(s);
        (g.garbage, g.clock_skew_secs)
    };
    if garbage {
        return (StatusCode::OK, "{not json").into_response();
    }
    let mut resp = axum::Json(body).into_response();
    if skew != 0 {
        let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(skew);
        let date = jiff::fmt::rfc2822::DateTimePrinter::new().timestamp_to_rfc9110_string(&at);
        if let Ok(date) = date
            && let Ok(v) = axum::http::HeaderValue::from_str(&date)
        {
            resp.headers_mut().insert(axum::http::header::DATE, v);
        }
    }
    resp
}

async fn list_workspaces(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !authorized(&s, &headers) {
        return json_error(StatusCode::UNAUTHORIZED, "invalid token");
    }
    let (status, list) = {
        let g = lock(&s);
        (g.list_status, g.workspaces.clone())
    };
    if let Some(code) = status {
        let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return json_error(code, "scripted failure");
    }
    answer(&s, &list)
}

/// Counts register handlers whose client went away before the answer.
struct AbandonGuard(Arc<Shared>, bool);

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.register_abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn register(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&s, &headers) {
        return json_error(StatusCode::UNAUTHORIZED, "invalid token");
    }
    s.register_calls.fetch_add(1, Ordering::SeqCst);
    s.register_entered.notify_waiters();
    let mut guard = AbandonGuard(Arc::clone(&s), false);
    let req: RegisterRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            guard.1 = true;
            return json_error(StatusCode::BAD_REQUEST, &format!("bad register body: {e}"));
        }
    };
    let mode = {
        let mut g = lock(&s);
        g.register_requests.push(req.clone());
        g.register_mode.clone()
    };
    let resp = match mode {
        RegisterMode::Fail(code) => {
            guard.1 = true;
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return json_error(code, "scripted register failure");
        }
        RegisterMode::Hang(d) => {
            tokio::time::sleep(d).await;
            guard.1 = true;
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, "hung register");
        }
        RegisterMode::Fixed(runtimes) => RegisterResponse {
            runtimes,
            server: lock(&s).server_kind,
            ..RegisterResponse::default()
        },
        RegisterMode::Upsert => {
            let mut g = lock(&s);
            let mut out = Vec::new();
            for spec in &req.runtimes {
                let existing = g.runtimes.iter().position(|r| {
                    r.workspace_id == req.workspace_id
                        && r.daemon_id == req.daemon_id
                        && r.provider == spec.provider
                        && !r.deleted
                });
                let row = match existing {
                    Some(i) => g.runtimes[i].clone(),
                    None => {
                        g.next_id += 1;
                        let row = RuntimeRow {
                            id: format!("{}-new-{}", spec.provider, g.next_id),
                            workspace_id: req.workspace_id.clone(),
                            daemon_id: req.daemon_id.clone(),
                            provider: spec.provider.clone(),
                            name: spec.name.clone(),
                            deleted: false,
                        };
                        g.runtimes.push(row.clone());
                        row
                    }
                };
                out.push(Runtime {
                    id: row.id,
                    name: row.name,
                    provider: row.provider,
                    status: "online".into(),
                });
            }
            let repos = g.repos.get(&req.workspace_id).cloned().unwrap_or_default();
            RegisterResponse {
                runtimes: out,
                repos: repos
                    .into_iter()
                    .map(|url| agentd_proto::Repo { url })
                    .collect(),
                server: g.server_kind,
                ..RegisterResponse::default()
            }
        }
    };
    guard.1 = true;
    answer(&s, &resp)
}

async fn deregister(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    if let Ok(req) = serde_json::from_slice::<DeregisterRequest>(&body) {
        lock(&s).deregistered.push(req.runtime_ids);
    }
    StatusCode::OK.into_response()
}

fn runtime_gone(s: &Shared, id: &str) -> bool {
    !lock(s).runtimes.iter().any(|r| r.id == id && !r.deleted)
}

async fn heartbeat(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&s, &headers) {
        return json_error(StatusCode::UNAUTHORIZED, "invalid token");
    }
    s.heartbeat_calls.fetch_add(1, Ordering::SeqCst);
    let Ok(req) = serde_json::from_slice::<HeartbeatRequest>(&body) else {
        return json_error(StatusCode::BAD_REQUEST, "bad heartbeat body");
    };
    lock(&s).heartbeats.push(req.runtime_id.clone());
    if runtime_gone(&s, &req.runtime_id) {
        return json_error(StatusCode::NOT_FOUND, "runtime not found");
    }
    answer(
        &s,
        &HeartbeatResponse {
            runtime_id: req.runtime_id,
            status: "online".into(),
            ..HeartbeatResponse::default()
        },
    )
}

async fn recover(State(s): State<Arc<Shared>>, Path(rid): Path<String>) -> Response {
    lock(&s).recovered.push(rid);
    StatusCode::OK.into_response()
}

async fn claim(State(s): State<Arc<Shared>>, Path(rid): Path<String>) -> Response {
    s.claim_calls.fetch_add(1, Ordering::SeqCst);
    if runtime_gone(&s, &rid) {
        return json_error(StatusCode::NOT_FOUND, "runtime not found");
    }
    let task = {
        let mut g = lock(&s);
        g.tasks
            .get_mut(&rid)
            .and_then(|q| (!q.is_empty()).then(|| q.remove(0)))
    };
    answer(&s, &ClaimResponse { task })
}

/// Refuses a report while reports are failing.
fn refuse_report(s: &Shared) -> Option<Response> {
    let mut g = lock(s);
    if g.reports_failing {
        g.refused_reports += 1;
        return Some(json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "scripted outage",
        ));
    }
    None
}

async fn fail(State(s): State<Arc<Shared>>, Path(tid): Path<String>, body: Bytes) -> Response {
    if let Some(r) = refuse_report(&s) {
        return r;
    }
    let req = serde_json::from_slice::<agentd_proto::FailRequest>(&body).unwrap_or_default();
    let mut g = lock(&s);
    g.failed_tasks.push((tid.clone(), req.error.clone()));
    g.fail_requests.push((tid, req));
    StatusCode::OK.into_response()
}

async fn start(State(s): State<Arc<Shared>>, Path(tid): Path<String>) -> Response {
    lock(&s).started.push(tid);
    StatusCode::OK.into_response()
}

async fn messages(State(s): State<Arc<Shared>>, Path(tid): Path<String>, body: Bytes) -> Response {
    if let Some(r) = refuse_report(&s) {
        return r;
    }
    let Ok(req) = serde_json::from_slice::<agentd_proto::MessagesRequest>(&body) else {
        return json_error(StatusCode::BAD_REQUEST, "bad messages body");
    };
    let mut g = lock(&s);
    let m = g.messages.entry(tid).or_default();
    for msg in req.messages {
        m.insert(msg.seq, msg);
    }
    StatusCode::OK.into_response()
}

async fn complete(State(s): State<Arc<Shared>>, Path(tid): Path<String>, body: Bytes) -> Response {
    if let Some(r) = refuse_report(&s) {
        return r;
    }
    let req = serde_json::from_slice::<agentd_proto::CompleteRequest>(&body).unwrap_or_default();
    lock(&s).completed.push((tid, req));
    StatusCode::OK.into_response()
}

async fn pushed(State(s): State<Arc<Shared>>, Path(tid): Path<String>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<agentd_proto::PushedRequest>(&body) else {
        return json_error(StatusCode::BAD_REQUEST, "bad pushed body");
    };
    lock(&s).pushed.push((tid, req));
    StatusCode::OK.into_response()
}

async fn progress(State(s): State<Arc<Shared>>, Path(tid): Path<String>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<agentd_proto::ProgressRequest>(&body) else {
        return json_error(StatusCode::BAD_REQUEST, "bad progress body");
    };
    lock(&s).progress.push((tid, req.summary));
    StatusCode::OK.into_response()
}

async fn usage(State(s): State<Arc<Shared>>, Path(tid): Path<String>, body: Bytes) -> Response {
    if let Some(r) = refuse_report(&s) {
        return r;
    }
    let Ok(req) = serde_json::from_slice::<agentd_proto::UsageRequest>(&body) else {
        return json_error(StatusCode::BAD_REQUEST, "bad usage body");
    };
    lock(&s).usage.push((tid, req));
    StatusCode::OK.into_response()
}

async fn status(State(s): State<Arc<Shared>>, Path(tid): Path<String>) -> Response {
    let st = lock(&s)
        .statuses
        .get(&tid)
        .copied()
        .unwrap_or(agentd_proto::TaskStatus::Running);
    if st == agentd_proto::TaskStatus::Unknown {
        return json_error(StatusCode::NOT_FOUND, "task not found");
    }
    axum::Json(agentd_proto::TaskStatusResponse { status: st }).into_response()
}

#[derive(serde::Deserialize)]
struct WsQuery {
    #[serde(default)]
    runtime_ids: String,
}

async fn ws(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<WsQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !authorized(&s, &headers) {
        return json_error(StatusCode::UNAUTHORIZED, "invalid token");
    }
    if lock(&s).ws_disabled {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "websocket disabled");
    }
    let ids: Vec<String> = q
        .runtime_ids
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    upgrade.on_upgrade(move |socket| ws_session(s, ids, socket))
}

async fn ws_session(s: Arc<Shared>, ids: Vec<String>, socket: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let silent = {
        let mut g = lock(&s);
        g.ws_connects += 1;
        g.ws_clients.push((ids.clone(), tx));
        g.ws_silent
    };
    if silent {
        // Hold the socket open without reading or writing: pings go unanswered.
        let _keep = socket;
        let _ = rx.recv().await;
        return;
    }
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(m) => if sink.send(m).await.is_err() { return },
                None => { let _ = sink.send(Message::Close(None)).await; return }
            },
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    if let Ok(WsMessage::Heartbeat(hb)) = WsMessage::decode(t.as_str()) {
                        lock(&s).ws_heartbeats.push(hb.runtime_id.clone());
                        let gone = runtime_gone(&s, &hb.runtime_id);
                        let ack = HeartbeatResponse {
                            runtime_id: hb.runtime_id,
                            status: if gone { "runtime_gone".into() } else { "online".into() },
                            runtime_gone: gone,
                            ..HeartbeatResponse::default()
                        };
                        if sink.send(Message::text(WsMessage::HeartbeatAck(ack).encode())).await.is_err() { return }
                    }
                }
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}
