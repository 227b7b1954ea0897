//! The web board end to end, in headless Chromium: the real `agentd server` and the real
//! `agentd daemon` with a stand-in `claude` that replays recorded Claude Code output
//! slowly (so the log really streams), driven by `tests/web/board.e2e.mjs` (Playwright's
//! `playwright-core` on Debian's `/usr/bin/chromium`). Screenshots at 1280 and 390 px are
//! kept in `target/web-e2e/`.
//!
//! The real daemon does not report diffs yet, so the driver also plays a second daemon
//! through the daemon API (its own daemon token and runtime) to complete one task with
//! a diff — hostile HTML in it, and cut with the marker — for the issue page to show.
//!
//! Needs node, `/usr/bin/chromium` and playwright-core from `scripts/install-browser.sh`
//! (`scripts/test.sh` runs it); without them the test prints `SKIP web_e2e: …`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Server, cli, online_runtime, stand_in_claude};

/// A Claude `assistant` line with its own usage (what a run stopped before its `result`
/// reports).
const USAGE_LINE: &str = r#"{"type":"assistant","message":{"id":"msg_early","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Starting."}],"usage":{"input_tokens":50,"output_tokens":4,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}}}"#;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The playwright-core install, or why the test cannot run.
fn browser_setup() -> Result<PathBuf, String> {
    let prefix = std::env::var_os("AGENTD_WEB_E2E_PREFIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache/web-e2e"));
    if Command::new("node").arg("--version").output().is_err() {
        return Err("node is not on PATH".into());
    }
    if !Path::new("/usr/bin/chromium").exists() {
        return Err("/usr/bin/chromium is missing; run scripts/install-browser.sh".into());
    }
    for package in ["playwright-core", "axe-core"] {
        if !prefix
            .join(format!("node_modules/{package}/package.json"))
            .exists()
        {
            return Err(format!(
                "{package} is not installed in {}; run scripts/install-browser.sh",
                prefix.display()
            ));
        }
    }
    Ok(prefix)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_signs_in_assigns_an_issue_and_watches_it_land_in_review() {
    let prefix = match browser_setup() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("SKIP web_e2e: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = server.url.clone();
    let (ws, token, daemon) = server.workspace_with_tokens("web");

    // A stand-in `claude`: a supported version, then recorded stream-json output of the
    // real CLI (a Write, a Bash call and the final answer), one line a second. The issue
    // title is in its prompt (the last argument): a `[gated]` issue's run waits until the
    // browser test creates `gate/open` (deterministic "In progress"), and a `[broken]`
    // one's exits 1 with a message on stderr (a failed run). Both first stream one
    // assistant message with its usage, so the cancelled and the failed run have tokens
    // to show.
    let fixture = repo_root()
        .join("crates/agentd-daemon/tests/fixtures/agent-output/claude-write-shell.jsonl");
    let gate = dir.path().join("gate");
    std::fs::create_dir_all(&gate).unwrap();
    let bin = stand_in_claude(
        dir.path(),
        &format!(
            "for prompt; do :; done\n\
             case \"$prompt\" in *'[gated]'*|*'[broken]'*) echo '{usage_line}' ;; esac\n\
             case \"$prompt\" in *'[gated]'*) while [ ! -e '{gate}/open' ]; do sleep 0.1; done ;; esac\n\
             case \"$prompt\" in *'[broken]'*) echo 'stand-in agent: refusing this one' >&2; exit 1 ;; esac\n\
             echo 'hello from mock' > hello.txt\n\
             while IFS= read -r line; do printf '%s\\n' \"$line\"; sleep 1; done {}",
            common::heredoc(&fixture),
            gate = gate.display(),
            usage_line = USAGE_LINE,
        ),
    );
    // The gate is visible (read-only) inside the run's sandbox, which hides /tmp.
    let _daemon = common::spawn_daemon_with(
        dir.path(),
        &bin,
        &url,
        &daemon,
        &format!("read_only_paths = [{:?}]\n", gate.display().to_string()),
        &[],
        &["--heartbeat-interval", "1s", "--poll-interval", "30s"],
    );
    let rid = online_runtime(&url, &token, &ws, "claude", 30).await;
    cli(
        &url,
        &token,
        &[
            "agent",
            "create",
            "claude-bot",
            "--workspace",
            &ws,
            "--runtime",
            &rid,
        ],
    );

    let diff_issue = issue_with_a_diff(&server, &ws, &token).await;

    let shots = repo_root().join("target/web-e2e");
    let started = std::time::Instant::now();
    let mut node = tokio::process::Command::new("node");
    node.arg(repo_root().join("tests/web/board.e2e.mjs"))
        .env("AGENTD_URL", &url)
        .env("AGENTD_TOKEN", &token)
        .env("AGENT_NAME", "claude-bot")
        .env("DIFF_ISSUE", &diff_issue)
        .env("GATE_DIR", &gate)
        .env("SHOT_DIR", &shots)
        .env("PLAYWRIGHT_PREFIX", &prefix)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(300), node.output())
        .await
        .expect("the browser test finished within 300 s")
        .expect("run node");
    let log = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    assert!(
        out.status.success(),
        "board e2e failed ({:?}):\n{}\n{}\n--- daemon log ---\n{}\n--- server log ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        log("daemon.log"),
        log("server.log"),
    );
    for shot in [
        "board-1280.png",
        "board-dark-1280.png",
        "board-dark-390.png",
        "issue-failed-1280.png",
        "issue-1280.png",
        "diff-1280.png",
        "diff-390.png",
        "board-390.png",
        "issue-390.png",
    ] {
        assert!(shots.join(shot).exists(), "screenshot {shot}");
    }
    // Its steps and the axe-core summary (one line per view, width and color scheme).
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!(
        "web_e2e: browser run took {:?}; screenshots in {}",
        started.elapsed(),
        shots.display()
    );
}

