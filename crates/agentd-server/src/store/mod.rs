//! Persistence: the [`Store`] trait the services call, and the row types it returns.
//! Only `store/` knows which SQL engine is in use: [`sqlite`] (the default, one file in
//! the data dir) or [`postgres`] (a `postgres://` URL); [`open`] picks one. Ids are TEXT
//! uuids, timestamps integer unix millis taken from the server's clock by the caller, so
//! the store never reads a clock itself. [`shared`] holds what both engines read with
//! (column lists, row records, placeholder helpers); each engine's files own its SQL.

pub mod postgres;
mod postgres_accounts;
mod postgres_forge;
mod postgres_liveness;
mod postgres_tasks;
mod shared;
pub mod sqlite;
mod sqlite_accounts;
mod sqlite_forge;
mod sqlite_liveness;
mod sqlite_tasks;
pub mod transfer;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use agentd_proto::api::{Actor, ActorKind, DiffStat};
use agentd_proto::{FailureReason, TaskDiff, TaskStatus, UsageEntry};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Which database a server uses, from its `--database-url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file (by default `agentd.db` in the data dir).
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://` or `postgresql://` URL, password included).
    Postgres(String),
}

impl Backend {
    /// The backend of `url` for a server whose data dir is `data_dir`: none, empty or
    /// `sqlite://` is `DATA_DIR/agentd.db`; `sqlite://PATH` (or `sqlite:PATH`) that file;
    /// `postgres://…` / `postgresql://…` PostgreSQL. Anything else is refused, naming it.
    pub fn from_url(data_dir: &Path, url: Option<&str>) -> Result<Backend, StoreError> {
        let url = url.map(str::trim).unwrap_or("");
        if url.is_empty() {
            return Ok(Backend::Sqlite(data_dir.join("agentd.db")));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Backend::Postgres(url.to_string()));
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or("");
            return Ok(Backend::Sqlite(if path.is_empty() {
                data_dir.join("agentd.db")
            } else {
                PathBuf::from(path)
            }));
        }
        Err(StoreError::Connect(format!(
            "unsupported database URL {:?}: expected postgres://USER:PASSWORD@HOST:PORT/DB, \
             sqlite://PATH, or none (SQLite in the data dir)",
            postgres::redact_url(url)
        )))
    }

    /// Where it is, for messages (a PostgreSQL URL without its password).
    pub fn describe(&self) -> String {
        match self {
            Backend::Sqlite(p) => format!("SQLite {}", p.display()),
            Backend::Postgres(u) => format!("PostgreSQL {}", postgres::redact_url(u)),
        }
    }
}

/// Opens (and migrates) the database of `backend`. `connect_retry`: how long an
/// unreachable PostgreSQL is retried before giving up (see [`PgStore::open`]).
pub async fn open(
    backend: &Backend,
    connect_retry: Duration,
) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match backend {
        Backend::Sqlite(path) => Arc::new(SqliteStore::open(path).await?),
        Backend::Postgres(url) => Arc::new(PgStore::open(url, connect_retry).await?),
    })
}

/// Applies the pending migrations of `backend` and returns those applied now (version
/// and description), for `agentd server migrate`.
pub async fn migrate(
    backend: &Backend,
    connect_retry: Duration,
) -> Result<Vec<(i64, String)>, StoreError> {
    let (before, after) = match backend {
        Backend::Sqlite(path) => {
            let before = SqliteStore::applied_at(path).await?;
            let store = SqliteStore::open(path).await?;
            let after = store.applied_migrations().await?;
            store.close().await?;
            (before, after)
        }
        Backend::Postgres(url) => {
            let store = PgStore::connect(url, connect_retry).await?;
            let before = store.applied_migrations().await?;
            store.pool.close().await;
            let store = PgStore::open(url, connect_retry).await?;
            let after = store.applied_migrations().await?;
            store.close().await?;
            (before, after)
        }
    };
    Ok(after.into_iter().filter(|m| !before.contains(m)).collect())
}

/// A boxed store future (the trait is used as `Arc<dyn Store>`).
pub type StoreFut<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value this server does not understand (e.g. an unknown task status).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database could not be reached or refused us at open (the message names where
    /// and why, never a password).
    #[error("{0}")]
    Connect(String),
    /// `migrate-to` refused or failed (the message says why and what was written).
    #[error("{0}")]
    Transfer(String),
}

impl StoreError {
    /// Whether this failure means the database is unreachable right now (down,
    /// restarting, the network gone, no connection free in time) rather than a bad
    /// query: the API answers 503 for these, and the server recovers when it is back.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Connect(_) => true,
            StoreError::Db(e) => db_unavailable(e),
            StoreError::Migrate(sqlx::migrate::MigrateError::Execute(e)) => db_unavailable(e),
            _ => false,
        }
    }
}

fn db_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_) => true,
        // Class 08 (connection exception), 57P01..57P03 (shutdown, crash, starting up).
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

/// The TEXT a failure reason is stored as, and shown as: its wire name (`runtime_offline`).
pub fn reason_text(r: FailureReason) -> String {
    match serde_json::to_value(r) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "unknown".into(),
    }
}

