//! Token kinds and lifecycle (issue 11, part 4) and write-only `custom_env` (part 3), over
//! real HTTP: expiry (on the server's shiftable clock), `last_used_at`, listing and
//! revoking, admin rotation (and a lost admin-token file), runtime ownership and takeover,
//! the server settings, and masking; one-time board sign-in codes (issue 16). The
//! route-by-route refusals are walked in `bad_input_walk.rs`.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use pretty_assertions::assert_eq;
use reqwest::StatusCode;
use serde_json::{Value, json};

const MINUTE_MS: i64 = 60_000;

async fn minting() -> Srv {
    start_in(tempfile::tempdir().unwrap(), |c| {
        c.members_can_mint_tokens = true;
        c.members_can_create_workspaces = true;
    })
    .await
}

/// The caller's view of one token in `GET /api/v1/tokens`.
async fn listed(srv: &Srv, by: &str, id: &str) -> Option<Value> {
    let (s, list) = srv.get(by, "/api/v1/tokens").await;
    assert_eq!(s, StatusCode::OK, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .cloned()
}

async fn create(srv: &Srv, by: &str, body: Value) -> Value {
    let (s, v) = srv.post(by, "/api/v1/tokens", body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

#[tokio::test]
async fn an_expired_token_is_401_token_expired_and_no_token_outlives_its_creator() {
    let srv = minting().await;
    let fx = srv.fixture("w").await;
    let short = create(
        &srv,
        &srv.admin,
        json!({"kind": "member", "workspace_ids": [fx.ws], "expires_in_secs": 60}),
    )
    .await;
    let short_token = short["token"].as_str().unwrap();
    assert!(short["expires_at"].is_string(), "{short}");
    // A token it mints asking for a day gets its creator's minute.
    let child = create(
        &srv,
        short_token,
        json!({"kind": "daemon", "workspace_ids": [fx.ws], "expires_in_secs": 86_400}),
    )
    .await;
    assert_eq!(child["expires_at"], short["expires_at"], "{child}");
    assert_eq!(child["kind"], "daemon");
    let child_token = child["token"].as_str().unwrap();
    assert_eq!(
        srv.get(short_token, "/api/v1/workspaces").await.0,
        StatusCode::OK
    );
    assert_eq!(
        srv.get(child_token, "/api/workspaces").await.0,
        StatusCode::OK
    );

    srv.advance(MINUTE_MS + 1);
    for (token, path) in [
        (short_token, "/api/v1/workspaces"),
        (child_token, "/api/workspaces"),
    ] {
        let (s, v) = srv.get(token, path).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
        assert_eq!(v["error"], "token expired");
    }
    // Tokens without an expiry are untouched by time.
    assert_eq!(
        srv.get(&fx.token, "/api/v1/workspaces").await.0,
        StatusCode::OK
    );
    for bad in [json!(0), json!(-1), json!("soon")] {
        let (s, v) = srv
            .post(
                &srv.admin,
                "/api/v1/tokens",
                json!({"workspace_ids": [fx.ws], "expires_in_secs": bad}),
            )
            .await;
        assert!(s.is_client_error(), "{bad}: {s} {v}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn last_used_at_is_recorded_at_most_once_a_minute_and_never_for_a_refused_token() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let t = create(
        &srv,
        &srv.admin,
        json!({"kind": "daemon", "workspace_ids": [fx.ws]}),
    )
    .await;
    let (id, token) = (t["id"].as_str().unwrap(), t["token"].as_str().unwrap());
    let seen = |v: &Value| v["last_used_at"].clone();
    assert_eq!(
        seen(&listed(&srv, &srv.admin, id).await.unwrap()),
        Value::Null
    );

    assert_eq!(srv.get(token, "/api/workspaces").await.0, StatusCode::OK);
    let first = seen(&listed(&srv, &srv.admin, id).await.unwrap());
    assert!(first.is_string(), "recorded on first use");
    srv.advance(MINUTE_MS / 2);
    assert_eq!(srv.get(token, "/api/workspaces").await.0, StatusCode::OK);
    assert_eq!(
        seen(&listed(&srv, &srv.admin, id).await.unwrap()),
        first,
        "not rewritten within the minute"
    );
    srv.advance(MINUTE_MS);
    assert_eq!(srv.get(token, "/api/workspaces").await.0, StatusCode::OK);
    let second = seen(&listed(&srv, &srv.admin, id).await.unwrap());
    assert_ne!(second, first, "rewritten after a minute");

    let (s, _) = srv
        .delete(&srv.admin, &format!("/api/v1/tokens/{id}"))
        .await;
    assert_eq!(s, StatusCode::OK);
    srv.advance(2 * MINUTE_MS);
    let (s, v) = srv.get(token, "/api/workspaces").await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("token revoked"))
    );
    assert_eq!(
        seen(&listed(&srv, &srv.admin, id).await.unwrap()),
        second,
        "a refused use is not a use"
    );
    srv.stop().await;
}

#[tokio::test]
async fn members_list_and_revoke_themselves_and_what_they_created_never_seeing_a_secret() {
    let srv = minting().await;
    let fx = srv.fixture("w").await;
    let other = srv.fixture("other").await;
    let mine = create(
        &srv,
        &fx.token,
        json!({"name": "laptop", "kind": "daemon", "workspace_ids": [fx.ws]}),
    )
    .await;
    let mine_id = mine["id"].as_str().unwrap();
    let mine_token = mine["token"].as_str().unwrap();

    let (s, list) = srv.get(&fx.token, "/api/v1/tokens").await;
    assert_eq!(s, StatusCode::OK);
    let list = list.as_array().unwrap();
    let names: Vec<(&str, &str, bool)> = list
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap(),
                t["kind"].as_str().unwrap(),
                t["current"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![("member", "member", true), ("laptop", "daemon", false)]
    );
    assert!(
        list.iter().all(|t| t.get("token").is_none()),
        "no secret in a listing: {list:?}"
    );
    assert_eq!(list[1]["workspace_ids"], json!([fx.ws]));
    // The admin sees every token, its own included.
    let (_, all) = srv.get(&srv.admin, "/api/v1/tokens").await;
    let kinds: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "admin").count(), 1, "{all}");
    assert_eq!(kinds.len(), 1 + 2 + 2 + 1, "{all}");

    // Another member's tokens, and the daemon token the admin minted for this workspace,
    // are not this member's to see or revoke.
    let (_, other_list) = srv.get(&other.token, "/api/v1/tokens").await;
    let other_id = other_list[0]["id"].as_str().unwrap().to_string();
    let (s, v) = srv
        .delete(&fx.token, &format!("/api/v1/tokens/{other_id}"))
        .await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::NOT_FOUND, json!("token not found"))
    );

    // Revoking: idempotent, shown in the listing, and the token is dead at once.
    for _ in 0..2 {
        let (s, v) = srv
            .delete(&fx.token, &format!("/api/v1/tokens/{mine_id}"))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert!(v["revoked_at"].is_string(), "{v}");
    }
    let (s, v) = srv.get(mine_token, "/api/workspaces").await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("token revoked"))
    );
    // The admin token is rotated, not revoked.
    let admin_id = all
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, v) = srv
        .delete(&srv.admin, &format!("/api/v1/tokens/{admin_id}"))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["error"].as_str().unwrap().contains("rotate"), "{v}");
    // A member may revoke itself.
    let (_, list) = srv.get(&fx.token, "/api/v1/tokens").await;
    let self_id = list[0]["id"].as_str().unwrap().to_string();
    let (s, _) = srv
        .delete(&fx.token, &format!("/api/v1/tokens/{self_id}"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        srv.get(&fx.token, "/api/v1/workspaces").await.0,
        StatusCode::UNAUTHORIZED
    );
    srv.stop().await;
}

