//! References on the user API (`/api/v1`): what an id in a path (`/issues/{id}`,
//! `/tasks/{id}`, `/agents/{id}`, `/runtimes/{id}`, `/workspaces/{wid}`), in the
//! `?workspace_id=` and `?assignee=` filters, or in an id field of a body
//! (`runtime_id`, `assignee_agent_id`, `workspace_ids`) names. This module owns that rule
//! and nothing else decides it; the daemon API (`/api/daemon`) takes exact ids only and
//! never comes here.
//!
//! A reference is, in this order:
//! 1. an exact id (one primary-key lookup: a full id never pays for a prefix search);
//! 2. for an issue, its key `AGD-12` (case-insensitive); for an agent, a runtime or a
//!    workspace, its exact name (case-insensitive), and for a workspace also its key;
//! 3. a unique prefix of an id, at least [`MIN_PREFIX`] characters.
//!
//! Only objects the caller can see are candidates — a member's workspaces, a task token's
//! own issue — so a reference never reveals what lies outside them. Agents and runtimes
//! are looked for in the workspace at hand when there is one (the path's workspace, the
//! issue's or the agent's). No match is the kind's usual 404 (`issue not found`, `task
//! not found`, `agent not found`, `runtime not found`, `workspace not found`); more than
//! one is a 409 with code [`agentd_proto::ERROR_AMBIGUOUS`] and up to [`MAX_MATCHES`]
//! candidates, each with what a person recognises it by.

use agentd_proto::api::RefMatch;

use crate::App;
use crate::auth::Principal;
use crate::service::{Error, is_uuid, rfc3339};
use crate::store::{
    AgentRow, IssueRow, REF_CANDIDATES, RefQuery, RuntimeRow, TaskRow, WorkspaceRow,
};

/// The shortest id prefix accepted as a reference.
pub const MIN_PREFIX: usize = 4;
/// The most candidates an ambiguity error lists.
pub const MAX_MATCHES: usize = 10;

/// The kinds of objects a reference can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Issue,
    Task,
    Agent,
    Runtime,
    Workspace,
}

impl Kind {
    fn plural(self) -> &'static str {
        match self {
            Kind::Issue => "issues",
            Kind::Task => "tasks",
            Kind::Agent => "agents",
            Kind::Runtime => "runtimes",
            Kind::Workspace => "workspaces",
        }
    }

    fn not_found(self) -> Error {
        Error::NotFound(match self {
            Kind::Issue => "issue not found",
            Kind::Task => agentd_proto::TASK_NOT_FOUND,
            Kind::Agent => "agent not found",
            Kind::Runtime => agentd_proto::RUNTIME_NOT_FOUND,
            Kind::Workspace => agentd_proto::WORKSPACE_NOT_FOUND,
        })
    }
}

/// The reference trimmed; empty is bad input naming `field`.
fn clean<'a>(r: &'a str, field: &str) -> Result<&'a str, Error> {
    match r.trim() {
        "" => Err(Error::bad(format!("{field} is empty"))),
        r => Ok(r),
    }
}

