//! Runtime pools and automatic retries (issue 14), on either backend: an agent bound to a
//! pool (runtime ids, or a provider plus labels) has its tasks taken by whichever runtime
//! of the pool claims first with free capacity; a pool that matches nothing says so; a
//! transient failure (the runtime silent past its lease, the model API overloaded) is
//! retried as a new attempt linked to its parent, on another runtime of the pool, up to
//! the agent's limit; an agent error is not retried.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const HOUR: Duration = Duration::from_secs(3600);

/// A server whose lease is an hour and whose retries wait no time.
async fn server() -> Srv {
    start_in(tempfile::tempdir().unwrap(), |c| {
        c.offline_after = HOUR;
        c.retry_backoff = Duration::ZERO;
    })
    .await
}

/// A second daemon's runtime in the fixture's workspace, with its capacity and labels.
async fn runtime(srv: &Srv, fx: &Fx, daemon: &str, capacity: u32, labels: &[&str]) -> String {
    let (s, v) = srv
        .post(
            &fx.daemon,
            "/api/daemon/register",
            json!({"workspace_id": fx.ws, "daemon_id": daemon, "device_name": daemon,
                   "runtimes": [{"name": format!("claude ({daemon})"), "type": "claude",
                                 "version": "1.0", "status": "online",
                                 "capacity": capacity, "labels": labels}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["runtimes"][0]["id"].as_str().unwrap().to_string()
}

async fn agent(srv: &Srv, fx: &Fx, body: Value) -> Value {
    let (s, v) = srv
        .post(
            &fx.token,
            &format!("/api/v1/workspaces/{}/agents", fx.ws),
            body,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

async fn issue_for(srv: &Srv, fx: &Fx, agent: &str, title: &str) -> String {
    let (s, v) = srv
        .post(
            &fx.token,
            &format!("/api/v1/workspaces/{}/issues", fx.ws),
            json!({"title": title, "assignee_agent_id": agent}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["id"].as_str().unwrap().to_string()
}

/// Runtime `rt`'s claim: the task's id, if one was handed out.
async fn claim_on(srv: &Srv, fx: &Fx, rt: &str) -> Option<String> {
    let (s, v) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/runtimes/{rt}/tasks/claim"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["task"]["id"].as_str().map(str::to_string)
}

async fn start(srv: &Srv, fx: &Fx, task: &str) {
    let (s, v) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{task}/start"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn tasks_of(srv: &Srv, fx: &Fx, issue: &str) -> Vec<Value> {
    let (s, d) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    d["tasks"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_pool_agents_tasks_go_to_whichever_runtime_has_room() {
    let srv = server().await;
    let fx = srv.fixture("pool").await;
    let a = runtime(&srv, &fx, "laptop", 1, &[]).await;
    let b = runtime(&srv, &fx, "buildbox", 1, &[]).await;
    let bot = agent(
        &srv,
        &fx,
        json!({"name": "pooled", "pool": {"runtime_ids": [a, b]}}),
    )
    .await;
    assert_eq!(bot["runtime_id"], "", "{bot}");
    let mut pool: Vec<&str> = bot["pool_runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    pool.sort();
    let mut want = vec![a.as_str(), b.as_str()];
    want.sort();
    assert_eq!(pool, want, "{bot}");
    let bot = bot["id"].as_str().unwrap();

    let i1 = issue_for(&srv, &fx, bot, "one").await;
    let i2 = issue_for(&srv, &fx, bot, "two").await;
    let i3 = issue_for(&srv, &fx, bot, "three").await;
    // Queued for no runtime yet.
    assert_eq!(tasks_of(&srv, &fx, &i1).await[0]["runtime_id"], "");
    // The fixture's own runtime is not in the pool: it gets nothing.
    assert_eq!(claim_on(&srv, &fx, &fx.runtime).await, None);
    // Each runtime of the pool takes one; with both full (capacity 1) the third waits.
    let t1 = claim_on(&srv, &fx, &a).await.expect("a takes the oldest");
    assert_eq!(claim_on(&srv, &fx, &a).await, None, "a is full");
    let t2 = claim_on(&srv, &fx, &b).await.expect("b takes the next");
    assert_eq!(claim_on(&srv, &fx, &b).await, None, "b is full");
    assert_eq!(tasks_of(&srv, &fx, &i1).await[0]["id"], t1.as_str());
    assert_eq!(tasks_of(&srv, &fx, &i1).await[0]["runtime_id"], a.as_str());
    assert_eq!(tasks_of(&srv, &fx, &i2).await[0]["id"], t2.as_str());
    assert_eq!(tasks_of(&srv, &fx, &i2).await[0]["runtime_id"], b.as_str());
    // b finishes first: the third task goes to b.
    start(&srv, &fx, &t2).await;
    let (s, v) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{t2}/complete"),
            json!({"output": "done"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(claim_on(&srv, &fx, &a).await, None, "a is still full");
    let t3 = claim_on(&srv, &fx, &b).await.expect("b has room again");
    assert_eq!(tasks_of(&srv, &fx, &i3).await[0]["id"], t3.as_str());
    assert_eq!(tasks_of(&srv, &fx, &i3).await[0]["runtime_id"], b.as_str());
    srv.stop().await;
}

#[tokio::test]
async fn a_selector_pool_runs_only_where_its_labels_are_and_says_when_nothing_matches() {
    let srv = server().await;
    let fx = srv.fixture("labels").await;
    let cpu = runtime(&srv, &fx, "cpu-box", 4, &["os=linux"]).await;
    let gpu = runtime(&srv, &fx, "gpu-box", 4, &["os=linux", "gpu"]).await;
    let bot = agent(
        &srv,
        &fx,
        json!({"name": "trainer", "pool": {"provider": "claude", "labels": ["gpu"]}}),
    )
    .await;
    assert_eq!(bot["pool_runtimes"], json!([gpu]), "{bot}");
    assert!(bot.get("problem").is_none(), "{bot}");
    let bot = bot["id"].as_str().unwrap();
    issue_for(&srv, &fx, bot, "train").await;
    assert_eq!(claim_on(&srv, &fx, &cpu).await, None, "no gpu label");
    assert!(claim_on(&srv, &fx, &gpu).await.is_some());

    // A pool nothing matches is accepted, and says so wherever the agent is shown.
    let lost = agent(
        &srv,
        &fx,
        json!({"name": "lost", "pool": {"provider": "codex"}}),
    )
    .await;
    assert_eq!(lost["problem"], "no runtime matches", "{lost}");
    let (_, list) = srv
        .get(&fx.token, &format!("/api/v1/workspaces/{}/agents", fx.ws))
        .await;
    let shown = list
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == lost["id"])
        .unwrap();
    assert_eq!(shown["problem"], "no runtime matches", "{shown}");

    // A pool with nothing to select by, or naming a runtime of another workspace, is 400/404.
    let (s, v) = srv
        .post(
            &fx.token,
            &format!("/api/v1/workspaces/{}/agents", fx.ws),
            json!({"name": "empty", "pool": {"labels": ["gpu"]}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("runtime_ids or a provider"),
        "{v}"
    );
    let (s, v) = srv
        .post(
            &fx.token,
            &format!("/api/v1/workspaces/{}/agents", fx.ws),
            json!({"name": "nowhere"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    srv.stop().await;
}

#[tokio::test]
async fn a_task_whose_runtime_went_silent_is_retried_on_another_runtime_of_the_pool() {
    let srv = server().await;
    let fx = srv.fixture("retry").await;
    let a = runtime(&srv, &fx, "laptop", 2, &[]).await;
    let b = runtime(&srv, &fx, "buildbox", 2, &[]).await;
    let bot = agent(
        &srv,
        &fx,
        json!({"name": "pooled", "pool": {"provider": "claude"}, "max_retries": 1}),
    )
    .await;
    let bot = bot["id"].as_str().unwrap();
    let issue = issue_for(&srv, &fx, bot, "survives a dead laptop").await;
    let first = claim_on(&srv, &fx, &a).await.unwrap();
    start(&srv, &fx, &first).await;

    // The laptop goes silent for a lease (b keeps heartbeating): the task fails
    // runtime_offline and a second attempt is queued for the pool.
    srv.advance(srv.lease_ms() + 1);
    srv.heartbeat(&fx.daemon, &b, None).await;
    srv.sweep().await;
    let tasks = tasks_of(&srv, &fx, &issue).await;
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    assert_eq!(tasks[0]["status"], "failed");
    assert_eq!(tasks[0]["failure_reason"], "runtime_offline");
    assert_eq!(tasks[0]["attempt"], 1);
    assert_eq!(tasks[1]["status"], "queued");
    assert_eq!(tasks[1]["parent_task_id"], first.as_str());
    assert_eq!(tasks[1]["attempt"], 2);
    assert_eq!(tasks[1]["runtime_id"], "");

    // The other runtime takes the retry and completes it.
    let second = claim_on(&srv, &fx, &b).await.expect("b takes the retry");
    assert_eq!(second, tasks[1]["id"].as_str().unwrap());
    start(&srv, &fx, &second).await;
    let (s, v) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{second}/complete"),
            json!({"output": "done on b"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let tasks = tasks_of(&srv, &fx, &issue).await;
    assert_eq!(tasks[1]["status"], "completed");
    assert_eq!(tasks[1]["runtime_id"], b.as_str());
    srv.stop().await;
}

#[tokio::test]
async fn overload_is_retried_up_to_the_limit_and_an_agent_error_is_not() {
    let srv = server().await;
    let fx = srv.fixture("classes").await;
    // The fixture's agent (one runtime, max_retries 2 by default).
    let issue = srv.assigned_issue(&fx, "the model is busy").await;
    let fail = |task: String, reason: &'static str| {
        let srv = &srv;
        let fx = &fx;
        async move {
            start(srv, fx, &task).await;
            let (s, v) = srv
                .post(
                    &fx.daemon,
                    &format!("/api/daemon/tasks/{task}/fail"),
                    json!({"error": "API Error: 529 overloaded", "failure_reason": reason}),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
        }
    };
    // Attempts 1 and 2 fail overloaded and are retried; attempt 3 is the last.
    for attempt in 1..=3 {
        let t = claim_on(&srv, &fx, &fx.runtime)
            .await
            .unwrap_or_else(|| panic!("attempt {attempt} is claimable"));
        fail(t, "model_unavailable").await;
    }
    let tasks = tasks_of(&srv, &fx, &issue).await;
    let attempts: Vec<i64> = tasks
        .iter()
        .map(|t| t["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(attempts, vec![1, 2, 3], "{tasks:?}");
    assert!(tasks.iter().all(|t| t["status"] == "failed"), "{tasks:?}");
    assert_eq!(
        claim_on(&srv, &fx, &fx.runtime).await,
        None,
        "no fourth attempt"
    );

    // An agent error is the agent's own: no retry.
    let other = srv.assigned_issue(&fx, "the agent is wrong").await;
    let t = claim_on(&srv, &fx, &fx.runtime).await.unwrap();
    fail(t, "agent_error").await;
    assert_eq!(tasks_of(&srv, &fx, &other).await.len(), 1);
    assert_eq!(claim_on(&srv, &fx, &fx.runtime).await, None);
    srv.stop().await;
}

#[tokio::test]
async fn an_agents_concurrency_cap_holds_across_its_pool() {
    let srv = server().await;
    let fx = srv.fixture("cap").await;
    let a = runtime(&srv, &fx, "one", 4, &[]).await;
    let b = runtime(&srv, &fx, "two", 4, &[]).await;
    let bot = agent(
        &srv,
        &fx,
        json!({"name": "capped", "pool": {"runtime_ids": [a, b]}, "max_concurrency": 1}),
    )
    .await;
    assert_eq!(bot["max_concurrency"], 1, "{bot}");
    let bot = bot["id"].as_str().unwrap();
    issue_for(&srv, &fx, bot, "one").await;
    issue_for(&srv, &fx, bot, "two").await;
    let first = claim_on(&srv, &fx, &a).await.expect("the first task");
    // Both runtimes have room, but the agent runs one task at a time.
    assert_eq!(claim_on(&srv, &fx, &b).await, None);
    assert_eq!(claim_on(&srv, &fx, &a).await, None);
    start(&srv, &fx, &first).await;
    let (s, v) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{first}/complete"),
            json!({"output": "ok"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(claim_on(&srv, &fx, &b).await.is_some());
    // Lifting the cap (0) lets the agent run on both again.
    let (s, v) = srv
        .patch(
            &fx.token,
            &format!("/api/v1/agents/{bot}"),
            json!({"max_concurrency": 0}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v.get("max_concurrency").is_none(), "{v}");
    srv.stop().await;
}

/// A retry's backoff timer lives in the memory of the instance that failed the task; when
/// it never fires (that instance restarted or died), the sweeper wakes the pool once the
/// backoff has passed, so the retry does not wait for the daemons' next poll.
#[tokio::test]
async fn the_sweeper_wakes_a_retry_whose_timer_is_gone() {
    let srv = start_in(tempfile::tempdir().unwrap(), |c| {
        c.offline_after = HOUR;
        // Longer than the test: only the sweeper can wake the retry.
        c.retry_backoff = HOUR;
    })
    .await;
    let fx = srv.fixture("due").await;
    let a = runtime(&srv, &fx, "laptop", 2, &[]).await;
    let b = runtime(&srv, &fx, "buildbox", 2, &[]).await;
    let bot = agent(
        &srv,
        &fx,
        json!({"name": "pooled", "pool": {"provider": "claude"}, "max_retries": 1}),
    )
    .await;
    let bot = bot["id"].as_str().unwrap();
    let issue = issue_for(&srv, &fx, bot, "retried after a restart").await;
    let first = claim_on(&srv, &fx, &a).await.unwrap();
    start(&srv, &fx, &first).await;
    srv.advance(srv.lease_ms() + 1);
    srv.heartbeat(&fx.daemon, &b, None).await;
    srv.sweep().await;
    let tasks = tasks_of(&srv, &fx, &issue).await;
    assert_eq!(tasks[1]["status"], "queued", "{tasks:?}");
    let retry = tasks[1]["id"].as_str().unwrap().to_string();

    let mut ws = srv.ws(&fx.daemon, &[&b]).await;
    // Before the backoff has passed: no claim, and a sweep wakes nobody.
    assert_eq!(claim_on(&srv, &fx, &b).await, None);
    srv.sweep().await;
    assert!(
        tokio::time::timeout(
            Duration::from_millis(300),
            next_frame(&mut ws, "daemon:task_available", Duration::from_secs(1))
        )
        .await
        .is_err(),
        "woken before the backoff passed"
    );
    // The backoff passes on the server's clock; the timer (an hour of real time) does
    // not fire, the sweep wakes b for the retry, once.
    srv.advance(HOUR.as_millis() as i64 + 1);
    srv.heartbeat(&fx.daemon, &b, None).await;
    srv.sweep().await;
    let p = next_frame(&mut ws, "daemon:task_available", Duration::from_secs(5)).await;
    assert_eq!(p["runtime_id"], b.as_str(), "{p}");
    assert_eq!(p["task_id"], retry.as_str(), "{p}");
    srv.sweep().await;
    assert!(
        tokio::time::timeout(
            Duration::from_millis(300),
            next_frame(&mut ws, "daemon:task_available", Duration::from_secs(1))
        )
        .await
        .is_err(),
        "a due retry is woken once"
    );
    assert_eq!(claim_on(&srv, &fx, &b).await, Some(retry));
    srv.stop().await;
}
