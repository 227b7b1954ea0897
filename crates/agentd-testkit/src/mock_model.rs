//! A mock of the model provider APIs on 127.0.0.1:0, for running the real agent CLIs
//! offline. It speaks what each CLI needs (shapes as documented in
//! `real-agents.md`, which recorded what worked):
//!
//! | API | route | CLI | base URL setting |
//! |---|---|---|---|
//! | Anthropic Messages, SSE | `POST /v1/messages` | Claude Code | `ANTHROPIC_BASE_URL=`[`MockModel::base_url`] |
//! | OpenAI Responses, SSE | `POST /v1/responses` | Codex | provider `base_url = `[`MockModel::openai_base_url`] |
//! | OpenAI Chat Completions, SSE or JSON | `POST /v1/chat/completions` (+ `GET /v1/models`) | OpenCode, Hermes Agent, mini-swe-agent, Copilot CLI, Factory Droid | OpenCode provider `baseURL`, Hermes `model.base_url`, litellm `OPENAI_API_BASE` `= `[`MockModel::openai_base_url`] |
//! | Gemini `streamGenerateContent?alt=sse`, `generateContent` (router), `countTokens` | `POST /v1beta/models/{model}:{action}` | Gemini CLI | `GOOGLE_GEMINI_BASE_URL=`[`MockModel::base_url`] |
//!
//! **Scripts.** A script is a list of [`Turn`]s. The mock is stateless per conversation:
//! the script is chosen by the last `@mock:<name>` marker in the conversation (else the
//! default script), and the turn by the number of tool results that follow that marker.
//! So many CLIs and tests can share one mock, and a CLI's retries get the same answer.
//! Tool turns are mapped to each CLI's own tools (Claude `Write`/`Bash`, Codex
//! `apply_patch`/`exec_command`, Gemini `write_file`/`run_shell_command`; on Chat
//! Completions, CLIs told apart by the tools their request offers: Hermes
//! `write_file`/`terminal`, Copilot CLI `create`/`bash`, Factory Droid `Create`/`Execute`,
//! mini-swe-agent `bash` (heredoc writes; a text turn is its submit command), and any
//! other CLI the write and shell tools it offers, with argument names from their schemas
//! (OpenCode `write`/`bash`, Qwen Code `write_file`/`run_shell_command`, …). Built-in
//! scripts: see [`MockModel::start`].
//!
//! Every request is recorded ([`MockModel::requests`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// One model reply in a script.
#[derive(Debug, Clone, PartialEq)]
pub enum Turn {
    /// A plain text answer (ends the agent's turn).
    Text(String),
    /// A tool call that writes `content` to `path` (relative to the agent's cwd).
    WriteFile { path: String, content: String },
    /// A tool call that runs a shell command.
    Shell { command: String },
    /// An HTTP error with the provider's error body (400, 429, 500, 529, …).
    Error { status: u16, message: String },
    /// Accept the request and never answer (until the mock is dropped).
    Hang,
    /// An HTTP error the first time this turn of this script is asked for (by any run),
    /// then `then`: a model API that is busy for a while (the retry of a task succeeds).
    ErrorOnce { status: u16, then: Box<Turn> },
}

impl Turn {
    pub fn text(s: impl Into<String>) -> Turn {
        Turn::Text(s.into())
    }

    pub fn write_file(path: impl Into<String>, content: impl Into<String>) -> Turn {
        Turn::WriteFile {
            path: path.into(),
            content: content.into(),
        }
    }

    pub fn shell(command: impl Into<String>) -> Turn {
        Turn::Shell {
            command: command.into(),
        }
    }

    pub fn error(status: u16) -> Turn {
        Turn::Error {
            status,
            message: format!("mock {status}"),
        }
    }
}

/// Which API a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    Anthropic,
    Responses,
    ChatCompletions,
    Gemini,
    /// Gemini's non-streaming `generateContent` (the CLI's model router) or `countTokens`.
    GeminiAux,
    /// Anything else (answered 404).
    Other,
}

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub api: Api,
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// The JSON body (`Null` if it was not JSON).
    pub body: Value,
    /// The script chosen (`None` for the default script or an auxiliary request).
    pub scenario: Option<String>,
    /// The turn index within the script.
    pub turn: usize,
}

