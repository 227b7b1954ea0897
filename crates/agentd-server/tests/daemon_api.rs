//! The daemon API against the real server: register upsert, heartbeat 404, WS acks and
//! pushes, idempotent claim, messages, complete/fail side effects. Leases (what fails a
//! task, and what does not) are in `leases.rs`; report answers and late reports in
//! `reports.rs`.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use pretty_assertions::assert_eq;
use reqwest::StatusCode;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

fn ids(reg: &serde_json::Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = reg["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["provider"].as_str().unwrap().to_string(),
                r["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn register_upserts_by_workspace_daemon_and_provider() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let first = ids(&srv
        .register(&fx.daemon, &fx.ws, "d2", &["claude", "codex"])
        .await);
    assert_eq!(first.len(), 2);
    let again = ids(&srv
        .register(&fx.daemon, &fx.ws, "d2", &["claude", "codex"])
        .await);
    assert_eq!(first, again, "a surviving provider keeps its id");

    let (claude_id, codex_id) = (first[0].1.clone(), first[1].1.clone());
    let (s, _) = srv
        .delete(&fx.token, &format!("/api/v1/runtimes/{claude_id}"))
        .await;
    assert_eq!(s, StatusCode::OK);
    let after = ids(&srv
        .register(&fx.daemon, &fx.ws, "d2", &["claude", "codex"])
        .await);
    assert_eq!(after[1].1, codex_id);
    assert_ne!(after[0].1, claude_id, "a deleted provider gets a fresh id");
    // The response covers this daemon's runtimes only (d1's runtime is not in it).
    assert!(!after.iter().any(|(_, id)| *id == fx.runtime));
    srv.stop().await;
}

/// Registers daemon `d_sb` with one runtime per sandbox state (`None`: the field absent)
/// and returns what `GET /workspaces/{ws}/runtimes` shows for each provider.
async fn register_sandboxes(
    srv: &Srv,
    fx: &Fx,
    states: &[(&str, Option<&str>)],
) -> Vec<(String, serde_json::Value)> {
    let runtimes: Vec<serde_json::Value> = states
        .iter()
        .map(|(p, sb)| {
            let mut r = json!({"name": p, "type": p, "version": "1.0", "status": "online"});
            if let Some(sb) = sb {
                r["sandbox"] = json!(sb);
            }
            r
        })
        .collect();
    let (s, v) = srv
        .post(
            &fx.daemon,
            "/api/daemon/register",
            json!({"workspace_id": fx.ws, "daemon_id": "d_sb", "runtimes": runtimes}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, list) = srv
        .get(&fx.token, &format!("/api/v1/workspaces/{}/runtimes", fx.ws))
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let mut out: Vec<(String, serde_json::Value)> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["daemon_id"] == "d_sb")
        .map(|r| {
            (
                r["provider"].as_str().unwrap().to_string(),
                r["sandbox"].clone(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
async fn register_stores_each_runtimes_sandbox_state_and_the_list_shows_it() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let shown = register_sandboxes(
        &srv,
        &fx,
        &[
            ("a", Some("bwrap")),
            ("b", Some("off")),
            ("c", Some("unavailable")),
            ("d", None),
            ("e", Some("seccomp-2030")),
        ],
    )
    .await;
    assert_eq!(
        shown,
        vec![
            ("a".to_string(), json!("bwrap")),
            ("b".to_string(), json!("off")),
            ("c".to_string(), json!("unavailable")),
            ("d".to_string(), serde_json::Value::Null),
            ("e".to_string(), json!("unknown")),
        ]
    );
    // The upsert replaces it: a daemon that turned its sandbox on (or stopped saying)
    // shows what it says now, not what it said first.
    let shown = register_sandboxes(
        &srv,
        &fx,
        &[("a", None), ("b", Some("bwrap")), ("c", Some("off"))],
    )
    .await;
    assert_eq!(shown[0], ("a".to_string(), serde_json::Value::Null));
    assert_eq!(shown[1], ("b".to_string(), json!("bwrap")));
    assert_eq!(shown[2], ("c".to_string(), json!("off")));
    srv.stop().await;
}

#[tokio::test]
async fn heartbeat_answers_404_runtime_not_found_after_delete() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let (s, v) = srv
        .post(
            &fx.daemon,
            "/api/daemon/heartbeat",
            json!({"runtime_id": fx.runtime}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "ok");
    assert!(
        v["server_time"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok()
    );

    let (s, _) = srv
        .delete(&fx.token, &format!("/api/v1/runtimes/{}", fx.runtime))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = srv
        .post(
            &fx.daemon,
            "/api/daemon/heartbeat",
            json!({"runtime_id": fx.runtime}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        v["error"].as_str().unwrap().contains("runtime not found"),
        "{v}"
    );
    // Claim on a deleted runtime: same signal.
    let (s, v) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/runtimes/{}/tasks/claim", fx.runtime),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["error"].as_str().unwrap().contains("runtime not found"));
    srv.stop().await;
}

#[tokio::test]
async fn ws_heartbeat_ack_and_runtime_gone() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let mut ws = srv.ws(&fx.daemon, &[&fx.runtime]).await;
    let beat = json!({"type": "daemon:heartbeat", "payload": {"runtime_id": fx.runtime}});
    ws.send(Message::Text(beat.to_string().into()))
        .await
        .unwrap();
    let ack = next_frame(&mut ws, "daemon:heartbeat_ack", Duration::from_secs(5)).await;
    assert_eq!(ack["runtime_id"], fx.runtime.as_str());
    assert_eq!(ack["status"], "ok");
    assert_eq!(ack["runtime_gone"], false);

    srv.delete(&fx.token, &format!("/api/v1/runtimes/{}", fx.runtime))
        .await;
    ws.send(Message::Text(beat.to_string().into()))
        .await
        .unwrap();
    let ack = next_frame(&mut ws, "daemon:heartbeat_ack", Duration::from_secs(5)).await;
    assert_eq!(ack["runtime_gone"], true);
    assert_eq!(ack["status"], "runtime_gone");
    srv.stop().await;
}

#[tokio::test]
async fn task_available_is_pushed_within_a_second_of_queuing() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let mut ws = srv.ws(&fx.daemon, &[&fx.runtime]).await;
    // A heartbeat round-trip proves the connection is registered before we queue.
    let beat = json!({"type": "daemon:heartbeat", "payload": {"runtime_id": fx.runtime}});
    ws.send(Message::Text(beat.to_string().into()))
        .await
        .unwrap();
    next_frame(&mut ws, "daemon:heartbeat_ack", Duration::from_secs(5)).await;

    let issue = srv.assigned_issue(&fx, "push me").await;
    let p = next_frame(&mut ws, "daemon:task_available", Duration::from_secs(1)).await;
    assert_eq!(p["runtime_id"], fx.runtime.as_str());
    let (_, detail) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
    assert_eq!(p["task_id"], detail["tasks"][0]["id"]);
    srv.stop().await;
}

#[tokio::test]
async fn cancellation_is_pushed_and_visible_in_status() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let mut ws = srv.ws(&fx.daemon, &[&fx.runtime]).await;
    srv.assigned_issue(&fx, "cancel me").await;
    next_frame(&mut ws, "daemon:task_available", Duration::from_secs(5)).await;
    let task = srv.claim(&fx, None).await;
    let tid = task["id"].as_str().unwrap().to_string();
    let (s, _) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{tid}/start"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let (s, v) = srv
        .post(&fx.token, &format!("/api/v1/tasks/{tid}/cancel"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "cancelled");
    let p = next_frame(&mut ws, "daemon:task_cancelled", Duration::from_secs(1)).await;
    assert_eq!(p["task_id"], tid.as_str());
    assert_eq!(p["runtime_id"], fx.runtime.as_str());
    let (_, st) = srv
        .get(&fx.daemon, &format!("/api/daemon/tasks/{tid}/status"))
        .await;
    assert_eq!(st["status"], "cancelled");
    // A late complete from the daemon changes nothing.
    let (s, _) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{tid}/complete"),
            json!({"output": "late"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, st) = srv
        .get(&fx.daemon, &format!("/api/daemon/tasks/{tid}/status"))
        .await;
    assert_eq!(st["status"], "cancelled");
    srv.stop().await;
}

#[tokio::test]
async fn claim_is_idempotent_per_key() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    srv.assigned_issue(&fx, "one").await;
    srv.assigned_issue(&fx, "two").await;
    let a = srv.claim(&fx, Some("key-1")).await;
    let a2 = srv.claim(&fx, Some("key-1")).await;
    assert_eq!(a["id"], a2["id"], "a retried claim returns the same task");
    assert_eq!(a["issue_title"], "one");
    assert_eq!(a["agent"]["instructions"], "be nice");
    assert!(a2["task_token"].as_str().unwrap().starts_with("agt_"));
    let b = srv.claim(&fx, Some("key-2")).await;
    assert_ne!(a["id"], b["id"]);
    assert!(srv.claim(&fx, Some("key-3")).await.is_null());
    srv.stop().await;
}

#[tokio::test]
async fn messages_are_idempotent_on_seq() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    srv.assigned_issue(&fx, "talk").await;
    let tid = srv.claim(&fx, None).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/daemon/tasks/{tid}/messages");
    let batch1 = json!({"messages": [
        {"seq": 1, "type": "text", "content": "hello"},
        {"seq": 2, "type": "tool_use", "tool": "bash", "input": {"cmd": "ls"}}]});
    let batch2 = json!({"messages": [
        {"seq": 2, "type": "tool_use", "tool": "bash", "input": {"cmd": "ls"}},
        {"seq": 3, "type": "tool_result", "output": "a b"}]});
    assert_eq!(
        srv.post(&fx.daemon, &path, batch1.clone()).await.0,
        StatusCode::OK
    );
    assert_eq!(srv.post(&fx.daemon, &path, batch1).await.0, StatusCode::OK);
    assert_eq!(srv.post(&fx.daemon, &path, batch2).await.0, StatusCode::OK);
    let (_, page) = srv
        .get(&fx.token, &format!("/api/v1/tasks/{tid}/messages"))
        .await;
    let seqs: Vec<i64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert_eq!(page["messages"][1]["input"]["cmd"], "ls");
    let (_, page) = srv
        .get(
            &fx.token,
            &format!("/api/v1/tasks/{tid}/messages?after_seq=2"),
        )
        .await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    srv.stop().await;
}

#[tokio::test]
async fn complete_posts_output_and_moves_issue_to_in_review() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let issue = srv.assigned_issue(&fx, "finish").await;
    let tid = srv.claim(&fx, None).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    srv.post(
        &fx.daemon,
        &format!("/api/daemon/tasks/{tid}/start"),
        json!({}),
    )
    .await;
    let (s, _) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{tid}/usage"),
            json!({"usage": [{"provider": "anthropic", "model": "m", "input_tokens": 5}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{tid}/complete"),
            json!({"output": "All done: fixed it.", "session_id": "sess-1",
                "work_dir": "/data/tasks/t1/work", "branch_name": "agentd/issue-finish-t1"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, d) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
    assert_eq!(d["issue"]["status"], "in_review");
    assert_eq!(d["tasks"][0]["status"], "completed");
    let c = &d["comments"][0];
    assert_eq!(c["body"], "All done: fixed it.");
    assert_eq!(c["author_type"], "agent");
    assert_eq!(c["author_id"], fx.agent.as_str());

    // A member comment queues a follow-up that resumes the session.
    let (s, _) = srv
        .post(
            &fx.token,
            &format!("/api/v1/issues/{issue}/comments"),
            json!({"body": "one more thing"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let next = srv.claim(&fx, None).await;
    assert_eq!(next["trigger_comment_content"], "one more thing");
    assert_eq!(next["trigger_author_type"], "member");
    assert_eq!(next["prior_session_id"], "sess-1");
    // No pull request: it continues on the earlier run's branch, in its checkout.
    assert_eq!(next["prior_work_dir"], "/data/tasks/t1/work");
    assert_eq!(next["branch"], "agentd/issue-finish-t1");
    srv.stop().await;
}

/// Issue 17: what a cancelled or failed run cost is kept on the task (the daemon posts
/// usage before its final report, and after a cancel too).
#[tokio::test]
async fn usage_of_a_cancelled_and_of_a_failed_task_is_kept() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let mut tasks = Vec::new();
    for title in ["cancel me", "fail me"] {
        let issue = srv.assigned_issue(&fx, title).await;
        let tid = srv.claim(&fx, None).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        srv.post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{tid}/start"),
            json!({}),
        )
        .await;
        tasks.push((issue, tid));
    }
    let (s, _) = srv
        .post(
            &fx.token,
            &format!("/api/v1/tasks/{}/cancel", tasks[0].1),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{}/fail", tasks[1].1),
            json!({"error": "boom", "failure_reason": "agent_error"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    for (issue, tid) in &tasks {
        let (s, _) = srv
            .post(
                &fx.daemon,
                &format!("/api/daemon/tasks/{tid}/usage"),
                json!({"usage": [{"provider": "claude", "model": "m", "input_tokens": 120, "output_tokens": 7}]}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{tid}");
        let (_, d) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
        let t = &d["tasks"][0];
        assert!(
            matches!(t["status"].as_str(), Some("cancelled" | "failed")),
            "{t}"
        );
        assert_eq!(t["usage"][0]["input_tokens"], 120, "{t}");
        assert_eq!(t["usage"][0]["output_tokens"], 7, "{t}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn fail_posts_the_error_and_keeps_the_issue_assigned_and_retry_makes_a_new_task() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let issue = srv.assigned_issue(&fx, "break").await;
    let tid = srv.claim(&fx, None).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{tid}/fail"),
            json!({"error": "model exploded", "failure_reason": "agent_error"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, d) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
    assert_eq!(d["issue"]["assignee_agent_id"], fx.agent.as_str());
    assert_eq!(d["issue"]["status"], "todo");
    assert_eq!(d["tasks"][0]["status"], "failed");
    let body = d["comments"][0]["body"].as_str().unwrap();
    assert!(body.contains("model exploded"), "{body}");
    assert_eq!(d["comments"][0]["author_type"], "system");

    let (s, t2) = srv
        .post(&fx.token, &format!("/api/v1/tasks/{tid}/retry"), json!({}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(t2["status"], "queued");
    assert_eq!(t2["parent_task_id"], tid.as_str());
    assert_eq!(srv.claim(&fx, None).await["id"], t2["id"]);
    let (s, _) = srv
        .post(
            &fx.token,
            &format!("/api/v1/tasks/{}/retry", t2["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "an active task cannot be retried");
    srv.stop().await;
}

#[tokio::test]
async fn rebinding_an_agent_moves_its_queued_tasks_to_the_new_runtime() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    srv.delete(&fx.token, &format!("/api/v1/runtimes/{}", fx.runtime))
        .await;
    srv.assigned_issue(&fx, "waits for a runtime").await;
    let reg = srv.register(&fx.daemon, &fx.ws, "d1", &["claude"]).await;
    let new_rt = reg["runtimes"][0]["id"].as_str().unwrap().to_string();
    assert_ne!(new_rt, fx.runtime);
    let mut ws = srv.ws(&fx.daemon, &[&new_rt]).await;
    let beat = json!({"type": "daemon:heartbeat", "payload": {"runtime_id": new_rt}});
    ws.send(Message::Text(beat.to_string().into()))
        .await
        .unwrap();
    next_frame(&mut ws, "daemon:heartbeat_ack", Duration::from_secs(5)).await;

    let (s, a) = srv
        .patch(
            &fx.token,
            &format!("/api/v1/agents/{}", fx.agent),
            json!({"runtime_id": new_rt}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(a["runtime_id"], new_rt.as_str());
    let p = next_frame(&mut ws, "daemon:task_available", Duration::from_secs(1)).await;
    let fx2 = Fx {
        runtime: new_rt.clone(),
        ..fx
    };
    let t = srv.claim(&fx2, None).await;
    assert_eq!(t["id"], p["task_id"]);
    assert_eq!(t["runtime_id"], new_rt.as_str());
    srv.stop().await;
}

#[tokio::test]
async fn ws_upgrade_validates_runtimes_and_the_server_pings() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_in(dir, |c| c.ws_ping_interval = Duration::from_millis(100)).await;
    let a = srv.fixture("a").await;
    let b = srv.fixture("b").await;
    let base = srv.url.replace("http://", "ws://");
    let try_ws = |token: String, q: String| {
        let base = base.clone();
        async move {
            use tokio_tungstenite::tungstenite::client::IntoClientRequest;
            let mut req = format!("{base}/api/daemon/ws{q}")
                .into_client_request()
                .unwrap();
            req.headers_mut()
                .insert("Authorization", format!("Bearer {token}").parse().unwrap());
            match tokio_tungstenite::connect_async(req).await {
                Ok(_) => 101,
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
                Err(e) => panic!("{e}"),
            }
        }
    };
    assert_eq!(
        try_ws(b.daemon.clone(), format!("?runtime_ids={}", a.runtime)).await,
        404
    );
    assert_eq!(
        try_ws(
            b.daemon.clone(),
            format!("?runtime_ids={},{}", b.runtime, a.runtime)
        )
        .await,
        404
    );
    assert_eq!(try_ws(b.daemon.clone(), String::new()).await, 400);
    assert_eq!(
        try_ws("agd_bad".into(), format!("?runtime_ids={}", b.runtime)).await,
        401
    );

    let mut ws = srv.ws(&b.daemon, &[&b.runtime]).await;
    let got_ping = tokio::time::timeout(Duration::from_secs(5), async {
        use futures_util::StreamExt;
        while let Some(Ok(m)) = ws.next().await {
            if matches!(m, Message::Ping(_)) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(got_ping);
    srv.stop().await;
}

#[tokio::test]
async fn a_database_fault_is_a_500_never_runtime_not_found() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    // A real fault, injected from outside the server: the runtimes table disappears.
    let db = common::Db::open(srv.dir.path()).await;
    db.execute("ALTER TABLE runtimes RENAME TO runtimes_hidden")
        .await;
    let (s, v) = srv
        .post(
            &fx.daemon,
            "/api/daemon/heartbeat",
            json!({"runtime_id": fx.runtime}),
        )
        .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    assert!(!v["error"].as_str().unwrap().contains("not found"), "{v}");
    let (s, v) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/runtimes/{}/tasks/claim", fx.runtime),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{v}");

    db.execute("ALTER TABLE runtimes_hidden RENAME TO runtimes")
        .await;
    let (s, _) = srv
        .post(
            &fx.daemon,
            "/api/daemon/heartbeat",
            json!({"runtime_id": fx.runtime}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "healthy again once the fault is gone");
    srv.stop().await;
}

#[tokio::test]
async fn a_deleted_runtime_heartbeat_or_claim_is_404_at_once() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let hb = json!({"runtime_id": fx.runtime});
    // The runtime's row is cached and its liveness in memory (the clock does not move).
    for _ in 0..3 {
        let (s, v) = srv
            .post(&fx.daemon, "/api/daemon/heartbeat", hb.clone())
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, v) = srv
            .post(
                &fx.daemon,
                &format!("/api/daemon/runtimes/{}/tasks/claim", fx.runtime),
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, _) = srv
        .delete(&fx.token, &format!("/api/v1/runtimes/{}", fx.runtime))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = srv
        .post(&fx.daemon, "/api/daemon/heartbeat", hb.clone())
        .await;
    assert_eq!(
        (s, v["error"].clone()),
        (
            StatusCode::NOT_FOUND,
            json!(agentd_proto::RUNTIME_NOT_FOUND)
        )
    );
    // A claim reads the same cache: 404 at once too.
    let (s, v) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/runtimes/{}/tasks/claim", fx.runtime),
            json!({}),
        )
        .await;
    assert_eq!(
        (s, v["error"].clone()),
        (
            StatusCode::NOT_FOUND,
            json!(agentd_proto::RUNTIME_NOT_FOUND)
        )
    );
    // Re-registered by a new token after the old one is revoked (a takeover): the old
    // owner's cached ownership is gone at once.
    let reg = srv.register(&fx.daemon, &fx.ws, "d7", &["claude"]).await;
    let rt = reg["runtimes"][0]["id"].as_str().unwrap().to_string();
    let hb = json!({"runtime_id": rt});
    assert_eq!(
        srv.post(&fx.daemon, "/api/daemon/heartbeat", hb.clone())
            .await
            .0,
        StatusCode::OK
    );
    srv.delete(
        &srv.admin,
        &format!("/api/v1/tokens/{}", fx.daemon_token_id),
    )
    .await;
    let new = srv.mint("daemon", &fx.ws).await;
    assert_eq!(
        srv.post(&new, "/api/daemon/heartbeat", hb.clone()).await.0,
        StatusCode::NOT_FOUND,
        "not the new token's yet"
    );
    srv.register(&new, &fx.ws, "d7", &["claude"]).await;
    assert_eq!(
        srv.post(&new, "/api/daemon/heartbeat", hb).await.0,
        StatusCode::OK,
        "taken over: the cached owner was dropped"
    );
    srv.stop().await;
}
