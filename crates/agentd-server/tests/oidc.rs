//! OIDC single sign-on (issue 15 layer 7) against a real OpenID provider: npm
//! `oidc-provider` (scripts/install-oidc-provider.sh) started by `tests/oidc/provider.mjs`
//! on loopback. The code flow is driven over HTTP without a browser — the provider's
//! login and consent forms are submitted with its cookies — and the server's callback is
//! then called as the browser would (with the state cookie the login set), or from a
//! browser that did not start the sign-in (login CSRF), or with the state replayed,
//! unknown, expired or belonging to another sign-in, or with a tampered nonce: each of
//! those is 400 and makes no session; an email outside the allowed domains is 403. Skips (printed) without node
//! or the package.

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;

use common::{Db, Srv};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

const CLIENT_ID: &str = "agentd-test";
const CLIENT_SECRET: &str = "agentd-test-secret";

/// The provider process (killed on drop) and its issuer URL.
struct Idp {
    _child: tokio::process::Child,
    issuer: String,
}

fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Starts the provider for `redirect_uri`, or prints why it cannot and returns `None`.
async fn idp(redirect_uri: &str) -> Option<Idp> {
    let root = repo_root();
    let prefix = std::env::var("AGENTD_OIDC_PREFIX")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join(".cache/oidc-provider"));
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIP: node is not installed (the OIDC test provider runs on it)");
        return None;
    }
    if !prefix
        .join("node_modules/oidc-provider/package.json")
        .exists()
    {
        eprintln!(
            "SKIP: npm oidc-provider is not installed in {} (run scripts/install-oidc-provider.sh)",
            prefix.display()
        );
        return None;
    }
    let mut child = tokio::process::Command::new("node")
        .arg(root.join("tests/oidc/provider.mjs"))
        .arg(redirect_uri)
        .env("OIDC_PROVIDER_DIR", &prefix)
        .env("OIDC_CLIENT_ID", CLIENT_ID)
        .env("OIDC_CLIENT_SECRET", CLIENT_SECRET)
        .stdout(Stdio::piped())
        // Its notices are noise; OIDC_PROVIDER_LOG=1 shows them (and any crash).
        .stderr(if std::env::var_os("OIDC_PROVIDER_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .kill_on_drop(true)
        .spawn()
        .expect("spawn node");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .expect("the provider did not start within 30 s")
        .unwrap()
        .expect("the provider exited before listening");
    let v: Value = serde_json::from_str(&line).expect("provider's first line is JSON");
    Some(Idp {
        _child: child,
        issuer: v["issuer"].as_str().unwrap().to_string(),
    })
}

/// A server with OIDC configured against a fresh provider (email domains: example.com
/// and example.org), or `None` (skipped).
async fn start() -> Option<(Srv, Idp)> {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let idp = idp(&format!("{url}/api/v1/oidc/callback")).await?;
    let mut config = common::config(dir.path());
    config.oidc = Some(agentd_server::service::oidc::OidcConfig {
        issuer: idp.issuer.clone(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        allowed_domains: vec!["example.com".into(), "example.org".into()],
        display_name: "Test IdP".into(),
    });
    let admin = agentd_server::bootstrap_config(&config).await.unwrap();
    let shutdown = CancellationToken::new();
    let app = agentd_server::open(config, shutdown.clone()).await.unwrap();
    let handle = tokio::spawn(agentd_server::run(app.clone(), listener));
    let srv = Srv {
        app,
        url,
        admin,
        dir,
        shutdown,
        handle,
        http: reqwest::Client::new(),
    };
    Some((srv, idp))
}

/// A browser without JavaScript: no automatic redirects, a cookie jar by name.
struct Browser {
    http: reqwest::Client,
    jar: BTreeMap<String, String>,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, r: reqwest::RequestBuilder) -> reqwest::Response {
        let resp = r
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        for v in resp.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            if let Some((k, val)) = pair.split_once('=') {
                let expired = v.to_ascii_lowercase().contains("max-age=0")
                    || v.to_ascii_lowercase().contains("expires=thu, 01 jan 1970");
                if expired || val.is_empty() {
                    self.jar.remove(k.trim());
                } else {
                    self.jar.insert(k.trim().to_string(), val.to_string());
                }
            }
        }
        resp
    }
}

