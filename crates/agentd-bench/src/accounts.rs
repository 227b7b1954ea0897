//! Accounts rows (issue 15), against the real `agentd server` on loopback:
//!
//! - Password sign-in: `POST /api/v1/session` with the right password, one at a time
//!   (argon2id verification on the server is most of it), after one warm-up.
//! - Session-cookie check overhead: the same read (`GET /api/v1/workspaces/{id}`) by a
//!   member token (served from the token cache after its first use) and by a session
//!   cookie of a user who is a member of the workspace (the session, its user and the
//!   user's roles read from the database on every request), interleaved one by one so
//!   both see the same load; the overhead is the difference of the p50s.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use crate::common::Stats;
use crate::server::Server;

pub struct Accounts {
    pub signin: Stats,
    pub token_read: Stats,
    pub cookie_read: Stats,
}

pub async fn run(signins: usize, reads: usize) -> anyhow::Result<Accounts> {
    let srv = Server::start().await?;
    let (ws, member, _daemon) = srv.workspace("accounts").await?;
    let (email, password) = ("bench@example.com", "bench password 1");
    srv.post(
        &srv.admin,
        "/api/v1/users",
        json!({"email": email, "password": password}),
    )
    .await?;
    srv.put(
        &srv.admin,
        &format!("/api/v1/workspaces/{ws}/members/{email}"),
        json!({"role": "member"}),
    )
    .await?;
    let http = reqwest::Client::new();
    let sign_in = || async {
        let resp = http
            .post(format!("{}/api/v1/session", srv.url))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await?;
        anyhow::ensure!(resp.status() == 201, "sign-in: {}", resp.status());
        let cookie = resp
            .headers()
            .get("set-cookie")
            .context("no session cookie")?
            .to_str()?
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        anyhow::Ok(cookie)
    };
    let cookie = sign_in().await?;
    let mut signin = Vec::with_capacity(signins);
    for _ in 0..signins {
        let t = Instant::now();
        sign_in().await?;
        signin.push(t.elapsed());
    }
    let path = format!("{}/api/v1/workspaces/{ws}", srv.url);
    let read = |cookie: Option<&str>| {
        let mut r = http.get(&path);
        r = match cookie {
            Some(c) => r.header("cookie", c),
            None => r.bearer_auth(&member),
        };
        async move {
            let t = Instant::now();
            let resp = r.send().await?;
            anyhow::ensure!(resp.status() == 200, "read: {}", resp.status());
            resp.bytes().await?;
            anyhow::Ok(t.elapsed())
        }
    };
    // Warm-up: connections open, the token cached.
    for _ in 0..50 {
        read(None).await?;
        read(Some(&cookie)).await?;
    }
    let (mut by_token, mut by_cookie) = (Vec::new(), Vec::new());
    for _ in 0..reads {
        by_token.push(read(None).await?);
        by_cookie.push(read(Some(&cookie)).await?);
    }
    Ok(Accounts {
        signin: Stats::of(signin),
        token_read: Stats::of(by_token),
        cookie_read: Stats::of(by_cookie),
    })
}

/// The p50 difference, cookie minus token (zero if the cookie was faster).
pub fn overhead(a: &Accounts) -> Duration {
    a.cookie_read.p50.saturating_sub(a.token_read.p50)
}
