//! Request and response bodies of the daemon's REST endpoints (`/api/daemon/*` and
//! `GET /api/workspaces`). Field names follow Multica's wire format exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::message::{TaskMessage, UsageEntry};

/// `GET /api/workspaces` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Workspace {
    pub id: String,
    pub name: String,
}

/// One runtime the daemon offers in a register call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RuntimeSpec {
    /// Display name, e.g. `Claude (my-laptop)`.
    pub name: String,
    /// The provider: `claude`, `codex`, `opencode`, `gemini`, …
    #[serde(rename = "type")]
    pub provider: String,
    pub version: String,
    pub status: String,
    /// Whether this runtime's agents run in a sandbox (an agentd extension; a Multica
    /// server ignores it, and an old daemon omits it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxState>,
    /// Tasks the daemon runs at once (an agentd extension; a Multica server ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    /// The daemon's labels (`labels` in its config; an agentd extension): agents bound
    /// to a pool with labels run only on runtimes that carry them all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// How a runtime's agent runs are isolated, as its daemon reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxState {
    /// Every run is inside bubblewrap (filesystem, PID and optionally network isolation).
    Bwrap,
    /// The operator turned the sandbox off (`sandbox = "off"`): runs are not isolated.
    Off,
    /// The sandbox is configured but cannot start here (bwrap missing, user namespaces
    /// refused, or an OS without support); the daemon refuses tasks.
    Unavailable,
    /// A state this build does not know (a newer daemon).
    #[serde(other)]
    Unknown,
}

impl SandboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxState::Bwrap => "bwrap",
            SandboxState::Off => "off",
            SandboxState::Unavailable => "unavailable",
            SandboxState::Unknown => "unknown",
        }
    }

    /// Parses what [`SandboxState::as_str`] wrote (anything else is `Unknown`).
    pub fn parse(s: &str) -> SandboxState {
        match s {
            "bwrap" => SandboxState::Bwrap,
            "off" => SandboxState::Off,
            "unavailable" => SandboxState::Unavailable,
            _ => SandboxState::Unknown,
        }
    }
}

/// `POST /api/daemon/register`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RegisterRequest {
    pub workspace_id: String,
    pub daemon_id: String,
    pub legacy_daemon_ids: Vec<String>,
    pub device_name: String,
    pub cli_version: String,
    pub launched_by: String,
    pub timezone: String,
    pub runtimes: Vec<RuntimeSpec>,
}

/// A runtime as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Runtime {
    pub id: String,
    pub name: String,
    pub provider: String,
    pub status: String,
}

/// A repository the workspace allows tasks to check out.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Repo {
    pub url: String,
}

/// Which kind of control-plane server a daemon serves: it decides what the agent is told
/// (`agentd issue …` or the `multica` CLI and `MULTICA_*` variables) and what the daemon
/// reports after a server-side cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// agentd's own server (says so in its register answer).
    Agentd,
    /// A Multica server (its register answer names no kind).
    #[default]
    Multica,
    /// A kind this daemon does not know: treated like Multica (the reference contract).
    #[serde(other)]
    Other,
}

impl ServerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::Agentd => "agentd",
            ServerKind::Multica => "multica",
            ServerKind::Other => "other",
        }
    }

    /// Whether the server speaks agentd's extensions (the `agentd issue` API, task
    /// tokens, reports after a cancel).
    pub fn is_agentd(self) -> bool {
        self == ServerKind::Agentd
    }
}

/// Response of `POST /api/daemon/register`: authoritative for the workspace's runtime set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RegisterResponse {
    pub runtimes: Vec<Runtime>,
    pub repos: Vec<Repo>,
    pub repos_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<Value>,
    /// agentd-server only: `"agentd"`. A Multica server sends no such field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerKind>,
}

/// `POST /api/daemon/deregister`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DeregisterRequest {
    pub runtime_ids: Vec<String>,
}

