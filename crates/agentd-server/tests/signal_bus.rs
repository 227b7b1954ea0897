//! Several server instances on one PostgreSQL database (always PostgreSQL, whatever
//! `AGENTD_TEST_DATABASE` says; skipped with a printed reason only when the binaries are
//! missing): the signal bus carries wake-ups, cancels and board events between them and
//! resyncs after losing its connection; one instance at a time leads the sweeper; claims
//! from two instances hand each task out once.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use agentd_server::ServerConfig;
use common::*;
use pretty_assertions::assert_eq;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A fresh database of the shared cluster, or `None` (printed) without the binaries.
fn database() -> Option<String> {
    match agentd_testkit::pg::PgCluster::shared() {
        Some(c) => Some(c.create_database().unwrap()),
        None => {
            println!("SKIP: {}", agentd_testkit::pg::SKIP_HINT);
            None
        }
    }
}

/// An instance on database `url` in data dir `dir`. The first bootstraps the admin token;
/// the others get a copy of its `admin-token` (instances share it, docs/operations.md).
async fn instance(url: &str, dir: tempfile::TempDir, admin_from: Option<&Srv>) -> Srv {
    if let Some(first) = admin_from {
        std::fs::copy(
            first.dir.path().join("admin-token"),
            dir.path().join("admin-token"),
        )
        .unwrap();
    }
    let mut config = ServerConfig::new(dir.path());
    config.database_url = Some(url.to_string());
    let admin = agentd_server::bootstrap_config(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let app = agentd_server::open(config, shutdown.clone()).await.unwrap();
    let handle = tokio::spawn(agentd_server::run(app.clone(), listener));
    Srv {
        app,
        url,
        admin,
        dir,
        shutdown,
        handle,
        http: reqwest::Client::new(),
    }
}

async fn two(url: &str) -> (Srv, Srv) {
    let a = instance(url, tempfile::tempdir().unwrap(), None).await;
    let b = instance(url, tempfile::tempdir().unwrap(), Some(&a)).await;
    assert_eq!(a.admin, b.admin, "one admin token for both");
    // Both listen before anything is sent (a NOTIFY before a LISTEN is not delivered).
    eventually(Duration::from_secs(10), || async {
        (agentd_server::bus::peers(&a.app).await == 1
            && agentd_server::bus::peers(&b.app).await == 1)
            .then_some(())
    })
    .await;
    (a, b)
}

/// The next event of `kind` on a board subscription, within `within`.
async fn next_event(
    rx: &mut tokio::sync::broadcast::Receiver<agentd_proto::api::WorkspaceEvent>,
    kind: &str,
    within: Duration,
) -> agentd_proto::api::WorkspaceEvent {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {kind} event within {within:?}"))
            .unwrap();
        if ev.kind == kind {
            return ev;
        }
    }
}

