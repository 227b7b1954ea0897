//! The CLI as a daily user meets it (issue 16): references by key, prefix and name,
//! the default workspace, the context `agentd up` writes, errors for people and as JSON
//! with their exit codes, commands that cannot double up, `task logs --follow`'s closing
//! line and exit code, one `agentd up` per data dir, and no escape codes when piped.
//!
//! Real binaries: `agentd server`/`agentd up` on port 0 and the CLI as a child process,
//! each with its own HOME and XDG_CONFIG_HOME in a tempdir and no AGENTD_* variables
//! from the environment running the tests. The daemon's side of a task (claim, start,
//! messages, complete/fail) is played over the daemon API, as `cli_server.rs` does.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{BIN, Proc, Server};
use serde_json::{Value, json};

/// A user's shell: a home and config dir of its own, no AGENTD_* variables, its
/// current dir outside any git repository.
struct Shell {
    home: PathBuf,
    env: Vec<(String, String)>,
}

impl Shell {
    fn new(root: &Path) -> Shell {
        let home = root.join("home");
        std::fs::create_dir_all(home.join(".config")).unwrap();
        Shell {
            home,
            env: Vec::new(),
        }
    }

    fn config_dir(&self) -> PathBuf {
        self.home.join(".config")
    }

    fn with(mut self, k: &str, v: &str) -> Shell {
        self.env.push((k.into(), v.into()));
        self
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(&self.home)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.config_dir())
            .env_remove("AGENTD_SERVER_URL")
            .env_remove("AGENTD_TOKEN")
            .env_remove("AGENTD_WORKSPACE")
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run agentd")
    }

    /// Runs and asserts success; stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "agentd {args:?} exited {:?}: {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let text = self.ok(&a);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// Runs with `--json`, expecting exit `code`: the error object on stderr (stdout
    /// must be empty).
    fn json_err(&self, args: &[&str], code: i32) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.run(&a);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(code),
            "agentd {args:?}: stdout {} stderr {stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(out.stdout.is_empty(), "{args:?}: stdout {:?}", out.stdout);
        let v: Value = serde_json::from_str(stderr.trim())
            .unwrap_or_else(|e| panic!("{args:?}: stderr is not one JSON object ({e}): {stderr}"));
        let err = &v["error"];
        for k in ["message", "hint", "code", "status", "matches"] {
            assert!(err.get(k).is_some(), "{k} missing in {v}");
        }
        v["error"].clone()
    }

    /// Runs without `--json`, expecting exit `code`: stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "agentd {args:?}: stdout {} stderr {stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        stderr
    }
}

/// A server, its admin's shell and a member's shell (both pointed at it by the
/// environment), a workspace `AGD` (name `agentd`), and a runtime named `claude`
/// registered over the daemon API.
struct World {
    srv: Server,
    dir: tempfile::TempDir,
    admin: Shell,
    member: Shell,
    runtime: String,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let admin = Shell::new(&dir.path().join("admin"))
        .with("AGENTD_SERVER_URL", &srv.url)
        .with("AGENTD_TOKEN", &srv.admin);
    let ws = admin.json(&["workspace", "create", "agentd", "--key", "AGD"]);
    assert_eq!(ws["key"], "AGD", "{ws}");
    let member_token =
        admin.json(&["token", "create", "--workspace", "AGD", "--name", "alice"])["token"]
            .as_str()
            .unwrap()
            .to_string();
    let member = Shell::new(&dir.path().join("member"))
        .with("AGENTD_SERVER_URL", &srv.url)
        .with("AGENTD_TOKEN", &member_token);
    let runtime = register(&srv, ws["id"].as_str().unwrap(), "claude");
    World {
        srv,
        dir,
        admin,
        member,
        runtime,
    }
}

