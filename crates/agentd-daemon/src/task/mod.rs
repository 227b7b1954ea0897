//! Running claimed tasks: claim → start → prepare the environment → run the agent →
//! report messages, usage and session as they happen → complete or fail.
//!
//! Every report goes through the durable [`outbox`]. Each run ends in exactly one final
//! report with a reason (`timeout`, `inactivity_timeout`, `cancelled`, `agent_error`,
//! `agent_not_found`, `environment_error`, `repo_not_allowed`, `disk_full`,
//! `daemon_shutdown`): a task is never left silently running.

pub mod outbox;
pub mod prompt;

use std::sync::Arc;
use std::time::Duration;

use agentd_proto::{
    CompleteRequest, FailRequest, FailureReason, MessagesRequest, SessionRequest, Task,
    TaskMessage, TaskStatus, UsageRequest,
};
use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::ApiError;
use crate::api::http::until_cancelled;
use crate::backend::{self, AgentEvent, Line, RunSpec};
use crate::daemon::{Daemon, lock};
use crate::execenv::{self, EnvError};
use crate::process::{AgentProcess, SpawnOptions, command_for};
use outbox::Endpoint;

/// The most text one message field carries; a tool that printed more is cut, with a
/// note saying how much, so one huge tool result can't exceed the server's body limit.
const MAX_FIELD_BYTES: usize = 64 * 1024;

fn cap_text(s: String) -> String {
    if s.len() <= MAX_FIELD_BYTES {
        return s;
    }
    let mut cut = MAX_FIELD_BYTES;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}\n… [truncated {} bytes]", &s[..cut], s.len() - cut)
}

fn cap_message(mut m: backend::MessageDraft) -> backend::MessageDraft {
    m.content = m.content.map(cap_text);
    m.output = m.output.map(cap_text);
    if let Some(input) = &m.input {
        let text = input.to_string();
        if text.len() > MAX_FIELD_BYTES {
            m.input = Some(serde_json::json!({
                "truncated_bytes": text.len(),
                "preview": cap_text(text.chars().take(4096).collect()),
            }));
        }
    }
    m
}

/// How a run failed.
#[derive(Debug)]
struct Failure {
    reason: FailureReason,
    error: String,
    session_id: Option<String>,
    work_dir: Option<String>,
}

impl Failure {
    fn new(reason: FailureReason, error: impl Into<String>) -> Failure {
        Failure {
            reason,
            error: error.into(),
            session_id: None,
            work_dir: None,
        }
    }
}

impl From<EnvError> for Failure {
    fn from(e: EnvError) -> Failure {
        let reason = match &e {
            EnvError::RepoNotAllowed(_) => FailureReason::RepoNotAllowed,
            e if e.is_disk_full() => FailureReason::DiskFull,
            _ => FailureReason::EnvironmentError,
        };
        Failure::new(reason, format!("preparing the task environment: {e}"))
    }
}

/// Why the pipeline stopped the agent early.
#[derive(Debug, Clone, Copy)]
enum StopReason {
    Cancelled,
    Timeout,
    Inactivity,
    Shutdown,
}

impl Daemon {
    /// Starts a claimed task on the tracker; it holds `permit` until it ends.
    pub fn spawn_task(self: &Arc<Self>, task: Task, permit: OwnedSemaphorePermit) {
        let token = self.task_root.child_token();
        lock(&self.active_tasks).insert(task.id.clone(), token.clone());
        let this = Arc::clone(self);
        self.tracker.spawn(async move {
            let _permit = permit;
            let id = task.id.clone();
            this.execute(task, token).await;
            lock(&this.active_tasks).remove(&id);
        });
    }

    /// Stops a running task's agent (WS `task_cancelled`, status poll, shutdown).
    pub fn cancel_task(&self, task_id: &str, why: &str) {
        if let Some(token) = lock(&self.active_tasks).get(task_id) {
            tracing::info!(task_id, why, "stopping task");
            token.cancel();
        }
    }

