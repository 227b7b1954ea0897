//! Walks EVERY route of the server with each kind of bad input (issue 5): no token, a bad
//! token, unknown ids, another workspace's ids, ids that are not ids, malformed JSON,
//! JSON of the wrong shape, the wrong content type and an oversized body. Each must get a
//! 4xx with a JSON `{"error": "..."}` body naming the problem, and the store must be
//! byte-for-byte what it was before the walk.
//!
//! And with each wrong token (issue 11): a member token on a daemon route is 403; a
//! daemon token on a user route is 403, and on another daemon's runtimes and tasks 404;
//! revoked and expired tokens of both kinds, and the admin token replaced by a rotation,
//! are 401 on every route, saying which.
//!
//! The route table below is checked against the `.route(...)` calls in
//! `src/api/mod.rs`, so a new route cannot be added without being walked here.

mod common;

use std::collections::BTreeSet;

use common::{Fx, Srv};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ZERO: &str = "00000000-0000-0000-0000-000000000000";
const NOT_AN_ID: &str = "not-an-id%27%3B--";

/// A route: method, path under the server root with `{ws}`, `{rt}`, `{agent}`, `{issue}`,
/// `{task}` placeholders, and a valid body when it takes JSON.
struct Route {
    method: Method,
    path: &'static str,
    body: Option<Value>,
}

fn routes() -> Vec<Route> {
    let r = |method: Method, path: &'static str, body: Option<Value>| Route { method, path, body };
    let empty = || Some(json!({}));
    vec![
        r(Method::GET, "/api/workspaces", None),
        // Daemon API.
        r(
            Method::POST,
            "/api/daemon/register",
            Some(json!({"workspace_id": "{ws}", "daemon_id": "walker", "runtimes": []})),
        ),
        r(
            Method::POST,
            "/api/daemon/deregister",
            Some(json!({"runtime_ids": ["{rt}"]})),
        ),
        r(
            Method::POST,
            "/api/daemon/heartbeat",
            Some(json!({"runtime_id": "{rt}", "active_task_ids": ["{task}"]})),
        ),
        // Walked with a real WebSocket handshake (a plain GET is refused as no upgrade).
        r(Method::GET, "/api/daemon/ws?runtime_ids={rt}", None),
        r(Method::GET, "/api/daemon/workspaces/{ws}/repos", None),
        // Claim and start take no body (one is ignored); recover-orphans an optional one.
        r(Method::POST, "/api/daemon/runtimes/{rt}/tasks/claim", None),
        r(
            Method::POST,
            "/api/daemon/runtimes/{rt}/recover-orphans",
            Some(json!({"active_task_ids": ["{task}"]})),
        ),
        r(Method::POST, "/api/daemon/tasks/{task}/start", None),
        r(
            Method::POST,
            "/api/daemon/tasks/{task}/progress",
            Some(json!({"summary": "s", "step": 1, "total": 2})),
        ),
        r(
            Method::POST,
            "/api/daemon/tasks/{task}/messages",
            Some(json!({"messages": []})),
        ),
        r(
            Method::POST,
            "/api/daemon/tasks/{task}/usage",
            Some(json!({"usage": []})),
        ),
        r(Method::POST, "/api/daemon/tasks/{task}/session", empty()),
        r(
            Method::POST,
            "/api/daemon/tasks/{task}/complete",
            Some(json!({"output": "o"})),
        ),
        r(
            Method::POST,
            "/api/daemon/tasks/{task}/fail",
            Some(json!({"error": "e"})),
        ),
        r(
            Method::POST,
            "/api/daemon/tasks/{task}/pushed",
            Some(
                json!({"pushed": {"remote_url": "https://github.com/acme/walk",
                                   "branch": "agentd/b", "commit": "c0ffee"}}),
            ),
        ),
        r(Method::GET, "/api/daemon/tasks/{task}/status", None),
        // User API.
        r(Method::GET, "/api/v1/me", None),
        r(Method::GET, "/api/v1/workspaces", None),
        r(
            Method::POST,
            "/api/v1/workspaces",
            Some(json!({"name": "n"})),
        ),
        r(Method::GET, "/api/v1/workspaces/{ws}", None),
        r(Method::GET, "/api/v1/workspaces/{ws}/events", None),
        r(Method::GET, "/api/v1/tokens", None),
        r(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "t", "kind": "daemon", "workspace_ids": ["{ws}"]})),
        ),
        r(Method::DELETE, "/api/v1/tokens/{token}", None),
        r(Method::POST, "/api/v1/admin/rotate-token", None),
        r(Method::GET, "/api/v1/workspaces/{ws}/runtimes", None),
        r(Method::DELETE, "/api/v1/runtimes/{rt}", None),
        r(Method::GET, "/api/v1/workspaces/{ws}/agents", None),
        r(
            Method::POST,
            "/api/v1/workspaces/{ws}/agents",
            Some(json!({"name": "a", "runtime_id": "{rt}"})),
        ),
        r(Method::GET, "/api/v1/agents/{agent}", None),
        r(
            Method::PATCH,
            "/api/v1/agents/{agent}",
            Some(json!({"name": "renamed"})),
        ),
        r(
            Method::POST,
            "/api/v1/workspaces/{ws}/issues",
            Some(json!({"title": "t"})),
        ),
        r(Method::GET, "/api/v1/issues", None),
        r(Method::GET, "/api/v1/issues/{issue}", None),
        r(
            Method::PATCH,
            "/api/v1/issues/{issue}",
            Some(json!({"title": "renamed"})),
        ),
        r(Method::GET, "/api/v1/issues/{issue}/comments", None),
        r(
            Method::POST,
            "/api/v1/issues/{issue}/comments",
            Some(json!({"body": "hi"})),
        ),
        r(Method::GET, "/api/v1/tasks/{task}", None),
        r(Method::GET, "/api/v1/tasks/{task}/messages", None),
        r(Method::GET, "/api/v1/tasks/{task}/diff", None),
        r(Method::POST, "/api/v1/tasks/{task}/cancel", None),
        r(Method::POST, "/api/v1/tasks/{task}/retry", None),
        r(Method::POST, "/api/v1/tasks/{task}/push", None),
        r(Method::POST, "/api/v1/signin-codes", None),
        // No bearer token (the code is the credential): walked by `walk_the_signin`.
        r(
            Method::POST,
            "/api/v1/signin",
            Some(json!({"code": "asc_00000000000000000000000000000000"})),
        ),
        // Password sign-in: no bearer token; walked by `walk_the_password_signin`.
        r(
            Method::POST,
            "/api/v1/session",
            Some(json!({"email": "walker@example.com", "password": "not the password"})),
        ),
        r(Method::GET, "/api/v1/session", None),
        r(Method::DELETE, "/api/v1/session", None),
        r(Method::GET, "/api/v1/users", None),
        r(
            Method::POST,
            "/api/v1/users",
            Some(json!({"email": "new@example.com", "password": "long enough"})),
        ),
        r(
            Method::PATCH,
            "/api/v1/users/{user}",
            Some(json!({"name": "renamed"})),
        ),
        r(Method::GET, "/api/v1/audit", None),
        // OIDC sign-in and what the sign-in form offers: no credentials; walked by
        // `walk_the_oidc` (not configured here; tests/oidc.rs walks a configured one).
        r(Method::GET, "/api/v1/session/providers", None),
        r(Method::GET, "/api/v1/oidc/login", None),
        r(Method::GET, "/api/v1/oidc/callback?code=c&state=s", None),
        r(Method::GET, "/api/v1/workspaces/{ws}/settings", None),
        r(
            Method::PUT,
            "/api/v1/workspaces/{ws}/settings",
            Some(json!({"oidc_default_role": "member"})),
        ),
        r(Method::GET, "/api/v1/workspaces/{ws}/members", None),
        r(
            Method::PUT,
            "/api/v1/workspaces/{ws}/members/{user}",
            Some(json!({"role": "member"})),
        ),
        r(
            Method::DELETE,
            "/api/v1/workspaces/{ws}/members/{user}",
            None,
        ),
        r(Method::GET, "/api/v1/workspaces/{ws}/invitations", None),
        r(
            Method::POST,
            "/api/v1/workspaces/{ws}/invitations",
            Some(json!({"role": "member"})),
        ),
        r(Method::DELETE, "/api/v1/invitations/{invitation}", None),
        // Without credentials it makes an account: walked with a token here (a bad
        // link is 404 whoever asks).
        r(
            Method::POST,
            "/api/v1/invitations/accept",
            Some(json!({"token": "agi_00000000000000000000000000000000000000"})),
        ),
        r(Method::GET, "/api/v1/workspaces/{ws}/forge", None),
        r(
            Method::PUT,
            "/api/v1/workspaces/{ws}/forge",
            Some(json!({"kind": "github", "repo": "acme/other", "token": "t"})),
        ),
        r(Method::DELETE, "/api/v1/workspaces/{ws}/forge", None),
        // Signed, not authenticated: walked by `walk_the_webhook` instead.
        r(
            Method::POST,
            "/api/v1/forge/webhooks/github",
            Some(json!({"action": "closed", "number": 1,
                        "repository": {"full_name": "acme/walk"}})),
        ),
    ]
}

