//! Wire types of the daemon API: every REST body, WebSocket frame and task message
//! that crosses between an agentd daemon and a control-plane server (ours or Multica's).
//!
//! # Layout
//! - [`rest`]: request and response bodies of the `/api/daemon/*` endpoints.
//! - [`ws`]: the `{"type","payload"}` frames of `/api/daemon/ws`.
//! - [`message`]: task messages (text, tool calls, results, errors) and token usage.
//! - [`health`]: the daemon's local `/health` document.
//! - [`accounts`]: users, sessions, roles, members, invitations and the audit log.
//! - [`api`]: the user-facing HTTP API of `agentd server` (workspaces, agents, issues, …).
//! - [`forge`]: the subset of GitHub's and Gitea's REST and webhook formats the server
//!   speaks to open and track pull requests.
//!
//! **Architecture Invariant:** this crate does no I/O and depends on serde only. It is the
//! only crate that derives wire `Serialize`/`Deserialize`. Every type ignores unknown
//! fields (a newer server may add some) and fills missing optional fields with defaults,
//! so a server that is ahead of us never makes the daemon fail to decode.

pub mod accounts;
pub mod api;
pub mod forge;
pub mod health;
pub mod message;
pub mod rest;
pub mod ws;

pub use message::{MessageKind, TaskMessage, UsageEntry};
pub use rest::*;
pub use ws::{Frame, FrameError, WsMessage};

/// The 404 body text that means "the server deleted this runtime": the daemon self-heals
/// (re-registers) on a 404 whose body contains it, and on nothing else.
pub const RUNTIME_NOT_FOUND: &str = "runtime not found";
/// The 404 body text that means "this task does not exist (any more)": the daemon stops
/// the task's agent.
pub const TASK_NOT_FOUND: &str = "task not found";
/// The 404 body text that means "this workspace is gone (or not yours)".
pub const WORKSPACE_NOT_FOUND: &str = "workspace not found";

/// The body of every error response of `agentd server`: `{"error": "..."}`.
/// Multica servers answer errors the same way. agentd's server may add `code` (a
/// machine-readable reason, e.g. [`ERROR_AMBIGUOUS`]) and `matches` (the candidates of
/// an ambiguous reference); both are absent when they say nothing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(default)]
pub struct ErrorBody {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<api::RefMatch>,
}

/// `ErrorBody.code` of a reference (an id prefix, a name or a key) that matches more
/// than one object (409; `matches` lists them).
pub const ERROR_AMBIGUOUS: &str = "ambiguous";
/// `ErrorBody.code` of a retry refused because the task was already retried (409).
pub const ERROR_ALREADY_RETRIED: &str = "already_retried";
/// `ErrorBody.code` of a cancel refused because the task has already ended (409).
pub const ERROR_ALREADY_ENDED: &str = "already_ended";
