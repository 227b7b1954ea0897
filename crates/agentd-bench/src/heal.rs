//! Self-healing at scale: `daemons` daemons × 4 runtimes (claude, codex, opencode,
//! gemini) × `workspaces` workspaces against one fake server, all runtime rows deleted
//! server-side at once. Measures the time until every runtime is registered again *and*
//! has heartbeated on its new id, and counts register calls per (daemon, workspace).
//!
//! Method: one machine runs one daemon, so 1,000 runtimes in one daemon would be a
//! different (unrealistic) system. Here 25 independent daemons (the library's `Daemon`
//! with the real HTTP/WS client, the real loops — `agentd_daemon::run_daemon`, what the
//! binary runs — and a fixed version probe instead of spawning CLIs) share one process
//! and one fake server: 25 × 4 × 10 = 1,000 runtimes, with the reference heartbeat
//! interval (15 s), so detection waits for each runtime's next heartbeat as in production.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentd_daemon::{AgentEntry, Client, ClientIdentity, Daemon, DaemonConfig, FixedVersion};
use agentd_testkit::fake_server::FakeServer;
use anyhow::bail;
use tokio_util::sync::CancellationToken;

use crate::common::{TOKEN, wait_for};

const PROVIDERS: [&str; 4] = ["claude", "codex", "opencode", "gemini"];

pub struct Heal {
    pub runtimes: usize,
    pub workspaces: usize,
    pub daemons: usize,
    pub heartbeat: Duration,
    pub registered_in: Duration,
    pub online_in: Duration,
    pub registers: usize,
    pub max_per_daemon_workspace: usize,
}

pub async fn heal(daemons: usize, workspaces: usize, heartbeat: Duration) -> anyhow::Result<Heal> {
    let names: Vec<String> = (0..workspaces).map(|i| format!("ws-{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let fake = FakeServer::start(TOKEN, &refs).await;
    let dir = tempfile::tempdir()?;
    let root = CancellationToken::new();
    let _stop = root.clone().drop_guard();
    for i in 0..daemons {
        let data = dir.path().join(format!("d{i}"));
        std::fs::create_dir_all(&data)?;
        let mut cfg = DaemonConfig::new(&fake.url, TOKEN, data);
        cfg.daemon_id = format!("bench-daemon-{i}");
        cfg.device_name = format!("host-{i}");
        cfg.heartbeat_interval = heartbeat;
        cfg.agents = PROVIDERS
            .iter()
            .map(|p| AgentEntry {
                provider: p.to_string(),
                path: "/bin/true".into(),
            })
            .collect();
        let client = Client::new(
            &fake.url,
            TOKEN,
            cfg.http_timeout,
            ClientIdentity::default(),
        );
        let d = Daemon::new(
            cfg,
            client,
            Arc::new(FixedVersion("9.9.9".into())),
            root.child_token(),
        );
        tokio::spawn(agentd_daemon::run_daemon(d));
    }
    let total = daemons * workspaces * PROVIDERS.len();
    wait_for(
        120.0,
        Duration::from_millis(50),
        "initial registration",
        || fake.live_runtime_ids().len() == total && fake.ws_connected_clients() == daemons,
    )
    .await?;
    // Let every runtime heartbeat once, so the fleet is in steady state.
    wait_for(
        heartbeat.as_secs_f64() * 3.0 + 10.0,
        Duration::from_millis(100),
        "steady state",
        || {
            let seen: HashSet<String> = fake.ws_heartbeats().into_iter().collect();
            fake.live_runtime_ids().iter().all(|id| seen.contains(id))
        },
    )
    .await?;

    let regs0 = fake.register_requests().len();
    let (hb0, ws0) = (fake.heartbeats().len(), fake.ws_heartbeats().len());
    let t0 = Instant::now();
    for p in PROVIDERS {
        fake.delete_provider(p);
    }
    let mut registered_in = None;
    let deadline = t0 + heartbeat * 4 + Duration::from_secs(60);
    let online_in = loop {
        let live = fake.live_runtime_ids();
        if live.len() == total && registered_in.is_none() {
            registered_in = Some(t0.elapsed());
        }
        if live.len() == total {
            let mut seen: HashSet<String> = fake.heartbeats()[hb0..].iter().cloned().collect();
            seen.extend(fake.ws_heartbeats()[ws0..].iter().cloned());
            if live.iter().all(|id| seen.contains(id)) {
                break t0.elapsed();
            }
        }
        if Instant::now() > deadline {
            bail!(
                "not healed after {:?}: {} of {total} runtimes live",
                t0.elapsed(),
                live.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Count a little longer: late duplicate registers would show up here.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut per: HashMap<(String, String), usize> = HashMap::new();
    let regs = fake.register_requests();
    for r in &regs[regs0..] {
        *per.entry((r.daemon_id.clone(), r.workspace_id.clone()))
            .or_default() += 1;
    }
    Ok(Heal {
        runtimes: total,
        workspaces,
        daemons,
        heartbeat,
        registered_in: registered_in.unwrap_or(online_in),
        online_in,
        registers: regs.len() - regs0,
        max_per_daemon_workspace: per.values().copied().max().unwrap_or(0),
    })
}
