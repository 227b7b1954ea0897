//! Rows of issue 13 (several instances on PostgreSQL, the cheap heartbeat path): the real
//! `agentd server` binary on SQLite (one instance), on a throwaway PostgreSQL
//! (`agentd_testkit::pg::PgCluster`, one instance) and on PostgreSQL with two instances
//! behind HAProxy (round robin, health-checking `/ready`).
//!
//! - heartbeats/s and exactly-once claims/s per deployment ([`crate::server`]'s rows,
//!   sent to the instance or to the balancer);
//! - cross-instance pickup: the real daemon (stand-in `claude`, unsandboxed) connected
//!   to instance B, each task queued through instance A's API; queued → agent spawned;
//! - idle liveness: 10,000 runtimes each heartbeating every 15 s (HTTP, spread evenly),
//!   after a warm-up of one interval (every runtime's first heartbeat on an instance is
//!   written at once): the liveness write transactions and rows per second from the
//!   instance's `/metrics`, and on PostgreSQL the connections to the database.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use serde_json::json;

use crate::common::{Stats, since, spawn_daemon_with, stamp, stand_in, wait_for};
use crate::server::Server;

/// A deployment: one or more instances, maybe a balancer, maybe a PostgreSQL cluster.
pub struct Deployment {
    pub servers: Vec<Server>,
    lb: Option<(Child, String)>,
    pub database_url: Option<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if let Some((c, _)) = self.lb.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Deployment {
    /// One instance on SQLite.
    pub async fn sqlite() -> anyhow::Result<Deployment> {
        Ok(Deployment {
            servers: vec![Server::start().await?],
            lb: None,
            database_url: None,
            _dir: tempfile::tempdir()?,
        })
    }

    /// `n` instances on a fresh database of `cluster`; HAProxy in front when `n > 1`.
    pub async fn postgres(
        cluster: &agentd_testkit::pg::PgCluster,
        n: usize,
    ) -> anyhow::Result<Deployment> {
        let url = cluster.create_database().map_err(anyhow::Error::msg)?;
        let args = ["--database-url", url.as_str()];
        let first = Server::start_with(&args).await?;
        let mut servers = vec![first];
        for _ in 1..n {
            servers.push(Server::start_sharing(&servers[0], &args).await?);
        }
        let dir = tempfile::tempdir()?;
        let lb = if n > 1 {
            Some(haproxy(dir.path(), &servers).await?)
        } else {
            None
        };
        Ok(Deployment {
            servers,
            lb,
            database_url: Some(url),
            _dir: dir,
        })
    }

    /// Where clients go: the balancer, or the one instance.
    pub fn url(&self) -> String {
        match &self.lb {
            Some((_, url)) => url.clone(),
            None => self.servers[0].url.clone(),
        }
    }
}

/// HAProxy in front of `servers` on a free port (round robin, `/ready` checked every
/// 200 ms); waits until it answers.
async fn haproxy(dir: &Path, servers: &[Server]) -> anyhow::Result<(Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let backends: String = servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "    server s{i} {} check\n",
                s.url.trim_start_matches("http://")
            )
        })
        .collect();
    let cfg = format!(
        "global\n    maxconn 4096\n\
         defaults\n    mode http\n    timeout connect 1s\n    timeout client 1h\n    \
         timeout server 1h\n    timeout tunnel 1h\n    retries 3\n    option redispatch\n\
         frontend agentd\n    bind 127.0.0.1:{port}\n    default_backend instances\n\
         backend instances\n    balance roundrobin\n    option httpchk GET /ready\n    \
         http-check expect status 200\n    default-server inter 200ms fall 2 rise 1\n{backends}"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg)?;
    let child = Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("haproxy.log"))?)
        .spawn()
        .context("spawn haproxy (scripts/install-haproxy.sh)")?;
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = http.get(format!("{url}/ready")).send().await
            && r.status().is_success()
        {
            break;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("haproxy.log")).unwrap_or_default();
            bail!("haproxy never answered on {url}: {log}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((child, url))
}

