//! Pagination of `GET /api/v1/issues` (cursor `after`, field `next`) and of
//! `GET /api/v1/tasks/{id}/messages` (`after_seq`, field `next`): a walk that follows the
//! cursors sees every row exactly once, in order, and the last page says it is the last.

mod common;

use std::collections::HashSet;

use common::*;
use pretty_assertions::assert_eq;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Follows `next` from the first page of `path` (which already has a `?`); returns every
/// page.
async fn walk_issues(srv: &Srv, token: &str, path: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let url = match &after {
            None => path.to_string(),
            Some(c) => format!("{path}&after={c}"),
        };
        let (s, page) = srv.get(token, &url).await;
        assert_eq!(s, StatusCode::OK, "{url}: {page}");
        after = page["next"].as_str().map(str::to_string);
        pages.push(page);
        if after.is_none() {
            return pages;
        }
        assert!(pages.len() < 100, "the walk does not end");
    }
}

fn ids(pages: &[Value]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| p["issues"].as_array().unwrap().clone())
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn walking_the_issue_pages_sees_every_issue_once_in_order() {
    let srv = start().await;
    let a = srv.fixture("a").await;
    let b = srv.fixture("b").await;
    // 23 issues in A (created back to back, so many share a millisecond: the id breaks
    // ties), every third assigned to the agent (a task), and 2 in B.
    let mut created = Vec::new();
    for n in 0..23 {
        let id = if n % 3 == 0 {
            srv.assigned_issue(&a, &format!("issue {n}")).await
        } else {
            let (s, v) = srv
                .post(
                    &a.token,
                    &format!("/api/v1/workspaces/{}/issues", a.ws),
                    json!({"title": format!("issue {n}")}),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            v["id"].as_str().unwrap().to_string()
        };
        created.push(id);
    }
    for n in 0..2 {
        srv.assigned_issue(&b, &format!("b {n}")).await;
    }
    // Issue 0 gets a second task (cancel, retry): its latest task is the new one.
    let (_, d) = srv
        .get(&a.token, &format!("/api/v1/issues/{}", created[0]))
        .await;
    let first_task = d["tasks"][0]["id"].as_str().unwrap().to_string();
    let (s, _) = srv
        .post(
            &a.token,
            &format!("/api/v1/tasks/{first_task}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, retried) = srv
        .post(
            &a.token,
            &format!("/api/v1/tasks/{first_task}/retry"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{retried}");

    let path = format!("/api/v1/issues?workspace_id={}&limit=5", a.ws);
    let pages = walk_issues(&srv, &a.token, &path).await;
    let sizes: Vec<usize> = pages
        .iter()
        .map(|p| p["issues"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![5, 5, 5, 5, 3]);
    let walked = ids(&pages);
    assert_eq!(
        walked.iter().collect::<HashSet<_>>().len(),
        walked.len(),
        "a duplicate"
    );
    let mut expected = created.clone();
    // Oldest first by (created_at, id): the API's order, not necessarily insertion order
    // within one millisecond.
    let mut by_time: Vec<(i64, String)> = Vec::new();
    for id in &expected {
        let (_, d) = srv.get(&a.token, &format!("/api/v1/issues/{id}")).await;
        let at: jiff::Timestamp = d["issue"]["created_at"].as_str().unwrap().parse().unwrap();
        by_time.push((at.as_millisecond(), id.clone()));
    }
    by_time.sort();
    expected = by_time.into_iter().map(|(_, id)| id).collect();
    assert_eq!(walked, expected, "every issue, in order, no gap");

    // Each issue's latest task is the newest of its tasks (one query for the page).
    for p in &pages {
        for i in p["issues"].as_array().unwrap() {
            let id = i["id"].as_str().unwrap();
            let (_, d) = srv.get(&a.token, &format!("/api/v1/issues/{id}")).await;
            let newest = d["tasks"]
                .as_array()
                .unwrap()
                .last()
                .map(|t| t["id"].clone());
            assert_eq!(i["latest_task"].get("id").cloned(), newest, "issue {id}");
        }
    }
    let zero = pages[0]["issues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == created[0].as_str())
        .expect("issue 0 on the first page");
    assert_eq!(zero["latest_task"]["id"], retried["id"]);

    // A page exactly as large as what is left is the last one: no empty page after it.
    let (_, page) = srv
        .get(
            &a.token,
            &format!("/api/v1/issues?workspace_id={}&limit=23", a.ws),
        )
        .await;
    assert_eq!(page["issues"].as_array().unwrap().len(), 23);
    assert_eq!(page["next"], Value::Null);

    // An issue created while walking shows up on a later page, once.
    let (_, first) = srv.get(&a.token, &path).await;
    let late = srv.assigned_issue(&a, "created mid-walk").await;
    let mut rest = walk_issues(
        &srv,
        &a.token,
        &format!("{path}&after={}", first["next"].as_str().unwrap()),
    )
    .await;
    rest.insert(0, first);
    let walked = ids(&rest);
    assert_eq!(walked.len(), 24);
    assert_eq!(walked.last(), Some(&late));

    // Without a workspace: every workspace the token sees (the admin: A and B).
    let all = ids(&walk_issues(&srv, &srv.admin, "/api/v1/issues?limit=7").await);
    assert_eq!(all.len(), 26);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 26);
    // The default page is 100.
    let (_, page) = srv.get(&srv.admin, "/api/v1/issues").await;
    assert_eq!(page["issues"].as_array().unwrap().len(), 26);
    assert_eq!(page["next"], Value::Null);
    srv.stop().await;
}

#[tokio::test]
async fn walking_the_transcript_pages_sees_every_message_once() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    srv.assigned_issue(&fx, "talkative").await;
    let task = srv.claim_and_start(&fx).await;
    let total = 1234;
    for batch in (1..=total).collect::<Vec<i64>>().chunks(200) {
        let messages: Vec<Value> = batch
            .iter()
            .map(|seq| json!({"seq": seq, "type": "text", "content": format!("m{seq}")}))
            .collect();
        let (s, v) = srv
            .post(
                &fx.daemon,
                &format!("/api/daemon/tasks/{task}/messages"),
                json!({"messages": messages}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    let mut seqs = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        let (s, page) = srv
            .get(
                &fx.token,
                &format!("/api/v1/tasks/{task}/messages?after_seq={after}&limit=100"),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        pages += 1;
        for m in page["messages"].as_array().unwrap() {
            seqs.push(m["seq"].as_i64().unwrap());
        }
        match page["next"].as_i64() {
            Some(n) => {
                assert_eq!(Some(n), seqs.last().copied(), "next is the page's last seq");
                after = n;
            }
            None => break,
        }
    }
    assert_eq!(
        seqs,
        (1..=total).collect::<Vec<_>>(),
        "every message once, in order"
    );
    assert_eq!(pages, 13);

    // The default page is 500, and says where the next starts.
    let (_, page) = srv
        .get(&fx.token, &format!("/api/v1/tasks/{task}/messages"))
        .await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 500);
    assert_eq!(page["next"], 500);
    assert_eq!(page["task_status"], "running");
    srv.stop().await;
}

#[tokio::test]
async fn bad_page_parameters_are_400_naming_the_parameter() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    srv.assigned_issue(&fx, "one").await;
    let task = srv.claim_and_start(&fx).await;
    for (path, what) in [
        ("/api/v1/issues?limit=abc".to_string(), "limit"),
        ("/api/v1/issues?limit=0".to_string(), "limit"),
        ("/api/v1/issues?limit=501".to_string(), "limit"),
        ("/api/v1/issues?after=garbage".to_string(), "after"),
        ("/api/v1/issues?after=12_not-a-uuid".to_string(), "after"),
        (
            "/api/v1/issues?after=x_00000000-0000-0000-0000-000000000000".to_string(),
            "after",
        ),
        (format!("/api/v1/tasks/{task}/messages?limit=abc"), "limit"),
        (format!("/api/v1/tasks/{task}/messages?limit=1001"), "limit"),
        (
            format!("/api/v1/tasks/{task}/messages?after_seq=abc"),
            "after_seq",
        ),
    ] {
        let (s, v) = srv.get(&fx.token, &path).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {v}");
        let err = v["error"].as_str().unwrap_or_default();
        assert!(err.contains(what), "{path}: {err}");
    }
    srv.stop().await;
}

/// One created issue: its index, status, assignee (0 bot, 1 helper) and id.
type Made<'a> = (usize, &'a str, Option<usize>, String);

/// The issue ids of every page of `path`, walked `limit` at a time: each at most once,
/// returned sorted (issues created in the same millisecond are listed by id, so the
/// walk's order is not the order the test created them in).
async fn filtered(srv: &Srv, token: &str, path: &str) -> Vec<String> {
    let mut seen = ids(&walk_issues(srv, token, path).await);
    let walked = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), walked, "{path}: an issue on two pages");
    seen
}

#[tokio::test]
async fn filters_narrow_the_list_and_pages_still_see_each_match_once() {
    let srv = start().await;
    let fx = srv.fixture("Filter Works").await;
    let other = srv.fixture("other").await;
    let (s, helper) = srv
        .post(
            &fx.token,
            &format!("/api/v1/workspaces/{}/agents", fx.ws),
            json!({"name": "helper", "runtime_id": fx.runtime}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{helper}");
    // 12 issues: statuses cycle backlog/todo/done, assignees cycle bot/helper/none, and
    // every fourth mentions "Needle" (in the title or the description).
    let mut all: Vec<Made> = Vec::new();
    for n in 0..12 {
        let status = ["backlog", "todo", "done"][n % 3];
        let assignee = [Some(fx.agent.as_str()), Some("helper"), None][n % 4 % 3];
        let (title, description) = match n % 4 {
            0 if n % 8 == 0 => (format!("find the NEEDLE {n}"), String::new()),
            0 => (format!("issue {n}"), "a needle in the text".to_string()),
            _ => (format!("issue {n}"), String::new()),
        };
        let mut body = json!({"title": title, "description": description, "status": status});
        if let Some(a) = assignee {
            body["assignee_agent_id"] = json!(a);
        }
        let (s, v) = srv
            .post(
                &fx.token,
                &format!("/api/v1/workspaces/{}/issues", fx.ws),
                body,
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        all.push((
            n,
            status,
            assignee.map(|_| n % 4 % 3),
            v["id"].as_str().unwrap().to_string(),
        ));
    }
    // Noise in another workspace the admin also sees.
    srv.assigned_issue(&other, "needle elsewhere").await;
    let want = |f: &dyn Fn(&Made) -> bool| -> Vec<String> {
        let mut ids: Vec<String> = all.iter().filter(|i| f(i)).map(|i| i.3.clone()).collect();
        ids.sort();
        ids
    };
    let base = format!("/api/v1/issues?limit=2&workspace_id={}", fx.ws);
    assert_eq!(
        filtered(&srv, &fx.token, &format!("{base}&status=todo")).await,
        want(&|i| i.1 == "todo")
    );
    assert_eq!(
        filtered(&srv, &fx.token, &format!("{base}&assignee=helper")).await,
        want(&|i| i.2 == Some(1))
    );
    assert_eq!(
        filtered(
            &srv,
            &fx.token,
            &format!("{base}&assignee={}", &fx.agent[..8])
        )
        .await,
        want(&|i| i.2 == Some(0))
    );
    assert_eq!(
        filtered(&srv, &fx.token, &format!("{base}&assignee=none")).await,
        want(&|i| i.2.is_none())
    );
    assert_eq!(
        filtered(&srv, &fx.token, &format!("{base}&q=nEEdle")).await,
        want(&|i| i.0 % 4 == 0)
    );
    assert_eq!(
        filtered(
            &srv,
            &fx.token,
            &format!("{base}&q=needle&status=backlog&assignee=bot")
        )
        .await,
        want(&|i| i.0 % 4 == 0 && i.1 == "backlog" && i.2 == Some(0))
    );
    // The key: `fw-1` matches FW-1 and FW-10, FW-11, FW-12 as substrings.
    assert_eq!(
        filtered(&srv, &fx.token, &format!("{base}&q=fw-1")).await,
        want(&|i| [0, 9, 10, 11].contains(&i.0))
    );
    // Wildcards are plain characters.
    assert_eq!(
        filtered(&srv, &fx.token, &format!("{base}&q=%25")).await,
        Vec::<String>::new()
    );
    // Without a workspace: every workspace the caller sees.
    assert_eq!(
        filtered(&srv, &srv.admin, "/api/v1/issues?limit=3&q=needle")
            .await
            .len(),
        4
    );
    // Bad filters say what is wrong.
    let (s, v) = srv.get(&fx.token, &format!("{base}&status=open")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("expected one of"),
        "{v}"
    );
    let (s, v) = srv.get(&fx.token, &format!("{base}&assignee=nobody")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"], "agent not found");
}
