//! The user-facing HTTP API of `agentd server` (`/api/v1/*`): workspaces, tokens,
//! runtimes, agents, issues, comments and tasks. The CLI, the web board and agents
//! (with a task token) speak it.
//!
//! Timestamps are RFC 3339 strings (UTC). Request bodies reject missing required fields;
//! responses ignore nothing the client does not know (unknown fields are skipped).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::message::TaskMessage;
use crate::rest::Repo;

/// `POST /api/v1/workspaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateWorkspaceRequest {
    pub name: String,
    #[serde(default)]
    pub repos: Vec<String>,
    /// The prefix of the workspace's issue keys (`AGD` gives `AGD-1`, `AGD-2`, …):
    /// 2 to 6 ASCII letters or digits starting with a letter, stored upper-case and
    /// unique on the server. Default: derived from `name` (its initials or first
    /// letters), with a number appended when that key is taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct WorkspaceInfo {
    pub id: String,
    pub name: String,
    /// The prefix of its issue keys, e.g. `AGD` (unique on the server).
    pub key: String,
    pub repos: Vec<Repo>,
    pub created_at: String,
}

/// A candidate of an ambiguous reference (`ErrorBody.matches`): its full id and what a
/// person recognises it by (an issue's key and title, an agent's or runtime's name, a
/// task's issue key and status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RefMatch {
    pub id: String,
    pub label: String,
}

/// The kind of an API token (docs/api.md, "Tokens"). `admin`: the server's admin token,
/// every workspace and route. `member`: a person; the user API of its workspaces, never
/// the daemon API. `daemon`: a machine; only the daemon API (and `GET /api/workspaces`),
/// and only on the runtimes it registered and their tasks. A kind this side does not
/// know decodes as `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Admin,
    #[default]
    Member,
    Daemon,
    #[serde(other)]
    Unknown,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Admin => "admin",
            TokenKind::Member => "member",
            TokenKind::Daemon => "daemon",
            TokenKind::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<TokenKind> {
        Some(match s {
            "admin" => TokenKind::Admin,
            "member" => TokenKind::Member,
            "daemon" => TokenKind::Daemon,
            _ => return None,
        })
    }
}

/// `POST /api/v1/tokens`: a token scoped to `workspace_ids` (each must be visible to the
/// caller). `kind` is `member` (default) or `daemon`; `expires_in_secs` sets an expiry
/// (none by default, but never later than the creating token's own expiry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTokenRequest {
    #[serde(default)]
    pub name: String,
    pub workspace_ids: Vec<String>,
    #[serde(default)]
    pub kind: TokenKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u64>,
}

/// The plaintext `token` is shown once; the server keeps only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TokenCreated {
    pub id: String,
    pub name: String,
    pub token: String,
    pub kind: TokenKind,
    pub workspace_ids: Vec<String>,
    pub expires_at: Option<String>,
}

/// One token of `GET /api/v1/tokens` (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub kind: TokenKind,
    /// Empty for the admin token (it sees every workspace).
    pub workspace_ids: Vec<String>,
    /// The token that created this one (`None`: the server itself).
    pub created_by: Option<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    /// Updated at most once a minute.
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    /// This is the token the request was made with.
    pub current: bool,
}