/// The id prefix `r` stands for: at least [`MIN_PREFIX`] characters, each a hex digit or
/// `-` (ids are lowercase uuids), lowercased. `None`: `r` cannot be a prefix.
fn prefix_of(r: &str) -> Option<String> {
    (r.len() >= MIN_PREFIX && r.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
        .then(|| r.to_ascii_lowercase())
}

/// An issue key `AGD-12` as (workspace key upper-cased, number).
fn issue_key_of(r: &str) -> Option<(String, i64)> {
    let (key, n) = r.rsplit_once('-')?;
    let number = n.parse::<i64>().ok().filter(|n| *n > 0)?;
    looks_like_key(key).then(|| (key.to_ascii_uppercase(), number))
}

/// 2 to 6 ASCII letters or digits starting with a letter (a workspace key's shape).
pub fn looks_like_key(k: &str) -> bool {
    (2..=6).contains(&k.len())
        && k.starts_with(|c: char| c.is_ascii_alphabetic())
        && k.chars().all(|c| c.is_ascii_alphanumeric())
}

/// One of `found` (candidates of `r`), or the 404 of `kind`, or a 409 listing them.
fn pick<T>(
    found: Vec<T>,
    r: &str,
    kind: Kind,
    by_prefix: bool,
    label: impl Fn(&T) -> RefMatch,
) -> Result<T, Error> {
    if found.len() <= 1 {
        return found.into_iter().next().ok_or_else(|| kind.not_found());
    }
    let count = if found.len() as i64 >= REF_CANDIDATES {
        format!("more than {}", REF_CANDIDATES - 1)
    } else {
        found.len().to_string()
    };
    let hint = if by_prefix {
        "use more characters of the id"
    } else {
        "use the id"
    };
    Err(Error::Refused {
        code: agentd_proto::ERROR_AMBIGUOUS,
        message: format!("{r:?} matches {count} {}; {hint}", kind.plural()),
        matches: found.iter().take(MAX_MATCHES).map(label).collect(),
    })
}

/// The workspaces a lookup covers: `scope` when given, else all the caller sees
/// (`None`: all, for the admin).
fn scope_of(who: &Principal, scope: Option<&str>) -> Option<Vec<String>> {
    match scope {
        Some(w) => Some(vec![w.to_string()]),
        None => who.workspace_filter(),
    }
}

/// The issue a task token is limited to (`None`: any issue of the caller's workspaces).
fn own_issue(who: &Principal) -> Option<String> {
    match who {
        Principal::Task(t) => Some(t.issue_id.clone()),
        Principal::Token { .. } | Principal::User(_) => None,
    }
}

fn workspace_label(w: &WorkspaceRow) -> RefMatch {
    RefMatch {
        id: w.id.clone(),
        label: format!("{} ({})", w.name, w.key),
    }
}

fn issue_label(i: &IssueRow) -> RefMatch {
    RefMatch {
        id: i.id.clone(),
        label: format!("{} {}", i.key(), i.title),
    }
}

/// A workspace the caller can see, by id, key, name or id prefix.
async fn workspace_seen(app: &App, who: &Principal, r: &str) -> Result<WorkspaceRow, Error> {
    let r = clean(r, "workspace_id")?;
    let kind = Kind::Workspace;
    if is_uuid(r) {
        return match app.store.get_workspace(r.to_ascii_lowercase()).await? {
            Some(ws) if who.sees_workspace(&ws.id) => Ok(ws),
            _ => Err(kind.not_found()),
        };
    }
    let scope = who.workspace_filter();
    let mut found = app
        .store
        .workspaces_by_ref(scope.clone(), RefQuery::Name(r.to_string()))
        .await?;
    if looks_like_key(r) {
        for ws in app
            .store
            .workspaces_by_ref(
                scope.clone(),
                RefQuery::WorkspaceKey(r.to_ascii_uppercase()),
            )
            .await?
        {
            if !found.iter().any(|f| f.id == ws.id) {
                found.push(ws);
            }
        }
    }
    if !found.is_empty() {
        return pick(found, r, kind, false, workspace_label);
    }
    let Some(prefix) = prefix_of(r) else {
        return Err(kind.not_found());
    };
    let found = app
        .store
        .workspaces_by_ref(scope, RefQuery::Prefix(prefix))
        .await?;
    pick(found, r, kind, true, workspace_label)
}

/// An issue the caller can see (a task token: only its own), by id, key or id prefix.
async fn issue_seen(app: &App, who: &Principal, r: &str) -> Result<IssueRow, Error> {
    let r = clean(r, "issue id")?;
    let kind = Kind::Issue;
    let only = own_issue(who);
    if is_uuid(r) {
        return match app.store.get_issue(r.to_ascii_lowercase()).await? {
            Some(i)
                if who.sees_workspace(&i.workspace_id)
                    && only.as_ref().is_none_or(|o| *o == i.id) =>
            {
                Ok(i)
            }
            _ => Err(kind.not_found()),
        };
    }
    let scope = who.workspace_filter();
    if let Some((key, number)) = issue_key_of(r) {
        let found = app
            .store
            .issues_by_ref(scope.clone(), only.clone(), RefQuery::IssueKey(key, number))
            .await?;
        if !found.is_empty() {
            return pick(found, r, kind, false, issue_label);
        }
    }
    let Some(prefix) = prefix_of(r) else {
        return Err(if issue_key_of(r).is_some() {
            kind.not_found()
        } else {
            Error::bad(format!(
                "invalid issue reference {r:?}: expected an issue id, a key like AGD-12, \
                 or at least {MIN_PREFIX} characters of an id"
            ))
        });
    };
    let found = app
        .store
        .issues_by_ref(scope, only, RefQuery::Prefix(prefix))
        .await?;
    pick(found, r, kind, true, issue_label)
}

/// A task the caller can see (a task token: only those of its issue), by id or id prefix.
async fn task_seen(app: &App, who: &Principal, r: &str) -> Result<TaskRow, Error> {
    let r = clean(r, "task id")?;
    let kind = Kind::Task;
    let only = own_issue(who);
    if is_uuid(r) {
        return match app.store.get_task(r.to_ascii_lowercase()).await? {
            Some(t)
                if who.sees_workspace(&t.workspace_id)
                    && only.as_ref().is_none_or(|o| *o == t.issue_id) =>
            {
                Ok(t)
            }
            _ => Err(kind.not_found()),
        };
    }
    let Some(prefix) = prefix_of(r) else {
        return Err(Error::bad(format!(
            "invalid task reference {r:?}: expected a task id or at least {MIN_PREFIX} \
             characters of one"
        )));
    };
    let found = app
        .store
        .tasks_by_ref(who.workspace_filter(), only, RefQuery::Prefix(prefix))
        .await?;
    if found.len() <= 1 {
        return pick(found, r, kind, true, |_| RefMatch::default());
    }
    // Labels name the task's issue: read the keys of the listed ones in one query.
    let shown: Vec<TaskRow> = found.iter().take(MAX_MATCHES).cloned().collect();
    let infos = super::task_infos(app, &shown).await?;
    pick(found, r, kind, true, |t| {
        let key = infos
            .iter()
            .find(|i| i.id == t.id)
            .map(|i| i.issue_key.clone())
            .unwrap_or_default();
        RefMatch {
            id: t.id.clone(),
            label: format!("{key} {} {}", t.status.as_str(), rfc3339(t.created_at)),
        }
    })
}

/// An agent the caller can see, in workspace `scope` when given, by id, name or id
/// prefix.
async fn agent_seen(
    app: &App,
    who: &Principal,
    r: &str,
    scope: Option<&str>,
) -> Result<AgentRow, Error> {
    let r = clean(r, "agent id")?;
    let kind = Kind::Agent;
    if is_uuid(r) {
        return match app.store.get_agent(r.to_ascii_lowercase()).await? {
            Some(a)
                if who.sees_workspace(&a.workspace_id)
                    && scope.is_none_or(|w| w == a.workspace_id) =>
            {
                Ok(a)
            }
            _ => Err(kind.not_found()),
        };
    }
    let label = |a: &AgentRow| RefMatch {
        id: a.id.clone(),
        label: a.name.clone(),
    };
    let ws = scope_of(who, scope);
    let found = app
        .store
        .agents_by_ref(ws.clone(), RefQuery::Name(r.to_string()))
        .await?;
    if !found.is_empty() {
        return pick(found, r, kind, false, label);
    }
    let Some(prefix) = prefix_of(r) else {
        return Err(kind.not_found());
    };
    let found = app
        .store
        .agents_by_ref(ws, RefQuery::Prefix(prefix))
        .await?;
    pick(found, r, kind, true, label)
}

/// A runtime the caller can see, in workspace `scope` when given, by id, name or id
/// prefix.
async fn runtime_seen(
    app: &App,
    who: &Principal,
    r: &str,
    scope: Option<&str>,
) -> Result<RuntimeRow, Error> {
    let r = clean(r, "runtime id")?;
    let kind = Kind::Runtime;
    if is_uuid(r) {
        return match app.store.get_runtime(r.to_ascii_lowercase()).await? {
            Some(rt)
                if who.sees_workspace(&rt.workspace_id)
                    && scope.is_none_or(|w| w == rt.workspace_id) =>
            {
                Ok(rt)
            }
            _ => Err(kind.not_found()),
        };
    }
    let label = |rt: &RuntimeRow| RefMatch {
        id: rt.id.clone(),
        label: rt.name.clone(),
    };
    let ws = scope_of(who, scope);
    let found = app
        .store
        .runtimes_by_ref(ws.clone(), RefQuery::Name(r.to_string()))
        .await?;
    if !found.is_empty() {
        return pick(found, r, kind, false, label);
    }
    let by_provider = runtimes_of_provider(app, ws.as_deref(), r).await?;
    if !by_provider.is_empty() {
        return pick(by_provider, r, kind, false, |rt: &RuntimeRow| RefMatch {
            id: rt.id.clone(),
            label: format!("{} ({})", rt.name, rt.status),
        });
    }
    let Some(prefix) = prefix_of(r) else {
        return Err(kind.not_found());
    };
    let found = app
        .store
        .runtimes_by_ref(ws, RefQuery::Prefix(prefix))
        .await?;
    pick(found, r, kind, true, label)
}

/// The runtimes whose provider is `r` (case-insensitive: `claude`, `codex`, …) in the
/// workspaces `ws` (`None`: every workspace, for the admin). Daemons name runtimes
/// `Claude (laptop)`, so `--runtime claude` names the workspace's one Claude runtime;
/// with several, the caller gets the ambiguity error listing them.
async fn runtimes_of_provider(
    app: &App,
    ws: Option<&[String]>,
    r: &str,
) -> Result<Vec<RuntimeRow>, Error> {
    if !r
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = match ws {
        Some(ids) => ids.to_vec(),
        None => app
            .store
            .list_workspaces(None)
            .await?
            .into_iter()
            .map(|w| w.id)
            .collect(),
    };
    let mut found = Vec::new();
    for id in ids {
        found.extend(
            app.store
                .list_runtimes(id, None)
                .await?
                .into_iter()
                .filter(|rt| rt.provider.eq_ignore_ascii_case(r)),
        );
    }
    Ok(found)
}

// The public resolvers: what the caller sees (404 otherwise), then the role the route
// needs in its workspace (403 otherwise; `Principal::check_role`).

/// A workspace the caller can see, by id, key, name or id prefix.
pub async fn workspace(app: &App, who: &Principal, r: &str) -> Result<WorkspaceRow, Error> {
    let ws = workspace_seen(app, who, r).await?;
    who.check_role(&ws.id)?;
    Ok(ws)
}

/// An issue the caller can see (a task token: its own), by id, key or id prefix.
pub async fn issue(app: &App, who: &Principal, r: &str) -> Result<IssueRow, Error> {
    let i = issue_seen(app, who, r).await?;
    who.check_role(&i.workspace_id)?;
    Ok(i)
}

/// A task the caller can see, by id or id prefix.
pub async fn task(app: &App, who: &Principal, r: &str) -> Result<TaskRow, Error> {
    let t = task_seen(app, who, r).await?;
    who.check_role(&t.workspace_id)?;
    Ok(t)
}

/// An agent the caller can see, in workspace `scope` when given.
pub async fn agent(
    app: &App,
    who: &Principal,
    r: &str,
    scope: Option<&str>,
) -> Result<AgentRow, Error> {
    let a = agent_seen(app, who, r, scope).await?;
    who.check_role(&a.workspace_id)?;
    Ok(a)
}

/// A runtime the caller can see, in workspace `scope` when given.
pub async fn runtime(
    app: &App,
    who: &Principal,
    r: &str,
    scope: Option<&str>,
) -> Result<RuntimeRow, Error> {
    let rt = runtime_seen(app, who, r, scope).await?;
    who.check_role(&rt.workspace_id)?;
    Ok(rt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_read_as_the_rule_says() {
        assert_eq!(prefix_of("AB12"), Some("ab12".into()));
        assert_eq!(prefix_of("ab1"), None, "shorter than 4");
        assert_eq!(prefix_of("bot1"), None, "not hex");
        assert_eq!(issue_key_of("agd-12"), Some(("AGD".into(), 12)));
        assert_eq!(issue_key_of("AGD-0"), None);
        assert_eq!(issue_key_of("1GD-3"), None, "a key starts with a letter");
        assert_eq!(
            issue_key_of("ABCDEFG-3"),
            None,
            "a key is at most 6 characters"
        );
        assert!(looks_like_key("WS2") && !looks_like_key("W") && !looks_like_key("a-b"));
    }
}