/// A stored failure reason (a name this server does not know is `Unknown`).
pub(crate) fn parse_reason(s: &str) -> FailureReason {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .unwrap_or(FailureReason::Unknown)
}

/// A stored task status; anything else is a corrupt row.
pub(crate) fn parse_status(s: &str) -> Result<TaskStatus, StoreError> {
    TaskStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown task status {s:?}")))
}

#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct WorkspaceRow {
    pub id: String,
    pub name: String,
    pub repos: String,
    pub created_at: i64,
    /// The prefix of its issue keys (`AGD`); empty only before the backfill at open.
    pub key: String,
}

/// The TEXT an actor's kind is stored as: its wire name (`member`, `system`, …).
pub fn actor_kind_text(k: ActorKind) -> String {
    match serde_json::to_value(k) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "unknown".into(),
    }
}

/// The server itself as an actor (`agentd`).
pub fn system_actor() -> Actor {
    Actor {
        kind: ActorKind::System,
        name: "agentd".into(),
    }
}

/// A stored actor (kind and name columns); `None` when the kind is NULL.
pub(crate) fn stored_actor(kind: Option<String>, name: Option<String>) -> Option<Actor> {
    let kind = kind?;
    Some(Actor {
        kind: serde_json::from_value(serde_json::Value::String(kind)).unwrap_or(ActorKind::Unknown),
        name: name.unwrap_or_default(),
    })
}

/// Something that happened to an issue that its rows do not say (`issue_events`):
/// `kind` is the wire name of an `ActivityKind` (`created`, `status_changed`,
/// `assigned`, `edited`).
#[derive(Debug, Clone, Default)]
pub struct EventRow {
    pub issue_id: String,
    pub kind: String,
    pub actor: Actor,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub detail: Option<String>,
    pub created_at: i64,
}

/// What a reference that is not an exact id may match (`service::resolve`).
#[derive(Debug, Clone)]
pub enum RefQuery {
    /// Ids starting with this (lowercase) prefix.
    Prefix(String),
    /// This name, case-insensitively (agents, runtimes, workspaces).
    Name(String),
    /// An issue key: the workspace key (upper-case) and the number.
    IssueKey(String, i64),
    /// A workspace key (upper-case).
    WorkspaceKey(String),
}

/// How many candidates a reference query returns at most (one more than an ambiguity
/// error reports as a count).
pub const REF_CANDIDATES: i64 = 101;

/// The filters of `GET /api/v1/issues` (all optional, combined with AND).
#[derive(Debug, Clone, Default)]
pub struct IssueFilter {
    pub status: Option<String>,
    /// `Some(None)`: unassigned issues; `Some(Some(id))`: assigned to that agent.
    pub assignee: Option<Option<String>>,
    /// A case-insensitive substring of the title, description or key.
    pub q: Option<String>,
}

/// A task's issue key and agent name (`task_labels`).
#[derive(Debug, Clone, Default)]
pub struct TaskLabel {
    pub task_id: String,
    pub issue_key: String,
    pub agent_name: String,
}

