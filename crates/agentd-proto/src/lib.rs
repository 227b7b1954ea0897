//! Wire types of the daemon API: every REST body, WebSocket frame and task message
//! that crosses between an agentd daemon and a control-plane server (ours or Multica's).
//!
//! # Layout
//! - [`rest`]: request and response bodies of the `/api/daemon/*` endpoints.
//! - [`ws`]: the `{"type","payload"}` frames of `/api/daemon/ws`.
//! - [`message`]: task messages (text, tool calls, results, errors) and token usage.
//! - [`health`]: the daemon's local `/health` document.
//! - [`api`]: the user-facing HTTP API of `agentd server` (workspaces, agents, issues, …).
//! - [`forge`]: the subset of GitHub's and Gitea's REST and webhook formats the server
//!   speaks to open and track pull requests.
//!
//! **Architecture Invariant:** this crate does no I/O and depends on serde only. It is the
//! only crate that derives wire `Serialize`/`Deserialize`. Every type ignores unknown
//! fields (a newer server may add some) and fills missing optional fields with defaults,
//! so a server that is ahead of us never makes the daemon fail to decode.

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
/// Multica servers answer errors the same way.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(default)]
pub struct ErrorBody {
    pub error: String,
}
