//! Who did what (issue 16): an issue's activity lists its creation, edits, status
//! changes, assignments, comments and each run queued, started, ended, cancelled or
//! retried, oldest first, each with its actor — a member by token name, the admin, an
//! agent through its task token, the server itself. Also: a task is retried at most once
//! (also under concurrent retries) and cancelling a task that ended is refused.

mod common;

use common::*;
use pretty_assertions::assert_eq;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// `(kind, actor kind, actor name)` of each activity entry.
fn who_did_what(detail: &Value) -> Vec<(String, String, String)> {
    detail["activity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["actor"]["kind"].as_str().unwrap().to_string(),
                e["actor"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Lets a millisecond pass on the server's clock, so two actions of the test never share
/// one (within one millisecond, entries are ordered cause before effect).
fn step(srv: &Srv) {
    srv.advance(2);
}

fn t(kind: &str, actor: &str, name: &str) -> (String, String, String) {
    (kind.into(), actor.into(), name.into())
}

async fn fail(srv: &Srv, fx: &Fx, task: &str) {
    let (s, v) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{task}/fail"),
            json!({"error": "it broke", "failure_reason": "agent_error"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn the_activity_says_who_did_what_in_order() {
    let srv = start().await;
    let fx = srv.fixture("acts").await;
    let (s, me) = srv.get(&fx.token, "/api/v1/me").await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["name"], "member", "the member token's name");
    let (_, me) = srv.get(&srv.admin, "/api/v1/me").await;
    assert_eq!(me["name"], "admin");

    // The member creates an assigned issue (a run is queued), edits its title.
    let issue = srv.assigned_issue(&fx, "first title").await;
    step(&srv);
    let (s, v) = srv
        .patch(
            &fx.token,
            &format!("/api/v1/issues/{issue}"),
            json!({"title": "second title", "description": "do it well"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    step(&srv);
    // The daemon claims and starts the run: the server moves the issue to In progress.
    let claimed = srv.claim(&fx, None).await;
    let run1 = claimed["id"].as_str().unwrap().to_string();
    let agent_token = claimed["task_token"].as_str().unwrap().to_string();
    let (s, _) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{run1}/start"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    step(&srv);
    // The agent (its task token) says who it is, comments and moves the status.
    let (_, me) = srv.get(&agent_token, "/api/v1/me").await;
    assert_eq!(me["name"], "bot", "a task token is its agent");
    let (s, v) = srv
        .post(
            &agent_token,
            &format!("/api/v1/issues/{issue}/comments"),
            json!({"body": "looking"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    step(&srv);
    let (s, v) = srv
        .patch(
            &agent_token,
            &format!("/api/v1/issues/{issue}"),
            json!({"status": "in_review"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    step(&srv);
    // The member comments: a follow-up run is queued by them.
    let (s, v) = srv
        .post(
            &fx.token,
            &format!("/api/v1/issues/{issue}/comments"),
            json!({"body": "also this"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    step(&srv);
    // The first run fails; the member cancels the queued follow-up and retries the
    // failed run.
    fail(&srv, &fx, &run1).await;
    step(&srv);
    let (_, d) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
    let run2 = d["tasks"][1]["id"].as_str().unwrap().to_string();
    let (s, v) = srv
        .post(
            &fx.token,
            &format!("/api/v1/tasks/{run2}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    step(&srv);
    assert_eq!(
        v["cancelled_by"],
        json!({"kind": "member", "name": "member"})
    );
    let (s, run3) = srv
        .post(&fx.token, &format!("/api/v1/tasks/{run1}/retry"), json!({}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{run3}");
    assert_eq!(
        run3["retried_by"],
        json!({"kind": "member", "name": "member"})
    );
    assert_eq!(run3["parent_task_id"], run1);
    step(&srv);
    // The admin reassigns nothing but changes the status: the retry is cancelled by the
    // server (the issue's cancellation did it).
    let (s, v) = srv
        .patch(
            &srv.admin,
            &format!("/api/v1/issues/{issue}"),
            json!({"status": "cancelled"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    step(&srv);

    let (s, d) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(
        who_did_what(&d),
        vec![
            t("created", "member", "member"),
            t("assigned", "member", "member"),
            t("task_queued", "member", "member"),
            t("edited", "member", "member"),
            t("edited", "member", "member"),
            t("task_started", "agent", "bot"),
            t("status_changed", "system", "agentd"),
            t("comment", "agent", "bot"),
            t("status_changed", "agent", "bot"),
            t("comment", "member", "member"),
            t("task_queued", "member", "member"),
            t("comment", "system", "agentd"),
            t("task_failed", "agent", "bot"),
            t("task_cancelled", "member", "member"),
            t("task_retried", "member", "member"),
            t("task_queued", "member", "member"),
            t("status_changed", "admin", "admin"),
            t("task_cancelled", "system", "agentd"),
        ],
        "{d:#}"
    );
    let a = d["activity"].as_array().unwrap();
    assert_eq!(a[0]["to_status"], "todo");
    assert_eq!(a[1]["detail"], "bot");
    assert_eq!(a[3]["detail"], "title");
    assert_eq!(a[4]["detail"], "description");
    assert_eq!(
        (&a[6]["from_status"], &a[6]["to_status"]),
        (&json!("todo"), &json!("in_progress"))
    );
    assert_eq!(
        (&a[8]["from_status"], &a[8]["to_status"]),
        (&json!("in_progress"), &json!("in_review"))
    );
    assert_eq!(a[7]["comment"]["body"], "looking");
    assert_eq!(a[12]["task"]["id"], run1);
    assert_eq!(a[12]["task"]["error"], "it broke");
    assert_eq!(a[12]["task"]["failure_reason"], "agent_error");
    assert_eq!(a[14]["task"]["id"], run3["id"]);
    assert_eq!(a[17]["task"]["id"], run3["id"]);
    assert_eq!(
        a[17]["task"]["cancelled_by"],
        json!({"kind": "system", "name": "agentd"})
    );
    // Oldest first.
    let times: Vec<jiff::Timestamp> = a
        .iter()
        .map(|e| e["at"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    // The original run names its retry.
    let (_, r1) = srv.get(&fx.token, &format!("/api/v1/tasks/{run1}")).await;
    assert_eq!(r1["retry_task_id"], run3["id"]);
    assert_eq!(r1["issue_key"], d["issue"]["key"]);
    assert_eq!(r1["agent_name"], "bot");
}

#[tokio::test]
async fn reassigning_records_who_and_the_system_cancels_the_old_run() {
    let srv = start().await;
    let fx = srv.fixture("moves").await;
    let issue = srv.assigned_issue(&fx, "move me").await;
    step(&srv);
    let (s, other) = srv
        .post(
            &fx.token,
            &format!("/api/v1/workspaces/{}/agents", fx.ws),
            json!({"name": "other", "runtime_id": fx.runtime}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{other}");
    let (s, v) = srv
        .patch(
            &fx.token,
            &format!("/api/v1/issues/{issue}"),
            json!({"assignee_agent_id": "other"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    step(&srv);
    // The admin comments (a follow-up for `other`, already queued: nothing new), then
    // unassigns the issue: its run is cancelled by the server.
    let (s, v) = srv
        .post(
            &srv.admin,
            &format!("/api/v1/issues/{issue}/comments"),
            json!({"body": "hm"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    step(&srv);
    let (s, v) = srv
        .patch(
            &srv.admin,
            &format!("/api/v1/issues/{issue}"),
            json!({"assignee_agent_id": "none"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["assignee_agent_id"], Value::Null, "{v}");
    let (_, d) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
    assert_eq!(
        who_did_what(&d),
        vec![
            t("created", "member", "member"),
            t("assigned", "member", "member"),
            t("task_queued", "member", "member"),
            t("assigned", "member", "member"),
            t("task_cancelled", "system", "agentd"),
            t("task_queued", "member", "member"),
            t("comment", "admin", "admin"),
            t("assigned", "admin", "admin"),
            t("task_cancelled", "system", "agentd"),
        ],
        "{d:#}"
    );
    assert_eq!(d["activity"][3]["detail"], "other");
    assert_eq!(d["activity"][7]["detail"], "");
    assert_eq!(d["tasks"][1]["agent_name"], "other");
    assert_eq!(d["tasks"][1]["status"], "cancelled");
}

#[tokio::test]
async fn a_task_is_retried_once_even_by_concurrent_retries() {
    let srv = start().await;
    let fx = srv.fixture("retries").await;
    srv.assigned_issue(&fx, "once").await;
    let run = srv.claim_and_start(&fx).await;
    fail(&srv, &fx, &run).await;
    let (s, first) = srv
        .post(&fx.token, &format!("/api/v1/tasks/{run}/retry"), json!({}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    let (s, v) = srv
        .post(
            &fx.token,
            &format!("/api/v1/tasks/{}/retry", &run[..8]),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "already_retried", "{v}");
    assert_eq!(
        v["error"],
        format!(
            "task {} was already retried as {}",
            &run[..8],
            first["id"].as_str().unwrap()
        )
    );
    assert_eq!(v["matches"][0]["id"], first["id"], "{v}");
    let label = v["matches"][0]["label"].as_str().unwrap();
    assert!(label.starts_with("RET-1 queued "), "{label}");

    // Concurrently: a second run fails, eight retries race, one wins.
    srv.assigned_issue(&fx, "race").await;
    // The first retry is queued too: claim until the race's run is running.
    let mut raced = String::new();
    for _ in 0..2 {
        let id = srv.claim_and_start(&fx).await;
        if id != first["id"] {
            raced = id;
        }
    }
    fail(&srv, &fx, &raced).await;
    let retries = (0..8).map(|_| {
        let srv = &srv;
        let path = format!("/api/v1/tasks/{raced}/retry");
        let token = fx.token.clone();
        async move { srv.post(&token, &path, json!({})).await }
    });
    let answers = futures_util::future::join_all(retries).await;
    let created: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    for (s, v) in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_eq!(*s, StatusCode::CONFLICT, "{v}");
        assert_eq!(v["code"], "already_retried", "{v}");
        assert_eq!(v["matches"][0]["id"], created[0]["id"], "{v}");
    }
    let (_, t) = srv.get(&fx.token, &format!("/api/v1/tasks/{raced}")).await;
    assert_eq!(t["retry_task_id"], created[0]["id"]);
    let (_, d) = srv
        .get(
            &fx.token,
            &format!("/api/v1/issues/{}", t["issue_id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(
        d["tasks"].as_array().unwrap().len(),
        2,
        "one run and one retry: {d}"
    );
    assert_eq!(d["issue"]["run_count"], 2);
}

#[tokio::test]
async fn cancelling_a_task_that_ended_is_refused_naming_its_status() {
    let srv = start().await;
    let fx = srv.fixture("ended").await;
    srv.assigned_issue(&fx, "done already").await;
    let run = srv.claim_and_start(&fx).await;
    let (s, v) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{run}/complete"),
            json!({"output": "done"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = srv
        .post(&fx.token, &format!("/api/v1/tasks/{run}/cancel"), json!({}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "already_ended", "{v}");
    assert_eq!(
        v["error"],
        format!("task {} already completed; nothing to cancel", &run[..8])
    );
    let (_, t) = srv.get(&fx.token, &format!("/api/v1/tasks/{run}")).await;
    assert_eq!(t["status"], "completed", "nothing changed");
    assert_eq!(t["cancelled_by"], Value::Null);

    // A cancelled task: cancelling it again says so.
    srv.assigned_issue(&fx, "cancel twice").await;
    let run = srv.claim(&fx, None).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, v) = srv
        .post(
            &srv.admin,
            &format!("/api/v1/tasks/{run}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["cancelled_by"], json!({"kind": "admin", "name": "admin"}));
    let (s, v) = srv
        .post(&fx.token, &format!("/api/v1/tasks/{run}/cancel"), json!({}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(
        v["error"],
        format!("task {} already cancelled; nothing to cancel", &run[..8])
    );
}