fn location(resp: &reqwest::Response, base: &str) -> String {
    let l = resp
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no location on a {}", resp.status()))
        .to_str()
        .unwrap();
    url::Url::parse(base).unwrap().join(l).unwrap().to_string()
}

fn unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#x2F;", "/")
        .replace("&#39;", "'")
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[at..].find('"')?;
    Some(unescape(&tag[at..at + end]))
}

/// The first form of a page: its action and its inputs (name → value).
fn form(html: &str) -> (String, Vec<(String, String)>) {
    let start = html.find("<form").expect("a form on the page");
    let end = html[start..].find("</form>").unwrap() + start;
    let f = &html[start..end];
    let open = &f[..f.find('>').unwrap()];
    let action = attr(open, "action").expect("form action");
    let mut inputs = Vec::new();
    for part in f.split("<input").skip(1) {
        let tag = &part[..part.find('>').unwrap_or(part.len())];
        if let Some(name) = attr(tag, "name") {
            inputs.push((name, attr(tag, "value").unwrap_or_default()));
        }
    }
    (action, inputs)
}

/// Starts a sign-in at the server and goes through the provider's login (as `login`)
/// and consent pages up to the redirect back: the callback URL the provider sent the
/// browser to (not followed) and the `Cookie` header that binds the sign-in to this
/// browser (the server's state cookie).
async fn through_provider(srv: &Srv, login: &str) -> (String, String) {
    let mut b = Browser::new();
    let resp = b
        .send(b.http.get(format!("{}/api/v1/oidc/login", srv.url)))
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    for attr in [
        "HttpOnly",
        "SameSite=Lax",
        "Path=/api/v1/oidc/callback",
        "Max-Age=600",
    ] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    let state_cookie = format!("agentd_oidc_state={}", b.jar["agentd_oidc_state"]);
    let mut next = location(&resp, &srv.url);
    assert!(next.contains("code_challenge_method=S256"), "{next}");
    assert!(next.contains("nonce="), "{next}");
    for _ in 0..20 {
        if next.starts_with(&format!("{}/", srv.url)) {
            assert_eq!(
                state_cookie,
                format!("agentd_oidc_state={}", param(&next, "state")),
                "the cookie holds the state"
            );
            return (next, state_cookie);
        }
        let resp = b.send(b.http.get(&next)).await;
        if resp.status().is_redirection() {
            next = location(&resp, &next);
            continue;
        }
        assert_eq!(resp.status(), StatusCode::OK, "GET {next}");
        let here = next.clone();
        let html = resp.text().await.unwrap();
        let (action, inputs) = form(&html);
        let fields: Vec<(String, String)> = inputs
            .into_iter()
            .map(|(k, v)| match k.as_str() {
                "login" => (k, login.to_string()),
                "password" => (k, "any password".to_string()),
                _ => (k, v),
            })
            .collect();
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let target = url::Url::parse(&here).unwrap().join(&action).unwrap();
        let resp = b
            .send(
                b.http
                    .post(target.as_str())
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body),
            )
            .await;
        assert!(
            resp.status().is_redirection(),
            "POST {target}: {}",
            resp.status()
        );
        next = location(&resp, target.as_str());
    }
    panic!("the provider never redirected back (last {next})");
}

/// Calls the server's callback as the browser would, with its `Cookie` header: status,
/// the session cookie set (if any), the redirect target and the body.
async fn callback(
    url: &str,
    cookie: Option<&str>,
) -> (StatusCode, Option<String>, Option<String>, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = http.get(url);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("agentd_session="));
    let to = resp
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    (status, cookie, to, resp.text().await.unwrap())
}

fn param(url: &str, name: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.to_string()
}

async fn sessions(db: &Db) -> i64 {
    db.count("SELECT COUNT(*) FROM sessions").await
}