/// An issue whose task a second, scripted daemon completed with a diff: a modified file
/// (added lines carrying HTML that must stay text, a removed line, two hunks, one very
/// long line), a new file with HTML in its name, a binary file, and a patch cut with the
/// marker. Returns the issue id.
async fn issue_with_a_diff(server: &Server, ws: &str, member: &str) -> String {
    let daemon = cli(
        &server.url,
        &server.admin,
        &["token", "create", "--daemon", "--workspace", ws],
    )["token"]
        .as_str()
        .unwrap()
        .to_string();
    let http = reqwest::Client::new();
    let call = |path: String, body: serde_json::Value| {
        let req = http
            .post(format!("{}{path}", server.url))
            .bearer_auth(&daemon)
            .json(&body);
        async move {
            let resp = req.send().await.expect("daemon API");
            assert!(resp.status().is_success(), "{path}: {}", resp.status());
            resp.json::<serde_json::Value>().await.expect("JSON")
        }
    };
    let reg = call(
        "/api/daemon/register".into(),
        serde_json::json!({"workspace_id": ws, "daemon_id": "scripted-diff",
            "runtimes": [{"name": "codex (scripted)", "type": "codex", "status": "online"}]}),
    )
    .await;
    let rid = reg["runtimes"][0]["id"].as_str().unwrap().to_string();
    let agent = cli(
        &server.url,
        member,
        &[
            "agent",
            "create",
            "diff-bot",
            "--workspace",
            ws,
            "--runtime",
            &rid,
        ],
    );
    let issue = cli(
        &server.url,
        member,
        &[
            "issue",
            "create",
            "Show the diff",
            "--workspace",
            ws,
            "--assign",
            agent["id"].as_str().unwrap(),
        ],
    );
    let claimed = call(
        format!("/api/daemon/runtimes/{rid}/tasks/claim"),
        serde_json::json!({}),
    )
    .await;
    let task = claimed["task"]["id"].as_str().expect("a task").to_string();
    call(
        format!("/api/daemon/tasks/{task}/start"),
        serde_json::json!({}),
    )
    .await;
    let long = "x".repeat(400);
    let patch = format!(
        "diff --git a/src/lib.rs b/src/lib.rs\n\
         index 1111111..2222222 100644\n\
         --- a/src/lib.rs\n\
         +++ b/src/lib.rs\n\
         @@ -1,3 +1,4 @@\n\
         -fn old() {{}}\n\
         +fn new() {{}}\n\
         +// <img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>\n\
         \x20keep();\n\
         @@ -20,2 +21,3 @@ fn tail() {{\n\
         \x20a();\n\
         +let long = \"{long}\";\n\
         diff --git a/docs/<i>notes</i>.md b/docs/<i>notes</i>.md\n\
         new file mode 100644\n\
         --- /dev/null\n\
         +++ b/docs/<i>notes</i>.md\n\
         @@ -0,0 +1 @@\n\
         +# Notes\n\
         diff --git a/logo.png b/logo.png\n\
         Binary files a/logo.png and b/logo.png differ\n\
         … [diff truncated: 1234 more bytes not shown]\n"
    );
    call(
        format!("/api/daemon/tasks/{task}/complete"),
        serde_json::json!({
            "output": "Changed src/lib.rs and added notes.",
            "branch_name": "agentd/show-the-diff",
            "diff": {
                "base_commit": "1111111111111111111111111111111111111111",
                "head_commit": "2222222222222222222222222222222222222222",
                "files": [
                    {"path": "src/lib.rs", "additions": 3, "deletions": 1, "binary": false},
                    {"path": "docs/<i>notes</i>.md", "additions": 1, "deletions": 0, "binary": false},
                    {"path": "logo.png", "additions": 0, "deletions": 0, "binary": true},
                    {"path": "src/cut.rs", "additions": 9, "deletions": 1, "binary": false},
                ],
                "additions": 13,
                "deletions": 2,
                "patch": patch,
                "truncated": true,
            },
        }),
    )
    .await;
    issue["id"].as_str().unwrap().to_string()
}

