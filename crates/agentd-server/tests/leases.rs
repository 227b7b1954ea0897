//! Task leases against the real server. A task ends only when its daemon has not said it
//! holds it (claim, a heartbeat listing it, any report about it) for a whole lease
//! (`offline_after`); a runtime going offline, deregistering or being deleted fails
//! nothing, and no lease expires in the first lease after a server start.
//!
//! Time passes on the server's clock (`Srv::advance`, or an injected `now` for
//! `sweeper::sweep`), never by sleeping, so no assertion depends on the test keeping pace.
//! The lease is an hour: the background sweeper never acts on real time during a test,
//! and whenever it sweeps on the advanced clock it does what the test's own sweep does.
//! The clock only ever moves by less than a lease between two renewals. A task kept
//! alive is renewed every 3/5 of a lease, so each renewal matters: without the latest one,
//! the one before would already be more than a lease old.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use pretty_assertions::assert_eq;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const HOUR: Duration = Duration::from_secs(3600);

/// A server whose lease is an hour.
async fn leased() -> Srv {
    start_in(tempfile::tempdir().unwrap(), |c| c.offline_after = HOUR).await
}

async fn status(srv: &Srv, fx: &Fx, task: &str) -> (String, Value) {
    let t = srv.task(&fx.token, task).await;
    (
        t["status"].as_str().unwrap().to_string(),
        t["failure_reason"].clone(),
    )
}

async fn runtime_status(srv: &Srv, fx: &Fx, rt: &str) -> String {
    let (_, v) = srv
        .get(&fx.token, &format!("/api/v1/workspaces/{}/runtimes", fx.ws))
        .await;
    v.as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == rt)
        .map(|r| r["status"].as_str().unwrap().to_string())
        .unwrap_or_else(|| "deleted".into())
}

#[tokio::test]
async fn a_closed_websocket_fails_no_task() {
    let srv = start_in(tempfile::tempdir().unwrap(), |c| {
        c.offline_after = HOUR;
        c.ws_close_grace = Duration::from_millis(200);
    })
    .await;
    let fx = srv.fixture("w").await;
    srv.assigned_issue(&fx, "runs through a WS drop").await;
    let tid = srv.claim_and_start(&fx).await;
    let mut ws = srv.ws(&fx.daemon, &[&fx.runtime]).await;
    let beat = json!({"type": "daemon:heartbeat", "payload": {"runtime_id": fx.runtime}});
    ws.send(Message::Text(beat.to_string().into()))
        .await
        .unwrap();
    next_frame(&mut ws, "daemon:heartbeat_ack", Duration::from_secs(5)).await;
    ws.close(None).await.unwrap();
    drop(ws);
    // The runtime is shown offline once the grace passed without a heartbeat...
    eventually(Duration::from_secs(10), || async {
        (runtime_status(&srv, &fx, &fx.runtime).await == "offline").then_some(())
    })
    .await;
    // ...and its task runs on: a dropped socket proves nothing about the agent.
    srv.sweep().await;
    assert_eq!(status(&srv, &fx, &tid).await.0, "running");
    srv.stop().await;
}

