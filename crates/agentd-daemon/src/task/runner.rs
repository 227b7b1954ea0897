//! [`TaskRunner`]: what running tasks share — the slots (max concurrent tasks), the
//! tasks running now and how to stop each, the durable outbox, the repository cache and
//! the pollers' wake-ups. It knows which tasks this daemon *holds*: the ones whose agent
//! runs and the ones it still owes a report for; heartbeats and recover-orphans say so
//! to the server, so a lease is never lost on a task the daemon still has.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use agentd_proto::TaskStatus;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::execenv::RepoCache;
use crate::fsutil::lock;
use crate::task::outbox::Outbox;

/// How to stop one running task, and why it was stopped.
#[derive(Clone)]
pub struct TaskControl {
    pub stop: CancellationToken,
    /// Set (once) when the server said the task is over: its status then
    /// ([`TaskStatus::Unknown`] for a task deleted on the server).
    pub ended: Arc<OnceLock<TaskStatus>>,
}

pub struct TaskRunner {
    slots: Arc<Semaphore>,
    /// Task id → its control, for every task whose pipeline runs now.
    ///
    /// **Invariant:** an entry exists exactly from [`TaskRunner::begin`] to
    /// [`TaskRunner::end`] of that task; the lock is never held across an `.await`.
    active: Mutex<HashMap<String, TaskControl>>,
    /// A previous run's task directory (by name) → the follow-up task continuing in its
    /// checkout now. Entries go when that task ends.
    checkouts: Mutex<HashMap<String, String>>,
    /// Parent of every running task's token. Cancelled after the shutdown grace, not at
    /// the signal, so running agents get time to finish.
    task_root: CancellationToken,
    outbox: OnceLock<Arc<Outbox>>,
    repo_cache: RepoCache,
    /// Bumped by WS `task_available` (and on WS connect): wakes every poller now.
    wakeups: watch::Sender<u64>,
}

impl TaskRunner {
    pub fn new(max_concurrent_tasks: usize) -> TaskRunner {
        TaskRunner {
            slots: Arc::new(Semaphore::new(max_concurrent_tasks.max(1))),
            active: Mutex::default(),
            checkouts: Mutex::default(),
            task_root: CancellationToken::new(),
            outbox: OnceLock::new(),
            repo_cache: RepoCache::default(),
            wakeups: watch::channel(0).0,
        }
    }

    /// The slot pool pollers take a permit from before they claim.
    pub fn slots(&self) -> Arc<Semaphore> {
        Arc::clone(&self.slots)
    }

    /// Wakes every poller (WS `task_available`, WS connect).
    pub fn wake_pollers(&self) {
        self.wakeups.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn subscribe_wakeups(&self) -> watch::Receiver<u64> {
        self.wakeups.subscribe()
    }

    /// Sets the durable outbox (once, at start; tests may run without one).
    pub fn set_outbox(&self, outbox: Arc<Outbox>) {
        let _ = self.outbox.set(outbox);
    }

    pub fn outbox(&self) -> Option<&Arc<Outbox>> {
        self.outbox.get()
    }

    pub fn repo_cache(&self) -> &RepoCache {
        &self.repo_cache
    }

    /// Registers a task whose pipeline starts now.
    pub fn begin(&self, task_id: &str) -> TaskControl {
        let control = TaskControl {
            stop: self.task_root.child_token(),
            ended: Arc::default(),
        };
        lock(&self.active).insert(task_id.to_string(), control.clone());
        control
    }

    /// The task's pipeline ended.
    pub fn end(&self, task_id: &str) {
        lock(&self.active).remove(task_id);
        lock(&self.checkouts).retain(|_, user| user != task_id);
    }

    /// `task_id` continues in the checkout of task directory `dir`: `false` when another
    /// run uses it now (its own task, or another follow-up).
    pub fn claim_checkout(&self, dir: &str, task_id: &str) -> bool {
        if dir != task_id && lock(&self.active).contains_key(dir) {
            return false;
        }
        let mut checkouts = lock(&self.checkouts);
        match checkouts.get(dir) {
            Some(user) if user != task_id => false,
            _ => {
                checkouts.insert(dir.to_string(), task_id.to_string());
                true
            }
        }
    }

    /// Whether task directory `dir` is in use: its task runs, or a follow-up runs in its
    /// checkout (GC never touches it then).
    pub fn dir_in_use(&self, dir: &str) -> bool {
        lock(&self.active).contains_key(dir) || lock(&self.checkouts).contains_key(dir)
    }

    /// The server says this task is over (`status`): stops its agent if it runs here.
    /// Returns whether it did.
    pub fn task_over(&self, task_id: &str, status: TaskStatus) -> bool {
        let Some(control) = lock(&self.active).get(task_id).cloned() else {
            return false;
        };
        if control.stop.is_cancelled() {
            return true;
        }
        let _ = control.ended.set(status);
        tracing::info!(
            task_id,
            status = status.as_str(),
            "the server ended the task; stopping its agent"
        );
        control.stop.cancel();
        true
    }

    pub fn is_active(&self, task_id: &str) -> bool {
        lock(&self.active).contains_key(task_id)
    }

    pub fn active_count(&self) -> usize {
        lock(&self.active).len()
    }

    /// Every task this daemon holds, sorted: running here, or owed a report in the
    /// outbox (its result is on its way, so it is no orphan).
    pub fn held_task_ids(&self) -> Vec<String> {
        let mut ids: HashSet<String> = lock(&self.active).keys().cloned().collect();
        if let Some(ob) = self.outbox.get() {
            ids.extend(ob.owed_tasks());
        }
        let mut ids: Vec<String> = ids.into_iter().collect();
        ids.sort();
        ids
    }

    /// Stops every running task (the shutdown grace is over).
    pub fn stop_all(&self) {
        self.task_root.cancel();
    }
}
