//! Issue 12, "The work reaches the team": forge connections, pull requests opened for
//! pushed branches, webhooks and polling that track them, the review loop, and pushes
//! reported later. The real server on port 0 against the testkit's fake GitHub / Gitea.

mod common;

use std::time::Duration;

use agentd_testkit::fake_forge::{Delivery, FakeForge, Flavor};
use common::{Fx, Srv, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

const REPO: &str = "acme/widgets";
const FORGE_TOKEN: &str = "ghp_fake_forge_token_0123456789";
const BRANCH: &str = "agentd/fix-the-widget";
const WITHIN: Duration = Duration::from_secs(10);

async fn server() -> Srv {
    // The fake forge speaks plain http on loopback.
    common::start_in(tempfile::tempdir().unwrap(), |c| c.allow_local_repos = true).await
}

async fn forge() -> FakeForge {
    let f = FakeForge::start(FORGE_TOKEN).await;
    f.add_repo(REPO, "main");
    f
}

/// Connects the fixture's workspace; returns the webhook secret.
async fn connect(srv: &Srv, fx: &Fx, flavor: Flavor, f: &FakeForge, token: &str) -> String {
    let (kind, api) = match flavor {
        Flavor::Github => ("github", f.url.clone()),
        Flavor::Gitea => ("gitea", f.gitea_api()),
    };
    let (s, v) = srv
        .req(
            reqwest::Method::PUT,
            &fx.token,
            &format!("/api/v1/workspaces/{}/forge", fx.ws),
            Some(json!({"kind": kind, "repo": REPO, "token": token, "api_url": api})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["webhook_secret"]
        .as_str()
        .expect("a new secret")
        .to_string()
}

/// An issue whose task ran and completed with `pushed` (the branch at `sha`); returns
/// (issue id, task id).
async fn completed_with_push(srv: &Srv, fx: &Fx, f: &FakeForge, sha: &str) -> (String, String) {
    let issue = srv.assigned_issue(fx, "Fix the widget").await;
    let task = srv.claim_and_start(fx).await;
    complete_pushed(srv, fx, f, &task, sha).await;
    (issue, task)
}

async fn complete_pushed(srv: &Srv, fx: &Fx, f: &FakeForge, task: &str, sha: &str) {
    f.push_branch(REPO, BRANCH, sha);
    let (s, v) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{task}/session"),
            json!({"session_id": "sess-1", "work_dir": "/w/1"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{task}/complete"),
            json!({"output": "I fixed the widget.", "branch_name": BRANCH,
                   "pushed": {"remote_url": "https://github.com/acme/widgets.git",
                              "branch": BRANCH, "commit": sha}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["task_status"], "completed", "{v}");
}

async fn detail(srv: &Srv, fx: &Fx, issue: &str) -> Value {
    let (s, v) = srv.get(&fx.token, &format!("/api/v1/issues/{issue}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

/// Waits until the issue shows a pull request.
async fn pr_of(srv: &Srv, fx: &Fx, issue: &str) -> Value {
    eventually(WITHIN, || async {
        let d = detail(srv, fx, issue).await;
        (!d["issue"]["pr"].is_null()).then(|| d["issue"]["pr"].clone())
    })
    .await
}

/// Waits until a comment containing `needle` is on the issue; returns it.
async fn comment_with(srv: &Srv, fx: &Fx, issue: &str, needle: &str) -> Value {
    eventually(WITHIN, || async {
        let d = detail(srv, fx, issue).await;
        d["comments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["body"].as_str().unwrap_or_default().contains(needle))
            .cloned()
    })
    .await
}

async fn deliver(srv: &Srv, kind: &str, d: &Delivery) -> (StatusCode, Value) {
    let mut r = srv
        .http
        .post(format!("{}/api/v1/forge/webhooks/{kind}", srv.url))
        .body(d.body.clone());
    for (k, v) in &d.headers {
        r = r.header(k, v);
    }
    let resp = r.send().await.unwrap();
    let s = resp.status();
    (s, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forge_connection_is_set_shown_and_removed_and_its_token_never_returned() {
    let srv = server().await;
    let fx = srv.fixture("w").await;
    let other = srv.fixture("other").await;
    let path = format!("/api/v1/workspaces/{}/forge", fx.ws);
    let (s, v) = srv.get(&fx.token, &path).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("forge not connected"))
    );

    let (s, set) = srv
        .req(
            reqwest::Method::PUT,
            &fx.token,
            &path,
            Some(json!({"kind": "github", "repo": REPO, "token": FORGE_TOKEN})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{set}");
    assert_eq!(
        set["api_url"], "https://api.github.com",
        "the default: {set}"
    );
    assert_eq!(set["token"], "••••");
    assert_eq!(set["poll"], true);
    assert_eq!(set["webhook_path"], "/api/v1/forge/webhooks/github");
    let secret = set["webhook_secret"]
        .as_str()
        .expect("shown at creation")
        .to_string();
    assert!(secret.starts_with("whs_") && secret.len() > 30, "{secret}");

    let (s, shown) = srv.get(&fx.token, &path).await;
    assert_eq!(s, StatusCode::OK, "{shown}");
    assert_eq!(shown["repo"], REPO);
    assert!(shown.get("webhook_secret").is_none(), "shown once: {shown}");
    // Reconnecting keeps the secret unless asked to rotate it.
    let (_, again) = srv
        .req(
            reqwest::Method::PUT,
            &fx.token,
            &path,
            Some(json!({"kind": "github", "repo": REPO, "token": "ghp_new", "poll": false})),
        )
        .await;
    assert!(again.get("webhook_secret").is_none(), "{again}");
    assert_eq!(again["poll"], false);
    let (_, rotated) = srv
        .req(
            reqwest::Method::PUT,
            &fx.token,
            &path,
            Some(json!({"kind": "github", "repo": REPO, "token": FORGE_TOKEN,
                        "rotate_webhook_secret": true})),
        )
        .await;
    let new_secret = rotated["webhook_secret"].as_str().expect("a new secret");
    assert_ne!(new_secret, secret);
    for v in [&set, &shown, &again, &rotated] {
        assert!(!v.to_string().contains(FORGE_TOKEN) && !v.to_string().contains("ghp_new"));
    }

    // Bad input, other workspaces, the wrong kind of token.
    for (body, why) in [
        (
            json!({"kind": "gitlab", "repo": REPO, "token": "t"}),
            "kind",
        ),
        (
            json!({"kind": "github", "repo": "widgets", "token": "t"}),
            "repo",
        ),
        (
            json!({"kind": "github", "repo": "a/../b", "token": "t"}),
            "repo",
        ),
        (
            json!({"kind": "github", "repo": REPO, "token": " "}),
            "token",
        ),
        (
            json!({"kind": "gitea", "repo": REPO, "token": "t"}),
            "api_url",
        ),
        (
            json!({"kind": "github", "repo": REPO, "token": "t", "api_url": "ftp://x"}),
            "api_url",
        ),
    ] {
        let (s, v) = srv
            .req(reqwest::Method::PUT, &fx.token, &path, Some(body))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["error"].as_str().unwrap().contains(why), "{why}: {v}");
    }
    let (s, _) = srv.get(&other.token, &path).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = srv.get(&fx.daemon, &path).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (s, _) = srv.delete(&fx.token, &path).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = srv.get(&fx.token, &path).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = srv.delete(&fx.token, &path).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_completion_opens_one_pull_request_on_github_and_a_second_push_updates_it() {
    let srv = server().await;
    let f = forge().await;
    let fx = srv.fixture("w").await;
    connect(&srv, &fx, Flavor::Github, &f, FORGE_TOKEN).await;
    let (issue, task) = completed_with_push(&srv, &fx, &f, &"a".repeat(40)).await;

    let pr = pr_of(&srv, &fx, &issue).await;
    assert_eq!(pr["number"], 1, "{pr}");
    assert_eq!(pr["state"], "open");
    assert_eq!(pr["head_branch"], BRANCH);
    assert_eq!(pr["url"], format!("{}/{REPO}/pull/1", f.url));
    let posts = f.requests_to("POST", "/repos/acme/widgets/pulls");
    assert_eq!(posts.len(), 1);
    let sent = &posts[0];
    assert_eq!(
        sent.authorization.as_deref(),
        Some(format!("Bearer {FORGE_TOKEN}").as_str())
    );
    assert_eq!(sent.body["head"], BRANCH);
    assert_eq!(
        sent.body["base"], "main",
        "the default branch, asked of the forge"
    );
    assert_eq!(sent.body["title"], "Fix the widget");
    let body = sent.body["body"].as_str().unwrap();
    assert!(body.contains("I fixed the widget."), "{body}");
    assert!(
        body.contains(&format!("{}/#/issues/{issue}", srv.url)),
        "{body}"
    );
    assert_eq!(f.requests_to("GET", "/repos/acme/widgets").len(), 1);
    comment_with(&srv, &fx, &issue, "Opened pull request #1").await;
    // The task and the issue list show it too.
    assert_eq!(srv.task(&fx.token, &task).await["pr"]["number"], 1);
    let (_, list) = srv
        .get(&fx.token, &format!("/api/v1/issues?workspace_id={}", fx.ws))
        .await;
    assert_eq!(list["issues"][0]["pr"]["url"], pr["url"]);

    // A member's comment queues a follow-up: it continues on the pull request's branch,
    // and its push updates the same pull request.
    let (s, _) = srv
        .post(
            &fx.token,
            &format!("/api/v1/issues/{issue}/comments"),
            json!({"body": "also the gadget"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let claimed = srv.claim(&fx, None).await;
    assert_eq!(claimed["branch"], BRANCH, "{claimed}");
    let second = claimed["id"].as_str().unwrap().to_string();
    srv.post(
        &fx.daemon,
        &format!("/api/daemon/tasks/{second}/start"),
        json!({}),
    )
    .await;
    complete_pushed(&srv, &fx, &f, &second, &"b".repeat(40)).await;
    let t = eventually(WITHIN, || async {
        let t = srv.task(&fx.token, &second).await;
        (!t["pr"].is_null()).then_some(t)
    })
    .await;
    assert_eq!(t["pr"]["number"], 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        f.requests_to("POST", "/repos/acme/widgets/pulls").len(),
        1,
        "no second PR"
    );
    let d = detail(&srv, &fx, &issue).await;
    let opened = d["comments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["body"].as_str().unwrap().contains("Opened pull request"))
        .count();
    assert_eq!(opened, 1);
    assert!(!d.to_string().contains(FORGE_TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_completion_opens_a_pull_request_on_gitea() {
    let srv = server().await;
    let f = forge().await;
    let fx = srv.fixture("w").await;
    connect(&srv, &fx, Flavor::Gitea, &f, FORGE_TOKEN).await;
    let (issue, _) = completed_with_push(&srv, &fx, &f, &"c".repeat(40)).await;
    let pr = pr_of(&srv, &fx, &issue).await;
    assert_eq!(pr["url"], format!("{}/{REPO}/pulls/1", f.url));
    let posts = f.requests_to("POST", "/repos/acme/widgets/pulls");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].flavor, Flavor::Gitea, "under /api/v1");
    assert_eq!(
        posts[0].authorization.as_deref(),
        Some(format!("token {FORGE_TOKEN}").as_str())
    );
    assert_eq!(posts[0].body["base"], "main");
    assert!(
        posts[0].body["body"]
            .as_str()
            .unwrap()
            .contains(&format!("/#/issues/{issue}"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_the_forge_already_has_is_adopted_not_duplicated() {
    let srv = server().await;
    let f = forge().await;
    let fx = srv.fixture("w").await;
    connect(&srv, &fx, Flavor::Github, &f, FORGE_TOKEN).await;
    // Someone opened it by hand first: GitHub answers 422 "already exists".
    f.push_branch(REPO, BRANCH, &"d".repeat(40));
    let hand = reqwest::Client::new()
        .post(format!("{}/repos/{REPO}/pulls", f.url))
        .bearer_auth(FORGE_TOKEN)
        .json(&json!({"title": "by hand", "head": BRANCH, "base": "main"}))
        .send()
        .await
        .unwrap();
    assert_eq!(hand.status(), StatusCode::CREATED);
    let (issue, _) = completed_with_push(&srv, &fx, &f, &"d".repeat(40)).await;
    let pr = pr_of(&srv, &fx, &issue).await;
    assert_eq!(pr["number"], 1, "{pr}");
    let lists = f.requests_to("GET", "/repos/acme/widgets/pulls");
    assert_eq!(lists.len(), 1);
    assert!(
        lists[0].query.contains("head=acme%3A"),
        "{}",
        lists[0].query
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forge_errors_become_a_system_comment_and_the_task_stays_completed() {
    let srv = server().await;
    let f = forge().await;
    let fx = srv.fixture("w").await;
    connect(&srv, &fx, Flavor::Github, &f, "ghp_wrong").await;
    let (issue, task) = completed_with_push(&srv, &fx, &f, &"e".repeat(40)).await;
    let c = comment_with(&srv, &fx, &issue, "Could not open a pull request").await;
    assert_eq!(c["author_type"], "system");
    assert!(
        c["body"].as_str().unwrap().contains("401 Bad credentials"),
        "{c}"
    );
    assert_eq!(srv.task(&fx.token, &task).await["status"], "completed");
    assert!(detail(&srv, &fx, &issue).await["issue"]["pr"].is_null());

    // A 422 (nothing pushed there) names GitHub's reason.
    let fx2 = srv.fixture("w2").await;
    connect(&srv, &fx2, Flavor::Github, &f, FORGE_TOKEN).await;
    let issue2 = srv.assigned_issue(&fx2, "Other").await;
    let t2 = srv.claim_and_start(&fx2).await;
    let (s, _) = srv
        .post(
            &fx2.daemon,
            &format!("/api/daemon/tasks/{t2}/complete"),
            json!({"output": "o", "pushed": {"remote_url": "git@github.com:acme/widgets.git",
                     "branch": "agentd/never-pushed", "commit": "f"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let c = comment_with(&srv, &fx2, &issue2, "Could not open a pull request").await;
    assert!(
        c["body"]
            .as_str()
            .unwrap()
            .contains("422 Validation Failed"),
        "{c}"
    );
    assert_eq!(srv.task(&fx2.token, &t2).await["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhooks_move_the_issue_merged_to_done_and_closed_to_the_backlog() {
    let srv = server().await;
    let f = forge().await;
    let fx = srv.fixture("w").await;
    let secret = connect(&srv, &fx, Flavor::Github, &f, FORGE_TOKEN).await;
    let (issue, _) = completed_with_push(&srv, &fx, &f, &"1".repeat(40)).await;
    pr_of(&srv, &fx, &issue).await;
    assert_eq!(
        detail(&srv, &fx, &issue).await["issue"]["status"],
        "in_review"
    );

    // Closed without merging: back to the backlog, with a comment saying so.
    f.close(REPO, 1);
    let d = f.webhook(
        Flavor::Github,
        "pull_request",
        REPO,
        1,
        json!({"action": "closed"}),
        Some(&secret),
    );
    let (s, v) = deliver(&srv, "github", &d).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let shown = detail(&srv, &fx, &issue).await;
    assert_eq!(shown["issue"]["status"], "backlog");
    assert_eq!(shown["issue"]["pr"]["state"], "closed");
    comment_with(&srv, &fx, &issue, "closed without merging").await;
    // Redelivered (same delivery id): nothing twice.
    let (_, v) = deliver(&srv, "github", &d).await;
    assert_eq!(v["note"], "duplicate delivery");

    // Reopened, then merged: in review, then done.
    let d = f.webhook(
        Flavor::Github,
        "pull_request",
        REPO,
        1,
        json!({"action": "reopened"}),
        Some(&secret),
    );
    deliver(&srv, "github", &d).await;
    assert_eq!(
        detail(&srv, &fx, &issue).await["issue"]["status"],
        "in_review"
    );
    f.merge(REPO, 1);
    let d = f.webhook(
        Flavor::Github,
        "pull_request",
        REPO,
        1,
        json!({"action": "closed"}),
        Some(&secret),
    );
    let (s, v) = deliver(&srv, "github", &d).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["note"].as_str().unwrap().contains("merged"), "{v}");
    let shown = detail(&srv, &fx, &issue).await;
    assert_eq!(shown["issue"]["status"], "done");
    assert_eq!(shown["issue"]["pr"]["state"], "merged");
    comment_with(&srv, &fx, &issue, "was merged").await;
    // The activity says the server moved the issue each time (issue 16), once each.
    let moves: Vec<(&str, &str)> = shown["activity"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "status_changed")
        .map(|e| {
            assert_eq!(
                e["actor"],
                json!({"kind": "system", "name": "agentd"}),
                "{e}"
            );
            (
                e["from_status"].as_str().unwrap(),
                e["to_status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        vec![
            ("todo", "in_progress"),
            ("in_progress", "in_review"),
            ("in_review", "backlog"),
            ("backlog", "in_review"),
            ("in_review", "done"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_or_wrongly_signed_webhooks_are_401_and_unknown_repositories_404() {
    let srv = server().await;
    let f = forge().await;
    let fx = srv.fixture("w").await;
    let secret = connect(&srv, &fx, Flavor::Github, &f, FORGE_TOKEN).await;
    let gitea_fx = srv.fixture("g").await;
    f.add_repo("acme/gadgets", "main");
    let (issue, _) = completed_with_push(&srv, &fx, &f, &"2".repeat(40)).await;
    pr_of(&srv, &fx, &issue).await;
    f.merge(REPO, 1);
    let before = detail(&srv, &fx, &issue).await;
    let merged = json!({"action": "closed"});
    let cases = [
        (
            "github",
            f.webhook(
                Flavor::Github,
                "pull_request",
                REPO,
                1,
                merged.clone(),
                None,
            ),
            401,
        ),
        (
            "github",
            f.webhook(
                Flavor::Github,
                "pull_request",
                REPO,
                1,
                merged.clone(),
                Some("not the secret"),
            ),
            401,
        ),
        (
            "github",
            f.webhook(
                Flavor::Github,
                "pull_request",
                REPO,
                1,
                merged.clone(),
                Some(&secret),
            )
            .with_header("x-hub-signature-256", "sha256=zzzz"),
            401,
        ),
        // Signed over another body than the one sent.
        (
            "github",
            {
                let mut d = f.webhook(
                    Flavor::Github,
                    "pull_request",
                    REPO,
                    1,
                    merged.clone(),
                    Some(&secret),
                );
                d.body.push(b' ');
                d
            },
            401,
        ),
        // A Gitea delivery to the github route carries GitHub's copy of the signature but
        // no connection of kind github to... this repo is one: still the wrong secret.
        (
            "gitea",
            f.webhook(
                Flavor::Gitea,
                "pull_request",
                REPO,
                1,
                merged.clone(),
                Some(&secret),
            ),
            404,
        ),
        (
            "github",
            f.webhook(
                Flavor::Github,
                "pull_request",
                "acme/gadgets",
                1,
                merged.clone(),
                Some(&secret),
            ),
            404,
        ),
        (
            "gitlab",
            f.webhook(
                Flavor::Github,
                "pull_request",
                REPO,
                1,
                merged.clone(),
                Some(&secret),
            ),
            404,
        ),
        (
            "github",
            Delivery::new(
                Flavor::Github,
                "pull_request",
                b"{not json".to_vec(),
                Some(&secret),
            ),
            400,
        ),
    ];
    for (kind, d, want) in cases {
        let (s, v) = deliver(&srv, kind, &d).await;
        assert_eq!(
            s.as_u16(),
            want,
            "{kind} {:?}: {v}",
            d.header("x-hub-signature-256")
        );
        assert!(!v["error"].as_str().unwrap_or_default().is_empty(), "{v}");
    }
    let _ = gitea_fx;
    assert_eq!(detail(&srv, &fx, &issue).await, before, "nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_asking_for_changes_queues_a_follow_up_on_the_same_branch_and_session() {
    let srv = server().await;
    let f = forge().await;
    let fx = srv.fixture("w").await;
    let secret = connect(&srv, &fx, Flavor::Github, &f, FORGE_TOKEN).await;
    let (issue, first) = completed_with_push(&srv, &fx, &f, &"3".repeat(40)).await;
    pr_of(&srv, &fx, &issue).await;

    let d = f.webhook(
        Flavor::Github,
        "pull_request_review",
        REPO,
        1,
        json!({
            "action": "submitted",
            "review": {"id": 7, "state": "changes_requested", "body": "Please rename foo to bar.",
                       "user": {"login": "alice"}, "commit_id": "3".repeat(40)},
        }),
        Some(&secret),
    );
    let (s, v) = deliver(&srv, "github", &d).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["note"].as_str().unwrap().contains("queued"), "{v}");
    let c = comment_with(&srv, &fx, &issue, "Please rename foo to bar.").await;
    assert_eq!(c["author_type"], "forge");
    assert_eq!(c["author_name"], "alice (GitHub)");
    let shown = detail(&srv, &fx, &issue).await;
    assert_eq!(shown["issue"]["pr"]["review_state"], "changes_requested");
    // The reviewer is who commented and who queued the follow-up (issue 16).
    let last: Vec<&Value> = shown["activity"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .take(2)
        .collect();
    let forge_actor = json!({"kind": "forge", "name": "alice (GitHub)"});
    assert_eq!(
        (&last[1]["kind"], &last[1]["actor"]),
        (&json!("comment"), &forge_actor)
    );
    assert_eq!(
        (&last[0]["kind"], &last[0]["actor"]),
        (&json!("task_queued"), &forge_actor)
    );

    let claimed = srv.claim(&fx, None).await;
    assert_eq!(claimed["branch"], BRANCH, "{claimed}");
    assert_eq!(claimed["prior_session_id"], "sess-1");
    assert_eq!(claimed["prior_work_dir"], "/w/1");
    assert_eq!(claimed["trigger_author_type"], "forge");
    assert!(
        claimed["trigger_comment_content"]
            .as_str()
            .unwrap()
            .contains("rename foo")
    );
    assert_ne!(claimed["id"], first.as_str());

    // A conversation comment on the pull request while that task runs: posted, and no
    // second queued task until it ends (one queued follow-up reads every comment).
    let d = f.webhook(
        Flavor::Github,
        "issue_comment",
        REPO,
        1,
        json!({
            "action": "created",
            "issue": {"number": 1, "pull_request": {"url": "x"}},
            "comment": {"id": 9, "body": "And add a test.", "user": {"login": "bob"}},
        }),
        Some(&secret),
    );
    let (s, v) = deliver(&srv, "github", &d).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    comment_with(&srv, &fx, &issue, "And add a test.").await;
    let d = f.webhook(Flavor::Github, "pull_request_review_comment", REPO, 1, json!({
        "action": "created",
        "comment": {"id": 10, "body": "typo here", "path": "src/lib.rs", "user": {"login": "bob"}},
    }), Some(&secret));
    deliver(&srv, "github", &d).await;
    let c = comment_with(&srv, &fx, &issue, "typo here").await;
    assert!(c["body"].as_str().unwrap().contains("src/lib.rs"), "{c}");
    let tasks = detail(&srv, &fx, &issue).await["tasks"]
        .as_array()
        .unwrap()
        .clone();
    let queued = tasks.iter().filter(|t| t["status"] == "queued").count();
    assert_eq!(queued, 1, "{tasks:?}");

    // An approval only records the review state.
    let d = f.webhook(Flavor::Github, "pull_request_review", REPO, 1, json!({
        "action": "submitted", "review": {"id": 8, "state": "approved", "body": null, "user": {"login": "alice"}},
    }), Some(&secret));
    deliver(&srv, "github", &d).await;
    assert_eq!(
        detail(&srv, &fx, &issue).await["issue"]["pr"]["review_state"],
        "approved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitea_review_requesting_changes_queues_a_follow_up_too() {
    let srv = server().await;
    let f = forge().await;
    let fx = srv.fixture("w").await;
    let secret = connect(&srv, &fx, Flavor::Gitea, &f, FORGE_TOKEN).await;
    let (issue, _) = completed_with_push(&srv, &fx, &f, &"4".repeat(40)).await;
    pr_of(&srv, &fx, &issue).await;
    let d = f.webhook(
        Flavor::Gitea,
        "pull_request_review_rejected",
        REPO,
        1,
        json!({
            "action": "reviewed",
            "review": {"type": "pull_request_review_rejected", "content": "Needs docs."},
            "sender": {"login": "carol"},
        }),
        Some(&secret),
    );
    // Gitea also sends GitHub's headers: the Gitea route reads its own.
    assert!(d.header("x-hub-signature-256").is_some());
    let (s, v) = deliver(&srv, "gitea", &d).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let c = comment_with(&srv, &fx, &issue, "Needs docs.").await;
    assert_eq!(c["author_name"], "carol (Gitea)");
    let claimed = srv.claim(&fx, None).await;
    assert_eq!(claimed["branch"], BRANCH);
    // A wrong Gitea signature is refused.
    let d = f
        .webhook(
            Flavor::Gitea,
            "pull_request",
            REPO,
            1,
            json!({"action": "closed"}),
            Some(&secret),
        )
        .with_header("x-gitea-signature", &"0".repeat(64));
    let (s, _) = deliver(&srv, "gitea", &d).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_events_record_the_checks_state_of_the_head_commit() {
    let srv = server().await;
    let f = forge().await;
    let fx = srv.fixture("w").await;
    let secret = connect(&srv, &fx, Flavor::Github, &f, FORGE_TOKEN).await;
    let sha = "5".repeat(40);
    let (issue, _) = completed_with_push(&srv, &fx, &f, &sha).await;
    pr_of(&srv, &fx, &issue).await;
    f.set_check_run(&sha, "ci", "completed", Some("success"));
    f.set_status(&sha, "lint", "failure");
    let body = json!({"action": "completed", "repository": {"full_name": REPO},
        "check_suite": {"head_sha": sha, "status": "completed", "conclusion": "success",
                        "pull_requests": [{"number": 1}]}});
    let d = Delivery::new(
        Flavor::Github,
        "check_suite",
        body.to_string().into_bytes(),
        Some(&secret),
    );
    let (s, v) = deliver(&srv, "github", &d).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The suite passed, but the commit's status failed: the whole head commit counts.
    assert_eq!(
        detail(&srv, &fx, &issue).await["issue"]["pr"]["checks_state"],
        "failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_moves_a_merged_pull_requests_issue_to_done_without_a_webhook() {
    let srv = server().await;
    let f = forge().await;
    let fx = srv.fixture("w").await;
    connect(&srv, &fx, Flavor::Github, &f, FORGE_TOKEN).await;
    let sha = "6".repeat(40);
    let (issue, _) = completed_with_push(&srv, &fx, &f, &sha).await;
    pr_of(&srv, &fx, &issue).await;
    f.merge(REPO, 1);
    f.set_status(&sha, "ci", "success");
    let poll = || agentd_server::service::forge::poll(&srv.app, srv.app.now());
    assert_eq!(
        poll().await.unwrap(),
        0,
        "not due before an interval passed"
    );
    assert_eq!(
        detail(&srv, &fx, &issue).await["issue"]["status"],
        "in_review"
    );
    srv.advance(61_000);
    assert_eq!(poll().await.unwrap(), 1);
    let shown = detail(&srv, &fx, &issue).await;
    assert_eq!(shown["issue"]["status"], "done");
    assert_eq!(shown["issue"]["pr"]["state"], "merged");
    assert_eq!(shown["issue"]["pr"]["checks_state"], "success");
    srv.advance(61_000);
    assert_eq!(
        poll().await.unwrap(),
        0,
        "a merged pull request is no longer polled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_succeeds_later_completes_the_push_failed_task_and_opens_the_pull_request() {
    let srv = server().await;
    let f = forge().await;
    let fx = srv.fixture("w").await;
    connect(&srv, &fx, Flavor::Github, &f, FORGE_TOKEN).await;
    let issue = srv.assigned_issue(&fx, "Fix the widget").await;
    let task = srv.claim_and_start(&fx).await;
    // Not failed yet: neither a retry nor a later push applies.
    let (s, v) = srv
        .post(&fx.token, &format!("/api/v1/tasks/{task}/push"), json!({}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("task is running"),
        "{v}"
    );
    let pushed = json!({"pushed": {"remote_url": "https://github.com/acme/widgets",
                                   "branch": BRANCH, "commit": "7".repeat(40)}});
    let (s, v) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{task}/pushed"),
            pushed.clone(),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    let (s, v) = srv
        .post(&fx.daemon, &format!("/api/daemon/tasks/{task}/fail"),
              json!({"error": "remote rejected", "failure_reason": "push_failed", "branch_name": BRANCH}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // No daemon connected: the push would go nowhere, and the member is told.
    let (s, v) = srv
        .post(&fx.token, &format!("/api/v1/tasks/{task}/push"), json!({}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("not connected"),
        "{v}"
    );
    // The member asks for the push again: the daemon holding the task is told over WS.
    // The socket is open once the upgrade answers, but the server records the
    // connection just after (on PostgreSQL through the instance's presence): until then
    // the push is still the 409 "not connected" above, so it is asked again until the
    // connection is known.
    let mut ws = srv.ws(&fx.daemon, &[&fx.runtime]).await;
    let (s, v) = eventually(WITHIN, || async {
        let (s, v) = srv
            .post(&fx.token, &format!("/api/v1/tasks/{task}/push"), json!({}))
            .await;
        let not_yet = s == StatusCode::CONFLICT
            && v["error"]
                .as_str()
                .is_some_and(|e| e.contains("not connected"));
        (!not_yet).then_some((s, v))
    })
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let frame = common::next_frame(&mut ws, "daemon:task_push", WITHIN).await;
    assert_eq!(frame["task_id"], task.as_str());
    assert_eq!(frame["runtime_id"], fx.runtime.as_str());
    // Another daemon's token cannot report the push.
    let other = srv.mint("daemon", &fx.ws).await;
    let (s, _) = srv
        .post(
            &other,
            &format!("/api/daemon/tasks/{task}/pushed"),
            pushed.clone(),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    f.push_branch(REPO, BRANCH, &"7".repeat(40));
    let (s, v) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{task}/pushed"),
            pushed.clone(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["task_status"], "completed");
    let t = srv.task(&fx.token, &task).await;
    assert_eq!(t["status"], "completed");
    assert!(t["failure_reason"].is_null() && t["error"].is_null(), "{t}");
    assert_eq!(t["branch_name"], BRANCH);
    comment_with(&srv, &fx, &issue, "its push succeeded later").await;
    let pr = pr_of(&srv, &fx, &issue).await;
    assert_eq!(pr["number"], 1);
    assert_eq!(
        detail(&srv, &fx, &issue).await["issue"]["status"],
        "in_review"
    );
    // A completed task cannot be pushed again.
    let (s, v) = srv
        .post(&fx.token, &format!("/api/v1/tasks/{task}/push"), json!({}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["error"].as_str().unwrap().contains("completed"), "{v}");
}