/// Bad query strings of the routes that take query parameters: each must be a 400.
fn bad_queries(path: &str) -> &'static [&'static str] {
    match path {
        "/api/v1/issues" => &[
            "limit=abc",
            "limit=0",
            "limit=100000",
            "after=not-a-cursor",
            "after=1_not-an-id",
            "status=not-a-status",
            "assignee=",
        ],
        "/api/v1/tasks/{task}/messages" => &["limit=abc", "limit=-1", "after_seq=abc"],
        "/api/v1/audit" => &["limit=abc", "before=abc", "workspace_id=not-an-id"],
        // Also no WebSocket handshake: still a JSON 400.
        "/api/daemon/ws" => &["runtime_ids=", "runtime_ids={rt}"],
        _ => &[],
    }
}

/// `(METHOD, full path)` of every `.route(...)` call in `src/api/mod.rs`, with the prefix
/// of the router it is on (`let daemon` → `/api/daemon`, `let v1` → `/api/v1`).
fn declared_routes() -> BTreeSet<(String, String)> {
    let src = include_str!("../src/api/mod.rs");
    let daemon = src.find("let daemon").expect("the daemon router");
    let v1 = src.find("let v1").expect("the v1 router");
    let root = src.rfind("Router::new()").expect("the root router");
    let prefix = |at: usize| match at {
        _ if at > root => "",
        _ if at > v1 => "/api/v1",
        _ if at > daemon => "/api/daemon",
        _ => "",
    };
    let starts: Vec<usize> = src.match_indices(".route(").map(|(i, _)| i).collect();
    let mut out = BTreeSet::new();
    for (n, &at) in starts.iter().enumerate() {
        let call = &src[at..starts.get(n + 1).copied().unwrap_or(src.len())];
        let mut quoted = call.split('"');
        let path = quoted.nth(1).expect("a route path");
        let handlers = quoted.collect::<Vec<_>>().join("\"");
        for m in ["get", "post", "patch", "delete", "put"] {
            let called = handlers
                .match_indices(&format!("{m}("))
                .any(|(i, _)| !handlers[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_'));
            if called {
                out.insert((m.to_uppercase(), format!("{}{path}", prefix(at))));
            }
        }
    }
    out
}

fn fill(template: &str, ids: &Ids) -> String {
    template
        .replace("{ws}", &ids.ws)
        .replace("{rt}", &ids.rt)
        .replace("{agent}", &ids.agent)
        .replace("{issue}", &ids.issue)
        .replace("{task}", &ids.task)
        .replace("{token}", &ids.token)
        .replace("{user}", &ids.user)
        .replace("{invitation}", &ids.invitation)
}

/// Which tokens a route is for.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    /// The daemon API (`/api/daemon/*`, `GET /api/workspaces`): daemon and admin tokens.
    Daemon,
    /// The user API: member and admin tokens (some also task tokens).
    User,
    /// Admin only.
    Admin,
    /// The forge's webhook receiver: no bearer token, an HMAC signature instead.
    Webhook,
    /// The board's sign-in: no bearer token, a one-time code in the body instead.
    Signin,
    /// Password sign-in: no bearer token, an email and password in the body instead.
    PasswordSignin,
    /// OIDC sign-in and the sign-in form's providers: no credentials at all.
    Oidc,
}

fn kind_of(path: &str) -> Kind {
    if path.starts_with("/api/daemon") || path == "/api/workspaces" {
        Kind::Daemon
    } else if path.starts_with("/api/v1/admin") || path == "/api/v1/users" {
        Kind::Admin
    } else if path.starts_with("/api/v1/forge/webhooks") {
        Kind::Webhook
    } else if path == "/api/v1/signin" {
        Kind::Signin
    } else if path == "/api/v1/session" {
        Kind::PasswordSignin
    } else if path.starts_with("/api/v1/oidc/") || path == "/api/v1/session/providers" {
        Kind::Oidc
    } else {
        Kind::User
    }
}

fn fill_json(v: &Value, ids: &Ids) -> Value {
    serde_json::from_str(&fill(&v.to_string(), ids)).expect("filled body is JSON")
}

#[derive(Clone)]
struct Ids {
    ws: String,
    rt: String,
    agent: String,
    issue: String,
    task: String,
    token: String,
    user: String,
    invitation: String,
}

impl Ids {
    fn all(v: &str) -> Ids {
        Ids {
            ws: v.into(),
            rt: v.into(),
            agent: v.into(),
            issue: v.into(),
            task: v.into(),
            token: v.into(),
            user: v.into(),
            invitation: v.into(),
        }
    }
}

/// A workspace's fixture plus one assigned issue and its queued task.
async fn ids_of(srv: &Srv, fx: &Fx, title: &str) -> Ids {
    let issue = srv.assigned_issue(fx, title).await;
    let (s, shown) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
    assert_eq!(s, StatusCode::OK, "{shown}");
    let (s, tokens) = srv.get(&fx.token, "/api/v1/tokens").await;
    assert_eq!(s, StatusCode::OK, "{tokens}");
    let me = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["current"] == true)
        .expect("the member token sees itself");
    Ids {
        ws: fx.ws.clone(),
        rt: fx.runtime.clone(),
        agent: fx.agent.clone(),
        issue,
        task: shown["tasks"][0]["id"]
            .as_str()
            .expect("a queued task")
            .to_string(),
        token: me["id"].as_str().unwrap().to_string(),
        invitation: {
            let (s, i) = srv
                .post(
                    &srv.admin,
                    &format!("/api/v1/workspaces/{}/invitations", fx.ws),
                    json!({"role": "viewer"}),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{i}");
            i["invitation"]["id"].as_str().unwrap().to_string()
        },
        user: {
            let (s, u) = srv
                .post(
                    &srv.admin,
                    "/api/v1/users",
                    json!({"email": format!("{title}@example.com").replace(' ', "-"),
                           "password": "long enough"}),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{u}");
            u["id"].as_str().unwrap().to_string()
        },
    }
}

/// Every row of every table, in a stable text form.
async fn snapshot(srv: &Srv) -> String {
    let db = common::Db::open(srv.dir.path()).await;
    let out = db.snapshot().await;
    db.close().await;
    out
}

/// A bad request: (what is wrong, path, token, body with its content type, the statuses
/// that refuse it properly, a word the error must contain).
type Case<'a> = (
    String,
    String,
    Option<&'a str>,
    Option<(String, &'static str)>,
    Vec<u16>,
    Option<&'static str>,
);

/// One request with a raw body; returns the status and the body text.
async fn send(
    srv: &Srv,
    method: &Method,
    path: &str,
    token: Option<&str>,
    body: Option<(String, &str)>,
) -> (StatusCode, String) {
    let mut req = srv
        .http
        .request(method.clone(), format!("{}{path}", srv.url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some((b, ctype)) = body {
        req = req.header("content-type", ctype).body(b);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    (resp.status(), resp.text().await.unwrap_or_default())
}

/// A WebSocket handshake (`GET /api/daemon/ws`): the refusal's status and body (101 if
/// the upgrade was accepted).
async fn send_ws(srv: &Srv, path: &str, token: Option<&str>) -> (StatusCode, String) {
    use tokio_tungstenite::tungstenite::Error;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("{}{path}", srv.url.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("Authorization", format!("Bearer {t}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => (StatusCode::SWITCHING_PROTOCOLS, String::new()),
        Err(Error::Http(r)) => (
            r.status(),
            String::from_utf8_lossy(r.body().as_deref().unwrap_or_default()).into_owned(),
        ),
        Err(e) => panic!("ws {path}: {e}"),
    }
}

/// An oversized JSON body, sent the way careful HTTP clients send large bodies: the head
/// with `Expect: 100-continue` first, the body only if the server asks for it. (Writing
/// the whole body blindly races the server, which answers 413 and closes the connection
/// while the client is still writing, and the reset can swallow the answer.)
async fn send_oversized(
    srv: &Srv,
    method: &Method,
    path: &str,
    token: &str,
) -> (StatusCode, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let len = 2 * 1024 * 1024;
    let addr = srv.url.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\n\
         Expect: 100-continue\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.expect("write head");
    let mut buf = vec![0u8; 64 * 1024];
    let n = conn.read(&mut buf).await.expect("read answer");
    let mut answer = String::from_utf8_lossy(&buf[..n]).into_owned();
    if answer.starts_with("HTTP/1.1 100") {
        // The server asked for the body: send it (it must then refuse it by size).
        let body = format!(r#"{{"x": "{}"}}"#, "x".repeat(len - 9));
        let _ = conn.write_all(body.as_bytes()).await;
        answer.clear();
    }
    let mut rest = Vec::new();
    let _ = conn.read_to_end(&mut rest).await;
    answer.push_str(&String::from_utf8_lossy(&rest));
    let code: u16 = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    // `Connection: close`: the body is whatever follows the head (no chunking for errors
    // of known length; tolerate chunked framing by taking the JSON object inside).
    let body = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) if a < b => body[a..=b].to_string(),
        _ => body.to_string(),
    };
    (StatusCode::from_u16(code).expect("status"), body)
}

#[test]
fn the_walk_covers_every_declared_route() {
    let walked: BTreeSet<(String, String)> = routes()
        .iter()
        .map(|r| {
            let path = r.path.split('?').next().unwrap_or_default();
            (r.method.to_string(), path.to_string())
        })
        .collect();
    let declared: BTreeSet<(String, String)> = declared_routes()
        .into_iter()
        .map(|(m, p)| {
            let p = p
                .replace("{wid}", "{ws}")
                .replace("{rid}", "{rt}")
                .replace("/runtimes/{id}", "/runtimes/{rt}")
                .replace("/agents/{id}", "/agents/{agent}")
                .replace("/issues/{id}", "/issues/{issue}")
                .replace("/tasks/{id}", "/tasks/{task}")
                .replace("/tokens/{id}", "/tokens/{token}")
                .replace("/users/{id}", "/users/{user}")
                .replace("/members/{uid}", "/members/{user}")
                .replace("/invitations/{id}", "/invitations/{invitation}")
                .replace("/forge/webhooks/{kind}", "/forge/webhooks/github");
            (m, p)
        })
        // Unauthenticated probes, no input to walk.
        .filter(|(_, p)| p != "/health" && p != "/ready" && p != "/metrics")
        .collect();
    assert!(declared.len() > 30, "parsed too few routes: {declared:?}");
    let missing: Vec<_> = declared.difference(&walked).collect();
    let stale: Vec<_> = walked.difference(&declared).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "routes not walked: {missing:?}; walked but not declared: {stale:?}"
    );
}

/// Tokens that must be refused with 401 on every route, and the word saying why.
struct DeadTokens(Vec<(&'static str, String, &'static str)>);

/// Mints a token of `kind` for `ws` and makes it dead: revoked, or expired (a one-second
/// expiry, then the server's clock moves on).
async fn dead_tokens(srv: &Srv, ws: &str) -> DeadTokens {
    let mut out = Vec::new();
    for kind in ["member", "daemon"] {
        let (s, t) = srv
            .post(
                &srv.admin,
                "/api/v1/tokens",
                json!({"name": "doomed", "kind": kind, "workspace_ids": [ws]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        let (s, v) = srv
            .delete(
                &srv.admin,
                &format!("/api/v1/tokens/{}", t["id"].as_str().unwrap()),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let what = if kind == "member" {
            "a revoked member token"
        } else {
            "a revoked daemon token"
        };
        out.push((what, t["token"].as_str().unwrap().to_string(), "revoked"));
        let (s, t) = srv
            .post(
                &srv.admin,
                "/api/v1/tokens",
                json!({"kind": kind, "workspace_ids": [ws], "expires_in_secs": 1}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        let what = if kind == "member" {
            "an expired member token"
        } else {
            "an expired daemon token"
        };
        out.push((what, t["token"].as_str().unwrap().to_string(), "expired"));
    }
    // Past the one-second expiry; far from any lease (the fixture's tasks are queued).
    srv.advance(1_500);
    DeadTokens(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_rejects_every_kind_of_bad_input_and_changes_nothing() {
    // Members may mint tokens and create workspaces here, so those routes' bad input
    // reaches their checks instead of stopping at the server setting.
    let mut srv = common::start_in(tempfile::tempdir().unwrap(), |c| {
        c.members_can_mint_tokens = true;
        c.members_can_create_workspaces = true;
    })
    .await;
    let fx_a = srv.fixture("a").await;
    let fx_b = srv.fixture("b").await;
    let a = ids_of(&srv, &fx_a, "issue of a").await;
    let b = ids_of(&srv, &fx_b, "issue of b").await;
    // A second daemon of workspace a, with its own runtime: a's runtime and task are
    // another daemon's to it.
    let other_daemon = srv.mint("daemon", &fx_a.ws).await;
    srv.register(&other_daemon, &fx_a.ws, "d2", &["codex"])
        .await;
    let dead = dead_tokens(&srv, &fx_a.ws).await;
    // The admin token replaced by a rotation is dead too.
    let old_admin = srv.admin.clone();
    let (s, rotated) = srv
        .post(&old_admin, "/api/v1/admin/rotate-token", json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    srv.admin = rotated["token"].as_str().unwrap().to_string();
    // Its first use records `last_used_at` now, not during the walk (which uses it for
    // the users routes' bad bodies).
    let (s, _) = srv.get(&srv.admin, "/api/v1/me").await;
    assert_eq!(s, StatusCode::OK);
    let mut dead = dead.0;
    dead.push(("the admin token before a rotation", old_admin, "revoked"));

    // Workspace a is connected to a forge, so webhooks for its repository reach the
    // signature check.
    let (s, conn) = srv
        .req(
            Method::PUT,
            &fx_a.token,
            &format!("/api/v1/workspaces/{}/forge", fx_a.ws),
            Some(json!({"kind": "github", "repo": "acme/walk", "token": "t"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{conn}");
    let webhook_secret = conn["webhook_secret"].as_str().unwrap().to_string();

    let before = snapshot(&srv).await;
    assert!(
        before.contains("== issues") && before.contains("issue of b"),
        "the snapshot sees the store: {before}"
    );

    let mut failures = Vec::new();
    let mut checked = 0;
    for route in routes() {
        let kind = kind_of(route.path.split('?').next().unwrap_or_default());
        // The token the route is for (the rotation route has none to spare: a good admin
        // request would rotate; the users routes take the admin token's bad bodies).
        let right = match kind {
            Kind::Daemon => fx_a.daemon.as_str(),
            Kind::Admin if route.path == "/api/v1/users" => srv.admin.as_str(),
            Kind::User | Kind::Admin => fx_a.token.as_str(),
            Kind::Webhook => {
                walk_the_webhook(&srv, &route, &webhook_secret, &mut failures, &mut checked).await;
                continue;
            }
            Kind::Signin => {
                walk_the_signin(&srv, &route, &fx_a, &mut failures, &mut checked).await;
                continue;
            }
            Kind::Oidc => {
                walk_the_oidc(&srv, &route, &fx_a, &mut failures, &mut checked).await;
                continue;
            }
            Kind::PasswordSignin => {
                // The GET (who is signed in) and DELETE (sign out) are user routes.
                if route.method == Method::POST {
                    walk_the_password_signin(&srv, &route, &fx_a, &mut failures, &mut checked)
                        .await;
                    continue;
                }
                fx_a.token.as_str()
            }
        };
        let good_path = fill(route.path, &a);
        let good_body = route
            .body
            .as_ref()
            .map(|b| (fill_json(b, &a).to_string(), "application/json"));
        let mut cases: Vec<Case> = vec![
            (
                "no token".into(),
                good_path.clone(),
                None,
                good_body.clone(),
                // Accepting an invitation needs no credentials (the link is one): an
                // unknown link is 404.
                if route.path == "/api/v1/invitations/accept" {
                    vec![404]
                } else {
                    vec![401]
                },
                None,
            ),
            (
                "a bad token".into(),
                good_path.clone(),
                Some("agd_not_a_token"),
                good_body.clone(),
                vec![401],
                None,
            ),
        ];
        for (what, token, why) in &dead {
            cases.push((
                (*what).into(),
                good_path.clone(),
                Some(token),
                good_body.clone(),
                vec![401],
                Some(why),
            ));
        }
        match kind {
            Kind::Daemon => cases.push((
                "a member token on a daemon route".into(),
                good_path.clone(),
                Some(&fx_a.token),
                good_body.clone(),
                vec![403],
                Some("daemon token"),
            )),
            Kind::Webhook | Kind::Signin | Kind::Oidc => {}
            Kind::User | Kind::Admin | Kind::PasswordSignin => cases.push((
                "a daemon token on a user route".into(),
                good_path.clone(),
                Some(&fx_a.daemon),
                good_body.clone(),
                vec![403],
                Some("daemon API"),
            )),
        }
        if kind == Kind::Admin {
            cases.push((
                "a member token on an admin route".into(),
                good_path.clone(),
                Some(&fx_a.token),
                good_body.clone(),
                vec![403],
                Some("admin"),
            ));
        }
        let mentions = |p: &str| {
            route.path.contains(p)
                || route
                    .body
                    .as_ref()
                    .is_some_and(|b| b.to_string().contains(p))
        };
        if kind == Kind::Daemon
            && (mentions("{rt}") || mentions("{task}"))
            && route.path != "/api/daemon/deregister"
        {
            cases.push((
                "another daemon's runtime or task".into(),
                good_path.clone(),
                Some(&other_daemon),
                good_body.clone(),
                vec![404],
                Some("not found"),
            ));
        }
        let placeholders = [
            "{ws}",
            "{rt}",
            "{agent}",
            "{issue}",
            "{task}",
            "{token}",
            "{user}",
            "{invitation}",
        ];
        let has_ids = placeholders.iter().any(|p| mentions(p));
        if has_ids && route.path != "/api/daemon/deregister" {
            for (what, ids) in [
                ("unknown ids", Ids::all(ZERO)),
                ("ids that are not ids", Ids::all(NOT_AN_ID)),
                ("another workspace's ids", b.clone()),
            ] {
                let body = route
                    .body
                    .as_ref()
                    .map(|bd| (fill_json(bd, &ids).to_string(), "application/json"));
                // An id that cannot be one is a 400 naming the field; ids in a body are
                // data, not a path, so a refusal there may also be 403.
                let ok: Vec<u16> = match (ids.ws == NOT_AN_ID, route.path.contains('{')) {
                    (true, _) => vec![400, 404],
                    (false, true) => vec![404],
                    (false, false) => vec![400, 403, 404],
                };
                cases.push((
                    what.into(),
                    fill(route.path, &ids),
                    Some(right),
                    body,
                    ok,
                    None,
                ));
            }
        }
        for q in bad_queries(route.path) {
            cases.push((
                format!("the bad query {q:?}"),
                format!("{good_path}?{}", fill(q, &a)),
                Some(right),
                good_body.clone(),
                vec![400],
                None,
            ));
        }
        if route.body.is_some() {
            for (what, body, ctype, ok) in [
                (
                    "malformed JSON",
                    "{\"oops".to_string(),
                    "application/json",
                    vec![400],
                ),
                (
                    "JSON of the wrong shape",
                    "[1, 2]".to_string(),
                    "application/json",
                    vec![400, 422],
                ),
                (
                    "the wrong content type",
                    "{}".to_string(),
                    "text/plain",
                    vec![415],
                ),
            ] {
                cases.push((
                    what.into(),
                    good_path.clone(),
                    Some(right),
                    Some((body, ctype)),
                    ok,
                    None,
                ));
            }
        }
        if route.body.is_some() {
            checked += 1;
            let (status, text) = send_oversized(&srv, &route.method, &good_path, right).await;
            let named = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(|e| !e.trim().is_empty()))
                .unwrap_or(false);
            if status != StatusCode::PAYLOAD_TOO_LARGE || !named {
                failures.push(format!(
                    "{} {} with an oversized body: {status} {text}",
                    route.method, route.path
                ));
            }
        }
        for (what, path, token, body, ok, says) in cases {
            checked += 1;
            let (status, text) = if route.path.starts_with("/api/daemon/ws") {
                send_ws(&srv, &path, token).await
            } else {
                send(&srv, &route.method, &path, token, body).await
            };
            let json: Option<Value> = serde_json::from_str(&text).ok();
            let error = json
                .as_ref()
                .and_then(|v| v["error"].as_str())
                .unwrap_or_default()
                .to_string();
            let named = !error.trim().is_empty() && says.is_none_or(|w| error.contains(w));
            if !ok.contains(&status.as_u16()) || !named {
                failures.push(format!(
                    "{} {} with {what}: {status} {}",
                    route.method,
                    route.path,
                    text.chars().take(200).collect::<String>()
                ));
            }
        }
    }
    // Deregistering another workspace's runtimes, another daemon's or unknown ones must
    // not touch them (deregister skips ids it may not act on, so a daemon's shutdown is
    // never refused over one deleted runtime).
    for (ids, token) in [
        (&b, &fx_a.daemon),
        (&Ids::all(ZERO), &fx_a.daemon),
        (&a, &other_daemon),
    ] {
        checked += 1;
        let (status, text) = send(
            &srv,
            &Method::POST,
            "/api/daemon/deregister",
            Some(token),
            Some((
                json!({"runtime_ids": [ids.rt]}).to_string(),
                "application/json",
            )),
        )
        .await;
        if status.is_server_error() {
            failures.push(format!("deregister of a foreign runtime: {status} {text}"));
        }
    }
    // Registering another daemon's runtime (same workspace, daemon id and provider) with
    // a different, valid daemon token is refused: no takeover while the owner is valid.
    checked += 1;
    let (status, text) = send(
        &srv,
        &Method::POST,
        "/api/daemon/register",
        Some(&other_daemon),
        Some((
            json!({"workspace_id": a.ws, "daemon_id": "d1",
                   "runtimes": [{"type": "claude", "name": "stolen"}]})
            .to_string(),
            "application/json",
        )),
    )
    .await;
    if status != StatusCode::CONFLICT || !text.contains("another token") {
        failures.push(format!(
            "register over another daemon's runtime: {status} {text}"
        ));
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} bad requests were not refused properly:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let after = snapshot(&srv).await;
    pretty_assertions::assert_eq!(before, after, "bad input changed the store");
    eprintln!(
        "bad_input_walk: {checked} bad requests over {} routes",
        routes().len()
    );
}

/// The webhook receiver with bad deliveries: unsigned, wrongly signed, signed over other
/// bytes (401); for an unknown repository or kind (404); not JSON or without a
/// repository (400); oversized (413). None may change the store.
/// The OIDC routes and the sign-in form's providers take no credentials, and any token
/// that comes along changes nothing: with OIDC not configured (as here) the login and
/// the callback are 404 whatever the query, and the providers say there is none.
async fn walk_the_oidc(
    srv: &Srv,
    route: &Route,
    fx: &Fx,
    failures: &mut Vec<String>,
    checked: &mut usize,
) {
    let path = route.path.split('?').next().unwrap_or_default();
    let want = if path == "/api/v1/session/providers" {
        200
    } else {
        404
    };
    let queries = [
        "",
        "?state=",
        "?code=&state=%00",
        "?error=access_denied&state=x",
    ];
    let tokens = [
        None,
        Some("agd_not_a_token"),
        Some(fx.token.as_str()),
        Some(fx.daemon.as_str()),
    ];
    for q in queries {
        for token in tokens {
            *checked += 1;
            let (status, text) = send(srv, &Method::GET, &format!("{path}{q}"), token, None).await;
            let json: Option<Value> = serde_json::from_str(&text).ok();
            let ok = match want {
                200 => json.is_some_and(|v| v["oidc"].is_null()),
                _ => json.is_some_and(|v| {
                    v["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("not configured"))
                }),
            };
            if status.as_u16() != want || !ok {
                failures.push(format!(
                    "GET {path}{q} with token {token:?}: {status} {}",
                    text.chars().take(200).collect::<String>()
                ));
            }
        }
    }
}

/// `POST /api/v1/signin` takes no bearer token: a code that is not one is 401 whatever
/// token comes along (a token is no credential here), and a bad body is a 4xx.
async fn walk_the_signin(
    srv: &Srv,
    route: &Route,
    fx: &Fx,
    failures: &mut Vec<String>,
    checked: &mut usize,
) {
    let good = route.body.as_ref().expect("a body").to_string();
    let cases: Vec<(&str, String, &str, Option<&str>, u16)> = vec![
        (
            "an unknown code",
            good.clone(),
            "application/json",
            None,
            401,
        ),
        (
            "an unknown code with a member token",
            good.clone(),
            "application/json",
            Some(fx.token.as_str()),
            401,
        ),
        (
            "an unknown code with a daemon token",
            good.clone(),
            "application/json",
            Some(fx.daemon.as_str()),
            401,
        ),
        (
            "an empty code",
            json!({"code": ""}).to_string(),
            "application/json",
            None,
            401,
        ),
        ("no code", "{}".into(), "application/json", None, 422),
        (
            "malformed JSON",
            "{\"oops".into(),
            "application/json",
            None,
            400,
        ),
        (
            "JSON of the wrong shape",
            "[1, 2]".into(),
            "application/json",
            None,
            422,
        ),
        (
            "the wrong content type",
            good.clone(),
            "text/plain",
            None,
            415,
        ),
    ];
    for (what, body, ctype, token, want) in cases {
        *checked += 1;
        let mut req = srv
            .http
            .post(format!("{}{}", srv.url, route.path))
            .header("content-type", ctype)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let named = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(|e| !e.trim().is_empty()))
            .unwrap_or(false);
        if status.as_u16() != want || !named {
            failures.push(format!("POST {} with {what}: {status} {text}", route.path));
        }
    }
    *checked += 1;
    let (status, text) = send_oversized(srv, &Method::POST, route.path, "agd_irrelevant").await;
    if status != StatusCode::PAYLOAD_TOO_LARGE {
        failures.push(format!(
            "POST {} with an oversized body: {status} {text}",
            route.path
        ));
    }
}

/// `POST /api/v1/session` takes no bearer token: a bad body is a 4xx naming it, whatever
/// token comes along. (A well-formed wrong password is refused too, but it is written to
/// the audit log by design: `tests/accounts.rs` checks that.)
async fn walk_the_password_signin(
    srv: &Srv,
    route: &Route,
    fx: &Fx,
    failures: &mut Vec<String>,
    checked: &mut usize,
) {
    let good = route.body.as_ref().expect("a body").to_string();
    let cases: Vec<(&str, String, &str, Option<&str>, u16)> = vec![
        (
            "no password",
            json!({"email": "a@b.c"}).to_string(),
            "application/json",
            None,
            422,
        ),
        (
            "no password with a member token",
            json!({"email": "a@b.c"}).to_string(),
            "application/json",
            Some(fx.token.as_str()),
            422,
        ),
        (
            "malformed JSON",
            "{\"oops".into(),
            "application/json",
            None,
            400,
        ),
        (
            "JSON of the wrong shape",
            "[1, 2]".into(),
            "application/json",
            None,
            422,
        ),
        (
            "the wrong content type",
            good.clone(),
            "text/plain",
            None,
            415,
        ),
    ];
    for (what, body, ctype, token, want) in cases {
        *checked += 1;
        let mut req = srv
            .http
            .post(format!("{}{}", srv.url, route.path))
            .header("content-type", ctype)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let named = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(|e| !e.trim().is_empty()))
            .unwrap_or(false);
        if status.as_u16() != want || !named {
            failures.push(format!("POST {} with {what}: {status} {text}", route.path));
        }
    }
    *checked += 1;
    let (status, text) = send_oversized(srv, &Method::POST, route.path, "agd_irrelevant").await;
    if status != StatusCode::PAYLOAD_TOO_LARGE {
        failures.push(format!(
            "POST {} with an oversized body: {status} {text}",
            route.path
        ));
    }
}

async fn walk_the_webhook(
    srv: &Srv,
    route: &Route,
    secret: &str,
    failures: &mut Vec<String>,
    checked: &mut usize,
) {
    let good = route.body.as_ref().expect("a payload").to_string();
    let sign = |secret: &str, body: &str| {
        format!(
            "sha256={}",
            agentd_testkit::fake_forge::sign(secret, body.as_bytes())
        )
    };
    let unknown =
        json!({"action": "closed", "repository": {"full_name": "acme/unknown"}}).to_string();
    let cases: Vec<(&str, &str, String, Option<String>, u16)> = vec![
        ("unsigned", route.path, good.clone(), None, 401),
        (
            "an empty signature",
            route.path,
            good.clone(),
            Some(String::new()),
            401,
        ),
        (
            "a wrong secret",
            route.path,
            good.clone(),
            Some(sign("nope", &good)),
            401,
        ),
        (
            "a signature that is not hex",
            route.path,
            good.clone(),
            Some("sha256=zz".into()),
            401,
        ),
        (
            "a signature over other bytes",
            route.path,
            format!("{good} "),
            Some(sign(secret, &good)),
            401,
        ),
        (
            "an unknown repository",
            route.path,
            unknown.clone(),
            Some(sign(secret, &unknown)),
            404,
        ),
        (
            "an unknown forge kind",
            "/api/v1/forge/webhooks/gitlab",
            good.clone(),
            Some(sign(secret, &good)),
            404,
        ),
        (
            "malformed JSON",
            route.path,
            "{\"oops".into(),
            Some(sign(secret, "{\"oops")),
            400,
        ),
        (
            "JSON of the wrong shape",
            route.path,
            "[1, 2]".into(),
            Some(sign(secret, "[1, 2]")),
            400,
        ),
        (
            "no repository",
            route.path,
            "{}".into(),
            Some(sign(secret, "{}")),
            400,
        ),
    ];
    for (what, path, body, sig, want) in cases {
        *checked += 1;
        let mut req = srv
            .http
            .post(format!("{}{path}", srv.url))
            .header("content-type", "application/json")
            .header("x-github-event", "pull_request")
            .header("x-github-delivery", "walk-1")
            .body(body);
        if let Some(sig) = sig {
            req = req.header("x-hub-signature-256", sig);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let named = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(|e| !e.trim().is_empty()))
            .unwrap_or(false);
        if status.as_u16() != want || !named {
            failures.push(format!("POST {path} with {what}: {status} {text}"));
        }
    }
    *checked += 1;
    let (status, text) = send_oversized(srv, &Method::POST, route.path, "agd_irrelevant").await;
    if status != StatusCode::PAYLOAD_TOO_LARGE {
        failures.push(format!(
            "POST {} with an oversized body: {status} {text}",
            route.path
        ));
    }
}

/// The role each route needs in the workspace it acts on, as issue 15 defines the roles
/// (owner: everything; admin: members, tokens, forge connections, agents, runtimes;
/// member: issues, comments, assigning agents, running tasks; viewer: read only) — this
/// test's own table, not the server's. `None`: the route is not decided by a workspace
/// role (see [`role_walk_fixed`]).
fn role_needed(method: &Method, path: &str) -> Option<&'static str> {
    if role_walk_fixed(method, path).is_some() {
        return None;
    }
    if *method == Method::GET
        && (path == "/api/v1/audit" || path == "/api/v1/workspaces/{ws}/invitations")
    {
        return Some("admin");
    }
    if *method == Method::GET {
        return Some("viewer");
    }
    Some(match (method.as_str(), path) {
        ("DELETE", "/api/v1/runtimes/{rt}")
        | ("POST", "/api/v1/workspaces/{ws}/agents")
        | ("PATCH", "/api/v1/agents/{agent}")
        | ("PUT", "/api/v1/workspaces/{ws}/forge")
        | ("DELETE", "/api/v1/workspaces/{ws}/forge")
        | ("PUT", "/api/v1/workspaces/{ws}/members/{user}")
        | ("DELETE", "/api/v1/workspaces/{ws}/members/{user}")
        | ("POST", "/api/v1/workspaces/{ws}/invitations")
        | ("DELETE", "/api/v1/invitations/{invitation}")
        | ("PUT", "/api/v1/workspaces/{ws}/settings")
        // The walk's body asks for a daemon token: machines are the admin's.
        | ("POST", "/api/v1/tokens") => "admin",
        ("POST", "/api/v1/signin-codes") => "viewer",
        _ => "member",
    })
}

/// Routes whose answer to a user's token does not depend on its role: the status every
/// role gets, own workspace or not.
fn role_walk_fixed(method: &Method, path: &str) -> Option<u16> {
    Some(match (method.as_str(), path) {
        // The daemon API takes daemon tokens only.
        (_, p) if p.starts_with("/api/daemon") || p == "/api/workspaces" => 403,
        // Server administration: the admin token or a server-admin user only.
        (_, "/api/v1/admin/rotate-token") | (_, "/api/v1/users") => 403,
        // Creating workspaces is a server setting (off here), not a workspace role.
        ("POST", "/api/v1/workspaces") => 403,
        // The fixture's token is not the user's: as if it did not exist.
        ("DELETE", "/api/v1/tokens/{token}") => 404,
        // Another user: as if it did not exist (a user may change only itself).
        ("PATCH", "/api/v1/users/{user}") => 404,
        // A token is not a session.
        ("GET", "/api/v1/session") => 401,
        ("DELETE", "/api/v1/session") => 400,
        // An unknown link, whoever asks.
        ("POST", "/api/v1/invitations/accept") => 404,
        _ => return None,
    })
}

const ROLES: [&str; 4] = ["viewer", "member", "admin", "owner"];

fn rank(role: &str) -> usize {
    ROLES.iter().position(|r| *r == role).expect("a role")
}

/// A request's status only (an event stream answers at once and never ends: its body is
/// not read).
async fn status_of(
    srv: &Srv,
    method: &Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, String) {
    let mut req = srv
        .http
        .request(method.clone(), format!("{}{path}", srv.url))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    if path.ends_with("/events") {
        return (status, String::new());
    }
    (status, resp.text().await.unwrap_or_default())
}

/// Issue 15's role walk: every route × every role (a user-owned token of an owner,
/// admin, member and viewer of workspace a) × {workspace a, workspace b}. A role below
/// what the route needs is 403 naming the role, another workspace's ids are 404, and
/// none of those refusals changes the store; a role at or above it passes the role
/// check (its answer is the route's own: 2xx, or 409/400 for the state a previous role
/// left). A viewer's board session is refused like its token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_role_and_refusals_change_nothing() {
    let srv = common::start().await;
    let fx_a = srv.fixture("a").await;
    let fx_b = srv.fixture("b").await;
    let mut a = ids_of(&srv, &fx_a, "issue of a").await;
    let b = ids_of(&srv, &fx_b, "issue of b").await;
    let (s, conn) = srv
        .req(
            Method::PUT,
            &srv.admin,
            &format!("/api/v1/workspaces/{}/forge", fx_a.ws),
            Some(json!({"kind": "github", "repo": "acme/walk", "token": "t"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{conn}");
    // One user per role in workspace a, each with a token of its own for a.
    let mut tokens = Vec::new();
    for role in ROLES {
        let email = format!("{role}@example.com");
        let (s, u) = srv
            .post(
                &srv.admin,
                "/api/v1/users",
                json!({"email": email, "password": "long enough"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{u}");
        let (s, m) = srv
            .req(
                Method::PUT,
                &srv.admin,
                &format!("/api/v1/workspaces/{}/members/{email}", fx_a.ws),
                Some(json!({"role": role})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{m}");
        let resp = srv
            .http
            .post(format!("{}/api/v1/session", srv.url))
            .json(&json!({"email": email, "password": "long enough"}))
            .send()
            .await
            .unwrap();
        let cookie = resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let session: Value = resp.json().await.unwrap();
        let csrf = session["csrf_token"].as_str().unwrap().to_string();
        let t: Value = srv
            .http
            .post(format!("{}/api/v1/tokens", srv.url))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .json(&json!({"name": role, "workspace_ids": [fx_a.ws]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = t["token"].as_str().expect("a token").to_string();
        let (_, me) = srv.get(&token, "/api/v1/me").await;
        assert_eq!(me["roles"][0]["role"], role, "{me}");
        tokens.push((role, token, cookie, csrf));
    }
    // `{user}` names another user than every walker: the fixture's.
    let (_, other) = srv
        .post(
            &srv.admin,
            "/api/v1/users",
            json!({"email": "other@example.com", "password": "long enough"}),
        )
        .await;
    a.user = other["id"].as_str().unwrap().to_string();
    let walked: Vec<Route> = routes()
        .into_iter()
        .filter(|r| {
            // No bearer token: walked by the bad-input walk and tests/accounts.rs.
            let no_bearer = matches!(
                kind_of(r.path.split('?').next().unwrap_or_default()),
                Kind::Webhook | Kind::Signin | Kind::Oidc
            );
            let password_signin = r.method == Method::POST && r.path == "/api/v1/session";
            !(no_bearer || password_signin)
        })
        .collect();

    // Phase 1: every refusal, then the store must be as it was.
    let before = snapshot(&srv).await;
    let mut failures = Vec::new();
    let mut checked = 0;
    for route in &walked {
        let path = route.path.split('?').next().unwrap_or_default();
        let fixed = role_walk_fixed(&route.method, path);
        let need = role_needed(&route.method, path);
        let has_ids = [
            "{ws}",
            "{rt}",
            "{agent}",
            "{issue}",
            "{task}",
            "{user}",
            "{invitation}",
        ]
        .iter()
        .any(|p| {
            route.path.contains(p)
                || route
                    .body
                    .as_ref()
                    .is_some_and(|b| b.to_string().contains(p))
        });
        for (role, token, _, _) in &tokens {
            let mut cases: Vec<(&str, &Ids, u16)> = Vec::new();
            match (fixed, need) {
                (Some(code), _) if code >= 400 => {
                    cases.push(("own workspace", &a, code));
                }
                (None, Some(n)) if rank(role) < rank(n) => {
                    cases.push(("own workspace", &a, 403));
                }
                _ => {}
            }
            if has_ids && fixed.is_none() {
                cases.push(("workspace b", &b, 404));
            }
            for (what, ids, want) in cases {
                checked += 1;
                let body = route.body.as_ref().map(|v| fill_json(v, ids));
                let (status, text) =
                    status_of(&srv, &route.method, &fill(route.path, ids), token, body).await;
                let says_role = want != 403
                    || fixed.is_some()
                    || text.contains(&format!("needs the {} role", need.unwrap_or("")));
                if status.as_u16() != want || !says_role {
                    failures.push(format!(
                        "{} {} as {role} in {what}: want {want}, got {status} {}",
                        route.method,
                        route.path,
                        text.chars().take(160).collect::<String>()
                    ));
                }
            }
        }
    }
    // A viewer's board session is refused like its token (with the CSRF token: the
    // refusal is the role's).
    let (_, _, cookie, csrf) = &tokens[0];
    let resp = srv
        .http
        .post(format!("{}/api/v1/workspaces/{}/issues", srv.url, a.ws))
        .header("cookie", cookie)
        .header("x-csrf-token", csrf)
        .json(&json!({"title": "from a viewer"}))
        .send()
        .await
        .unwrap();
    checked += 1;
    if resp.status() != StatusCode::FORBIDDEN {
        failures.push(format!(
            "a viewer's session created an issue: {}",
            resp.status()
        ));
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} role checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    pretty_assertions::assert_eq!(before, snapshot(&srv).await, "a refusal changed the store");

    // Phase 2: every role at or above what the route needs passes the role check. The
    // routes that remove things go last, so the others find what they act on.
    let destroys = |r: &Route| {
        r.method == Method::DELETE
            && (r.path.contains("{rt}")
                || r.path.ends_with("/forge")
                || r.path.contains("{invitation}"))
            || r.path.contains("/members/")
    };
    let mut ordered: Vec<&Route> = walked.iter().filter(|r| !destroys(r)).collect();
    ordered.extend(walked.iter().filter(|r| destroys(r)));
    for route in ordered {
        let path = route.path.split('?').next().unwrap_or_default();
        let Some(need) = role_needed(&route.method, path) else {
            continue;
        };
        // The strongest role first: a removal by a weaker one would remove the walker.
        for (role, token, _, _) in tokens.iter().rev() {
            if rank(role) < rank(need) {
                continue;
            }
            checked += 1;
            let body = route.body.as_ref().map(|v| fill_json(v, &a));
            let (status, text) =
                status_of(&srv, &route.method, &fill(route.path, &a), token, body).await;
            // A removal a stronger role already made; a task that reported no diff.
            let gone = (destroys(route) && status == StatusCode::NOT_FOUND)
                || (route.path.ends_with("/diff") && text.contains("no diff"));
            let ok = status.is_success() || matches!(status.as_u16(), 400 | 409) || gone;
            if !ok {
                failures.push(format!(
                    "{} {} as {role} (needs {need}): {status} {}",
                    route.method,
                    route.path,
                    text.chars().take(160).collect::<String>()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} role checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("role walk: {checked} checks over {} routes", walked.len());
}
