//! The real `agentd server` and the real `agentd daemon`, both as child processes: the
//! daemon registers; `agentd runtime delete` makes it self-heal with exactly one
//! re-register; the runtime is online again under a new id.

mod common;

use std::path::Path;
use std::process::Command;

use common::{
    BIN, Server, assign_new_issue, cli, eventually, online_runtime, spawn_daemon, stand_in_claude,
};

fn registers(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("daemon registered")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_delete_makes_the_real_daemon_self_heal_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (url, server_log) = (server.url.clone(), server.log.clone());
    let (ws, token, daemon) = server.workspace_with_tokens("e2e");

    // A stand-in `claude` that reports a supported version.
    let bin = stand_in_claude(dir.path(), "exit 0");
    let _daemon = spawn_daemon(
        dir.path(),
        &bin,
        &url,
        &daemon,
        &[
            "--heartbeat-interval",
            "200ms",
            "--poll-interval",
            "1s",
            "--device-name",
            "e2e-host",
        ],
    );

    let online = |url: &str| {
        let rts = cli(url, &token, &["runtime", "list", "--workspace", &ws]);
        rts.as_array()
            .unwrap()
            .iter()
            .find(|r| r["provider"] == "claude" && r["status"] == "online")
            .cloned()
    };
    let first = eventually(30, "the daemon registers claude", || online(&url)).await;
    let old = first["id"].as_str().unwrap().to_string();
    assert_eq!(registers(&server_log), 1);

    cli(&url, &token, &["runtime", "delete", &old]);
    let second = eventually(20, "claude online under a new id", || {
        online(&url).filter(|r| r["id"] != old.as_str())
    })
    .await;
    // Heartbeats keep arriving on the new id (last_seen_at moves) ...
    let seen = second["last_seen_at"].as_str().unwrap().to_string();
    eventually(10, "a heartbeat on the new id", || {
        online(&url).filter(|r| r["last_seen_at"].as_str() != Some(seen.as_str()))
    })
    .await;
    // ... and the heal took exactly one re-register.
    assert_eq!(registers(&server_log), 2, "exactly one re-register");
    let rts = cli(&url, &token, &["runtime", "list", "--workspace", &ws]);
    assert_eq!(rts.as_array().unwrap().len(), 1, "{rts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assigned_issue_runs_on_the_real_daemon_and_lands_in_review() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = server.url.clone();
    let (ws, token, daemon) = server.workspace_with_tokens("e2e");

    // A stand-in `claude` that acts on its issue like a teammate (through `agentd` and
    // the task token the daemon hands it), then replays output recorded from the real CLI.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../agentd-daemon/tests/fixtures/agent-output/claude-text.jsonl");
    let bin = stand_in_claude(
        dir.path(),
        &format!(
            "agentd issue status \"$AGENTD_ISSUE_ID\" in_progress >/dev/null || exit 3\n\
             agentd issue comment \"$AGENTD_ISSUE_ID\" 'looking into it' >/dev/null || exit 4\n\
             agentd workspace list >/dev/null 2>&1 && exit 5\n\
             {}",
            common::replay(&fixture)
        ),
    );
    std::os::unix::fs::symlink(BIN, bin.join("agentd")).unwrap();
    let _daemon = spawn_daemon(
        dir.path(),
        &bin,
        &url,
        &daemon,
        &["--heartbeat-interval", "1s", "--poll-interval", "30s"],
    );

    let rid = online_runtime(&url, &token, &ws, "claude", 30).await;
    // The poll interval is 30 s: only the WS push can make this quick.
    let (agent, issue) = assign_new_issue(&url, &token, &ws, &rid, "bot", "Say hello");
    let shown = eventually(20, "the issue reaches in_review", || {
        let v = cli(&url, &token, &["issue", "show", &issue]);
        (v["issue"]["status"] == "in_review").then_some(v)
    })
    .await;
    assert_eq!(shown["tasks"][0]["status"], "completed", "{shown}");
    // Claimed within 1 s of being queued, on the server's clock: the WS wake-up, not the
    // 30 s poll.
    let at = |field: &str| -> jiff::Timestamp {
        shown["tasks"][0][field]
            .as_str()
            .unwrap_or_else(|| panic!("no {field}: {shown}"))
            .parse()
            .unwrap()
    };
    let pickup = at("dispatched_at").duration_since(at("created_at"));
    assert!(
        pickup < jiff::SignedDuration::from_secs(1),
        "claimed {pickup:?} after queueing"
    );
    let mid = &shown["comments"][0];
    assert_eq!(mid["body"], "looking into it");
    assert_eq!(mid["author_type"], "agent");
    assert_eq!(mid["author_id"], agent.as_str());
    let c = &shown["comments"][1];
    assert_eq!(c["author_type"], "agent");
    assert!(
        c["body"]
            .as_str()
            .unwrap()
            .contains("Hello from the mock model."),
        "{c}"
    );
    let tid = shown["tasks"][0]["id"].as_str().unwrap();
    let out = Command::new(BIN)
        .args(["task", "logs", tid, "--json"])
        .env("AGENTD_SERVER_URL", &url)
        .env("AGENTD_TOKEN", &token)
        .output()
        .unwrap();
    let logs = String::from_utf8_lossy(&out.stdout);
    assert!(logs.contains("Hello from the mock model."), "{logs}");
}

/// Issue 17: a run that fails and a run that is cancelled each report what they cost.
/// The stand-in streams one assistant message with its usage (no `result`, which is where
/// usage used to be read), then fails (`[broken]`) or works on until cancelled; the
/// server keeps the usage on each task, where the board's run view shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_and_a_cancelled_run_each_report_their_usage() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = server.url.clone();
    let (ws, token, daemon) = server.workspace_with_tokens("usage");
    let bin = stand_in_claude(
        dir.path(),
        "for prompt; do :; done\n\
         echo '{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"s-u\",\"model\":\"claude-test\"}'\n\
         echo '{\"type\":\"assistant\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-test\",\"content\":[{\"type\":\"text\",\"text\":\"working\"}],\"usage\":{\"input_tokens\":120,\"output_tokens\":7,\"cache_read_input_tokens\":3,\"cache_creation_input_tokens\":0}}}'\n\
         case \"$prompt\" in *'[broken]'*) echo 'stand-in: giving up' >&2; exit 1 ;; esac\n\
         sleep 60",
    );
    let _daemon = spawn_daemon(
        dir.path(),
        &bin,
        &url,
        &daemon,
        &["--heartbeat-interval", "1s", "--poll-interval", "30s"],
    );
    let rid = online_runtime(&url, &token, &ws, "claude", 30).await;
    let task_of = |issue: &str, status: &str| {
        let v = cli(&url, &token, &["issue", "show", issue]);
        (v["tasks"][0]["status"] == status).then(|| v["tasks"][0].clone())
    };
    let has_usage = |t: &serde_json::Value| {
        t["usage"].as_array().is_some_and(|u| {
            u.len() == 1
                && u[0]["model"] == "claude-test"
                && u[0]["input_tokens"] == 120
                && u[0]["output_tokens"] == 7
                && u[0]["cache_read_tokens"] == 3
        })
    };

    let (agent, broken) = assign_new_issue(&url, &token, &ws, &rid, "bot", "Fail [broken]");
    let failed = eventually(30, "the failed run, with its usage", || {
        let t = task_of(&broken, "failed")?;
        has_usage(&t).then_some(t)
    })
    .await;
    assert_eq!(failed["failure_reason"], "agent_error", "{failed:#}");

    let long = cli(
        &url,
        &token,
        &[
            "issue",
            "create",
            "Work on",
            "--workspace",
            &ws,
            "--assign",
            &agent,
        ],
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let running = eventually(30, "the long run streams", || {
        let t = task_of(&long, "running")?;
        let logs = common::cli_raw(&url, &token, &["task", "logs", t["id"].as_str()?]);
        logs.contains("working").then_some(t)
    })
    .await;
    cli(
        &url,
        &token,
        &["task", "cancel", running["id"].as_str().unwrap()],
    );
    let cancelled = eventually(30, "the cancelled run's usage", || {
        let t = task_of(&long, "cancelled")?;
        has_usage(&t).then_some(t)
    })
    .await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled:#}");
}
