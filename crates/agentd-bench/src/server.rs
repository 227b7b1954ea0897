//! Rows that need the real control-plane server: `agentd server` (the binary) on
//! loopback, driven over HTTP by this process.
//!
//! - Heartbeat throughput: `conc` concurrent clients POST `/api/daemon/heartbeat` for
//!   `secs`, spread over 100 registered runtimes (25 daemons × 4 providers).
//! - Claim throughput and correctness: 1,000 tasks queued (1,000 issues assigned to
//!   agents on 10 runtimes), drained by 2 concurrent claimers per runtime; every task
//!   must be handed out exactly once.
//! - A lost claim response → task running: the real daemon talks to the server through
//!   the testkit's fault proxy, which resets the connection carrying the claim's answer
//!   (the server handed the task out; the daemon never heard). The daemon retries with
//!   the same idempotency key and gets the same task. Measured from issue creation to the
//!   task's `running` status on the server, against the same path without the fault.
//! - A dead daemon → its runtime offline: the real daemon binary registered and on WS,
//!   SIGKILLed; time until the server lists its runtime as offline.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use agentd_testkit::fault_proxy::{FaultProxy, Mode};

use crate::common::{Stats, agentd_exe, spawn_daemon_with, stand_in, wait_for};

pub struct Server {
    child: Child,
    pub url: String,
    pub admin: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub async fn start() -> anyhow::Result<Server> {
        Self::start_with(&[]).await
    }

    /// [`Server::start`] with extra `agentd server` flags.
    pub async fn start_with(args: &[&str]) -> anyhow::Result<Server> {
        let dir = tempfile::tempdir()?;
        let (child, url) = Self::spawn(dir.path(), "127.0.0.1:0", args).await?;
        let admin = std::fs::read_to_string(dir.path().join("server/admin-token"))?
            .trim()
            .to_string();
        Ok(Server {
            child,
            url,
            admin,
            http: reqwest::Client::new(),
            _dir: dir,
        })
    }

