//! Running claimed tasks: start → prepare the environment → launch the agent → supervise
//! it (report messages, usage and session as they happen) → classify how it ended →
//! complete or fail.
//!
//! Every report goes through the durable [`outbox`], `start` included. Each run ends in
//! exactly one final report with a reason (`timeout`, `inactivity_timeout`, `cancelled`,
//! `agent_error`, `agent_not_found`, `environment_error`, `repo_not_allowed`,
//! `disk_full`, `daemon_shutdown`): a task is never left silently running. The one
//! exception follows the server served ([`agentd_proto::ServerKind`]): a Multica server
//! gets no final report for a task it cancelled or deleted, as from its own daemon.
//! Usage is posted before the final report whatever the run's end.
//!
//! The agent is stopped (TERM → grace → KILL on its process group) as soon as the daemon
//! learns the server ended the task, whichever way it learns it: a WS
//! `task_cancelled` push, the answer to any report ([`outbox`]), or the status watcher
//! that polls `GET …/status` in its own task — never inside the loop that reads the
//! agent's output, so a slow server cannot stall it.

mod classify;
mod command;
pub mod outbox;
pub mod prompt;
mod publish;
pub mod runner;

use std::sync::Arc;
use std::time::Duration;

use agentd_proto::{
    CompleteRequest, FailRequest, FailureReason, MessagesRequest, SessionRequest, Task,
    TaskMessage, TaskStatus, UsageRequest,
};
use serde::Serialize;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::ApiError;
use crate::backend::{self, AgentEvent, Backend, Line, RunOutcome, RunSpec};
use crate::daemon::Daemon;
use crate::execenv::{self, EnvError, TaskEnv};
use crate::process::{AgentProcess, ExitReport, SpawnOptions};
use outbox::{Endpoint, OnTaskOver, Record};
use runner::TaskControl;

/// The most text one message field carries; a tool that printed more is cut, with a
/// note saying how much, so one huge tool result can't exceed the server's body limit.
const MAX_FIELD_BYTES: usize = 64 * 1024;

/// A message batch is split so each request stays under this many bytes of JSON (the
/// server's default body limit is 1 MiB).
const MAX_BATCH_BYTES: usize = 256 * 1024;

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

/// Splits messages into batches of at most [`MAX_BATCH_BYTES`] of JSON each (a single
/// message, whose fields are capped, always fits).
fn split_batches(messages: Vec<TaskMessage>) -> Vec<Vec<TaskMessage>> {
    let mut out: Vec<Vec<TaskMessage>> = Vec::new();
    let mut size = 0;
    for m in messages {
        let len = serde_json::to_vec(&m).map(|v| v.len()).unwrap_or(0);
        match out.last_mut() {
            Some(batch) if size + len <= MAX_BATCH_BYTES => batch.push(m),
            _ => {
                out.push(vec![m]);
                size = 0;
            }
        }
        size += len;
    }
    out
}

fn to_body(v: impl Serialize) -> serde_json::Value {
    // Our own request types always serialize; a failure would be a bug, not a report
    // to send as `null`.
    serde_json::to_value(v).unwrap_or_else(
        |e| serde_json::json!({ "error": format!("agentd could not encode this report: {e}") }),
    )
}

/// How a run failed.
#[derive(Debug)]
struct Failure {
    reason: FailureReason,
    error: String,
    session_id: Option<String>,
    work_dir: Option<String>,
    branch_name: Option<String>,
    /// Boxed: a diff is large and failures travel in `Result`s.
    diff: Option<Box<agentd_proto::TaskDiff>>,
}