/// `POST /api/daemon/heartbeat` and the WS `daemon:heartbeat` payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct HeartbeatRequest {
    pub runtime_id: String,
    /// Every task the daemon still holds (its agent runs, or its final report is not yet
    /// delivered), across all of its runtimes: each heartbeat renews these tasks' leases.
    /// Absent (a daemon that does not say, such as Multica's): the server renews every
    /// in-flight task of the daemon. agentd's daemon always sends it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_task_ids: Option<Vec<String>>,
}

/// Response of `POST /api/daemon/heartbeat`, and the payload of the WS
/// `daemon:heartbeat_ack` frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct HeartbeatResponse {
    pub runtime_id: String,
    pub status: String,
    pub runtime_gone: bool,
    /// The server's clock when it answered, RFC 3339 (sent by `agentd server`; absent on
    /// Multica). Used only to report clock skew, never to time anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_update: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_model_list: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_local_skills: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_local_skill_import: Option<Value>,
}

/// A file shipped with a skill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SkillFile {
    pub path: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Skill {
    pub name: String,
    pub content: String,
    pub files: Vec<SkillFile>,
}

/// The agent a task runs as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TaskAgent {
    pub id: String,
    pub name: String,
    pub instructions: String,
    pub skills: Vec<Skill>,
    pub custom_env: BTreeMap<String, String>,
    pub custom_args: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp_config: Option<Value>,
    pub model: String,
}

/// A claimed task. Only the fields the daemon uses are typed; unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Task {
    pub id: String,
    pub agent_id: String,
    pub runtime_id: String,
    pub issue_id: String,
    pub workspace_id: String,
    pub agent: TaskAgent,
    pub repos: Vec<Repo>,
    pub prior_session_id: String,
    pub prior_work_dir: String,
    pub trigger_comment_id: String,
    pub trigger_comment_content: String,
    pub trigger_author_type: String,
    pub trigger_author_name: String,
    pub chat_session_id: String,
    pub chat_message: String,
    /// agentd-server only: issue title and description, so the prompt needs no extra call.
    pub issue_title: String,
    pub issue_description: String,
    /// agentd-server only: a token valid only while this task is active and only for its
    /// issue. Handed to the agent as `AGENTD_TOKEN`; a Multica server never sends it.
    pub task_token: String,
    /// agentd-server only: continue on this branch (it holds an open pull request's
    /// earlier work, e.g. a review asked for changes): check it out instead of a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

/// Response of `POST /api/daemon/runtimes/{rid}/tasks/claim`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ClaimResponse {
    pub task: Option<Task>,
}

/// `POST /api/daemon/tasks/{id}/progress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ProgressRequest {
    pub summary: String,
    pub step: i64,
    pub total: i64,
}

/// `POST /api/daemon/tasks/{id}/messages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct MessagesRequest {
    pub messages: Vec<TaskMessage>,
}

/// `POST /api/daemon/tasks/{id}/usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct UsageRequest {
    pub usage: Vec<UsageEntry>,
}

/// `POST /api/daemon/tasks/{id}/session`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SessionRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work_dir: Option<String>,
}

/// `POST /api/daemon/tasks/{id}/complete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CompleteRequest {
    pub output: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work_dir: Option<String>,
    /// What the run changed (an agentd extension; Multica's server ignores it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<TaskDiff>,
    /// Where the task's branch was pushed (an agentd extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushed: Option<PushedBranch>,
}

/// The most bytes of unified diff a report carries; a longer one is cut at a line
/// boundary, `truncated` is set and a marker line says how much was left out.
pub const MAX_PATCH_BYTES: usize = 256 * 1024;

/// What a task changed on its branch: `base_commit..head_commit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TaskDiff {
    pub base_commit: String,
    pub head_commit: String,
    pub files: Vec<DiffFile>,
    pub additions: u64,
    pub deletions: u64,
    /// The unified diff (at most [`MAX_PATCH_BYTES`]).
    pub patch: String,
    pub truncated: bool,
}

