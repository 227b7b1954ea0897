//! Operations (docs/operations.md): `migrate-to` moves a SQLite server's data into
//! PostgreSQL without losing anything (round trip through the API), `backup` copies a
//! live SQLite database, `migrate` says what it applied, a database that cannot be
//! reached at start fails with a message naming where and why, and a database lost
//! mid-run makes the server answer 503 and `/ready` fail, then recover by itself.
//!
//! These need PostgreSQL binaries whatever `AGENTD_TEST_DATABASE` says (they skip, with
//! the reason printed, only when the binaries are missing).

mod common;

use std::time::Duration;

use agentd_server::ServerConfig;
use agentd_testkit::pg::PgCluster;
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn diff() -> Value {
    json!({
        "base_commit": "1111111111111111111111111111111111111111",
        "head_commit": "2222222222222222222222222222222222222222",
        "files": [{"path": "src/lib.rs", "additions": 2, "deletions": 1, "binary": false}],
        "additions": 2,
        "deletions": 1,
        "patch": "diff --git a/src/lib.rs b/src/lib.rs\n-old\n+new\n+more\n",
        "truncated": false,
    })
}

async fn report(srv: &Srv, fx: &Fx, task: &str, what: &str, body: Value) {
    let (s, v) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{task}/{what}"),
            body,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{what}: {v}");
}

/// What users see of everything the fixture made, through the API.
async fn view(srv: &Srv, fx: &Fx, issue: &str, task: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        format!("/api/v1/workspaces/{}", fx.ws),
        format!("/api/v1/issues/{issue}"),
        format!("/api/v1/issues?workspace_id={}", fx.ws),
        format!("/api/v1/tasks/{task}"),
        format!("/api/v1/tasks/{task}/messages"),
        format!("/api/v1/tasks/{task}/diff"),
        format!("/api/v1/workspaces/{}/runtimes", fx.ws),
        format!("/api/v1/agents/{}", fx.agent),
    ] {
        let (s, v) = srv.get(&fx.token, &path).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        out.push(v);
    }
    out
}

/// Tokens as listed, without `last_used_at` (using a token moves it).
async fn tokens(srv: &Srv) -> Value {
    let (s, mut v) = srv.get(&srv.admin, "/api/v1/tokens").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for t in v.as_array_mut().expect("a token list") {
        t.as_object_mut().unwrap().remove("last_used_at");
    }
    v
}