/// An API token (never its secret: the store keeps only the SHA-256 of that).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    /// `admin`, `member` or `daemon` (the proto's `TokenKind` wire names).
    pub kind: String,
    pub created_at: i64,
    /// The token that created this one; `None` for tokens the server minted itself.
    pub created_by: Option<String>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    /// The user the token belongs to (it acts with that user's role in each of its
    /// workspaces); `None` for the server's own admin token.
    pub owner_user_id: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RuntimeRow {
    pub id: String,
    pub workspace_id: String,
    pub daemon_id: String,
    pub provider: String,
    pub name: String,
    pub version: String,
    pub device_name: String,
    pub status: String,
    pub last_seen_at: Option<i64>,
    pub created_at: i64,
    /// The token that registered it; `None` for a runtime registered before owners were
    /// recorded.
    pub owner_token_id: Option<String>,
    /// How the daemon isolates agent runs, as the wire name of a `SandboxState`
    /// (`bwrap`, `off`, `unavailable`, `unknown`); `None` when the daemon did not say.
    /// Replaced on every register (a daemon that stops saying clears it).
    pub sandbox: Option<String>,
    /// Tasks its daemon runs at once, as it said at register (`None`: it did not say).
    pub capacity: Option<i64>,
    /// Its labels, a JSON array of strings, as its daemon said at register.
    pub labels: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentRow {
    pub id: String,
    pub workspace_id: String,
    pub runtime_id: String,
    pub name: String,
    pub instructions: String,
    pub model: String,
    /// JSON array of strings.
    pub custom_args: String,
    /// JSON object of strings.
    pub custom_env: String,
    pub created_at: i64,
    /// The agent's pool (JSON of a `Pool`, `service::pool`); `None`: `runtime_id` alone.
    pub pool: Option<String>,
    /// Automatic retries of a transiently failed task (per chain of attempts).
    pub max_retries: i64,
    /// Most tasks of this agent in flight at once (`None`: no cap of its own).
    pub max_concurrency: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IssueRow {
    pub id: String,
    pub workspace_id: String,
    pub title: String,
    pub description: String,
    pub status: String,
    pub assignee_agent_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Its number in the workspace (set by the store at insert).
    pub number: i64,
    /// The workspace's key (read with the issue).
    pub workspace_key: String,
    /// How many tasks the issue has (read with the issue).
    pub run_count: i64,
}

impl IssueRow {
    /// `AGD-12`.
    pub fn key(&self) -> String {
        format!("{}-{}", self.workspace_key, self.number)
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CommentRow {
    pub id: String,
    pub issue_id: String,
    /// `member`, `agent` or `system`.
    pub author_type: String,
    pub author_id: String,
    pub author_name: String,
    pub body: String,
    pub created_at: i64,
}

/// What a claim's answer carries beyond its [`TaskRow`] ([`Store::claim_context`]). A
/// field is `None` when its row is gone (the agent, issue or workspace was deleted) or
/// absent (no triggering comment, no earlier session, no open pull request).
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct ClaimContext {
    pub agent_name: Option<String>,
    pub agent_instructions: Option<String>,
    pub agent_model: Option<String>,
    /// JSON object, as stored.
    pub agent_custom_env: Option<String>,
    /// JSON array, as stored.
    pub agent_custom_args: Option<String>,
    pub issue_title: Option<String>,
    pub issue_description: Option<String>,
    /// JSON array of URLs, as stored.
    pub repos: Option<String>,
    pub comment_id: Option<String>,
    pub comment_body: Option<String>,
    pub comment_author_type: Option<String>,
    pub comment_author_name: Option<String>,
    /// From the newest completed or failed earlier run of this agent on this issue and
    /// runtime that left a session.
    pub prior_session_id: Option<String>,
    pub prior_work_dir: Option<String>,
    /// The head branch of this agent's newest open pull request on the issue.
    pub branch: Option<String>,
}

/// A task. `status` and `failure_reason` are stored as their wire names (TEXT).
#[derive(Debug, Clone, Default)]
pub struct TaskRow {
    pub id: String,
    pub workspace_id: String,
    pub issue_id: String,
    pub agent_id: String,
    pub runtime_id: String,
    pub status: TaskStatus,
    pub claim_key: Option<String>,
    pub trigger_comment_id: Option<String>,
    pub output: Option<String>,
    pub error: Option<String>,
    pub failure_reason: Option<FailureReason>,
    pub session_id: Option<String>,
    pub work_dir: Option<String>,
    pub parent_task_id: Option<String>,
    pub created_at: i64,
    pub dispatched_at: Option<i64>,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub branch_name: Option<String>,
    /// The daemon that claimed the task (set by the claim).
    pub daemon_id: Option<String>,
    /// When that daemon last said it holds the task: the lease's renewal time.
    pub held_at: Option<i64>,
    /// The first final report that arrived after the task had ended.
    pub late_report: Option<String>,
    /// The owner token of the claiming runtime at the claim.
    pub claimed_by: Option<String>,
    /// Who caused the task to be queued (`None`: the server, or before this was kept).
    pub queued_by: Option<Actor>,
    /// Who cancelled it.
    pub cancelled_by: Option<Actor>,
    /// Its retry, once it was retried.
    pub retry_task_id: Option<String>,
    /// 1 for a first run; a retry's is its parent's + 1.
    pub attempt: i64,
    /// No runtime may claim it before this time (a retry's backoff).
    pub not_before: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub task_id: String,
    pub seq: i64,
    pub kind: String,
    pub tool: Option<String>,
    pub content: Option<String>,
    /// JSON text.
    pub input: Option<String>,
    pub output: Option<String>,
    pub created_at: i64,
}

/// A guarded status transition of a task, applied with its side effects in one write
/// transaction: it happens only if the task is currently in one of `from`.
#[derive(Debug, Clone, Default)]
pub struct Transition {
    pub task_id: String,
    pub from: Vec<TaskStatus>,
    pub to: TaskStatus,
    pub output: Option<String>,
    pub error: Option<String>,
    pub failure_reason: Option<FailureReason>,
    pub session_id: Option<String>,
    pub work_dir: Option<String>,
    pub branch_name: Option<String>,
    /// Posted on the task's issue when the transition happens.
    pub comment: Option<CommentRow>,
    /// The issue moves to this status when the transition happens.
    pub issue_status: Option<String>,
    /// The run's diff, stored when the transition happens (never replaced).
    pub diff: Option<DiffRow>,
    /// Who cancelled the task (a transition to `cancelled`).
    pub cancelled_by: Option<Actor>,
    pub now: i64,
}

/// What a task's run changed: the diff as stored (already capped by
/// `service::diff::sanitize`) and how many files changed in all (its `files` list may be
/// cut).
#[derive(Debug, Clone, Default)]
pub struct DiffRow {
    pub diff: TaskDiff,
    pub files_count: u64,
    pub created_at: i64,
}

impl DiffRow {
    pub fn stat(&self) -> DiffStat {
        DiffStat {
            files: self.files_count,
            additions: self.diff.additions,
            deletions: self.diff.deletions,
        }
    }
}

/// What [`Store::touch_runtime`] found.
#[derive(Debug)]
pub enum Touched {
    /// No such runtime (deleted): the daemon must re-register.
    Missing,
    /// It was online already; only `last_seen_at` moved.
    Seen,
    /// It was offline and is online again (the row as it is now).
    CameOnline(Box<RuntimeRow>),
}

/// Everything the services need from persistence. Every write is atomic on its own.
pub trait Store: TaskStore + ForgeStore + LivenessStore + AccountStore {
    /// Waits for in-flight queries and closes the database (at shutdown).
    fn close(&self) -> StoreFut<'_, ()>;
    /// A trivial query (`SELECT 1`): whether the database answers (readiness).
    fn ping(&self) -> StoreFut<'_, ()>;
    /// How many tasks are queued, in every workspace (`/metrics`' queue depth).
    fn queued_count(&self) -> StoreFut<'_, i64>;

    // Workspaces and tokens.
    /// Inserts the workspace unless its key is taken (false then, and nothing changes).
    fn create_workspace(&self, ws: WorkspaceRow, grant_token: Option<String>)
    -> StoreFut<'_, bool>;
    /// Sets the key of a workspace that has none; false if the key is taken.
    fn set_workspace_key(&self, id: String, key: String) -> StoreFut<'_, bool>;
    /// Every workspace key in use.
    fn workspace_keys(&self) -> StoreFut<'_, Vec<String>>;
    /// Workspaces of `workspace_ids` (`None`: all) matching `r`, at most
    /// [`REF_CANDIDATES`].
    fn workspaces_by_ref(
        &self,
        workspace_ids: Option<Vec<String>>,
        r: RefQuery,
    ) -> StoreFut<'_, Vec<WorkspaceRow>>;
    fn get_workspace(&self, id: String) -> StoreFut<'_, Option<WorkspaceRow>>;
    /// `None` lists all workspaces.
    fn list_workspaces(&self, ids: Option<Vec<String>>) -> StoreFut<'_, Vec<WorkspaceRow>>;
    fn create_token(
        &self,
        token: TokenRow,
        hash: String,
        workspace_ids: Vec<String>,
    ) -> StoreFut<'_, ()>;
    /// The token with this hash, revoked or expired ones included (the caller says why it
    /// refuses them), with its workspaces.
    fn find_token(&self, hash: String) -> StoreFut<'_, Option<(TokenRow, Vec<String>)>>;
    fn get_token(&self, id: String) -> StoreFut<'_, Option<(TokenRow, Vec<String>)>>;
    /// Every token (`None`), or those with this id or created by it, oldest first.
    fn list_tokens(
        &self,
        self_or_creator: Option<String>,
    ) -> StoreFut<'_, Vec<(TokenRow, Vec<String>)>>;
    /// Sets `revoked_at = now` unless already revoked; true if it was revoked now.
    fn revoke_token(&self, id: String, now: i64) -> StoreFut<'_, bool>;
    /// Sets `last_used_at = now` if it is older than `stale_before` (or unset).
    fn touch_token(&self, id: String, now: i64, stale_before: i64) -> StoreFut<'_, ()>;
    /// Inserts a new admin token and revokes every earlier one, in one transaction.
    fn replace_admin_token(&self, token: TokenRow, hash: String, now: i64) -> StoreFut<'_, ()>;
    /// Stores a sign-in code's hash, made by token `token_id`.
    fn create_signin_code(
        &self,
        hash: String,
        token_id: String,
        now: i64,
        expires_at: i64,
    ) -> StoreFut<'_, ()>;
    /// Marks the code used if it is unused and not expired at `now`, in one guarded
    /// update; the maker's token id if it was consumed now.
    fn consume_signin_code(&self, hash: String, now: i64) -> StoreFut<'_, Option<String>>;

    // Runtimes.
    /// Upserts on (workspace, daemon_id, provider): a surviving row keeps its id and
    /// takes `rt.owner_token_id`.
    fn upsert_runtime(&self, rt: RuntimeRow) -> StoreFut<'_, RuntimeRow>;
    /// After a takeover: the in-flight tasks of daemon `daemon_id` claimed under token
    /// `from` are now `to`'s. Returns how many.
    fn reassign_claims(&self, daemon_id: String, from: String, to: String) -> StoreFut<'_, u64>;
    fn get_runtime(&self, id: String) -> StoreFut<'_, Option<RuntimeRow>>;
    fn list_runtimes(
        &self,
        workspace_id: String,
        daemon_id: Option<String>,
    ) -> StoreFut<'_, Vec<RuntimeRow>>;
    fn delete_runtime(&self, id: String) -> StoreFut<'_, bool>;
    /// Runtimes of `workspace_ids` (`None`: all) matching `r`, at most [`REF_CANDIDATES`].
    fn runtimes_by_ref(
        &self,
        workspace_ids: Option<Vec<String>>,
        r: RefQuery,
    ) -> StoreFut<'_, Vec<RuntimeRow>>;
    /// Marks the runtime online with `last_seen_at = now`, saying whether it exists and
    /// whether it was offline until now (so the caller can tell boards it came back).
    fn touch_runtime(&self, id: String, now: i64) -> StoreFut<'_, Touched>;
    fn set_runtime_offline(&self, id: String) -> StoreFut<'_, bool>;
    /// Flips to offline every online runtime last seen before `cutoff`; returns them.
    fn offline_stale_runtimes(&self, cutoff: i64) -> StoreFut<'_, Vec<RuntimeRow>>;
    /// Whether any runtime of this daemon (in any workspace) was seen at or after `since`.
    fn daemon_seen_since(&self, daemon_id: String, since: i64) -> StoreFut<'_, bool>;
    /// Flips one runtime offline if it was not seen since `since`; true if it flipped.
    fn offline_if_unseen_since(&self, id: String, since: i64) -> StoreFut<'_, bool>;

    // Agents.
    fn create_agent(&self, agent: AgentRow) -> StoreFut<'_, ()>;
    fn get_agent(&self, id: String) -> StoreFut<'_, Option<AgentRow>>;
    fn list_agents(&self, workspace_id: String) -> StoreFut<'_, Vec<AgentRow>>;
    /// Agents of `workspace_ids` (`None`: all) matching `r`, at most [`REF_CANDIDATES`].
    fn agents_by_ref(
        &self,
        workspace_ids: Option<Vec<String>>,
        r: RefQuery,
    ) -> StoreFut<'_, Vec<AgentRow>>;
    /// Saves the agent and moves its queued tasks to its (possibly new) runtime; returns
    /// the moved tasks.
    fn update_agent(&self, agent: AgentRow) -> StoreFut<'_, Vec<TaskRow>>;
}

/// Issues, comments, tasks and their transcripts (a supertrait of [`Store`], split out
/// to keep each implementation file small).
pub trait TaskStore: Send + Sync + 'static {
    // Issues and comments.
    /// Inserts the issue with the next number of its workspace and records `events` (its
    /// creation, its first assignment), in one transaction; the issue as stored (number
    /// and key set).
    fn create_issue(&self, issue: IssueRow, events: Vec<EventRow>) -> StoreFut<'_, IssueRow>;
    fn get_issue(&self, id: String) -> StoreFut<'_, Option<IssueRow>>;
    /// Up to `limit` issues of these workspaces (`None`: all) that pass `filter`, oldest
    /// first by (created_at, id), starting after the issue at `after` (its created_at
    /// and id).
    fn list_issues(
        &self,
        workspace_ids: Option<Vec<String>>,
        filter: IssueFilter,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> StoreFut<'_, Vec<IssueRow>>;
    /// Saves the issue and records `events`, in one transaction.
    fn update_issue(&self, issue: IssueRow, events: Vec<EventRow>) -> StoreFut<'_, ()>;
    /// The issue's recorded events, in the order they happened.
    fn issue_events(&self, issue_id: String) -> StoreFut<'_, Vec<EventRow>>;
    /// Issues of `workspace_ids` (`None`: all; `only_issue` narrows to one) matching `r`,
    /// at most [`REF_CANDIDATES`].
    fn issues_by_ref(
        &self,
        workspace_ids: Option<Vec<String>>,
        only_issue: Option<String>,
        r: RefQuery,
    ) -> StoreFut<'_, Vec<IssueRow>>;
    fn add_comment(&self, comment: CommentRow) -> StoreFut<'_, ()>;
    fn get_comment(&self, id: String) -> StoreFut<'_, Option<CommentRow>>;
    fn list_comments(&self, issue_id: String) -> StoreFut<'_, Vec<CommentRow>>;

    // Tasks.
    fn insert_task(&self, task: TaskRow) -> StoreFut<'_, ()>;
    /// Inserts `task`, the retry of its `parent_task_id`, unless that task was retried
    /// already: a guarded update sets the parent's `retry_task_id` in the same
    /// transaction. `Err(existing retry id)` when it had one.
    fn insert_retry(&self, task: TaskRow) -> StoreFut<'_, Result<(), String>>;
    /// Each task's issue key and agent name, in one query.
    fn task_labels(&self, task_ids: Vec<String>) -> StoreFut<'_, Vec<TaskLabel>>;
    /// Tasks of `workspace_ids` (`None`: all; `only_issue` narrows to one issue's)
    /// matching `r`, at most [`REF_CANDIDATES`].
    fn tasks_by_ref(
        &self,
        workspace_ids: Option<Vec<String>>,
        only_issue: Option<String>,
        r: RefQuery,
    ) -> StoreFut<'_, Vec<TaskRow>>;
    fn get_task(&self, id: String) -> StoreFut<'_, Option<TaskRow>>;
    fn list_issue_tasks(&self, issue_id: String) -> StoreFut<'_, Vec<TaskRow>>;
    /// The newest task (by created_at, id: the last of [`TaskStore::list_issue_tasks`]) of
    /// each of these issues that has one, in one query.
    fn latest_tasks(&self, issue_ids: Vec<String>) -> StoreFut<'_, Vec<TaskRow>>;
    /// Tasks in one of `statuses` for this runtime.
    fn runtime_tasks(
        &self,
        runtime_id: String,
        statuses: Vec<TaskStatus>,
    ) -> StoreFut<'_, Vec<TaskRow>>;
    /// Hands the oldest claimable queued task of this runtime to the caller, atomically.
    /// With a `claim_key`, a task already claimed by this runtime under that key (and still
    /// dispatched or running) is returned again instead. `token_hash` becomes the task's
    /// token hash (rotated on a replay, since only the hash is stored).
    /// `pool_agents`: the agents of pools this runtime serves, whose unassigned queued
    /// tasks it may take too (see `shared::claim_sql` for every rule).
    fn claim_task(
        &self,
        runtime_id: String,
        claim_key: Option<String>,
        token_hash: String,
        now: i64,
        pool_agents: Vec<String>,
    ) -> StoreFut<'_, Option<TaskRow>>;
    /// What the answer to the claim of `task` carries beyond the row, read in one query
    /// (agent, issue, repos, triggering comment, session to resume, branch to continue).
    fn claim_context(&self, task: TaskRow) -> StoreFut<'_, ClaimContext>;
    /// In-flight (dispatched or running) tasks whose lease was last renewed before
    /// `cutoff` (never renewed: since their claim).
    fn expired_leases(&self, cutoff: i64) -> StoreFut<'_, Vec<TaskRow>>;
    /// The queued retries whose backoff has passed by `now`, each returned once: their
    /// `not_before` is cleared here (the wait is over, and a past `not_before` means
    /// nothing else). The sweeper wakes their runtimes, so a retry whose in-process timer
    /// died with its instance is not left to the daemons' next poll.
    fn take_due_retries(&self, now: i64) -> StoreFut<'_, Vec<TaskRow>>;
    /// Renews, at `now`, the leases of the in-flight tasks claimed by the daemon that owns
    /// `runtime_id`: those in `task_ids`, or all of them when `None`. Returns how many.
    fn renew_leases(
        &self,
        runtime_id: String,
        task_ids: Option<Vec<String>>,
        now: i64,
    ) -> StoreFut<'_, u64>;
    /// Renews one in-flight task's lease (a report about it arrived).
    fn renew_task_lease(&self, task_id: String, now: i64) -> StoreFut<'_, ()>;
    /// Keeps the first late final report of an ended task and posts `comment` with it;
    /// false (and nothing posted) when one was already kept (a replay).
    fn record_late_report(
        &self,
        task_id: String,
        report: String,
        comment: CommentRow,
    ) -> StoreFut<'_, bool>;
    /// The active (dispatched or running) task holding this token hash.
    fn find_task_by_token(&self, hash: String) -> StoreFut<'_, Option<TaskRow>>;
    /// Applies a guarded transition; the new row if it happened, `None` if not.
    fn transition_task(&self, t: Transition) -> StoreFut<'_, Option<TaskRow>>;
    fn pin_session(
        &self,
        task_id: String,
        session_id: Option<String>,
        work_dir: Option<String>,
    ) -> StoreFut<'_, ()>;
    /// Upserts on (task, seq): a replayed batch changes nothing.
    fn upsert_messages(&self, messages: Vec<MessageRow>) -> StoreFut<'_, ()>;
    fn list_messages(
        &self,
        task_id: String,
        after_seq: i64,
        limit: i64,
    ) -> StoreFut<'_, Vec<MessageRow>>;
    /// The task's token counters, per (provider, model).
    fn list_usage(&self, task_id: String) -> StoreFut<'_, Vec<UsageEntry>>;
    /// Replaces the counters per (task, provider, model).
    fn upsert_usage(&self, task_id: String, usage: Vec<UsageEntry>) -> StoreFut<'_, ()>;
    /// The diff stored with the task's final report, if it carried one.
    fn get_task_diff(&self, task_id: String) -> StoreFut<'_, Option<DiffRow>>;
    /// The diffstats of those of `task_ids` that have a diff, by task id.
    fn diffstats(&self, task_ids: Vec<String>) -> StoreFut<'_, Vec<(String, DiffStat)>>;
}

/// A workspace's forge connection. `token` is the forge API token (never shown).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ForgeRow {
    pub workspace_id: String,
    /// `github` or `gitea` (the proto's `ForgeKind` wire names).
    pub kind: String,
    pub api_url: String,
    /// `owner/name` as the user wrote it.
    pub repo: String,
    /// `repo` lowercased: webhooks find their workspace by it.
    pub repo_key: String,
    pub token: String,
    pub webhook_secret: String,
    pub poll: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A pull request the server opened or adopted for an issue's branch.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PullRow {
    pub id: String,
    pub workspace_id: String,
    pub issue_id: String,
    /// The task whose push it last carried.
    pub task_id: String,
    /// The agent a review's follow-up task goes to.
    pub agent_id: String,
    pub number: i64,
    pub url: String,
    /// `open`, `merged` or `closed`.
    pub state: String,
    pub head_branch: String,
    pub head_sha: String,
    pub base_branch: String,
    pub review_state: Option<String>,
    pub checks_state: Option<String>,
    pub polled_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Changes to a pull request, applied with their issue side effects in one transaction.
/// `None` fields keep their value.
#[derive(Debug, Clone, Default)]
pub struct PullUpdate {
    pub pull_id: String,
    pub state: Option<String>,
    pub review_state: Option<String>,
    pub checks_state: Option<String>,
    pub head_sha: Option<String>,
    pub task_id: Option<String>,
    pub polled_at: Option<i64>,
    /// The issue moves to this status (only when `state` really changes the row).
    pub issue_status: Option<String>,
    /// Posted on the issue (only when `state` really changes the row, if `state` is set).
    pub comment: Option<CommentRow>,
    pub now: i64,
}

/// Forge connections, pull requests and webhook deliveries (a supertrait of [`Store`]).
pub trait ForgeStore: Send + Sync + 'static {
    /// Creates or replaces the workspace's connection (`created_at` kept on replace).
    fn set_forge(&self, row: ForgeRow) -> StoreFut<'_, ()>;
    fn get_forge(&self, workspace_id: String) -> StoreFut<'_, Option<ForgeRow>>;
    /// True if there was one.
    fn delete_forge(&self, workspace_id: String) -> StoreFut<'_, bool>;
    /// The connections of this kind to this repository (`repo_key`, lowercased).
    fn forges_by_repo(&self, kind: String, repo_key: String) -> StoreFut<'_, Vec<ForgeRow>>;
    fn insert_pull(&self, row: PullRow) -> StoreFut<'_, ()>;
    fn get_pull(&self, workspace_id: String, number: i64) -> StoreFut<'_, Option<PullRow>>;
    /// The open pull request of this workspace whose head is `branch`.
    fn open_pull_for_branch(
        &self,
        workspace_id: String,
        branch: String,
    ) -> StoreFut<'_, Option<PullRow>>;
    /// The pull requests of an issue, oldest first.
    fn issue_pulls(&self, issue_id: String) -> StoreFut<'_, Vec<PullRow>>;
    /// The newest pull request of each of these issues that has one, in one query.
    fn latest_pulls(&self, issue_ids: Vec<String>) -> StoreFut<'_, Vec<PullRow>>;
    /// Applies `u`; returns the row after it and whether `state` changed.
    fn update_pull(&self, u: PullUpdate) -> StoreFut<'_, Option<(PullRow, bool)>>;
    /// Open pull requests of connections with `poll` on, not polled since `before`.
    fn pulls_to_poll(&self, before: i64) -> StoreFut<'_, Vec<PullRow>>;
    /// Records a webhook delivery id; false if it was recorded before (a redelivery).
    fn record_delivery(
        &self,
        workspace_id: String,
        delivery_id: String,
        now: i64,
    ) -> StoreFut<'_, bool>;
    /// `failed` (`push_failed`) → `completed` after a later push succeeded: clears the
    /// error and reason, sets the branch, posts `comment` and moves the issue.
    fn complete_pushed(
        &self,
        task_id: String,
        branch: String,
        comment: CommentRow,
        issue_status: Option<String>,
        now: i64,
    ) -> StoreFut<'_, Option<TaskRow>>;
}

/// One runtime's liveness as an instance received it (`crate::liveness`), to be written
/// in a batch: its latest sign of life and the leases its heartbeats renewed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LivenessRow {
    pub runtime_id: String,
    /// The latest sign of life (server time): `last_seen_at` moves forward to it, never back.
    pub seen_at: i64,
    /// Tasks a heartbeat said the daemon holds, each with the time it said so: their
    /// leases (`held_at`) move forward to it (only tasks claimed by this runtime's daemon
    /// under its owner token, as [`TaskStore::renew_leases`]).
    pub held: Vec<(String, i64)>,
    /// A heartbeat without `active_task_ids` (Multica's daemon) at this time: every
    /// in-flight task of the daemon is renewed to it.
    pub held_all: Option<i64>,
}

/// What a [`LivenessStore::write_liveness`] batch found.
#[derive(Debug, Default)]
pub struct LivenessWritten {
    /// Runtimes that were offline and are online again (rows as they are now).
    pub came_online: Vec<RuntimeRow>,
    /// Runtimes of the batch that do not exist (deleted).
    pub missing: Vec<String>,
}

/// Batched liveness (a supertrait of [`Store`]).
pub trait LivenessStore: Send + Sync + 'static {
    /// Writes a batch of liveness in one write transaction: every runtime of the batch
    /// is online with `last_seen_at` moved forward to its `seen_at` (never back), and the
    /// leases its heartbeats renewed move forward to their times (never back).
    fn write_liveness(&self, batch: Vec<LivenessRow>) -> StoreFut<'_, LivenessWritten>;

    /// The pool of a PostgreSQL store: the signal bus (`crate::bus`) and the sweeper's
    /// leader lock (`crate::leader`) connect to the same database. `None` on SQLite (one
    /// instance only).
    fn postgres_pool(&self) -> Option<sqlx::PgPool> {
        None
    }
}

/// A person (`users`). `email` is lowercased and trimmed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    /// argon2id PHC string; `None`: no password sign-in.
    pub password_hash: Option<String>,
    pub is_admin: bool,
    pub disabled: bool,
    pub created_at: i64,
}

