//! Accounts (issue 15): the upgrade's admin user owns the tokens of an existing server;
//! password sign-in sets an HttpOnly, SameSite=Lax session cookie; a cookie request that
//! changes state needs the session's CSRF token (403 and no change without it); sign-out,
//! expiry and a disabled user end a session; a wrong password and an unknown email get
//! the same 401, then 429 after a few tries, and every attempt is in the audit log, which
//! the database refuses to edit.

mod common;

use common::{Db, Srv, start, start_in};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const UPGRADED_ADMIN: &str = "00000000-0000-4000-8000-000000000001";

/// A user made by the admin token.
async fn user(srv: &Srv, email: &str, password: &str, is_admin: bool) -> Value {
    let (s, u) = srv
        .post(
            &srv.admin,
            "/api/v1/users",
            json!({"email": email, "password": password, "is_admin": is_admin}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    u
}

/// A signed-in board: the cookie's value and the session body.
struct Board {
    cookie: String,
    csrf: String,
    set_cookie: String,
}

async fn sign_in(srv: &Srv, email: &str, password: &str) -> Result<Board, (StatusCode, Value)> {
    let resp = srv
        .http
        .post(format!("{}/api/v1/session", srv.url))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let set_cookie = resp
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status != StatusCode::CREATED {
        return Err((status, body));
    }
    let cookie = set_cookie.split(';').next().unwrap().trim().to_string();
    Ok(Board {
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_string(),
        set_cookie,
    })
}

/// A request with the session cookie (and the CSRF header when `csrf` is set).
async fn with_cookie(
    srv: &Srv,
    method: Method,
    board: &Board,
    csrf: Option<&str>,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut r = srv
        .http
        .request(method, format!("{}{path}", srv.url))
        .header("cookie", &board.cookie);
    if let Some(c) = csrf {
        r = r.header("x-csrf-token", c);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn a_session_cookie_signs_in_needs_csrf_to_change_state_and_ends_at_sign_out() {
    let srv = start().await;
    user(&srv, "Ann@Example.com", "correct horse", true).await;
    let board = sign_in(&srv, "  ann@example.COM ", "correct horse")
        .await
        .expect("sign-in");
    let c = board.set_cookie.to_lowercase();
    assert!(c.starts_with("agentd_session="), "{c}");
    for attr in ["httponly", "samesite=lax", "path=/", "max-age=604800"] {
        assert!(c.contains(attr), "{attr} missing: {c}");
    }
    assert!(!c.contains("secure"), "plain http: no Secure ({c})");

    let (s, me) = with_cookie(&srv, Method::GET, &board, None, "/api/v1/me", None).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["kind"], "user", "{me}");
    let (s, sess) = with_cookie(&srv, Method::GET, &board, None, "/api/v1/session", None).await;
    assert_eq!(s, StatusCode::OK, "{sess}");
    assert_eq!(sess["user"]["email"], "ann@example.com");
    assert_eq!(sess["csrf_token"], board.csrf.as_str());

    // A cross-site POST carries the cookie but not the CSRF token: 403, nothing made.
    let db = Db::open(srv.dir.path()).await;
    let before = db.count("SELECT COUNT(*) FROM workspaces").await;
    for csrf in [None, Some("wrong"), Some("")] {
        let (s, v) = with_cookie(
            &srv,
            Method::POST,
            &board,
            csrf,
            "/api/v1/workspaces",
            Some(json!({"name": "csrf"})),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{csrf:?}: {v}");
        assert!(v["error"].as_str().unwrap().contains("x-csrf-token"), "{v}");
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM workspaces").await, before);
    let (s, ws) = with_cookie(
        &srv,
        Method::POST,
        &board,
        Some(&board.csrf),
        "/api/v1/workspaces",
        Some(json!({"name": "by cookie"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{ws}");
    // A bearer token needs no CSRF token.
    let (s, _) = srv
        .post(
            &srv.admin,
            "/api/v1/workspaces",
            json!({"name": "by token"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);

    // A session's user mints its own CLI token; the token is the user's.
    let (s, tok) = with_cookie(
        &srv,
        Method::POST,
        &board,
        Some(&board.csrf),
        "/api/v1/tokens",
        Some(json!({"name": "laptop", "workspace_ids": [ws["id"]]})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{tok}");
    let (s, me) = srv.get(tok["token"].as_str().unwrap(), "/api/v1/me").await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["user_id"], sess["user"]["id"], "{me}");

    // Sign-out needs the CSRF token too, then the cookie is dead.
    let (s, _) = with_cookie(&srv, Method::DELETE, &board, None, "/api/v1/session", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = with_cookie(
        &srv,
        Method::DELETE,
        &board,
        Some(&board.csrf),
        "/api/v1/session",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = with_cookie(&srv, Method::GET, &board, None, "/api/v1/me", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert!(v["error"].as_str().unwrap().contains("revoked"), "{v}");

    let actions = db
        .strings("SELECT action FROM audit_log ORDER BY at, action")
        .await;
    for a in ["user.create", "signin", "token.create", "signout"] {
        assert!(actions.iter().any(|x| x == a), "{a} not in {actions:?}");
    }
    db.close().await;
}

#[tokio::test]
async fn a_session_expires_and_a_disabled_user_is_signed_out() {
    let srv = start().await;
    user(&srv, "bo@example.com", "correct horse", false).await;
    let board = sign_in(&srv, "bo@example.com", "correct horse")
        .await
        .unwrap();
    let (s, _) = with_cookie(&srv, Method::GET, &board, None, "/api/v1/session", None).await;
    assert_eq!(s, StatusCode::OK);
    srv.advance(7 * 24 * 3600 * 1000);
    let (s, v) = with_cookie(&srv, Method::GET, &board, None, "/api/v1/session", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert!(v["error"].as_str().unwrap().contains("expired"), "{v}");

    let board = sign_in(&srv, "bo@example.com", "correct horse")
        .await
        .unwrap();
    let db = Db::open(srv.dir.path()).await;
    db.execute("UPDATE users SET disabled = TRUE WHERE email = 'bo@example.com'")
        .await;
    let (s, _) = with_cookie(&srv, Method::GET, &board, None, "/api/v1/session", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A disabled user cannot sign in either (the same answer as a wrong password).
    let (s, v) = sign_in(&srv, "bo@example.com", "correct horse")
        .await
        .err()
        .unwrap();
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    db.close().await;
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_401_then_429() {
    let srv = start().await;
    user(&srv, "cy@example.com", "correct horse", false).await;
    let (s1, wrong) = sign_in(&srv, "cy@example.com", "wrong horse")
        .await
        .err()
        .unwrap();
    let (s2, unknown) = sign_in(&srv, "nobody@example.com", "wrong horse")
        .await
        .err()
        .unwrap();
    assert_eq!(
        (s1, s2),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(
        wrong, unknown,
        "the answer never says whether the email exists"
    );
    // Five failures for one account: the sixth attempt is 429, even with the right
    // password, and is not checked.
    for _ in 0..4 {
        let (s, _) = sign_in(&srv, "cy@example.com", "wrong")
            .await
            .err()
            .unwrap();
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, v) = sign_in(&srv, "cy@example.com", "correct horse")
        .await
        .err()
        .unwrap();
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    // Another account from the same IP still works (the per-IP limit is higher).
    user(&srv, "di@example.com", "correct horse", false).await;
    assert!(
        sign_in(&srv, "di@example.com", "correct horse")
            .await
            .is_ok()
    );
    // Per IP: 20 failures over any emails lock the IP out.
    for i in 0..15 {
        let _ = sign_in(&srv, &format!("x{i}@example.com"), "nope").await;
    }
    let (s, _) = sign_in(&srv, "di@example.com", "correct horse")
        .await
        .err()
        .unwrap();
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    // The window passes: the account signs in again.
    srv.advance(15 * 60 * 1000 + 1);
    assert!(
        sign_in(&srv, "cy@example.com", "correct horse")
            .await
            .is_ok()
    );

    let db = Db::open(srv.dir.path()).await;
    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'signin.failed' \
             AND target = 'cy@example.com' AND source_ip = '127.0.0.1'"
        )
        .await,
        5
    );
    assert!(
        db.count("SELECT COUNT(*) FROM audit_log WHERE action = 'signin.throttled'")
            .await
            >= 2
    );
    db.close().await;
}

#[tokio::test]
async fn the_audit_log_is_append_only_and_read_by_admins() {
    let srv = start().await;
    user(&srv, "ed@example.com", "correct horse", false).await;
    let _ = sign_in(&srv, "ed@example.com", "bad password").await;
    let (s, page) = srv.get(&srv.admin, "/api/v1/audit").await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let e = &page["entries"][0];
    assert_eq!(e["action"], "signin.failed", "{page}");
    assert_eq!(e["target"], "ed@example.com");
    assert_eq!(e["source_ip"], "127.0.0.1");
    assert_eq!(e["actor_kind"], "anonymous");
    let (s, page) = srv
        .get(&srv.admin, "/api/v1/audit?action=user.create")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["entries"].as_array().unwrap().len(), 1, "{page}");
    // A member of no workspace as admin may not read it.
    let board = sign_in(&srv, "ed@example.com", "correct horse")
        .await
        .unwrap();
    let (s, _) = with_cookie(&srv, Method::GET, &board, None, "/api/v1/audit", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // The database itself refuses edits.
    let db = Db::open(srv.dir.path()).await;
    for sql in ["UPDATE audit_log SET target = 'x'", "DELETE FROM audit_log"] {
        let refused = match &db {
            Db::Sqlite(p) => sqlx::query(sql)
                .execute(p)
                .await
                .err()
                .map(|e| e.to_string()),
            Db::Pg(p) => sqlx::query(sql)
                .execute(p)
                .await
                .err()
                .map(|e| e.to_string()),
        };
        assert!(
            refused
                .as_deref()
                .is_some_and(|e| e.contains("append-only")),
            "{sql}: {refused:?}"
        );
    }
    db.close().await;
}

/// A database of the server before accounts (migrations up to SQLite 0009 / PostgreSQL
/// 0003) with a workspace and a member token: after the upgrade the token still works,
/// owned by the admin user the migration made, whom a server admin then takes over.
#[tokio::test]
async fn an_upgraded_server_keeps_its_tokens_owned_by_a_new_admin_user() {
    let dir = tempfile::tempdir().unwrap();
    let old = tempfile::tempdir().unwrap();
    let (engine, before) = if common::on_postgres() {
        ("postgres", "0004")
    } else {
        ("sqlite", "0010")
    };
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(engine);
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.as_str() < before {
            std::fs::copy(&path, old.path().join(&name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(old.path()).await.unwrap();
    let token = "agd_0123456789abcdef0123456789abcdef01234567";
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(token.as_bytes()))
    };
    let seed = [
        "INSERT INTO workspaces (id, name, repos, created_at, key) VALUES \
         ('10000000-0000-4000-8000-000000000000', 'Old', '[]', 1, 'OLD')"
            .to_string(),
        format!(
            "INSERT INTO api_tokens (id, token_hash, name, kind, created_at) VALUES \
             ('20000000-0000-4000-8000-000000000000', '{hash}', 'board', 'member', 5)"
        ),
        "INSERT INTO token_workspaces (token_id, workspace_id) VALUES \
         ('20000000-0000-4000-8000-000000000000', '10000000-0000-4000-8000-000000000000')"
            .to_string(),
    ];
    match common::database_url(dir.path()) {
        Some(url) => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .unwrap();
            migrator.run(&pool).await.unwrap();
            for sql in &seed {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }
        None => {
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(
                    sqlx::sqlite::SqliteConnectOptions::new()
                        .filename(dir.path().join("agentd.db"))
                        .create_if_missing(true),
                )
                .await
                .unwrap();
            migrator.run(&pool).await.unwrap();
            for sql in &seed {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }
    }
    let srv = start_in(dir, |_| {}).await;
    let (s, me) = srv.get(token, "/api/v1/me").await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["user_id"], UPGRADED_ADMIN, "{me}");
    assert_eq!(me["roles"][0]["role"], "owner", "{me}");
    let (s, v) = srv
        .post(
            token,
            "/api/v1/workspaces/10000000-0000-4000-8000-000000000000/issues",
            json!({"title": "still works"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, users) = srv.get(&srv.admin, "/api/v1/users").await;
    assert_eq!(users[0]["email"], "admin@agentd.invalid", "{users}");
    assert_eq!(users[0]["is_admin"], true);
    assert_eq!(users[0]["has_password"], false);
    // Nobody can sign in as it until an admin takes it over (docs/accounts.md).
    assert!(sign_in(&srv, "admin@agentd.invalid", "").await.is_err());
    let (s, u) = srv
        .patch(
            &srv.admin,
            &format!("/api/v1/users/{UPGRADED_ADMIN}"),
            json!({"email": "ops@example.com", "name": "Ops", "password": "correct horse"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    let board = sign_in(&srv, "ops@example.com", "correct horse")
        .await
        .unwrap();
    let (s, toks) = with_cookie(&srv, Method::GET, &board, None, "/api/v1/tokens", None).await;
    assert_eq!(s, StatusCode::OK, "{toks}");
    assert!(
        toks.as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == "20000000-0000-4000-8000-000000000000"),
        "{toks}"
    );
}

/// Invitations: an admin makes a single-use link with a role; a new person accepts it
/// with an email and password (an account, a session and the role at once); the link
/// then says it was used; an expired one and a revoked one say so; only pending ones
/// are listed; a member may not invite.
#[tokio::test]
async fn an_invitation_is_single_use_expires_and_can_be_revoked() {
    let srv = start().await;
    let (_, ws) = srv
        .post(&srv.admin, "/api/v1/workspaces", json!({"name": "team"}))
        .await;
    let ws = ws["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/workspaces/{ws}/invitations");
    let invite = |role: &'static str, expires: Option<u64>| {
        let mut body = json!({"role": role});
        if let Some(e) = expires {
            body["expires_in_secs"] = json!(e);
        }
        srv.post(&srv.admin, &path, body)
    };
    let (s, inv) = invite("member", None).await;
    assert_eq!(s, StatusCode::CREATED, "{inv}");
    let token = inv["token"].as_str().unwrap().to_string();
    assert!(
        inv["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/#/invite/{token}")),
        "{inv}"
    );
    let accept = |body: Value| {
        srv.http
            .post(format!("{}/api/v1/invitations/accept", srv.url))
            .json(&body)
            .send()
    };
    let resp = accept(json!({"token": token, "email": "gus@example.com",
                              "password": "correct horse", "name": "Gus"}))
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert!(
        resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("agentd_session="),
        "the new account is signed in"
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["membership"]["role"], "member", "{v}");
    assert_eq!(v["session"]["user"]["email"], "gus@example.com", "{v}");
    // Reused: a clear 409, and no second account.
    let resp = accept(json!({"token": token, "email": "hal@example.com",
                              "password": "correct horse"}))
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let v: Value = resp.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("already used"), "{v}");
    let (_, users) = srv.get(&srv.admin, "/api/v1/users").await;
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");

    // Expired: 410 saying so.
    let (_, old) = invite("viewer", Some(60)).await;
    srv.advance(61_000);
    let resp = accept(json!({"token": old["token"], "email": "ida@example.com",
                              "password": "correct horse"}))
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::GONE);
    let v: Value = resp.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("expired"), "{v}");
    // Revoked: 410 saying so; pending lists only the live one.
    let (_, live) = invite("viewer", None).await;
    let (_, revoked) = invite("admin", None).await;
    let (s, v) = srv
        .delete(
            &srv.admin,
            &format!(
                "/api/v1/invitations/{}",
                revoked["invitation"]["id"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let resp = accept(json!({"token": revoked["token"], "email": "jo@example.com",
                              "password": "correct horse"}))
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::GONE);
    let (s, pending) = srv
        .get(&srv.admin, &format!("/api/v1/workspaces/{ws}/invitations"))
        .await;
    assert_eq!(s, StatusCode::OK, "{pending}");
    let ids: Vec<&str> = pending
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![live["invitation"]["id"].as_str().unwrap()]);
    // An unknown link: 404.
    let resp = accept(json!({"token": "agi_0000", "email": "x@example.com",
                              "password": "correct horse"}))
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // The member (gus) may not invite or list invitations.
    let gus = sign_in(&srv, "gus@example.com", "correct horse")
        .await
        .unwrap();
    let (s, v) = with_cookie(
        &srv,
        Method::POST,
        &gus,
        Some(&gus.csrf),
        &format!("/api/v1/workspaces/{ws}/invitations"),
        Some(json!({"role": "member"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, _) = with_cookie(
        &srv,
        Method::GET,
        &gus,
        None,
        &format!("/api/v1/workspaces/{ws}/invitations"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A signed-in user accepts with its session (no new account).
    let resp = srv
        .http
        .post(format!("{}/api/v1/invitations/accept", srv.url))
        .header("cookie", &gus.cookie)
        .header("x-csrf-token", &gus.csrf)
        .json(&json!({"token": live["token"]}))
        .send()
        .await
        .unwrap();
    // gus is a member already: the link is used, the role it had stays.
    assert_eq!(resp.status(), StatusCode::CREATED);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["membership"]["role"], "member", "{v}");
    let db = Db::open(srv.dir.path()).await;
    let actions = db
        .strings("SELECT action FROM audit_log WHERE action LIKE 'invitation.%' ORDER BY at, id")
        .await;
    assert!(
        actions.contains(&"invitation.accept".to_string()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"invitation.revoke".to_string()),
        "{actions:?}"
    );
    db.close().await;
}

/// Members: an admin adds a user with a role, changes it, and removes it; the removal
/// revokes the user's sessions and takes the workspace from its tokens at once, and the
/// audit log has each change. The last owner stays; only an owner touches owners.
#[tokio::test]
async fn removing_a_member_revokes_its_sessions_and_tokens_for_the_workspace() {
    let srv = start().await;
    let (_, ws) = srv
        .post(&srv.admin, "/api/v1/workspaces", json!({"name": "team"}))
        .await;
    let ws = ws["id"].as_str().unwrap().to_string();
    let (_, other) = srv
        .post(
            &srv.admin,
            "/api/v1/workspaces",
            json!({"name": "elsewhere"}),
        )
        .await;
    let other = other["id"].as_str().unwrap().to_string();
    user(&srv, "owner@example.com", "correct horse", false).await;
    user(&srv, "fay@example.com", "correct horse", false).await;
    for (email, role, w) in [
        ("owner@example.com", "owner", &ws),
        ("fay@example.com", "member", &ws),
        ("fay@example.com", "viewer", &other),
    ] {
        let (s, m) = srv
            .req(
                Method::PUT,
                &srv.admin,
                &format!("/api/v1/workspaces/{w}/members/{email}"),
                Some(json!({"role": role})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{m}");
    }
    let owner = sign_in(&srv, "owner@example.com", "correct horse")
        .await
        .unwrap();
    let fay = sign_in(&srv, "fay@example.com", "correct horse")
        .await
        .unwrap();
    let (s, tok) = with_cookie(
        &srv,
        Method::POST,
        &fay,
        Some(&fay.csrf),
        "/api/v1/tokens",
        Some(json!({"name": "fay cli", "workspace_ids": [ws, other]})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{tok}");
    let fay_token = tok["token"].as_str().unwrap().to_string();
    let (s, _) = srv
        .post(
            &fay_token,
            &format!("/api/v1/workspaces/{ws}/issues"),
            json!({"title": "by fay"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    // In the other workspace fay is a viewer: reads yes, writes 403.
    let (s, _) = srv
        .get(&fay_token, &format!("/api/v1/workspaces/{other}"))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = srv
        .post(
            &fay_token,
            &format!("/api/v1/workspaces/{other}/issues"),
            json!({"title": "nope"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(v["error"].as_str().unwrap().contains("member role"), "{v}");

    // The owner lists the members, and may not remove itself as the last owner.
    let members_path = format!("/api/v1/workspaces/{ws}/members");
    let (s, members) = with_cookie(&srv, Method::GET, &owner, None, &members_path, None).await;
    assert_eq!(s, StatusCode::OK, "{members}");
    assert_eq!(members.as_array().unwrap().len(), 2, "{members}");
    let (s, v) = with_cookie(
        &srv,
        Method::DELETE,
        &owner,
        Some(&owner.csrf),
        &format!("{members_path}/owner@example.com"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    // Promoted to admin, fay may still not make an owner.
    let (s, _) = with_cookie(
        &srv,
        Method::PUT,
        &owner,
        Some(&owner.csrf),
        &format!("{members_path}/fay@example.com"),
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = srv
        .req(
            Method::PUT,
            &fay_token,
            &format!("{members_path}/fay@example.com"),
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");

    // Removed: fay's session is dead, its token lost the workspace (and kept the other).
    let (s, _) = with_cookie(
        &srv,
        Method::DELETE,
        &owner,
        Some(&owner.csrf),
        &format!("{members_path}/fay@example.com"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = with_cookie(&srv, Method::GET, &fay, None, "/api/v1/session", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = srv
        .get(&fay_token, &format!("/api/v1/workspaces/{ws}"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, me) = srv.get(&fay_token, "/api/v1/me").await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["workspace_ids"], json!([other]), "{me}");

    let (_, page) = srv
        .get(&srv.admin, &format!("/api/v1/audit?workspace_id={ws}"))
        .await;
    let actions: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in ["member.add", "member.role", "member.remove", "token.create"] {
        assert!(actions.contains(&a), "{a} not in {actions:?}");
    }
}

/// The audit log records what issue 15 lists beyond sign-in, tokens and members: a
/// workspace created, an agent's env or args changed (env keys, never values), a runtime
/// deleted, a forge connection set and removed — each with the actor and the workspace.
#[tokio::test]
async fn agent_runtime_forge_and_workspace_changes_are_audited() {
    let srv = start().await;
    let fx = srv.fixture("audited").await;
    let (s, v) = srv
        .patch(
            &fx.token,
            &format!("/api/v1/agents/{}", fx.agent),
            json!({"custom_env": {"API_KEY": "s3cret"}, "custom_args": ["--fast"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // A rename is not an env or args change.
    let (s, _) = srv
        .patch(
            &fx.token,
            &format!("/api/v1/agents/{}", fx.agent),
            json!({"name": "renamed"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let forge = format!("/api/v1/workspaces/{}/forge", fx.ws);
    let (s, v) = srv
        .req(
            Method::PUT,
            &fx.token,
            &forge,
            Some(json!({"kind": "github", "repo": "acme/audited", "token": "ghp_x"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = srv.delete(&fx.token, &forge).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = srv
        .delete(&fx.token, &format!("/api/v1/runtimes/{}", fx.runtime))
        .await;
    assert_eq!(s, StatusCode::OK);

    let (s, page) = srv
        .get(&srv.admin, &format!("/api/v1/audit?workspace_id={}", fx.ws))
        .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let entries = page["entries"].as_array().unwrap();
    let find = |action: &str| -> Vec<&Value> {
        entries.iter().filter(|e| e["action"] == action).collect()
    };
    assert_eq!(find("workspace.create").len(), 1, "{page}");
    let env = find("agent.env_args");
    assert_eq!(env.len(), 1, "the rename is not one: {page}");
    assert_eq!(env[0]["detail"]["env_keys"], json!(["API_KEY"]));
    assert_eq!(env[0]["detail"]["args"], json!(["--fast"]));
    assert!(
        !page.to_string().contains("s3cret"),
        "never a value: {page}"
    );
    assert!(
        !page.to_string().contains("ghp_x"),
        "never a forge token: {page}"
    );
    assert_eq!(env[0]["actor_kind"], "token");
    assert_eq!(env[0]["source_ip"], "127.0.0.1");
    assert_eq!(find("forge.set")[0]["target"], "acme/audited");
    assert_eq!(find("forge.remove").len(), 1);
    assert_eq!(find("runtime.delete")[0]["target"], fx.runtime.as_str());
}

/// A failed sign-in sent through a proxy, as the proxy forwards it.
async fn fail_via(srv: &Srv, email: &str, forwarded_for: &str) -> StatusCode {
    srv.http
        .post(format!("{}/api/v1/session", srv.url))
        .header("X-Forwarded-For", forwarded_for)
        .json(&json!({"email": email, "password": "nope"}))
        .send()
        .await
        .unwrap()
        .status()
}

/// Behind a load balancer every request comes from the balancer's address. With it named
/// a trusted proxy, the audit log and the per-IP limit see the client its
/// `X-Forwarded-For` names, so one client's failures do not lock everyone out; without
/// it, the header is anyone's to forge and is ignored.
#[tokio::test]
async fn behind_a_trusted_proxy_sign_in_limits_and_the_audit_log_see_the_client() {
    let srv = start_in(tempfile::tempdir().unwrap(), |c| {
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    user(&srv, "fe@example.com", "correct horse", false).await;
    // 20 failures from one client (over many emails), through the balancer.
    for i in 0..20 {
        let s = fail_via(&srv, &format!("x{i}@example.com"), "203.0.113.7, 127.0.0.1").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        fail_via(&srv, "fe@example.com", "203.0.113.7").await,
        StatusCode::TOO_MANY_REQUESTS,
        "the client that failed is limited"
    );
    // Another client through the same balancer signs in.
    let ok = srv
        .http
        .post(format!("{}/api/v1/session", srv.url))
        .header("X-Forwarded-For", "198.51.100.2")
        .json(&json!({"email": "fe@example.com", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::CREATED);
    let db = Db::open(srv.dir.path()).await;
    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'signin.failed' \
             AND source_ip = '203.0.113.7'"
        )
        .await,
        20
    );
    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'signin' AND source_ip = '198.51.100.2'"
        )
        .await,
        1
    );
    db.close().await;
    srv.stop().await;

    // No trusted proxy: the header is ignored, the peer address counts.
    let srv = start().await;
    assert_eq!(
        fail_via(&srv, "gi@example.com", "203.0.113.9").await,
        StatusCode::UNAUTHORIZED
    );
    let db = Db::open(srv.dir.path()).await;
    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'signin.failed' \
             AND source_ip = '127.0.0.1'"
        )
        .await,
        1
    );
    db.close().await;
    srv.stop().await;
}
