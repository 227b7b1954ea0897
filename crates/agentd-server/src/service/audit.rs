//! The audit log (docs/accounts.md, "Audit log"): who did what security-relevant thing,
//! when, to what, from which IP. Rows are only ever appended ([`record`]); the schema's
//! triggers refuse UPDATE and DELETE, and no route writes it. Server admins read every
//! entry; a workspace's owners and admins read that workspace's ([`list`]).

use agentd_proto::accounts::{AuditEntry, Role};

use crate::App;
use crate::auth::Principal;
use crate::service::{Error, new_id};
use crate::store::{AuditFilter, AuditRow, UserRow};

/// At most this many entries per page.
pub const MAX_LIMIT: i64 = 1000;

/// An entry to record, built from who did it and what.
#[derive(Debug, Clone)]
pub struct Entry(AuditRow);

impl Entry {
    /// Done by `who` (`None`: the server itself, e.g. `agentd up`).
    pub fn new(who: Option<&Principal>, action: &str, ip: &str) -> Entry {
        let (kind, id, name) = match who {
            None => ("system", None, "server".to_string()),
            Some(Principal::User(u)) => ("user", Some(u.user_id.clone()), u.email.clone()),
            Some(Principal::Token {
                token_id,
                name,
                owner,
                ..
            }) => (
                "token",
                Some(token_id.clone()),
                match owner {
                    Some(o) => format!("{name} (user {o})"),
                    None => name.clone(),
                },
            ),
            Some(Principal::Task(t)) => ("task", Some(t.id.clone()), format!("task {}", t.id)),
        };
        Entry(AuditRow {
            id: new_id(),
            at: 0,
            actor_kind: kind.into(),
            actor_id: id,
            actor_name: name,
            action: action.into(),
            workspace_id: None,
            target: String::new(),
            source_ip: ip.into(),
            detail: "{}".into(),
        })
    }

    /// Done by someone not (yet) known: a failed sign-in.
    pub fn anonymous(action: &str, ip: &str) -> Entry {
        let mut e = Entry::new(None, action, ip);
        e.0.actor_kind = "anonymous".into();
        e.0.actor_name = String::new();
        e
    }

    /// Done by this user (at sign-in, before a session exists).
    pub fn user(u: &UserRow, action: &str, ip: &str) -> Entry {
        let mut e = Entry::new(None, action, ip);
        e.0.actor_kind = "user".into();
        e.0.actor_id = Some(u.id.clone());
        e.0.actor_name = u.email.clone();
        e
    }

    pub fn workspace(mut self, id: &str) -> Entry {
        self.0.workspace_id = Some(id.to_string());
        self
    }

    pub fn target(mut self, t: &str) -> Entry {
        self.0.target = t.to_string();
        self
    }

    pub fn detail(mut self, d: serde_json::Value) -> Entry {
        self.0.detail = d.to_string();
        self
    }
}

/// Appends the entry, stamped with the server's time. A failure to write is logged at
/// error level: the action it records has already happened.
pub async fn record(app: &App, e: Entry) {
    let mut row = e.0;
    row.at = app.now();
    let action = row.action.clone();
    if let Err(err) = app.store.append_audit(row).await {
        tracing::error!(error = %err, %action, "cannot write the audit log");
    }
}

fn info(r: AuditRow) -> AuditEntry {
    AuditEntry {
        detail: serde_json::from_str(&r.detail).unwrap_or(serde_json::Value::Null),
        id: r.id,
        at: r.at,
        actor_kind: r.actor_kind,
        actor_id: r.actor_id,
        actor_name: r.actor_name,
        action: r.action,
        workspace_id: r.workspace_id,
        target: r.target,
        source_ip: r.source_ip,
    }
}

/// Entries newest first: every entry for a server admin, else those of the workspaces
/// where the caller is admin or owner (403 if none, or if `workspace_id` is not one).
pub async fn list(
    app: &App,
    who: &Principal,
    workspace_id: Option<&str>,
    action: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
) -> Result<Vec<AuditEntry>, Error> {
    let limit = limit.unwrap_or(200).clamp(1, MAX_LIMIT);
    let workspace_ids = match (who.is_admin(), workspace_id) {
        (true, None) => None,
        (_, Some(w)) => {
            who.require(w, Role::Admin)?;
            Some(vec![w.to_string()])
        }
        (false, None) => {
            let mine: Vec<String> = who
                .workspace_filter()
                .unwrap_or_default()
                .into_iter()
                .filter(|w| who.role_in(w).is_some_and(|r| r >= Role::Admin))
                .collect();
            if mine.is_empty() {
                return Err(Error::Forbidden(
                    "reading the audit log needs the admin role in a workspace (or a server \
                     admin)"
                        .into(),
                ));
            }
            Some(mine)
        }
    };
    if matches!(who, Principal::Task(_)) {
        return Err(Error::Forbidden(
            "a task token cannot read the audit log".into(),
        ));
    }
    Ok(app
        .store
        .list_audit(AuditFilter {
            workspace_ids,
            action,
            before,
            limit,
        })
        .await?
        .into_iter()
        .map(info)
        .collect())
}
