//! Pickup latency (task queued → `POST /start` seen by the server, and → agent process
//! spawned) and cancel latency (`task_cancelled` pushed → the agent got SIGTERM), with the
//! real `agentd` binary against the testkit's fake server on loopback.
//!
//! The stand-in `claude` (a bash script) writes `$EPOCHREALTIME` to a file as its first
//! command (no fork), which is the spawn time, bash start-up included; `/start` is observed by polling the in-process
//! fake every 1 ms (so that column carries up to ~1 ms of sampling error). Tasks run one
//! at a time: each is queued on an idle daemon once the previous one completed.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use agentd_proto::Task;
use agentd_proto::ws::{TaskAvailable, TaskCancelled, WsMessage};
use agentd_testkit::fake_server::FakeServer;
use anyhow::{Context, bail};

use crate::common::{Stats, TOKEN, since, spawn_daemon, stamp, stand_in, wait_for};

pub struct Pickup {
    pub to_start: Stats,
    pub to_spawn: Stats,
}

fn body(marks: &Path) -> String {
    let m = marks.display();
    format!(
        r#"case "$AGENTD_TASK_ID" in
  cancel-*)
    trap 'echo $EPOCHREALTIME > "{m}/term-$AGENTD_TASK_ID"; exit 0' TERM
    echo '{{"type":"system","subtype":"init","session_id":"s"}}'
    : > "{m}/run-$AGENTD_TASK_ID"
    sleep 1000 &
    wait $!
    ;;
  *)
    echo $EPOCHREALTIME > "{m}/spawn-$AGENTD_TASK_ID"
    echo '{{"type":"result","subtype":"success","is_error":false,"result":"ok","session_id":"s"}}'
    ;;
esac"#
    )
}

fn task(id: &str, rid: &str) -> Task {
    Task {
        id: id.into(),
        runtime_id: rid.into(),
        issue_id: format!("issue-{id}"),
        workspace_id: "ws-1".into(),
        issue_title: "bench".into(),
        task_token: "task-token".into(),
        ..Task::default()
    }
}

struct Setup {
    fake: FakeServer,
    _daemon: crate::common::DaemonProc,
    dir: tempfile::TempDir,
    rid: String,
    ws: bool,
}

async fn setup(ws: bool, sandbox: bool) -> anyhow::Result<Setup> {
    let dir = tempfile::tempdir()?;
    let marks = dir.path().join("marks");
    std::fs::create_dir_all(&marks)?;
    stand_in(
        &dir.path().join("bin"),
        "claude",
        "2.1.330 (Claude Code)",
        &body(&marks),
    )?;
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    fake.set_ws_enabled(ws);
    let poll = if ws { "30s" } else { "1s" };
    let daemon = spawn_daemon(
        &fake.url,
        dir.path(),
        &[
            "--heartbeat-interval",
            "15s",
            "--poll-interval",
            poll,
            "--sandbox",
            if sandbox { "bwrap" } else { "off" },
        ],
    )?;
    wait_for(30.0, Duration::from_millis(20), "register", || {
        fake.register_count() >= 1
    })
    .await?;
    if ws {
        wait_for(10.0, Duration::from_millis(20), "WS connected", || {
            fake.ws_connected_clients() >= 1
        })
        .await?;
    }
    let rid = fake.runtime_id_of("claude").context("no claude runtime")?;
    Ok(Setup {
        fake,
        _daemon: daemon,
        dir,
        rid,
        ws,
    })
}

impl Setup {
    fn queue(&self, id: &str) {
        self.fake.queue_task(&self.rid, task(id, &self.rid));
        if self.ws {
            self.fake.push(&WsMessage::TaskAvailable(TaskAvailable {
                runtime_id: self.rid.clone(),
                task_id: Some(id.into()),
            }));
        }
    }

    /// Runs one task; returns (queued → /start, queued → spawn). Without WS, the task is
    /// queued `phase` into the poller's cycle (a task that completes is followed at once
    /// by an empty claim, so queueing right after the previous completion would always
    /// land just after a claim and measure ~one full interval).
    async fn one(
        &self,
        id: &str,
        done_before: usize,
        phase: Duration,
    ) -> anyhow::Result<(Duration, Duration)> {
        if !self.ws {
            tokio::time::sleep(phase).await;
        }
        let t0 = SystemTime::now();
        let i0 = Instant::now();
        self.queue(id);
        let deadline = i0 + Duration::from_secs(10);
        let to_start = loop {
            if self.fake.started().iter().any(|s| s == id) {
                break i0.elapsed();
            }
            if Instant::now() > deadline {
                bail!("task {id} never started");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        wait_for(20.0, Duration::from_millis(2), "task completed", || {
            self.fake.completed().len() > done_before
        })
        .await?;
        let spawned = stamp(&self.dir.path().join(format!("marks/spawn-{id}")))
            .with_context(|| format!("task {id}: agent never marked its spawn"))?;
        Ok((to_start, since(t0, spawned)))
    }
}

/// Pickup latency over `n` tasks (after 3 warm-up tasks), with WS wake-ups or polling
/// only, with the agent in the bubblewrap sandbox or not.
pub async fn pickup(ws: bool, sandbox: bool, n: usize) -> anyhow::Result<Pickup> {
    let s = setup(ws, sandbox).await?;
    let mut done = 0;
    for i in 0..3 {
        s.one(&format!("warm-{i}"), done, Duration::ZERO).await?;
        done += 1;
    }
    let (mut starts, mut spawns) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        // Deterministic phases spread over the 1 s poll interval.
        let phase = Duration::from_millis((i as u64 * 7919) % 1000);
        let (a, b) = s.one(&format!("t-{i}"), done, phase).await?;
        done += 1;
        starts.push(a);
        spawns.push(b);
    }
    if !s.fake.fail_requests().is_empty() {
        bail!("tasks failed: {:?}", s.fake.fail_requests());
    }
    Ok(Pickup {
        to_start: Stats::of(starts),
        to_spawn: Stats::of(spawns),
    })
}

/// `task_cancelled` over WS → SIGTERM received by the agent, over `n` running tasks.
pub async fn cancel(n: usize) -> anyhow::Result<Stats> {
    let s = setup(true, true).await?;
    let mut took = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("cancel-{i}");
        s.queue(&id);
        let run = s.dir.path().join(format!("marks/run-{id}"));
        wait_for(20.0, Duration::from_millis(5), "agent running", || {
            run.exists()
        })
        .await?;
        let t0 = SystemTime::now();
        s.fake.push(&WsMessage::TaskCancelled(TaskCancelled {
            task_id: id.clone(),
            runtime_id: None,
        }));
        wait_for(20.0, Duration::from_millis(5), "cancel reported", || {
            s.fake.fail_requests().iter().any(|(t, _)| *t == id)
        })
        .await?;
        let term = stamp(&s.dir.path().join(format!("marks/term-{id}")))
            .with_context(|| format!("{id}: the agent never saw SIGTERM"))?;
        took.push(since(t0, term));
    }
    Ok(Stats::of(took))
}
