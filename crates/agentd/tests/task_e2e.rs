//! The real `agentd daemon` running tasks end to end against the fake server, with a
//! stand-in `claude` that replays output recorded from the real CLI (the fixtures under
//! `crates/agentd-daemon/tests/fixtures/agent-output/`). Stand-ins are for what the real
//! CLI can't do on demand: crash mid-stream, print garbage, hang.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use agentd_proto::ws::{TaskAvailable, TaskCancelled, WsMessage};
use agentd_proto::{FailureReason, MessageKind, Task};
use agentd_testkit::fake_server::FakeServer;

const TOKEN: &str = "task-e2e-token";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../agentd-daemon/tests/fixtures/agent-output")
        .join(name)
}

struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
}

impl Daemon {
    /// SIGKILLs the daemon (no shutdown path runs) and returns its directory.
    fn sigkill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the daemon with a stand-in `claude` whose run is `body` (a shell script body).
fn spawn_daemon(url: &str, body: &str) -> Daemon {
    spawn_daemon_in(tempfile::tempdir().unwrap(), url, body, &[])
}

fn spawn_daemon_in(dir: tempfile::TempDir, url: &str, body: &str, extra: &[&str]) -> Daemon {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = \"--version\" ]; then echo '2.1.330 (Claude Code)'; exit 0; fi\n{body}\n"
    );
    let p = bin.join("claude");
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    if !dir.path().join("daemon.toml").exists() {
        std::fs::write(dir.path().join("daemon.toml"), "").unwrap();
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("daemon.log"))
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_agentd"))
        .args(["daemon", "--server-url", url, "--token", TOKEN])
        .args(extra)
        .args(["--heartbeat-interval", "1s", "--poll-interval", "30s"])
        .args(["--health-port", "0"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(dir.path().join("daemon.toml"))
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env_remove("AGENTD_TOKEN")
        .env("RUST_LOG", "agentd_daemon=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn agentd daemon");
    Daemon { child, dir }
}

async fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for registration and the WS, queues a task and wakes the daemon over WS.
async fn queue(fake: &FakeServer, id: &str) -> String {
    eventually(20, "register", || fake.register_count() == 1).await;
    eventually(10, "WS connected", || fake.ws_connected_clients() >= 1).await;
    let rid = fake.runtime_id_of("claude").unwrap();
    fake.queue_task(
        &rid,
        Task {
            id: id.into(),
            runtime_id: rid.clone(),
            issue_id: "issue-42".into(),
            workspace_id: "ws-1".into(),
            issue_title: "Add a hello file".into(),
            task_token: "task-token-1".into(),
            ..Task::default()
        },
    );
    fake.push(&WsMessage::TaskAvailable(TaskAvailable {
        runtime_id: rid.clone(),
        task_id: Some(id.into()),
    }));
    rid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_recorded_claude_output_and_commits_on_the_issue_branch() {
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    let fx = fixture("claude-write-shell.jsonl");
    // Replays the real CLI's stream, writes a file like the real run did, and records the
    // environment the agent was given.
    let d = spawn_daemon(
        &fake.url,
        &format!(
            "echo hello > hello.txt\nenv | grep '^AGENTD_' | sort > .git/agent-env.txt\n{}",
            common::replay(&fx)
        ),
    );
    queue(&fake, "task-1").await;
    eventually(20, "task completed", || !fake.completed().is_empty()).await;

    assert_eq!(fake.started(), ["task-1"]);
    let (id, done) = fake.completed().remove(0);
    assert_eq!(id, "task-1");
    let msgs = fake.messages("task-1");
    let seqs: Vec<i64> = msgs.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=msgs.len() as i64).collect::<Vec<_>>(),
        "seq numbers 1..n, none lost"
    );
    assert!(
        msgs.iter()
            .any(|m| m.kind == MessageKind::ToolUse && m.input.is_some()),
        "{msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.kind == MessageKind::ToolResult),
        "{msgs:?}"
    );
    assert!(!done.output.is_empty(), "final output missing");
    assert!(done.session_id.is_some());
    let work = PathBuf::from(done.work_dir.clone().unwrap());
    assert!(
        work.starts_with(d.dir.path()),
        "work dir under the data dir"
    );
    let branch = done.branch_name.clone().unwrap();
    assert!(branch.starts_with("agentd/issue-issue42"), "{branch}");
    let log = Command::new("git")
        .args([
            "-C",
            work.to_str().unwrap(),
            "log",
            "--format=%s",
            "--name-only",
            &branch,
        ])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(
        log.contains("hello.txt"),
        "the agent's file is committed on its branch: {log}"
    );
    let env = std::fs::read_to_string(work.join(".git/agent-env.txt")).unwrap();
    assert!(env.contains("AGENTD_TOKEN=task-token-1"), "{env}");
    assert!(env.contains("AGENTD_ISSUE_ID=issue-42"), "{env}");
    assert!(env.contains("AGENTD_TASK_ID=task-1"), "{env}");
    assert!(
        env.contains(&format!("AGENTD_SERVER_URL={}", fake.url)),
        "{env}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_cancel_stops_the_agent_and_fails_with_reason_cancelled() {
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    // This test watches the agent's grandchild by its host pid, which a sandbox's PID
    // namespace hides: it proves the unsandboxed path's process-group supervision (the
    // sandbox's own containment is proven in tests/sandbox.rs).
    let d = spawn_daemon_in(
        tempfile::tempdir().unwrap(),
        &fake.url,
        "echo '{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"s1\"}'\nsleep 1000 &\necho $! > ../grandchild.pid\nwait",
        &["--sandbox", "off"],
    );
    queue(&fake, "task-c").await;
    let pid_file = d.dir.path().join("data/tasks/task-c/grandchild.pid");
    eventually(20, "agent running", || {
        pid_file.exists()
            && !std::fs::read_to_string(&pid_file)
                .unwrap()
                .trim()
                .is_empty()
    })
    .await;
    let grandchild: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    let sent = tokio::time::Instant::now();
    fake.push(&WsMessage::TaskCancelled(TaskCancelled {
        task_id: "task-c".into(),
        runtime_id: None,
    }));
    eventually(10, "fail report", || !fake.fail_requests().is_empty()).await;
    let took = sent.elapsed();
    let (_, req) = fake.fail_requests().remove(0);
    assert_eq!(req.failure_reason, Some(FailureReason::Cancelled));
    assert!(took < Duration::from_secs(5), "cancel took {took:?}");
    // The whole process group died, grandchild included.
    // (A killed grandchild may linger as a zombie until init reaps it: that is dead.)
    eventually(5, "grandchild gone", || !common::pid_alive(grandchild)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_output_is_reported_and_a_crash_fails_the_task() {
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    let _d = spawn_daemon(
        &fake.url,
        "echo 'this is not json'\necho '{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"partial\"}]}}'\necho 'segfault imminent' >&2\nexit 3",
    );
    queue(&fake, "task-g").await;
    eventually(20, "fail report", || !fake.fail_requests().is_empty()).await;
    let (_, req) = fake.fail_requests().remove(0);
    assert_eq!(req.failure_reason, Some(FailureReason::AgentError));
    assert!(
        req.error.contains("segfault imminent"),
        "stderr tail in the error: {}",
        req.error
    );
    let msgs = fake.messages("task-g");
    assert!(
        msgs.iter().any(|m| m.kind == MessageKind::Error),
        "garbage line reported as an error message: {msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.content.as_deref() == Some("partial")),
        "{msgs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_silent_past_the_inactivity_timeout_is_stopped() {
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    let _d = spawn_daemon_in(
        tempfile::tempdir().unwrap(),
        &fake.url,
        "echo '{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"s1\"}'\nexec sleep 1000",
        &["--inactivity-timeout", "1s"],
    );
    queue(&fake, "task-i").await;
    eventually(20, "fail report", || !fake.fail_requests().is_empty()).await;
    let (_, req) = fake.fail_requests().remove(0);
    assert_eq!(
        req.failure_reason,
        Some(FailureReason::InactivityTimeout),
        "{}",
        req.error
    );
    assert_eq!(req.session_id.as_deref(), Some("s1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_running_past_the_task_timeout_is_stopped() {
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    // Chatty, so the inactivity timeout never fires: only the whole-run timeout can.
    let _d = spawn_daemon_in(
        tempfile::tempdir().unwrap(),
        &fake.url,
        "while true; do echo '{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"tick\"}]}}'; sleep 0.1; done",
        &["--agent-timeout", "1s", "--inactivity-timeout", "30s"],
    );
    queue(&fake, "task-t").await;
    eventually(20, "fail report", || !fake.fail_requests().is_empty()).await;
    let (_, req) = fake.fail_requests().remove(0);
    assert_eq!(
        req.failure_reason,
        Some(FailureReason::Timeout),
        "{}",
        req.error
    );
    assert!(
        fake.messages("task-t").len() >= 3,
        "messages streamed before the timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_survive_a_server_outage_and_a_daemon_sigkill() {
    // The server refuses every report while the task runs; the daemon is then SIGKILLed
    // (no shutdown path) and restarted on the same data dir, after the server recovered.
    // Every message and the completion arrive, numbered 1..n, nothing doubled.
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    fake.set_reports_failing(true);
    let fx = fixture("claude-text.jsonl");
    let body = common::replay(&fx);
    let d = spawn_daemon_in(tempfile::tempdir().unwrap(), &fake.url, &body, &[]);
    queue(&fake, "task-k").await;
    let done_marker = d.dir.path().join("data/tasks/task-k/.done");
    eventually(20, "run finished locally", || done_marker.exists()).await;
    eventually(10, "a report was refused", || fake.refused_reports() > 0).await;
    let outbox = d.dir.path().join("data/outbox");
    let pending = std::fs::read_dir(&outbox).unwrap().count();
    assert!(
        pending >= 2,
        "messages and completion wait in the outbox ({pending})"
    );
    assert!(fake.completed().is_empty());

    let dir = d.sigkill();
    fake.set_reports_failing(false);
    let _d2 = spawn_daemon_in(dir, &fake.url, &body, &[]);
    eventually(20, "completion replayed", || !fake.completed().is_empty()).await;
    let msgs = fake.messages("task-k");
    assert!(!msgs.is_empty());
    let seqs: Vec<i64> = msgs.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=msgs.len() as i64).collect::<Vec<_>>());
    assert_eq!(fake.completed().len(), 1, "completion delivered once");
    eventually(10, "outbox drained", || {
        std::fs::read_dir(&outbox).unwrap().count() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_gives_running_agents_a_grace_then_stops_and_reports_them() {
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("daemon.toml"),
        "shutdown_grace = \"1s\"\nkill_grace = \"1s\"\n",
    )
    .unwrap();
    let mut d = spawn_daemon_in(
        dir,
        &fake.url,
        "echo '{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"s9\"}'\ntouch .git/printed\nexec sleep 1000",
        &[],
    );
    queue(&fake, "task-s").await;
    eventually(20, "task started", || {
        fake.started().contains(&"task-s".to_string())
    })
    .await;
    // Once the marker exists the init line is in the pipe: the daemon reads it even
    // while it stops the agent.
    eventually(10, "agent printed its init line", || {
        d.dir
            .path()
            .join("data/tasks/task-s/work/.git/printed")
            .exists()
    })
    .await;

    let pid = nix::unistd::Pid::from_raw(d.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::task::spawn_blocking(move || d.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "daemon exited with {status}");
    let fails = fake.fail_requests();
    assert_eq!(
        fails.len(),
        1,
        "the stopped task was reported once: {fails:?}"
    );
    assert_eq!(
        fails[0].1.failure_reason,
        Some(FailureReason::DaemonShutdown)
    );
    assert_eq!(fails[0].1.session_id.as_deref(), Some("s9"));
    assert_eq!(
        fake.deregistered().len(),
        1,
        "runtimes deregistered after the task was reported"
    );
}