async fn workspace(srv: &Srv, name: &str) -> String {
    let (s, ws) = srv
        .post(&srv.admin, "/api/v1/workspaces", json!({"name": name}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ws}");
    ws["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn oidc_sign_in_provisions_the_user_with_the_default_role_and_sets_the_session_cookie() {
    let Some((srv, _idp)) = start().await else {
        return;
    };
    // The board learns about the button without credentials.
    let resp = srv.get_anonymous("/api/v1/session/providers").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let p: Value = resp.json().await.unwrap();
    assert_eq!(
        p["oidc"],
        json!({"name": "Test IdP", "login_url": "/api/v1/oidc/login"})
    );

    let ws = workspace(&srv, "Team").await;
    let other = workspace(&srv, "Other").await;
    let (s, v) = srv
        .req(
            reqwest::Method::PUT,
            &srv.admin,
            &format!("/api/v1/workspaces/{ws}/settings"),
            Some(json!({"oidc_default_role": "member"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["oidc_default_role"], "member");
    let (s, v) = srv
        .req(
            reqwest::Method::PUT,
            &srv.admin,
            &format!("/api/v1/workspaces/{ws}/settings"),
            Some(json!({"oidc_default_role": "owner"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "owner is never a default: {v}");
    let (s, v) = srv
        .get(&srv.admin, &format!("/api/v1/workspaces/{ws}/settings"))
        .await;
    assert_eq!(
        (s, v["oidc_default_role"].clone()),
        (StatusCode::OK, json!("member"))
    );

    let db = Db::open(srv.dir.path()).await;
    let (back, ck) = through_provider(&srv, "ann@example.com").await;
    assert!(
        back.starts_with(&format!("{}/api/v1/oidc/callback?", srv.url)),
        "{back}"
    );
    let before = sessions(&db).await;
    // Login CSRF: the callback opened in a browser that did not start this sign-in (no
    // state cookie, or another sign-in's) is 400 — and does not use the sign-in up.
    let (s, cookie, _, body) = callback(&back, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("not started in this browser"), "{body}");
    assert!(cookie.is_none());
    let (s, _, _, body) = callback(&back, Some("agentd_oidc_state=another")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(sessions(&db).await, before);
    let t = std::time::Instant::now();
    let (s, cookie, to, body) = callback(&back, Some(&ck)).await;
    // Code redemption, ID token check and provisioning, with discovery and JWKS cached by
    // the login (a debug build; printed for docs, not asserted).
    eprintln!("oidc: first callback took {:?}", t.elapsed());
    assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(to.as_deref(), Some("/"), "to the board");
    let cookie = cookie.expect("a session cookie");
    assert!(cookie.starts_with("agentd_session="), "{cookie}");
    assert_eq!(sessions(&db).await, before + 1);

    // The cookie is a board session like a password sign-in's.
    let resp = srv
        .http
        .get(format!("{}/api/v1/session", srv.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let sess: Value = resp.json().await.unwrap();
    assert_eq!(sess["user"]["email"], "ann@example.com", "{sess}");
    assert_eq!(sess["user"]["name"], "ann", "{sess}");
    assert_eq!(sess["user"]["has_password"], false, "{sess}");
    let roles: Vec<(String, String)> = sess["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["workspace_id"].as_str().unwrap().to_string(),
                m["role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        vec![(ws.clone(), "member".to_string())],
        "not {other}"
    );

    // The state is single use: the same callback again is 400 and makes no session.
    let (s, cookie, _, body) = callback(&back, Some(&ck)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("already used"), "{body}");
    assert!(cookie.is_none());
    assert_eq!(sessions(&db).await, before + 1);

    // A second sign-in links to the same user (no second account, no second role).
    let (back, ck) = through_provider(&srv, "ann@example.com").await;
    let t = std::time::Instant::now();
    let (s, _, _, body) = callback(&back, Some(&ck)).await;
    eprintln!("oidc: a returning user's callback took {:?}", t.elapsed());
    assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM users WHERE email = 'ann@example.com'")
            .await,
        1
    );

    // Audited: the settings change, the provisioning, both sign-ins, the replay.
    let (s, audit) = srv.get(&srv.admin, "/api/v1/audit?limit=200").await;
    assert_eq!(s, StatusCode::OK, "{audit}");
    let entries = audit["entries"].as_array().unwrap();
    let count = |action: &str, method: Option<&str>| {
        entries
            .iter()
            .filter(|e| e["action"] == action && method.is_none_or(|m| e["detail"]["method"] == m))
            .count()
    };
    assert_eq!(count("workspace.settings", None), 1, "{audit}");
    assert_eq!(count("user.create", None), 1, "{audit}");
    assert_eq!(count("member.add", None), 1, "{audit}");
    assert_eq!(count("signin", Some("oidc")), 2, "{audit}");
    assert_eq!(count("signin.failed", Some("oidc")), 3, "{audit}");
    srv.stop().await;
}

#[tokio::test]
async fn bad_unknown_expired_or_swapped_state_and_a_wrong_nonce_are_400_with_no_session() {
    let Some((srv, _idp)) = start().await else {
        return;
    };
    let db = Db::open(srv.dir.path()).await;
    let before = sessions(&db).await;
    let refused = |what: &'static str| {
        move |(s, cookie, _, body): (StatusCode, Option<String>, Option<String>, String)| {
            assert_eq!(s, StatusCode::BAD_REQUEST, "{what}: {body}");
            assert!(cookie.is_none(), "{what}: a cookie was set");
            body
        }
    };

    // No state, an unknown state.
    refused("no state")(callback(&format!("{}/api/v1/oidc/callback?code=x", srv.url), None).await);
    let (back, _) = through_provider(&srv, "bob@example.com").await;
    let body = refused("unknown state")(
        callback(
            &with_param(&back, "state", "bogus"),
            Some("agentd_oidc_state=bogus"),
        )
        .await,
    );
    assert!(body.contains("unknown"), "{body}");

    // Two sign-ins with their codes and states swapped: the code was issued for the
    // other sign-in's nonce and PKCE challenge.
    let (a, _) = through_provider(&srv, "bob@example.com").await;
    let (b, b_ck) = through_provider(&srv, "bob@example.com").await;
    refused("swapped state")(
        callback(&with_param(&a, "state", &param(&b, "state")), Some(&b_ck)).await,
    );

    // A sign-in whose stored nonce is not the one the ID token carries (the PKCE
    // verifier still fits, so the code is redeemed and the nonce check is what refuses).
    let (c, c_ck) = through_provider(&srv, "bob@example.com").await;
    let hash = agentd_server::auth::hash_token(&param(&c, "state"));
    let mut row = srv.app.store.take_oidc_login(hash).await.unwrap().unwrap();
    row.nonce = "not-the-nonce-sent".into();
    srv.app.store.put_oidc_login(row).await.unwrap();
    let body = refused("wrong nonce")(callback(&c, Some(&c_ck)).await);
    assert!(body.contains("nonce"), "{body}");

    // A sign-in that comes back after the 10 minutes.
    let (d, d_ck) = through_provider(&srv, "bob@example.com").await;
    srv.advance(agentd_server::service::oidc::LOGIN_TTL_MS + 1000);
    let body = refused("expired")(callback(&d, Some(&d_ck)).await);
    assert!(body.contains("expired"), "{body}");

    assert_eq!(sessions(&db).await, before, "no session was made");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM users WHERE email = 'bob@example.com'")
            .await,
        0,
        "and no user"
    );
    let (_, audit) = srv
        .get(&srv.admin, "/api/v1/audit?action=signin.failed&limit=100")
        .await;
    let n = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["detail"]["method"] == "oidc")
        .count();
    assert_eq!(n, 5, "each refusal is a failed sign-in: {audit}");
    srv.stop().await;
}

#[tokio::test]
async fn an_email_outside_the_allowed_domains_or_unverified_is_403_with_no_session() {
    let Some((srv, _idp)) = start().await else {
        return;
    };
    let db = Db::open(srv.dir.path()).await;
    let before = sessions(&db).await;
    let (back, ck) = through_provider(&srv, "eve@evil.test").await;
    let (s, cookie, _, body) = callback(&back, Some(&ck)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("evil.test"), "{body}");
    assert!(cookie.is_none());

    let (back, ck) = through_provider(&srv, "unverified-carl").await;
    let (s, cookie, _, body) = callback(&back, Some(&ck)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("not verified"), "{body}");
    assert!(cookie.is_none());

    assert_eq!(sessions(&db).await, before);
    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM users WHERE email LIKE 'eve@%' OR email LIKE 'unverified-%'"
        )
        .await,
        0
    );
    let (_, audit) = srv
        .get(&srv.admin, "/api/v1/audit?action=signin.failed&limit=100")
        .await;
    let targets: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert!(targets.contains(&"eve@evil.test"), "{audit}");
    srv.stop().await;
}

#[tokio::test]
async fn without_oidc_configured_the_routes_are_404_and_no_button_is_offered() {
    let srv = common::start().await;
    let resp = srv.get_anonymous("/api/v1/session/providers").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["oidc"], Value::Null);
    let resp = srv.get_anonymous("/api/v1/oidc/login").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    srv.stop().await;
}
