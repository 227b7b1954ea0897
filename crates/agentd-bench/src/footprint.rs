//! Daemon footprint: RSS (`VmRSS`/`VmHWM` of the daemon process only, from /proc) and
//! CPU (user + system time of the daemon process only) — idle with 4 runtimes at the
//! reference intervals (15 s heartbeat, 30 s poll, WS connected), then with 20 tasks
//! streaming (20 stand-in agents, each printing one message every 50 ms).

use std::time::{Duration, Instant};

use agentd_proto::Task;
use agentd_proto::ws::{TaskAvailable, WsMessage};
use agentd_testkit::fake_server::FakeServer;
use anyhow::{Context, bail};

use crate::common::{TOKEN, cpu_time, rss_kib, spawn_daemon, stand_in, wait_for};

pub struct Footprint {
    pub idle_secs: u64,
    pub idle_rss_kib: u64,
    pub idle_cpu_pct: f64,
    pub tasks: usize,
    pub lines_per_task: usize,
    pub stream_secs: f64,
    pub stream_rss_max_kib: u64,
    pub stream_cpu_pct: f64,
    pub messages_stored: usize,
}

pub async fn footprint(idle_secs: u64, tasks: usize, lines: usize) -> anyhow::Result<Footprint> {
    let dir = tempfile::tempdir()?;
    let bin = dir.path().join("bin");
    let body = format!(
        r#"echo '{{"type":"system","subtype":"init","session_id":"s"}}'
i=0
while [ $i -lt {lines} ]; do
  echo "{{\"type\":\"assistant\",\"message\":{{\"content\":[{{\"type\":\"text\",\"text\":\"tick $i\"}}]}}}}"
  sleep 0.05
  i=$((i+1))
done
echo '{{"type":"result","subtype":"success","is_error":false,"result":"ok","session_id":"s"}}'"#
    );
    stand_in(&bin, "claude", "2.1.330 (Claude Code)", &body)?;
    stand_in(&bin, "codex", "codex-cli 0.169.0", "exit 1")?;
    stand_in(&bin, "opencode", "1.4.0", "exit 1")?;
    stand_in(&bin, "gemini", "0.30.0", "exit 1")?;
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    let d = spawn_daemon(
        &fake.url,
        dir.path(),
        &["--heartbeat-interval", "15s", "--poll-interval", "30s"],
    )?;
    let pid = d.pid();
    wait_for(
        30.0,
        Duration::from_millis(50),
        "4 runtimes registered",
        || fake.live_runtime_ids().len() == 4 && fake.ws_connected_clients() == 1,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let c0 = cpu_time(pid).context("cpu")?;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let idle_cpu = cpu_time(pid).context("cpu")? - c0;
    let idle_wall = t0.elapsed();
    let (idle_rss, _) = rss_kib(pid).context("rss")?;

    let rid = fake.runtime_id_of("claude").context("claude runtime")?;
    let c0 = cpu_time(pid).context("cpu")?;
    let t0 = Instant::now();
    for i in 0..tasks {
        let id = format!("stream-{i}");
        fake.queue_task(
            &rid,
            Task {
                id: id.clone(),
                runtime_id: rid.clone(),
                issue_id: format!("issue-{i}"),
                workspace_id: "ws-1".into(),
                issue_title: "stream".into(),
                task_token: "task-token".into(),
                ..Task::default()
            },
        );
        fake.push(&WsMessage::TaskAvailable(TaskAvailable {
            runtime_id: rid.clone(),
            task_id: Some(id),
        }));
    }
    let mut rss_max = 0;
    let deadline = t0 + Duration::from_secs(60 + (lines as u64 / 10));
    while fake.completed().len() + fake.fail_requests().len() < tasks {
        if Instant::now() > deadline {
            bail!("streaming tasks did not finish");
        }
        if let Some((rss, _)) = rss_kib(pid) {
            rss_max = rss_max.max(rss);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stream_cpu = cpu_time(pid).context("cpu")? - c0;
    let stream_wall = t0.elapsed();
    if !fake.fail_requests().is_empty() {
        bail!("streaming tasks failed: {:?}", fake.fail_requests());
    }
    let stored: usize = (0..tasks)
        .map(|i| fake.messages(&format!("stream-{i}")).len())
        .sum();
    Ok(Footprint {
        idle_secs,
        idle_rss_kib: idle_rss,
        idle_cpu_pct: 100.0 * idle_cpu.as_secs_f64() / idle_wall.as_secs_f64(),
        tasks,
        lines_per_task: lines,
        stream_secs: stream_wall.as_secs_f64(),
        stream_rss_max_kib: rss_max,
        stream_cpu_pct: 100.0 * stream_cpu.as_secs_f64() / stream_wall.as_secs_f64(),
        messages_stored: stored,
    })
}
