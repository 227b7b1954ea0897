//! [`RecoveryGate`]: the coalescing state of re-registrations, and the one call that goes
//! through it ([`RecoveryGate::run`]: claim the slot → register → record the outcome),
//! used by both self-healing (`recovery.rs`) and the workspace-sync safety net.
//! Timestamps are `tokio::time::Instant`s passed in, so tests drive it deterministically.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::fsutil::lock;

/// A peer's claimed slot blocks other registers of the workspace this long.
pub const REREGISTER_COALESCE_WINDOW: Duration = Duration::from_secs(30);
/// After a failed register, no new register of the workspace for this long.
pub const REREGISTER_FAILURE_BACKOFF: Duration = Duration::from_secs(60);

/// **Invariant:** read and written only under its mutex, as one unit per decision
/// (`try_claim` reads and writes both maps atomically); never held across an `.await`.
#[derive(Debug, Default)]
struct Slots {
    /// Runtime ids whose recovery is running now.
    inflight: HashSet<String>,
    /// Workspace → earliest time a new register may start. In the future means "a peer
    /// holds the slot" or "a failure backoff runs".
    next_attempt: HashMap<String, Instant>,
    /// Workspace → completion time of the last *successful* register.
    last_completed_at: HashMap<String, Instant>,
}

#[derive(Debug, Default)]
pub struct RecoveryGate {
    slots: Mutex<Slots>,
}

/// Removes a runtime id from the in-flight set when its recovery ends, however it ends.
pub struct Inflight<'a> {
    gate: &'a RecoveryGate,
    runtime_id: String,
}

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        lock(&self.gate.slots).inflight.remove(&self.runtime_id);
    }
}

impl RecoveryGate {
    /// Marks a runtime's recovery as running; `None` if one already runs for it.
    pub fn enter(&self, runtime_id: &str) -> Option<Inflight<'_>> {
        lock(&self.slots)
            .inflight
            .insert(runtime_id.to_string())
            .then(|| Inflight {
                gate: self,
                runtime_id: runtime_id.to_string(),
            })
    }

    /// Decides, atomically, whether a caller that entered at `entry_at` and reached the
    /// gate at `now` may register the workspace. Bails while a peer holds the slot or a
    /// failure backoff runs, and when a peer's register succeeded after we entered (same
    /// wave, already covered); otherwise claims the slot for the coalesce window.
    pub fn try_claim(&self, workspace_id: &str, entry_at: Instant, now: Instant) -> bool {
        let mut g = lock(&self.slots);
        if g.next_attempt.get(workspace_id).is_some_and(|t| now < *t) {
            return false;
        }
        if g.last_completed_at
            .get(workspace_id)
            .is_some_and(|t| *t >= entry_at)
        {
            return false;
        }
        g.next_attempt
            .insert(workspace_id.to_string(), now + REREGISTER_COALESCE_WINDOW);
        true
    }

    /// Records how a register ended. Success stamps `last_completed_at` and frees the slot
    /// (a genuinely later deletion may register at once); failure arms the failure backoff
    /// and stamps nothing (a failed register covered nothing, so a same-wave straggler may
    /// retry once the backoff has passed).
    pub fn record(&self, workspace_id: &str, completed_at: Instant, failed: bool) {
        let mut g = lock(&self.slots);
        if failed {
            g.next_attempt.insert(
                workspace_id.to_string(),
                completed_at + REREGISTER_FAILURE_BACKOFF,
            );
        } else {
            g.last_completed_at
                .insert(workspace_id.to_string(), completed_at);
            g.next_attempt.remove(workspace_id);
        }
    }

    /// The whole protocol in one call: claims the slot for a caller that entered at
    /// `entry_at`, runs `register`, records its outcome. `None`: gated (a peer's register
    /// covers it, or a backoff runs), and `register` never ran.
    pub async fn run<T, E>(
        &self,
        workspace_id: &str,
        entry_at: Instant,
        register: impl Future<Output = Result<T, E>>,
    ) -> Option<Result<T, E>> {
        if !self.try_claim(workspace_id, entry_at, Instant::now()) {
            return None;
        }
        let result = register.await;
        self.record(workspace_id, Instant::now(), result.is_err());
        Some(result)
    }

    /// How many runtimes are being recovered now.
    pub fn recovering(&self) -> usize {
        lock(&self.slots).inflight.len()
    }

    /// When the next register of a workspace may start, if gated.
    pub fn next_attempt(&self, workspace_id: &str) -> Option<Instant> {
        lock(&self.slots).next_attempt.get(workspace_id).copied()
    }

    /// When the last successful register of a workspace completed.
    pub fn last_completed(&self, workspace_id: &str) -> Option<Instant> {
        lock(&self.slots)
            .last_completed_at
            .get(workspace_id)
            .copied()
    }

    /// Tests move a backoff's end to inject the passage of time.
    #[cfg(test)]
    pub(crate) fn set_next_attempt(&self, workspace_id: &str, at: Instant) {
        lock(&self.slots)
            .next_attempt
            .insert(workspace_id.to_string(), at);
    }
}