    /// Another instance on the same database as `first` (`args` name it: `--database-url`):
    /// its own data dir holding a copy of `first`'s admin token.
    pub async fn start_sharing(first: &Server, args: &[&str]) -> anyhow::Result<Server> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("server"))?;
        std::fs::copy(
            first._dir.path().join("server/admin-token"),
            dir.path().join("server/admin-token"),
        )?;
        let (child, url) = Self::spawn(dir.path(), "127.0.0.1:0", args).await?;
        Ok(Server {
            child,
            url,
            admin: first.admin.clone(),
            http: reqwest::Client::new(),
            _dir: dir,
        })
    }

    /// The last 2,000 bytes of the server's log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self._dir.path().join("server.log")).unwrap_or_default();
        log[log.len().saturating_sub(2000)..].to_string()
    }

    /// `GET /metrics`: the value of each sample, by name.
    pub async fn metrics(&self) -> anyhow::Result<std::collections::HashMap<String, f64>> {
        // A fresh connection each time: a pooled one idle for the server's header-read
        // timeout (30 s, the length of a measuring window) may be closed as it is reused.
        let text = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()?
            .get(format!("{}/metrics", self.url))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_string(), v.trim().parse().ok()?))
            })
            .collect())
    }

    /// Starts `agentd server` on `listen` with its data in `dir/server`; returns its URL.
    async fn spawn(dir: &Path, listen: &str, args: &[&str]) -> anyhow::Result<(Child, String)> {
        let out = dir.join("server.out");
        let _ = std::fs::remove_file(&out);
        let child = Command::new(agentd_exe()?)
            .args(["server", "--listen", listen, "--json", "--data-dir"])
            .arg(dir.join("server"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out)?)
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("server.log"))?,
            )
            .spawn()
            .context("spawn agentd server")?;
        let mut url = String::new();
        wait_for(20.0, Duration::from_millis(20), "server URL", || {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if let Some(v) = text
                .lines()
                .next()
                .and_then(|l| serde_json::from_str::<Value>(l).ok())
            {
                url = v["url"].as_str().unwrap_or_default().to_string();
            }
            !url.is_empty()
        })
        .await?;
        Ok((child, url))
    }

    /// SIGKILLs the server (no graceful close of its connections).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same address and data dir.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let listen = self.url.trim_start_matches("http://").to_string();
        let (child, _) = Self::spawn(self._dir.path(), &listen, &[]).await?;
        self.child = child;
        Ok(())
    }

    async fn call(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("{path}: {status}: {text}");
        }
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, token, path, Some(body))
            .await
    }

    pub async fn put(&self, token: &str, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::PUT, token, path, Some(body))
            .await
    }

    pub async fn get(&self, token: &str, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, token, path, None).await
    }

    /// A workspace, a member token (the user API) and a daemon token (the daemon API) for
    /// it: `(workspace, member, daemon)`.
    pub async fn workspace(&self, name: &str) -> anyhow::Result<(String, String, String)> {
        let ws = self
            .post(&self.admin, "/api/v1/workspaces", json!({"name": name}))
            .await?;
        let ws = ws["id"].as_str().context("workspace id")?.to_string();
        let mut tokens = Vec::new();
        for kind in ["member", "daemon"] {
            let tok = self
                .post(
                    &self.admin,
                    "/api/v1/tokens",
                    json!({"name": "bench", "kind": kind, "workspace_ids": [ws]}),
                )
                .await?;
            tokens.push(tok["token"].as_str().context("token")?.to_string());
        }
        let daemon = tokens.pop().context("daemon token")?;
        let member = tokens.pop().context("member token")?;
        Ok((ws, member, daemon))
    }

    /// Registers `providers` for `daemon` in `ws`; returns the runtime ids.
    pub async fn register(
        &self,
        token: &str,
        ws: &str,
        daemon: &str,
        providers: &[&str],
    ) -> anyhow::Result<Vec<String>> {
        let runtimes: Vec<Value> = providers
            .iter()
            .map(|p| json!({"name": format!("{p} ({daemon})"), "type": p, "version": "9.9.9", "status": "online"}))
            .collect();
        let v = self
            .post(
                token,
                "/api/daemon/register",
                json!({"workspace_id": ws, "daemon_id": daemon, "device_name": daemon, "runtimes": runtimes}),
            )
            .await?;
        Ok(v["runtimes"]
            .as_array()
            .context("runtimes")?
            .iter()
            .filter_map(|r| r["id"].as_str().map(str::to_string))
            .collect())
    }
}

pub struct Throughput {
    pub per_sec: f64,
    pub latency: Stats,
    pub errors: usize,
}

/// `conc` clients heartbeating 100 runtimes for `secs`.
pub async fn heartbeats(conc: usize, secs: u64) -> anyhow::Result<Throughput> {
    let s = Server::start().await?;
    let url = s.url.clone();
    heartbeats_on(&s, &url, conc, secs).await
}

/// [`heartbeats`] on a running deployment: set up through `s`, heartbeats sent to
/// `target` (`s` itself, or a balancer in front of several instances).
pub async fn heartbeats_on(
    s: &Server,
    target: &str,
    conc: usize,
    secs: u64,
) -> anyhow::Result<Throughput> {
    let (ws, _member, token) = s.workspace("hb").await?;
    let mut ids = Vec::new();
    for d in 0..25 {
        ids.extend(
            s.register(
                &token,
                &ws,
                &format!("d{d}"),
                &["claude", "codex", "opencode", "gemini"],
            )
            .await?,
        );
    }
    let ids = Arc::new(ids);
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    let start = Instant::now();
    for w in 0..conc {
        let (http, url, ids, stop, token) = (
            reqwest::Client::new(),
            format!("{target}/api/daemon/heartbeat"),
            Arc::clone(&ids),
            Arc::clone(&stop),
            token.clone(),
        );
        workers.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut i) = (Vec::new(), 0usize, w);
            while !stop.load(Ordering::Relaxed) {
                let id = &ids[i % ids.len()];
                i += conc;
                let t = Instant::now();
                let sent = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"runtime_id": id, "active_task_ids": []}))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed())
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut all, mut errors) = (Vec::new(), 0);
    for w in workers {
        let (l, e) = w.await?;
        all.extend(l);
        errors += e;
    }
    let el = start.elapsed().as_secs_f64();
    Ok(Throughput {
        per_sec: all.len() as f64 / el,
        latency: Stats::of(all),
        errors,
    })
}