#[tokio::test]
async fn notify_reaches_the_other_instance_and_a_lost_listener_resyncs() {
    let Some(url) = database() else { return };
    let (a, b) = two(&url).await;
    let fx = a.fixture("w").await;
    let mut on_b = b.ws(&fx.daemon, &[&fx.runtime]).await;
    let mut board_b = b.app.events.subscribe();

    // Queued through A: the daemon connected to B is woken, B's board hears of it.
    let issue = a.assigned_issue(&fx, "cross-instance").await;
    let p = next_frame(&mut on_b, "daemon:task_available", Duration::from_secs(2)).await;
    assert_eq!(p["runtime_id"], json!(fx.runtime));
    let tid = p["task_id"].as_str().unwrap().to_string();
    let ev = next_event(&mut board_b, "task", Duration::from_secs(2)).await;
    assert_eq!(
        (ev.task_id.as_deref(), ev.issue_id.as_deref()),
        (Some(tid.as_str()), Some(issue.as_str()))
    );

    // Claimed through B, cancelled through A: the cancel reaches the daemon on B.
    let claimed = b.claim(&fx, Some("k1")).await;
    assert_eq!(claimed["id"], json!(tid));
    let (s, v) = a
        .post(&fx.token, &format!("/api/v1/tasks/{tid}/cancel"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let p = next_frame(&mut on_b, "daemon:task_cancelled", Duration::from_secs(2)).await;
    assert_eq!(p["task_id"], json!(tid));

    // B's LISTEN connection is killed: it reconnects, tells its boards to resync and
    // wakes its daemons (a wake-up without a task), and hears A again afterwards.
    let pool = a.app.store.postgres_pool().unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1) t",
    )
    .bind(format!(
        "{}{}",
        agentd_server::bus::APPLICATION_NAME,
        b.app.bus.instance
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(killed, 1);
    let wake = next_frame(&mut on_b, "daemon:task_available", Duration::from_secs(10)).await;
    assert_eq!(wake["task_id"], Value::Null, "{wake}");
    next_event(&mut board_b, "resync", Duration::from_secs(2)).await;
    assert!(
        b.app
            .bus
            .stats
            .resyncs
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    eventually(Duration::from_secs(10), || async {
        (agentd_server::bus::peers(&a.app).await == 1).then_some(())
    })
    .await;
    a.assigned_issue(&fx, "after the blip").await;
    let p = next_frame(&mut on_b, "daemon:task_available", Duration::from_secs(2)).await;
    assert!(p["task_id"].is_string(), "{p}");
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn one_instance_leads_and_another_takes_over_when_it_goes() {
    let Some(url) = database() else { return };
    let (a, b) = two(&url).await;
    assert!(a.app.leader.is_leader().await, "the first to ask leads");
    assert!(!b.app.leader.is_leader().await, "one leader at a time");
    assert!(a.app.leader.is_leader().await, "and it stays the leader");
    // Another instance shares the database: the sweeper gives its unwritten heartbeats
    // the liveness lag on top of the lease.
    assert_eq!(
        a.app.peer_lag_ms().await,
        a.app.config.liveness_lag().as_millis() as i64
    );
    // A's lock connection dies (its backend terminated): the lock is free, B takes it at
    // its next try, and A, finding its connection dead, is no longer the leader.
    let pool = a.app.store.postgres_pool().unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1) t",
    )
    .bind(format!(
        "{}{}",
        agentd_server::leader::APPLICATION_NAME,
        a.app.bus.instance
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(killed, 1);
    eventually(Duration::from_secs(10), || async {
        b.app.leader.is_leader().await.then_some(())
    })
    .await;
    assert!(
        !a.app.leader.is_leader().await,
        "A lost the lock with its connection"
    );
    assert!(b.app.leader.is_leader().await);
    // B stops: A takes over again.
    b.stop().await;
    assert!(
        a.app.leader.is_leader().await,
        "the lock is free once B is gone"
    );
    assert_eq!(a.app.peer_lag_ms().await, 0, "alone now");
    a.stop().await;
}

#[tokio::test]
async fn claims_from_two_instances_hand_out_every_task_once() {
    let Some(url) = database() else { return };
    let (a, b) = two(&url).await;
    let fx = a.fixture("w").await;
    const TASKS: usize = 120;
    // One task per issue: each issue gets its own agent's task (claims skip an
    // (issue, agent) that already has one in flight).
    for i in 0..TASKS {
        a.assigned_issue(&fx, &format!("issue {i}")).await;
    }
    let mut claimers = Vec::new();
    for (n, srv) in [&a, &b, &a, &b, &a, &b].into_iter().enumerate() {
        let (url, http, daemon, runtime) = (
            srv.url.clone(),
            srv.http.clone(),
            fx.daemon.clone(),
            fx.runtime.clone(),
        );
        claimers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let v: Value = http
                    .post(format!("{url}/api/daemon/runtimes/{runtime}/tasks/claim"))
                    .bearer_auth(&daemon)
                    .header("Idempotency-Key", format!("c{n}-{}", got.len()))
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                match v["task"]["id"].as_str() {
                    Some(id) => got.push(id.to_string()),
                    None => return got,
                }
            }
        }));
    }
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (TASKS, TASKS));
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn a_token_revoked_on_one_instance_is_refused_on_the_other_within_the_bound() {
    let Some(url) = database() else { return };
    let (a, b) = two(&url).await;
    let fx = a.fixture("w").await;
    let hb = json!({"runtime_id": fx.runtime});
    // B has the daemon token and the runtime's owner in its cache.
    for _ in 0..3 {
        let (s, v) = b
            .post(&fx.daemon, "/api/daemon/heartbeat", hb.clone())
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    // Deleted through A: B answers 404 within the bound (the bus, or the cache's TTL).
    let bound = Duration::from_millis(agentd_server::authcache::TTL_MS as u64 + 500);
    let t0 = std::time::Instant::now();
    let (s, _) = a
        .delete(&fx.token, &format!("/api/v1/runtimes/{}", fx.runtime))
        .await;
    assert_eq!(s, StatusCode::OK);
    eventually(bound, || async {
        let (s, v) = b
            .post(&fx.daemon, "/api/daemon/heartbeat", hb.clone())
            .await;
        (s == StatusCode::NOT_FOUND && v["error"] == json!(agentd_proto::RUNTIME_NOT_FOUND))
            .then_some(())
    })
    .await;
    assert!(t0.elapsed() < bound);
    // Revoked through A: B refuses the token within the bound.
    let reg = b.register(&fx.daemon, &fx.ws, "d1", &["claude"]).await;
    let hb = json!({"runtime_id": reg["runtimes"][0]["id"]});
    assert_eq!(
        b.post(&fx.daemon, "/api/daemon/heartbeat", hb.clone())
            .await
            .0,
        StatusCode::OK
    );
    let t0 = std::time::Instant::now();
    let (s, _) = a
        .delete(&a.admin, &format!("/api/v1/tokens/{}", fx.daemon_token_id))
        .await;
    assert_eq!(s, StatusCode::OK);
    eventually(bound, || async {
        let (s, v) = b
            .post(&fx.daemon, "/api/daemon/heartbeat", hb.clone())
            .await;
        (s == StatusCode::UNAUTHORIZED && v["error"] == json!("token revoked")).then_some(())
    })
    .await;
    let took = t0.elapsed();
    assert!(took < bound, "{took:?}");
    // A refuses it at once.
    let (s, v) = a.post(&fx.daemon, "/api/daemon/heartbeat", hb).await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("token revoked"))
    );
    b.stop().await;
    a.stop().await;
}