#[tokio::test]
async fn rotating_the_admin_token_kills_the_old_one_and_rewrites_the_file() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let old = srv.admin.clone();
    let (s, v) = srv
        .post(&fx.token, "/api/v1/admin/rotate-token", json!({}))
        .await;
    assert_eq!(
        (s, v["error"].clone()),
        (
            StatusCode::FORBIDDEN,
            json!("only the admin token or a server admin may do this")
        )
    );

    let (s, v) = srv
        .post(&old, "/api/v1/admin/rotate-token", json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["kind"], "admin");
    let new = v["token"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    let (s, v) = srv.get(&old, "/api/v1/workspaces").await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("token revoked"))
    );
    assert_eq!(srv.get(&new, "/api/v1/workspaces").await.0, StatusCode::OK);
    let file = agentd_server::admin_token_path(srv.dir.path());
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), new);
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Tokens the old admin created live on.
    assert_eq!(
        srv.get(&fx.token, "/api/v1/workspaces").await.0,
        StatusCode::OK
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_lost_admin_token_file_mints_a_new_admin_token_and_revokes_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let first = common::bootstrap(dir.path()).await;
    assert_eq!(
        common::bootstrap(dir.path()).await,
        first,
        "a restart reuses the token in the file"
    );
    std::fs::remove_file(agentd_server::admin_token_path(dir.path())).unwrap();
    let srv = start_in(dir, |_| {}).await;
    assert_ne!(srv.admin, first);
    let (s, v) = srv.get(&first, "/api/v1/workspaces").await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("token revoked"))
    );
    assert_eq!(
        srv.get(&srv.admin, "/api/v1/workspaces").await.0,
        StatusCode::OK
    );
    let (_, all) = srv.get(&srv.admin, "/api/v1/tokens").await;
    let live_admins = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "admin" && t["revoked_at"].is_null())
        .count();
    assert_eq!(live_admins, 1, "{all}");
    srv.stop().await;
}