/// Registers a runtime named `name` in workspace `ws` (the admin may call the daemon
/// API); its id.
fn register(srv: &Server, ws: &str, name: &str) -> String {
    let v = daemon_call(
        srv,
        "/api/daemon/register",
        json!({"workspace_id": ws, "daemon_id": format!("d-{name}"), "device_name": "box",
               "runtimes": [{"name": name, "type": "claude", "version": "2.1.0", "status": "online"}]}),
    );
    v["runtimes"][0]["id"].as_str().unwrap().to_string()
}

/// A daemon API call with the admin token, blocking (`curl`).
fn daemon_call(srv: &Server, path: &str, body: Value) -> Value {
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body", "-X", "POST", "-H"])
        .arg(format!("Authorization: Bearer {}", srv.admin))
        .args(["-H", "Content-Type: application/json", "--data-binary"])
        .arg(body.to_string())
        .arg(format!("{}{path}", srv.url))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "POST {path}: {text}");
    if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
    }
}

/// Claims the runtime's next task and starts it: its id.
fn claim_and_start(w: &World) -> String {
    let claim = daemon_call(
        &w.srv,
        &format!("/api/daemon/runtimes/{}/tasks/claim", w.runtime),
        json!({}),
    );
    let id = claim["task"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("nothing to claim: {claim}"))
        .to_string();
    daemon_call(&w.srv, &format!("/api/daemon/tasks/{id}/start"), json!({}));
    id
}

/// Creates backlog issues in `ws` until two ids share their first 4 characters: those two.
fn shared_prefix(srv: &Server, ws: &str) -> (Value, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let mut seen: std::collections::HashMap<String, Value> = Default::default();
        for n in 0..3000 {
            let issue: Value = http
                .post(format!("{}/api/v1/workspaces/{ws}/issues", srv.url))
                .bearer_auth(&srv.admin)
                .json(&json!({"title": format!("filler {n}"), "status": "backlog"}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let prefix = issue["id"].as_str().unwrap()[..4].to_string();
            if let Some(first) = seen.insert(prefix, issue.clone()) {
                return (first, issue);
            }
        }
        panic!("3000 issues without a shared 4-character prefix");
    })
}

fn no_escapes(text: &str) {
    assert!(!text.contains('\u{1b}'), "escape codes in {text:?}");
}