/// What `GET /api/v1/agents/...` and every other response show instead of a
/// `custom_env` value: the values are write-only. Sending it back in an update keeps the
/// stored value of that key.
pub const MASKED_ENV_VALUE: &str = "••••";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RuntimeInfo {
    pub id: String,
    pub workspace_id: String,
    pub daemon_id: String,
    pub provider: String,
    pub name: String,
    pub version: String,
    pub device_name: String,
    pub status: String,
    pub last_seen_at: Option<String>,
    pub created_at: String,
    /// `bwrap`, `off`, `unavailable`, or `None` when the daemon did not say (an older
    /// daemon, or one that is not agentd's).
    #[serde(default)]
    pub sandbox: Option<crate::rest::SandboxState>,
    /// Tasks its daemon runs at once, as it said (`None`: it did not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    /// Its labels, as its daemon said (`gpu`, `os=linux`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// Where an agent's tasks may run when it is not tied to one runtime (a runtime pool):
/// any runtime of the workspace that is among `runtime_ids` (when given), has `provider`
/// (when given) and carries every one of `labels`. At least `runtime_ids` or `provider`
/// is given. A task goes to an online runtime of the pool with free capacity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AgentPool {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runtime_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// `POST /api/v1/workspaces/{wid}/agents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateAgentRequest {
    pub name: String,
    /// The agent's runtime; may be empty when `pool` is given.
    #[serde(default)]
    pub runtime_id: String,
    /// A runtime pool instead of (or besides) `runtime_id` ([`AgentPool`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<AgentPool>,
    /// Automatic retries of a transiently failed task (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Most of its tasks in flight at once (default: no cap of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    #[serde(default)]
    pub instructions: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub custom_args: Vec<String>,
    #[serde(default)]
    pub custom_env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AgentInfo {
    pub id: String,
    pub workspace_id: String,
    pub runtime_id: String,
    pub name: String,
    pub instructions: String,
    pub model: String,
    pub custom_args: Vec<String>,
    /// Keys with their values masked ([`MASKED_ENV_VALUE`]): the values are write-only.
    pub custom_env: BTreeMap<String, String>,
    pub created_at: String,
    /// Its runtime pool, when it has one (`runtime_id` is then empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<AgentPool>,
    pub max_retries: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// The runtimes its pool matches now (online or not); empty without a pool.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pool_runtimes: Vec<String>,
    /// Why its tasks cannot run, when the server can tell: `no runtime matches` (a pool
    /// that matches no runtime of the workspace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// `PATCH /api/v1/agents/{id}`: only the given fields change. A new `runtime_id` also
/// moves the agent's queued tasks to that runtime (e.g. after its runtime was deleted and
/// its daemon re-registered under a new id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct UpdateAgentRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_args: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_env: Option<BTreeMap<String, String>>,
    /// A new pool; an empty one (no runtime ids, no provider) removes the pool, and the
    /// agent then needs `runtime_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<AgentPool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// 0 removes the cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
}

/// Issue status values.
pub const ISSUE_STATUSES: &[&str] = &[
    "backlog",
    "todo",
    "in_progress",
    "in_review",
    "done",
    "cancelled",
];

/// `POST /api/v1/workspaces/{wid}/issues`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateIssueRequest {
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// Default `todo`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub assignee_agent_id: Option<String>,
}

/// `PATCH /api/v1/issues/{id}`: only the given fields change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct UpdateIssueRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignee_agent_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct IssueInfo {
    pub id: String,
    pub workspace_id: String,
    /// Its number in the workspace (1, 2, …, in creation order; never reused).
    pub number: i64,
    /// `<workspace key>-<number>`, e.g. `AGD-12`: accepted wherever an issue id is.
    pub key: String,
    pub title: String,
    pub description: String,
    pub status: String,
    pub assignee_agent_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The issue's newest task (without usage); only in `GET /api/v1/issues` (the board's
    /// cards show its state).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_task: Option<Box<TaskInfo>>,
    /// The issue's newest pull request, when its workspace is connected to a forge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr: Option<PullRequestInfo>,
    /// How many tasks (runs) the issue has had, retries and follow-ups included.
    pub run_count: i64,
}

/// `GET /api/v1/issues?workspace_id=W&limit=N&after=C`: one page of issues, oldest first
/// (by creation, then id). `limit` is 1..=[`ISSUES_MAX_LIMIT`] (default
/// [`ISSUES_DEFAULT_LIMIT`]); `after` is a `next` of a previous page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct IssuesPage {
    pub issues: Vec<IssueInfo>,
    /// The cursor of the next page (opaque: pass it back as `after`); `None` on the last
    /// page. Issues created after a page was read appear on a later page, never twice.
    pub next: Option<String>,
}

/// Issues per page unless `limit` says otherwise.
pub const ISSUES_DEFAULT_LIMIT: i64 = 100;
/// The largest `limit` of `GET /api/v1/issues`.
pub const ISSUES_MAX_LIMIT: i64 = 500;
/// Transcript messages per page unless `limit` says otherwise.
pub const MESSAGES_DEFAULT_LIMIT: i64 = 500;
/// The largest `limit` of `GET /api/v1/tasks/{id}/messages`.
pub const MESSAGES_MAX_LIMIT: i64 = 1000;

/// `GET /api/v1/issues/{id}`: the issue with its tasks and comments, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct IssueDetail {
    pub issue: IssueInfo,
    pub tasks: Vec<TaskInfo>,
    pub comments: Vec<CommentInfo>,
    /// Everything that happened to the issue, oldest first: its creation, comments,
    /// status changes, (re)assignments, edits, and each run queued, started, ended,
    /// cancelled or retried — each with who did it.
    pub activity: Vec<ActivityEntry>,
}

