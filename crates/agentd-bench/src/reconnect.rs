//! Many daemons reconnecting after a server restart: `n` daemons (the library's `Daemon`
//! with the real HTTP/WS client and loops, one `claude` runtime each, reference
//! intervals) connected to `agentd server` through the testkit's fault proxy, which
//! counts every TCP connection accepted on the server's behalf. The server is SIGKILLed,
//! kept down for `down`, and restarted on the same address and data dir. Measured:
//! connections per second from the kill until every daemon's WS is back (the spread
//! window), the peak one-second rate against the window's mean, and register calls
//! (a restart deletes nothing, so none are expected).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use agentd_daemon::{AgentEntry, Client, ClientIdentity, Daemon, DaemonConfig, FixedVersion};
use agentd_testkit::fault_proxy::FaultProxy;
use anyhow::bail;
use tokio_util::sync::CancellationToken;

use crate::server::Server;

pub struct Reconnect {
    pub daemons: usize,
    pub down: Duration,
    pub window: Duration,
    pub connections: u64,
    pub peak_per_s: u64,
    pub mean_per_s: f64,
    /// When 99 % of the daemons had their WS back, and the mean rate up to then (the
    /// spread without the last stragglers' tail).
    pub window99: Duration,
    pub mean99_per_s: f64,
    pub registers: u64,
}

fn registers(ds: &[Arc<Daemon>]) -> u64 {
    ds.iter()
        .map(|d| d.metrics().registers.load(Ordering::Relaxed))
        .sum()
}

fn ws_up(ds: &[Arc<Daemon>]) -> usize {
    ds.iter().filter(|d| d.health().ws_connected).count()
}

pub async fn reconnect(n: usize, down: Duration) -> anyhow::Result<Reconnect> {
    let mut s = Server::start().await?;
    let (_ws, _member, token) = s.workspace("fleet").await?;
    let proxy = FaultProxy::for_url(&s.url).await;
    let dir = tempfile::tempdir()?;
    let root = CancellationToken::new();
    let _stop = root.clone().drop_guard();
    let mut ds = Vec::with_capacity(n);
    for i in 0..n {
        let data = dir.path().join(format!("d{i}"));
        std::fs::create_dir_all(&data)?;
        let mut cfg = DaemonConfig::new(&proxy.url(), &token, data);
        cfg.daemon_id = format!("fleet-{i}");
        cfg.device_name = format!("host-{i}");
        cfg.agents = vec![AgentEntry {
            provider: "claude".into(),
            path: "/bin/true".into(),
        }];
        let client = Client::new(
            &proxy.url(),
            &token,
            cfg.http_timeout,
            ClientIdentity::default(),
        );
        let d = Daemon::new(
            cfg,
            client,
            Arc::new(FixedVersion("9.9.9".into())),
            root.child_token(),
        );
        ds.push(Arc::clone(&d));
        tokio::spawn(agentd_daemon::run_daemon(d));
        // Start the fleet over a few seconds, as machines would, not in one instant.
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    while ws_up(&ds) < n {
        if Instant::now() > deadline {
            bail!("only {} of {n} daemons connected", ws_up(&ds));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Settle, so start-up traffic is over.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let regs0 = registers(&ds);
    let acc0 = proxy.accepted();
    let t0 = Instant::now();
    s.kill();
    let mut per_second: Vec<u64> = Vec::new();
    let mut last = acc0;
    let mut restarted = false;
    let mut back = None;
    let mut back99 = None;
    let mut down_seen = false;
    let deadline = t0 + down + Duration::from_secs(120);
    loop {
        let target = t0 + Duration::from_secs(per_second.len() as u64 + 1);
        while Instant::now() < target {
            if !restarted && t0.elapsed() >= down {
                s.restart().await?;
                restarted = true;
            }
            let up = ws_up(&ds);
            if up < n {
                down_seen = true;
            }
            if restarted && down_seen && up * 100 >= n * 99 && back99.is_none() {
                back99 = Some(t0.elapsed());
            }
            if restarted && down_seen && up == n && back.is_none() {
                back = Some(t0.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let acc = proxy.accepted();
        per_second.push(acc - last);
        last = acc;
        if back.is_some() {
            break;
        }
        if Instant::now() > deadline {
            bail!("after 120 s only {} of {n} WS back", ws_up(&ds));
        }
    }
    let window = back.unwrap_or_default();
    eprintln!("connections accepted per second from the kill: {per_second:?}");
    let connections: u64 = per_second.iter().sum();
    let window99 = back99.unwrap_or(window);
    let secs99 = (window99.as_secs() as usize + 1).min(per_second.len());
    let mean99_per_s = per_second[..secs99].iter().sum::<u64>() as f64 / secs99.max(1) as f64;
    Ok(Reconnect {
        daemons: n,
        down,
        window,
        connections,
        peak_per_s: per_second.iter().copied().max().unwrap_or(0),
        mean_per_s: connections as f64 / per_second.len().max(1) as f64,
        window99,
        mean99_per_s,
        registers: registers(&ds) - regs0,
    })
}