#[test]
fn references_by_key_prefix_and_name_and_what_people_read() {
    let w = world();
    // One workspace visible: no --workspace needed anywhere.
    let created = w
        .member
        .ok(&["agent", "create", "my-agent", "--runtime", "claude"]);
    assert!(
        created.contains("created agent my-agent on runtime claude"),
        "{created}"
    );
    let agents = w.member.ok(&["agent", "list"]);
    let header = agents.lines().next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("RUNTIME"),
        "{agents}"
    );
    assert!(
        agents.contains("my-agent") && agents.contains("claude"),
        "{agents}"
    );

    let text = w.member.ok(&[
        "issue",
        "create",
        "Fix the flaky test",
        "--assign",
        "my-agent",
    ]);
    assert!(text.contains("created AGD-1 Fix the flaky test"), "{text}");
    assert!(
        text.contains("queued task ") && text.contains("for agent my-agent"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}/#/issues/", w.srv.url)),
        "the board URL: {text}"
    );
    assert!(
        !text.contains("start the daemon"),
        "a runtime is online: no daemon hint: {text}"
    );
    // An assigned backlog issue queues nothing, and says so.
    let text = w.member.ok(&[
        "issue", "create", "Later", "--assign", "my-agent", "--status", "backlog",
    ]);
    assert!(text.contains("created AGD-2"), "{text}");
    assert!(
        text.contains("nothing queued") && text.contains("agentd issue status AGD-2 todo"),
        "{text}"
    );

    let list = w.member.ok(&["issue", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["KEY", "STATUS", "TITLE", "AGENT", "RUNS", "AGE"],
        "{list}"
    );
    assert!(
        lines[1].starts_with("AGD-1 ") && lines[1].contains("my-agent"),
        "{list}"
    );
    // The STATUS column starts at the same place on every line.
    let col = lines[0].find("STATUS").unwrap();
    assert!(
        lines[1..].iter().all(|l| l[col - 2..col] == *"  "),
        "{list}"
    );
    let todo = w.member.json(&["issue", "list", "--status", "backlog"]);
    assert_eq!(todo.as_array().unwrap().len(), 1, "{todo}");
    assert_eq!(todo[0]["key"], "AGD-2");
    // A status outside the closed set is a usage error naming the allowed ones.
    let usage = w.member.fails(&["issue", "list", "--status", "doing"], 2);
    assert!(usage.contains("in_progress"), "{usage}");

    // A task by a 4-character prefix of its id; the issue by its key.
    let task = claim_and_start(&w);
    daemon_call(
        &w.srv,
        &format!("/api/daemon/tasks/{task}/complete"),
        json!({"output": "Fixed: the test waited on a timer.", "branch_name": "agentd/agd-1"}),
    );
    let shown = w.member.ok(&["task", "show", &task[..4]]);
    for want in [
        "completed",
        "issue:",
        "AGD-1",
        "agent:",
        "my-agent",
        "agentd/agd-1",
        "Fixed: the test waited on a timer.",
    ] {
        assert!(shown.contains(want), "{want} missing in:\n{shown}");
    }
    let shown = w.member.ok(&["issue", "show", "agd-1"]);
    for want in [
        "AGD-1",
        "Fix the flaky test",
        "assignee:  my-agent",
        "Runs (1)",
        &task[..8],
        "branch agentd/agd-1",
        "Activity",
        "alice created the issue",
        "run ",
    ] {
        assert!(shown.contains(want), "{want:?} missing in:\n{shown}");
    }
    assert!(!shown.contains("\n\n\n"), "no stray blank lines:\n{shown}");
    assert!(
        !shown.contains(&w.runtime) && !shown.contains(&task),
        "no raw uuids:\n{shown}"
    );
    no_escapes(&shown);

    // The JSON is the server's.
    let v = w.member.json(&["issue", "show", "AGD-1"]);
    assert_eq!(v["issue"]["key"], "AGD-1");
    assert!(v["activity"].is_array(), "{v}");

    // An id prefix that two issues share is ambiguous: exit 4 with both listed. Issue
    // ids are random; backlog issues are made until two share their first 4 characters
    // (about 320 on average; 3000 miss with a probability below 1e-29).
    let ws_id = v["issue"]["workspace_id"].as_str().unwrap().to_string();
    let (a, b) = shared_prefix(&w.srv, &ws_id);
    let prefix = &a["id"].as_str().unwrap()[..4];
    let err = w.member.fails(&["issue", "show", prefix], 4);
    assert!(
        err.contains(&format!("\"{prefix}\" matches more than one issue")),
        "{err}"
    );
    for issue in [&a, &b] {
        assert!(err.contains(issue["key"].as_str().unwrap()), "{err}");
    }
    assert!(err.contains("hint:"), "{err}");
    let err = w.member.json_err(&["issue", "show", prefix], 4);
    assert_eq!(err["code"], "ambiguous");
    let ids: Vec<&str> = err["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&a["id"].as_str().unwrap()) && ids.contains(&b["id"].as_str().unwrap()));

    // Two workspaces named alike: the name is ambiguous, exit 4 with the matches.
    w.admin
        .json(&["workspace", "create", "twin", "--key", "TWA"]);
    w.admin
        .json(&["workspace", "create", "twin", "--key", "TWB"]);
    let err = w.admin.fails(&["agent", "list", "--workspace", "twin"], 4);
    assert!(
        err.contains("\"twin\" matches more than one workspace"),
        "{err}"
    );
    assert!(err.contains("(TWA)") && err.contains("(TWB)"), "{err}");
    let err = w
        .admin
        .json_err(&["agent", "list", "--workspace", "twin"], 4);
    assert_eq!(err["code"], "ambiguous");
    assert_eq!(err["status"], 409);
    assert_eq!(err["matches"].as_array().unwrap().len(), 2, "{err}");
}

#[test]
fn the_default_workspace_comes_from_the_flag_env_context_or_the_only_one() {
    let w = world();
    let ops_id = w
        .admin
        .json(&["workspace", "create", "ops", "--key", "OPS"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    register(&w.srv, &ops_id, "ops-claude");
    // The admin sees two workspaces and none is chosen: an error listing them.
    let err = w.admin.fails(&["agent", "list"], 4);
    assert!(err.contains("which workspace?"), "{err}");
    for want in [
        "AGD",
        "agentd",
        "OPS",
        "ops",
        "--workspace",
        "AGENTD_WORKSPACE",
    ] {
        assert!(err.contains(want), "{want} missing in {err}");
    }
    let err = w.admin.json_err(&["agent", "list"], 4);
    assert_eq!(err["code"], "workspace_required");
    assert_eq!(err["matches"].as_array().unwrap().len(), 2, "{err}");

    // AGENTD_WORKSPACE, by key; the flag wins over it.
    let admin = Shell {
        home: w.admin.home.clone(),
        env: w.admin.env.clone(),
    }
    .with("AGENTD_WORKSPACE", "OPS");
    admin.json(&["agent", "create", "ops-bot", "--runtime", "ops-claude"]);
    let ops = admin.json(&["agent", "list"]);
    assert_eq!(ops[0]["name"], "ops-bot", "{ops}");
    let agd = admin.json(&["agent", "list", "--workspace", "AGD"]);
    assert_eq!(agd.as_array().unwrap().len(), 0, "{agd}");
    let token = admin.json(&["token", "create", "--name", "ops-only"]);
    assert_eq!(token["workspace_ids"], json!([ops_id]), "{token}");
    let created = admin.ok(&["issue", "create", "In ops"]);
    assert!(created.contains("created OPS-1"), "{created}");
    // An issue's tasks need no workspace: AGENTD_WORKSPACE does not get in the way.
    let none = admin.ok(&["task", "list", "--issue", "OPS-1"]);
    assert!(none.starts_with("No tasks yet"), "{none}");

    // The context's workspace, set with `agentd context set`.
    w.admin.ok(&["context", "set", "--workspace", "ops"]);
    let ops = w.admin.json(&["agent", "list"]);
    assert_eq!(ops[0]["name"], "ops-bot", "{ops}");
    let shown = w.admin.ok(&["context", "show"]);
    assert!(
        shown.contains("workspace:    ops (context file)"),
        "{shown}"
    );
    w.admin.ok(&["context", "clear"]);
    w.admin.fails(&["agent", "list"], 4);

    // A malformed context file is an error naming the file and the problem.
    let file = w.admin.config_dir().join("agentd/cli.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "server_url = \"http://x\"\nworkspce = \"AGD\"\n").unwrap();
    let err = w.admin.fails(&["agent", "list"], 1);
    assert!(
        err.contains(&file.display().to_string()) && err.contains("workspce"),
        "{err}"
    );
}

#[test]
fn errors_for_people_and_as_json_with_their_exit_codes() {
    let w = world();
    // 3: not found, with a hint.
    let err = w.member.fails(&["issue", "show", "AGD-99"], 3);
    assert!(err.contains("no issue matches \"AGD-99\""), "{err}");
    assert!(err.contains("agentd issue list"), "{err}");
    assert!(
        !err.contains("GET /api"),
        "the request only with --verbose: {err}"
    );
    let err = w.member.fails(&["issue", "show", "AGD-99", "--verbose"], 3);
    assert!(
        err.contains("GET /api/v1/issues/AGD-99") && err.contains("404"),
        "{err}"
    );
    let err = w.member.json_err(&["issue", "show", "AGD-99"], 3);
    assert_eq!(err["status"], 404);
    assert!(
        err["hint"].as_str().unwrap().contains("issue list"),
        "{err}"
    );
    // 6: a token the server refuses, and no token at all.
    let bad = Shell::new(&w.dir.path().join("bad"))
        .with("AGENTD_SERVER_URL", &w.srv.url)
        .with("AGENTD_TOKEN", "agd_wrong");
    let err = bad.fails(&["issue", "list"], 6);
    assert!(
        err.contains("token was refused") && err.contains("hint:"),
        "{err}"
    );
    assert_eq!(bad.json_err(&["issue", "list"], 6)["status"], 401);
    let none = Shell::new(&w.dir.path().join("none")).with("AGENTD_SERVER_URL", &w.srv.url);
    assert_eq!(none.json_err(&["issue", "list"], 6)["code"], "no_token");
    // 7: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gone = Shell::new(&w.dir.path().join("gone"))
        .with("AGENTD_SERVER_URL", &format!("http://127.0.0.1:{port}"))
        .with("AGENTD_TOKEN", "agd_x");
    let err = gone.fails(&["issue", "list"], 7);
    assert!(
        err.contains(&format!(
            "cannot reach the server at http://127.0.0.1:{port}"
        )) && err.contains("agentd up"),
        "{err}"
    );
    assert_eq!(gone.json_err(&["issue", "list"], 7)["code"], "unreachable");
    // A server URL without a scheme.
    let schemeless = Shell::new(&w.dir.path().join("schemeless"))
        .with("AGENTD_SERVER_URL", "localhost:8080")
        .with("AGENTD_TOKEN", "agd_x");
    let err = schemeless.fails(&["issue", "list"], 1);
    assert!(
        err.contains(
            "invalid server URL \"localhost:8080\": add the scheme, e.g. http://localhost:8080"
        ),
        "{err}"
    );
    assert_eq!(
        schemeless.json_err(&["issue", "list"], 1)["code"],
        "invalid_server_url"
    );
    // 2: clap's usage errors.
    w.member.fails(&["issue", "show"], 2);
}

#[tokio::test]
async fn retry_and_cancel_cannot_double_up_and_follow_ends_with_how_the_task_ended() {
    let w = world();
    w.member
        .ok(&["agent", "create", "bot", "--runtime", "claude"]);
    w.member.ok(&["issue", "create", "One", "--assign", "bot"]);
    let task = claim_and_start(&w);
    daemon_call(
        &w.srv,
        &format!("/api/daemon/tasks/{task}/messages"),
        json!({"messages": [
            {"seq": 1, "type": "text", "content": "Looking at the test."},
            {"seq": 2, "type": "tool_use", "tool": "Bash", "input": {"command": "cargo test"}},
            {"seq": 3, "type": "tool_result", "tool": "Bash", "output": "1 failed"},
        ]}),
    );
    // A follower started while the task runs ends when it fails: exit 8.
    let follower = w
        .member
        .command(&["task", "logs", &task[..6], "--follow", "--timestamps"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut follower = Proc(follower);
    tokio::time::sleep(Duration::from_millis(300)).await;
    daemon_call(
        &w.srv,
        &format!("/api/daemon/tasks/{task}/fail"),
        json!({"error": "the model refused", "failure_reason": "agent_error"}),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = follower.0.try_wait().unwrap() {
            break st;
        }
        assert!(std::time::Instant::now() < deadline, "follow did not end");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut out = String::new();
    follower
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(status.code(), Some(8), "{out}");
    no_escapes(&out);
    for want in [
        "agent    Looking at the test.",
        "tool     Bash {\"command\":\"cargo test\"}",
        "result   1 failed",
        "failed after ",
        ": agent_error: the model refused",
    ] {
        assert!(out.contains(want), "{want:?} missing in:\n{out}");
    }
    assert!(!out.contains("TOOL_USE") && !out.contains("#1 "), "{out}");
    let first = out.lines().next().unwrap();
    assert!(
        first.len() > 9 && first.as_bytes()[2] == b':' && first.as_bytes()[5] == b':',
        "--timestamps prefixes HH:MM:SS: {first:?}"
    );

    // Under --json: the messages as JSON lines, the ending as a JSON error, exit 8.
    let out = w.member.run(&["task", "logs", &task, "--follow", "--json"]);
    assert_eq!(out.status.code(), Some(8), "{out:?}");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[1]["type"], "tool_use");
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["error"]["code"], "task_failed", "{err}");

    // Cancel of an ended task: exit 5, saying how it ended.
    let err = w.member.fails(&["task", "cancel", &task], 5);
    assert!(err.contains("already failed"), "{err}");
    assert_eq!(
        w.member.json_err(&["task", "cancel", &task], 5)["code"],
        "already_ended"
    );
    // Retry once; the second retry is refused naming the first.
    let retry = w.member.json(&["task", "retry", &task]);
    let retry_id = retry["id"].as_str().unwrap().to_string();
    let err = w.member.fails(&["task", "retry", &task], 5);
    assert!(
        err.contains(&format!(
            "task {task} was already retried as {}",
            &retry_id[..8]
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("agentd task logs {} --follow", &retry_id[..8])),
        "{err}"
    );
    let err = w.member.json_err(&["task", "retry", &task], 5);
    assert_eq!(err["code"], "already_retried");
    assert_eq!(err["matches"][0]["id"], retry_id.as_str(), "{err}");
    let shown = w.member.ok(&["task", "show", &task]);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("retried as:") && l.ends_with(&retry_id[..8])),
        "{shown}"
    );

    let tasks = w.member.ok(&["task", "list", "--issue", "AGD-1"]);
    let rows: Vec<&str> = tasks.lines().collect();
    assert_eq!(
        rows[0].split_whitespace().collect::<Vec<_>>(),
        ["ID", "ISSUE", "AGENT", "STATUS", "CREATED", "DURATION"],
        "{tasks}"
    );
    assert_eq!(rows.len(), 3, "the run and its retry: {tasks}");
    assert!(
        rows[1].starts_with(&task[..8]) && rows[1].contains("failed"),
        "{tasks}"
    );
    let failed = w.member.json(&["task", "list", "--status", "queued"]);
    assert_eq!(
        failed[0]["id"],
        retry_id.as_str(),
        "the latest run of AGD-1: {failed}"
    );

    // The retry is cancelled by the member: follow exits 9 naming who.
    let cancelled = w.member.ok(&["task", "cancel", &retry_id]);
    assert!(cancelled.contains("cancelled task"), "{cancelled}");
    let out = w.member.run(&["task", "logs", &retry_id, "--follow"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(9), "{text}");
    assert!(
        text.contains("cancelled after") && text.contains("by alice"),
        "{text}"
    );
    let err = w.member.fails(&["task", "cancel", &retry_id], 5);
    assert!(err.contains("was already cancelled"), "{err}");

    // A completed task: exit 0, the final output, and the closing line.
    w.member.ok(&["issue", "create", "Two", "--assign", "bot"]);
    let done = claim_and_start(&w);
    daemon_call(
        &w.srv,
        &format!("/api/daemon/tasks/{done}/complete"),
        json!({"output": "All green now."}),
    );
    let out = w.member.ok(&["task", "logs", &done, "--follow"]);
    assert!(out.contains("All green now."), "{out}");
    assert!(
        out.trim_end()
            .lines()
            .last()
            .unwrap()
            .contains("completed in "),
        "{out}"
    );
    let err = w.member.fails(&["task", "cancel", &done], 5);
    assert!(err.contains("already completed"), "{err}");
}

#[test]
fn colour_only_on_request_when_piped_and_never_in_redirected_logs() {
    let w = world();
    w.member.ok(&["issue", "create", "Plain"]);
    for args in [&["issue", "list"][..], &["issue", "show", "AGD-1"][..]] {
        no_escapes(&w.member.ok(args));
        let forced = Shell {
            home: w.member.home.clone(),
            env: w.member.env.clone(),
        }
        .with("CLICOLOR_FORCE", "1");
        assert!(
            forced.ok(args).contains('\u{1b}'),
            "CLICOLOR_FORCE colours {args:?}"
        );
        let none = forced.with("NO_COLOR", "1");
        no_escapes(&none.ok(args));
    }
    no_escapes(&w.member.fails(&["issue", "show", "AGD-99"], 3));
    // The server's log went to a file: no escape codes in it.
    no_escapes(&std::fs::read_to_string(&w.srv.log).unwrap());
}

/// `agentd issue list | head -1` and `… | grep -q x`: a reader that went away ends a
/// client command quietly (141, as SIGPIPE would), never with a panic on stderr. The
/// pipe's read end is closed before the command starts, so its first write fails.
#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    let w = world();
    w.member.ok(&["issue", "create", "Piped"]);
    for args in [
        &["issue", "list"][..],
        &["issue", "show", "AGD-1", "--json"][..],
    ] {
        let (read, write) = nix::unistd::pipe().unwrap();
        drop(read);
        let out = w
            .member
            .command(args)
            .stdout(Stdio::from(write))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(141), "{args:?}: {err}");
    }
}

/// A stand-in `claude` on PATH: a supported version, nothing else.
fn claude_bin(dir: &Path) -> PathBuf {
    common::stand_in_claude(dir, "exit 1")
}

#[test]
fn up_saves_the_context_prints_a_real_guide_and_runs_once_per_data_dir() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let bin = claude_bin(dir.path());
    let shell = Shell::new(dir.path()).with("PATH", &format!("{}:/usr/bin:/bin", bin.display()));
    let data = dir.path().join("data");
    let mut up = Proc(
        shell
            .command(&["up", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("up.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut guide = String::new();
    let mut lines = BufReader::new(up.0.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        let n = lines.read_line(&mut line).unwrap();
        assert!(n > 0, "up ended before its guide: {guide}");
        guide.push_str(&line);
        if line.contains("agentd issue show") {
            break;
        }
    }
    no_escapes(&guide);
    for unwanted in ["<RUNTIME_ID>", "<AGENT_ID>", "<ISSUE_ID>", "jq", "export "] {
        assert!(!guide.contains(unwanted), "{unwanted:?} in:\n{guide}");
    }
    assert!(
        guide.contains("/#/signin/asc_"),
        "a one-click sign-in link:\n{guide}"
    );
    assert!(
        guide.contains("Runtimes: Claude ("),
        "the real runtime:\n{guide}"
    );
    // The workspace's one Claude runtime goes by its provider.
    assert!(
        guide.contains("agentd agent create my-agent --runtime claude\n"),
        "{guide}"
    );

    // The context file: private, and enough for a clean shell.
    let file = shell.config_dir().join("agentd/cli.toml");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().unwrap()), 0o700);
    let ctx: toml::Table = toml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let token = ctx["token"].as_str().unwrap().to_string();
    let runtimes = shell.json(&["runtime", "list"]);
    assert!(
        runtimes
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["provider"] == "claude"),
        "{runtimes}"
    );
    let shown = shell.ok(&["context", "show"]);
    assert!(shown.contains("(context file)"), "{shown}");
    assert!(!shown.contains(&token), "never the whole token: {shown}");
    assert!(!guide.contains(&token), "never the token in the guide");

    // A second `up` on the same data dir is refused at once; the first keeps running.
    let t0 = std::time::Instant::now();
    let second = shell
        .command(&["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(10), "refused at once");
    assert!(
        err.contains(&format!(
            "agentd up is already running with data dir {} (pid {}",
            data.display(),
            up.0.id()
        )) && err.contains("--data-dir"),
        "{err}"
    );
    assert!(err.contains(ctx["server_url"].as_str().unwrap()), "{err}");
    assert!(
        up.0.try_wait().unwrap().is_none(),
        "the first up still runs"
    );
    shell.json(&["runtime", "list"]);
}

/// The real daemon runs a stand-in `claude` (output recorded from the real CLI, or a
/// failure when the issue's title says so): `task logs --follow` prints the transcript
/// and the agent's final message, ends with how the run ended, and exits 0 or 8.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_a_real_daemons_run_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let (ws, member, daemon) = srv.workspace_with_tokens("daemon");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../agentd-daemon/tests/fixtures/agent-output/claude-text.jsonl");
    let bin = common::stand_in_claude(
        dir.path(),
        &format!(
            "if agentd issue show \"$AGENTD_ISSUE_ID\" --json | grep -q 'Break it'; then \
             echo 'the model refused' >&2; exit 1; fi\n{}",
            common::replay(&fixture)
        ),
    );
    std::os::unix::fs::symlink(BIN, bin.join("agentd")).unwrap();
    let _daemon = common::spawn_daemon(
        dir.path(),
        &bin,
        &srv.url,
        &daemon,
        &[
            "--sandbox",
            "off",
            "--heartbeat-interval",
            "1s",
            "--poll-interval",
            "1s",
            "--device-name",
            "box",
        ],
    );
    let shell = Shell::new(&dir.path().join("user"))
        .with("AGENTD_SERVER_URL", &srv.url)
        .with("AGENTD_TOKEN", &member);
    common::online_runtime(&srv.url, &member, &ws, "claude", 30).await;
    shell.ok(&["agent", "create", "bot", "--runtime", "Claude (box)"]);
    for (title, code, closing) in [
        ("Say hello", 0, "-- completed in "),
        ("Break it", 8, "-- failed after "),
    ] {
        let created = shell.json(&["issue", "create", title, "--assign", "bot"]);
        let key = created["key"].as_str().unwrap().to_string();
        let task = shell.json(&["issue", "show", &key])["tasks"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let out = tokio::task::spawn_blocking({
            let cmd = shell.command(&["task", "logs", &task[..8], "--follow"]);
            move || {
                let mut cmd = cmd;
                cmd.output().unwrap()
            }
        });
        let out = tokio::time::timeout(Duration::from_secs(60), out)
            .await
            .expect("follow ends with the run")
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "{title}: {text}");
        no_escapes(&text);
        let last = text.trim_end().lines().last().unwrap_or_default();
        assert!(last.starts_with(closing), "{title}: {text}");
        if code == 0 {
            assert!(text.contains("Hello from the mock model."), "{text}");
        } else {
            assert!(last.contains("agent_error"), "{text}");
        }
    }
}

/// The "start the daemon" hint appears when no runtime of the workspace is online, and
/// only then.
#[tokio::test]
async fn the_daemon_hint_appears_only_without_an_online_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with_args(dir.path(), &["--offline-after-secs", "1"]);
    let (ws, member, _daemon) = srv.workspace_with_tokens("quiet");
    let rid = register(&srv, &ws, "claude");
    let shell = Shell::new(&dir.path().join("user"))
        .with("AGENTD_SERVER_URL", &srv.url)
        .with("AGENTD_TOKEN", &member);
    shell.ok(&["agent", "create", "bot", "--runtime", &rid[..8]]);
    let online = shell.ok(&["issue", "create", "While online", "--assign", "bot"]);
    assert!(!online.contains("start the daemon"), "{online}");
    // No heartbeat: the runtime goes offline after a second.
    let mut offline = String::new();
    for _ in 0..100 {
        offline = shell.ok(&["runtime", "list"]);
        if offline.contains("offline") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(offline.contains("start the daemon"), "{offline}");
    let queued = shell.ok(&["issue", "create", "While offline", "--assign", "bot"]);
    assert!(
        queued.contains("queued task") && queued.contains("start the daemon"),
        "{queued}"
    );
}