/// Who did something: a person (by their token's name), an agent (by its name), the
/// server itself, or a reviewer on a forge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Actor {
    pub kind: ActorKind,
    /// A token's name (`admin` for the admin token), an agent's name, `agentd` for the
    /// server, or `login (GitHub)` for a reviewer.
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Member,
    Admin,
    Agent,
    #[default]
    System,
    Forge,
    #[serde(other)]
    Unknown,
}

/// What one activity entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    /// The issue was created (`to_status` its first status).
    Created,
    /// A comment (`comment`).
    Comment,
    /// The status moved from `from_status` to `to_status`.
    StatusChanged,
    /// The assignee changed (`detail`: the new agent's name, or empty when unassigned).
    Assigned,
    /// The title or description was edited (`detail` says which).
    Edited,
    /// A run was queued (`task`).
    TaskQueued,
    /// A run started (`task`).
    TaskStarted,
    /// A run completed (`task`).
    TaskCompleted,
    /// A run failed (`task`, with its error and failure reason).
    TaskFailed,
    /// A run was cancelled (`task`; `actor` who cancelled it).
    TaskCancelled,
    /// A run was retried (`task` the new run; `actor` who asked).
    TaskRetried,
    #[default]
    #[serde(other)]
    Unknown,
}

/// One entry of [`IssueDetail::activity`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ActivityEntry {
    pub at: String,
    pub kind: ActivityKind,
    pub actor: Actor,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<CommentInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<Box<TaskInfo>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `POST /api/v1/issues/{id}/comments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateCommentRequest {
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CommentInfo {
    pub id: String,
    pub issue_id: String,
    /// `member`, `agent` or `system`.
    pub author_type: String,
    pub author_id: String,
    pub author_name: String,
    pub body: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TaskInfo {
    pub id: String,
    /// 1 for a first run; an automatic or manual retry's is its parent's + 1.
    pub attempt: u32,
    pub workspace_id: String,
    pub issue_id: String,
    pub agent_id: String,
    pub runtime_id: String,
    pub status: String,
    pub output: Option<String>,
    pub error: Option<String>,
    pub failure_reason: Option<String>,
    pub parent_task_id: Option<String>,
    pub created_at: String,
    pub dispatched_at: Option<String>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    /// The agent CLI's session (for resuming), once the daemon reported it.
    pub session_id: Option<String>,
    /// The task's working copy on the daemon's machine.
    pub work_dir: Option<String>,
    /// The branch the daemon committed the work on (set on completion).
    pub branch_name: Option<String>,
    /// Token counters per (provider, model), as the daemon last reported them.
    pub usage: Vec<crate::UsageEntry>,
    /// What the run changed, in short, when its final report carried a diff (the whole
    /// diff: `GET /api/v1/tasks/{id}/diff`).
    pub diffstat: Option<DiffStat>,
    /// The pull request this task's pushed branch is in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr: Option<PullRequestInfo>,
    /// The issue's key (`AGD-12`).
    pub issue_key: String,
    /// The agent's name.
    pub agent_name: String,
    /// Who cancelled the task, when it was cancelled by someone.
    pub cancelled_by: Option<Actor>,
    /// Who retried the task (this task is the retry: `parent_task_id`).
    pub retried_by: Option<Actor>,
    /// The retry of this task, once it was retried (a task is retried at most once).
    pub retry_task_id: Option<String>,
}

/// A task's diffstat: how many files its run changed and the lines added and removed
/// (as `git diff --shortstat`). `files` counts every changed file, also those cut from
/// a [`crate::TaskDiff`]'s list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DiffStat {
    pub files: u64,
    pub additions: u64,
    pub deletions: u64,
}

/// `GET /api/v1/tasks/{id}/messages?after_seq=N&limit=L`: up to `L` messages with
/// `seq > N`, in order. `limit` is 1..=[`MESSAGES_MAX_LIMIT`] (default
/// [`MESSAGES_DEFAULT_LIMIT`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct MessagesPage {
    pub task_status: String,
    pub messages: Vec<TaskMessage>,
    /// The `after_seq` of the next page when more messages are stored now; `None` when
    /// this page reaches the end (a running task may still add more: poll with the last
    /// `seq`).
    pub next: Option<i64>,
}

/// `POST /api/v1/signin-codes`: a one-time sign-in code for the board, made by a member
/// (or the admin). It is good for [`SIGNIN_CODE_TTL_SECS`] and one exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SigninCode {
    /// `asc_` + 32 hex.
    pub code: String,
    pub expires_at: String,
    /// The board URL that signs in with it: `{public URL}/#/signin/{code}` (the code
    /// travels in the fragment, which browsers never send to a server).
    pub url: String,
}