    /// Queues a report durably (or sends it directly when no outbox is open). A failed
    /// write (disk full) is logged and the report sent directly: it is not dropped.
    fn report(self: &Arc<Self>, task_id: &str, endpoint: Endpoint, body: Value) {
        if let Some(ob) = self.outbox.get() {
            match ob.push(task_id, endpoint, body.clone()) {
                Ok(()) => return,
                Err(e) => {
                    tracing::error!(task_id, error = %e, "cannot write the outbox (disk full?); sending the report directly")
                }
            }
        }
        let this = Arc::clone(self);
        let path = format!("/api/daemon/tasks/{task_id}/{}", endpoint.as_str());
        self.tracker.spawn(async move {
            if let Err(e) = until_cancelled(&this.root, this.client.post_value(&path, &body)).await
            {
                tracing::warn!(path, error = %e, "task report failed");
            }
        });
    }

    async fn execute(self: &Arc<Self>, task: Task, cancel: CancellationToken) {
        match self.start_with_retry(&task.id).await {
            Ok(()) => {}
            Err(ApiError::TaskNotFound { .. }) => {
                tracing::warn!(task_id = %task.id, "task vanished before it started");
                return;
            }
            Err(e) => {
                tracing::warn!(task_id = %task.id, error = %e, "start report failed; running anyway")
            }
        }
        let result = self.run_task(&task, &cancel).await;
        let task_dir = self.cfg.data_dir.join("tasks").join(&task.id);
        if task_dir.is_dir() {
            let _ = std::fs::write(task_dir.join(crate::gc::DONE_MARKER), "");
        }
        match result {
            Ok(done) => {
                tracing::info!(task_id = %task.id, "task completed");
                self.report(
                    &task.id,
                    Endpoint::Complete,
                    serde_json::to_value(done).unwrap_or_default(),
                );
            }
            Err(f) => {
                tracing::warn!(task_id = %task.id, reason = ?f.reason, error = %f.error, "task failed");
                let req = FailRequest {
                    error: f.error,
                    session_id: f.session_id,
                    work_dir: f.work_dir,
                    failure_reason: Some(f.reason),
                };
                self.report(
                    &task.id,
                    Endpoint::Fail,
                    serde_json::to_value(req).unwrap_or_default(),
                );
            }
        }
    }

    async fn start_with_retry(&self, task_id: &str) -> Result<(), ApiError> {
        let mut last = None;
        for delay in [0u64, 200, 1000] {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            match until_cancelled(&self.root, self.client.start_task(task_id)).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(ApiError::Cancelled))
    }

    fn allowed_repos(&self, workspace_id: &str) -> Vec<String> {
        lock(&self.state)
            .workspaces
            .get(workspace_id)
            .map(|w| w.repos.iter().map(|r| r.url.clone()).collect())
            .unwrap_or_default()
    }