/// Issue 12 on the board: a task completes with a pushed branch, the server opens a pull
/// request on a fake GitHub, and the board shows it on the card, the issue page and the
/// task; a signed review asking for changes then appears as a forge comment
/// (`tests/web/pr.e2e.mjs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_shows_an_issues_pull_request_and_its_review() {
    use agentd_testkit::fake_forge::{FakeForge, Flavor};
    use serde_json::json;
    let prefix = match browser_setup() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("SKIP web_e2e: {why}");
            return;
        }
    };
    let forge = FakeForge::start("ghp_web").await;
    forge.add_repo("acme/widgets", "main");
    forge.push_branch("acme/widgets", "agentd/web", &"a".repeat(40));
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_args(dir.path(), &["--allow-local-repos"]);
    let url = server.url.clone();
    let (ws, token, daemon) = server.workspace_with_tokens("web");
    let token_file = dir.path().join("forge-token");
    std::fs::write(&token_file, "ghp_web").unwrap();
    let conn = cli(
        &url,
        &token,
        &[
            "forge",
            "set",
            "--workspace",
            &ws,
            "--kind",
            "github",
            "--repo",
            "acme/widgets",
            "--token-file",
            token_file.to_str().unwrap(),
            "--api-url",
            &forge.url,
        ],
    );
    let secret = conn["webhook_secret"].as_str().unwrap().to_string();
    // A runtime, an agent, an issue, and its task completed with a pushed branch — over
    // the daemon API, as a daemon would.
    let http = reqwest::Client::new();
    let reg: serde_json::Value = http
        .post(format!("{url}/api/daemon/register"))
        .bearer_auth(&daemon)
        .json(&json!({"workspace_id": ws, "daemon_id": "d",
                      "runtimes": [{"name": "c", "type": "claude", "status": "online"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rid = reg["runtimes"][0]["id"].as_str().unwrap().to_string();
    let agent = cli(
        &url,
        &token,
        &[
            "agent",
            "create",
            "bot",
            "--workspace",
            &ws,
            "--runtime",
            &rid,
        ],
    );
    let title = "Widget needs fixing";
    let issue = cli(
        &url,
        &token,
        &[
            "issue",
            "create",
            title,
            "--workspace",
            &ws,
            "--assign",
            agent["id"].as_str().unwrap(),
        ],
    );
    let claimed: serde_json::Value = http
        .post(format!("{url}/api/daemon/runtimes/{rid}/tasks/claim"))
        .bearer_auth(&daemon)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tid = claimed["task"]["id"].as_str().unwrap().to_string();
    for (path, body) in [
        ("start", json!({})),
        (
            "complete",
            json!({"output": "Fixed.", "branch_name": "agentd/web", "pushed": {
            "remote_url": "https://github.com/acme/widgets", "branch": "agentd/web",
            "commit": "a".repeat(40)}}),
        ),
    ] {
        let r = http
            .post(format!("{url}/api/daemon/tasks/{tid}/{path}"))
            .bearer_auth(&daemon)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }
    let iid = issue["id"].as_str().unwrap().to_string();
    common::eventually(10, "the pull request is opened", || {
        let d = cli(&url, &token, &["issue", "show", &iid]);
        (!d["issue"]["pr"].is_null()).then_some(())
    })
    .await;
    let pr_url = format!("{}/acme/widgets/pull/1", forge.url);

    let shots = repo_root().join("target/web-e2e");
    let mut node = tokio::process::Command::new("node");
    node.arg(repo_root().join("tests/web/pr.e2e.mjs"))
        .env("AGENTD_URL", &url)
        .env("AGENTD_TOKEN", &token)
        .env("ISSUE_TITLE", title)
        .env("PR_URL", &pr_url)
        .env("SHOT_DIR", &shots)
        .env("PLAYWRIGHT_PREFIX", &prefix)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = node.spawn().expect("run node");
    // While the browser looks at the issue, a reviewer asks for changes on GitHub.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let d = forge.webhook(
        Flavor::Github,
        "pull_request_review",
        "acme/widgets",
        1,
        json!({
            "action": "submitted",
            "review": {"id": 1, "state": "changes_requested", "body": "Please rename foo.",
                       "user": {"login": "alice"}},
        }),
        Some(&secret),
    );
    let mut req = http
        .post(format!("{url}/api/v1/forge/webhooks/github"))
        .body(d.body.clone());
    for (k, v) in &d.headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "webhook: {}", resp.status());
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("the browser test finished within 90 s")
        .expect("node output");
    assert!(
        out.status.success(),
        "pr e2e failed ({:?}):\n{}\n{}\n--- server log ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default(),
    );
    assert!(shots.join("issue-pr-1280.png").exists());
}

/// Issue 15's browser test: a local account signs in with its password, invites a second
/// person by link, who makes an account, joins as a member, cannot reach the admin pages
/// and creates and assigns an issue that an agent completes (`tests/web/accounts.e2e.mjs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_sign_in_invite_a_member_who_gets_work_done() {
    let prefix = match browser_setup() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("SKIP web_e2e: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = server.url.clone();
    let (ws, token, daemon) = server.workspace_with_tokens("team");
    let fixture = repo_root()
        .join("crates/agentd-daemon/tests/fixtures/agent-output/claude-write-shell.jsonl");
    let bin = stand_in_claude(
        dir.path(),
        &format!(
            "echo 'hello from mock' > hello.txt\ncat {}",
            common::heredoc(&fixture)
        ),
    );
    let _daemon = common::spawn_daemon(
        dir.path(),
        &bin,
        &url,
        &daemon,
        &["--heartbeat-interval", "1s", "--poll-interval", "2s"],
    );
    let rid = online_runtime(&url, &token, &ws, "claude", 30).await;
    cli(
        &url,
        &token,
        &[
            "agent",
            "create",
            "claude-bot",
            "--workspace",
            &ws,
            "--runtime",
            &rid,
        ],
    );
    // The owner: a local account made with the admin token, owner of the workspace.
    let http = reqwest::Client::new();
    let (email, password) = ("owner@example.com", "owner password 1");
    let resp = http
        .post(format!("{url}/api/v1/users"))
        .bearer_auth(&server.admin)
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
    let resp = http
        .put(format!("{url}/api/v1/workspaces/{ws}/members/{email}"))
        .bearer_auth(&server.admin)
        .json(&serde_json::json!({"role": "owner"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);

    let shots = repo_root().join("target/web-e2e");
    let mut node = tokio::process::Command::new("node");
    node.arg(repo_root().join("tests/web/accounts.e2e.mjs"))
        .env("AGENTD_URL", &url)
        .env("OWNER_EMAIL", email)
        .env("OWNER_PASSWORD", password)
        .env("AGENT_NAME", "claude-bot")
        .env("SHOT_DIR", &shots)
        .env("PLAYWRIGHT_PREFIX", &prefix)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(240), node.output())
        .await
        .expect("the browser test finished within 240 s")
        .expect("run node");
    let log = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    assert!(
        out.status.success(),
        "accounts e2e failed ({:?}):\n{}\n{}\n--- daemon log ---\n{}\n--- server log ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        log("daemon.log"),
        log("server.log"),
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
}

/// Issue 15's OIDC browser test: the board's "Sign in with …" button goes through a real
/// OpenID provider (npm oidc-provider, `tests/oidc/provider.mjs`, its login and consent
/// pages filled in by Chromium) and comes back signed in, a member of the workspace by
/// its OIDC default role (`tests/web/oidc.e2e.mjs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_sign_in_through_a_real_provider() {
    let prefix = match browser_setup() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("SKIP web_e2e: {why}");
            return;
        }
    };
    let oidc_prefix = std::env::var_os("AGENTD_OIDC_PREFIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache/oidc-provider"));
    if !oidc_prefix
        .join("node_modules/oidc-provider/package.json")
        .exists()
    {
        eprintln!(
            "SKIP web_e2e (oidc): npm oidc-provider is not installed in {}; run \
             scripts/install-oidc-provider.sh",
            oidc_prefix.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The provider needs the redirect URI before the server runs: a free port first.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut provider = tokio::process::Command::new("node")
        .arg(repo_root().join("tests/oidc/provider.mjs"))
        .arg(format!("http://{listen}/api/v1/oidc/callback"))
        .env("OIDC_PROVIDER_DIR", &oidc_prefix)
        .env("OIDC_CLIENT_ID", "agentd-board")
        .env("OIDC_CLIENT_SECRET", "board-secret")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the OIDC provider");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(
        provider.stdout.take().unwrap(),
    ));
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the provider started within 30 s")
        .unwrap()
        .expect("the provider printed its issuer");
    let issuer = serde_json::from_str::<serde_json::Value>(&first).unwrap()["issuer"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = dir.path().join("oidc-secret");
    std::fs::write(&secret, "board-secret\n").unwrap();
    let server = Server::start_with_args(
        dir.path(),
        &[
            "--listen",
            &listen,
            "--oidc-issuer",
            &issuer,
            "--oidc-client-id",
            "agentd-board",
            "--oidc-client-secret-file",
            secret.to_str().unwrap(),
            "--oidc-name",
            "Test IdP",
            "--oidc-allowed-domains",
            "example.com",
        ],
    );
    let url = server.url.clone();
    let (ws, _token, _daemon) = server.workspace_with_tokens("team");
    let resp = reqwest::Client::new()
        .put(format!("{url}/api/v1/workspaces/{ws}/settings"))
        .bearer_auth(&server.admin)
        .json(&serde_json::json!({"oidc_default_role": "member"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);

    let shots = repo_root().join("target/web-e2e");
    let mut node = tokio::process::Command::new("node");
    node.arg(repo_root().join("tests/web/oidc.e2e.mjs"))
        .env("AGENTD_URL", &url)
        .env("OIDC_LOGIN", "dana")
        .env("OIDC_NAME", "Test IdP")
        .env("SHOT_DIR", &shots)
        .env("PLAYWRIGHT_PREFIX", &prefix)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), node.output())
        .await
        .expect("the browser test finished within 120 s")
        .expect("run node");
    assert!(
        out.status.success(),
        "oidc e2e failed ({:?}):\n{}\n{}\n--- server log ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default(),
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
}
