//! What a task changed (issue 12): the diff a daemon's final report carries is stored with
//! the transition that ends the task, summed up in `TaskInfo.diffstat` and returned whole
//! by `GET /api/v1/tasks/{id}/diff`.

mod common;

use agentd_proto::MAX_PATCH_BYTES;
use common::*;
use pretty_assertions::assert_eq;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn a_diff(tag: &str) -> Value {
    json!({
        "base_commit": "1111111111111111111111111111111111111111",
        "head_commit": "2222222222222222222222222222222222222222",
        "files": [
            {"path": "src/lib.rs", "additions": 2, "deletions": 1, "binary": false},
            {"path": "logo.png", "additions": 0, "deletions": 0, "binary": true},
        ],
        "additions": 2,
        "deletions": 1,
        "patch": format!(
            "diff --git a/src/lib.rs b/src/lib.rs\n--- a/src/lib.rs\n+++ b/src/lib.rs\n\
             @@ -1,2 +1,3 @@\n-old {tag}\n+new {tag}\n+<script>alert(1)</script>\n keep\n\
             diff --git a/logo.png b/logo.png\nBinary files a/logo.png and b/logo.png differ\n"
        ),
        "truncated": false,
    })
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

async fn diff_of(srv: &Srv, token: &str, task: &str) -> (StatusCode, Value) {
    srv.get(token, &format!("/api/v1/tasks/{task}/diff")).await
}

#[tokio::test]
async fn a_completion_stores_its_diff_and_every_view_of_the_task_shows_its_diffstat() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let issue = srv.assigned_issue(&fx, "change things").await;
    let tid = srv.claim_and_start(&fx).await;
    let sent = a_diff("one");
    report(
        &srv,
        &fx,
        &tid,
        "complete",
        json!({"output": "done", "branch_name": "agentd/change-things", "diff": sent}),
    )
    .await;

    let (s, got) = diff_of(&srv, &fx.token, &tid).await;
    assert_eq!(s, StatusCode::OK, "{got}");
    assert_eq!(got, sent, "the diff comes back as it was reported");

    let stat = json!({"files": 2, "additions": 2, "deletions": 1});
    let t = srv.task(&fx.token, &tid).await;
    assert_eq!(t["diffstat"], stat, "{t}");
    let (_, d) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
    assert_eq!(d["tasks"][0]["diffstat"], stat, "{d}");
    let (_, page) = srv
        .get(&fx.token, &format!("/api/v1/issues?workspace_id={}", fx.ws))
        .await;
    assert_eq!(page["issues"][0]["latest_task"]["diffstat"], stat, "{page}");
}

#[tokio::test]
async fn a_replayed_report_neither_duplicates_nor_replaces_the_diff() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    srv.assigned_issue(&fx, "once").await;
    let tid = srv.claim_and_start(&fx).await;
    let first = a_diff("first");
    report(
        &srv,
        &fx,
        &tid,
        "complete",
        json!({"output": "done", "diff": first}),
    )
    .await;
    // The same report again (its answer was lost), then one claiming other changes.
    for diff in [first.clone(), a_diff("second")] {
        let v = report(
            &srv,
            &fx,
            &tid,
            "complete",
            json!({"output": "done", "diff": diff}),
        )
        .await;
        assert_eq!(v["late"], false, "{v}");
    }
    let (_, got) = diff_of(&srv, &fx.token, &tid).await;
    assert_eq!(got, first);
    let rows = common::Db::open(srv.dir.path())
        .await
        .count("SELECT COUNT(*) FROM task_diffs")
        .await;
    assert_eq!(rows, 1, "one diff row for the task");
}

#[tokio::test]
async fn a_patch_over_the_limit_is_cut_at_a_line_with_a_marker_not_refused() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    srv.assigned_issue(&fx, "big").await;
    let tid = srv.claim_and_start(&fx).await;
    let line = "+a line the agent added to a generated file\n";
    // Three times the limit, still well under the 1 MiB body limit.
    let patch = format!(
        "diff --git a/gen.txt b/gen.txt\n@@ -0,0 +1 @@\n{}",
        line.repeat(3 * MAX_PATCH_BYTES / line.len())
    );
    let mut diff = a_diff("big");
    diff["patch"] = json!(patch);
    let v = report(
        &srv,
        &fx,
        &tid,
        "complete",
        json!({"output": "done", "diff": diff}),
    )
    .await;
    assert_eq!(v["task_status"], "completed", "{v}");

    let (_, got) = diff_of(&srv, &fx.token, &tid).await;
    assert_eq!(got["truncated"], true);
    let stored = got["patch"].as_str().unwrap();
    assert!(stored.len() <= MAX_PATCH_BYTES, "{} bytes", stored.len());
    let (kept, marker) = stored
        .trim_end_matches('\n')
        .rsplit_once('\n')
        .expect("a marker line");
    assert!(
        patch.starts_with(&format!("{kept}\n")),
        "the kept part is the patch's start, cut at a line"
    );
    assert!(kept.ends_with(line.trim_end()), "cut after a whole line");
    let omitted = patch.len() - kept.len() - 1;
    assert_eq!(
        marker,
        format!("… [diff truncated: {omitted} more bytes not shown]")
    );
    assert_eq!(got["files"], diff["files"], "the rest is as reported");
}

