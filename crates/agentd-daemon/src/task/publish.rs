//! Publishing a finished run's work: what it changed (its diff) and its branch, pushed to
//! the workspace's repository.
//!
//! The work dir, `.git` included, is the agent's. Everything git does there runs in the
//! run's git sandbox ([`Daemon::git_sandbox`]): the commit, the diff, and a bundle of the
//! new commits written to `<task dir>/out`, a dir the agent never saw. The daemon then
//! fetches that bundle into its own mirror and pushes from the mirror with the machine's
//! git credentials, outside any sandbox: no config, hook or filter the agent wrote runs
//! there, and the agent never holds push credentials.
//!
//! A push that fails ends the task as `push_failed` with git's message. The commit stays
//! in the mirror (`refs/agentd/tasks/<id>`) and `<task dir>/push.json` says where it goes,
//! so `daemon:task_push` (from `agentd task push ID`) pushes it again and reports
//! `POST …/pushed`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use agentd_proto::{ProgressRequest, PushedBranch, PushedRequest, Task, TaskDiff};
use serde::{Deserialize, Serialize};

use super::outbox::Endpoint;
use super::to_body;
use crate::daemon::Daemon;
use crate::execenv::{self, RepoCheckout, TaskEnv};

/// What publishing a run gave.
#[derive(Debug, Default)]
pub(super) struct Published {
    pub diff: Option<TaskDiff>,
    pub pushed: Option<PushedBranch>,
}

/// The push failed: git's message, and the diff that was not pushed.
#[derive(Debug)]
pub(super) struct PushFailed {
    pub error: String,
    pub diff: Option<TaskDiff>,
}

/// `<task dir>/push.json`: where a task's commit goes, for a retried push.
#[derive(Debug, Serialize, Deserialize)]
struct SavedPush {
    repo: RepoCheckout,
    branch: String,
    commit: String,
}

const SAVED_PUSH: &str = "push.json";

impl Daemon {
    /// The directory the git sandbox may write bundles to (never visible to the agent).
    pub(super) fn publish_dir(env: &TaskEnv) -> PathBuf {
        env.dir.join("out")
    }

    /// The run's diff, when it changed anything (for a failed run's report too).
    pub(super) async fn run_diff(&self, env: &TaskEnv, wrap: &[OsString]) -> Option<TaskDiff> {
        let head = execenv::head_commit(env, wrap).await.ok().flatten()?;
        if env.base_commit.as_deref() == Some(head.as_str()) {
            return None;
        }
        diff_at(env, &head, wrap).await
    }

    /// Diffs the run and pushes its branch (see the module docs).
    pub(super) async fn publish(
        &self,
        task: &Task,
        env: &TaskEnv,
        wrap: &[OsString],
    ) -> Result<Published, PushFailed> {
        let Some(head) = execenv::head_commit(env, wrap).await.ok().flatten() else {
            return Ok(Published::default());
        };
        if env.base_commit.as_deref() == Some(head.as_str()) {
            return Ok(Published::default());
        }
        let diff = diff_at(env, &head, wrap).await;
        let Some(repo) = &env.repo else {
            return Ok(Published { diff, pushed: None });
        };
        let failed = |what: &str, e: execenv::EnvError, diff: &Option<TaskDiff>| PushFailed {
            error: format!("push to {} failed ({what}): {e}", repo.url),
            diff: diff.clone(),
        };
        let bundle = Self::publish_dir(env).join("task.bundle");
        if let Err(e) = execenv::bundle(env, &bundle, wrap).await {
            return Err(failed("bundling the run's commits", e, &diff));
        }
        if let Err(e) = execenv::fetch_bundle(repo, &bundle, &task.id, &head).await {
            return Err(failed("taking the run's commits into the mirror", e, &diff));
        }
        let _ = std::fs::remove_file(&bundle);
        let saved = SavedPush {
            repo: repo.clone(),
            branch: env.branch.clone(),
            commit: head.clone(),
        };
        if let Ok(bytes) = serde_json::to_vec(&saved)
            && let Err(e) = crate::fsutil::write_atomic(&env.dir.join(SAVED_PUSH), &bytes)
        {
            tracing::warn!(task_id = %task.id, error = %e, "cannot record the push for a retry");
        }
        match execenv::push(repo, &task.id, &env.branch).await {
            Ok(()) => {
                tracing::info!(task_id = %task.id, branch = %env.branch, url = %repo.url, "pushed the task's branch");
                Ok(Published {
                    diff,
                    pushed: Some(PushedBranch {
                        remote_url: repo.url.clone(),
                        branch: env.branch.clone(),
                        commit: head,
                    }),
                })
            }
            Err(e) => Err(failed("git push", e, &diff)),
        }
    }

    /// Pushes a finished task's kept commit again (`daemon:task_push`), reporting
    /// `pushed` or, when it fails again, a progress message with git's words.
    pub fn spawn_push_retry(self: &Arc<Self>, task_id: &str) {
        if !execenv::valid_task_id(task_id) {
            tracing::warn!(task_id, "ignoring a push request for an invalid task id");
            return;
        }
        let this = Arc::clone(self);
        let id = task_id.to_string();
        self.tracker.spawn(async move {
            let file = this.cfg.data_dir.join("tasks").join(&id).join(SAVED_PUSH);
            match retry_push(&file, &id).await {
                Ok(pushed) => {
                    tracing::info!(task_id = %id, branch = %pushed.branch, "pushed the task's branch on request");
                    this.report(&id, Endpoint::Pushed, to_body(PushedRequest { pushed }));
                }
                Err(why) => {
                    tracing::warn!(task_id = %id, error = %why, "push retry failed");
                    this.report(
                        &id,
                        Endpoint::Progress,
                        to_body(ProgressRequest {
                            summary: format!("push failed again: {why}"),
                            step: 0,
                            total: 0,
                        }),
                    );
                }
            }
        });
    }
}

/// The diff `base..head` of the run (`None`, logged, when git could not make it: the
/// report goes out without one rather than not at all).
async fn diff_at(env: &TaskEnv, head: &str, wrap: &[OsString]) -> Option<TaskDiff> {
    match execenv::diff(env, head, wrap).await {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!(workdir = %env.workdir.display(), error = %e, "cannot compute the run's diff");
            None
        }
    }
}

async fn retry_push(file: &Path, task_id: &str) -> Result<PushedBranch, String> {
    let text = tokio::fs::read(file).await.map_err(|e| {
        format!(
            "nothing to push on this machine ({}: {e}; finished task dirs are removed after a day)",
            file.display()
        )
    })?;
    let saved: SavedPush = serde_json::from_slice(&text)
        .map_err(|e| format!("{} is not a push record: {e}", file.display()))?;
    execenv::push(&saved.repo, task_id, &saved.branch)
        .await
        .map_err(|e| format!("push to {}: {e}", saved.repo.url))?;
    Ok(PushedBranch {
        remote_url: saved.repo.url,
        branch: saved.branch,
        commit: saved.commit,
    })
}
