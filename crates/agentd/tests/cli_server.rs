//! The real `agentd` binary as a server (`--listen 127.0.0.1:0 --json` prints the URL) and
//! as the CLI against it, every command with `--json`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_agentd");

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(dir: &Path) -> Server {
    start_server_with(dir, &[])
}

fn start_server_with(dir: &Path, args: &[&str]) -> Server {
    let mut child = Command::new(BIN)
        .args(["server", "--listen", "127.0.0.1:0", "--json", "--data-dir"])
        .arg(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    Server {
        child,
        url: v["url"].as_str().unwrap().to_string(),
    }
}

/// Runs `agentd <args> --json`; returns (success, stdout JSON or stderr text).
fn cli(srv: &Server, token: &str, args: &[&str]) -> (bool, Value) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--json")
        .env("AGENTD_SERVER_URL", &srv.url)
        .env("AGENTD_TOKEN", token)
        .output()
        .unwrap();
    if out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout);
        (
            true,
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
        )
    } else {
        (
            false,
            Value::String(String::from_utf8_lossy(&out.stderr).into()),
        )
    }
}

fn ok(srv: &Server, token: &str, args: &[&str]) -> Value {
    let (success, v) = cli(srv, token, args);
    assert!(success, "agentd {args:?} failed: {v}");
    v
}