#[tokio::test]
async fn a_new_daemon_token_takes_over_a_runtime_only_from_a_revoked_or_expired_owner() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    srv.assigned_issue(&fx, "in flight").await;
    let tid = srv.claim_and_start(&fx).await;
    let register = |token: String| {
        let srv = &srv;
        let ws = fx.ws.clone();
        async move {
            srv.post(
                &token,
                "/api/daemon/register",
                json!({"workspace_id": ws, "daemon_id": "d1",
                       "runtimes": [{"type": "claude", "name": "claude (box)"}]}),
            )
            .await
        }
    };
    let new = srv.mint("daemon", &fx.ws).await;
    let (s, v) = register(new.clone()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["error"].as_str().unwrap().contains("revoke"), "{v}");
    // Nothing moved: the old owner still runs its runtime, the new token has none.
    let hb = json!({"runtime_id": fx.runtime});
    assert_eq!(
        srv.post(&fx.daemon, "/api/daemon/heartbeat", hb.clone())
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        srv.post(&new, "/api/daemon/heartbeat", hb.clone()).await.0,
        StatusCode::NOT_FOUND
    );

    // The machine's old token is revoked: the new one takes the runtime over, same id,
    // with the task it had claimed.
    let old_id = &fx.daemon_token_id;
    let (s, _) = srv
        .delete(&srv.admin, &format!("/api/v1/tokens/{old_id}"))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = register(new.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["runtimes"][0]["id"], fx.runtime.as_str());
    // The claim moved with it: the new token's heartbeats keep the task's lease alive.
    for _ in 0..3 {
        srv.advance(srv.lease_ms() / 2 + 1);
        srv.heartbeat(&new, &fx.runtime, Some(&[&tid])).await;
        srv.sweep().await;
    }
    assert_eq!(srv.task(&srv.admin, &tid).await["status"], "running");
    let (s, v) = srv
        .post(
            &new,
            &format!("/api/daemon/tasks/{tid}/complete"),
            json!({"output": "done"}),
        )
        .await;
    assert_eq!(
        (s, v["task_status"].clone()),
        (StatusCode::OK, json!("completed")),
        "{v}"
    );

    // An expired owner is gone too: a third token takes over from the second.
    let third = srv.mint("daemon", &fx.ws).await;
    assert_eq!(register(third.clone()).await.0, StatusCode::CONFLICT);
    let short = create(
        &srv,
        &srv.admin,
        json!({"kind": "daemon", "workspace_ids": [fx.ws], "expires_in_secs": 60}),
    )
    .await;
    let short = short["token"].as_str().unwrap().to_string();
    let (_, v) = srv
        .post(
            &short,
            "/api/daemon/register",
            json!({"workspace_id": fx.ws, "daemon_id": "d9",
              "runtimes": [{"type": "codex"}]}),
        )
        .await;
    let rt9 = v["runtimes"][0]["id"].as_str().unwrap().to_string();
    srv.advance(MINUTE_MS + 1);
    let (s, v) = srv
        .post(
            &third,
            "/api/daemon/register",
            json!({"workspace_id": fx.ws, "daemon_id": "d9",
              "runtimes": [{"type": "codex"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["runtimes"][0]["id"], rt9.as_str());
    srv.stop().await;
}

#[tokio::test]
async fn a_daemon_token_keeps_reporting_its_claimed_task_after_its_runtime_is_deleted() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    srv.assigned_issue(&fx, "long run").await;
    let tid = srv.claim_and_start(&fx).await;
    let (s, _) = srv
        .delete(&fx.token, &format!("/api/v1/runtimes/{}", fx.runtime))
        .await;
    assert_eq!(s, StatusCode::OK);
    // Another daemon token of the workspace still cannot touch it.
    let other = srv.mint("daemon", &fx.ws).await;
    let (s, v) = srv
        .post(
            &other,
            &format!("/api/daemon/tasks/{tid}/complete"),
            json!({"output": "x"}),
        )
        .await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::NOT_FOUND, json!("task not found"))
    );
    // The daemon that claimed it heals (new runtime id) and reports by task id.
    let reg = srv.register(&fx.daemon, &fx.ws, "d1", &["claude"]).await;
    assert_ne!(reg["runtimes"][0]["id"], fx.runtime.as_str());
    let (s, v) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{tid}/complete"),
            json!({"output": "ok"}),
        )
        .await;
    assert_eq!(
        (s, v["task_status"].clone()),
        (StatusCode::OK, json!("completed")),
        "{v}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn server_settings_decide_whether_members_mint_tokens_and_create_workspaces() {
    // Defaults: the admin hands out workspaces and tokens.
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let (s, v) = srv
        .post(
            &fx.token,
            "/api/v1/tokens",
            json!({"kind": "daemon", "workspace_ids": [fx.ws]}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("--members-can-mint-tokens"),
        "{v}"
    );
    let (s, v) = srv
        .post(&fx.token, "/api/v1/workspaces", json!({"name": "mine"}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("--members-can-create-workspaces"),
        "{v}"
    );
    // Listing and revoking its own tokens stay open.
    assert_eq!(srv.get(&fx.token, "/api/v1/tokens").await.0, StatusCode::OK);
    srv.stop().await;

    let srv = minting().await;
    let fx = srv.fixture("w").await;
    let (s, ws) = srv
        .post(&fx.token, "/api/v1/workspaces", json!({"name": "mine"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ws}");
    let wid = ws["id"].as_str().unwrap();
    // Granted the new workspace, so it may mint a daemon token for it.
    let t = create(
        &srv,
        &fx.token,
        json!({"kind": "daemon", "workspace_ids": [wid, wid]}),
    )
    .await;
    assert_eq!(t["workspace_ids"], json!([wid]), "duplicates collapse");
    // Never an admin token.
    let (s, _) = srv
        .post(
            &fx.token,
            "/api/v1/tokens",
            json!({"kind": "admin", "workspace_ids": [wid]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    srv.stop().await;
}

#[tokio::test]
async fn custom_env_values_are_write_only_except_to_the_daemon_that_runs_the_agent() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let (s, a) = srv
        .post(
            &fx.token,
            &format!("/api/v1/workspaces/{}/agents", fx.ws),
            json!({"name": "env", "runtime_id": fx.runtime,
                   "custom_env": {"API_KEY": "s3cret", "MODE": "fast"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let masked = json!({"API_KEY": "••••", "MODE": "••••"});
    assert_eq!(a["custom_env"], masked);
    let aid = a["id"].as_str().unwrap().to_string();
    let (_, shown) = srv.get(&fx.token, &format!("/api/v1/agents/{aid}")).await;
    assert_eq!(shown["custom_env"], masked);
    let (_, list) = srv
        .get(&fx.token, &format!("/api/v1/workspaces/{}/agents", fx.ws))
        .await;
    assert!(!list.to_string().contains("s3cret"), "{list}");

    // Sending the mask back keeps a value; a new value replaces it; a dropped key goes.
    let (s, v) = srv
        .patch(
            &fx.token,
            &format!("/api/v1/agents/{aid}"),
            json!({"custom_env": {"API_KEY": "••••", "MODE": "slow"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["custom_env"], masked);
    let (s, v) = srv
        .patch(
            &fx.token,
            &format!("/api/v1/agents/{aid}"),
            json!({"custom_env": {"NEW": "••••"}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    // The daemon gets the real values with the claim.
    let (s, issue) = srv
        .post(
            &fx.token,
            &format!("/api/v1/workspaces/{}/issues", fx.ws),
            json!({"title": "t", "assignee_agent_id": aid}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{issue}");
    let task = srv.claim(&fx, None).await;
    assert_eq!(
        task["agent"]["custom_env"],
        json!({"API_KEY": "s3cret", "MODE": "slow"})
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_daemon_token_sees_only_its_workspaces_on_the_daemon_api() {
    let srv = start().await;
    let a = srv.fixture("a").await;
    let _b = srv.fixture("b").await;
    let (s, list) = srv.get(&a.daemon, "/api/workspaces").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], a.ws.as_str());
    let (s, v) = srv.get(&a.daemon, "/api/v1/me").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = srv.get(&a.token, "/api/workspaces").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("agentd token create --daemon"),
        "{v}"
    );
    srv.stop().await;
}

/// `POST /api/v1/signin` with no bearer token.
async fn exchange(srv: &Srv, code: &str) -> (StatusCode, Value) {
    let resp = srv
        .http
        .post(format!("{}/api/v1/signin", srv.url))
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn signin_code(srv: &Srv, token: &str) -> Value {
    let (s, code) = srv.post(token, "/api/v1/signin-codes", json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{code}");
    code
}

#[tokio::test]
async fn a_signin_code_is_exchanged_once_for_a_board_session_of_the_makers_workspaces() {
    let srv = start().await;
    let a = srv.fixture("a").await;
    let b = srv.fixture("b").await;
    let made = signin_code(&srv, &a.token).await;
    let code = made["code"].as_str().unwrap().to_string();
    assert!(
        code.starts_with("asc_")
            && code.len() == 36
            && code[4..].chars().all(|c| c.is_ascii_hexdigit()),
        "{made}"
    );
    assert_eq!(
        made["url"],
        format!("{}/#/signin/{code}", srv.url),
        "the code is in the fragment"
    );
    let expires: jiff::Timestamp = made["expires_at"].as_str().unwrap().parse().unwrap();
    let ttl = expires.as_millisecond() - srv.app.now();
    assert!((590_000..=600_000).contains(&ttl), "ten minutes: {ttl}");
    // Only the code's hash is stored.
    let stored = common::Db::open(srv.dir.path())
        .await
        .strings("SELECT code_hash FROM signin_codes")
        .await;
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], code);

    let (s, session) = exchange(&srv, &code).await;
    assert_eq!(s, StatusCode::CREATED, "{session}");
    assert_eq!(session["name"], "board session");
    assert_eq!(session["kind"], "member");
    assert_eq!(session["workspace_ids"], json!([a.ws]));
    let expires: jiff::Timestamp = session["expires_at"].as_str().unwrap().parse().unwrap();
    let days = (expires.as_millisecond() - srv.app.now()) / (24 * 3_600_000);
    assert_eq!(days, 29, "30 days (less the moments since): {session}");
    // The new token works on the user API, as a member of a's workspace only.
    let token = session["token"].as_str().unwrap();
    let (s, me) = srv.get(token, "/api/v1/me").await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["name"], "board session");
    let (s, v) = srv
        .get(token, &format!("/api/v1/workspaces/{}/agents", a.ws))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = srv
        .get(token, &format!("/api/v1/workspaces/{}/agents", b.ws))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Its maker is recorded.
    let listed = listed(&srv, &a.token, session["id"].as_str().unwrap()).await;
    assert!(listed.is_some(), "the maker sees the session it made");

    // Used, unknown or empty: the same 401.
    for c in [
        code.as_str(),
        "asc_00000000000000000000000000000000",
        "",
        "agd_notacode",
    ] {
        let (s, v) = exchange(&srv, c).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{c:?}: {v}");
        assert_eq!(v["error"], "sign-in code is invalid or expired");
    }
}

#[tokio::test]
async fn a_signin_code_expires_dies_with_its_maker_and_is_exchanged_once_under_a_race() {
    let srv = start().await;
    let a = srv.fixture("a").await;
    // Expired after ten minutes.
    let code = signin_code(&srv, &a.token).await["code"]
        .as_str()
        .unwrap()
        .to_string();
    srv.advance(600_001);
    let (s, v) = exchange(&srv, &code).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");

    // A maker revoked since: refused.
    let (maker_id, maker) = srv.mint_with_id("member", &a.ws).await;
    let code = signin_code(&srv, &maker).await["code"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, v) = srv
        .delete(&srv.admin, &format!("/api/v1/tokens/{maker_id}"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = exchange(&srv, &code).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");

    // A maker that expires in an hour: the session expires with it.
    let (s, short) = srv
        .post(
            &srv.admin,
            "/api/v1/tokens",
            json!({"name": "short", "workspace_ids": [a.ws], "expires_in_secs": 3600}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{short}");
    let code = signin_code(&srv, short["token"].as_str().unwrap()).await["code"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, session) = exchange(&srv, &code).await;
    assert_eq!(s, StatusCode::CREATED, "{session}");
    assert_eq!(session["expires_at"], short["expires_at"]);

    // Eight exchanges of one code at once: one token.
    let code = signin_code(&srv, &a.token).await["code"]
        .as_str()
        .unwrap()
        .to_string();
    let answers = futures_util::future::join_all((0..8).map(|_| exchange(&srv, &code))).await;
    let won = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(won, 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|(s, _)| *s == StatusCode::CREATED || *s == StatusCode::UNAUTHORIZED),
        "{answers:?}"
    );

    // The admin's code: a session of every workspace existing now.
    let b = srv.fixture("b").await;
    let code = signin_code(&srv, &srv.admin).await["code"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, session) = exchange(&srv, &code).await;
    assert_eq!(s, StatusCode::CREATED, "{session}");
    let mut got: Vec<String> = serde_json::from_value(session["workspace_ids"].clone()).unwrap();
    got.sort();
    let mut want = vec![a.ws.clone(), b.ws.clone()];
    want.sort();
    assert_eq!(got, want);

    // Task and daemon tokens may not make codes.
    let (s, v) = srv.post(&a.daemon, "/api/v1/signin-codes", json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    srv.assigned_issue(&a, "t").await;
    let task_token = srv.claim(&a, None).await["task_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, v) = srv
        .post(&task_token, "/api/v1/signin-codes", json!({}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_once_even_when_cached() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let hb = json!({"runtime_id": fx.runtime});
    // Both tokens are in the instance's cache (the clock does not move: never stale).
    for _ in 0..3 {
        let (s, v) = srv
            .post(&fx.daemon, "/api/daemon/heartbeat", hb.clone())
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(
            srv.get(&fx.token, "/api/v1/workspaces").await.0,
            StatusCode::OK
        );
    }
    let (s, _) = srv
        .delete(
            &srv.admin,
            &format!("/api/v1/tokens/{}", fx.daemon_token_id),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = srv.post(&fx.daemon, "/api/daemon/heartbeat", hb).await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("token revoked"))
    );
    // A member revoking itself: its very next call is refused.
    let me = srv.get(&fx.token, "/api/v1/tokens").await.1;
    let id = me
        .as_array()
        .into_iter()
        .flatten()
        .chain(me["tokens"].as_array().into_iter().flatten())
        .find(|t| t["kind"] == "member")
        .and_then(|t| t["id"].as_str())
        .map(str::to_string)
        .expect("the member lists itself");
    assert_eq!(
        srv.delete(&fx.token, &format!("/api/v1/tokens/{id}"))
            .await
            .0,
        StatusCode::OK
    );
    let (s, v) = srv.get(&fx.token, "/api/v1/workspaces").await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("token revoked"))
    );
    // The old admin token, cached, dies with its rotation.
    let (s, v) = srv
        .post(&srv.admin, "/api/v1/admin/rotate-token", json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = srv.get(&srv.admin, "/api/v1/workspaces").await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("token revoked"))
    );
    srv.stop().await;
}
