//! Fault drills: the real `agentd daemon` binary talking to the testkit's fake server
//! through the testkit's fault-injecting TCP proxy (loopback only). Each drill breaks the
//! network or the disk in one way and asserts what the daemon must do: stay alive, say
//! what is wrong on `/health`, recover without a restart, lose nothing and duplicate
//! nothing (messages counted by seq against what the agent printed), and not storm the
//! server with registers.
//!
//! Knobs (all optional):
//! - `AGENTD_DRILL_OUTAGE_SECS` (default 20): length of the outage in the
//!   unreachable-server drill. `120` reproduces the issue's two-minute drill.
//! - `AGENTD_DRILL_BACKOFF_WINDOW_SECS` (default 35): how long the register-500 drill
//!   counts register calls (must exceed the 30 s workspace-sync interval to see it).
//!
//! A daemon SIGKILLed mid-task and restarted is drilled in `task_e2e.rs`
//! (`reports_survive_a_server_outage_and_a_daemon_sigkill`).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use agentd_proto::ws::{TaskAvailable, WsMessage};
use agentd_proto::{FailureReason, Task};
use agentd_testkit::fake_server::{FakeServer, RegisterMode};
use agentd_testkit::fault_proxy::{FaultProxy, Mode};
use tokio::time::Instant;

const TOKEN: &str = "drill-token";

fn env_secs(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../agentd-daemon/tests/fixtures/agent-output")
        .join(name)
}