#[tokio::test]
async fn deregister_and_runtime_delete_fail_no_task() {
    let srv = leased().await;
    let fx = srv.fixture("w").await;
    let issue = srv.assigned_issue(&fx, "outlives its runtime").await;
    let tid = srv.claim_and_start(&fx).await;

    let (s, _) = srv
        .post(
            &fx.daemon,
            "/api/daemon/deregister",
            json!({"runtime_ids": [fx.runtime]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(runtime_status(&srv, &fx, &fx.runtime).await, "offline");
    assert_eq!(
        status(&srv, &fx, &tid).await.0,
        "running",
        "after deregister"
    );

    let (s, _) = srv
        .delete(&fx.token, &format!("/api/v1/runtimes/{}", fx.runtime))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(runtime_status(&srv, &fx, &fx.runtime).await, "deleted");
    assert_eq!(status(&srv, &fx, &tid).await.0, "running", "after delete");

    // The daemon re-registers under a new runtime id and keeps holding the task: its
    // heartbeats renew the lease across many leases, and the task ends as it reports.
    let reg = srv.register(&fx.daemon, &fx.ws, "d1", &["claude"]).await;
    let rt2 = reg["runtimes"][0]["id"].as_str().unwrap().to_string();
    assert_ne!(rt2, fx.runtime);
    for _ in 0..4 {
        srv.advance(srv.lease_ms() * 3 / 5);
        srv.heartbeat(&fx.daemon, &rt2, Some(&[&tid])).await;
        srv.sweep().await;
        assert_eq!(status(&srv, &fx, &tid).await.0, "running");
    }
    let (s, v) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{tid}/complete"),
            json!({"output": "done anyway"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!({"status": "ok", "task_status": "completed", "late": false})
    );
    let (_, d) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
    assert_eq!(d["issue"]["status"], "in_review");
    srv.stop().await;
}

#[tokio::test]
async fn a_task_whose_daemon_is_silent_for_a_lease_fails_runtime_offline() {
    let srv = leased().await;
    let fx = srv.fixture("w").await;
    let issue = srv.assigned_issue(&fx, "abandoned").await;
    let before = srv.app.now();
    let tid = srv.claim_and_start(&fx).await;
    let after = srv.app.now();
    let lease = srv.lease_ms();

    // One millisecond short of a lease since it was last held: it runs on.
    agentd_server::sweeper::sweep(&srv.app, before + lease - 1)
        .await
        .unwrap();
    assert_eq!(status(&srv, &fx, &tid).await.0, "running");
    assert_eq!(runtime_status(&srv, &fx, &fx.runtime).await, "online");

    // A whole lease of silence on every channel: the runtime is shown offline and the
    // task fails, saying why.
    agentd_server::sweeper::sweep(&srv.app, after + lease + 1)
        .await
        .unwrap();
    assert_eq!(runtime_status(&srv, &fx, &fx.runtime).await, "offline");
    let (st, reason) = status(&srv, &fx, &tid).await;
    assert_eq!((st.as_str(), reason), ("failed", json!("runtime_offline")));
    let (_, d) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
    let body = d["comments"][0]["body"].as_str().unwrap();
    assert!(body.contains("runtime_offline"), "{body}");
    assert_eq!(d["issue"]["assignee_agent_id"], fx.agent.as_str());

    // A heartbeat brings the runtime back online; the failed task stays failed.
    srv.heartbeat(&fx.daemon, &fx.runtime, Some(&[&tid])).await;
    assert_eq!(runtime_status(&srv, &fx, &fx.runtime).await, "online");
    assert_eq!(status(&srv, &fx, &tid).await.0, "failed");
    srv.stop().await;
}

#[tokio::test]
async fn the_background_sweeper_enforces_the_lease_on_its_own() {
    let srv = start_in(tempfile::tempdir().unwrap(), |c| {
        c.offline_after = Duration::from_millis(300);
        c.sweep_interval = Duration::from_secs(60);
    })
    .await;
    assert_eq!(
        srv.app.config.sweep_every(),
        Duration::from_millis(75),
        "the sweep runs at least four times per lease"
    );
    let fx = srv.fixture("w").await;
    srv.assigned_issue(&fx, "abandoned").await;
    let tid = srv.claim_and_start(&fx).await;
    let (t, f) = (fx.token.clone(), tid.clone());
    let reason = eventually(Duration::from_secs(10), || async {
        let v = srv.task(&t, &f).await;
        (v["status"] == "failed").then(|| v["failure_reason"].clone())
    })
    .await;
    assert_eq!(reason, "runtime_offline");
    srv.stop().await;
}

#[tokio::test]
async fn a_claimed_task_never_started_fails_timeout_after_a_lease() {
    let srv = leased().await;
    let fx = srv.fixture("w").await;
    srv.assigned_issue(&fx, "lost claim").await;
    srv.assigned_issue(&fx, "started").await;
    let lost = srv.claim(&fx, None).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let started = srv.claim_and_start(&fx).await;
    // The daemon is alive and holds the task it started, not the one whose claim
    // response it never saw.
    for _ in 0..3 {
        srv.advance(srv.lease_ms() / 2 + 1);
        srv.heartbeat(&fx.daemon, &fx.runtime, Some(&[&started]))
            .await;
        srv.sweep().await;
    }
    let (st, reason) = status(&srv, &fx, &lost).await;
    assert_eq!((st.as_str(), reason), ("failed", json!("timeout")));
    assert_eq!(status(&srv, &fx, &started).await.0, "running");
    srv.stop().await;
}

#[tokio::test]
async fn heartbeats_listing_a_task_keep_it_alive_past_many_leases() {
    let srv = leased().await;
    let fx = srv.fixture("w").await;
    srv.assigned_issue(&fx, "long run").await;
    let tid = srv.claim_and_start(&fx).await;
    // The same daemon's other runtime (another provider) may carry the list: the lease
    // belongs to the daemon, not to one runtime.
    let reg = srv
        .register(&fx.daemon, &fx.ws, "d1", &["claude", "codex"])
        .await;
    let codex = reg["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["provider"] == "codex")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..10 {
        srv.advance(srv.lease_ms() * 3 / 5);
        let via = if i % 2 == 0 { &fx.runtime } else { &codex };
        srv.heartbeat(&fx.daemon, via, Some(&[&tid])).await;
        srv.sweep().await;
        assert_eq!(status(&srv, &fx, &tid).await.0, "running", "beat {i}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn a_heartbeat_without_a_task_list_renews_every_task_of_its_daemon() {
    let srv = leased().await;
    let fx = srv.fixture("w").await;
    srv.assigned_issue(&fx, "multica daemon").await;
    let tid = srv.claim_and_start(&fx).await;
    for _ in 0..4 {
        srv.advance(srv.lease_ms() * 3 / 5);
        srv.heartbeat(&fx.daemon, &fx.runtime, None).await;
        srv.sweep().await;
    }
    assert_eq!(status(&srv, &fx, &tid).await.0, "running");
    srv.stop().await;
}

#[tokio::test]
async fn a_heartbeat_renews_only_the_tasks_of_its_own_daemon() {
    let srv = leased().await;
    let fx = srv.fixture("w").await;
    srv.assigned_issue(&fx, "held by d1").await;
    let tid = srv.claim_and_start(&fx).await;
    // Another daemon naming d1's task keeps nothing alive.
    let reg = srv.register(&fx.daemon, &fx.ws, "d2", &["claude"]).await;
    let other = reg["runtimes"][0]["id"].as_str().unwrap().to_string();
    for _ in 0..3 {
        srv.advance(srv.lease_ms() / 2 + 1);
        srv.heartbeat(&fx.daemon, &other, Some(&[&tid])).await;
        srv.sweep().await;
    }
    let (st, reason) = status(&srv, &fx, &tid).await;
    assert_eq!((st.as_str(), reason), ("failed", json!("runtime_offline")));
    srv.stop().await;
}

#[tokio::test]
async fn reports_about_a_task_renew_its_lease() {
    let srv = leased().await;
    let fx = srv.fixture("w").await;
    srv.assigned_issue(&fx, "chatty").await;
    let tid = srv.claim_and_start(&fx).await;
    let reports = [
        ("progress", json!({"summary": "s", "step": 1, "total": 2})),
        (
            "messages",
            json!({"messages": [{"seq": 1, "type": "text", "content": "hi"}]}),
        ),
        ("usage", json!({"usage": [{"provider": "p", "model": "m"}]})),
        ("session", json!({"session_id": "s1"})),
    ];
    // No heartbeat at all: the reports alone hold the task, over two leases.
    for (what, body) in reports {
        srv.advance(srv.lease_ms() * 3 / 5);
        let (s, v) = srv
            .post(&fx.daemon, &format!("/api/daemon/tasks/{tid}/{what}"), body)
            .await;
        assert_eq!(s, StatusCode::OK, "{what}: {v}");
        srv.sweep().await;
        assert_eq!(status(&srv, &fx, &tid).await.0, "running", "after {what}");
    }
    srv.advance(srv.lease_ms() + 1);
    srv.sweep().await;
    assert_eq!(
        status(&srv, &fx, &tid).await.0,
        "failed",
        "silent for a lease"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_task_the_live_daemon_no_longer_lists_is_reaped_as_orphaned() {
    let srv = leased().await;
    let fx = srv.fixture("w").await;
    srv.assigned_issue(&fx, "kept").await;
    srv.assigned_issue(&fx, "forgotten").await;
    let kept = srv.claim_and_start(&fx).await;
    let forgotten = srv.claim_and_start(&fx).await;
    for _ in 0..3 {
        srv.advance(srv.lease_ms() / 2 + 1);
        srv.heartbeat(&fx.daemon, &fx.runtime, Some(&[&kept])).await;
        srv.sweep().await;
    }
    assert_eq!(status(&srv, &fx, &kept).await.0, "running");
    let (st, reason) = status(&srv, &fx, &forgotten).await;
    assert_eq!((st.as_str(), reason), ("failed", json!("orphaned")));
    srv.stop().await;
}

#[tokio::test]
async fn no_lease_expires_in_the_first_lease_after_a_server_restart() {
    let srv = leased().await;
    let lease = srv.lease_ms();
    // This server ran two leases ago: everything it stores is two leases old when the
    // next one starts.
    srv.advance(-2 * lease);
    let fx = srv.fixture("w").await;
    srv.assigned_issue(&fx, "silent daemon").await;
    srv.assigned_issue(&fx, "daemon comes back").await;
    let silent = srv.claim_and_start(&fx).await;
    let back = srv.claim_and_start(&fx).await;
    let dir = srv.stop().await;

    let srv = start_in(dir, |c| c.offline_after = HOUR).await;
    let started = srv.app.started_at_ms;
    // Both leases ran out long ago, but nobody could renew them while the server was
    // down: the first sweeps, up to a lease after the start, fail nothing.
    srv.sweep().await;
    agentd_server::sweeper::sweep(&srv.app, started + lease / 2)
        .await
        .unwrap();
    assert_eq!(status(&srv, &fx, &silent).await.0, "running");
    assert_eq!(status(&srv, &fx, &back).await.0, "running");
    // Within that lease one daemon reaches the server and says it holds its task.
    srv.advance(started + lease / 2 - srv.app.now());
    srv.heartbeat(&fx.daemon, &fx.runtime, Some(&[&back])).await;
    agentd_server::sweeper::sweep(&srv.app, started + lease - 1)
        .await
        .unwrap();
    assert_eq!(status(&srv, &fx, &silent).await.0, "running");
    // One whole lease after the start, the task nobody held fails.
    agentd_server::sweeper::sweep(&srv.app, started + lease)
        .await
        .unwrap();
    let (st, reason) = status(&srv, &fx, &silent).await;
    assert_eq!((st.as_str(), reason), ("failed", json!("orphaned")));
    assert_eq!(status(&srv, &fx, &back).await.0, "running");
    srv.stop().await;
}

#[tokio::test]
async fn no_lease_expires_in_the_first_lease_after_a_restart_even_if_nobody_returns() {
    let srv = leased().await;
    let lease = srv.lease_ms();
    srv.advance(-2 * lease);
    let fx = srv.fixture("w").await;
    srv.assigned_issue(&fx, "silent daemon").await;
    let tid = srv.claim_and_start(&fx).await;
    let dir = srv.stop().await;

    let srv = start_in(dir, |c| c.offline_after = HOUR).await;
    let started = srv.app.started_at_ms;
    srv.sweep().await;
    agentd_server::sweeper::sweep(&srv.app, started + lease - 1)
        .await
        .unwrap();
    assert_eq!(status(&srv, &fx, &tid).await.0, "running");
    agentd_server::sweeper::sweep(&srv.app, started + lease)
        .await
        .unwrap();
    let (st, reason) = status(&srv, &fx, &tid).await;
    assert_eq!((st.as_str(), reason), ("failed", json!("runtime_offline")));
    srv.stop().await;
}

#[tokio::test]
async fn recover_orphans_spares_the_tasks_the_daemon_holds() {
    let srv = leased().await;
    let fx = srv.fixture("w").await;
    srv.assigned_issue(&fx, "held").await;
    srv.assigned_issue(&fx, "lost in the restart").await;
    let held = srv.claim_and_start(&fx).await;
    let lost = srv.claim_and_start(&fx).await;
    let queued_issue = srv.assigned_issue(&fx, "still queued").await;
    let (s, v) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/runtimes/{}/recover-orphans", fx.runtime),
            json!({"active_task_ids": [held]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"failed": 1, "requeued": 0}));
    assert_eq!(status(&srv, &fx, &held).await.0, "running");
    let (st, reason) = status(&srv, &fx, &lost).await;
    assert_eq!((st.as_str(), reason), ("failed", json!("orphaned")));
    let (_, d) = srv
        .get(&fx.token, &format!("/api/v1/issues/{queued_issue}"))
        .await;
    assert_eq!(
        d["tasks"][0]["status"], "queued",
        "queued work is untouched"
    );
    srv.stop().await;
}

#[tokio::test]
async fn recover_orphans_without_a_list_fails_every_in_flight_task() {
    let srv = leased().await;
    let fx = srv.fixture("w").await;
    let path = format!("/api/daemon/runtimes/{}/recover-orphans", fx.runtime);
    // Multica's daemon sends `{}`; no body and an empty list say the same: it holds none.
    for body in [Some(json!({})), None, Some(json!({"active_task_ids": []}))] {
        srv.assigned_issue(&fx, "claimed").await;
        srv.assigned_issue(&fx, "started").await;
        let claimed = srv.claim(&fx, None).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let started = srv.claim_and_start(&fx).await;
        let (s, v) = srv
            .req(reqwest::Method::POST, &fx.daemon, &path, body.clone())
            .await;
        assert_eq!(s, StatusCode::OK, "{body:?}: {v}");
        assert_eq!(v, json!({"failed": 2, "requeued": 0}), "{body:?}");
        for t in [&claimed, &started] {
            let (st, reason) = status(&srv, &fx, t).await;
            assert_eq!(
                (st.as_str(), reason),
                ("failed", json!("orphaned")),
                "{body:?}"
            );
        }
    }
    srv.stop().await;
}