/// One changed file of a [`TaskDiff`] (`git diff --numstat`; binary files count 0/0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DiffFile {
    pub path: String,
    pub additions: u64,
    pub deletions: u64,
    pub binary: bool,
}

/// A branch the daemon pushed (outside the agent's sandbox, with the machine's own git
/// credentials).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct PushedBranch {
    /// The repository pushed to, as the workspace names it.
    pub remote_url: String,
    pub branch: String,
    /// The commit the branch points at after the push.
    pub commit: String,
}

/// `POST /api/daemon/tasks/{id}/pushed` (agentd extension): a branch pushed after the
/// task's final report (a retried push).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct PushedRequest {
    pub pushed: PushedBranch,
}

/// Why a task failed, as sent in `failure_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    Timeout,
    InactivityTimeout,
    Cancelled,
    AgentError,
    AgentNotFound,
    EnvironmentError,
    RepoNotAllowed,
    DaemonShutdown,
    DiskFull,
    Orphaned,
    /// The server failed the task: its daemon was silent for a whole lease.
    RuntimeOffline,
    /// The run's commit could not be pushed (the error is git's message); the commit is
    /// kept on the daemon's machine for `agentd task push`.
    PushFailed,
    /// The model API was overloaded or rate-limited (HTTP 429, 529, 503) and the agent
    /// gave up: a transient failure, retried on the agent's pool (an agentd extension; a
    /// Multica server reads it as unknown).
    ModelUnavailable,
    #[serde(other)]
    Unknown,
}

/// `POST /api/daemon/tasks/{id}/fail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct FailRequest {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<FailureReason>,
    /// The task's branch (a `push_failed` run still has its commit there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch_name: Option<String>,
    /// What the run changed, when it got that far (agentd extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<TaskDiff>,
}

/// Task status values. Unknown values from a newer server decode as `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    #[default]
    Queued,
    Dispatched,
    Running,
    Completed,
    Failed,
    Cancelled,
    #[serde(other)]
    Unknown,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Dispatched => "dispatched",
            TaskStatus::Running => "running",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<TaskStatus> {
        Some(match s {
            "queued" => TaskStatus::Queued,
            "dispatched" => TaskStatus::Dispatched,
            "running" => TaskStatus::Running,
            "completed" => TaskStatus::Completed,
            "failed" => TaskStatus::Failed,
            "cancelled" => TaskStatus::Cancelled,
            _ => return None,
        })
    }

    /// Completed, failed or cancelled: nothing more will happen to the task.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }
}

/// Response of `GET /api/daemon/tasks/{id}/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TaskStatusResponse {
    pub status: TaskStatus,
}

/// Response of `GET /api/daemon/workspaces/{wid}/repos`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ReposResponse {
    pub workspace_id: String,
    pub repos: Vec<Repo>,
    pub repos_version: String,
}

/// `POST /api/daemon/runtimes/{rid}/recover-orphans`: the tasks the daemon still holds,
/// which the server must not fail. Absent (Multica's daemon, which sends `{}`): every
/// in-flight task of the runtime is an orphan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RecoverOrphansRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_task_ids: Option<Vec<String>>,
}

/// The answer to every task report (`start`, `progress`, `messages`, `usage`, `session`,
/// `complete`, `fail`) from agentd's server: where the task stands now. A terminal
/// `task_status` tells the daemon the task is over, so it stops the agent; `late` says
/// the report arrived after the task had ended and was recorded as a late report.
/// Multica answers other bodies (or none), which decode as "nothing to say".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ReportResponse {
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_status: Option<TaskStatus>,
    pub late: bool,
}

/// Response of `POST /api/daemon/runtimes/{rid}/recover-orphans` (agentd-server; Multica
/// answers an empty body, which decodes as zeroes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RecoverOrphansResponse {
    pub failed: i64,
    pub requeued: i64,
}
