//! The real `agentd daemon` binary against the testkit's fake server: self-healing over
//! HTTP and over WS, deregistration on SIGTERM, clear errors at start.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use agentd_proto::HeartbeatResponse;
use agentd_proto::ws::WsMessage;
use agentd_testkit::fake_server::FakeServer;

const TOKEN: &str = "e2e-token";

/// A directory with stand-in agent CLIs that answer `--version`.
fn stand_in_clis(dir: &Path, providers: &[(&str, &str)]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, version) in providers {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\necho '{version}'\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

struct Daemon {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_daemon(url: &str, heartbeat: &str, providers: &[(&str, &str)]) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let bin = stand_in_clis(dir.path(), providers);
    std::fs::write(dir.path().join("daemon.toml"), "").unwrap();
    let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_agentd"))
        .args(["daemon", "--server-url", url, "--token", TOKEN])
        .args(["--heartbeat-interval", heartbeat, "--poll-interval", "1s"])
        .args(["--health-port", "0", "--device-name", "e2e-host"])
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
    Daemon { child, _dir: dir }
}

/// Polls `cond` every 20 ms until it holds or `secs` pass.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_heartbeat_404_heals_with_one_reregister() {
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    fake.set_ws_enabled(false); // HTTP heartbeats only
    let _d = spawn_daemon(&fake.url, "200ms", &[("claude", "2.1.0 (Claude Code)")]);

    eventually(20, "first register", || fake.register_count() == 1).await;
    let old = fake.runtime_id_of("claude").unwrap();
    eventually(10, "heartbeats on the first id", || {
        fake.heartbeats().contains(&old)
    })
    .await;

    fake.delete_runtime(&old);
    eventually(10, "re-register", || fake.register_count() == 2).await;
    let new = fake.runtime_id_of("claude").unwrap();
    assert_ne!(new, old);
    eventually(10, "heartbeats on the new id", || {
        fake.heartbeats().iter().filter(|h| **h == new).count() >= 3
    })
    .await;
    assert_eq!(fake.register_count(), 2, "exactly one re-register");
    assert!(
        fake.recovered().contains(&new),
        "recover-orphans for the new id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_runtime_gone_heals_with_one_reregister() {
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    // A long interval: after the WS connects and its first heartbeat is acked, HTTP
    // heartbeats are skipped, so the push below is what triggers the heal.
    let _d = spawn_daemon(
        &fake.url,
        "30s",
        &[
            ("claude", "2.1.0 (Claude Code)"),
            ("codex", "codex-cli 0.169.0"),
        ],
    );

    eventually(20, "register", || fake.register_count() == 1).await;
    let old = fake.runtime_id_of("claude").unwrap();
    let codex = fake.runtime_id_of("codex").unwrap();
    eventually(10, "WS heartbeat for the runtime", || {
        fake.ws_heartbeats().contains(&old)
    })
    .await;

    fake.delete_runtime(&old);
    fake.push(&WsMessage::HeartbeatAck(HeartbeatResponse {
        runtime_id: old.clone(),
        status: "runtime_gone".into(),
        runtime_gone: true,
        ..HeartbeatResponse::default()
    }));
    eventually(10, "re-register", || fake.register_count() == 2).await;
    let new = fake.runtime_id_of("claude").unwrap();
    // The WS reconnects with the new id set and heartbeats on it at once.
    eventually(10, "WS heartbeat on the new id", || {
        fake.ws_heartbeats().contains(&new)
    })
    .await;
    assert_eq!(fake.register_count(), 2, "exactly one re-register");
    assert_eq!(
        fake.runtime_id_of("codex").unwrap(),
        codex,
        "sibling kept its id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_deregisters_every_runtime_and_exits_zero() {
    let fake = FakeServer::start(TOKEN, &["ws-1", "ws-2"]).await;
    let mut d = spawn_daemon(
        &fake.url,
        "200ms",
        &[("claude", "2.1.0"), ("codex", "0.169.0")],
    );
    eventually(20, "both workspaces registered", || {
        fake.register_count() == 2
    })
    .await;
    eventually(10, "WS connected", || fake.ws_connects() >= 1).await;

    let pid = nix::unistd::Pid::from_raw(d.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let s = d.child.wait();
        (s, d)
    })
    .await
    .unwrap()
    .0
    .unwrap();
    assert!(status.success(), "daemon exited with {status}");
    let mut got: Vec<String> = fake.deregistered().concat();
    got.sort();
    assert_eq!(
        got,
        fake.live_runtime_ids(),
        "deregister must name every runtime id"
    );
    assert_eq!(got.len(), 4);
}

#[test]
fn missing_token_fails_with_a_message_saying_how_to_provide_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_agentd"))
        .args(["daemon", "--server-url", "http://127.0.0.1:9"])
        .arg("--config")
        .arg(dir.path().join("empty.toml"))
        .env_remove("AGENTD_TOKEN")
        .output()
        .unwrap();
    // An explicitly named but missing config file is itself an error naming the file.
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("empty.toml"), "{err}");

    std::fs::write(dir.path().join("empty.toml"), "").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_agentd"))
        .args(["daemon", "--server-url", "http://127.0.0.1:9"])
        .arg("--config")
        .arg(dir.path().join("empty.toml"))
        .env_remove("AGENTD_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--token") && err.contains("AGENTD_TOKEN"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_at_start_is_retried_and_reported_on_health() {
    // Reserve a port with nothing listening, start the daemon against it, then bring the
    // server up on that port: the daemon must be waiting, reporting why, and then register.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let url = format!("http://127.0.0.1:{port}");
    let d = spawn_daemon(&url, "200ms", &[("claude", "2.1.0")]);
    let health_file = d._dir.path().join("data/daemon.health");
    eventually(20, "health endpoint", || health_file.exists()).await;
    let addr = std::fs::read_to_string(&health_file).unwrap();
    let health_url = format!("http://{addr}/health");
    let mut status = String::new();
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(&health_url).await
            && let Ok(v) = r.json::<serde_json::Value>().await
        {
            status = v["status"].as_str().unwrap_or_default().to_string();
            if status == "server_unreachable" {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "server_unreachable");
    let ready = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
}

/// Reads the daemon's health document.
async fn health(d: &Daemon) -> serde_json::Value {
    let health_file = d._dir.path().join("data/daemon.health");
    eventually(20, "health endpoint", || health_file.exists()).await;
    let addr = std::fs::read_to_string(&health_file).unwrap();
    reqwest::get(format!("http://{addr}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn metric(d: &Daemon, name: &str) -> f64 {
    let addr = std::fs::read_to_string(d._dir.path().join("data/daemon.health")).unwrap();
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ws_that_looks_open_but_is_dead_is_replaced_and_http_heartbeats_carry_on() {
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    // The server accepts the upgrade but never reads, answers or pongs.
    fake.set_ws_silent(true);
    let d = spawn_daemon(&fake.url, "1s", &[("claude", "2.1.0")]);
    eventually(20, "register", || fake.register_count() == 1).await;
    let rid = fake.runtime_id_of("claude").unwrap();
    eventually(15, "HTTP heartbeats despite an open WS", || {
        fake.heartbeats().iter().filter(|h| **h == rid).count() >= 3
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while metric(&d, "agentd_ws_reconnects_total").await < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "dead WS never detected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eventually(
        10,
        "the daemon dials again after detecting the dead WS",
        || fake.ws_connects() >= 2,
    )
    .await;
    assert_eq!(
        fake.register_count(),
        1,
        "a dead WS is not a reason to re-register"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_is_reported_on_health_and_the_daemon_keeps_working() {
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    fake.set_clock_skew(3600);
    fake.set_ws_enabled(false);
    let d = spawn_daemon(&fake.url, "200ms", &[("claude", "2.1.0")]);
    eventually(20, "register", || fake.register_count() == 1).await;
    let mut h = health(&d).await;
    for _ in 0..100 {
        if h["status"] == "clock_skew" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        h = health(&d).await;
    }
    assert_eq!(h["status"], "clock_skew", "{h}");
    let detail = h["detail"].as_str().unwrap_or_default();
    let secs: u64 = detail
        .split("by ")
        .nth(1)
        .and_then(|r| r.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        (3590..=3610).contains(&secs),
        "skew named in the detail: {detail}"
    );
    let rid = fake.runtime_id_of("claude").unwrap();
    let before = fake.heartbeats().len();
    eventually(10, "heartbeats continue", || {
        fake.heartbeats().len() > before + 2
    })
    .await;
    assert!(fake.heartbeats().contains(&rid));
    // Clock fixed on the server: the daemon reports healthy again by itself.
    fake.set_clock_skew(0);
    let mut ok = false;
    for _ in 0..100 {
        if health(&d).await["status"] == "running" {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "health did not return to running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_reported_as_unauthorized_and_retried() {
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    let dir = tempfile::tempdir().unwrap();
    let bin = stand_in_clis(dir.path(), &[("claude", "2.1.0")]);
    std::fs::write(dir.path().join("daemon.toml"), "").unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_agentd"))
        .args([
            "daemon",
            "--server-url",
            &fake.url,
            "--token",
            "wrong-token",
        ])
        .args(["--health-port", "0", "--heartbeat-interval", "200ms"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(dir.path().join("daemon.toml"))
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let d = Daemon { child, _dir: dir };
    let mut h = health(&d).await;
    for _ in 0..100 {
        if h["status"] == "unauthorized" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        h = health(&d).await;
    }
    assert_eq!(h["status"], "unauthorized", "{h}");
    assert!(
        h["detail"].as_str().unwrap_or_default().contains("token"),
        "{h}"
    );
    assert_eq!(fake.register_count(), 0);
}
