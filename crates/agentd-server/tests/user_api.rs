//! The user API: task-token scoping, workspace isolation, bad input, concurrency of the
//! claim, and durability across a restart.

mod common;

use std::collections::HashSet;
use std::time::Instant;

use common::*;
use pretty_assertions::assert_eq;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn task_token_acts_only_on_its_issue_while_the_task_is_active() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let issue = srv.assigned_issue(&fx, "mine").await;
    let other = srv
        .post(
            &fx.token,
            &format!("/api/v1/workspaces/{}/issues", fx.ws),
            json!({"title": "not mine"}),
        )
        .await
        .1["id"]
        .as_str()
        .unwrap()
        .to_string();
    let task = srv.claim(&fx, None).await;
    let tt = task["task_token"].as_str().unwrap().to_string();
    let tid = task["id"].as_str().unwrap().to_string();

    let (s, d) = srv.get(&tt, &format!("/api/v1/issues/{issue}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(d["issue"]["title"], "mine");
    let (s, c) = srv
        .post(
            &tt,
            &format!("/api/v1/issues/{issue}/comments"),
            json!({"body": "on it"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(c["author_type"], "agent");
    assert_eq!(c["author_id"], fx.agent.as_str());
    let (s, i) = srv
        .patch(
            &tt,
            &format!("/api/v1/issues/{issue}"),
            json!({"status": "in_progress"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(i["status"], "in_progress");
    // An agent comment does not queue more work for itself.
    let (_, d) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
    assert_eq!(d["tasks"].as_array().unwrap().len(), 1);

    // Elsewhere: 404 for another issue, 403 for anything that is not its issue.
    assert_eq!(
        srv.get(&tt, &format!("/api/v1/issues/{other}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        srv.post(
            &tt,
            &format!("/api/v1/issues/{other}/comments"),
            json!({"body": "x"})
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        srv.patch(
            &tt,
            &format!("/api/v1/issues/{issue}"),
            json!({"title": "renamed"})
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        srv.get(&tt, "/api/v1/workspaces").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        srv.get(&tt, &format!("/api/v1/tasks/{tid}")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        srv.post(
            &tt,
            "/api/daemon/heartbeat",
            json!({"runtime_id": fx.runtime})
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );

    // After the task ends the token is dead.
    srv.post(
        &fx.daemon,
        &format!("/api/daemon/tasks/{tid}/start"),
        json!({}),
    )
    .await;
    srv.post(
        &fx.daemon,
        &format!("/api/daemon/tasks/{tid}/complete"),
        json!({"output": "ok"}),
    )
    .await;
    let (s, v) = srv.get(&tt, &format!("/api/v1/issues/{issue}")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    srv.stop().await;
}

#[tokio::test]
async fn another_workspaces_data_is_404() {
    // Members may mint tokens here, so minting one for another workspace reaches the
    // visibility rule (404) rather than the server setting (403).
    let srv = start_in(tempfile::tempdir().unwrap(), |c| {
        c.members_can_mint_tokens = true
    })
    .await;
    let a = srv.fixture("a").await;
    let b = srv.fixture("b").await;
    let issue_a = srv.assigned_issue(&a, "secret").await;
    let task_a = srv.claim(&a, None).await["id"]
        .as_str()
        .unwrap()
        .to_string();

    let cases: Vec<(reqwest::Method, String, Option<Value>)> = vec![
        (
            reqwest::Method::GET,
            format!("/api/v1/issues/{issue_a}"),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/issues/{issue_a}/comments"),
            Some(json!({"body": "hi"})),
        ),
        (
            reqwest::Method::PATCH,
            format!("/api/v1/issues/{issue_a}"),
            Some(json!({"status": "done"})),
        ),
        (
            reqwest::Method::GET,
            format!("/api/v1/workspaces/{}/runtimes", a.ws),
            None,
        ),
        (
            reqwest::Method::GET,
            format!("/api/v1/workspaces/{}/agents", a.ws),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/workspaces/{}/issues", a.ws),
            Some(json!({"title": "x"})),
        ),
        (
            reqwest::Method::GET,
            format!("/api/v1/agents/{}", a.agent),
            None,
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/v1/runtimes/{}", a.runtime),
            None,
        ),
        (
            reqwest::Method::GET,
            format!("/api/v1/tasks/{task_a}"),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/tasks/{task_a}/cancel"),
            Some(json!({})),
        ),
        (
            reqwest::Method::GET,
            format!("/api/daemon/tasks/{task_a}/status"),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/api/daemon/tasks/{task_a}/complete"),
            Some(json!({"output": "x"})),
        ),
        (
            reqwest::Method::POST,
            format!("/api/daemon/runtimes/{}/tasks/claim", a.runtime),
            Some(json!({})),
        ),
        (
            reqwest::Method::POST,
            "/api/daemon/heartbeat".into(),
            Some(json!({"runtime_id": a.runtime})),
        ),
        (
            reqwest::Method::GET,
            format!("/api/daemon/workspaces/{}/repos", a.ws),
            None,
        ),
        (
            reqwest::Method::POST,
            "/api/v1/tokens".into(),
            Some(json!({"workspace_ids": [a.ws]})),
        ),
    ];
    for (m, path, body) in cases {
        // Each route with the kind of token it takes: b's daemon token on the daemon API.
        let token = if path.starts_with("/api/daemon") {
            &b.daemon
        } else {
            &b.token
        };
        let (s, v) = srv.req(m.clone(), token, &path, body).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{m} {path}: {v}");
        assert!(v["error"].is_string());
    }
    let (_, list) = srv.get(&b.token, "/api/v1/issues").await;
    assert!(
        list["issues"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["workspace_id"] == b.ws.as_str())
    );
    let (_, wss) = srv.get(&b.daemon, "/api/workspaces").await;
    assert_eq!(wss.as_array().unwrap().len(), 1);
    // Nothing changed in A.
    let (_, d) = srv
        .get(&a.token, &format!("/api/v1/issues/{issue_a}"))
        .await;
    assert_eq!(d["issue"]["status"], "todo");
    assert!(d["comments"].as_array().unwrap().is_empty());
    assert_eq!(d["tasks"][0]["status"], "dispatched");
    srv.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_4xx_json_error_and_changes_nothing() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let issues_path = format!("/api/v1/workspaces/{}/issues", fx.ws);
    let big = "x".repeat(2 * 1024 * 1024);
    let zero = "00000000-0000-0000-0000-000000000000";
    // (method, path, token, raw body, content type, expected status)
    let cases: Vec<(&str, String, &str, String, &str, u16)> = vec![
        (
            "POST",
            issues_path.clone(),
            &fx.token,
            "{not json".into(),
            "application/json",
            400,
        ),
        (
            "POST",
            issues_path.clone(),
            &fx.token,
            r#"{"title": 5}"#.into(),
            "application/json",
            422,
        ),
        (
            "POST",
            issues_path.clone(),
            &fx.token,
            r#"{"description": "no title"}"#.into(),
            "application/json",
            422,
        ),
        (
            "POST",
            issues_path.clone(),
            &fx.token,
            r#"{"title": "t"}"#.into(),
            "text/plain",
            415,
        ),
        (
            "POST",
            issues_path.clone(),
            &fx.token,
            format!(r#"{{"title": "{big}"}}"#),
            "application/json",
            413,
        ),
        (
            "POST",
            issues_path.clone(),
            &fx.token,
            r#"{"title": "  "}"#.into(),
            "application/json",
            400,
        ),
        (
            "POST",
            issues_path.clone(),
            &fx.token,
            r#"{"title": "t", "status": "weird"}"#.into(),
            "application/json",
            400,
        ),
        (
            "POST",
            issues_path.clone(),
            &fx.token,
            format!(r#"{{"title": "t", "assignee_agent_id": "{zero}"}}"#),
            "application/json",
            404,
        ),
        (
            "POST",
            issues_path.clone(),
            "",
            r#"{"title": "t"}"#.into(),
            "application/json",
            401,
        ),
        (
            "POST",
            issues_path.clone(),
            "agd_nope",
            r#"{"title": "t"}"#.into(),
            "application/json",
            401,
        ),
        (
            "POST",
            format!("/api/v1/workspaces/{zero}/issues"),
            &fx.token,
            r#"{"title": "t"}"#.into(),
            "application/json",
            404,
        ),
        // A workspace reference may be a name: one that names nothing is not found.
        (
            "POST",
            "/api/v1/workspaces/not-a-uuid/issues".into(),
            &fx.token,
            r#"{"title": "t"}"#.into(),
            "application/json",
            404,
        ),
        // A task reference is an id or a prefix of one: "x" can be neither.
        (
            "GET",
            "/api/v1/tasks/x".into(),
            &fx.token,
            String::new(),
            "",
            400,
        ),
        (
            "GET",
            format!("/api/v1/issues/{zero}"),
            &fx.token,
            String::new(),
            "",
            404,
        ),
        (
            "GET",
            format!("/api/v1/tasks/{zero}/messages?after_seq=abc"),
            &fx.token,
            String::new(),
            "",
            400,
        ),
        (
            "GET",
            format!("/api/daemon/tasks/{zero}/status"),
            &fx.daemon,
            String::new(),
            "",
            404,
        ),
        (
            "POST",
            "/api/daemon/heartbeat".into(),
            &fx.daemon,
            r#"{"runtime_id": 7}"#.into(),
            "application/json",
            422,
        ),
        (
            "POST",
            "/api/daemon/heartbeat".into(),
            &fx.daemon,
            format!(r#"{{"runtime_id": "{zero}"}}"#),
            "application/json",
            404,
        ),
        (
            "POST",
            "/api/daemon/register".into(),
            &fx.daemon,
            format!(
                r#"{{"workspace_id": "{}", "daemon_id": "d", "runtimes": []}}"#,
                fx.ws
            ),
            "application/json",
            400,
        ),
        (
            "POST",
            format!("/api/v1/workspaces/{}/agents", fx.ws),
            &fx.token,
            format!(r#"{{"name": "a", "runtime_id": "{zero}"}}"#),
            "application/json",
            404,
        ),
        (
            "POST",
            "/api/v1/tokens".into(),
            &srv.admin,
            r#"{"workspace_ids": []}"#.into(),
            "application/json",
            400,
        ),
        (
            "GET",
            "/api/v1/nope".into(),
            &fx.token,
            String::new(),
            "",
            404,
        ),
        (
            "DELETE",
            "/api/v1/issues".into(),
            &fx.token,
            String::new(),
            "",
            405,
        ),
    ];
    for (method, path, token, body, ctype, want) in cases {
        let mut r = srv
            .http
            .request(method.parse().unwrap(), format!("{}{}", srv.url, path));
        if !token.is_empty() {
            r = r.bearer_auth(token);
        }
        if !ctype.is_empty() {
            r = r.header("content-type", ctype).body(body.clone());
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(
            status,
            want,
            "{method} {path} {}: {v}",
            &body[..body.len().min(80)]
        );
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{method} {path}: no error body: {v}"
        );
    }
    let (_, list) = srv.get(&fx.token, "/api/v1/issues").await;
    assert!(
        list["issues"].as_array().unwrap().is_empty(),
        "no bad request created an issue: {list}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_runtimes_claim_a_thousand_tasks_each_exactly_once() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let providers: Vec<String> = (0..50).map(|i| format!("p{i}")).collect();
    let refs: Vec<&str> = providers.iter().map(String::as_str).collect();
    let reg = srv.register(&fx.daemon, &fx.ws, "many", &refs).await;
    let runtimes: Vec<String> = reg["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(runtimes.len(), 50);
    let mut agents = Vec::new();
    for rt in &runtimes {
        let (_, a) = srv
            .post(
                &fx.token,
                &format!("/api/v1/workspaces/{}/agents", fx.ws),
                json!({"name": "a", "runtime_id": rt}),
            )
            .await;
        agents.push(a["id"].as_str().unwrap().to_string());
    }
    let t0 = Instant::now();
    for i in 0..1000 {
        let (s, _) = srv
            .post(
                &fx.token,
                &format!("/api/v1/workspaces/{}/issues", fx.ws),
                json!({"title": format!("t{i}"), "assignee_agent_id": agents[i % 50]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let queued_in = t0.elapsed();

    // Every runtime runs two concurrent claimers (as a daemon's pollers might), all at once.
    let t1 = Instant::now();
    let mut handles = Vec::new();
    for rt in &runtimes {
        for _ in 0..2 {
            let (http, url, token, rt) = (
                srv.http.clone(),
                srv.url.clone(),
                fx.daemon.clone(),
                rt.clone(),
            );
            handles.push(tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let v: Value = http
                        .post(format!("{url}/api/daemon/runtimes/{rt}/tasks/claim"))
                        .bearer_auth(&token)
                        .json(&json!({}))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    if v["task"].is_null() {
                        return got;
                    }
                    assert_eq!(v["task"]["runtime_id"], rt.as_str());
                    got.push(v["task"]["id"].as_str().unwrap().to_string());
                }
            }));
        }
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let claimed_in = t1.elapsed();
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 1000, "every task claimed");
    assert_eq!(unique.len(), 1000, "no task claimed twice");
    eprintln!("queued 1000 tasks in {queued_in:?}; 100 claimers drained them in {claimed_in:?}");
    srv.stop().await;
}

#[tokio::test]
async fn restart_with_the_same_data_dir_loses_nothing() {
    let srv = start().await;
    let admin = srv.admin.clone();
    let fx = srv.fixture("durable").await;
    let issue = srv.assigned_issue(&fx, "survive").await;
    let task = srv.claim(&fx, Some("k")).await;
    let tid = task["id"].as_str().unwrap().to_string();
    srv.post(
        &fx.daemon,
        &format!("/api/daemon/tasks/{tid}/messages"),
        json!({"messages": [{"seq": 1, "type": "text", "content": "hi"}]}),
    )
    .await;
    srv.post(
        &fx.token,
        &format!("/api/v1/issues/{issue}/comments"),
        json!({"body": "note"}),
    )
    .await;
    let (_, before) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
    let dir = srv.stop().await;

    let srv = start_in(dir, |_| {}).await;
    assert_eq!(srv.admin, admin, "the admin token is reused");
    let (s, after) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
    assert_eq!(s, StatusCode::OK, "the member token still works");
    assert_eq!(before, after);
    let (_, page) = srv
        .get(&fx.token, &format!("/api/v1/tasks/{tid}/messages"))
        .await;
    assert_eq!(page["messages"][0]["content"], "hi");
    // Runtime ids survive: re-register keeps them, and the claim key still replays.
    let reg = srv.register(&fx.daemon, &fx.ws, "d1", &["claude"]).await;
    assert_eq!(reg["runtimes"][0]["id"], fx.runtime.as_str());
    assert_eq!(srv.claim(&fx, Some("k")).await["id"], tid.as_str());
    let tt = srv.claim(&fx, Some("k")).await["task_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        srv.get(&tt, &format!("/api/v1/issues/{issue}")).await.0,
        StatusCode::OK
    );
    srv.stop().await;
}

#[tokio::test]
async fn reassigning_or_cancelling_an_issue_cancels_its_tasks() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let (_, other) = srv
        .post(
            &fx.token,
            &format!("/api/v1/workspaces/{}/agents", fx.ws),
            json!({"name": "other", "runtime_id": fx.runtime}),
        )
        .await;
    let other = other["id"].as_str().unwrap().to_string();
    let issue = srv.assigned_issue(&fx, "move me").await;
    let first = srv.claim(&fx, None).await["id"]
        .as_str()
        .unwrap()
        .to_string();

    let (s, i) = srv
        .patch(
            &fx.token,
            &format!("/api/v1/issues/{issue}"),
            json!({"assignee_agent_id": other}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{i}");
    let (_, d) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
    let tasks = d["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0]["id"], first.as_str());
    assert_eq!(tasks[0]["status"], "cancelled");
    assert_eq!(tasks[1]["status"], "queued");
    assert_eq!(tasks[1]["agent_id"], other.as_str());

    let (s, _) = srv
        .patch(
            &fx.token,
            &format!("/api/v1/issues/{issue}"),
            json!({"status": "cancelled"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, d) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
    assert!(
        d["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "cancelled"),
        "{d}"
    );
    assert!(srv.claim(&fx, None).await.is_null());

    // Backlog issues wait; leaving backlog queues the work.
    let (_, b) = srv
        .post(
            &fx.token,
            &format!("/api/v1/workspaces/{}/issues", fx.ws),
            json!({"title": "later", "status": "backlog", "assignee_agent_id": fx.agent}),
        )
        .await;
    let bid = b["id"].as_str().unwrap().to_string();
    assert!(srv.claim(&fx, None).await.is_null());
    srv.patch(
        &fx.token,
        &format!("/api/v1/issues/{bid}"),
        json!({"status": "todo"}),
    )
    .await;
    assert_eq!(srv.claim(&fx, None).await["issue_id"], bid.as_str());
    srv.stop().await;
}

/// Creates a workspace with `repos`; the status and body.
async fn create_with_repos(srv: &common::Srv, repos: &[&str]) -> (StatusCode, Value) {
    srv.post(
        &srv.admin,
        "/api/v1/workspaces",
        json!({"name": "r", "repos": repos}),
    )
    .await
}

#[tokio::test]
async fn repository_urls_are_validated_when_set() {
    let srv = common::start().await;
    let (s, ws) = create_with_repos(
        &srv,
        &[
            "https://github.com/org/repo.git",
            " git@github.com:org/other.git ",
        ],
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{ws}");
    let (_, repos) = srv
        .get(
            &srv.admin,
            &format!(
                "/api/daemon/workspaces/{}/repos",
                ws["id"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(
        repos["repos"],
        json!([{"url": "https://github.com/org/repo.git"}, {"url": "git@github.com:org/other.git"}])
    );
    let (_, before) = srv.get(&srv.admin, "/api/v1/workspaces").await;
    for (url, why) in [
        ("file:///srv/git/secret.git", "--allow-local-repos"),
        ("/home/someone/.ssh", "--allow-local-repos"),
        ("ext::sh -c id", "whitespace"),
        ("ext::sh", "remote-helper"),
        ("--upload-pack=evil", "starts with '-'"),
        ("ssh://-oProxyCommand=evil/x", "host starts with '-'"),
        ("https://github.com/a\nb", "control"),
    ] {
        // One bad URL among good ones refuses the whole request, naming the bad one.
        let (s, v) = create_with_repos(&srv, &["https://github.com/org/repo.git", url]).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{url:?}: {v}");
        let err = v["error"].as_str().unwrap();
        assert!(
            err.contains(&format!("{url:?}")) && err.contains(why),
            "{url:?}: {err}"
        );
    }
    let (_, after) = srv.get(&srv.admin, "/api/v1/workspaces").await;
    assert_eq!(before, after, "no refused workspace was created");
    srv.stop().await;

    // A server started with the option (agentd up) takes local repositories.
    let srv = common::start_in(tempfile::tempdir().unwrap(), |c| c.allow_local_repos = true).await;
    let (s, v) = create_with_repos(&srv, &["file:///srv/git/repo.git", "/srv/git/other"]).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = create_with_repos(&srv, &["ext::sh"]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    srv.stop().await;
}