    async fn run_task(
        self: &Arc<Self>,
        task: &Task,
        cancel: &CancellationToken,
    ) -> Result<CompleteRequest, Failure> {
        let provider = self
            .runtime(&task.runtime_id)
            .map(|r| r.provider)
            .unwrap_or_default();
        let agent = self.cfg.agents.iter().find(|a| a.provider == provider);
        let (Some(agent), Some(backend)) = (agent, backend::for_provider(&provider)) else {
            return Err(Failure::new(
                FailureReason::AgentNotFound,
                format!(
                    "runtime {} (provider {provider:?}) has no agent CLI on this machine",
                    task.runtime_id
                ),
            ));
        };
        let workspace = if task.workspace_id.is_empty() {
            self.workspace_of(&task.runtime_id).unwrap_or_default()
        } else {
            task.workspace_id.clone()
        };
        let env = execenv::prepare(
            &self.cfg.data_dir,
            &self.repo_cache,
            task,
            &self.allowed_repos(&workspace),
        )
        .await?;
        let work_dir = env.workdir.display().to_string();
        self.report(
            &task.id,
            Endpoint::Session,
            serde_json::to_value(SessionRequest {
                session_id: None,
                work_dir: Some(work_dir.clone()),
            })
            .unwrap_or_default(),
        );

        let spec = RunSpec {
            prompt: prompt::build(task),
            workdir: env.workdir.clone(),
            model: Some(task.agent.model.clone()).filter(|m| !m.is_empty()),
            custom_args: task.agent.custom_args.clone(),
            prior_session_id: Some(task.prior_session_id.clone()).filter(|s| !s.is_empty()),
        };
        let cmd_spec = backend.command(&spec);
        let mut cmd = command_for(&agent.path, &cmd_spec, &env.workdir);
        for (k, v) in &self.cfg.agent_env {
            cmd.env(k, v);
        }
        for (k, v) in execenv::filter_env(&task.agent.custom_env) {
            cmd.env(k, v);
        }
        if let Some(exe_dir) = self.cfg.agentd_exe.as_ref().and_then(|p| p.parent()) {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let mut dirs = vec![exe_dir.to_path_buf()];
            dirs.extend(std::env::split_paths(&path));
            if let Ok(joined) = std::env::join_paths(dirs) {
                cmd.env("PATH", joined);
            }
        }
        cmd.env("AGENTD_SERVER_URL", &self.cfg.server_url)
            .env("AGENTD_TOKEN", &task.task_token)
            .env("AGENTD_TASK_ID", &task.id)
            .env("AGENTD_ISSUE_ID", &task.issue_id);
        let mut proc = AgentProcess::spawn(cmd, SpawnOptions::default()).map_err(|e| {
            let reason = if e.kind() == std::io::ErrorKind::NotFound {
                FailureReason::AgentNotFound
            } else {
                FailureReason::AgentError
            };
            Failure::new(
                reason,
                format!("cannot start {}: {e}", agent.path.display()),
            )
        })?;
        tracing::info!(task_id = %task.id, pid = proc.pid(), provider, workdir = %work_dir, "agent started");

        let mut parser = backend.parser(&spec);
        let mut seq: i64 = 0;
        let mut batch: Vec<TaskMessage> = Vec::new();
        let mut batch_deadline: Option<Instant> = None;
        let mut session_id: Option<String> = None;
        let started = Instant::now();
        let run_deadline = started + self.cfg.task_timeout;
        let mut last_output = Instant::now();
        let mut stop: Option<StopReason> = None;
        let mut status_poll = tokio::time::interval(self.cfg.status_poll_interval);
        status_poll.tick().await;

        let mut handle_events = |events: Vec<AgentEvent>,
                                 batch: &mut Vec<TaskMessage>,
                                 batch_deadline: &mut Option<Instant>,
                                 session_id: &mut Option<String>| {
            for ev in events {
                match ev {
                    AgentEvent::Message(m) => {
                        seq += 1;
                        batch.push(cap_message(m).into_message(seq));
                        batch_deadline
                            .get_or_insert(Instant::now() + self.cfg.message_batch_interval);
                    }
                    AgentEvent::SessionId(id) => {
                        if session_id.as_deref() != Some(id.as_str()) {
                            *session_id = Some(id.clone());
                            self.report(
                                &task.id,
                                Endpoint::Session,
                                serde_json::to_value(SessionRequest {
                                    session_id: Some(id),
                                    work_dir: Some(work_dir.clone()),
                                })
                                .unwrap_or_default(),
                            );
                        }
                    }
                }
            }
        };
        let flush = |batch: &mut Vec<TaskMessage>, batch_deadline: &mut Option<Instant>| {
            *batch_deadline = None;
            if !batch.is_empty() {
                let req = MessagesRequest {
                    messages: std::mem::take(batch),
                };
                self.report(
                    &task.id,
                    Endpoint::Messages,
                    serde_json::to_value(req).unwrap_or_default(),
                );
            }
        };

        loop {
            let inactivity_deadline = last_output + self.cfg.inactivity_timeout;
            tokio::select! {
                line = proc.next_line() => {
                    let Some(line) = line else { break };
                    last_output = Instant::now();
                    let events = match line {
                        Line::Text(t) if t.trim().is_empty() => Vec::new(),
                        Line::Text(t) => parser.line(&t),
                        Line::TooLong { head, max } => vec![AgentEvent::Message(backend::MessageDraft::error(
                            format!("agent printed a line longer than {max} bytes (starting {head:?}); skipped"),
                        ))],
                    };
                    handle_events(events, &mut batch, &mut batch_deadline, &mut session_id);
                    if batch.len() >= self.cfg.message_batch_max {
                        flush(&mut batch, &mut batch_deadline);
                    }
                }
                _ = async { match batch_deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                    flush(&mut batch, &mut batch_deadline);
                }
                _ = cancel.cancelled(), if stop.is_none() => {
                    stop = Some(if self.root.is_cancelled() { StopReason::Shutdown } else { StopReason::Cancelled });
                    proc.terminate(self.cfg.kill_grace);
                }
                _ = status_poll.tick(), if stop.is_none() => {
                    let cancelled = match self.client.task_status(&task.id).await {
                        Ok(s) => s.status == TaskStatus::Cancelled,
                        Err(ApiError::TaskNotFound { .. }) => true,
                        Err(_) => false,
                    };
                    if cancelled {
                        stop = Some(StopReason::Cancelled);
                        proc.terminate(self.cfg.kill_grace);
                    }
                }
                _ = tokio::time::sleep_until(run_deadline), if stop.is_none() => {
                    stop = Some(StopReason::Timeout);
                    proc.terminate(self.cfg.kill_grace);
                }
                _ = tokio::time::sleep_until(inactivity_deadline), if stop.is_none() => {
                    stop = Some(StopReason::Inactivity);
                    proc.terminate(self.cfg.kill_grace);
                }
            }
        }
        let finish = parser.finish();
        handle_events(
            finish.events,
            &mut batch,
            &mut batch_deadline,
            &mut session_id,
        );
        let exit = proc.finish().await;
        for line in exit.unread {
            if let Line::Text(t) = line {
                let events = parser.line(&t);
                handle_events(events, &mut batch, &mut batch_deadline, &mut session_id);
            }
        }
        flush(&mut batch, &mut batch_deadline);
        let outcome = finish.outcome;
        let session_id = outcome.session_id.clone().or(session_id);
        if !outcome.usage.is_empty() {
            self.report(
                &task.id,
                Endpoint::Usage,
                serde_json::to_value(UsageRequest {
                    usage: outcome.usage.clone(),
                })
                .unwrap_or_default(),
            );
        }
        let committed = match execenv::commit_changes(&env, &format!("agentd: task {}", task.id))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(task_id = %task.id, error = %e, "could not commit the agent's changes");
                false
            }
        };
        let fail = |reason, error: String| Failure {
            reason,
            error,
            session_id: session_id.clone(),
            work_dir: Some(work_dir.clone()),
        };
        if let Some(stop) = stop {
            return Err(match stop {
                StopReason::Cancelled => {
                    fail(FailureReason::Cancelled, "task was cancelled".into())
                }
                StopReason::Shutdown => fail(
                    FailureReason::DaemonShutdown,
                    "the daemon shut down before the agent finished".into(),
                ),
                StopReason::Timeout => fail(
                    FailureReason::Timeout,
                    format!("agent ran longer than {:?}", self.cfg.task_timeout),
                ),
                StopReason::Inactivity => fail(
                    FailureReason::InactivityTimeout,
                    format!(
                        "agent printed nothing for {:?}",
                        self.cfg.inactivity_timeout
                    ),
                ),
            });
        }
        let ok_exit = exit.status.is_some_and(|s| s.success());
        if let Some(err) = outcome.error {
            return Err(fail(FailureReason::AgentError, err));
        }
        if !ok_exit {
            let status = exit
                .status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown status".into());
            let tail = exit.stderr_tail.trim();
            return Err(fail(
                FailureReason::AgentError,
                format!(
                    "agent exited with {status}{}{tail}",
                    if tail.is_empty() { "" } else { ": " }
                ),
            ));
        }
        Ok(CompleteRequest {
            output: outcome.output,
            branch_name: committed
                .then(|| env.branch.clone())
                .or(Some(env.branch.clone())),
            session_id,
            work_dir: Some(work_dir),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_message_fields_are_cut_with_a_note() {
        let big = "é".repeat(MAX_FIELD_BYTES);
        let m = cap_message(backend::MessageDraft {
            output: Some(big.clone()),
            input: Some(serde_json::json!({ "content": big })),
            ..backend::MessageDraft::text("short")
        });
        let out = m.output.unwrap();
        assert!(
            out.len() < MAX_FIELD_BYTES + 100 && out.contains("truncated"),
            "{}",
            out.len()
        );
        assert_eq!(m.content.as_deref(), Some("short"));
        assert!(m.input.unwrap()["truncated_bytes"].as_u64().unwrap() > MAX_FIELD_BYTES as u64);
    }
}