/// How long a [`SigninCode`] can be exchanged.
pub const SIGNIN_CODE_TTL_SECS: u64 = 600;

/// `POST /api/v1/signin` (no bearer token): exchanges a [`SigninCode`] once for a new
/// member token, named `board session`, with the workspaces of the code's maker and an
/// expiry of [`BOARD_SESSION_TTL_SECS`] (never later than the maker's own). Answer:
/// [`TokenCreated`]. An unknown, used or expired code is 401 `sign-in code is invalid
/// or expired`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigninRequest {
    pub code: String,
}

/// The lifetime of a board session made by [`SigninRequest`] (30 days).
pub const BOARD_SESSION_TTL_SECS: u64 = 30 * 24 * 3600;

/// `GET /api/v1/me`: who the token is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct WhoAmI {
    /// `admin`, `member`, `task` (a daemon token may not call the user API) or `user` (a
    /// board session).
    pub kind: String,
    pub workspace_ids: Vec<String>,
    /// The user behind the caller (a session's, or a token's owner).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The caller's role in each of `workspace_ids` (empty for a task token, whose scope
    /// is its issue; an admin is `owner` everywhere).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<crate::accounts::WorkspaceRole>,
    /// The token's name (`admin` for the admin token; the agent's name for a task token):
    /// what activity entries call this caller.
    pub name: String,
}

/// One event of `GET /api/v1/workspaces/{id}/events` (the `data:` of a server-sent
/// event). A hint that something changed — clients refetch through the REST API, which
/// stays the truth. `kind`: `issue`, `comment`, `task`, `messages`, `runtime`, `agent`,
/// or `resync` (events were dropped: refetch everything).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct WorkspaceEvent {
    pub kind: String,
    pub workspace_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The new status of the issue, task or runtime, when the event is a status change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// The kind of code forge a workspace is connected to. Forgejo speaks Gitea's API: use
/// `gitea`. A kind this side does not know decodes as `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ForgeKind {
    #[default]
    Github,
    Gitea,
    #[serde(other)]
    Unknown,
}

impl ForgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::Github => "github",
            ForgeKind::Gitea => "gitea",
            ForgeKind::Unknown => "unknown",
        }
    }

    /// `github`, `gitea` or `forgejo` (which is `gitea`); anything else is `None`.
    pub fn parse(s: &str) -> Option<ForgeKind> {
        Some(match s {
            "github" => ForgeKind::Github,
            "gitea" | "forgejo" => ForgeKind::Gitea,
            _ => return None,
        })
    }
}

/// `PUT /api/v1/workspaces/{wid}/forge`: connect (or reconnect) the workspace to a forge.
/// `token` is write-only: no response carries it. `api_url` defaults to
/// `https://api.github.com` for `github` and is required for `gitea`
/// (`https://HOST/api/v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetForgeRequest {
    pub kind: ForgeKind,
    /// `owner/name`.
    pub repo: String,
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// Whether the server polls this forge for the state of open pull requests (default
    /// true: a webhook delivery that failed is never retried by GitHub).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<bool>,
    /// Make a new webhook secret (the old one stops verifying at once).
    #[serde(default)]
    pub rotate_webhook_secret: bool,
}

/// A workspace's forge connection as users see it. `token` is always
/// [`MASKED_ENV_VALUE`]; `webhook_secret` is present only in the answer to the `PUT`
/// that created it (first connection, or `rotate_webhook_secret`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ForgeInfo {
    pub workspace_id: String,
    pub kind: ForgeKind,
    pub api_url: String,
    pub repo: String,
    pub token: String,
    pub poll: bool,
    /// Where the forge's webhook must point, relative to the server's public URL.
    pub webhook_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A pull request the server opened for an issue's work (`IssueInfo.pr`, `TaskInfo.pr`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct PullRequestInfo {
    pub url: String,
    pub number: i64,
    /// `open`, `merged` or `closed`.
    pub state: String,
    pub head_branch: String,
    /// `approved`, `changes_requested` or `commented`; `None` before any review.
    pub review_state: Option<String>,
    /// `pending`, `success` or `failure`; `None` while the forge reported no checks.
    pub checks_state: Option<String>,
}

/// The answer to a webhook delivery (`POST /api/v1/forge/webhooks/{kind}`): `status`
/// `ok`, and what the server did with it (`note`), e.g. `pull request #3 merged: issue
/// done`, `duplicate delivery`, `ignored: not a pull request agentd opened`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct WebhookAnswer {
    pub status: String,
    pub note: String,
}