pub struct Claims {
    pub tasks: usize,
    pub claimed: usize,
    pub unique: usize,
    pub per_sec: f64,
    pub queued_in: Duration,
}

/// 1,000 tasks over 10 runtimes, drained by 2 claimers per runtime.
pub async fn claims(tasks: usize) -> anyhow::Result<Claims> {
    let s = Server::start().await?;
    let url = s.url.clone();
    claims_on(&s, &url, tasks).await
}

/// [`claims`] on a running deployment: set up through `s`, claims sent to `target`.
pub async fn claims_on(s: &Server, target: &str, tasks: usize) -> anyhow::Result<Claims> {
    let (ws, member, token) = s.workspace("claims").await?;
    let mut agents = Vec::new();
    let mut runtimes = Vec::new();
    for d in 0..10 {
        let rid = s
            .register(&token, &ws, &format!("d{d}"), &["claude"])
            .await?
            .remove(0);
        let a = s
            .post(
                &member,
                &format!("/api/v1/workspaces/{ws}/agents"),
                json!({"name": format!("bot{d}"), "runtime_id": rid}),
            )
            .await?;
        agents.push(a["id"].as_str().context("agent id")?.to_string());
        runtimes.push(rid);
    }
    let t = Instant::now();
    for i in 0..tasks {
        s.post(
            &member,
            &format!("/api/v1/workspaces/{ws}/issues"),
            json!({"title": format!("issue {i}"), "assignee_agent_id": agents[i % agents.len()]}),
        )
        .await?;
    }
    let queued_in = t.elapsed();
    let t = Instant::now();
    let mut claimers = Vec::new();
    for rid in runtimes.iter().flat_map(|r| [r.clone(), r.clone()]) {
        let (http, target, token) = (reqwest::Client::new(), target.to_string(), token.clone());
        claimers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let key = uuid_like(&rid, got.len());
                let v = http
                    .post(format!("{target}/api/daemon/runtimes/{rid}/tasks/claim"))
                    .bearer_auth(&token)
                    .header("Idempotency-Key", key)
                    .json(&json!({}))
                    .send()
                    .await?
                    .json::<Value>()
                    .await?;
                match v["task"]["id"].as_str() {
                    Some(id) => got.push(id.to_string()),
                    None => return anyhow::Ok(got),
                }
            }
        }));
    }
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await??);
    }
    let el = t.elapsed();
    let unique: HashSet<&String> = all.iter().collect();
    Ok(Claims {
        tasks,
        claimed: all.len(),
        unique: unique.len(),
        per_sec: all.len() as f64 / el.as_secs_f64(),
        queued_in,
    })
}

/// A distinct idempotency key per claim call.
fn uuid_like(rid: &str, n: usize) -> String {
    format!("{rid}-{n}-{:?}", Instant::now())
}