/// A user's role in a workspace (`memberships`); `role` is the proto's `Role` wire name.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MembershipRow {
    pub workspace_id: String,
    pub user_id: String,
    pub role: String,
    pub created_at: i64,
}

/// A board session (`sessions`), by the SHA-256 hex of the cookie's id.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id_hash: String,
    pub user_id: String,
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// A single-use invitation (`invitations`), by the SHA-256 hex of its secret.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InvitationRow {
    pub id: String,
    pub token_hash: String,
    pub workspace_id: String,
    pub role: String,
    pub email: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub used_by: Option<String>,
    pub revoked_at: Option<i64>,
}

/// An OIDC sign-in waiting for its callback (`oidc_logins`), by the SHA-256 hex of
/// its `state`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OidcLoginRow {
    pub state_hash: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// One audit log entry (`audit_log`, append-only). `detail` is a JSON object's text.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: String,
    pub at: i64,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub actor_name: String,
    pub action: String,
    pub workspace_id: Option<String>,
    pub target: String,
    pub source_ip: String,
    pub detail: String,
}

/// Which audit entries to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only these workspaces' entries (`None`: every entry, workspace-less ones included).
    pub workspace_ids: Option<Vec<String>>,
    /// Only this action.
    pub action: Option<String>,
    /// Only entries before this time (paging).
    pub before: Option<i64>,
    pub limit: i64,
}