/// Writes a stand-in `claude` (answers `--version`, runs `body` otherwise) into `dir/bin`.
fn stand_in(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let p = bin.join("claude");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\nif [ \"$1\" = \"--version\" ]; then echo '2.1.330 (Claude Code)'; exit 0; fi\n{body}\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
}

impl Daemon {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// True while the process has not exited.
    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the daemon binary against `url` with 1 s heartbeats and 1 s polling, its data
/// dir at `dir/data` (which may already exist, e.g. a mounted filesystem).
fn spawn_daemon_in(dir: tempfile::TempDir, url: &str, body: &str) -> Daemon {
    let bin = stand_in(dir.path(), body);
    let bin = bin.parent().unwrap().to_path_buf();
    std::fs::write(dir.path().join("daemon.toml"), "").unwrap();
    let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_agentd"))
        .args(["daemon", "--server-url", url, "--token", TOKEN])
        .args(["--heartbeat-interval", "1s", "--poll-interval", "1s"])
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

fn spawn_daemon(url: &str, body: &str) -> Daemon {
    spawn_daemon_in(tempfile::tempdir().unwrap(), url, body)
}

async fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The daemon's `/health` `status`, or None while the endpoint is not up.
async fn health_status(data: &Path) -> Option<String> {
    let addr = std::fs::read_to_string(data.join("daemon.health")).ok()?;
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{}/health", addr.trim()))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body.get("status")?.as_str().map(str::to_string)
}

async fn eventually_health(data: &Path, secs: u64, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = health_status(data).await;
        if got.as_deref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/health status never became {want} (last: {got:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn task(id: &str, rid: &str) -> Task {
    Task {
        id: id.into(),
        runtime_id: rid.into(),
        issue_id: format!("issue-{id}"),
        workspace_id: "ws-1".into(),
        issue_title: "Drill".into(),
        task_token: "task-token".into(),
        ..Task::default()
    }
}

/// Queues a task and wakes the daemon over WS (a push to a dead WS goes nowhere: then
/// polling must find it).
fn queue(fake: &FakeServer, id: &str, rid: &str) {
    fake.queue_task(rid, task(id, rid));
    fake.push(&WsMessage::TaskAvailable(TaskAvailable {
        runtime_id: rid.into(),
        task_id: Some(id.into()),
    }));
}

/// Messages stored for a task must be numbered 1..n with no gap.
fn assert_contiguous(fake: &FakeServer, task_id: &str) -> usize {
    let seqs: Vec<i64> = fake.messages(task_id).iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "seqs of {task_id} are 1..n"
    );
    seqs.len()
}

/// Waits until the daemon registered, is `running` and has its WS up; returns the
/// claude runtime id.
async fn settled(fake: &FakeServer, d: &Daemon) -> String {
    eventually(20, "register", || fake.register_count() >= 1).await;
    eventually(10, "WS connected", || fake.ws_connected_clients() >= 1).await;
    eventually_health(&d.data(), 10, "running").await;
    fake.runtime_id_of("claude").unwrap()
}

/// (a) The server is unreachable for a while (every connection closed at once, new ones
/// dropped), a task is queued meanwhile; then the server is back. The daemon stays up,
/// says `server_unreachable` during and `running` after, runs the task, and does not
/// re-register (its runtimes were never deleted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_unreachable_then_back_recovers_without_restart_or_register_storm() {
    let outage = Duration::from_secs(env_secs("AGENTD_DRILL_OUTAGE_SECS", 20));
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    let proxy = FaultProxy::for_url(&fake.url).await;
    let body = common::replay(&fixture("claude-text.jsonl"));
    let mut d = spawn_daemon(&proxy.url(), &body);
    let rid = settled(&fake, &d).await;
    let registers_before = fake.register_count();

    proxy.set_mode(Mode::Drop);
    proxy.reset_all();
    let down_at = Instant::now();
    eventually_health(&d.data(), 10, "server_unreachable").await;
    let noticed = down_at.elapsed();
    queue(&fake, "task-outage", &rid);
    // Hold the outage, checking every second that the daemon lives and keeps saying so.
    while down_at.elapsed() < outage {
        assert!(d.alive(), "daemon exited during the outage:\n{}", d.log());
        assert_eq!(
            health_status(&d.data()).await.as_deref(),
            Some("server_unreachable")
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        fake.started().is_empty(),
        "nothing reached the server during the outage"
    );
    let dropped = proxy.dropped();
    assert!(dropped > 0, "the daemon kept trying during the outage");

    proxy.set_mode(Mode::Pass);
    let back_at = Instant::now();
    eventually_health(&d.data(), 30, "running").await;
    let recovered = back_at.elapsed();
    eventually(30, "task queued during the outage completes", || {
        !fake.completed().is_empty()
    })
    .await;
    let picked = back_at.elapsed();
    assert_eq!(fake.started(), ["task-outage"]);
    assert_eq!(fake.completed().len(), 1, "completed once");
    assert!(assert_contiguous(&fake, "task-outage") > 0);
    // The WS reconnect backs off during the outage (full jitter, capped at 30 s), so it
    // may come back up to 30 s after the server did; polling covers the gap.
    eventually(35, "WS back", || fake.ws_connected_clients() >= 1).await;
    let ws_back = back_at.elapsed();
    assert_eq!(
        fake.register_count(),
        registers_before,
        "no re-register after an outage that deleted nothing"
    );
    assert!(d.alive());
    eprintln!(
        "DRILL unreachable: outage {outage:?}, noticed in {noticed:?}, {dropped} connections refused, \
         running again {recovered:?} after the server returned, task done after {picked:?}, \
         WS back after {ws_back:?}, registers {} (before {registers_before})",
        fake.register_count()
    );
}

/// What the fake heard from one runtime while [`watch_heartbeats`] sampled.
struct Beats {
    /// Longest stretch without any heartbeat (HTTP or WS).
    max_silence: Duration,
    /// Longest stretch without an HTTP heartbeat.
    max_http_gap: Duration,
    http: usize,
    ws: usize,
    resets: usize,
}

/// Samples the fake's heartbeat logs every 20 ms for `secs`, resetting the daemon's WS
/// connection through the proxy every 2 s (first reset at once).
async fn watch_heartbeats(fake: &FakeServer, proxy: &FaultProxy, rid: &str, secs: u64) -> Beats {
    let count = |v: Vec<String>| v.iter().filter(|h| *h == rid).count();
    let start = Instant::now();
    let (http0, ws0) = (count(fake.heartbeats()), count(fake.ws_heartbeats()));
    let (mut http, mut ws) = (http0, ws0);
    let (mut last_any, mut last_http) = (start, start);
    let (mut max_silence, mut max_http_gap) = (Duration::ZERO, Duration::ZERO);
    let mut next_reset = start;
    let mut resets = 0;
    while start.elapsed() < Duration::from_secs(secs) {
        if Instant::now() >= next_reset {
            resets += proxy.reset_websockets();
            next_reset += Duration::from_secs(2);
        }
        let (h, w) = (count(fake.heartbeats()), count(fake.ws_heartbeats()));
        if h > http {
            max_http_gap = max_http_gap.max(last_http.elapsed());
            last_http = Instant::now();
        }
        if h > http || w > ws {
            max_silence = max_silence.max(last_any.elapsed());
            last_any = Instant::now();
        }
        (http, ws) = (h, w);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Beats {
        max_silence: max_silence.max(last_any.elapsed()),
        max_http_gap: max_http_gap.max(last_http.elapsed()),
        http: http - http0,
        ws: ws - ws0,
        resets,
    }
}

/// (b) The WS connection is reset (RST) every 2 s, with `--heartbeat-interval 1s`.
/// Phase 1 (8 s): the WS reconnects at once; between the WS heartbeats of each new
/// connection and HTTP heartbeats (which resume as soon as the WS drops), the server
/// never goes 2.5 s without hearing from the runtime. Phase 2 (8 s): the reconnected WS
/// is dead (accepted, never answered), so only HTTP carries liveness: an HTTP heartbeat
/// in every 2.5 s. No re-register, `running` throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_reset_every_two_seconds_http_heartbeats_take_over() {
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    let proxy = FaultProxy::for_url(&fake.url).await;
    let d = spawn_daemon(&proxy.url(), "exit 0");
    let rid = settled(&fake, &d).await;
    eventually(10, "a WS heartbeat", || fake.ws_heartbeats().contains(&rid)).await;

    let ws_connects0 = fake.ws_connects();
    let p1 = watch_heartbeats(&fake, &proxy, &rid, 8).await;
    let reconnects = fake.ws_connects() - ws_connects0;
    eprintln!(
        "DRILL ws-reset phase 1: {} WS resets, {reconnects} reconnects, {} HTTP + {} WS heartbeats, \
         longest silence {:?}",
        p1.resets, p1.http, p1.ws, p1.max_silence
    );
    assert!(
        p1.resets >= 3,
        "the WS was reset repeatedly ({})",
        p1.resets
    );
    assert!(
        reconnects >= 3,
        "the WS came back after resets ({reconnects})"
    );
    assert!(
        p1.max_silence <= Duration::from_millis(2500),
        "the server went {:?} without a heartbeat",
        p1.max_silence
    );
    assert_eq!(health_status(&d.data()).await.as_deref(), Some("running"));

    // Phase 2: new WS sessions are silent; reset the live one so the daemon gets one.
    fake.set_ws_silent(true);
    proxy.reset_websockets();
    let http_now = fake.heartbeats().iter().filter(|h| **h == rid).count();
    eventually(4, "HTTP heartbeats resume once the WS is dead", || {
        fake.heartbeats().iter().filter(|h| **h == rid).count() > http_now
    })
    .await;
    let p2 = watch_heartbeats(&fake, &proxy, &rid, 8).await;
    eprintln!(
        "DRILL ws-reset phase 2 (dead WS): {} WS resets, {} HTTP heartbeats, longest HTTP gap {:?}",
        p2.resets, p2.http, p2.max_http_gap
    );
    assert!(
        p2.http >= 5,
        "HTTP heartbeats carried liveness ({})",
        p2.http
    );
    assert!(
        p2.max_http_gap <= Duration::from_millis(2500),
        "{:?} without an HTTP heartbeat while the WS was dead",
        p2.max_http_gap
    );
    assert_eq!(fake.register_count(), 1, "never re-registered");
    assert_eq!(health_status(&d.data()).await.as_deref(), Some("running"));
}

/// (d) Register answers 500 after every runtime was deleted server-side (two
/// workspaces). The daemon tries once per workspace, then honours the 60 s failure
/// backoff: within the window (35 s) no workspace is registered a second time — not by
/// the recovery, not by the workspace-sync safety net (which goes through the same gate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_500s_honour_the_failure_backoff() {
    let window = Duration::from_secs(env_secs("AGENTD_DRILL_BACKOFF_WINDOW_SECS", 35));
    let fake = FakeServer::start(TOKEN, &["ws-1", "ws-2"]).await;
    let proxy = FaultProxy::for_url(&fake.url).await;
    let mut d = spawn_daemon(&proxy.url(), "exit 0");
    eventually(20, "both workspaces registered", || {
        fake.register_count() == 2
    })
    .await;
    eventually_health(&d.data(), 10, "running").await;
    let before = fake.register_requests().len();

    fake.set_register_mode(RegisterMode::Fail(500));
    fake.delete_provider("claude");
    let deleted_at = Instant::now();
    // When each register call arrived (sampled every 50 ms), per workspace.
    let mut calls: HashMap<String, Vec<Duration>> = HashMap::new();
    let mut seen = before;
    while deleted_at.elapsed() < window {
        assert!(d.alive(), "daemon exited:\n{}", d.log());
        let reqs = fake.register_requests();
        for r in &reqs[seen..] {
            calls
                .entry(r.workspace_id.clone())
                .or_default()
                .push(deleted_at.elapsed());
        }
        seen = reqs.len();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "DRILL register-500: register calls per workspace within {window:?} (s after the deletion): {calls:?}"
    );
    for ws in ["ws-1", "ws-2"] {
        let at = calls.get(ws).cloned().unwrap_or_default();
        assert!(
            at.first().is_some_and(|t| *t < Duration::from_secs(5)),
            "{ws}: one prompt re-register attempt: {at:?}"
        );
        assert_eq!(
            at.len(),
            1,
            "{ws}: register calls within {window:?} of a failed register (60 s failure backoff): {at:?}"
        );
    }
    assert!(d.alive());
}

/// (e) An agent prints 500 known messages while every connection to the server is reset
/// several times: the server stores exactly those 500, numbered 1..500, each text once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_survive_connection_resets_exactly_once() {
    const N: usize = 500;
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    let proxy = FaultProxy::for_url(&fake.url).await;
    let body = format!(
        r#"echo '{{"type":"system","subtype":"init","session_id":"s-e"}}'
i=1
while [ $i -le {N} ]; do
  echo "{{\"type\":\"assistant\",\"message\":{{\"content\":[{{\"type\":\"text\",\"text\":\"line $i\"}}]}}}}"
  if [ $((i % 25)) -eq 0 ]; then sleep 0.2; fi
  i=$((i+1))
done
echo '{{"type":"result","subtype":"success","is_error":false,"result":"done","session_id":"s-e"}}'"#
    );
    let d = spawn_daemon(&proxy.url(), &body);
    let rid = settled(&fake, &d).await;
    queue(&fake, "task-e", &rid);
    eventually(20, "first message stored", || {
        !fake.messages("task-e").is_empty()
    })
    .await;
    // Reset every connection every 500 ms until the run is reported complete.
    let mut resets_mid_run = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while fake.completed().is_empty() {
        assert!(Instant::now() < deadline, "task never completed");
        if fake.messages("task-e").len() < N {
            proxy.reset_all();
            resets_mid_run += 1;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let msgs = fake.messages("task-e");
    let n = assert_contiguous(&fake, "task-e");
    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in &msgs {
        *seen
            .entry(m.content.clone().unwrap_or_default())
            .or_default() += 1;
    }
    let missing: Vec<usize> = (1..=N)
        .filter(|k| !seen.contains_key(&format!("line {k}")))
        .collect();
    let doubled: Vec<&String> = seen
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(t, _)| t)
        .collect();
    eprintln!(
        "DRILL resets: {resets_mid_run} resets of every connection mid-run; stored {n} messages, \
         {} missing, {} doubled",
        missing.len(),
        doubled.len()
    );
    assert!(
        resets_mid_run >= 3,
        "connections were reset mid-run ({resets_mid_run})"
    );
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert!(doubled.is_empty(), "duplicated: {doubled:?}");
    assert_eq!(n, N, "exactly the agent's {N} messages");
    assert_eq!(fake.completed().len(), 1, "completed once");
    assert!(fake.fail_requests().is_empty());
}

/// (c) Every response slower than the daemon's HTTP timeout, then normal again. The
/// binary has no flag for its 30 s HTTP timeout, so this drill runs the daemon library
/// (`agentd_daemon::run`, what the binary runs) with a 1 s timeout behind a proxy adding
/// 1.5 s per chunk: calls time out, `/health` says `server_unreachable`, the daemon stays
/// up; once the delay is lifted it is `running` again and runs a task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_slower_than_the_client_timeout() {
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    let proxy = FaultProxy::for_url(&fake.url).await;
    let dir = tempfile::tempdir().unwrap();
    let body = common::replay(&fixture("claude-text.jsonl"));
    let claude = stand_in(dir.path(), &body);
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut cfg = agentd_daemon::DaemonConfig::new(&proxy.url(), TOKEN, data.clone());
    cfg.daemon_id = "drill-slow".into();
    cfg.agents = vec![agentd_daemon::AgentEntry {
        provider: "claude".into(),
        path: claude,
    }];
    cfg.heartbeat_interval = Duration::from_secs(1);
    cfg.poll_interval = Duration::from_secs(1);
    cfg.http_timeout = Duration::from_secs(1);
    cfg.health_addr = Some("127.0.0.1:0".parse().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    let daemon = tokio::spawn(agentd_daemon::run(cfg, stop.clone()));
    eventually(20, "register", || fake.register_count() == 1).await;
    eventually_health(&data, 10, "running").await;
    let rid = fake.runtime_id_of("claude").unwrap();

    proxy.set_mode(Mode::Delay(Duration::from_millis(1500)));
    let slow_at = Instant::now();
    eventually_health(&data, 15, "server_unreachable").await;
    let noticed = slow_at.elapsed();
    // Stay slow a few timeouts long.
    while slow_at.elapsed() < Duration::from_secs(6) {
        assert!(
            !daemon.is_finished(),
            "daemon stopped while the server was slow"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    proxy.set_mode(Mode::Pass);
    // Connections opened while slow may still hold delayed chunks: cut them.
    proxy.reset_all();
    let back_at = Instant::now();
    eventually_health(&data, 20, "running").await;
    let recovered = back_at.elapsed();
    queue(&fake, "task-slow", &rid);
    eventually(30, "task completes after the slowness", || {
        !fake.completed().is_empty()
    })
    .await;
    assert_eq!(fake.completed().len(), 1);
    assert!(assert_contiguous(&fake, "task-slow") > 0);
    assert_eq!(
        fake.register_count(),
        1,
        "slowness is not a deletion: no re-register"
    );
    assert!(!daemon.is_finished());
    eprintln!(
        "DRILL slow: timeouts noticed after {noticed:?}; running again {recovered:?} after the delay was lifted"
    );
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(20), daemon).await;
}

/// Unmounts a test filesystem when dropped.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// (f) The data dir's filesystem is full when a task arrives: the task fails with
/// `disk_full` and an error naming the cause, the daemon stays alive, and once space is
/// freed the next task runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_fails_the_task_clearly_and_the_daemon_lives() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&data)
        .stderr(Stdio::piped())
        .output();
    let reason = match &mounted {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => Some(e.to_string()),
    };
    if let Some(reason) = reason {
        println!("SKIP disk-full drill: cannot mount a small tmpfs here: {reason}");
        return;
    }
    let mount = Mount(data.clone());

    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    let body = common::replay(&fixture("claude-text.jsonl"));
    let mut d = spawn_daemon_in(dir, &fake.url, &body);
    let rid = settled(&fake, &d).await;

    // Fill the filesystem to the last byte.
    let filler = data.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        let small = [0u8; 1];
        while f.write(&small).map(|n| n > 0).unwrap_or(false) {}
    }

    queue(&fake, "task-full", &rid);
    eventually(30, "the task is failed", || {
        !fake.fail_requests().is_empty()
    })
    .await;
    let (id, req) = fake.fail_requests().remove(0);
    eprintln!(
        "DRILL disk-full: {id} failed with {:?}: {}",
        req.failure_reason, req.error
    );
    assert_eq!(id, "task-full");
    assert_eq!(
        req.failure_reason,
        Some(FailureReason::DiskFull),
        "a clear disk-full failure: {req:?}"
    );
    assert!(req.error.contains("No space left on device"), "{req:?}");
    assert!(fake.completed().is_empty());
    assert!(d.alive(), "daemon died on a full disk:\n{}", d.log());
    assert!(health_status(&d.data()).await.is_some(), "/health answers");

    // Space is back: the next task runs.
    std::fs::remove_file(&filler).unwrap();
    queue(&fake, "task-after", &rid);
    eventually(30, "the next task completes", || {
        fake.completed().iter().any(|(id, _)| id == "task-after")
    })
    .await;
    assert!(d.alive());
    // Stop the daemon and unmount before its temp dir is removed.
    let _ = d.child.kill();
    let _ = d.child.wait();
    drop(mount);
    drop(d);
}
