//! Issue keys and references (issue 16): every workspace has a key and every issue a
//! number (1..N per workspace, also under concurrent creates); wherever `/api/v1` takes
//! an id it also takes a unique id prefix, an issue key, or an agent's, runtime's or
//! workspace's name. An ambiguous reference is 409 `ambiguous` listing the candidates;
//! one that names nothing is the usual 404; references never reach across workspaces.

mod common;

use std::collections::{HashMap, HashSet};

use common::*;
use pretty_assertions::assert_eq;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn workspace(srv: &Srv, body: Value) -> (StatusCode, Value) {
    srv.post(&srv.admin, "/api/v1/workspaces", body).await
}

async fn issue(srv: &Srv, token: &str, ws: &str, title: &str) -> Value {
    let (s, v) = srv
        .post(
            token,
            &format!("/api/v1/workspaces/{ws}/issues"),
            json!({"title": title}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

#[tokio::test]
async fn keys_are_given_or_derived_and_issues_are_numbered_per_workspace() {
    let srv = start().await;
    let (s, agd) = workspace(&srv, json!({"name": "whatever", "key": "agd"})).await;
    assert_eq!(s, StatusCode::CREATED, "{agd}");
    assert_eq!(agd["key"], "AGD", "a given key is upper-cased");
    for (name, want) in [
        ("Agent Daemon", "AD"),
        ("agentd", "AGE"),
        ("agentd", "AGE2"),
        ("my big web app", "MBWA"),
        ("!!", "WS"),
        ("x", "WS2"),
    ] {
        let (s, ws) = workspace(&srv, json!({"name": name})).await;
        assert_eq!(s, StatusCode::CREATED, "{ws}");
        assert_eq!(ws["key"], want, "the key derived from {name:?}");
    }
    for bad in ["a", "1AB", "ABCDEFG", "A-B", "Ä1"] {
        let (s, v) = workspace(&srv, json!({"name": "n", "key": bad})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("2 to 6 ASCII letters or digits"),
            "{v}"
        );
    }
    let (s, v) = workspace(&srv, json!({"name": "n", "key": "Agd"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["error"].as_str().unwrap().contains("taken"), "{v}");

    // Numbers: 1..5 in order, then 20 concurrent creates take 6..25, each once.
    let ws = agd["id"].as_str().unwrap();
    for n in 1..=5 {
        let i = issue(&srv, &srv.admin, ws, &format!("issue {n}")).await;
        assert_eq!(i["number"], n, "{i}");
        assert_eq!(i["key"], format!("AGD-{n}"), "{i}");
        assert_eq!(i["run_count"], 0, "{i}");
    }
    let creates = (0..20).map(|n| {
        let srv = &srv;
        async move { issue(srv, &srv.admin, ws, &format!("concurrent {n}")).await }
    });
    let numbers: HashSet<i64> = futures_util::future::join_all(creates)
        .await
        .iter()
        .map(|i| i["number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, (6..=25).collect::<HashSet<i64>>());
    // Another workspace counts from 1.
    let other = srv.fixture("other").await;
    let i = issue(&srv, &other.token, &other.ws, "first").await;
    assert_eq!(i["number"], 1);
    // Lists go newest first by creation time: the next one is a millisecond later.
    srv.advance(1);
    // The key is on every read: the detail, the list, and the issue's tasks.
    let issue_id = srv.assigned_issue(&other, "second").await;
    let (s, d) = srv
        .get(&other.token, &format!("/api/v1/issues/{issue_id}"))
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    let key = d["issue"]["key"].as_str().unwrap().to_string();
    assert!(key.ends_with("-2"), "{d}");
    assert_eq!(d["issue"]["run_count"], 1, "{d}");
    assert_eq!(d["tasks"][0]["issue_key"], key, "{d}");
    assert_eq!(d["tasks"][0]["agent_name"], "bot", "{d}");
    let (_, page) = srv
        .get(
            &other.token,
            &format!("/api/v1/issues?workspace_id={}", other.ws),
        )
        .await;
    let listed = &page["issues"][1];
    assert_eq!(listed["key"], key, "{page}");
    assert_eq!(listed["run_count"], 1, "{page}");
    assert_eq!(listed["latest_task"]["issue_key"], key, "{page}");
    assert_eq!(listed["latest_task"]["agent_name"], "bot", "{page}");
}

#[tokio::test]
async fn keys_names_and_prefixes_name_what_ids_name() {
    let srv = start().await;
    let fx = srv.fixture("Refs Workspace").await;
    let (_, ws) = srv
        .get(&fx.token, &format!("/api/v1/workspaces/{}", fx.ws))
        .await;
    assert_eq!(ws["key"], "RW", "{ws}");
    let issue_id = srv.assigned_issue(&fx, "find me").await;

    // Issues: the key, in any case; a prefix of the id.
    for r in [
        "RW-1",
        "rw-1",
        &issue_id[..8],
        &issue_id.to_uppercase()[..6],
    ] {
        let (s, d) = srv.get(&fx.token, &format!("/api/v1/issues/{r}")).await;
        assert_eq!(s, StatusCode::OK, "{r}: {d}");
        assert_eq!(d["issue"]["id"], issue_id, "{r}");
    }
    let (s, c) = srv
        .post(
            &fx.token,
            "/api/v1/issues/rw-1/comments",
            json!({"body": "by key"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let (s, v) = srv
        .patch(&fx.token, "/api/v1/issues/RW-1", json!({"title": "found"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["title"], "found");

    // Tasks: a prefix.
    let (_, d) = srv
        .get(&fx.token, &format!("/api/v1/issues/{issue_id}"))
        .await;
    let task_id = d["tasks"][0]["id"].as_str().unwrap().to_string();
    let (s, t) = srv
        .get(&fx.token, &format!("/api/v1/tasks/{}", &task_id[..6]))
        .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["id"], task_id);
    let (s, _) = srv
        .get(
            &fx.token,
            &format!("/api/v1/tasks/{}/messages", &task_id[..9]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    // Agents and runtimes: their names (any case) and prefixes.
    let (_, rts) = srv
        .get(&fx.token, &format!("/api/v1/workspaces/{}/runtimes", fx.ws))
        .await;
    let rt_name = rts[0]["name"].as_str().unwrap().to_uppercase();
    for r in ["bot", "BOT", &fx.agent[..5]] {
        let (s, a) = srv.get(&fx.token, &format!("/api/v1/agents/{r}")).await;
        assert_eq!(s, StatusCode::OK, "{r}: {a}");
        assert_eq!(a["id"], fx.agent, "{r}");
    }
    // Body fields: an agent created on a runtime named, an issue assigned to an agent
    // named, an agent moved to a runtime by prefix.
    let (s, a2) = srv
        .post(
            &fx.token,
            &format!("/api/v1/workspaces/{}/agents", fx.ws),
            json!({"name": "helper", "runtime_id": rt_name}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a2}");
    assert_eq!(a2["runtime_id"], fx.runtime);
    let (s, v) = srv
        .patch(
            &fx.token,
            "/api/v1/agents/helper",
            json!({"runtime_id": &fx.runtime[..7]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, i) = srv
        .post(
            &fx.token,
            "/api/v1/workspaces/rw/issues",
            json!({"title": "for helper", "assignee_agent_id": "Helper"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{i}");
    assert_eq!(i["assignee_agent_id"], a2["id"]);
    assert_eq!(i["key"], "RW-2");
    assert_eq!(
        i["run_count"], 1,
        "the answer counts the run it queued: {i}"
    );
    let (s, v) = srv
        .patch(
            &fx.token,
            "/api/v1/issues/RW-2",
            json!({"assignee_agent_id": "bot"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["assignee_agent_id"], fx.agent);
    assert_eq!(v["run_count"], 2, "{v}");

    // Workspaces: id, key, name, prefix — in paths, the workspace_id filter and a token's
    // workspace_ids (stored as ids).
    for r in ["RW", "rw", "refs workspace", &fx.ws[..6]] {
        let (s, w) = srv
            .get(
                &fx.token,
                &format!("/api/v1/workspaces/{}", r.replace(' ', "%20")),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{r}: {w}");
        assert_eq!(w["id"], fx.ws, "{r}");
    }
    let (s, page) = srv.get(&fx.token, "/api/v1/issues?workspace_id=rw").await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(page["issues"].as_array().unwrap().len(), 2);
    let (s, tok) = srv
        .post(
            &srv.admin,
            "/api/v1/tokens",
            json!({"name": "by key", "workspace_ids": ["RW", fx.ws]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{tok}");
    assert_eq!(
        tok["workspace_ids"],
        json!([fx.ws]),
        "the reference is stored as the id"
    );

    // The runtime, deleted by its name.
    let (s, v) = srv
        .delete(
            &fx.token,
            &format!(
                "/api/v1/runtimes/{}",
                rt_name.to_lowercase().replace(' ', "%20")
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // References that name nothing: the usual 404 bodies.
    for (path, body) in [
        ("/api/v1/issues/RW-99", "issue not found"),
        ("/api/v1/issues/ZZ-1", "issue not found"),
        ("/api/v1/tasks/00000000", "task not found"),
        ("/api/v1/agents/nobody", "agent not found"),
        ("/api/v1/workspaces/nowhere", "workspace not found"),
    ] {
        let (s, v) = srv.get(&fx.token, path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
        assert_eq!(v["error"], body, "{path}");
    }
    let (s, v) = srv.delete(&fx.token, "/api/v1/runtimes/nothing").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"], "runtime not found");
    // Too short to be a prefix, and not a key: bad input that says what a reference is.
    let (s, v) = srv.get(&fx.token, "/api/v1/tasks/abc").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("at least 4 characters"),
        "{v}"
    );

    // The daemon API keeps exact ids: a prefix there is not a task.
    let (s, v) = srv
        .get(
            &fx.daemon,
            &format!("/api/daemon/tasks/{}/status", &task_id[..8]),
        )
        .await;
    assert!(s.is_client_error(), "{s} {v}");
}

#[tokio::test]
async fn a_reference_that_matches_several_is_409_with_the_candidates() {
    let srv = start().await;
    let fx = srv.fixture("twins").await;
    // Two agents with the same name (in any case).
    for name in ["Twin", "twin"] {
        let (s, v) = srv
            .post(
                &fx.token,
                &format!("/api/v1/workspaces/{}/agents", fx.ws),
                json!({"name": name, "runtime_id": fx.runtime}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, v) = srv.get(&fx.token, "/api/v1/agents/TWIN").await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "ambiguous", "{v}");
    assert_eq!(v["error"], "\"TWIN\" matches 2 agents; use the id", "{v}");
    let labels: HashSet<&str> = v["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, HashSet::from(["Twin", "twin"]));
    // An issue assigned to an ambiguous name is refused the same way.
    let (s, v) = srv
        .post(
            &fx.token,
            &format!("/api/v1/workspaces/{}/issues", fx.ws),
            json!({"title": "t", "assignee_agent_id": "twin"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "ambiguous");

    // Id prefixes: issues (each with a task) until two issues and two tasks share their
    // first 4 characters (a birthday search over 65,536 prefixes).
    let mut issues: HashMap<String, Vec<String>> = HashMap::new();
    let mut tasks: HashMap<String, Vec<String>> = HashMap::new();
    let shared = |m: &HashMap<String, Vec<String>>| {
        m.iter()
            .find(|(_, ids)| ids.len() > 1)
            .map(|(p, ids)| (p.clone(), ids.clone()))
    };
    let mut created = 0;
    while shared(&issues).is_none() || shared(&tasks).is_none() {
        assert!(created < 6000, "no shared prefix after {created} issues");
        let batch = (0..50).map(|n| {
            let srv = &srv;
            let fx = &fx;
            async move { srv.assigned_issue(fx, &format!("p{n}")).await }
        });
        for id in futures_util::future::join_all(batch).await {
            issues.entry(id[..4].to_string()).or_default().push(id);
        }
        created += 50;
        // The tasks: every page of the list, each issue's latest (its only) task.
        tasks.clear();
        let mut after = String::new();
        loop {
            let (s, page) = srv
                .get(&fx.token, &format!("/api/v1/issues?limit=500{after}"))
                .await;
            assert_eq!(s, StatusCode::OK, "{page}");
            for i in page["issues"].as_array().unwrap() {
                if let Some(t) = i["latest_task"]["id"].as_str() {
                    tasks
                        .entry(t[..4].to_string())
                        .or_default()
                        .push(t.to_string());
                }
            }
            match page["next"].as_str() {
                Some(n) => after = format!("&after={n}"),
                None => break,
            }
        }
    }
    for (what, path, m) in [
        ("issues", "issues", shared(&issues).unwrap()),
        ("tasks", "tasks", shared(&tasks).unwrap()),
    ] {
        let (prefix, ids) = m;
        let (s, v) = srv
            .get(&fx.token, &format!("/api/v1/{path}/{prefix}"))
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        assert_eq!(v["code"], "ambiguous", "{v}");
        assert_eq!(
            v["error"],
            format!(
                "\"{prefix}\" matches {} {what}; use more characters of the id",
                ids.len()
            ),
            "{v}"
        );
        let got: HashSet<String> = v["matches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, ids.iter().cloned().collect::<HashSet<_>>());
        for m in v["matches"].as_array().unwrap() {
            let label = m["label"].as_str().unwrap();
            assert!(
                label.starts_with("TWI-"),
                "{what}: a label names the issue key: {label}"
            );
            if what == "tasks" {
                assert!(label.contains(" queued "), "{label}");
            }
        }
        // One more character of the id settles it (or more, until the ids differ).
        let id = &ids[0];
        let n = (5..=id.len())
            .find(|n| ids.iter().filter(|o| o.starts_with(&id[..*n])).count() == 1)
            .unwrap();
        let (s, v) = srv
            .get(&fx.token, &format!("/api/v1/{path}/{}", &id[..n]))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
}

#[tokio::test]
async fn a_runtime_is_named_by_its_provider_when_it_is_the_only_one() {
    // Daemons name runtimes `Claude (laptop)`: `--runtime claude` must name the
    // workspace's one Claude runtime, and list them all once there are two.
    let srv = start().await;
    let fx = srv.fixture("prov").await;
    for r in ["claude", "CLAUDE"] {
        let (s, a) = srv
            .post(
                &fx.token,
                &format!("/api/v1/workspaces/{}/agents", fx.ws),
                json!({"name": format!("by-{r}"), "runtime_id": r}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{r}: {a}");
        assert_eq!(a["runtime_id"], fx.runtime, "{r}");
    }
    // A provider no runtime has is the usual 404.
    let (s, v) = srv
        .post(
            &fx.token,
            &format!("/api/v1/workspaces/{}/agents", fx.ws),
            json!({"name": "nope", "runtime_id": "gemini"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"], "runtime not found");

    // A second machine with Claude: the provider is ambiguous, both are listed.
    let reg = srv.register(&fx.daemon, &fx.ws, "d2", &["claude"]).await;
    let second = reg["runtimes"][0]["id"].as_str().unwrap().to_string();
    assert_ne!(second, fx.runtime);
    let (s, v) = srv
        .post(
            &fx.token,
            &format!("/api/v1/workspaces/{}/agents", fx.ws),
            json!({"name": "which", "runtime_id": "claude"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "ambiguous");
    let ids: HashSet<&str> = v["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, HashSet::from([fx.runtime.as_str(), second.as_str()]));

    // Another workspace's Claude runtime is never a candidate.
    let other = srv.fixture("prov-other").await;
    let (s, a) = srv
        .post(
            &other.token,
            &format!("/api/v1/workspaces/{}/agents", other.ws),
            json!({"name": "mine", "runtime_id": "claude"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    assert_eq!(a["runtime_id"], other.runtime);
}

#[tokio::test]
async fn references_never_reach_across_workspaces() {
    let srv = start().await;
    let a = srv.fixture("alpha").await;
    let b = srv.fixture("beta").await;
    let issue_b = srv.assigned_issue(&b, "b's").await;
    let (_, db) = srv
        .get(&b.token, &format!("/api/v1/issues/{issue_b}"))
        .await;
    let key_b = db["issue"]["key"].as_str().unwrap().to_string();
    let task_b = db["tasks"][0]["id"].as_str().unwrap().to_string();
    let (_, wb) = srv
        .get(&b.token, &format!("/api/v1/workspaces/{}", b.ws))
        .await;
    let wkey_b = wb["key"].as_str().unwrap().to_string();

    // A's member sees none of B's objects by any reference.
    for (path, body) in [
        (format!("/api/v1/issues/{key_b}"), "issue not found"),
        (
            format!("/api/v1/issues/{}", &issue_b[..8]),
            "issue not found",
        ),
        (format!("/api/v1/tasks/{}", &task_b[..8]), "task not found"),
        (
            format!("/api/v1/agents/{}", &b.agent[..8]),
            "agent not found",
        ),
        (
            format!("/api/v1/workspaces/{wkey_b}"),
            "workspace not found",
        ),
        ("/api/v1/workspaces/beta".to_string(), "workspace not found"),
        (
            format!("/api/v1/workspaces/{}", &b.ws[..8]),
            "workspace not found",
        ),
    ] {
        let (s, v) = srv.get(&a.token, &path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
        assert_eq!(v["error"], body, "{path}");
    }
    // Both have an agent named bot: A's member means A's, unambiguously; the admin sees
    // both.
    let (s, v) = srv.get(&a.token, "/api/v1/agents/bot").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["id"], a.agent);
    let (s, v) = srv.get(&srv.admin, "/api/v1/agents/bot").await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["matches"].as_array().unwrap().len(), 2, "{v}");
    // An agent of B cannot be assigned in A, even by its exact id or name scoped to A.
    let (s, v) = srv
        .post(
            &srv.admin,
            &format!("/api/v1/workspaces/{}/issues", a.ws),
            json!({"title": "t", "assignee_agent_id": b.agent}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"], "agent not found");
    // The admin's `bot` in A's path means A's bot: the workspace at hand scopes names.
    let (s, v) = srv
        .post(
            &srv.admin,
            &format!("/api/v1/workspaces/{}/issues", a.ws),
            json!({"title": "t", "assignee_agent_id": "bot"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["assignee_agent_id"], a.agent);

    // A task token sees only its own issue, by key too.
    let claimed = srv.claim(&b, None).await;
    let task_token = claimed["task_token"].as_str().unwrap().to_string();
    let other_b = srv.assigned_issue(&b, "b's other").await;
    let (_, d) = srv
        .get(&b.token, &format!("/api/v1/issues/{other_b}"))
        .await;
    let other_key = d["issue"]["key"].as_str().unwrap().to_string();
    let (s, v) = srv
        .get(&task_token, &format!("/api/v1/issues/{key_b}"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = srv
        .get(&task_token, &format!("/api/v1/issues/{other_key}"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"], "issue not found");
}

#[tokio::test]
async fn workspaces_without_a_key_get_one_when_the_server_opens() {
    let srv = start().await;
    let mut ids = Vec::new();
    for name in ["Alpha Beta", "alpha bravo", "Gamma"] {
        let (s, ws) = workspace(&srv, json!({"name": name})).await;
        assert_eq!(s, StatusCode::CREATED, "{ws}");
        ids.push(ws["id"].as_str().unwrap().to_string());
        // "Oldest first" goes by creation time: each one a millisecond later.
        srv.advance(1);
    }
    issue(&srv, &srv.admin, &ids[0], "one").await;
    let dir = srv.stop().await;
    // As a database from before keys: no workspace has one.
    {
        let db = common::Db::open(dir.path()).await;
        db.execute("UPDATE workspaces SET key = NULL").await;
        db.close().await;
    }
    let srv = start_in(dir, |_| {}).await;
    let (s, list) = srv.get(&srv.admin, "/api/v1/workspaces").await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let keys: HashMap<String, String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["id"].as_str().unwrap().to_string(),
                w["key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(keys[&ids[0]], "AB", "oldest first");
    assert_eq!(keys[&ids[1]], "AB2");
    assert_eq!(keys[&ids[2]], "GAM");
    // Numbers go on where they were.
    let i = issue(&srv, &srv.admin, &ids[0], "two").await;
    assert_eq!(i["key"], "AB-2", "{i}");
    let (s, d) = srv.get(&srv.admin, "/api/v1/issues/ab-1").await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["issue"]["title"], "one");
}

/// A database made by the migrations before 0008 (an older server), with two workspaces,
/// issues created out of id order and a task retried twice: opening it numbers the issues
/// by (created_at, id), gives the workspaces keys and keeps the oldest retry as the
/// task's one retry.
#[tokio::test]
async fn an_older_database_gets_issue_numbers_keys_and_retry_links() {
    if common::sqlite_only(
        "SQLite migration 0008 backfills a database from before issue keys; PostgreSQL \
         databases start at the current schema (migrations/postgres/0001)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let old = tempfile::tempdir().unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.as_str() < "0008" {
            std::fs::copy(&path, old.path().join(&name)).unwrap();
        }
    }
    {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(dir.path().join("agentd.db"))
                    .create_if_missing(true),
            )
            .await
            .unwrap();
        sqlx::migrate::Migrator::new(old.path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        let exec = |sql: &'static str| {
            let pool = pool.clone();
            async move { sqlx::query(sql).execute(&pool).await.unwrap() }
        };
        exec(
            "INSERT INTO workspaces (id, name, repos, created_at) VALUES \
              ('10000000-0000-4000-8000-000000000000', 'Old Timer', '[]', 1), \
              ('20000000-0000-4000-8000-000000000000', 'old town', '[]', 2)",
        )
        .await;
        // Issue c was created first; a and b share a millisecond (the id breaks the tie).
        exec("INSERT INTO issues (id, workspace_id, title, status, created_at, updated_at) VALUES \
              ('b0000000-0000-4000-8000-000000000000', '10000000-0000-4000-8000-000000000000', 'b', 'todo', 20, 20), \
              ('a0000000-0000-4000-8000-000000000000', '10000000-0000-4000-8000-000000000000', 'a', 'todo', 20, 20), \
              ('c0000000-0000-4000-8000-000000000000', '10000000-0000-4000-8000-000000000000', 'c', 'todo', 10, 10), \
              ('d0000000-0000-4000-8000-000000000000', '20000000-0000-4000-8000-000000000000', 'd', 'todo', 5, 5)")
        .await;
        exec("INSERT INTO tasks (id, workspace_id, issue_id, agent_id, runtime_id, status, created_at, parent_task_id) VALUES \
              ('e0000000-0000-4000-8000-000000000000', '10000000-0000-4000-8000-000000000000', 'a0000000-0000-4000-8000-000000000000', 'x', 'y', 'failed', 30, NULL), \
              ('e2000000-0000-4000-8000-000000000000', '10000000-0000-4000-8000-000000000000', 'a0000000-0000-4000-8000-000000000000', 'x', 'y', 'queued', 32, 'e0000000-0000-4000-8000-000000000000'), \
              ('e1000000-0000-4000-8000-000000000000', '10000000-0000-4000-8000-000000000000', 'a0000000-0000-4000-8000-000000000000', 'x', 'y', 'queued', 31, 'e0000000-0000-4000-8000-000000000000')")
        .await;
        pool.close().await;
    }
    let srv = start_in(dir, |_| {}).await;
    let (_, ws) = srv
        .get(
            &srv.admin,
            "/api/v1/workspaces/10000000-0000-4000-8000-000000000000",
        )
        .await;
    assert_eq!(ws["key"], "OT", "{ws}");
    let (_, ws) = srv.get(&srv.admin, "/api/v1/workspaces/old%20town").await;
    assert_eq!(ws["key"], "OT2", "{ws}");
    for (key, title) in [("OT-1", "c"), ("OT-2", "a"), ("OT-3", "b"), ("OT2-1", "d")] {
        let (s, d) = srv.get(&srv.admin, &format!("/api/v1/issues/{key}")).await;
        assert_eq!(s, StatusCode::OK, "{key}: {d}");
        assert_eq!(d["issue"]["title"], title, "{key}");
    }
    // The next issue takes the next number.
    let i = issue(&srv, &srv.admin, "OT", "new").await;
    assert_eq!(i["key"], "OT-4", "{i}");
    // The oldest retry is the task's retry; retrying again is refused.
    let (_, t) = srv.get(&srv.admin, "/api/v1/tasks/e0000000").await;
    assert_eq!(
        t["retry_task_id"], "e1000000-0000-4000-8000-000000000000",
        "{t}"
    );
    let (s, v) = srv
        .post(&srv.admin, "/api/v1/tasks/e0000000/retry", json!({}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "already_retried");
    let (_, d) = srv.get(&srv.admin, "/api/v1/issues/OT-2").await;
    assert_eq!(d["issue"]["run_count"], 3, "{d}");
    assert_eq!(d["activity"][0]["kind"], "created", "{d}");
    assert_eq!(
        d["activity"][0]["actor"]["kind"], "system",
        "an issue from before events"
    );
}