#[tokio::test]
async fn cli_drives_the_server_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_server(dir.path());
    let token_file = dir.path().join("admin-token");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let admin = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();

    let ws = ok(&srv, &admin, &["workspace", "create", "team"]);
    let wid = ws["id"].as_str().unwrap().to_string();
    let list = ok(&srv, &admin, &["workspace", "list"]);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|w| w["id"] == wid.as_str())
    );
    let tok = ok(&srv, &admin, &["token", "create", "--workspace", &wid]);
    assert_eq!(tok["kind"], "member");
    let token = tok["token"].as_str().unwrap().to_string();
    // The machine gets its own daemon token; member tokens do not reach the daemon API.
    let dtok = ok(
        &srv,
        &admin,
        &[
            "token",
            "create",
            "--daemon",
            "--workspace",
            &wid,
            "--name",
            "box",
            "--expires-in",
            "30d",
        ],
    );
    assert_eq!(
        (dtok["kind"].as_str(), dtok["name"].as_str()),
        (Some("daemon"), Some("box"))
    );
    assert!(dtok["expires_at"].is_string(), "{dtok}");
    let daemon = dtok["token"].as_str().unwrap().to_string();

    // A daemon registers a runtime (over the daemon API, as the daemon would).
    let http = reqwest::Client::new();
    let reg: Value = http
        .post(format!("{}/api/daemon/register", srv.url))
        .bearer_auth(&daemon)
        .json(&json!({"workspace_id": wid, "daemon_id": "d", "device_name": "box",
                      "runtimes": [{"name": "Claude (box)", "type": "claude", "version": "2.1.0", "status": "online"}]}))
        .send().await.unwrap().json().await.unwrap();
    let rid = reg["runtimes"][0]["id"].as_str().unwrap().to_string();
    let rts = ok(&srv, &token, &["runtime", "list", "--workspace", &wid]);
    assert_eq!(rts[0]["id"], rid.as_str());
    assert_eq!(rts[0]["status"], "online");

    let agent = ok(
        &srv,
        &token,
        &[
            "agent",
            "create",
            "coder",
            "--workspace",
            &wid,
            "--runtime",
            &rid,
            "--instructions",
            "write tests",
            "--model",
            "m1",
            "--env",
            "A=b",
        ],
    );
    let aid = agent["id"].as_str().unwrap().to_string();
    assert_eq!(
        agent["custom_env"]["A"], "••••",
        "custom_env values are write-only"
    );
    let issue = ok(
        &srv,
        &token,
        &[
            "issue",
            "create",
            "Fix it",
            "--workspace",
            &wid,
            "--description",
            "the bug",
            "--assign",
            &aid,
        ],
    );
    let iid = issue["id"].as_str().unwrap().to_string();
    let issues = ok(&srv, &token, &["issue", "list", "--workspace", &wid]);
    assert_eq!(issues.as_array().unwrap().len(), 1);

    // The daemon claims and runs it; the agent uses its task token through the CLI.
    let claim: Value = http
        .post(format!("{}/api/daemon/runtimes/{rid}/tasks/claim", srv.url))
        .bearer_auth(&daemon)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tid = claim["task"]["id"].as_str().unwrap().to_string();
    let tt = claim["task"]["task_token"].as_str().unwrap().to_string();
    assert_eq!(claim["task"]["agent"]["model"], "m1");
    assert_eq!(
        claim["task"]["agent"]["custom_env"]["A"], "b",
        "the daemon gets the value"
    );
    http.post(format!("{}/api/daemon/tasks/{tid}/messages", srv.url))
        .bearer_auth(&daemon)
        .json(&json!({"messages": [{"seq": 1, "type": "text", "content": "thinking"}]}))
        .send()
        .await
        .unwrap();
    let st = ok(&srv, &tt, &["issue", "status", &iid, "in_progress"]);
    assert_eq!(st["status"], "in_progress");
    let c = ok(&srv, &tt, &["issue", "comment", &iid, "working on it"]);
    assert_eq!(c["author_type"], "agent");
    let (denied, err) = cli(&srv, &tt, &["workspace", "list"]);
    assert!(!denied && err.as_str().unwrap().contains("403"), "{err}");

    let out = Command::new(BIN)
        .args(["task", "logs", &tid, "--json"])
        .env("AGENTD_SERVER_URL", &srv.url)
        .env("AGENTD_TOKEN", &token)
        .output()
        .unwrap();
    assert!(out.status.success());
    let first: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(first["content"], "thinking");

    let cancelled = ok(&srv, &token, &["task", "cancel", &tid]);
    assert_eq!(cancelled["status"], "cancelled");
    let retried = ok(&srv, &token, &["task", "retry", &tid]);
    assert_eq!(retried["status"], "queued");
    // follow ends by itself once the task is over and drained, saying how it ended:
    // cancelled, exit 9.
    let out = Command::new(BIN)
        .args(["task", "logs", &tid, "--follow", "--after-seq", "1"])
        .env("AGENTD_SERVER_URL", &srv.url)
        .env("AGENTD_TOKEN", &token)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(9), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("cancelled after"),
        "{out:?}"
    );

    let shown = ok(&srv, &token, &["issue", "show", &iid]);
    // The cancelled run took the issue back from in progress to to do; its retry is
    // queued, not started yet.
    assert_eq!(shown["issue"]["status"], "todo");
    assert_eq!(shown["tasks"].as_array().unwrap().len(), 2);
    assert_eq!(shown["comments"][0]["body"], "working on it");
    let c = ok(&srv, &token, &["issue", "comment", &iid, "from a human"]);
    assert_eq!(c["author_type"], "member");

    ok(&srv, &token, &["runtime", "delete", &rid]);
    let (gone, err) = cli(&srv, &token, &["runtime", "delete", &rid]);
    assert!(
        !gone && err.as_str().unwrap().contains("no runtime matches"),
        "{err}"
    );
    let (bad, err) = cli(&srv, "agd_wrong", &["workspace", "list"]);
    assert!(!bad && err.as_str().unwrap().contains("401"), "{err}");

    // Tokens: listed (the admin sees all three), revoked, and the admin token rotated.
    let list = ok(&srv, &admin, &["token", "list"]);
    let kinds: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["admin", "member", "daemon"], "{list}");
    let (denied, err) = cli(
        &srv,
        &token,
        &["token", "revoke", dtok["id"].as_str().unwrap()],
    );
    assert!(
        !denied && err.as_str().unwrap().contains("404"),
        "a member revokes only itself and what it created: {err}"
    );
    let revoked = ok(
        &srv,
        &admin,
        &["token", "revoke", dtok["id"].as_str().unwrap()],
    );
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let hb = http
        .post(format!("{}/api/daemon/heartbeat", srv.url))
        .bearer_auth(&daemon)
        .json(&json!({"runtime_id": rid}))
        .send()
        .await
        .unwrap();
    assert_eq!(hb.status(), 401);
    assert!(hb.text().await.unwrap().contains("token revoked"));
    let rotated = ok(&srv, &admin, &["admin", "rotate-token"]);
    let new_admin = rotated["token"].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("admin-token"))
            .unwrap()
            .trim(),
        new_admin
    );
    let (old, err) = cli(&srv, &admin, &["workspace", "list"]);
    assert!(
        !old && err.as_str().unwrap().contains("token revoked"),
        "{err}"
    );
    ok(&srv, new_admin, &["workspace", "list"]);
}

