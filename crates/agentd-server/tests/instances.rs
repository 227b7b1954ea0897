//! Two server instances on one database (issue 13): a claim hands each task out exactly
//! once whichever instance it reaches (the claim's row locks on PostgreSQL, the write
//! lock on SQLite), and an `Idempotency-Key` lives in the database, so a claim retried
//! through the other instance gets the same task back. Runs on either backend.

mod common;

use std::collections::HashSet;

use agentd_server::App;
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A second instance serving the data dir and database of `srv`.
struct Second {
    url: String,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), agentd_server::ServerError>>,
    _app: std::sync::Arc<App>,
}

async fn second(srv: &Srv) -> Second {
    let config = common::config(srv.dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let app = agentd_server::open(config, shutdown.clone()).await.unwrap();
    let handle = tokio::spawn(agentd_server::run(app.clone(), listener));
    Second {
        url,
        shutdown,
        handle,
        _app: app,
    }
}

async fn claim(http: &reqwest::Client, url: &str, fx: &Fx, key: &str) -> Value {
    let resp = http
        .post(format!(
            "{url}/api/daemon/runtimes/{}/tasks/claim",
            fx.runtime
        ))
        .bearer_auth(&fx.daemon)
        .header("Idempotency-Key", key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json::<Value>().await.unwrap()["task"].clone()
}

#[tokio::test]
async fn claims_through_two_instances_hand_out_each_task_once_and_keys_work_on_either() {
    let srv = start().await;
    let b = second(&srv).await;
    let fx = srv.fixture("two").await;
    const N: usize = 24;
    for i in 0..N {
        srv.assigned_issue(&fx, &format!("task {i}")).await;
    }
    // 2N claims at once, alternating instances, each with its own key.
    let urls = [srv.url.clone(), b.url.clone()];
    let claims = (0..2 * N).map(|i| {
        let (http, url, fx) = (srv.http.clone(), urls[i % 2].clone(), &fx);
        async move {
            let key = format!("k{i}");
            (key.clone(), claim(&http, &url, fx, &key).await)
        }
    });
    let answers = futures_util::future::join_all(claims).await;
    let got: Vec<(String, String)> = answers
        .iter()
        .filter(|(_, t)| !t.is_null())
        .map(|(k, t)| (k.clone(), t["id"].as_str().unwrap().to_string()))
        .collect();
    let unique: HashSet<&String> = got.iter().map(|(_, id)| id).collect();
    assert_eq!(
        got.len(),
        N,
        "every task handed out, the other claims empty"
    );
    assert_eq!(unique.len(), N, "no task handed out twice");

    // A claim retried with its key through the other instance: the same task again.
    for (i, (key, id)) in got.iter().take(6).enumerate() {
        let t = claim(&srv.http, &urls[i % 2], &fx, key).await;
        assert_eq!(t["id"].as_str(), Some(id.as_str()), "{key}: {t}");
        let n: usize = key[1..].parse().unwrap();
        let other = &urls[(n + 1) % 2];
        let t = claim(&srv.http, other, &fx, key).await;
        assert_eq!(
            t["id"].as_str(),
            Some(id.as_str()),
            "{key} via the other: {t}"
        );
    }
    // Nothing left, whichever instance is asked.
    for url in &urls {
        assert!(claim(&srv.http, url, &fx, "fresh").await.is_null());
    }
    b.shutdown.cancel();
    b.handle.await.unwrap().unwrap();
    srv.stop().await;
}

/// A rolling restart with a forgotten token file must not lock the other instances out:
/// an instance on PostgreSQL whose admin token file is missing refuses to start while
/// another instance serves the database with a valid admin token (minting one would
/// revoke theirs), and names the file to copy. Pointed at the shared file, it starts.
#[tokio::test]
async fn an_instance_without_the_admin_token_refuses_to_revoke_the_others() {
    if !on_postgres() {
        eprintln!(
            "SKIP (SQLite run): one instance per SQLite file; the PostgreSQL run of this \
             suite (scripts/test.sh) tests this"
        );
        return;
    }
    let srv = start().await;
    let pool = srv.app.store.postgres_pool().unwrap();
    // The first instance's bus listener is up (it connects in the background).
    for _ in 0..100 {
        if agentd_server::bus::instances_on(&pool).await.unwrap() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let elsewhere = tempfile::tempdir().unwrap();
    let mut config = common::config(srv.dir.path());
    config.data_dir = elsewhere.path().to_path_buf();
    let err = match agentd_server::open(config.clone(), CancellationToken::new()).await {
        Ok(_) => panic!("a second instance without the admin token started"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            agentd_server::ServerError::AdminTokenElsewhere { instances: 1, .. }
        ),
        "{msg}"
    );
    assert!(
        msg.contains(&elsewhere.path().join("admin-token").display().to_string()),
        "{msg}"
    );
    // Nothing was revoked: the first instance's admin token still works.
    let resp = srv
        .http
        .get(format!("{}/api/v1/tokens", srv.url))
        .bearer_auth(&srv.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // Given the first instance's token file, the same data dir starts and shares the token.
    config.admin_token_file = Some(agentd_server::admin_token_path(srv.dir.path()));
    let app = agentd_server::open(config, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(app.config.admin_token_file())
            .unwrap()
            .trim(),
        srv.admin
    );
}

/// A board session lives in the database: signed in through one instance, the cookie
/// works on the other; signed out through the other, it is refused on the first at once
/// (sessions are never cached); a member removed through one instance loses its session
/// on both. Runs on either backend.
#[tokio::test]
async fn a_session_made_on_one_instance_works_and_ends_on_the_other() {
    let srv = start().await;
    let b = second(&srv).await;
    let http = reqwest::Client::new();
    let (s, ws) = srv
        .post(&srv.admin, "/api/v1/workspaces", json!({"name": "shared"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let ws = ws["id"].as_str().unwrap().to_string();
    let (s, _) = srv
        .post(
            &srv.admin,
            "/api/v1/users",
            json!({"email": "lee@example.com", "password": "correct horse"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = srv
        .req(
            reqwest::Method::PUT,
            &srv.admin,
            &format!("/api/v1/workspaces/{ws}/members/lee@example.com"),
            Some(json!({"role": "member"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let sign_in = || async {
        let resp = http
            .post(format!("{}/api/v1/session", srv.url))
            .json(&json!({"email": "lee@example.com", "password": "correct horse"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let cookie = resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let v: Value = resp.json().await.unwrap();
        (cookie, v["csrf_token"].as_str().unwrap().to_string())
    };
    let status = |url: String, cookie: String| {
        let http = http.clone();
        async move {
            http.get(format!("{url}/api/v1/session"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let (cookie, csrf) = sign_in().await;
    assert_eq!(status(b.url.clone(), cookie.clone()).await, StatusCode::OK);
    let resp = http
        .post(format!("{}/api/v1/workspaces/{ws}/issues", b.url))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"title": "through b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = http
        .delete(format!("{}/api/v1/session", b.url))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        status(srv.url.clone(), cookie.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    // Removed through b: the new session ends on a too.
    let (cookie, _) = sign_in().await;
    let resp = http
        .delete(format!(
            "{}/api/v1/workspaces/{ws}/members/lee@example.com",
            b.url
        ))
        .bearer_auth(&srv.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        status(srv.url.clone(), cookie).await,
        StatusCode::UNAUTHORIZED
    );
    b.shutdown.cancel();
    b.handle.await.unwrap().unwrap();
}
