//! The live event stream: every change a board should show (issues, comments, tasks and
//! their messages, runtimes, agents) is published here as a [`WorkspaceEvent`], and each
//! `GET /api/v1/workspaces/{id}/events` subscriber receives those of its workspace.
//!
//! **Events are hints; the REST API is the truth.** An event names what changed, never
//! the full new state, so a client that missed some (a slow reader lags behind the
//! bounded channel and gets `resync`) loses nothing by refetching.

use agentd_proto::api::WorkspaceEvent;
use tokio::sync::broadcast;

/// How many events a subscriber may fall behind before it is told to resync.
pub(crate) const CAPACITY: usize = 1024;

pub struct Events {
    tx: broadcast::Sender<WorkspaceEvent>,
}

impl Default for Events {
    fn default() -> Events {
        Events {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl Events {
    /// Publishes `event`; a no-op when nobody listens.
    pub fn publish(&self, event: WorkspaceEvent) {
        let _ = self.tx.send(event);
    }

    /// An event of `kind` in `workspace_id`; fill the ids with the builder methods.
    pub fn event(kind: &str, workspace_id: &str) -> WorkspaceEvent {
        WorkspaceEvent {
            kind: kind.to_string(),
            workspace_id: workspace_id.to_string(),
            ..WorkspaceEvent::default()
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<WorkspaceEvent> {
        self.tx.subscribe()
    }
}