#[test]
fn server_restart_reuses_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let _srv = start_server(dir.path());
        std::fs::read_to_string(dir.path().join("admin-token")).unwrap()
    };
    let srv = start_server(dir.path());
    let second = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    assert_eq!(first, second);
    let (success, v) = cli(&srv, second.trim(), &["workspace", "list"]);
    assert!(success, "{v}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `agentd up --json` until its daemon's claude runtime is online; returns
/// (workspace id, runtime id), then stops it with SIGTERM and checks it exits 0.
async fn up_once(data: &Path, bin: &Path) -> (String, String) {
    let port = free_port();
    let mut child = Command::new(BIN)
        .args([
            "up",
            "--json",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data)
        // Outside any git repository, with its own config dir (`up` writes the CLI's
        // context there).
        .current_dir(data.parent().unwrap())
        .env("XDG_CONFIG_HOME", data.parent().unwrap().join("config"))
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env_remove("AGENTD_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let srv = Server {
        child,
        url: v["url"].as_str().unwrap().to_string(),
    };
    let ws = v["workspace_id"].as_str().unwrap().to_string();
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("up.json")).unwrap()).unwrap();
    let token = state["token"].as_str().unwrap().to_string();
    let daemon = state["daemon_token"].as_str().unwrap().to_string();
    assert_ne!(
        token, daemon,
        "a member token for you, a daemon token for the daemon"
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let rid = loop {
        let rts = ok(&srv, &token, &["runtime", "list", "--workspace", &ws]);
        if let Some(r) = rts
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["provider"] == "claude" && r["status"] == "online")
        {
            break r["id"].as_str().unwrap().to_string();
        }
        let (daemon_on_user_api, _) = cli(&srv, &daemon, &["workspace", "list"]);
        assert!(
            !daemon_on_user_api,
            "the daemon token is refused on the user API"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "no runtime online: {rts}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let mut srv = srv;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(srv.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = srv.child.wait().unwrap();
    assert!(status.success(), "agentd up exited with {status}");
    (ws, rid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_server_and_daemon_and_reuses_its_state() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        bin.join("claude"),
        "#!/bin/sh\necho '2.1.0 (Claude Code)'\n",
    )
    .unwrap();
    std::fs::set_permissions(bin.join("claude"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    let (ws1, rt1) = up_once(&data, &bin).await;
    let state = || std::fs::read_to_string(data.join("up.json")).unwrap();
    let first = state();
    assert_eq!(
        std::fs::metadata(data.join("up.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "up's data dir holds tokens: owner only");
    assert_eq!(mode(&data.join("server")), 0o700);
    for secret in ["admin-token", "agentd.db"] {
        assert_eq!(mode(&data.join("server").join(secret)), 0o600, "{secret}");
    }
    // The board's first user: a server admin whose password is in an owner-only file.
    let password_file = data.join("first-user-password");
    assert_eq!(mode(&password_file), 0o600);
    let password = std::fs::read_to_string(&password_file).unwrap();
    assert!(password.trim().len() >= 32, "{password:?}");
    let (ws2, rt2) = up_once(&data, &bin).await;
    assert_eq!(
        std::fs::read_to_string(&password_file).unwrap(),
        password,
        "the second run makes no second user"
    );
    assert_eq!(
        first,
        state(),
        "the second run reuses the workspace and both tokens"
    );
    assert_eq!(ws1, ws2, "the second run reuses the workspace");
    assert_eq!(rt1, rt2, "and the daemon keeps its runtime id");
}

/// `agentd <args>` without `--json`: stdout, asserting success.
fn human(srv: &Server, token: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("AGENTD_SERVER_URL", &srv.url)
        .env("AGENTD_TOKEN", token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "agentd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn runtime_list_shows_each_runtimes_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_server(dir.path());
    let admin = std::fs::read_to_string(dir.path().join("admin-token"))
        .unwrap()
        .trim()
        .to_string();
    let wid = ok(&srv, &admin, &["workspace", "create", "team"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let runtimes: Vec<Value> = [
        ("claude", Some("bwrap")),
        ("codex", Some("off")),
        ("gemini", Some("unavailable")),
        ("opencode", None),
    ]
    .iter()
    .map(|(p, sb)| {
        let mut r = json!({"name": p, "type": p, "status": "online"});
        if let Some(sb) = sb {
            r["sandbox"] = json!(sb);
        }
        r
    })
    .collect();
    let resp = reqwest::Client::new()
        .post(format!("{}/api/daemon/register", srv.url))
        .bearer_auth(&admin)
        .json(&json!({"workspace_id": wid, "daemon_id": "d", "runtimes": runtimes}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());

    let text = human(&srv, &admin, &["runtime", "list", "--workspace", &wid]);
    // Aligned columns (two spaces or more between them); no escape codes when piped.
    assert!(!text.contains('\u{1b}'), "{text:?}");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(
        rows[0],
        ["ID", "PROVIDER", "STATUS", "SANDBOX", "SEEN", "NAME"],
        "{text}"
    );
    let sandbox_of = |provider: &str| {
        rows.iter()
            .find(|r| r[1] == provider)
            .unwrap_or_else(|| panic!("no {provider} row in {text}"))[3]
    };
    assert_eq!(sandbox_of("claude"), "bwrap");
    assert_eq!(sandbox_of("codex"), "off");
    assert_eq!(sandbox_of("gemini"), "unavailable");
    assert_eq!(sandbox_of("opencode"), "-");
    let json = ok(&srv, &admin, &["runtime", "list", "--workspace", &wid]);
    assert!(
        json.as_array()
            .unwrap()
            .iter()
            .any(|r| r["sandbox"] == "off")
    );
}

#[test]
fn local_repositories_need_allow_local_repos() {
    for (args, accepted) in [(&[][..], false), (&["--allow-local-repos"][..], true)] {
        let dir = tempfile::tempdir().unwrap();
        let srv = start_server_with(dir.path(), args);
        let admin = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
        let (success, v) = cli(
            &srv,
            admin.trim(),
            &[
                "workspace",
                "create",
                "w",
                "--repo",
                "file:///srv/git/repo.git",
            ],
        );
        assert_eq!(success, accepted, "{args:?}: {v}");
        if !accepted {
            let err = v.as_str().unwrap();
            assert!(
                err.contains("file:///srv/git/repo.git") && err.contains("--allow-local-repos"),
                "{err}"
            );
        }
    }
}

#[tokio::test]
async fn server_limits_are_flags() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let srv = start_server_with(
        dir.path(),
        &[
            "--header-read-timeout-secs",
            "1",
            "--max-event-streams-per-token",
            "1",
        ],
    );
    // A half-sent request head is dropped after about a second.
    let addr = srv.url.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let t0 = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), slow.read(&mut buf))
        .await
        .expect("the slow client is disconnected")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    // One event stream per token: the second is 429.
    let admin = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let wid = ok(&srv, admin.trim(), &["workspace", "create", "w"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let http = reqwest::Client::new();
    let stream = |http: &reqwest::Client| {
        http.get(format!("{}/api/v1/workspaces/{wid}/events", srv.url))
            .bearer_auth(admin.trim())
            .send()
    };
    let first = stream(&http).await.unwrap();
    assert_eq!(first.status(), 200);
    let second = stream(&http).await.unwrap();
    assert_eq!(second.status(), 429);
}

/// `agentd <args> --json` printing one JSON value per line (`task logs`): the lines.
fn json_lines(srv: &Server, token: &str, args: &[&str]) -> Vec<Value> {
    let out = Command::new(BIN)
        .args(args)
        .arg("--json")
        .env("AGENTD_SERVER_URL", &srv.url)
        .env("AGENTD_TOKEN", token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_list_and_task_logs_follow_every_page() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_server(dir.path());
    let admin = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let admin = admin.trim();
    let wid = ok(&srv, admin, &["workspace", "create", "w"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let http = reqwest::Client::new();
    let post = |path: String, body: Value| {
        http.post(format!("{}{path}", srv.url))
            .bearer_auth(admin)
            .json(&body)
            .send()
    };
    // More issues than one page of the CLI (500).
    let n_issues = 503;
    for n in 0..n_issues {
        let r = post(
            format!("/api/v1/workspaces/{wid}/issues"),
            json!({"title": format!("issue {n}"), "status": "backlog"}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 201);
    }
    let listed = ok(&srv, admin, &["issue", "list", "--workspace", &wid]);
    let ids: std::collections::HashSet<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), n_issues, "every issue once");

    // A transcript longer than one page (1000) of `task logs`.
    let reg: Value = post(
        "/api/daemon/register".into(),
        json!({"workspace_id": wid, "daemon_id": "d",
               "runtimes": [{"name": "c", "type": "claude", "status": "online"}]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let rid = reg["runtimes"][0]["id"].as_str().unwrap().to_string();
    let agent = ok(
        &srv,
        admin,
        &[
            "agent",
            "create",
            "bot",
            "--workspace",
            &wid,
            "--runtime",
            &rid,
        ],
    );
    ok(
        &srv,
        admin,
        &[
            "issue",
            "create",
            "talk",
            "--workspace",
            &wid,
            "--assign",
            agent["id"].as_str().unwrap(),
        ],
    );
    let claim: Value = post(format!("/api/daemon/runtimes/{rid}/tasks/claim"), json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let task = claim["task"]["id"].as_str().unwrap().to_string();
    let total = 1205;
    for batch in (1..=total).collect::<Vec<i64>>().chunks(300) {
        let messages: Vec<Value> = batch
            .iter()
            .map(|seq| json!({"seq": seq, "type": "text", "content": format!("m{seq}")}))
            .collect();
        let r = post(
            format!("/api/daemon/tasks/{task}/messages"),
            json!({"messages": messages}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
    }
    let logged = json_lines(&srv, admin, &["task", "logs", &task]);
    let seqs: Vec<i64> = logged.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>());
}

/// `agentd forge set|show|remove`, `agentd issue show` naming the pull request the
/// server opened (with a link to the issue at `--public-url`), and `agentd task push`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forge_commands_connect_the_workspace_and_issue_show_names_the_pull_request() {
    use agentd_testkit::fake_forge::FakeForge;
    let forge = FakeForge::start("ghp_cli_token").await;
    forge.add_repo("acme/widgets", "main");
    forge.push_branch("acme/widgets", "agentd/cli", &"a".repeat(40));
    let dir = tempfile::tempdir().unwrap();
    let srv = start_server_with(
        dir.path(),
        &[
            "--allow-local-repos",
            "--public-url",
            "https://board.example/",
        ],
    );
    let admin = std::fs::read_to_string(dir.path().join("admin-token"))
        .unwrap()
        .trim()
        .to_string();
    let wid = ok(&srv, &admin, &["workspace", "create", "team"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let token_file = dir.path().join("forge-token");
    std::fs::write(&token_file, "ghp_cli_token\n").unwrap();
    let set = ok(
        &srv,
        &admin,
        &[
            "forge",
            "set",
            "--workspace",
            &wid,
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
    assert_eq!(set["token"], "••••");
    assert!(
        set["webhook_secret"].as_str().unwrap().starts_with("whs_"),
        "{set}"
    );
    let shown = human(&srv, &admin, &["forge", "show", "--workspace", &wid]);
    assert!(shown.contains("forge:    github acme/widgets"), "{shown}");
    assert!(
        !shown.contains("ghp_cli_token") && !shown.contains("whs_"),
        "{shown}"
    );

    // A task completes with its branch pushed: the server opens the pull request.
    let http = reqwest::Client::new();
    let reg: Value = http
        .post(format!("{}/api/daemon/register", srv.url))
        .bearer_auth(&admin)
        .json(&json!({"workspace_id": wid, "daemon_id": "d",
                      "runtimes": [{"name": "c", "type": "claude", "status": "online"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rid = reg["runtimes"][0]["id"].as_str().unwrap().to_string();
    let agent = ok(
        &srv,
        &admin,
        &[
            "agent",
            "create",
            "--workspace",
            &wid,
            "--runtime",
            &rid,
            "bot",
        ],
    );
    let issue = ok(
        &srv,
        &admin,
        &[
            "issue",
            "create",
            "Widget fix",
            "--workspace",
            &wid,
            "--assign",
            agent["id"].as_str().unwrap(),
        ],
    );
    let iid = issue["id"].as_str().unwrap().to_string();
    let claimed: Value = http
        .post(format!("{}/api/daemon/runtimes/{rid}/tasks/claim", srv.url))
        .bearer_auth(&admin)
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
            json!({"output": "done", "pushed": {
            "remote_url": "https://github.com/acme/widgets", "branch": "agentd/cli",
            "commit": "a".repeat(40)}}),
        ),
    ] {
        let r = http
            .post(format!("{}/api/daemon/tasks/{tid}/{path}", srv.url))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let text = human(&srv, &admin, &["issue", "show", &iid]);
        if text.contains("pull request:") || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let want = format!("pull request: #1 open {}/acme/widgets/pull/1", forge.url);
    assert!(text.contains(&want), "{text}");
    let sent = forge.requests_to("POST", "/repos/acme/widgets/pulls");
    let body = sent[0].body["body"].as_str().unwrap();
    assert!(
        body.contains(&format!("https://board.example/#/issues/{iid}")),
        "{body}"
    );

    // Only a push_failed task can be pushed again.
    let (success, err) = cli(&srv, &admin, &["task", "push", &tid]);
    assert!(!success);
    assert!(
        err.as_str()
            .unwrap()
            .contains("only a task failed with push_failed"),
        "{err}"
    );

    ok(&srv, &admin, &["forge", "remove", "--workspace", &wid]);
    let (success, err) = cli(&srv, &admin, &["forge", "show", "--workspace", &wid]);
    assert!(
        !success && err.as_str().unwrap().contains("forge not connected"),
        "{err}"
    );
}

#[tokio::test]
async fn task_diff_and_issue_show_print_what_a_task_changed() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_server(dir.path());
    let admin = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let admin = admin.trim();
    let wid = ok(&srv, admin, &["workspace", "create", "w"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let member = ok(&srv, admin, &["token", "create", "--workspace", &wid])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let daemon = ok(
        &srv,
        admin,
        &["token", "create", "--daemon", "--workspace", &wid],
    )["token"]
        .as_str()
        .unwrap()
        .to_string();
    // The daemon's side, through the daemon API with its daemon token.
    let http = reqwest::Client::new();
    let post = |path: String, body: Value| {
        http.post(format!("{}{path}", srv.url))
            .bearer_auth(&daemon)
            .json(&body)
            .send()
    };
    let reg: Value = post(
        "/api/daemon/register".into(),
        json!({"workspace_id": wid, "daemon_id": "d",
               "runtimes": [{"name": "c", "type": "claude", "status": "online"}]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let rid = reg["runtimes"][0]["id"].as_str().unwrap().to_string();
    let agent = ok(
        &srv,
        &member,
        &[
            "agent",
            "create",
            "bot",
            "--workspace",
            &wid,
            "--runtime",
            &rid,
        ],
    );
    let agent = agent["id"].as_str().unwrap();
    let mut tasks = Vec::new();
    for title in ["change", "no change"] {
        let issue = ok(
            &srv,
            &member,
            &[
                "issue",
                "create",
                title,
                "--workspace",
                &wid,
                "--assign",
                agent,
            ],
        );
        let claim: Value = post(format!("/api/daemon/runtimes/{rid}/tasks/claim"), json!({}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let task = claim["task"]["id"].as_str().unwrap().to_string();
        tasks.push((issue["id"].as_str().unwrap().to_string(), task));
    }
    let diff = json!({
        "base_commit": "1111111111111111111111111111111111111111",
        "head_commit": "2222222222222222222222222222222222222222",
        "files": [
            {"path": "src/lib.rs", "additions": 2, "deletions": 1, "binary": false},
            {"path": "docs/a-longer-name.md", "additions": 1, "deletions": 0, "binary": false},
            {"path": "logo.png", "additions": 0, "deletions": 0, "binary": true},
        ],
        "additions": 3,
        "deletions": 1,
        "patch": "diff --git a/src/lib.rs b/src/lib.rs\n--- a/src/lib.rs\n+++ b/src/lib.rs\n\
                  @@ -1,2 +1,3 @@\n-old\n+new\n+more\n keep\n",
        "truncated": false,
    });
    let (issue, task) = &tasks[0];
    let r = post(
        format!("/api/daemon/tasks/{task}/complete"),
        json!({"output": "done", "diff": diff}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let r = post(
        format!("/api/daemon/tasks/{}/complete", tasks[1].1),
        json!({"output": "nothing to change"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);

    // Paths padded to the longest one, as `git diff --stat` does.
    let stat = [
        " src/lib.rs            | +2 -1",
        " docs/a-longer-name.md | +1 -0",
        " logo.png              | binary",
        " 3 files changed, +3 -1",
        "",
    ]
    .join("\n");
    let text = human(&srv, &member, &["task", "diff", task]);
    assert_eq!(
        text,
        format!(
            "{stat}\ndiff --git a/src/lib.rs b/src/lib.rs\n--- a/src/lib.rs\n\
             +++ b/src/lib.rs\n@@ -1,2 +1,3 @@\n-old\n+new\n+more\n keep\n"
        )
    );
    assert_eq!(
        human(&srv, &member, &["task", "diff", task, "--stat"]),
        stat
    );
    assert_eq!(ok(&srv, &member, &["task", "diff", task]), diff);

    let shown = human(&srv, &member, &["issue", "show", issue]);
    // The run's block: its short id, then what it changed.
    let run = shown
        .split_once(&task[..8])
        .unwrap_or_else(|| panic!("no run of the task in {shown}"))
        .1;
    assert!(run.contains("3 files changed, +3 -1"), "{shown}");
    let shown = human(&srv, &member, &["issue", "show", &tasks[1].0]);
    assert!(
        !shown.contains("changed"),
        "no diffstat without a diff: {shown}"
    );

    let (success, err) = cli(&srv, &member, &["task", "diff", &tasks[1].1]);
    assert!(!success);
    let err: Value = serde_json::from_str(err.as_str().unwrap()).unwrap();
    assert_eq!(err["error"]["status"], 404, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no diff"),
        "{err}"
    );
}

/// `agentd user create|list|update` and `agentd audit list` against a real server: the
/// admin token makes a user (the password from standard input), a member token may not,
/// the user signs in over HTTP, and the audit log shows both the sign-in and the user's
/// creation.
#[tokio::test]
async fn user_and_audit_commands() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let srv = start_server(dir.path());
    let admin = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let admin = admin.trim();
    let run_with_stdin = |token: &str, args: &[&str], stdin: &str| {
        let mut child = Command::new(BIN)
            .args(args)
            .arg("--json")
            .env("AGENTD_SERVER_URL", &srv.url)
            .env("AGENTD_TOKEN", token)
            .env_remove("AGENTD_PASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (success, out, err) = run_with_stdin(
        admin,
        &[
            "user",
            "create",
            "--email",
            "Ann@Example.com",
            "--admin",
            "--password-stdin",
        ],
        "correct horse battery\n",
    );
    assert!(success, "{err}");
    let u: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(u["email"], "ann@example.com");
    assert_eq!(u["is_admin"], true);
    // No password at all: refused before any request.
    let (success, _, err) = run_with_stdin(admin, &["user", "create", "--email", "x@y.z"], "");
    assert!(!success && err.contains("--password-stdin"), "{err}");
    // A member token is not a server admin.
    let ws = ok(&srv, admin, &["workspace", "create", "w"]);
    let member = ok(
        &srv,
        admin,
        &["token", "create", "--workspace", ws["id"].as_str().unwrap()],
    );
    let (success, _, err) = run_with_stdin(
        member["token"].as_str().unwrap(),
        &[
            "user",
            "create",
            "--email",
            "bo@example.com",
            "--password-stdin",
        ],
        "correct horse battery\n",
    );
    assert!(!success && err.contains("admin"), "{err}");
    let users = ok(&srv, admin, &["user", "list"]);
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");
    let (success, out, err) = run_with_stdin(
        admin,
        &[
            "user",
            "update",
            "ann@example.com",
            "--name",
            "Ann",
            "--password-stdin",
        ],
        "another horse battery\n",
    );
    assert!(success, "{err}");
    assert!(out.contains("\"Ann\""), "{out}");

    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/api/v1/session", srv.url))
        .json(&json!({"email": "ann@example.com", "password": "another horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let entries = ok(&srv, admin, &["audit", "list"]);
    let actions: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.first(), Some(&"signin"), "{entries}");
    for a in ["user.create", "user.update", "token.create"] {
        assert!(actions.contains(&a), "{a} not in {actions:?}");
    }
    let only = ok(&srv, admin, &["audit", "list", "--action", "signin"]);
    assert_eq!(only.as_array().unwrap().len(), 1, "{only}");
    let human = human(&srv, admin, &["audit", "list"]);
    assert!(
        human.contains("signin") && human.contains("ann@example.com"),
        "{human}"
    );
}

/// `agentd login`: with the email and the password (on standard input) the CLI gets a
/// token of the user's own — its role in each of its workspaces — and saves it in its
/// context, so the next command needs no token; a wrong password is exit code 6 and
/// saves nothing.
#[tokio::test]
async fn login_saves_a_token_of_the_users_own() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let srv = start_server(dir.path());
    let admin = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let admin = admin.trim();
    let ws = ok(&srv, admin, &["workspace", "create", "team"]);
    let ws_id = ws["id"].as_str().unwrap();
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/api/v1/users", srv.url))
        .bearer_auth(admin)
        .json(&json!({"email": "kim@example.com", "password": "kim password 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = http
        .put(format!(
            "{}/api/v1/workspaces/{ws_id}/members/kim@example.com",
            srv.url
        ))
        .bearer_auth(admin)
        .json(&json!({"role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let config = dir.path().join("config");
    let login = |password: &str| {
        let mut child = Command::new(BIN)
            .args([
                "login",
                "--server-url",
                &srv.url,
                "--email",
                "kim@example.com",
            ])
            .args(["--password-stdin", "--json"])
            .env("XDG_CONFIG_HOME", &config)
            .env_remove("AGENTD_TOKEN")
            .env_remove("AGENTD_SERVER_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = login("wrong password");
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    assert!(!config.join("agentd/cli.toml").exists());
    let out = login("kim password 1");
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["workspace_ids"], json!([ws_id]), "{v}");
    // The next commands use the saved context: the token is kim's, a viewer's.
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .arg("--json")
            .env("XDG_CONFIG_HOME", &config)
            .env_remove("AGENTD_TOKEN")
            .env_remove("AGENTD_SERVER_URL")
            .output()
            .unwrap()
    };
    let out = run(&["workspace", "list"]);
    assert!(out.status.success(), "{out:?}");
    let out = run(&["issue", "create", "viewers cannot", "--workspace", ws_id]);
    assert_eq!(out.status.code(), Some(6), "a viewer's token: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("member role"),
        "{out:?}"
    );
}

/// `agentd login --web` (a single sign-on user has no password to give the CLI): the
/// token a signed-in person makes on the board's token page is pasted on standard input,
/// checked against the server and saved; a token the server refuses saves nothing.
#[tokio::test]
async fn login_on_the_web_saves_the_token_made_on_the_board() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let srv = start_server(dir.path());
    let admin = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let admin = admin.trim();
    let ws = ok(&srv, admin, &["workspace", "create", "sso"]);
    let ws_id = ws["id"].as_str().unwrap();
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/api/v1/users", srv.url))
        .bearer_auth(admin)
        .json(&json!({"email": "lu@example.com", "password": "lu password 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = http
        .put(format!(
            "{}/api/v1/workspaces/{ws_id}/members/lu@example.com",
            srv.url
        ))
        .bearer_auth(admin)
        .json(&json!({"role": "member"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // What the board's token page does for a signed-in person: a token of their own.
    let resp = http
        .post(format!("{}/api/v1/session", srv.url))
        .json(&json!({"email": "lu@example.com", "password": "lu password 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let session: Value = resp.json().await.unwrap();
    let resp = http
        .post(format!("{}/api/v1/tokens", srv.url))
        .header("cookie", &cookie)
        .header("x-csrf-token", session["csrf_token"].as_str().unwrap())
        .json(&json!({"name": "laptop", "workspace_ids": [ws_id]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let token = resp.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();

    let config = dir.path().join("config");
    let login = |pasted: &str| {
        let mut child = Command::new(BIN)
            .args(["login", "--server-url", &srv.url, "--web", "--json"])
            .env("XDG_CONFIG_HOME", &config)
            // No browser here: the page's address is printed instead.
            .env("BROWSER", "/bin/true")
            .env_remove("AGENTD_TOKEN")
            .env_remove("AGENTD_SERVER_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{pasted}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = login("agd_0000000000000000000000000000000000000000");
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}/#/tokens", srv.url)), "{err}");
    assert!(err.contains("refused that token"), "{err}");
    assert!(!config.join("agentd/cli.toml").exists());

    let out = login(&token);
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["workspace_ids"], json!([ws_id]), "{v}");
    let out = Command::new(BIN)
        .args([
            "issue",
            "create",
            "from the saved context",
            "--workspace",
            ws_id,
            "--json",
        ])
        .env("XDG_CONFIG_HOME", &config)
        .env_remove("AGENTD_TOKEN")
        .env_remove("AGENTD_SERVER_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// OIDC on `agentd server`: the issuer, client id, secret file and button name are flags
/// (the secret never is: `--oidc-issuer` without one refuses to start), the board is told
/// the button's name, and `agentd workspace settings --oidc-default-role` sets the role
/// OIDC users get, audited as a workspace-settings change.
#[tokio::test]
async fn oidc_server_flags_and_the_workspace_default_role() {
    let dir = tempfile::tempdir().unwrap();
    // No secret: refused at start, naming what is missing.
    let out = Command::new(BIN)
        .args(["server", "--listen", "127.0.0.1:0", "--json", "--data-dir"])
        .arg(dir.path())
        .args([
            "--oidc-issuer",
            "http://127.0.0.1:9",
            "--oidc-client-id",
            "agentd",
        ])
        .env_remove("AGENTD_OIDC_CLIENT_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--oidc-client-secret-file"), "{err}");

    let secret = dir.path().join("oidc-secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let srv = start_server_with(
        dir.path(),
        &[
            "--oidc-issuer",
            "http://127.0.0.1:9",
            "--oidc-client-id",
            "agentd",
            "--oidc-client-secret-file",
            secret.to_str().unwrap(),
            "--oidc-name",
            "Acme SSO",
        ],
    );
    let providers: Value = reqwest::get(format!("{}/api/v1/session/providers", srv.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        providers["oidc"],
        json!({"name": "Acme SSO", "login_url": "/api/v1/oidc/login"})
    );

    let admin = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let admin = admin.trim();
    let ws = ok(&srv, admin, &["workspace", "create", "w"]);
    let id = ws["id"].as_str().unwrap();
    let v = ok(&srv, admin, &["workspace", "settings", "--workspace", id]);
    assert_eq!(v["oidc_default_role"], Value::Null, "{v}");
    let v = ok(
        &srv,
        admin,
        &[
            "workspace",
            "settings",
            "--workspace",
            id,
            "--oidc-default-role",
            "member",
        ],
    );
    assert_eq!(v["oidc_default_role"], "member", "{v}");
    let v = ok(&srv, admin, &["workspace", "settings", "--workspace", id]);
    assert_eq!(v["oidc_default_role"], "member", "{v}");
    let text = human(
        &srv,
        admin,
        &[
            "workspace",
            "settings",
            "--workspace",
            id,
            "--oidc-default-role",
            "none",
        ],
    );
    assert!(text.contains("OIDC default role none"), "{text}");
    let (success, err) = cli(
        &srv,
        admin,
        &[
            "workspace",
            "settings",
            "--workspace",
            id,
            "--oidc-default-role",
            "owner",
        ],
    );
    assert!(!success, "owner is not a default role: {err}");
    let entries = ok(
        &srv,
        admin,
        &["audit", "list", "--action", "workspace.settings"],
    );
    assert_eq!(entries.as_array().unwrap().len(), 2, "{entries}");
}
