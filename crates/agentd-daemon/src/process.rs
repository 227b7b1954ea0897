//! Running an agent CLI as a supervised child process (nextest's recipe).
//!
//! [`AgentProcess::spawn`] starts the child in its own process group (pgid = its pid),
//! stdin at `/dev/null`, stdout read line by line through [`LineCodec`] (an over-long line
//! is an item, reading continues), and the last few KiB of stderr kept for error reports.
//!
//! Lifecycle:
//! 1. [`AgentProcess::next_line`] until it returns `None` (stdout closed, or the leader
//!    exited and the post-exit drain bound passed: grandchildren may hold the pipe).
//! 2. Optionally, at any time, [`AgentProcess::terminate`]: a signal (SIGTERM) to the whole
//!    group now, SIGKILL to the group when the grace period ends. Keep calling `next_line`
//!    meanwhile; the child's last words (e.g. a final `result` line) still arrive.
//! 3. [`AgentProcess::finish`]: reads what is left, waits for the leader, SIGKILLs whatever
//!    is left of its group, reaps, and returns the status and stderr tail.
//!
//! **Invariant:** the group is only ever signalled while the leader is unreaped (alive or
//! a zombie). A zombie leader keeps the pgid reserved, so the signal can only reach our
//! own processes; after the reap the pgid may be reused and we never signal it again.
//! Exit is noticed without reaping (`waitid(WNOWAIT)` on SIGCHLD), which is what makes
//! "kill the leftovers, then reap" possible. `kill_on_drop(true)` and [`Drop`] are
//! backstops for a process dropped without `finish`.

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdout, Command};
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;

use crate::backend::{CommandSpec, Line, LineCodec};