/// Queued through instance A → agent spawned by the daemon connected to instance B, `n`
/// tasks one at a time.
pub async fn cross_pickup(dep: &Deployment, n: usize) -> anyhow::Result<Stats> {
    let (a, b) = (&dep.servers[0], &dep.servers[1]);
    let (ws, member, token) = a.workspace("pickup").await?;
    let dir = tempfile::tempdir()?;
    let marks = dir.path().join("marks");
    std::fs::create_dir_all(&marks)?;
    let body = format!(
        r#"echo $EPOCHREALTIME > "{m}/spawn-$AGENTD_TASK_ID"
echo '{{"type":"result","subtype":"success","is_error":false,"result":"ok","session_id":"s"}}'"#,
        m = marks.display()
    );
    stand_in(
        &dir.path().join("bin"),
        "claude",
        "2.1.330 (Claude Code)",
        &body,
    )?;
    let _d = spawn_daemon_with(
        &b.url,
        &token,
        dir.path(),
        &[
            "--heartbeat-interval",
            "15s",
            "--poll-interval",
            "30s",
            "--sandbox",
            "off",
        ],
        "agentd_daemon=warn",
    )?;
    let path = format!("/api/v1/workspaces/{ws}/runtimes");
    let mut rid = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while rid.is_empty() {
        if Instant::now() > deadline {
            bail!("daemon never registered");
        }
        let v = a.get(&member, &path).await?;
        rid = v[0]["id"].as_str().unwrap_or_default().to_string();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its WS on B is up once B holds a connection.
    wait_ws(b).await?;
    let agent = a
        .post(
            &member,
            &format!("/api/v1/workspaces/{ws}/agents"),
            json!({"name": "bot", "runtime_id": rid}),
        )
        .await?;
    let agent = agent["id"].as_str().context("agent id")?.to_string();
    let mut lat = Vec::new();
    for i in 0..n + 2 {
        let queued = SystemTime::now();
        let issue = a
            .post(
                &member,
                &format!("/api/v1/workspaces/{ws}/issues"),
                json!({"title": format!("p{i}"), "assignee_agent_id": agent}),
            )
            .await?;
        let issue = issue["id"].as_str().context("issue id")?.to_string();
        // The task id, from A.
        let mut task = String::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while task.is_empty() {
            let v = a.get(&member, &format!("/api/v1/issues/{issue}")).await?;
            task = v["tasks"][0]["id"].as_str().unwrap_or_default().to_string();
            if Instant::now() > deadline {
                bail!("no task for issue {issue}");
            }
        }
        let mark = marks.join(format!("spawn-{task}"));
        wait_for(30.0, Duration::from_millis(1), "the agent spawned", || {
            mark.exists()
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let spawned = stamp(&mark).context("spawn stamp")?;
        if i >= 2 {
            lat.push(since(queued, spawned));
        }
        // Idle again before the next one (the completion reported).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = a.get(&member, &format!("/api/v1/issues/{issue}")).await?;
            if v["tasks"][0]["status"] == "completed" {
                break;
            }
            if Instant::now() > deadline {
                bail!("task {task} never completed: {v}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    Ok(Stats::of(lat))
}

/// Waits until `s` holds at least one daemon WebSocket.
async fn wait_ws(s: &Server) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = s.metrics().await?;
        if m.get("agentd_ws_connections").copied().unwrap_or(0.0) >= 1.0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("no daemon WebSocket on {}", s.url);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub struct IdleLiveness {
    pub runtimes: usize,
    pub heartbeats_per_sec: f64,
    pub writes_per_sec: f64,
    pub rows_per_sec: f64,
    /// PostgreSQL: connections to the database at the end (all instances, every pool).
    pub pg_connections: Option<i64>,
}

/// `runtimes` runtimes (daemons of 4 providers) each heartbeating every `every` over HTTP
/// (spread evenly), on the first instance; measured over `window` after one interval.
pub async fn idle_liveness(
    dep: &Deployment,
    cluster: Option<&agentd_testkit::pg::PgCluster>,
    runtimes: usize,
    every: Duration,
    window: Duration,
) -> anyhow::Result<IdleLiveness> {
    let s = &dep.servers[0];
    let (ws, _member, token) = s.workspace("idle").await?;
    let mut ids = Vec::with_capacity(runtimes);
    let daemons = runtimes.div_ceil(4);
    // Register 16 daemons at a time.
    let mut d = 0;
    while d < daemons {
        let names: Vec<String> = (d..(d + 16).min(daemons))
            .map(|k| format!("idle{k}"))
            .collect();
        let batch: Vec<_> = names
            .iter()
            .map(|name| {
                s.register(
                    &token,
                    &ws,
                    name,
                    &["claude", "codex", "opencode", "gemini"],
                )
            })
            .collect();
        for r in futures_util::future::join_all(batch).await {
            ids.extend(r?);
        }
        d += 16;
    }
    ids.truncate(runtimes);
    let ids = Arc::new(ids);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // 16 senders; sender k beats runtimes k, k+16, … each at its own phase.
    let senders = 16;
    let mut tasks = Vec::new();
    for k in 0..senders {
        let (ids, stop, sent, token) = (ids.clone(), stop.clone(), sent.clone(), token.clone());
        let url = format!("{}/api/daemon/heartbeat", s.url);
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mine: Vec<&String> = ids.iter().skip(k).step_by(senders).collect();
            let gap = every / mine.len().max(1) as u32;
            let start = tokio::time::Instant::now() + every * k as u32 / senders as u32 / 16;
            let mut n: u32 = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = mine[n as usize % mine.len()];
                tokio::time::sleep_until(start + gap * n).await;
                n += 1;
                if let Ok(r) = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"runtime_id": id, "active_task_ids": []}))
                    .send()
                    .await
                {
                    let _ = r.bytes().await;
                    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    // Warm-up: one interval (every first heartbeat is written at once), plus a flush.
    tokio::time::sleep(every + Duration::from_secs(2)).await;
    let m0 = s.metrics().await?;
    let sent0 = sent.load(std::sync::atomic::Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let m1 = s.metrics().await?;
    let sent1 = sent.load(std::sync::atomic::Ordering::Relaxed);
    let el = t0.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let delta = |k: &str| m1.get(k).copied().unwrap_or(0.0) - m0.get(k).copied().unwrap_or(0.0);
    let pg_connections = match (cluster, &dep.database_url) {
        (Some(c), Some(url)) => {
            let db = url.rsplit('/').next().unwrap_or_default();
            let out = c
                .psql(
                    "postgres",
                    &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}'"),
                )
                .map_err(anyhow::Error::msg)?;
            out.trim().parse().ok()
        }
        _ => None,
    };
    for t in tasks {
        t.abort();
    }
    Ok(IdleLiveness {
        runtimes: ids.len(),
        heartbeats_per_sec: (sent1 - sent0) as f64 / el,
        writes_per_sec: delta("agentd_liveness_writes_total") / el,
        rows_per_sec: delta("agentd_liveness_rows_written_total") / el,
        pg_connections,
    })
}

/// WebSocket heartbeats (`daemon:heartbeat` → `daemon:heartbeat_ack`, the daemon's
/// channel while its socket is up) against `s`: 100 runtimes (25 daemons × 4), `conns`
/// sockets each holding 4 of them, each with `window` heartbeats in flight, for `secs`.
/// Returns acks per second.
pub async fn ws_heartbeats(
    s: &Server,
    conns: usize,
    window: usize,
    secs: u64,
) -> anyhow::Result<(f64, usize)> {
    use agentd_proto::{HeartbeatRequest, WsMessage};
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let (ws, _member, token) = s.workspace("wshb").await?;
    let mut ids = Vec::new();
    for d in 0..25 {
        ids.extend(
            s.register(
                &token,
                &ws,
                &format!("w{d}"),
                &["claude", "codex", "opencode", "gemini"],
            )
            .await?,
        );
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for c in 0..conns {
        let mine: Vec<String> = (0..4)
            .map(|k| ids[(c * 4 + k) % ids.len()].clone())
            .collect();
        let url = format!(
            "{}/api/daemon/ws?runtime_ids={}",
            s.url.replace("http://", "ws://"),
            mine.join(",")
        );
        let mut req = url.into_client_request()?;
        req.headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse()?);
        let (sock, _) = tokio_tungstenite::connect_async(req).await?;
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let (mut tx, mut rx) = sock.split();
            let frame = |i: usize| {
                WsMessage::Heartbeat(HeartbeatRequest {
                    runtime_id: mine[i % mine.len()].clone(),
                    active_task_ids: Some(Vec::new()),
                })
                .encode()
            };
            let (mut sent, mut acked, mut errors) = (0usize, 0usize, 0usize);
            for _ in 0..window {
                if tx.send(Message::Text(frame(sent).into())).await.is_err() {
                    return (acked, errors + 1);
                }
                sent += 1;
            }
            while let Some(msg) = rx.next().await {
                let Ok(Message::Text(t)) = msg else {
                    if msg.is_err() {
                        errors += 1;
                        break;
                    }
                    continue;
                };
                match WsMessage::decode(t.as_str()) {
                    Ok(WsMessage::HeartbeatAck(a)) if a.status == "ok" => acked += 1,
                    Ok(WsMessage::HeartbeatAck(_)) => errors += 1,
                    _ => continue,
                }
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                if tx.send(Message::Text(frame(sent).into())).await.is_err() {
                    errors += 1;
                    break;
                }
                sent += 1;
            }
            (acked, errors)
        }));
    }
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let el = t0.elapsed().as_secs_f64();
    let (mut acked, mut errors) = (0, 0);
    for w in workers {
        let (a, e) = w.await?;
        acked += a;
        errors += e;
    }
    Ok((acked as f64 / el, errors))
}
