//! Domain rules, independent of HTTP: [`task`] (queue, claim, lifecycle, leases of
//! reports, late reports, cancel, retry), [`runtime`] (register, liveness, heartbeats that
//! renew leases), [`issue`] (issues, comments and the triggers that queue tasks),
//! [`agent`], [`workspace`] (and the visibility rule, and issue keys), [`token`] (and
//! board sign-in codes), [`forge`] (forge connections, pull requests, webhooks and
//! polling), [`resolve`] (what an id, prefix, key or name in a user request names) and
//! [`activity`] (an issue's history, with who did what). Handlers call these and
//! nothing below them; failures are an [`Error`], which only `api::error` maps to HTTP.
//! Row → wire conversions live here too.

pub mod account;
pub mod activity;
pub mod agent;
pub mod audit;
pub mod diff;
mod error;
pub mod forge;
pub mod invitation;
pub mod issue;
pub mod member;
pub mod oidc;
pub mod pool;
pub mod repo_url;
pub mod resolve;
pub mod runtime;
pub mod task;
pub mod token;
pub mod workspace;

pub use error::Error;

use agentd_proto::Repo;
use agentd_proto::api::{
    Actor, ActorKind, AgentInfo, CommentInfo, IssueInfo, RuntimeInfo, TaskInfo, TokenKind,
    WorkspaceInfo,
};
use sha2::{Digest, Sha256};

use crate::App;
use crate::auth::Principal;
use crate::events::Events;
use crate::store::{
    AgentRow, CommentRow, IssueRow, RuntimeRow, StoreError, TaskRow, WorkspaceRow, reason_text,
};

pub use crate::store::system_actor;

/// Who the caller is, as activity records it: a member token by its name, the admin
/// token as `admin`, a task token by its agent's name.
pub async fn actor_of(app: &App, who: &Principal) -> Result<Actor, StoreError> {
    Ok(match who {
        Principal::Token {
            kind: TokenKind::Admin,
            ..
        } => Actor {
            kind: ActorKind::Admin,
            name: "admin".into(),
        },
        Principal::Token { name, .. } => Actor {
            kind: ActorKind::Member,
            name: name.clone(),
        },
        Principal::User(u) => Actor {
            kind: ActorKind::Member,
            name: u.display_name(),
        },
        Principal::Task(t) => Actor {
            kind: ActorKind::Agent,
            name: app
                .store
                .get_agent(t.agent_id.clone())
                .await?
                .map(|a| a.name)
                .unwrap_or_else(|| "agent".into()),
        },
    })
}

/// The first 8 characters of an id, as messages show it.
pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Publishes that task `t` changed (`kind` `task`, or `messages` for new transcript).
pub fn task_event(app: &App, kind: &str, t: &TaskRow) {
    let mut e = Events::event(kind, &t.workspace_id);
    e.issue_id = Some(t.issue_id.clone());
    e.task_id = Some(t.id.clone());
    e.agent_id = Some(t.agent_id.clone());
    e.runtime_id = Some(t.runtime_id.clone());
    e.status = Some(t.status.as_str().to_string());
    crate::bus::publish(app, crate::bus::Signal::Board(e));
}

/// Publishes that issue `i` changed (`kind` `issue`, or `comment` for a new comment).
pub fn issue_event(app: &App, kind: &str, i: &IssueRow) {
    let mut e = Events::event(kind, &i.workspace_id);
    e.issue_id = Some(i.id.clone());
    e.status = Some(i.status.clone());
    crate::bus::publish(app, crate::bus::Signal::Board(e));
}

/// Publishes that runtime `r` changed (registered, offline, deleted).
pub fn runtime_event(app: &App, r: &RuntimeRow, status: &str) {
    let mut e = Events::event("runtime", &r.workspace_id);
    e.runtime_id = Some(r.id.clone());
    e.status = Some(status.to_string());
    crate::bus::publish(app, crate::bus::Signal::Board(e));
}

/// Publishes that agent `a` was created or changed.
pub fn agent_event(app: &App, a: &AgentRow) {
    let mut e = Events::event("agent", &a.workspace_id);
    e.agent_id = Some(a.id.clone());
    e.runtime_id = Some(a.runtime_id.clone());
    crate::bus::publish(app, crate::bus::Signal::Board(e));
}

pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn opt_time(ms: Option<i64>) -> Option<String> {
    ms.map(rfc3339)
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Whether `s` is a uuid (ids are checked before any lookup so bad input is a 4xx).
pub fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

/// The workspace's repos, normalised: trimmed, empties dropped, de-duplicated in order.
pub fn repos(ws: &WorkspaceRow) -> Vec<Repo> {
    repos_from_json(&ws.repos)
}

/// [`repos`] from the stored JSON array of URLs.
pub fn repos_from_json(stored: &str) -> Vec<Repo> {
    let urls: Vec<String> = serde_json::from_str(stored).unwrap_or_default();
    let mut out: Vec<Repo> = Vec::new();
    for u in urls {
        let url = u.trim().to_string();
        if !url.is_empty() && !out.iter().any(|r| r.url == url) {
            out.push(Repo { url });
        }
    }
    out
}

/// SHA-256 hex of the sorted repo URLs joined by newlines.
pub fn repos_version(repos: &[Repo]) -> String {
    let mut urls: Vec<&str> = repos.iter().map(|r| r.url.as_str()).collect();
    urls.sort_unstable();
    hex::encode(Sha256::digest(urls.join("\n").as_bytes()))
}

pub fn workspace_info(ws: &WorkspaceRow) -> WorkspaceInfo {
    WorkspaceInfo {
        id: ws.id.clone(),
        name: ws.name.clone(),
        key: ws.key.clone(),
        repos: repos(ws),
        created_at: rfc3339(ws.created_at),
    }
}

pub fn runtime_info(r: &RuntimeRow) -> RuntimeInfo {
    RuntimeInfo {
        id: r.id.clone(),
        workspace_id: r.workspace_id.clone(),
        daemon_id: r.daemon_id.clone(),
        provider: r.provider.clone(),
        name: r.name.clone(),
        version: r.version.clone(),
        device_name: r.device_name.clone(),
        status: r.status.clone(),
        last_seen_at: opt_time(r.last_seen_at),
        created_at: rfc3339(r.created_at),
        sandbox: r.sandbox.as_deref().map(agentd_proto::SandboxState::parse),
        capacity: r.capacity.and_then(|c| u32::try_from(c).ok()),
        labels: pool::labels(r),
    }
}

/// An agent's stored `custom_env` with every value replaced by
/// [`agentd_proto::api::MASKED_ENV_VALUE`]: the values are write-only (only the claim
/// response to the daemon that runs the agent carries them).
pub fn masked_env(stored: &str) -> std::collections::BTreeMap<String, String> {
    let env: std::collections::BTreeMap<String, String> =
        serde_json::from_str(stored).unwrap_or_default();
    env.into_keys()
        .map(|k| (k, agentd_proto::api::MASKED_ENV_VALUE.to_string()))
        .collect()
}

/// The agent as users see it (`custom_env` values masked).
pub fn agent_info(a: &AgentRow) -> AgentInfo {
    AgentInfo {
        id: a.id.clone(),
        workspace_id: a.workspace_id.clone(),
        runtime_id: a.runtime_id.clone(),
        name: a.name.clone(),
        instructions: a.instructions.clone(),
        model: a.model.clone(),
        custom_args: serde_json::from_str(&a.custom_args).unwrap_or_default(),
        custom_env: masked_env(&a.custom_env),
        created_at: rfc3339(a.created_at),
        pool: pool::of(a),
        max_retries: u32::try_from(a.max_retries).unwrap_or(0),
        max_concurrency: a.max_concurrency.and_then(|c| u32::try_from(c).ok()),
        pool_runtimes: Vec::new(),
        problem: None,
    }
}

pub fn issue_info(i: &IssueRow) -> IssueInfo {
    IssueInfo {
        id: i.id.clone(),
        workspace_id: i.workspace_id.clone(),
        title: i.title.clone(),
        description: i.description.clone(),
        status: i.status.clone(),
        assignee_agent_id: i.assignee_agent_id.clone(),
        created_at: rfc3339(i.created_at),
        updated_at: rfc3339(i.updated_at),
        latest_task: None,
        pr: None,
        number: i.number,
        key: i.key(),
        run_count: i.run_count,
    }
}

pub fn comment_info(c: &CommentRow) -> CommentInfo {
    CommentInfo {
        id: c.id.clone(),
        issue_id: c.issue_id.clone(),
        author_type: c.author_type.clone(),
        author_id: c.author_id.clone(),
        author_name: c.author_name.clone(),
        body: c.body.clone(),
        created_at: rfc3339(c.created_at),
    }
}

pub fn task_info(t: &TaskRow) -> TaskInfo {
    TaskInfo {
        id: t.id.clone(),
        attempt: u32::try_from(t.attempt).unwrap_or(1),
        workspace_id: t.workspace_id.clone(),
        issue_id: t.issue_id.clone(),
        agent_id: t.agent_id.clone(),
        runtime_id: t.runtime_id.clone(),
        status: t.status.as_str().to_string(),
        output: t.output.clone(),
        error: t.error.clone(),
        failure_reason: t.failure_reason.map(reason_text),
        parent_task_id: t.parent_task_id.clone(),
        created_at: rfc3339(t.created_at),
        dispatched_at: opt_time(t.dispatched_at),
        started_at: opt_time(t.started_at),
        completed_at: opt_time(t.completed_at),
        session_id: t.session_id.clone(),
        work_dir: t.work_dir.clone(),
        branch_name: t.branch_name.clone(),
        usage: Vec::new(),
        diffstat: None,
        pr: None,
        issue_key: String::new(),
        agent_name: String::new(),
        cancelled_by: t.cancelled_by.clone(),
        retried_by: t
            .parent_task_id
            .as_ref()
            .map(|_| t.queued_by.clone().unwrap_or_else(system_actor)),
        retry_task_id: t.retry_task_id.clone(),
    }
}

/// The tasks as users see them ([`task_info`]) with their issue keys and agent names,
/// read in one query.
pub async fn task_infos(app: &App, tasks: &[TaskRow]) -> Result<Vec<TaskInfo>, StoreError> {
    let labels: std::collections::HashMap<String, crate::store::TaskLabel> = app
        .store
        .task_labels(tasks.iter().map(|t| t.id.clone()).collect())
        .await?
        .into_iter()
        .map(|l| (l.task_id.clone(), l))
        .collect();
    Ok(tasks
        .iter()
        .map(|t| {
            let mut info = task_info(t);
            if let Some(l) = labels.get(&t.id) {
                info.issue_key = l.issue_key.clone();
                info.agent_name = l.agent_name.clone();
            }
            info
        })
        .collect())
}