#[tokio::test]
async fn migrate_to_moves_everything_from_sqlite_and_the_old_tokens_still_work() {
    let cluster = cluster();
    // A SQLite server, filled through its API.
    let srv = start_in(tempfile::tempdir().unwrap(), |c| c.database_url = None).await;
    let fx = srv.fixture("Move Me").await;
    let issue = srv.assigned_issue(&fx, "carry me over").await;
    let task = srv.claim_and_start(&fx).await;
    report(
        &srv,
        &fx,
        &task,
        "messages",
        json!({"messages": [{"seq": 1, "type": "text", "content": "working"},
                            {"seq": 2, "type": "tool_use", "tool": "bash", "input": {"cmd": "ls"}}]}),
    )
    .await;
    report(
        &srv,
        &fx,
        &task,
        "usage",
        json!({"usage": [{"provider": "anthropic", "model": "m", "input_tokens": 7, "output_tokens": 3}]}),
    )
    .await;
    report(
        &srv,
        &fx,
        &task,
        "complete",
        json!({"output": "done", "branch_name": "agentd/x", "diff": diff()}),
    )
    .await;
    let (s, c) = srv
        .post(
            &fx.token,
            &format!("/api/v1/issues/{issue}/comments"),
            json!({"body": "thanks"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    // Tokens of every kind and state: revoked, expiring, and a sign-in code.
    let (revoked_id, revoked) = srv.mint_with_id("member", &fx.ws).await;
    let (s, _) = srv
        .delete(&srv.admin, &format!("/api/v1/tokens/{revoked_id}"))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, expiring) = srv
        .post(
            &srv.admin,
            "/api/v1/tokens",
            json!({"name": "later", "kind": "member", "workspace_ids": [fx.ws], "expires_in_secs": 2592000}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{expiring}");
    let (s, code) = srv.post(&fx.token, "/api/v1/signin-codes", json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{code}");
    // Accounts: a user with a session cookie and audit entries (one a failed sign-in).
    let (s, u) = srv
        .post(
            &srv.admin,
            "/api/v1/users",
            json!({"email": "mover@example.com", "password": "correct horse"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    let signin = |password: &'static str| {
        srv.http
            .post(format!("{}/api/v1/session", srv.url))
            .json(&json!({"email": "mover@example.com", "password": password}))
            .send()
    };
    assert_eq!(signin("wrong horse").await.unwrap().status(), 401);
    let resp = signin("correct horse").await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let before = view(&srv, &fx, &issue, &task).await;
    let tokens_before = tokens(&srv).await;
    let admin = srv.admin.clone();
    let dir = srv.stop().await;

    let url = cluster.create_database().unwrap();
    let mut source = ServerConfig::new(dir.path());
    source.database_url = None;
    let counts = agentd_server::ops::migrate_to(&source, &url).await.unwrap();
    let count = |t: &str| counts.iter().find(|(n, _)| *n == t).map(|(_, n)| *n);
    assert_eq!(count("workspaces"), Some(1), "{counts:?}");
    assert_eq!(count("issues"), Some(1), "{counts:?}");
    assert_eq!(
        count("tasks"),
        Some(2),
        "the run and the one our comment queued: {counts:?}"
    );
    assert_eq!(count("task_messages"), Some(2), "{counts:?}");
    assert_eq!(count("task_usage"), Some(1), "{counts:?}");
    assert_eq!(count("task_diffs"), Some(1), "{counts:?}");
    assert_eq!(count("signin_codes"), Some(1), "{counts:?}");
    assert!(
        count("comments").unwrap() >= 2,
        "the task's and ours: {counts:?}"
    );
    assert!(count("issue_events").unwrap() >= 2, "{counts:?}");
    assert_eq!(
        count("api_tokens"),
        Some(5),
        "admin, member, daemon, revoked, expiring: {counts:?}"
    );
    assert_eq!(count("users"), Some(1), "{counts:?}");
    assert_eq!(count("sessions"), Some(1), "{counts:?}");
    assert_eq!(
        count("audit_log"),
        Some(10),
        "workspace.create, agent.create, four token.create, a token.revoke, user.create, \
         signin.failed, signin: {counts:?}"
    );
    assert_eq!(counts.len(), agentd_server::store::transfer::TABLES.len());

    // A second copy into the same database is refused, naming it; nothing changes.
    let err = agentd_server::ops::migrate_to(&source, &url)
        .await
        .unwrap_err()
        .to_string();
    let db = url.rsplit('/').next().unwrap();
    assert!(err.contains("not empty") && err.contains(db), "{err}");

    // The same data dir on PostgreSQL: same admin token, same data, same tokens.
    let srv = start_in(dir, |c| c.database_url = Some(url.clone())).await;
    assert_eq!(
        srv.admin, admin,
        "the admin token in the file is still valid"
    );
    assert_eq!(view(&srv, &fx, &issue, &task).await, before);
    assert_eq!(tokens(&srv).await, tokens_before);
    let (s, v) = srv.get(&revoked, "/api/v1/workspaces").await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("token revoked"))
    );
    let (s, v) = srv
        .get(expiring["token"].as_str().unwrap(), "/api/v1/workspaces")
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    srv.heartbeat(&fx.daemon, &fx.runtime, None).await;
    // The board session came along; the audit log too (and the failure still counts).
    let resp = srv
        .http
        .get(format!("{}/api/v1/session", srv.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (s, page) = srv
        .get(&srv.admin, "/api/v1/audit?action=signin.failed")
        .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(page["entries"][0]["target"], "mover@example.com", "{page}");
    let (s, session) = srv
        .http
        .post(format!("{}/api/v1/signin", srv.url))
        .json(&json!({"code": code["code"]}))
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{:?}", session.text().await);
    // Numbering and event sequences go on after the copied ones.
    let (s, next) = srv
        .post(
            &fx.token,
            &format!("/api/v1/workspaces/{}/issues", fx.ws),
            json!({"title": "after the move"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{next}");
    assert_eq!(
        next["key"],
        format!("{}-2", before[0]["key"].as_str().unwrap()),
        "{next}"
    );
    let (s, shown) = srv
        .get(
            &fx.token,
            &format!("/api/v1/issues/{}", next["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{shown}");
    srv.stop().await;
}

#[tokio::test]
async fn migrate_to_refuses_a_source_that_is_not_sqlite_or_a_target_that_is_not_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig::new(dir.path());
    let err = agentd_server::ops::migrate_to(&config, "mysql://x@y/z")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("unsupported database URL"), "{err}");
    let err = agentd_server::ops::migrate_to(&config, "postgres://u:secret@127.0.0.1:1/db")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no SQLite database at"), "{err}");
    assert!(!err.contains("secret"), "{err}");
}

#[tokio::test]
async fn backup_copies_a_live_sqlite_database_and_never_overwrites() {
    let srv = start_in(tempfile::tempdir().unwrap(), |c| c.database_url = None).await;
    let fx = srv.fixture("w").await;
    for i in 0..5 {
        srv.assigned_issue(&fx, &format!("issue {i}")).await;
    }
    let out = tempfile::tempdir().unwrap();
    let to = out.path().join("agentd-backup.db");
    let mut config = ServerConfig::new(srv.dir.path());
    config.database_url = None;
    // While the server runs (and writes).
    let writer = {
        let (srv_url, token, ws, agent) = (
            srv.url.clone(),
            fx.token.clone(),
            fx.ws.clone(),
            fx.agent.clone(),
        );
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for i in 0..20 {
                http.post(format!("{srv_url}/api/v1/workspaces/{ws}/issues"))
                    .bearer_auth(&token)
                    .json(&json!({"title": format!("during {i}"), "assignee_agent_id": agent}))
                    .send()
                    .await
                    .unwrap();
            }
        })
    };
    agentd_server::ops::backup(&config, &to).await.unwrap();
    writer.await.unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&to).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a backup holds secrets");
    }
    // The copy is a whole database: a server starts on it and sees the issues.
    let copy_dir = tempfile::tempdir().unwrap();
    std::fs::copy(&to, copy_dir.path().join("agentd.db")).unwrap();
    std::fs::copy(
        agentd_server::admin_token_path(srv.dir.path()),
        agentd_server::admin_token_path(copy_dir.path()),
    )
    .unwrap();
    let copy = start_in(copy_dir, |c| c.database_url = None).await;
    let (s, list) = copy
        .get(
            &copy.admin,
            &format!("/api/v1/issues?workspace_id={}", fx.ws),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let n = list["issues"].as_array().unwrap().len();
    assert!(
        (5..=25).contains(&n),
        "the 5 issues and some of those written during it: {n}"
    );
    copy.stop().await;
    let err = agentd_server::ops::backup(&config, &to)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("never overwrites"), "{err}");
    // PostgreSQL is pg_dump's job: the error says so.
    config.database_url = Some("postgres://u:secret@db.example:5432/agentd".into());
    let err = agentd_server::ops::backup(&config, &out.path().join("pg.dump"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("pg_dump") && !err.contains("secret"), "{err}");
    srv.stop().await;
}

#[tokio::test]
async fn migrate_says_what_it_applied_then_that_all_is_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path());
    let (_, applied) = agentd_server::ops::migrate(&config).await.unwrap();
    let sqlite_files = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite"),
    )
    .unwrap()
    .count();
    assert_eq!(applied.len(), sqlite_files, "{applied:?}");
    assert_eq!(
        agentd_server::ops::migrate(&config).await.unwrap().1,
        vec![]
    );

    config.database_url = Some(cluster().create_database().unwrap());
    let (backend, applied) = agentd_server::ops::migrate(&config).await.unwrap();
    assert!(backend.describe().starts_with("PostgreSQL"), "{backend:?}");
    assert!(
        !backend.describe().contains(PgCluster::PASSWORD),
        "{backend:?}"
    );
    // Every file of migrations/postgres, by version, named as sqlx names it
    // (`0003_pools.sql` → (3, "pools")).
    let mut files: Vec<(i64, String)> = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres"),
    )
    .unwrap()
    .map(|e| {
        let name = e.unwrap().file_name().into_string().unwrap();
        let (version, rest) = name.split_once('_').unwrap();
        let desc = rest.trim_end_matches(".sql").replace('_', " ");
        (version.parse().unwrap(), desc)
    })
    .collect();
    files.sort();
    assert_eq!(
        &files[..3],
        &[
            (1, "init".to_string()),
            (2, "claim function".to_string()),
            (3, "pools".to_string())
        ]
    );
    assert_eq!(applied, files);
    assert_eq!(
        agentd_server::ops::migrate(&config).await.unwrap().1,
        vec![]
    );
}

/// The error of opening a server on `url` (retrying for at most `retry`), and how long
/// it took.
async fn open_error(url: String, retry: Duration) -> (String, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path());
    config.database_url = Some(url);
    config.db_connect_retry = retry;
    let t0 = std::time::Instant::now();
    let err = agentd_server::bootstrap_config(&config)
        .await
        .expect_err("the database cannot be opened")
        .to_string();
    (err, t0.elapsed())
}

#[tokio::test]
async fn a_database_that_cannot_be_reached_at_start_fails_naming_host_user_and_cause() {
    let cluster = cluster();
    let port = cluster.port();
    // Bad credentials: at once, no retry, the password never shown.
    let url = cluster
        .create_database()
        .unwrap()
        .replace(PgCluster::PASSWORD, "not-the-password");
    let (err, took) = open_error(url, Duration::from_secs(30)).await;
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("user agentd"),
        "{err}"
    );
    assert!(!err.contains("not-the-password"), "{err}");
    assert!(took < Duration::from_secs(10), "not retried: {took:?}");
    // A database that does not exist.
    let (err, _) = open_error(cluster.url("no_such_db"), Duration::from_secs(30)).await;
    assert!(
        err.contains("database does not exist") && err.contains("no_such_db"),
        "{err}"
    );
    // Nobody listening: retried with backoff for the retry window, then the cause.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let free = closed.local_addr().unwrap().port();
    drop(closed);
    let (err, took) = open_error(
        format!("postgres://agentd:pw@127.0.0.1:{free}/x"),
        Duration::from_secs(2),
    )
    .await;
    assert!(err.contains("connection refused"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{free}")), "{err}");
    assert!(!err.contains(":pw@"), "{err}");
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(10),
        "retried within the window: {took:?}"
    );
}

#[tokio::test]
async fn losing_the_database_answers_503_and_fails_readiness_then_recovers_by_itself() {
    if agentd_testkit::pg::pg_bin_dir().is_none() {
        println!("SKIP: {}", agentd_testkit::pg::SKIP_HINT);
        return;
    }
    // A cluster of its own: this test stops it.
    let own = PgCluster::start().unwrap();
    let url = own.create_database().unwrap();
    let srv = start_in(tempfile::tempdir().unwrap(), |c| {
        c.database_url = Some(url.clone())
    })
    .await;
    assert_eq!(
        ready(&srv).await,
        (StatusCode::OK, json!({"status": "ready"}))
    );
    let fx = srv.fixture("w").await;
    let issue = srv.assigned_issue(&fx, "survives").await;

    own.stop_server().unwrap();
    let (s, v) = ready(&srv).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["status"], "unready", "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("database unreachable: "),
        "{v}"
    );
    let (s, v) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
    assert_eq!(
        (s, v["error"].clone()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!("database unavailable")
        )
    );
    let s = srv.get_anonymous("/health").await.status();
    assert_eq!(
        s,
        StatusCode::OK,
        "liveness holds while the database is away"
    );

    own.start_server().unwrap();
    eventually(Duration::from_secs(20), || async {
        (ready(&srv).await.0 == StatusCode::OK).then_some(())
    })
    .await;
    let (s, v) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["issue"]["title"], "survives", "{v}");
    srv.assigned_issue(&fx, "written after the outage").await;
    srv.stop().await;
}