/// The real daemon on WS, SIGKILLed: time until the server lists its runtime offline.
pub async fn dead_daemon_offline() -> anyhow::Result<Duration> {
    let s = Server::start().await?;
    let (ws, member, token) = s.workspace("dead").await?;
    let dir = tempfile::tempdir()?;
    stand_in(
        &dir.path().join("bin"),
        "claude",
        "2.1.330 (Claude Code)",
        "exit 0",
    )?;
    let mut d = spawn_daemon_with(
        &s.url,
        &token,
        dir.path(),
        &["--heartbeat-interval", "15s", "--poll-interval", "30s"],
        "agentd_daemon=warn",
    )?;
    let status = |v: &Value| -> Option<String> {
        v.as_array()?.first()?["status"]
            .as_str()
            .map(str::to_string)
    };
    let path = format!("/api/v1/workspaces/{ws}/runtimes");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = s.get(&member, &path).await?;
        if status(&v).as_deref() == Some("online") && health_ws(dir.path()).await {
            break;
        }
        if Instant::now() > deadline {
            bail!("daemon never came online: {v}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    d.child.kill()?;
    let t = Instant::now();
    let _ = d.child.wait();
    loop {
        let v = s.get(&member, &path).await?;
        if status(&v).as_deref() == Some("offline") {
            return Ok(t.elapsed());
        }
        if t.elapsed() > Duration::from_secs(120) {
            bail!("runtime still not offline after 120 s: {v}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// True once the daemon says its WS is connected.
async fn health_ws(dir: &Path) -> bool {
    let Ok(addr) = std::fs::read_to_string(dir.join("data/daemon.health")) else {
        return false;
    };
    let Ok(r) = reqwest::get(format!("http://{}/health", addr.trim())).await else {
        return false;
    };
    r.json::<Value>()
        .await
        .is_ok_and(|v| v["ws_connected"] == json!(true))
}

pub struct LostClaim {
    pub normal: Stats,
    pub lost: Stats,
    /// Claim retries the daemon logged ("claim response lost").
    pub retries_logged: usize,
}

/// `n` tasks with the claim response delivered, `n` with it lost.
pub async fn lost_claim(n: usize) -> anyhow::Result<LostClaim> {
    let s = Server::start().await?;
    let (ws, member, token) = s.workspace("lost").await?;
    let proxy = FaultProxy::for_url(&s.url).await;
    let dir = tempfile::tempdir()?;
    let ok = r#"echo '{"type":"result","subtype":"success","is_error":false,"result":"ok","session_id":"s"}'"#;
    stand_in(
        &dir.path().join("bin"),
        "claude",
        "2.1.330 (Claude Code)",
        ok,
    )?;
    let _d = spawn_daemon_with(
        &proxy.url(),
        &token,
        dir.path(),
        &["--heartbeat-interval", "15s", "--poll-interval", "30s"],
        "agentd_daemon=debug",
    )?;
    let path = format!("/api/v1/workspaces/{ws}/runtimes");
    let mut rid = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while rid.is_empty() || !health_ws(dir.path()).await {
        if Instant::now() > deadline {
            bail!("daemon never came online");
        }
        let v = s.get(&member, &path).await?;
        rid = v[0]["id"].as_str().unwrap_or_default().to_string();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let agent = s
        .post(
            &member,
            &format!("/api/v1/workspaces/{ws}/agents"),
            json!({"name": "bot", "runtime_id": rid}),
        )
        .await?;
    let agent = agent["id"].as_str().context("agent id")?.to_string();
    let (mut normal, mut lost) = (Vec::new(), Vec::new());
    for i in 0..2 * n {
        let lose = i % 2 == 1;
        if lose {
            proxy.set_mode(Mode::LoseNextResponse);
        }
        let t = Instant::now();
        let issue = s
            .post(
                &member,
                &format!("/api/v1/workspaces/{ws}/issues"),
                json!({"title": format!("t{i}"), "assignee_agent_id": agent}),
            )
            .await?;
        let issue = issue["id"].as_str().context("issue id")?.to_string();
        let mut ran = None;
        loop {
            let v = s.get(&member, &format!("/api/v1/issues/{issue}")).await?;
            let st = v["tasks"][0]["status"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if ran.is_none() && matches!(st.as_str(), "running" | "completed") {
                ran = Some(t.elapsed());
            }
            if st == "completed" {
                break;
            }
            if matches!(st.as_str(), "failed" | "cancelled") {
                bail!("task {i} ended {st}: {v}");
            }
            if t.elapsed() > Duration::from_secs(60) {
                bail!("task {i} not done after 60 s: {v}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if lose && proxy.mode() != Mode::Pass {
            bail!("trial {i}: no response was lost");
        }
        proxy.set_mode(Mode::Pass);
        let took = ran.unwrap_or_default();
        if lose {
            lost.push(took)
        } else {
            normal.push(took)
        }
        // Let the completion's reports flush before the next trial.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
    Ok(LostClaim {
        normal: Stats::of(normal),
        lost: Stats::of(lost),
        retries_logged: log.matches("claim response lost").count(),
    })
}
