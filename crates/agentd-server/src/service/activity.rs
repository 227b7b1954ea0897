//! An issue's activity (`IssueDetail.activity`): one list, oldest first, of everything
//! that happened to it and who did it. Three sources, merged here and nowhere else:
//! - `issue_events` (written in the transaction of each change): its creation, status
//!   changes (by a member, an agent through its task token, or the server when the work
//!   moved it), (re)assignments and edits;
//! - its comments (the author is the actor);
//! - its tasks' own rows: each run queued (by `queued_by`, else the server), retried
//!   (a retry also has its `task_queued`), started, completed, failed (the agent, or the
//!   server when it failed the run itself) and cancelled (by `cancelled_by`).
//!
//! Entries of the same millisecond keep cause before effect: creation, then a person's
//! change, a comment, cancelled runs, queued runs, started runs, ended runs, and last
//! the status moves the server made because of them; otherwise the order they were
//! recorded in.

use agentd_proto::api::{ActivityEntry, ActivityKind, Actor, ActorKind, TaskInfo};
use agentd_proto::{FailureReason, TaskStatus};
use std::collections::HashSet;

use crate::service::rfc3339;
use crate::store::{CommentRow, EventRow, IssueRow, TaskRow, system_actor};

/// The actor of a comment: its author (`admins`: the ids of admin tokens among the
/// authors, whose comments say `member` like any person's).
fn comment_actor(c: &CommentRow, admins: &HashSet<String>) -> Actor {
    match c.author_type.as_str() {
        "member" if admins.contains(&c.author_id) => Actor {
            kind: ActorKind::Admin,
            name: "admin".into(),
        },
        "member" => Actor {
            kind: ActorKind::Member,
            name: c.author_name.clone(),
        },
        "agent" => Actor {
            kind: ActorKind::Agent,
            name: c.author_name.clone(),
        },
        "forge" => Actor {
            kind: ActorKind::Forge,
            name: c.author_name.clone(),
        },
        _ => system_actor(),
    }
}

fn parse_kind(s: &str) -> ActivityKind {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .unwrap_or(ActivityKind::Unknown)
}

/// Where an entry goes among those of the same millisecond (cause before effect).
fn rank(kind: ActivityKind, actor: &Actor) -> u8 {
    match kind {
        ActivityKind::Created => 0,
        ActivityKind::StatusChanged if actor.kind == ActorKind::System => 7,
        ActivityKind::Edited | ActivityKind::Assigned | ActivityKind::StatusChanged => 1,
        ActivityKind::Comment => 2,
        ActivityKind::TaskCancelled => 3,
        ActivityKind::TaskRetried | ActivityKind::TaskQueued => 4,
        ActivityKind::TaskStarted => 5,
        _ => 6,
    }
}

/// The failure reasons of runs the server failed itself (no agent reported them).
fn failed_by_server(r: Option<FailureReason>) -> bool {
    matches!(
        r,
        Some(FailureReason::Orphaned | FailureReason::RuntimeOffline)
    )
}

/// The issue's activity from its events, comments and tasks (`infos` are the tasks as
/// users see them, by id; `admins` the admin tokens among the comments' authors).
pub fn merge(
    issue: &IssueRow,
    events: Vec<EventRow>,
    comments: &[CommentRow],
    admins: &HashSet<String>,
    tasks: &[TaskRow],
    infos: &[TaskInfo],
) -> Vec<ActivityEntry> {
    let mut out: Vec<(i64, u8, ActivityEntry)> = Vec::new();
    let mut push = |at: i64, entry: ActivityEntry| {
        out.push((at, rank(entry.kind, &entry.actor), entry));
    };
    if !events.iter().any(|e| e.kind == "created") {
        // An issue made before events were recorded.
        push(
            issue.created_at,
            ActivityEntry {
                at: rfc3339(issue.created_at),
                kind: ActivityKind::Created,
                actor: system_actor(),
                ..Default::default()
            },
        );
    }
    for e in events {
        push(
            e.created_at,
            ActivityEntry {
                at: rfc3339(e.created_at),
                kind: parse_kind(&e.kind),
                actor: e.actor,
                from_status: e.from_status,
                to_status: e.to_status,
                detail: e.detail,
                ..Default::default()
            },
        );
    }
    for c in comments {
        push(
            c.created_at,
            ActivityEntry {
                at: rfc3339(c.created_at),
                kind: ActivityKind::Comment,
                actor: comment_actor(c, admins),
                comment: Some(super::comment_info(c)),
                ..Default::default()
            },
        );
    }
    for t in tasks {
        let info = infos
            .iter()
            .find(|i| i.id == t.id)
            .cloned()
            .unwrap_or_else(|| super::task_info(t));
        let agent = Actor {
            kind: ActorKind::Agent,
            name: info.agent_name.clone(),
        };
        let entry = |at: i64, kind: ActivityKind, actor: Actor| ActivityEntry {
            at: rfc3339(at),
            kind,
            actor,
            task: Some(Box::new(info.clone())),
            ..Default::default()
        };
        let queued_by = t.queued_by.clone().unwrap_or_else(system_actor);
        if t.parent_task_id.is_some() {
            push(
                t.created_at,
                entry(t.created_at, ActivityKind::TaskRetried, queued_by.clone()),
            );
        }
        push(
            t.created_at,
            entry(t.created_at, ActivityKind::TaskQueued, queued_by),
        );
        if let Some(at) = t.started_at {
            push(at, entry(at, ActivityKind::TaskStarted, agent.clone()));
        }
        let ended = t.completed_at.unwrap_or(t.created_at);
        match t.status {
            TaskStatus::Completed => {
                push(ended, entry(ended, ActivityKind::TaskCompleted, agent));
            }
            TaskStatus::Failed => {
                let by = if failed_by_server(t.failure_reason) {
                    system_actor()
                } else {
                    agent
                };
                push(ended, entry(ended, ActivityKind::TaskFailed, by));
            }
            TaskStatus::Cancelled => {
                let by = t.cancelled_by.clone().unwrap_or_else(system_actor);
                push(ended, entry(ended, ActivityKind::TaskCancelled, by));
            }
            _ => {}
        }
    }
    // A stable sort: the same (time, rank) keeps the order above.
    out.sort_by_key(|(at, rank, _)| (*at, *rank));
    out.into_iter().map(|(_, _, e)| e).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_system_status_move_follows_the_run_that_caused_it() {
        let system = system_actor();
        let member = Actor {
            kind: ActorKind::Member,
            name: "ann".into(),
        };
        assert!(
            rank(ActivityKind::TaskStarted, &system) < rank(ActivityKind::StatusChanged, &system)
        );
        assert!(
            rank(ActivityKind::StatusChanged, &member) < rank(ActivityKind::TaskQueued, &system)
        );
        assert!(
            rank(ActivityKind::TaskCancelled, &system) < rank(ActivityKind::TaskQueued, &member)
        );
    }
}