struct Shared {
    scripts: HashMap<String, Vec<Turn>>,
    default_script: Vec<Turn>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// Woken on every recorded request.
    arrived: tokio::sync::Notify,
    ids: AtomicU64,
    stop: CancellationToken,
}

/// The running mock. Dropping it stops the server (hanging requests get a 503).
pub struct MockModel {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Drop for MockModel {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

/// The built-in scripts, by marker name.
pub fn builtin_scripts() -> Vec<(&'static str, Vec<Turn>)> {
    vec![
        ("text", vec![Turn::text("Hello from the mock model.")]),
        (
            "write",
            vec![
                Turn::write_file("hello.txt", "hello from mock\n"),
                Turn::text("MOCK-DONE: wrote hello.txt"),
            ],
        ),
        (
            "write-shell",
            vec![
                Turn::write_file("hello.txt", "hello from mock\n"),
                Turn::shell("cat hello.txt"),
                Turn::text("MOCK-DONE: wrote and read hello.txt"),
            ],
        ),
        (
            "comment",
            vec![
                Turn::shell("agentd issue comment \"$AGENTD_ISSUE_ID\" 'done by the mock'"),
                Turn::text("MOCK-DONE: commented"),
            ],
        ),
        ("error", vec![Turn::error(400)]),
        ("overloaded", vec![Turn::error(529)]),
        (
            "overloaded-once",
            vec![Turn::ErrorOnce {
                status: 529,
                then: Box::new(Turn::text("MOCK-DONE: after the overload")),
            }],
        ),
        ("hang", vec![Turn::Hang]),
    ]
}

impl MockModel {
    /// Starts the mock with the built-in scripts (`@mock:text`, `write`, `write-shell`,
    /// `comment`, `error` (400), `overloaded` (529), `hang`) plus `scripts` (which win on
    /// a name clash). Requests without a marker play `scripts`' first entry, else `text`.
    pub async fn start(scripts: Vec<(&str, Vec<Turn>)>) -> std::io::Result<MockModel> {
        let mut all: HashMap<String, Vec<Turn>> = builtin_scripts()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let default_script = match scripts.first() {
            Some((_, turns)) => turns.clone(),
            None => all.get("text").cloned().unwrap_or_default(),
        };
        for (name, turns) in scripts {
            all.insert(name.to_string(), turns);
        }
        let shared = Arc::new(Shared {
            scripts: all,
            default_script,
            requests: Mutex::new(Vec::new()),
            arrived: tokio::sync::Notify::new(),
            ids: AtomicU64::new(1),
            stop: CancellationToken::new(),
        });
        let app = Router::new()
            .route("/v1/messages", post(anthropic))
            .route("/v1/responses", post(responses))
            .route("/v1/chat/completions", post(chat))
            .route("/v1/models", get(models))
            .route("/v1beta/models/{model_action}", post(gemini))
            .fallback(other)
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stop = shared.stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Ok(MockModel { addr, shared })
    }

    /// `http://127.0.0.1:PORT` (Anthropic and Gemini clients append their own paths).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/v1` (OpenAI-style clients append `/responses`, `/chat/completions`).
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Number of requests so far.
    pub fn request_count(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// Waits until at least `n` requests to `api` have arrived; `false` after `bound`.
    pub async fn wait_for(&self, api: Api, n: usize, bound: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let notified = self.shared.arrived.notified();
            if self.count(api) >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.count(api) >= n;
            }
        }
    }

