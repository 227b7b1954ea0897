//! The live event stream: every change a board should show (issues, comments, tasks and
//! their messages, runtimes, agents) is published here as a [`WorkspaceEvent`], and each
//! `GET /api/v1/workspaces/{id}/events` subscriber receives those of its workspace.
//!
//! **Events are hints; the REST API is the truth.** An event names what changed, never
//! the full new state, so a client that missed some (a slow reader lags behind the
//! bounded channel and gets `resync`) loses nothing by refetching.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use agentd_proto::api::WorkspaceEvent;
use tokio::sync::broadcast;

/// How many events a subscriber may fall behind before it is told to resync.
pub(crate) const CAPACITY: usize = 1024;

pub struct Events {
    tx: broadcast::Sender<WorkspaceEvent>,
    /// Open streams per holder (a token id), for the per-token cap.
    ///
    /// Invariant: each count is the number of live [`StreamSlot`]s of that key (a slot
    /// decrements on drop; a key is removed at zero). Locked only for a map update, never
    /// across an `.await`.
    streams: Arc<Mutex<HashMap<String, usize>>>,
}

impl Default for Events {
    fn default() -> Events {
        Events {
            tx: broadcast::channel(CAPACITY).0,
            streams: Arc::default(),
        }
    }
}

/// One open stream of a holder, counted against its cap until dropped.
#[derive(Debug)]
pub struct StreamSlot {
    key: String,
    streams: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = streams.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                streams.remove(&self.key);
            }
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

    /// A slot for one more stream of `key`, or `None` when `key` already holds `cap`.
    pub fn open_stream(&self, key: &str, cap: usize) -> Option<StreamSlot> {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let n = streams.entry(key.to_string()).or_default();
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            key: key.to_string(),
            streams: self.streams.clone(),
        })
    }
}