/// Users, memberships, sessions and the audit log (a supertrait of [`Store`]).
pub trait AccountStore: Send + Sync + 'static {
    /// Inserts the user unless the email is taken (false then, nothing changes).
    fn create_user(&self, user: UserRow) -> StoreFut<'_, bool>;
    fn get_user(&self, id: String) -> StoreFut<'_, Option<UserRow>>;
    fn user_by_email(&self, email: String) -> StoreFut<'_, Option<UserRow>>;
    /// Every user, oldest first.
    fn list_users(&self) -> StoreFut<'_, Vec<UserRow>>;
    /// Sets the user's email, name, password hash and admin flag (taking over the
    /// upgrade's admin user); false if there is no such user or the email is taken.
    fn update_user(&self, user: UserRow) -> StoreFut<'_, bool>;
    /// Gives `user_id` the role `role` in the workspace (replacing any role it had).
    fn set_membership(&self, m: MembershipRow) -> StoreFut<'_, ()>;
    /// Removes the user from the workspace: the membership goes, every session of the
    /// user is revoked, and the user's tokens lose this workspace, in one transaction.
    /// The ids of the tokens touched; `None` if the user was not a member.
    fn remove_membership(
        &self,
        workspace_id: String,
        user_id: String,
        now: i64,
    ) -> StoreFut<'_, Option<Vec<String>>>;
    /// The memberships of a user (`by_user`) or of a workspace.
    fn list_memberships(
        &self,
        workspace_id: Option<String>,
        user_id: Option<String>,
    ) -> StoreFut<'_, Vec<MembershipRow>>;
    fn create_session(&self, s: SessionRow) -> StoreFut<'_, ()>;
    /// The session with this id hash, revoked or expired ones included, with its user.
    fn find_session(&self, id_hash: String) -> StoreFut<'_, Option<(SessionRow, UserRow)>>;
    /// Revokes one session; true if it was revoked now.
    fn revoke_session(&self, id_hash: String, now: i64) -> StoreFut<'_, bool>;
    fn create_invitation(&self, row: InvitationRow) -> StoreFut<'_, ()>;
    /// The invitation with this secret hash (`by_hash`) or id, used or not.
    fn find_invitation(
        &self,
        by_hash: Option<String>,
        id: Option<String>,
    ) -> StoreFut<'_, Option<InvitationRow>>;
    /// A workspace's invitations that are unused, unrevoked and unexpired at `now`.
    fn pending_invitations(
        &self,
        workspace_id: String,
        now: i64,
    ) -> StoreFut<'_, Vec<InvitationRow>>;
    /// Revokes an unused invitation; true if it was revoked now.
    fn revoke_invitation(&self, id: String, now: i64) -> StoreFut<'_, bool>;
    /// Uses the invitation for `user_id` — only if it is unused, unrevoked and unexpired
    /// at `now` (one guarded update) — and gives the user its role in the workspace
    /// (unless the user has a role there already), in one transaction. False if it was
    /// not usable.
    fn accept_invitation(&self, id: String, user_id: String, now: i64) -> StoreFut<'_, bool>;
    /// Appends to the audit log.
    fn append_audit(&self, row: AuditRow) -> StoreFut<'_, ()>;
    fn list_audit(&self, f: AuditFilter) -> StoreFut<'_, Vec<AuditRow>>;
    /// How many `action` entries since `since` have this target, and how many have this
    /// source IP (failed sign-ins per account and per IP).
    fn count_audit(
        &self,
        action: String,
        target: String,
        source_ip: String,
        since: i64,
    ) -> StoreFut<'_, (i64, i64)>;
    /// Stores a started OIDC sign-in, deleting those expired at `row.created_at`.
    fn put_oidc_login(&self, row: OidcLoginRow) -> StoreFut<'_, ()>;
    /// Deletes and returns the OIDC sign-in with this state hash, expired or not (the
    /// caller checks): a state is usable once, on any instance.
    fn take_oidc_login(&self, state_hash: String) -> StoreFut<'_, Option<OidcLoginRow>>;
    /// Sets the role OIDC-provisioned users get in the workspace (`None`: none); false
    /// if there is no such workspace.
    fn set_oidc_default_role(
        &self,
        workspace_id: String,
        role: Option<String>,
    ) -> StoreFut<'_, bool>;
    /// Every workspace with an OIDC default role: (workspace id, role).
    fn oidc_default_roles(&self) -> StoreFut<'_, Vec<(String, String)>>;
}