/// Limits of one supervised run.
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    /// Longest stdout line kept; longer ones become [`Line::TooLong`].
    pub max_line: usize,
    /// How long stdout is still read after the leader exited (grandchildren may hold it).
    pub drain_after_exit: Duration,
    /// Bytes of stderr kept (the end of it).
    pub stderr_tail: usize,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        SpawnOptions {
            max_line: crate::backend::lines::DEFAULT_MAX_LINE,
            drain_after_exit: Duration::from_secs(5),
            stderr_tail: 8 * 1024,
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct ExitReport {
    /// The leader's exit status (`None` only if waiting for it failed).
    pub status: Option<ExitStatus>,
    /// The end of stderr (lossy UTF-8).
    pub stderr_tail: String,
    /// Lines `finish` read that the caller had not.
    pub unread: Vec<Line>,
    /// The grace period of [`AgentProcess::terminate`] ran out and the group was SIGKILLed.
    pub killed: bool,
}

/// A `tokio::process::Command` for `spec`, running `program` in `workdir`, with `spec.env`
/// set over the inherited environment. Pass it to [`AgentProcess::spawn`].
///
/// `PWD` is set to `workdir` as a shell would: OpenCode resolves relative paths against
/// `$PWD`, so an inherited `PWD` makes it write files into the daemon's directory.
pub fn command_for(program: impl AsRef<OsStr>, spec: &CommandSpec, workdir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(&spec.args)
        .current_dir(workdir)
        .env("PWD", workdir);
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    cmd
}

/// A supervised agent CLI process. See the module docs for the lifecycle.
#[derive(Debug)]
pub struct AgentProcess {
    child: Child,
    /// Pid of the leader, which is also the pgid of its group.
    pgid: Pid,
    /// `None` once stdout reached EOF or was given up after the post-exit drain.
    stdout: Option<FramedRead<ChildStdout, LineCodec>>,
    stderr_task: Option<JoinHandle<()>>,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
    /// SIGCHLD notifications (any child); `None` if they could not be registered, then
    /// exit is polled every 50 ms instead.
    sigchld: Option<tokio::signal::unix::Signal>,
    opts: SpawnOptions,
    /// The leader has exited (it may still be an unreaped zombie).
    exited: bool,
    /// The leader was reaped: never signal the group again.
    reaped: bool,
    /// Stop reading stdout at this instant (set when the leader exits).
    drain_until: Option<Instant>,
    /// SIGKILL the group at this instant (set by `terminate`).
    kill_at: Option<Instant>,
    killed: bool,
}

/// What woke a wait inside the process.
enum Wake {
    Line(Option<Result<Line, io::Error>>),
    KillDue,
    ChildSignal,
    DrainOver,
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl AgentProcess {
    /// Spawns `cmd` in a new process group with stdin `/dev/null` and stdout/stderr piped.
    /// Must be called inside a tokio runtime.
    pub fn spawn(mut cmd: Command, opts: SpawnOptions) -> io::Result<AgentProcess> {
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Registered before the spawn so the child's exit cannot be missed.
        let sigchld = match signal(SignalKind::child()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGCHLD; polling child exit");
                None
            }
        };
        let mut child = cmd.spawn()?;
        let raw = child
            .id()
            .ok_or_else(|| io::Error::other("spawned child has no pid"))?;
        let pgid = Pid::from_raw(
            i32::try_from(raw).map_err(|_| io::Error::other("child pid out of range"))?,
        );
        let stdout = child
            .stdout
            .take()
            .map(|s| FramedRead::new(s, LineCodec::new(opts.max_line)));
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        let stderr_task = child.stderr.take().map(|mut stderr| {
            let tail = Arc::clone(&stderr_tail);
            let keep = opts.stderr_tail;
            tokio::spawn(async move {
                let mut chunk = vec![0u8; 4096];
                loop {
                    match stderr.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let mut buf = tail.lock().unwrap_or_else(|e| e.into_inner());
                            buf.extend_from_slice(&chunk[..n]);
                            if buf.len() > keep {
                                let cut = buf.len() - keep;
                                buf.drain(..cut);
                            }
                        }
                    }
                }
            })
        });
        Ok(AgentProcess {
            child,
            pgid,
            stdout,
            stderr_task,
            stderr_tail,
            sigchld,
            opts,
            exited: false,
            reaped: false,
            drain_until: None,
            kill_at: None,
            killed: false,
        })
    }

    /// The leader's pid (= the group's pgid).
    pub fn pid(&self) -> u32 {
        self.pgid.as_raw().unsigned_abs()
    }

    /// The end of stderr so far (lossy UTF-8).
    pub fn stderr_tail(&self) -> String {
        let buf = self.stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// The next stdout line; `None` when stdout is closed, or when the leader has exited
    /// and `drain_after_exit` has passed. Cancel-safe. While a [`terminate`] grace period
    /// runs, this also delivers the SIGKILL when it ends.
    ///
    /// [`terminate`]: AgentProcess::terminate
    pub async fn next_line(&mut self) -> Option<Line> {
        loop {
            self.poll_exit();
            // Deadlines first: a child flooding stdout keeps that branch always ready,
            // and `biased` would otherwise starve the timers.
            let now = Instant::now();
            if !self.killed && self.kill_at.is_some_and(|at| at <= now) {
                self.kill_group();
            }
            if self.drain_until.is_some_and(|at| at <= now) && self.stdout.is_some() {
                tracing::debug!(
                    pid = self.pid(),
                    "stdout still open after exit; giving up on it"
                );
                self.stdout = None;
            }
            let wake = {
                let stdout = self.stdout.as_mut()?;
                let kill_at = if self.killed { None } else { self.kill_at };
                let watch_exit = !self.exited;
                let drain_until = self.drain_until;
                let sigchld = self.sigchld.as_mut();
                tokio::select! {
                    biased;
                    item = stdout.next() => Wake::Line(item),
                    _ = sleep_until_opt(kill_at) => Wake::KillDue,
                    _ = child_signal(sigchld), if watch_exit => Wake::ChildSignal,
                    _ = sleep_until_opt(drain_until) => Wake::DrainOver,
                }
            };
            match wake {
                Wake::Line(Some(Ok(line))) => return Some(line),
                Wake::Line(Some(Err(e))) => {
                    tracing::warn!(error = %e, pid = self.pid(), "reading agent stdout failed");
                    self.stdout = None;
                    return None;
                }
                Wake::Line(None) => {
                    self.stdout = None;
                    return None;
                }
                Wake::KillDue => self.kill_group(),
                Wake::ChildSignal => {}
                Wake::DrainOver => {
                    tracing::debug!(
                        pid = self.pid(),
                        "stdout still open after exit; giving up on it"
                    );
                    self.stdout = None;
                    return None;
                }
            }
        }
    }

    /// Sends SIGTERM to the whole group now and arms SIGKILL for when `grace` ends. Keep
    /// calling [`next_line`](AgentProcess::next_line) (or call `finish`): the kill is
    /// delivered from there. A second call can only shorten the grace.
    pub fn terminate(&mut self, grace: Duration) {
        self.terminate_with(Signal::SIGTERM, grace);
    }

    /// [`terminate`](AgentProcess::terminate) with another first signal (e.g. SIGINT,
    /// which makes Claude Code print a final `result`).
    pub fn terminate_with(&mut self, sig: Signal, grace: Duration) {
        if self.reaped {
            return;
        }
        if let Err(e) = killpg(self.pgid, sig) {
            tracing::debug!(error = %e, pgid = self.pgid.as_raw(), ?sig, "killpg failed");
        }
        let at = Instant::now() + grace;
        self.kill_at = Some(match self.kill_at {
            Some(prev) if prev < at => prev,
            _ => at,
        });
    }

    /// SIGKILLs the whole group now.
    pub fn kill(&mut self) {
        self.kill_group();
    }

    /// Reads the rest of stdout (bounded as in `next_line`), waits for the leader (a
    /// pending `terminate` still escalates to SIGKILL), SIGKILLs what is left of the group,
    /// reaps the leader and collects the stderr tail. Without a prior `terminate`, this
    /// waits as long as the leader runs.
    pub async fn finish(mut self) -> ExitReport {
        let mut unread = Vec::new();
        while let Some(line) = self.next_line().await {
            unread.push(line);
        }
        loop {
            self.poll_exit();
            if self.exited {
                break;
            }
            let kill_at = if self.killed { None } else { self.kill_at };
            let wake = {
                let sigchld = self.sigchld.as_mut();
                tokio::select! {
                    _ = sleep_until_opt(kill_at) => Wake::KillDue,
                    _ = child_signal(sigchld) => Wake::ChildSignal,
                }
            };
            if let Wake::KillDue = wake {
                self.kill_group();
            }
        }
        // The leader is a zombie: the pgid is still ours. Nothing of the run may outlive it.
        if !self.reaped {
            let _ = killpg(self.pgid, Signal::SIGKILL);
        }
        let status = match self.child.wait().await {
            Ok(status) => Some(status),
            Err(e) => {
                tracing::warn!(error = %e, pid = self.pid(), "waiting for agent process failed");
                None
            }
        };
        self.reaped = true;
        if let Some(task) = self.stderr_task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(self.opts.drain_after_exit, task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        ExitReport {
            status,
            stderr_tail: self.stderr_tail(),
            unread,
            killed: self.killed,
        }
    }

    fn kill_group(&mut self) {
        if self.reaped {
            return;
        }
        if let Err(e) = killpg(self.pgid, Signal::SIGKILL) {
            tracing::debug!(error = %e, pgid = self.pgid.as_raw(), "killpg SIGKILL failed");
        }
        self.killed = true;
    }

    /// Notices the leader's exit without reaping it.
    fn poll_exit(&mut self) {
        if self.exited {
            return;
        }
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT | WaitPidFlag::WNOHANG;
        let exited = match waitid(Id::Pid(self.pgid), flags) {
            Ok(WaitStatus::StillAlive) => false,
            Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) => true,
            Ok(_) => false,
            // ECHILD: not our child any more (reaped elsewhere); treat as gone.
            Err(_) => true,
        };
        if exited {
            self.exited = true;
            self.drain_until = Some(Instant::now() + self.opts.drain_after_exit);
        }
    }
}

/// Waits for the next SIGCHLD, or 50 ms when SIGCHLD could not be registered.
async fn child_signal(sigchld: Option<&mut tokio::signal::unix::Signal>) {
    match sigchld {
        Some(s) => {
            if s.recv().await.is_none() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        None => tokio::time::sleep(Duration::from_millis(50)).await,
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        // Dropped without `finish`: the leader is unreaped, so the pgid is still ours.
        if !self.reaped {
            let _ = killpg(self.pgid, Signal::SIGKILL);
        }
    }
}