#[tokio::test]
async fn ready_is_200_on_either_backend() {
    let srv = start().await;
    let r = srv.get_anonymous("/ready").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ready"}));
    srv.stop().await;
}

/// `GET /ready`: status and body.
async fn ready(srv: &Srv) -> (StatusCode, Value) {
    let r = srv.get_anonymous("/ready").await;
    (r.status(), r.json::<Value>().await.unwrap())
}

#[tokio::test]
async fn text_with_nul_characters_is_stored_on_either_backend() {
    // PostgreSQL's TEXT cannot hold NUL: its store keeps U+FFFD instead (as diffs do on
    // both); SQLite keeps the text as sent. Either way nothing is refused or lost.
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let (s, issue) = srv
        .post(
            &fx.token,
            &format!("/api/v1/workspaces/{}/issues", fx.ws),
            json!({"title": "a\u{0}b", "description": "c\u{0}d", "assignee_agent_id": fx.agent}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{issue}");
    let id = issue["id"].as_str().unwrap();
    let (s, c) = srv
        .post(
            &fx.token,
            &format!("/api/v1/issues/{id}/comments"),
            json!({"body": "e\u{0}f"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let task = srv.claim_and_start(&fx).await;
    report(
        &srv,
        &fx,
        &task,
        "messages",
        json!({"messages": [{"seq": 1, "type": "tool_result", "tool": "b\u{0}ash",
                             "content": "bin\u{0}ary", "output": "o\u{0}ut"}]}),
    )
    .await;
    report(&srv, &fx, &task, "fail", json!({"error": "x\u{0}y"})).await;
    let nul = |s: &str| {
        if on_postgres() {
            s.replace('\0', "\u{FFFD}")
        } else {
            s.to_string()
        }
    };
    let (_, shown) = srv.get(&fx.token, &format!("/api/v1/issues/{id}")).await;
    assert_eq!(shown["issue"]["title"], nul("a\0b"), "{shown}");
    assert_eq!(shown["issue"]["description"], nul("c\0d"), "{shown}");
    let (_, page) = srv
        .get(&fx.token, &format!("/api/v1/tasks/{task}/messages"))
        .await;
    assert_eq!(page["messages"][0]["content"], nul("bin\0ary"), "{page}");
    assert_eq!(page["messages"][0]["output"], nul("o\0ut"), "{page}");
    let t = srv.task(&fx.token, &task).await;
    assert_eq!(t["error"], nul("x\0y"), "{t}");
    // A reference with a NUL is refused or finds nothing (never a database error).
    for path in [
        "/api/v1/issues/a%00b",
        "/api/v1/tasks/%00",
        "/api/v1/agents/b%00t",
        "/api/v1/workspaces/w%00",
    ] {
        let (s, v) = srv.get(&fx.token, path).await;
        assert!(
            s == StatusCode::NOT_FOUND || s == StatusCode::BAD_REQUEST,
            "{path}: {s} {v}"
        );
    }
    srv.stop().await;
}