#[tokio::test]
async fn a_failed_push_keeps_the_runs_diff_and_branch() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    srv.assigned_issue(&fx, "push fails").await;
    let tid = srv.claim_and_start(&fx).await;
    let sent = a_diff("unpushed");
    let v = report(
        &srv,
        &fx,
        &tid,
        "fail",
        json!({"error": "git push: permission denied", "failure_reason": "push_failed",
               "branch_name": "agentd/push-fails", "diff": sent}),
    )
    .await;
    assert_eq!(v["task_status"], "failed", "{v}");
    let t = srv.task(&fx.token, &tid).await;
    assert_eq!(t["failure_reason"], "push_failed");
    assert_eq!(t["branch_name"], "agentd/push-fails");
    assert_eq!(
        t["diffstat"],
        json!({"files": 2, "additions": 2, "deletions": 1})
    );
    let (s, got) = diff_of(&srv, &fx.token, &tid).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, sent);
    // The same fail again is a replay: nothing changes.
    let v = report(
        &srv,
        &fx,
        &tid,
        "fail",
        json!({"error": "git push: permission denied", "failure_reason": "push_failed",
               "diff": a_diff("other")}),
    )
    .await;
    assert_eq!(v["late"], false, "{v}");
    assert_eq!(diff_of(&srv, &fx.token, &tid).await.1, sent);
}

#[tokio::test]
async fn a_task_without_a_diff_answers_404_no_diff() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    srv.assigned_issue(&fx, "nothing changed").await;
    let tid = srv.claim_and_start(&fx).await;
    let (s, v) = diff_of(&srv, &fx.token, &tid).await;
    assert_eq!(
        (s, v),
        (StatusCode::NOT_FOUND, json!({"error": "no diff"})),
        "a running task has none yet"
    );
    report(&srv, &fx, &tid, "complete", json!({"output": "no changes"})).await;
    let (s, v) = diff_of(&srv, &fx.token, &tid).await;
    assert_eq!((s, v), (StatusCode::NOT_FOUND, json!({"error": "no diff"})));
    let t = srv.task(&fx.token, &tid).await;
    assert_eq!(t["diffstat"], Value::Null, "{t}");
}

#[tokio::test]
async fn a_late_report_keeps_no_diff_but_says_what_it_changed() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let issue = srv.assigned_issue(&fx, "cancelled midway").await;
    let tid = srv.claim_and_start(&fx).await;
    let (s, _) = srv
        .post(&fx.token, &format!("/api/v1/tasks/{tid}/cancel"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let v = report(
        &srv,
        &fx,
        &tid,
        "complete",
        json!({"output": "done anyway", "diff": a_diff("late")}),
    )
    .await;
    assert_eq!(v["late"], true, "{v}");
    assert_eq!(
        diff_of(&srv, &fx.token, &tid).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, d) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
    let late: Vec<&str> = d["comments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["body"].as_str())
        .filter(|b| b.starts_with("Late report:"))
        .collect();
    assert_eq!(late.len(), 1, "{d}");
    assert!(
        late[0].contains("ended (2 files changed, +2 -1). Its result:"),
        "{}",
        late[0]
    );
}

#[tokio::test]
async fn who_may_read_a_diff() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let other = srv.fixture("other").await;
    let issue = srv.assigned_issue(&fx, "first").await;
    let done = srv.claim_and_start(&fx).await;
    let sent = a_diff("authz");
    report(
        &srv,
        &fx,
        &done,
        "complete",
        json!({"output": "done", "diff": sent}),
    )
    .await;
    // A task of another issue of the same workspace, with a diff too.
    srv.assigned_issue(&fx, "second").await;
    let elsewhere = srv.claim_and_start(&fx).await;
    report(
        &srv,
        &fx,
        &elsewhere,
        "complete",
        json!({"output": "done", "diff": a_diff("elsewhere")}),
    )
    .await;
    // A member's comment queues the issue's next run: its task token is the agent's.
    let (s, v) = srv
        .post(
            &fx.token,
            &format!("/api/v1/issues/{issue}/comments"),
            json!({"body": "once more"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let claimed = srv.claim(&fx, None).await;
    let running = claimed["id"].as_str().unwrap().to_string();
    let task_token = claimed["task_token"].as_str().unwrap().to_string();
    assert_eq!(claimed["issue_id"], issue.as_str());

    // The workspace's member and the admin read it.
    for token in [&fx.token, &srv.admin] {
        let (s, v) = diff_of(&srv, token, &done).await;
        assert_eq!((s, v), (StatusCode::OK, sent.clone()));
    }
    // Another workspace's member: as if the task did not exist.
    let (s, v) = diff_of(&srv, &other.token, &done).await;
    assert_eq!(
        (s, v),
        (StatusCode::NOT_FOUND, json!({"error": "task not found"}))
    );
    // A daemon token is not a reader of the user API.
    let (s, v) = diff_of(&srv, &fx.daemon, &done).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    // The agent's task token: its issue's tasks (its own has no diff yet), no other issue.
    let (s, v) = diff_of(&srv, &task_token, &done).await;
    assert_eq!((s, v), (StatusCode::OK, sent.clone()));
    let (s, v) = diff_of(&srv, &task_token, &running).await;
    assert_eq!((s, v), (StatusCode::NOT_FOUND, json!({"error": "no diff"})));
    let (s, v) = diff_of(&srv, &task_token, &elsewhere).await;
    assert_eq!(
        (s, v),
        (StatusCode::NOT_FOUND, json!({"error": "task not found"}))
    );
    // Once its task ended, the task token reads nothing.
    report(&srv, &fx, &running, "complete", json!({"output": "ok"})).await;
    let (s, _) = diff_of(&srv, &task_token, &done).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}
