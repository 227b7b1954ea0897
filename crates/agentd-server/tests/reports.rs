//! Task reports against the real server: every report answers where the task stands
//! (`ReportResponse`), and a final report about a task that already ended is kept as a
//! late report (once) instead of being dropped.

mod common;

use std::time::Duration;

use common::*;
use pretty_assertions::assert_eq;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The issue's comments whose body starts with `Late report:`.
async fn late_comments(srv: &Srv, fx: &Fx, issue: &str) -> Vec<String> {
    let (_, d) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
    d["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["body"].as_str().unwrap().to_string())
        .filter(|b| b.starts_with("Late report:"))
        .collect()
}

async fn report(srv: &Srv, fx: &Fx, task: &str, what: &str, body: Value) -> Value {
    let (s, v) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{task}/{what}"),
            body,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{what}: {v}");
    v
}

fn answer(task_status: &str, late: bool) -> Value {
    json!({"status": "ok", "task_status": task_status, "late": late})
}

#[tokio::test]
async fn a_late_complete_is_recorded_once_and_answers_the_task_is_over() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let issue = srv.assigned_issue(&fx, "cancelled midway").await;
    let tid = srv.claim_and_start(&fx).await;
    let (s, _) = srv
        .post(&fx.token, &format!("/api/v1/tasks/{tid}/cancel"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);

    let done = json!({"output": "Fixed the parser; tests pass.", "branch_name": "agentd/x"});
    for _ in 0..2 {
        let v = report(&srv, &fx, &tid, "complete", done.clone()).await;
        assert_eq!(v, answer("cancelled", true));
    }
    let t = srv.task(&fx.token, &tid).await;
    assert_eq!(t["status"], "cancelled");
    assert_eq!(
        t["output"],
        Value::Null,
        "a late result changes nothing in the task"
    );
    let late = late_comments(&srv, &fx, &issue).await;
    assert_eq!(late.len(), 1, "a replay posts nothing twice: {late:?}");
    assert!(
        late[0].starts_with(&format!(
            "Late report: task {tid} had already ended as cancelled (cancelled); "
        )),
        "{}",
        late[0]
    );
    assert!(
        late[0].contains("Fixed the parser; tests pass."),
        "{}",
        late[0]
    );
    let (_, d) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
    assert_eq!(d["issue"]["status"], "todo", "a late result moves no issue");
    srv.stop().await;
}

#[tokio::test]
async fn a_late_fail_is_recorded_once_and_answers_the_task_is_over() {
    let srv = start_in(tempfile::tempdir().unwrap(), |c| {
        c.offline_after = Duration::from_secs(3600);
    })
    .await;
    let fx = srv.fixture("w").await;
    let issue = srv.assigned_issue(&fx, "failed by the server").await;
    let tid = srv.claim_and_start(&fx).await;
    // The daemon goes silent for a whole lease: the server fails the task.
    srv.advance(srv.lease_ms() + 1);
    srv.sweep().await;
    assert_eq!(srv.task(&fx.token, &tid).await["status"], "failed");

    let crashed = json!({"error": "agent crashed", "failure_reason": "agent_error"});
    for _ in 0..2 {
        let v = report(&srv, &fx, &tid, "fail", crashed.clone()).await;
        assert_eq!(v, answer("failed", true));
    }
    // The first late report is the one kept: a complete after it posts nothing either.
    let v = report(&srv, &fx, &tid, "complete", json!({"output": "oh, done"})).await;
    assert_eq!(v, answer("failed", true));

    let t = srv.task(&fx.token, &tid).await;
    assert_eq!(t["status"], "failed");
    assert_eq!(
        t["failure_reason"], "runtime_offline",
        "the server's reason stays"
    );
    let late = late_comments(&srv, &fx, &issue).await;
    assert_eq!(late.len(), 1, "{late:?}");
    assert!(
        late[0].starts_with(&format!(
            "Late report: task {tid} had already ended as failed (runtime_offline); "
        )),
        "{}",
        late[0]
    );
    assert!(late[0].contains("agent_error"), "{}", late[0]);
    assert!(late[0].contains("agent crashed"), "{}", late[0]);
    srv.stop().await;
}

#[tokio::test]
async fn every_report_answers_the_task_status() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    srv.assigned_issue(&fx, "reports").await;
    let tid = srv.claim(&fx, None).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let progress = json!({"summary": "s", "step": 1, "total": 2});
    let usage = json!({"usage": [{"provider": "p", "model": "m", "input_tokens": 3}]});
    let session = json!({"session_id": "sess-1", "work_dir": "/w"});
    let msg =
        |seq: i64, text: &str| json!({"messages": [{"seq": seq, "type": "text", "content": text}]});

    let v = report(&srv, &fx, &tid, "progress", progress.clone()).await;
    assert_eq!(v, answer("dispatched", false));
    let v = report(&srv, &fx, &tid, "start", json!({})).await;
    assert_eq!(v, answer("running", false));
    let v = report(&srv, &fx, &tid, "messages", msg(1, "working")).await;
    assert_eq!(v, answer("running", false));
    for (what, body) in [
        ("progress", progress.clone()),
        ("usage", usage.clone()),
        ("session", session.clone()),
        ("start", json!({})),
    ] {
        let v = report(&srv, &fx, &tid, what, body).await;
        assert_eq!(v, answer("running", false), "{what}");
    }

    let (s, _) = srv
        .post(&fx.token, &format!("/api/v1/tasks/{tid}/cancel"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    // After the end every report says so; what the agent said is still stored.
    let v = report(&srv, &fx, &tid, "messages", msg(2, "last words")).await;
    assert_eq!(v, answer("cancelled", false));
    for (what, body) in [
        ("progress", progress),
        ("usage", usage),
        ("session", session),
        ("start", json!({})),
    ] {
        let v = report(&srv, &fx, &tid, what, body).await;
        assert_eq!(v, answer("cancelled", false), "{what}");
    }
    let (_, page) = srv
        .get(&fx.token, &format!("/api/v1/tasks/{tid}/messages"))
        .await;
    assert_eq!(page["task_status"], "cancelled");
    assert_eq!(page["messages"][1]["content"], "last words");
    assert_eq!(srv.task(&fx.token, &tid).await["status"], "cancelled");
    srv.stop().await;
}

#[tokio::test]
async fn a_replayed_final_report_answers_its_status_and_is_no_late_report() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let done_issue = srv.assigned_issue(&fx, "done").await;
    let broken_issue = srv.assigned_issue(&fx, "broken").await;
    let done = srv.claim_and_start(&fx).await;
    let broken = srv.claim_and_start(&fx).await;
    let complete = json!({"output": "ok"});
    let fail = json!({"error": "e", "failure_reason": "agent_error"});
    // The daemon's outbox resends a final report whose answer it lost: the same answer
    // again, and nothing posted twice.
    for _ in 0..2 {
        let v = report(&srv, &fx, &done, "complete", complete.clone()).await;
        assert_eq!(v, answer("completed", false));
        let v = report(&srv, &fx, &broken, "fail", fail.clone()).await;
        assert_eq!(v, answer("failed", false));
    }
    for issue in [&done_issue, &broken_issue] {
        let (_, d) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
        assert_eq!(d["comments"].as_array().unwrap().len(), 1, "{d}");
        assert!(late_comments(&srv, &fx, issue).await.is_empty());
    }
    srv.stop().await;
}