    /// Number of requests to `api` so far.
    pub fn count(&self, api: Api) -> usize {
        lock(&self.shared.requests)
            .iter()
            .filter(|r| r.api == api)
            .count()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn next_id(&self, prefix: &str) -> String {
        format!(
            "{prefix}_mock{:06}",
            self.ids.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Picks the turn for a conversation and records the request.
    fn pick(
        &self,
        api: Api,
        uri: &Uri,
        body: &Value,
        conversation: Option<&Value>,
        tool_result_marks: &[&str],
    ) -> (Turn, usize) {
        let convo = conversation.map(Value::to_string).unwrap_or_default();
        let (scenario, after) = match convo.rfind("@mock:") {
            Some(pos) => {
                let name: String = convo[pos + 6..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .collect();
                (Some(name), &convo[pos..])
            }
            None => (None, convo.as_str()),
        };
        let turn: usize = tool_result_marks
            .iter()
            .map(|m| after.matches(m).count())
            .sum();
        let script = scenario
            .as_ref()
            .and_then(|s| self.scripts.get(s))
            .unwrap_or(&self.default_script);
        let mut reply = script
            .get(turn)
            .cloned()
            .unwrap_or_else(|| Turn::text("MOCK: script exhausted"));
        if let Turn::ErrorOnce { status, then } = reply {
            let seen = self
                .requests
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|r| r.scenario == scenario && r.turn == turn);
            reply = if seen {
                *then
            } else {
                Turn::Error {
                    status,
                    message: format!("mock {status}"),
                }
            };
        }
        self.record(api, uri, body, scenario, turn);
        (reply, turn)
    }

    fn record(&self, api: Api, uri: &Uri, body: &Value, scenario: Option<String>, turn: usize) {
        self.push(RecordedRequest {
            api,
            method: "POST".to_string(),
            uri: uri.to_string(),
            body: body.clone(),
            scenario,
            turn,
        });
    }

    fn push(&self, request: RecordedRequest) {
        lock(&self.requests).push(request);
        self.arrived.notify_waiters();
    }

    /// Holds a `Hang` request until the mock stops.
    async fn hang(&self) -> Response {
        self.stop.cancelled().await;
        (StatusCode::SERVICE_UNAVAILABLE, "mock stopped").into_response()
    }
}

fn json_body(bytes: &Bytes) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

/// An SSE body from `(event name, data)` pairs (`None`: data-only events).
fn sse(events: Vec<(Option<&str>, String)>) -> Response {
    let mut body = String::new();
    for (name, data) in events {
        if let Some(name) = name {
            body.push_str("event: ");
            body.push_str(name);
            body.push('\n');
        }
        body.push_str("data: ");
        body.push_str(&data);
        body.push_str("\n\n");
    }
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn status_of(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Text in pieces of up to 12 chars, as a streaming model sends it.
fn chunks(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    chars.chunks(12).map(|c| c.iter().collect()).collect()
}

const INPUT_TOKENS: i64 = 100;
const OUTPUT_TOKENS: i64 = 10;

// ---- Anthropic Messages (Claude Code) ----

async fn anthropic(State(s): State<Arc<Shared>>, uri: Uri, bytes: Bytes) -> Response {
    let body = json_body(&bytes);
    let (turn, n) = s.pick(
        Api::Anthropic,
        &uri,
        &body,
        body.get("messages"),
        &[r#""type":"tool_result""#],
    );
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("claude-mock")
        .to_string();
    let input_tokens = INPUT_TOKENS + n as i64;
    let block = match turn {
        Turn::Hang => return s.hang().await,
        Turn::ErrorOnce { .. } => unreachable!("`pick` resolves ErrorOnce"),
        Turn::Error { status, message } => {
            let kind = match status {
                400 => "invalid_request_error",
                401 => "authentication_error",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                _ => "api_error",
            };
            let body = json!({"type": "error", "error": {"type": kind, "message": message}});
            return (status_of(status), axum::Json(body)).into_response();
        }
        Turn::Text(text) => AnthropicBlock::Text(text),
        Turn::WriteFile { path, content } => {
            AnthropicBlock::Tool("Write", json!({"file_path": path, "content": content}))
        }
        Turn::Shell { command } => AnthropicBlock::Tool(
            "Bash",
            json!({"command": command, "description": "mock shell command"}),
        ),
    };
    let msg_id = s.next_id("msg");
    let mut events = vec![(
        Some("message_start"),
        json!({"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}})
        .to_string(),
    )];
    let stop_reason = match block {
        AnthropicBlock::Text(text) => {
            events.push((
                Some("content_block_start"),
                json!({"type": "content_block_start", "index": 0,
                       "content_block": {"type": "text", "text": ""}})
                .to_string(),
            ));
            for piece in chunks(&text) {
                events.push((
                    Some("content_block_delta"),
                    json!({"type": "content_block_delta", "index": 0,
                           "delta": {"type": "text_delta", "text": piece}})
                    .to_string(),
                ));
            }
            "end_turn"
        }
        AnthropicBlock::Tool(name, input) => {
            events.push((
                Some("content_block_start"),
                json!({"type": "content_block_start", "index": 0,
                       "content_block": {"type": "tool_use", "id": s.next_id("toolu"),
                                          "name": name, "input": {}}})
                .to_string(),
            ));
            events.push((
                Some("content_block_delta"),
                json!({"type": "content_block_delta", "index": 0,
                       "delta": {"type": "input_json_delta", "partial_json": input.to_string()}})
                .to_string(),
            ));
            "tool_use"
        }
    };
    events.push((
        Some("content_block_stop"),
        json!({"type": "content_block_stop", "index": 0}).to_string(),
    ));
    events.push((
        Some("message_delta"),
        json!({"type": "message_delta",
               "delta": {"stop_reason": stop_reason, "stop_sequence": null},
               "usage": {"output_tokens": OUTPUT_TOKENS}})
        .to_string(),
    ));
    events.push((
        Some("message_stop"),
        json!({"type": "message_stop"}).to_string(),
    ));
    sse(events)
}

enum AnthropicBlock {
    Text(String),
    Tool(&'static str, Value),
}

// ---- OpenAI Responses (Codex) ----

/// `apply_patch` input adding `path` with `content`.
fn add_file_patch(path: &str, content: &str) -> String {
    let mut patch = format!("*** Begin Patch\n*** Add File: {path}\n");
    for line in content.lines() {
        patch.push('+');
        patch.push_str(line);
        patch.push('\n');
    }
    patch.push_str("*** End Patch\n");
    patch
}

async fn responses(State(s): State<Arc<Shared>>, uri: Uri, bytes: Bytes) -> Response {
    let body = json_body(&bytes);
    let (turn, n) = s.pick(
        Api::Responses,
        &uri,
        &body,
        body.get("input"),
        &[
            r#""type":"function_call_output""#,
            r#""type":"custom_tool_call_output""#,
        ],
    );
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("gpt-mock")
        .to_string();
    let item = match turn {
        Turn::Hang => return s.hang().await,
        Turn::ErrorOnce { .. } => unreachable!("`pick` resolves ErrorOnce"),
        Turn::Error { status, message } => {
            let kind = if status == 400 {
                "invalid_request_error"
            } else {
                "server_error"
            };
            let body = json!({"error": {"message": message, "type": kind, "code": null}});
            return (status_of(status), axum::Json(body)).into_response();
        }
        Turn::Text(text) => ResponsesItem::Message(text),
        Turn::WriteFile { path, content } => ResponsesItem::Item(json!({
            "type": "custom_tool_call", "id": s.next_id("ctc"), "call_id": s.next_id("call"),
            "name": "apply_patch", "input": add_file_patch(&path, &content), "status": "completed"})),
        Turn::Shell { command } => ResponsesItem::Item(json!({
            "type": "function_call", "id": s.next_id("fc"), "call_id": s.next_id("call"),
            "name": "exec_command", "arguments": json!({"cmd": command}).to_string(),
            "status": "completed"})),
    };
    let resp_id = s.next_id("resp");
    let mut events = vec![(
        "response.created",
        json!({"type": "response.created", "response": {
            "id": resp_id, "object": "response", "status": "in_progress", "model": model, "output": []}}),
    )];
    let done_item = match item {
        ResponsesItem::Message(text) => {
            let id = s.next_id("msg");
            events.push((
                "response.output_item.added",
                json!({"type": "response.output_item.added", "output_index": 0, "item": {
                    "type": "message", "id": id, "role": "assistant", "status": "in_progress", "content": []}}),
            ));
            for piece in chunks(&text) {
                events.push((
                    "response.output_text.delta",
                    json!({"type": "response.output_text.delta", "item_id": id,
                           "output_index": 0, "content_index": 0, "delta": piece}),
                ));
            }
            json!({"type": "message", "id": id, "role": "assistant", "status": "completed",
                   "content": [{"type": "output_text", "text": text, "annotations": []}]})
        }
        ResponsesItem::Item(item) => {
            events.push((
                "response.output_item.added",
                json!({"type": "response.output_item.added", "output_index": 0, "item": item}),
            ));
            item
        }
    };
    events.push((
        "response.output_item.done",
        json!({"type": "response.output_item.done", "output_index": 0, "item": done_item}),
    ));
    let input_tokens = INPUT_TOKENS + n as i64;
    events.push((
        "response.completed",
        json!({"type": "response.completed", "response": {
            "id": resp_id, "object": "response", "status": "completed", "model": model,
            "output": [done_item],
            "usage": {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens": OUTPUT_TOKENS, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": input_tokens + OUTPUT_TOKENS}}}),
    ));
    sse(events
        .into_iter()
        .map(|(name, data)| (Some(name), data.to_string()))
        .collect())
}

enum ResponsesItem {
    Message(String),
    Item(Value),
}

// ---- OpenAI Chat Completions (OpenCode, Hermes Agent, mini-swe-agent) ----

/// Whose tools a Chat Completions request offers, told apart by the tool names in the
/// request: the mock answers a tool turn with that CLI's own tool.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ChatDialect {
    /// Any other CLI: the write and shell tools its request offers ([`chat_tool`]), else
    /// OpenCode's `write {filePath, content}`, `bash {command}`.
    Generic,
    /// Hermes Agent: `write_file {path, content}`, `terminal {command}`.
    Hermes,
    /// mini-swe-agent: one `bash {command}` tool; a file is written with a heredoc, and
    /// the final answer is a command whose output starts with its submit marker.
    MiniSwe,
    /// GitHub Copilot CLI: `create {path, file_text}` (an absolute path: the request's
    /// `Current working directory: …` joined with the script's path), `bash {command,
    /// description}`.
    Copilot { cwd: Option<String> },
    /// Factory Droid: `Create {file_path, content}`, `Execute {command, summary,
    /// riskLevel, riskLevelReason}`.
    Droid,
}

/// The marker line that ends a mini-swe-agent run; the rest of the output is its answer.
const MINI_SUBMIT: &str = "COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT";

fn chat_dialect(body: &Value) -> ChatDialect {
    let names: Vec<&str> = body
        .get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if names.contains(&"terminal") && names.contains(&"write_file") {
        ChatDialect::Hermes
    } else if names.contains(&"Create") && names.contains(&"Execute") {
        ChatDialect::Droid
    } else if names.contains(&"create") && names.contains(&"bash") {
        let system = body
            .pointer("/messages/0/content")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let cwd = system.lines().find_map(|l| {
            l.split_once("Current working directory: ")
                .map(|(_, d)| d.trim().to_string())
        });
        ChatDialect::Copilot { cwd }
    } else if names == ["bash"] {
        ChatDialect::MiniSwe
    } else {
        ChatDialect::Generic
    }
}

/// A single-quoted shell word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// What the assistant says in one Chat Completions reply: text and/or one tool call.
struct ChatReply {
    text: Option<String>,
    tool: Option<(String, String)>,
}

fn chat_reply(body: &Value, dialect: ChatDialect, turn: Turn) -> ChatReply {
    let tool = |name: &str, args: Value| ChatReply {
        text: None,
        tool: Some((name.to_string(), args.to_string())),
    };
    let mapped = |t: ChatTool| {
        let (name, args) = chat_tool(body, t);
        ChatReply {
            text: None,
            tool: Some((name, args)),
        }
    };
    match (dialect, turn) {
        (_, Turn::Hang | Turn::Error { .. } | Turn::ErrorOnce { .. }) => ChatReply {
            text: None,
            tool: None,
        },
        (ChatDialect::MiniSwe, Turn::Text(text)) => ChatReply {
            tool: Some((
                "bash".to_string(),
                json!({"command": format!("printf '%s\\n' {MINI_SUBMIT} {}", shell_quote(&text))})
                    .to_string(),
            )),
            text: Some(text),
        },
        (_, Turn::Text(text)) => ChatReply {
            text: Some(text),
            tool: None,
        },
        (ChatDialect::Generic, Turn::WriteFile { path, content }) => {
            mapped(ChatTool::Write { path, content })
        }
        (ChatDialect::Hermes, Turn::WriteFile { path, content }) => {
            tool("write_file", json!({"path": path, "content": content}))
        }
        (ChatDialect::MiniSwe, Turn::WriteFile { path, content }) => {
            let command = format!(
                "cat <<'MOCK_EOF' > {}\n{}MOCK_EOF",
                shell_quote(&path),
                if content.ends_with('\n') || content.is_empty() {
                    content.clone()
                } else {
                    format!("{content}\n")
                }
            );
            tool("bash", json!({"command": command}))
        }
        (ChatDialect::Copilot { cwd }, Turn::WriteFile { path, content }) => {
            let path = match cwd {
                Some(cwd) if !path.starts_with('/') => format!("{cwd}/{path}"),
                _ => path,
            };
            tool("create", json!({"path": path, "file_text": content}))
        }
        (ChatDialect::Copilot { .. }, Turn::Shell { command }) => tool(
            "bash",
            json!({"command": command, "description": "mock shell command"}),
        ),
        (ChatDialect::Droid, Turn::WriteFile { path, content }) => {
            tool("Create", json!({"file_path": path, "content": content}))
        }
        (ChatDialect::Droid, Turn::Shell { command }) => tool(
            "Execute",
            json!({"command": command, "summary": "mock shell command", "riskLevel": "low",
                   "riskLevelReason": "reads a file"}),
        ),
        (ChatDialect::Generic, Turn::Shell { command }) => mapped(ChatTool::Shell { command }),
        (ChatDialect::MiniSwe, Turn::Shell { command }) => {
            tool("bash", json!({"command": command}))
        }
        (ChatDialect::Hermes, Turn::Shell { command }) => {
            tool("terminal", json!({"command": command}))
        }
    }
}

async fn chat(State(s): State<Arc<Shared>>, uri: Uri, bytes: Bytes) -> Response {
    let body = json_body(&bytes);
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock-model")
        .to_string();
    let has_tools = body
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    let (turn, n) = if has_tools {
        s.pick(
            Api::ChatCompletions,
            &uri,
            &body,
            body.get("messages"),
            &[r#""role":"tool""#],
        )
    } else {
        // A tool-less request is OpenCode's session-title call: not part of the script.
        s.record(Api::ChatCompletions, &uri, &body, None, 0);
        (Turn::text("Mock title"), 0)
    };
    match turn {
        Turn::Hang => return s.hang().await,
        Turn::ErrorOnce { .. } => unreachable!("`pick` resolves ErrorOnce"),
        Turn::Error { status, message } => {
            let kind = if status == 400 {
                "invalid_request_error"
            } else {
                "server_error"
            };
            let body = json!({"error": {"message": message, "type": kind, "code": null}});
            return (status_of(status), axum::Json(body)).into_response();
        }
        _ => {}
    }
    let reply = chat_reply(&body, chat_dialect(&body), turn);
    let id = s.next_id("chatcmpl");
    let prompt_tokens = INPUT_TOKENS + n as i64;
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": OUTPUT_TOKENS,
                       "total_tokens": prompt_tokens + OUTPUT_TOKENS});
    let finish = if reply.tool.is_some() {
        "tool_calls"
    } else {
        "stop"
    };
    let tool_calls = reply.tool.as_ref().map(|(name, args)| {
        json!([{"index": 0, "id": s.next_id("call"), "type": "function",
                "function": {"name": name, "arguments": args}}])
    });
    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        // Non-streaming (litellm's `completion` without `stream`: mini-swe-agent).
        let mut message = json!({"role": "assistant", "content": reply.text});
        if let Some(calls) = tool_calls {
            message["tool_calls"] = calls;
        }
        return axum::Json(json!({
            "id": id, "object": "chat.completion", "created": 1_795_000_000, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage}))
        .into_response();
    }
    let chunk = |delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": 1_795_000_000, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string()
    };
    let mut events = Vec::new();
    if let Some(text) = &reply.text {
        events.push(chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        ));
        for piece in chunks(text) {
            events.push(chunk(json!({"content": piece}), Value::Null));
        }
    }
    if let Some(calls) = tool_calls {
        events.push(chunk(
            json!({"role": "assistant", "content": null, "tool_calls": calls}),
            Value::Null,
        ));
    }
    events.push(chunk(json!({}), json!(finish)));
    events.push(
        json!({"id": id, "object": "chat.completion.chunk", "created": 1_795_000_000, "model": model,
               "choices": [], "usage": usage})
        .to_string(),
    );
    events.push("[DONE]".to_string());
    sse(events.into_iter().map(|d| (None, d)).collect())
}

/// A scripted tool turn, before it is mapped to the requesting CLI's own tool.
enum ChatTool {
    Write { path: String, content: String },
    Shell { command: String },
}

/// Tool names CLIs give their write-a-file and run-a-command tools, most specific first
/// (OpenCode/Crush/Pi `write`/`bash`, Qwen Code `write_file`/`run_shell_command`, …).
const CHAT_WRITE_TOOLS: &[&str] = &["write", "write_file", "Write", "create_file"];
const CHAT_SHELL_TOOLS: &[&str] = &["bash", "run_shell_command", "Bash", "shell", "exec"];
/// Argument names for the file path, file content and command, in the order tried.
const CHAT_PATH_ARGS: &[&str] = &["filePath", "file_path", "path", "filepath", "filename"];
const CHAT_CONTENT_ARGS: &[&str] = &["content", "contents", "text"];
const CHAT_COMMAND_ARGS: &[&str] = &["command", "cmd"];

/// Maps a scripted tool turn to one of the tools the request offers: the first offered
/// name of [`CHAT_WRITE_TOOLS`]/[`CHAT_SHELL_TOOLS`], with argument names taken from that
/// tool's JSON schema (other required string arguments get a short filler, booleans
/// `false`). Without a match it falls back to OpenCode's `write {filePath, content}` and
/// `bash {command}`. Returns the tool name and its JSON-encoded arguments.
fn chat_tool(body: &Value, tool: ChatTool) -> (String, String) {
    let offered: Vec<&Value> = body
        .get("tools")
        .and_then(Value::as_array)
        .map(|t| t.iter().filter_map(|t| t.get("function")).collect())
        .unwrap_or_default();
    let (names, fallback) = match &tool {
        ChatTool::Write { .. } => (CHAT_WRITE_TOOLS, "write"),
        ChatTool::Shell { .. } => (CHAT_SHELL_TOOLS, "bash"),
    };
    let found = names.iter().find_map(|want| {
        offered
            .iter()
            .find(|f| f.get("name").and_then(Value::as_str) == Some(*want))
    });
    let name = found
        .and_then(|f| f.get("name").and_then(Value::as_str))
        .unwrap_or(fallback)
        .to_string();
    let params = found.and_then(|f| f.get("parameters"));
    let props = params
        .and_then(|p| p.get("properties"))
        .and_then(Value::as_object);
    let pick = |candidates: &[&str]| -> String {
        candidates
            .iter()
            .find(|c| props.is_some_and(|p| p.contains_key(**c)))
            .unwrap_or(&candidates[0])
            .to_string()
    };
    let mut args = serde_json::Map::new();
    match tool {
        ChatTool::Write { path, content } => {
            let key = pick(CHAT_PATH_ARGS);
            let wants_absolute = props
                .and_then(|p| p.get(&key))
                .and_then(|p| p.get("description"))
                .and_then(Value::as_str)
                .is_some_and(|d| d.to_ascii_lowercase().contains("absolute"));
            let path = match working_dir(body).filter(|_| wants_absolute) {
                Some(dir) => format!("{}/{path}", dir.trim_end_matches('/')),
                None => path,
            };
            args.insert(key, json!(path));
            args.insert(pick(CHAT_CONTENT_ARGS), json!(content));
        }
        ChatTool::Shell { command } => {
            args.insert(pick(CHAT_COMMAND_ARGS), json!(command));
        }
    }
    let required = params
        .and_then(|p| p.get("required"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for key in required.iter().filter_map(Value::as_str) {
        if args.contains_key(key) {
            continue;
        }
        let kind = props
            .and_then(|p| p.get(key))
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str);
        let filler = match kind {
            Some("boolean") => json!(false),
            Some("integer" | "number") => json!(0),
            _ => json!("mock"),
        };
        args.insert(key.to_string(), filler);
    }
    (name, Value::Object(args).to_string())
}

/// The agent's working directory as its system prompt states it, for tools that take
/// absolute paths only (Qwen Code's `write_file`).
fn working_dir(body: &Value) -> Option<String> {
    const MARKERS: &[&str] = &["I'm currently working in the directory: "];
    let text: String = body
        .get("messages")?
        .as_array()?
        .iter()
        .filter_map(|m| m.get("content"))
        .map(|c| match c {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    MARKERS.iter().find_map(|marker| {
        let start = text.find(marker)? + marker.len();
        let rest = &text[start..];
        let end = rest.find(['\n', '"', '\\']).unwrap_or(rest.len());
        Some(rest[..end].trim().to_string()).filter(|d| d.starts_with('/'))
    })
}

/// `GET /v1/models`: the one mock model (Hermes Agent and litellm probe it).
async fn models(State(s): State<Arc<Shared>>, uri: Uri) -> Response {
    s.push(RecordedRequest {
        api: Api::Other,
        method: "GET".to_string(),
        uri: uri.to_string(),
        body: Value::Null,
        scenario: None,
        turn: 0,
    });
    axum::Json(json!({"object": "list", "data": [
        {"id": "mock-model", "object": "model", "created": 1_795_000_000, "owned_by": "mock"}]}))
    .into_response()
}

// ---- Gemini (Gemini CLI) ----

async fn gemini(
    State(s): State<Arc<Shared>>,
    Path(model_action): Path<String>,
    uri: Uri,
    bytes: Bytes,
) -> Response {
    let body = json_body(&bytes);
    let (model, action) = model_action
        .rsplit_once(':')
        .unwrap_or((model_action.as_str(), ""));
    match action {
        "streamGenerateContent" => {}
        "generateContent" => {
            // The CLI's model router: it wants JSON naming a model class.
            s.record(Api::GeminiAux, &uri, &body, None, 0);
            let text = json!({"reasoning": "mock router", "model_choice": "flash"}).to_string();
            return axum::Json(json!({
                "candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                                "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": INPUT_TOKENS, "candidatesTokenCount": OUTPUT_TOKENS,
                                  "totalTokenCount": INPUT_TOKENS + OUTPUT_TOKENS},
                "modelVersion": model}))
            .into_response();
        }
        "countTokens" => {
            s.record(Api::GeminiAux, &uri, &body, None, 0);
            return axum::Json(json!({"totalTokens": INPUT_TOKENS})).into_response();
        }
        _ => {
            s.record(Api::Other, &uri, &body, None, 0);
            return (StatusCode::NOT_FOUND, "unknown gemini action").into_response();
        }
    }
    let (turn, n) = s.pick(
        Api::Gemini,
        &uri,
        &body,
        body.get("contents"),
        &["\"functionResponse\""],
    );
    let prompt_tokens = INPUT_TOKENS + n as i64;
    let usage = json!({"promptTokenCount": prompt_tokens, "candidatesTokenCount": OUTPUT_TOKENS,
                       "totalTokenCount": prompt_tokens + OUTPUT_TOKENS});
    let candidate = |parts: Value, last: bool| {
        let mut c = json!({"candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}],
                           "modelVersion": model});
        if last {
            c["candidates"][0]["finishReason"] = json!("STOP");
            c["usageMetadata"] = usage.clone();
        }
        c.to_string()
    };
    let events = match turn {
        Turn::Hang => return s.hang().await,
        Turn::ErrorOnce { .. } => unreachable!("`pick` resolves ErrorOnce"),
        Turn::Error { status, message } => {
            let kind = match status {
                400 => "INVALID_ARGUMENT",
                429 => "RESOURCE_EXHAUSTED",
                503 | 529 => "UNAVAILABLE",
                _ => "INTERNAL",
            };
            let body = json!({"error": {"code": status, "message": message, "status": kind}});
            return (status_of(status), axum::Json(body)).into_response();
        }
        Turn::Text(text) => {
            let pieces = chunks(&text);
            let last = pieces.len() - 1;
            pieces
                .into_iter()
                .enumerate()
                .map(|(i, p)| candidate(json!([{"text": p}]), i == last))
                .collect()
        }
        Turn::WriteFile { path, content } => vec![candidate(
            json!([{"functionCall": {"name": "write_file", "args": {"file_path": path, "content": content}}}]),
            true,
        )],
        Turn::Shell { command } => vec![candidate(
            json!([{"functionCall": {"name": "run_shell_command",
                                     "args": {"command": command, "description": "mock shell command"}}}]),
            true,
        )],
    };
    sse(events.into_iter().map(|d| (None, d)).collect())
}

// ---- anything else ----

async fn other(State(s): State<Arc<Shared>>, method: Method, uri: Uri, bytes: Bytes) -> Response {
    let body = json_body(&bytes);
    s.push(RecordedRequest {
        api: Api::Other,
        method: method.to_string(),
        uri: uri.to_string(),
        body,
        scenario: None,
        turn: 0,
    });
    (StatusCode::NOT_FOUND, "not mocked").into_response()
}