impl Failure {
    fn new(reason: FailureReason, error: impl Into<String>) -> Failure {
        Failure {
            reason,
            error: error.into(),
            session_id: None,
            work_dir: None,
            branch_name: None,
            diff: None,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    /// The server ended the task (cancelled, failed, deleted: `Unknown`).
    ServerEnded(TaskStatus),
    Timeout,
    Inactivity,
    Shutdown,
}

impl StopReason {
    /// Why the stop token fired: the server ended the task (also during a shutdown's
    /// grace), or the daemon is shutting down.
    fn of_stop(d: &Daemon, control: &TaskControl) -> StopReason {
        match control.ended.get() {
            Some(status) => StopReason::ServerEnded(*status),
            None if d.root.is_cancelled() => StopReason::Shutdown,
            None => StopReason::ServerEnded(TaskStatus::Cancelled),
        }
    }

    fn failure(self, d: &Daemon) -> (FailureReason, String) {
        match self {
            StopReason::ServerEnded(TaskStatus::Unknown) => (
                FailureReason::Cancelled,
                "stopped: the task was deleted on the server while its agent ran".into(),
            ),
            StopReason::ServerEnded(TaskStatus::Cancelled) => {
                (FailureReason::Cancelled, "task was cancelled".into())
            }
            StopReason::ServerEnded(s) => (
                FailureReason::Cancelled,
                format!(
                    "stopped: the server ended the task ({}) while its agent ran",
                    s.as_str()
                ),
            ),
            StopReason::Shutdown => (
                FailureReason::DaemonShutdown,
                "the daemon shut down before the agent finished".into(),
            ),
            StopReason::Timeout => (
                FailureReason::Timeout,
                format!("agent ran longer than {:?}", d.cfg.task_timeout),
            ),
            StopReason::Inactivity => (
                FailureReason::InactivityTimeout,
                format!("agent printed nothing for {:?}", d.cfg.inactivity_timeout),
            ),
        }
    }
}

/// A launched agent: its process, the backend that reads it, and what it runs on.
struct Launched {
    proc: AgentProcess,
    backend: Box<dyn Backend>,
    spec: RunSpec,
    provider: String,
    /// What the daemon tells the transcript before the agent's first word (a fresh
    /// checkout for a follow-up and why, a missing `multica` CLI, refused `custom_env`
    /// keys).
    notes: Vec<String>,
    /// The run's limit cgroups, removed when it is over.
    limits_run: Option<String>,
    /// The run's egress proxy (allow-list network); stopped when dropped.
    egress: Option<command::Egress>,
}

/// What supervising a run saw.
struct Supervised {
    stop: Option<StopReason>,
    exit: ExitReport,
    outcome: RunOutcome,
    session_id: Option<String>,
}

/// Numbers messages (`seq` 1..n) and batches them: a batch goes out after
/// `message_batch_interval` or when it holds `message_batch_max` messages.
struct Batcher {
    seq: i64,
    batch: Vec<TaskMessage>,
    deadline: Option<Instant>,
}

impl Batcher {
    fn new() -> Batcher {
        Batcher {
            seq: 0,
            batch: Vec::new(),
            deadline: None,
        }
    }

    fn push(&mut self, m: backend::MessageDraft, interval: Duration) {
        self.seq += 1;
        self.batch.push(cap_message(m).into_message(self.seq));
        self.deadline.get_or_insert(Instant::now() + interval);
    }

    fn take(&mut self) -> Vec<TaskMessage> {
        self.deadline = None;
        std::mem::take(&mut self.batch)
    }

    async fn due(&self) {
        match self.deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    }
}

impl Daemon {
    /// Starts a claimed task on the tracker; it holds `permit` until it ends.
    pub fn spawn_task(self: &Arc<Self>, task: Task, permit: OwnedSemaphorePermit) {
        let control = self.runner.begin(&task.id);
        let this = Arc::clone(self);
        self.tracker.spawn(async move {
            let _permit = permit;
            let id = task.id.clone();
            this.execute(task, control).await;
            this.runner.end(&id);
        });
    }

    /// The callback the outbox calls when an answer says a task is over.
    pub(crate) fn on_task_over(self: &Arc<Self>) -> OnTaskOver {
        let this = Arc::clone(self);
        Arc::new(move |task_id: &str, status: TaskStatus| {
            this.runner.task_over(task_id, status);
        })
    }

    /// Queues a report durably (or, with no outbox open, sends it directly).
    fn report(self: &Arc<Self>, task_id: &str, endpoint: Endpoint, body: serde_json::Value) {
        if let Some(ob) = self.runner.outbox() {
            ob.push(task_id, endpoint, body);
            return;
        }
        let this = Arc::clone(self);
        let record = Record {
            task_id: task_id.to_string(),
            endpoint,
            body,
        };
        self.tracker.spawn(async move {
            let on_over = this.on_task_over();
            let sent = this
                .root
                .run_until_cancelled(outbox::deliver(&this.client, &record, &on_over))
                .await;
            if let Some(outbox::Sent::Retry(e)) = sent {
                tracing::warn!(task_id = %record.task_id, error = %e, "task report failed (no outbox to retry from)");
            }
        });
    }

    fn report_messages(self: &Arc<Self>, task_id: &str, messages: Vec<TaskMessage>) {
        if messages.is_empty() {
            return;
        }
        for batch in split_batches(messages) {
            self.report(
                task_id,
                Endpoint::Messages,
                to_body(MessagesRequest { messages: batch }),
            );
        }
    }

    async fn execute(self: &Arc<Self>, task: Task, control: TaskControl) {
        self.report(&task.id, Endpoint::Start, serde_json::json!({}));
        let watcher = control.stop.child_token();
        self.tracker.spawn(watch_status(
            Arc::clone(self),
            task.id.clone(),
            watcher.clone(),
        ));
        let mut checkout_dir = None;
        let result = self.run_task(&task, &control, &mut checkout_dir).await;
        watcher.cancel();
        let kind = self.server_kind();
        match result {
            // Multica's daemon reports nothing for a task the server cancelled or deleted
            // (its server would ignore it): neither does this one, when serving Multica.
            Err(f) if control.ended.get().is_some() && !kind.is_agentd() => {
                tracing::info!(task_id = %task.id, reason = ?f.reason, "the server ended the task; nothing to report to a Multica server");
            }
            Ok(done) => {
                tracing::info!(task_id = %task.id, "task completed");
                self.report(&task.id, Endpoint::Complete, to_body(done));
            }
            Err(f) => {
                tracing::warn!(task_id = %task.id, reason = ?f.reason, error = %f.error, "task failed");
                let req = FailRequest {
                    error: f.error,
                    session_id: f.session_id,
                    work_dir: f.work_dir,
                    failure_reason: Some(f.reason),
                    branch_name: f.branch_name,
                    diff: f.diff.map(|d| *d),
                };
                self.report(&task.id, Endpoint::Fail, to_body(req));
            }
        }
        // The final report is on disk before the task dir is marked done, so "done"
        // always means "its outcome survives a crash".
        if let Some(ob) = self.runner.outbox() {
            let ob = Arc::clone(ob);
            let _ = tokio::task::spawn_blocking(move || ob.flushed()).await;
        }
        // A reused checkout's marker is rewritten too: GC keeps it for the TTL after its
        // last run (a follow-up may still come).
        let task_dir = self.cfg.data_dir.join("tasks").join(&task.id);
        for dir in std::iter::once(task_dir).chain(checkout_dir) {
            if dir.is_dir() {
                let _ = std::fs::write(dir.join(crate::gc::DONE_MARKER), "");
            }
        }
    }

    async fn run_task(
        self: &Arc<Self>,
        task: &Task,
        control: &TaskControl,
        checkout_dir: &mut Option<std::path::PathBuf>,
    ) -> Result<CompleteRequest, Failure> {
        let env = self.prepare(task, control).await?;
        *checkout_dir = Some(env.checkout_dir.clone());
        let work_dir = env.workdir.display().to_string();
        self.report(
            &task.id,
            Endpoint::Session,
            to_body(SessionRequest {
                session_id: None,
                work_dir: Some(work_dir.clone()),
            }),
        );
        let launched = self.launch(task, &env)?;
        let seen = self.supervise(task, launched, &work_dir, control).await;
        // What the run cost is posted whatever its end (the server stores usage in any
        // status), except to a Multica server for a task it deleted (nothing to post to).
        let deleted = control.ended.get() == Some(&TaskStatus::Unknown);
        if !seen.outcome.usage.is_empty() && (!deleted || self.server_kind().is_agentd()) {
            self.report(
                &task.id,
                Endpoint::Usage,
                to_body(UsageRequest {
                    usage: seen.outcome.usage.clone(),
                }),
            );
        }
        let out = Self::publish_dir(&env);
        if let Err(e) = crate::fsutil::create_private_dir(&out) {
            tracing::warn!(dir = %out.display(), error = %e, "cannot create the task's publish dir");
        }
        let wrap = self.git_sandbox(&env.workdir, std::slice::from_ref(&out));
        let message = format!("agentd: task {}", task.id);
        if let Err(e) = execenv::commit_changes(&env, &message, &wrap).await {
            tracing::warn!(task_id = %task.id, error = %e, "could not commit the agent's changes");
        }
        match self.classify(seen, &env, work_dir) {
            Ok(mut done) => match self.publish(task, &env, &wrap).await {
                Ok(published) => {
                    done.diff = published.diff;
                    done.pushed = published.pushed;
                    Ok(done)
                }
                Err(failed) => Err(Failure {
                    reason: FailureReason::PushFailed,
                    error: failed.error,
                    session_id: done.session_id,
                    work_dir: done.work_dir,
                    branch_name: Some(env.branch.clone()),
                    diff: failed.diff.map(Box::new),
                }),
            },
            Err(mut f) => {
                // A failed run is not pushed, but what it changed is still shown.
                f.diff = self.run_diff(&env, &wrap).await.map(Box::new);
                f.branch_name = Some(env.branch.clone());
                Err(f)
            }
        }
    }

    /// Builds the task's environment (directory, git worktree, instructions), giving up
    /// as soon as the task is stopped.
    async fn prepare(&self, task: &Task, control: &TaskControl) -> Result<TaskEnv, Failure> {
        let workspace = if task.workspace_id.is_empty() {
            self.registry
                .workspace_of(&task.runtime_id)
                .unwrap_or_default()
        } else {
            task.workspace_id.clone()
        };
        let allowed = self.registry.allowed_repos(&workspace);
        let claim = |dir: &str| self.runner.claim_checkout(dir, &task.id);
        let prepare = execenv::prepare(
            &self.cfg.data_dir,
            self.runner.repo_cache(),
            task,
            execenv::Repos {
                workspace: &workspace,
                allowed: &allowed,
                allow_local: self.cfg.allow_local_repos,
            },
            &claim,
        );
        match control.stop.run_until_cancelled(prepare).await {
            Some(env) => Ok(env?),
            None => {
                let (reason, error) = StopReason::of_stop(self, control).failure(self);
                Err(Failure::new(
                    reason,
                    format!("{error} (while preparing the task)"),
                ))
            }
        }
    }

    /// Spawns the provider's CLI in the task's work dir with its environment.
    fn launch(&self, task: &Task, env: &TaskEnv) -> Result<Launched, Failure> {
        let provider = self
            .registry
            .runtime(&task.runtime_id)
            .map(|r| r.provider)
            .unwrap_or_default();
        let agent = self.cfg.agents.iter().find(|a| a.provider == provider);
        let backend = match self.cfg.custom_agents.iter().find(|c| c.name == provider) {
            Some(custom) => Some(custom.backend()),
            None => backend::for_provider(&provider),
        };
        let (Some(agent), Some(backend)) = (agent, backend) else {
            return Err(Failure::new(
                FailureReason::AgentNotFound,
                format!(
                    "runtime {} (provider {provider:?}) has no agent CLI on this machine",
                    task.runtime_id
                ),
            ));
        };
        let kind = self.server_kind();
        let mut notes = Vec::new();
        // A session is resumed only where it was made: in the reused checkout (or, from a
        // server that names no previous checkout, wherever the server says).
        let prior_session_id = match &env.continuation {
            execenv::Continuation::Fresh(why) => {
                let mut note = format!(
                    "agentd: this follow-up runs in a fresh checkout of branch {}: {why}",
                    env.branch
                );
                if !task.prior_session_id.is_empty() {
                    note.push_str("; the agent's session starts anew");
                }
                notes.push(note);
                None
            }
            execenv::Continuation::Reused | execenv::Continuation::NotFollowUp => {
                Some(task.prior_session_id.clone()).filter(|s| !s.is_empty())
            }
        };
        if !kind.is_agentd() {
            let path = std::env::var_os("PATH");
            if crate::agents::resolve(std::path::Path::new("multica"), path.as_deref()).is_none() {
                notes.push(
                    "agentd: the multica CLI is not installed on this machine, so the agent \
                     cannot read or comment on its issue; only its final output reaches the \
                     issue (as Multica's fallback comment)"
                        .to_string(),
                );
            }
        }
        let spec = RunSpec {
            prompt: prompt::build(task, kind),
            workdir: env.workdir.clone(),
            model: Some(task.agent.model.clone()).filter(|m| !m.is_empty()),
            custom_args: task.agent.custom_args.clone(),
            prior_session_id,
            in_sandbox: self.sandbox.state == agentd_proto::SandboxState::Bwrap,
            mcp_config: task.agent.mcp_config.clone(),
        };
        let cmd_spec = backend.command(&spec);
        let command = self.agent_command(task, &provider, &agent.path, &cmd_spec, env)?;
        let proc = AgentProcess::spawn(command.cmd, SpawnOptions::default()).map_err(|e| {
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
        tracing::info!(task_id = %task.id, pid = proc.pid(), provider, workdir = %env.workdir.display(), "agent started");
        notes.extend(
            command
                .refused_env
                .iter()
                .map(|r| format!("agentd: custom_env key {} was not set: {}", r.key, r.why)),
        );
        Ok(Launched {
            proc,
            backend,
            spec,
            provider,
            notes,
            limits_run: command.limits_run,
            egress: command.egress,
        })
    }

    /// Reads the agent's output until it exits, turning it into reports, and stops it
    /// (TERM → grace → KILL) on the stop token, the run timeout or inactivity. Nothing in
    /// this loop waits on the network.
    async fn supervise(
        self: &Arc<Self>,
        task: &Task,
        launched: Launched,
        work_dir: &str,
        control: &TaskControl,
    ) -> Supervised {
        let Launched {
            mut proc,
            backend,
            spec,
            provider,
            notes,
            limits_run,
            mut egress,
        } = launched;
        let mut parser = backend.parser(&spec);
        let mut batcher = Batcher::new();
        for note in notes {
            batcher.push(
                backend::MessageDraft::error(note),
                self.cfg.message_batch_interval,
            );
        }
        let mut session_id: Option<String> = None;
        let run_deadline = Instant::now() + self.cfg.task_timeout;
        let mut last_output = Instant::now();
        let mut stop: Option<StopReason> = None;
        let interval = self.cfg.message_batch_interval;

        let handle =
            |events: Vec<AgentEvent>, batcher: &mut Batcher, session_id: &mut Option<String>| {
                for ev in events {
                    match ev {
                        AgentEvent::Message(m) => batcher.push(m, interval),
                        AgentEvent::SessionId(id) if session_id.as_deref() != Some(id.as_str()) => {
                            *session_id = Some(id.clone());
                            self.report(
                                &task.id,
                                Endpoint::Session,
                                to_body(SessionRequest {
                                    session_id: Some(id),
                                    work_dir: Some(work_dir.to_string()),
                                }),
                            );
                        }
                        AgentEvent::SessionId(_) => {}
                    }
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
                    handle(events, &mut batcher, &mut session_id);
                    if batcher.batch.len() >= self.cfg.message_batch_max {
                        self.report_messages(&task.id, batcher.take());
                    }
                }
                _ = batcher.due() => self.report_messages(&task.id, batcher.take()),
                Some(denied) = next_denial(&mut egress) => {
                    batcher.push(backend::MessageDraft::error(denied), interval);
                }
                _ = control.stop.cancelled(), if stop.is_none() => {
                    let why = StopReason::of_stop(self, control);
                    tracing::info!(task_id = %task.id, reason = ?why, "stopping the agent");
                    stop = Some(why);
                    proc.terminate(self.cfg.kill_grace);
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
        let exit = proc.finish().await;
        if let Some(mut e) = egress.take() {
            while let Ok(denied) = e.denied.try_recv() {
                batcher.push(backend::MessageDraft::error(denied), interval);
            }
        }
        if let Some(run) = limits_run {
            crate::sandbox::limits::cleanup(&run).await;
        }
        for line in &exit.unread {
            if let Line::Text(t) = line {
                let events = parser.line(t);
                handle(events, &mut batcher, &mut session_id);
            }
        }
        let events = parser.stderr(&exit.stderr_tail);
        handle(events, &mut batcher, &mut session_id);
        let finish = parser.finish();
        handle(finish.events, &mut batcher, &mut session_id);
        self.report_messages(&task.id, batcher.take());
        tracing::debug!(task_id = %task.id, provider, ended = finish.outcome.ended, "agent exited");
        Supervised {
            stop,
            exit,
            outcome: finish.outcome,
            session_id,
        }
    }

    /// Decides how the run ended: stopped, failed (the CLI said so, a non-zero exit, or
    /// an exit 0 without the CLI's end-of-run event), or completed.
    fn classify(
        &self,
        seen: Supervised,
        env: &TaskEnv,
        work_dir: String,
    ) -> Result<CompleteRequest, Failure> {
        let Supervised {
            stop,
            exit,
            outcome,
            session_id,
        } = seen;
        let session_id = outcome.session_id.clone().or(session_id);
        let fail = |reason, error: String| Failure {
            reason,
            error,
            session_id: session_id.clone(),
            work_dir: Some(work_dir.clone()),
            branch_name: None,
            diff: None,
        };
        if let Some(stop) = stop {
            let (reason, error) = stop.failure(self);
            return Err(fail(reason, error));
        }
        if let Some(err) = outcome.error {
            // A busy model API is transient (the server retries); else the agent's.
            return Err(fail(classify::agent_failure(&err), err));
        }
        let tail = exit.stderr_tail.trim();
        let tail = if tail.is_empty() {
            String::new()
        } else {
            format!(": {tail}")
        };
        match exit.status {
            Some(s) if s.success() => {}
            other => {
                let status = other
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "unknown status".into());
                return Err(fail(
                    FailureReason::AgentError,
                    format!("agent exited with {status}{tail}"),
                ));
            }
        }
        if !outcome.ended {
            return Err(fail(
                FailureReason::AgentError,
                format!(
                    "agent exited 0 without its end-of-run event (its output was cut short){tail}"
                ),
            ));
        }
        Ok(CompleteRequest {
            output: outcome.output,
            branch_name: Some(env.branch.clone()),
            session_id,
            work_dir: Some(work_dir),
            diff: None,
            pushed: None,
        })
    }
}

/// The next connection the run's egress proxy denied (never, without a proxy).
async fn next_denial(egress: &mut Option<command::Egress>) -> Option<String> {
    match egress {
        Some(e) => e.denied.recv().await,
        None => std::future::pending().await,
    }
}

/// Polls the task's status on the server every `status_poll_interval` until `cancel`,
/// in its own task: a terminal status or a 404 stops the agent (the WS push and report
/// answers usually tell sooner; this covers a server that cannot push).
async fn watch_status(d: Arc<Daemon>, task_id: String, cancel: CancellationToken) {
    loop {
        if cancel
            .run_until_cancelled(tokio::time::sleep(d.cfg.status_poll_interval))
            .await
            .is_none()
        {
            return;
        }
        let status = match cancel
            .run_until_cancelled(d.client.task_status(&task_id))
            .await
        {
            None => return,
            Some(Ok(s)) if s.status.is_terminal() => s.status,
            Some(Err(ApiError::TaskNotFound { .. })) => TaskStatus::Unknown,
            Some(_) => continue,
        };
        d.runner.task_over(&task_id, status);
        return;
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
