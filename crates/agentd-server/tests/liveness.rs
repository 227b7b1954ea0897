//! The cheap heartbeat path (`liveness`): heartbeats of a runtime this instance wrote stay
//! in memory and reach the database in batches; the sweeper writes them first, so leases
//! and the offline display decide from the database exactly as if every heartbeat had
//! been written. Time passes on the server's clock, never by sleeping.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use pretty_assertions::assert_eq;
use serde_json::json;

const HOUR: Duration = Duration::from_secs(3600);

/// A server whose lease is an hour and whose flusher writes nothing by itself (a write
/// is due only an hour after the last), so only forced flushes write.
async fn batched() -> Srv {
    start_in(tempfile::tempdir().unwrap(), |c| {
        c.offline_after = HOUR;
        c.liveness_write_every = HOUR;
    })
    .await
}

fn writes(srv: &Srv) -> u64 {
    srv.app.liveness.stats.writes.load(Ordering::Relaxed)
}

async fn last_seen(srv: &Srv, runtime: &str) -> (String, Option<i64>) {
    let rt = srv
        .app
        .store
        .get_runtime(runtime.to_string())
        .await
        .unwrap()
        .unwrap();
    (rt.status, rt.last_seen_at)
}

#[tokio::test]
async fn heartbeats_stay_in_memory_and_reach_the_database_in_one_batch() {
    let srv = batched().await;
    let fx = srv.fixture("w").await;
    // The first heartbeat this instance sees for the runtime is written at once.
    srv.heartbeat(&fx.daemon, &fx.runtime, Some(&[])).await;
    let first = writes(&srv);
    assert_eq!(first, 1, "one write: the first sign of life");
    let (_, seen_first) = last_seen(&srv, &fx.runtime).await;

    // The next hundred stay in memory: no write, the database unchanged.
    for _ in 0..100 {
        srv.advance(10);
        srv.heartbeat(&fx.daemon, &fx.runtime, Some(&[])).await;
    }
    let latest = srv.app.now();
    assert_eq!(writes(&srv), first);
    assert_eq!(last_seen(&srv, &fx.runtime).await.1, seen_first);

    // A flush writes the latest in one transaction.
    agentd_server::liveness::flush(&srv.app, true)
        .await
        .unwrap();
    assert_eq!(writes(&srv), first + 1);
    let (status, seen) = last_seen(&srv, &fx.runtime).await;
    assert_eq!(status, "online");
    let seen = seen.unwrap();
    assert!(
        seen > seen_first.unwrap() && seen <= latest,
        "{seen} moved to the latest heartbeat"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_heartbeat_only_in_memory_still_keeps_the_runtime_and_its_task() {
    let srv = batched().await;
    let fx = srv.fixture("w").await;
    srv.assigned_issue(&fx, "long run").await;
    let tid = srv.claim_and_start(&fx).await;
    let lease = srv.lease_ms();
    srv.heartbeat(&fx.daemon, &fx.runtime, Some(&[&tid])).await;
    let written = writes(&srv);

    // 3/5 of a lease later the daemon says it still holds the task: memory only.
    srv.advance(lease * 3 / 5);
    let renewed = srv.app.now();
    srv.heartbeat(&fx.daemon, &fx.runtime, Some(&[&tid])).await;
    let after = srv.app.now();
    assert_eq!(writes(&srv), written, "the renewal waits in memory");

    // Without that renewal the task's lease would have run out by now; the sweep writes
    // this instance's liveness first, so it decides as if it had been written.
    agentd_server::sweeper::sweep(&srv.app, renewed + lease - 1)
        .await
        .unwrap();
    let t = srv.task(&fx.token, &tid).await;
    assert_eq!(t["status"], "running", "{t}");
    assert_eq!(last_seen(&srv, &fx.runtime).await.0, "online");

    // A whole lease after the last heartbeat, the lease has expired.
    agentd_server::sweeper::sweep(&srv.app, after + lease + 1)
        .await
        .unwrap();
    let t = srv.task(&fx.token, &tid).await;
    assert_eq!(
        (t["status"].clone(), t["failure_reason"].clone()),
        (json!("failed"), json!("runtime_offline"))
    );
    assert_eq!(last_seen(&srv, &fx.runtime).await.0, "offline");
    srv.stop().await;
}

#[tokio::test]
async fn offline_and_deleted_runtimes_are_written_or_refused_at_once() {
    let srv = batched().await;
    let fx = srv.fixture("w").await;
    srv.heartbeat(&fx.daemon, &fx.runtime, Some(&[])).await;
    srv.advance(srv.lease_ms() + 1);
    srv.sweep().await;
    assert_eq!(last_seen(&srv, &fx.runtime).await.0, "offline");
    let mut events = srv.app.events.subscribe();

    // Shown offline: the next heartbeat is written at once and told to boards.
    let before = writes(&srv);
    srv.heartbeat(&fx.daemon, &fx.runtime, Some(&[])).await;
    assert_eq!(writes(&srv), before + 1);
    assert_eq!(last_seen(&srv, &fx.runtime).await.0, "online");
    let ev = events.recv().await.unwrap();
    assert_eq!(
        (ev.kind.as_str(), ev.status.as_deref()),
        ("runtime", Some("online"))
    );

    // Deleted: the next heartbeat reaches the database and answers `runtime not found`.
    let (s, _) = srv
        .delete(&fx.token, &format!("/api/v1/runtimes/{}", fx.runtime))
        .await;
    assert!(s.is_success(), "{s}");
    let (s, v) = srv
        .post(
            &fx.daemon,
            "/api/daemon/heartbeat",
            json!({"runtime_id": fx.runtime, "active_task_ids": []}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"].as_str()),
        (404, Some("runtime not found"))
    );
    srv.stop().await;
}
