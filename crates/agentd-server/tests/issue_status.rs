//! An issue's status follows its work (issue 16): *To do* → *In progress* when its task
//! starts; a failed or cancelled run moves it back to *To do*, the reason on the task
//! and (for a failure) in a comment; a status the user chose otherwise stays.

mod common;

use common::{Fx, Srv, start};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn assigned_issue(srv: &Srv, fx: &Fx, title: &str) -> String {
    let (s, v) = srv
        .post(
            &fx.token,
            &format!("/api/v1/workspaces/{}/issues", fx.ws),
            json!({"title": title, "assignee_agent_id": fx.agent}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["id"].as_str().unwrap().to_string()
}

async fn shown(srv: &Srv, fx: &Fx, issue: &str) -> Value {
    let (s, v) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

#[tokio::test]
async fn a_started_run_moves_the_issue_to_in_progress_and_a_failure_back_to_todo() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let issue = assigned_issue(&srv, &fx, "Fix it").await;
    assert_eq!(shown(&srv, &fx, &issue).await["issue"]["status"], "todo");

    let task = srv.claim_and_start(&fx).await;
    assert_eq!(
        shown(&srv, &fx, &issue).await["issue"]["status"],
        "in_progress"
    );

    let (s, v) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{task}/fail"),
            json!({"error": "tests failed", "failure_reason": "agent_error"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let v = shown(&srv, &fx, &issue).await;
    assert_eq!(v["issue"]["status"], "todo", "{v:#}");
    assert_eq!(v["tasks"][0]["failure_reason"], "agent_error");
    let comments: Vec<&str> = v["comments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["body"].as_str())
        .collect();
    assert!(
        comments.iter().any(|c| c.contains("tests failed")),
        "{comments:?}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_cancelled_run_moves_the_issue_back_to_todo_and_success_to_review() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let issue = assigned_issue(&srv, &fx, "Fix it").await;
    let task = srv.claim_and_start(&fx).await;
    let (s, v) = srv
        .post(
            &fx.token,
            &format!("/api/v1/tasks/{task}/cancel"),
            json!({}),
        )
        .await;
    assert!(s.is_success(), "{v}");
    let v = shown(&srv, &fx, &issue).await;
    assert_eq!(v["issue"]["status"], "todo", "{v:#}");
    assert_eq!(v["tasks"][0]["status"], "cancelled");

    // A retried run goes through in progress to review.
    let (s, v) = srv
        .post(&fx.token, &format!("/api/v1/tasks/{task}/retry"), json!({}))
        .await;
    assert!(s.is_success(), "{v}");
    let again = srv.claim_and_start(&fx).await;
    assert_eq!(
        shown(&srv, &fx, &issue).await["issue"]["status"],
        "in_progress"
    );
    let (s, v) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{again}/complete"),
            json!({"output": "done"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        shown(&srv, &fx, &issue).await["issue"]["status"],
        "in_review"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_status_the_user_chose_stays_when_the_run_ends() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let issue = assigned_issue(&srv, &fx, "Fix it").await;
    let task = srv.claim_and_start(&fx).await;
    // The user moves the running issue to review by hand; the failure does not undo it.
    let (s, v) = srv
        .req(
            reqwest::Method::PATCH,
            &fx.token,
            &format!("/api/v1/issues/{issue}"),
            Some(json!({"status": "in_review"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{task}/fail"),
            json!({"error": "boom", "failure_reason": "agent_error"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        shown(&srv, &fx, &issue).await["issue"]["status"],
        "in_review"
    );
    srv.stop().await;
}
