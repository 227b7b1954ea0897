//! Custom CLIs (`[agents.custom.NAME]` in the daemon's config file) through the real
//! `agentd server` and `agentd daemon` binaries, with script CLIs in a bin dir the test
//! makes (they read nothing of the repository at run time: the sandbox hides it).
//!
//! - `plain`: `output = "text"`, an absolute `command`, `{prompt}` and `{model}` in its
//!   arguments, its own env and version command. Its lines reach the server as messages,
//!   its whole stdout as the result; a non-zero exit fails the task.
//! - `jsonish`: `output = "claude"` (Claude Code's stream-json), a bare `command` found on
//!   PATH. Its session id is kept by the server, and a follow-up on the issue resumes it:
//!   the script gets `--resume=<that id>` through `{session}`.
//! - A bad `output` value stops `agentd daemon` at start with the key named.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// `agents.custom.*` of the test daemon, also the example in `docs/agents.md`'s custom CLI
/// section (the test puts its script's path in place of `/opt/plain-agent/bin/plain-agent`).
const CONFIG: &str = r#"
[agents.custom.plain]
command = "/opt/plain-agent/bin/plain-agent"
args = ["--task={prompt}", "--model={model}"]
output = "text"
version = ["--version"]
env = { PLAIN_MODE = "batch" }

[agents.custom.jsonish]
command = "jsonish-agent"
args = ["-p", "{prompt}", "--resume={session}"]
output = "claude"
version = ["version"]
"#;

/// A text CLI: prints what it was given, one line each; `@fail` in the prompt makes it
/// fail (stderr, exit 3).
const PLAIN: &str = r#"#!/bin/sh
if [ "$1" = --version ]; then echo "plain-agent 1.2.3"; exit 0; fi
model=none; prompt=
for a in "$@"; do
  case "$a" in
    --model=*) model="${a#--model=}" ;;
    --task=*) prompt="${a#--task=}" ;;
  esac
done
case "$prompt" in *@fail*) echo "boom: asked to fail" >&2; exit 3 ;; esac
echo "plain agent ran"
echo "model=$model"
echo "mode=$PLAIN_MODE"
case "$prompt" in *"Say hello"*) echo "saw the issue title" ;; esac
"#;

/// A CLI speaking Claude Code's stream-json: a new session `sess-4711`, or the one it is
/// told to resume, and a final answer saying which.
const JSONISH: &str = r#"#!/bin/sh
if [ "$1" = version ]; then echo "jsonish 0.0.9"; exit 0; fi
resumed=none
for a in "$@"; do
  case "$a" in --resume=*) resumed="${a#--resume=}" ;; esac
done
if [ "$resumed" = none ]; then s=sess-4711; else s="$resumed"; fi
printf '{"type":"system","subtype":"init","session_id":"%s"}\n' "$s"
printf '{"type":"assistant","message":{"role":"assistant","content":[{"type":"text","text":"resumed=%s"}]},"session_id":"%s"}\n' "$resumed" "$s"
printf '{"type":"result","subtype":"success","is_error":false,"result":"resumed=%s","session_id":"%s"}\n' "$resumed" "$s"
"#;

fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, body).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Creates agent `name` on `rid` (with `model`, if any) and an issue `title` assigned to
/// it: the issue id.
fn assign(
    url: &str,
    token: &str,
    ws: &str,
    rid: &str,
    name: &str,
    model: Option<&str>,
    title: &str,
) -> String {
    let mut args = vec!["agent", "create", name, "--workspace", ws, "--runtime", rid];
    if let Some(m) = model {
        args.extend(["--model", m]);
    }
    let agent = common::cli(url, token, &args)["id"]
        .as_str()
        .expect("agent id")
        .to_string();
    common::cli(
        url,
        token,
        &[
            "issue",
            "create",
            title,
            "--workspace",
            ws,
            "--assign",
            &agent,
        ],
    )["id"]
        .as_str()
        .expect("issue id")
        .to_string()
}

/// Waits until the issue has `n` tasks and they all ended: `issue show`'s document.
async fn ended_tasks(url: &str, token: &str, issue: &str, n: usize) -> Value {
    let what = format!("{n} ended task(s) on {issue}");
    common::eventually(90, &what, || {
        let v = common::cli(url, token, &["issue", "show", issue]);
        let tasks = v["tasks"].as_array()?;
        let ended = |t: &Value| matches!(t["status"].as_str(), Some("completed" | "failed"));
        (tasks.len() == n && tasks.iter().all(ended)).then_some(v)
    })
    .await
}

fn comment_bodies(shown: &Value) -> Vec<String> {
    shown["comments"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["body"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_clis_run_report_fail_and_resume_through_server_and_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let plain = root.join("plain-agent");
    write_script(&plain, PLAIN);
    write_script(&bin.join("jsonish-agent"), JSONISH);
    let config = CONFIG.replace(
        "/opt/plain-agent/bin/plain-agent",
        &plain.display().to_string(),
    );

    let server = common::Server::start(root);
    let url = server.url.clone();
    let (ws, token, daemon_token) = server.workspace_with_tokens("custom");
    let _daemon = common::spawn_daemon_with(
        root,
        &bin,
        &url,
        &daemon_token,
        &config,
        &[],
        &["--heartbeat-interval", "1s", "--poll-interval", "2s"],
    );
    let log = root.join("daemon.log");
    let daemon_log = || std::fs::read_to_string(&log).unwrap_or_default();

    // Both profiles registered as runtimes, with the versions their own commands print.
    let rid_plain = common::online_runtime(&url, &token, &ws, "plain", 60).await;
    let rid_json = common::online_runtime(&url, &token, &ws, "jsonish", 60).await;
    let runtimes = common::cli(&url, &token, &["runtime", "list", "--workspace", &ws]);
    let version_of = |rid: &str| {
        runtimes
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["id"] == rid))
            .and_then(|r| r["version"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(version_of(&rid_plain), "plain-agent 1.2.3", "{runtimes:#}");
    assert_eq!(version_of(&rid_json), "jsonish 0.0.9", "{runtimes:#}");

    // Text output: the lines are the messages, the whole stdout the result; `{model}`
    // and the profile's env reached the CLI.
    let issue = assign(
        &url,
        &token,
        &ws,
        &rid_plain,
        "plain-bot",
        Some("m-7"),
        "Say hello",
    );
    let shown = ended_tasks(&url, &token, &issue, 1).await;
    let ctx = || format!("{shown:#}\n{}", daemon_log());
    assert_eq!(shown["tasks"][0]["status"], "completed", "{}", ctx());
    let expected = "plain agent ran\nmodel=m-7\nmode=batch\nsaw the issue title";
    assert!(
        comment_bodies(&shown).iter().any(|b| b.contains(expected)),
        "the result comment carries the whole stdout\n{}",
        ctx()
    );
    let task = shown["tasks"][0]["id"]
        .as_str()
        .expect("task id")
        .to_string();
    let logs = common::cli_raw(&url, &token, &["task", "logs", &task]);
    let texts: Vec<String> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["type"] == "text")
        .filter_map(|m| m["content"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        texts,
        [
            "plain agent ran",
            "model=m-7",
            "mode=batch",
            "saw the issue title"
        ],
        "one message per line\n{logs}"
    );

    // A non-zero exit fails the task, with the CLI's stderr in the error.
    let failing = assign(
        &url,
        &token,
        &ws,
        &rid_plain,
        "plain-bot-2",
        None,
        "@fail now",
    );
    let shown = ended_tasks(&url, &token, &failing, 1).await;
    let ctx = || format!("{shown:#}\n{}", daemon_log());
    let t = &shown["tasks"][0];
    assert_eq!(t["status"], "failed", "{}", ctx());
    assert!(
        t.to_string().contains("boom: asked to fail"),
        "the failure shows the CLI's stderr\n{}",
        ctx()
    );

    // A JSON-lines dialect: the session id is kept, and a follow-up resumes it.
    let issue = assign(
        &url,
        &token,
        &ws,
        &rid_json,
        "json-bot",
        None,
        "Remember this",
    );
    let shown = ended_tasks(&url, &token, &issue, 1).await;
    let ctx = || format!("{shown:#}\n{}", daemon_log());
    assert_eq!(shown["tasks"][0]["status"], "completed", "{}", ctx());
    assert!(
        comment_bodies(&shown)
            .iter()
            .any(|b| b.contains("resumed=none")),
        "the first run resumed nothing (`--resume={{session}}` dropped)\n{}",
        ctx()
    );
    common::cli(
        &url,
        &token,
        &["issue", "comment", &issue, "once more, please"],
    );
    let shown = ended_tasks(&url, &token, &issue, 2).await;
    let ctx = || format!("{shown:#}\n{}", daemon_log());
    assert!(
        shown["tasks"]
            .as_array()
            .is_some_and(|ts| ts.iter().all(|t| t["status"] == "completed")),
        "{}",
        ctx()
    );
    assert!(
        comment_bodies(&shown)
            .iter()
            .any(|b| b.contains("resumed=sess-4711")),
        "the follow-up got `--resume=sess-4711`\n{}",
        ctx()
    );
}

/// An unknown `output` stops the daemon at start, naming the key and the valid values.
#[test]
fn an_unknown_output_format_is_a_config_error_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("daemon.toml");
    std::fs::write(
        &config,
        "[agents.custom.mine]\ncommand = \"/bin/true\"\noutput = \"xml\"\n",
    )
    .expect("config");
    let out = Command::new(common::BIN)
        .args([
            "daemon",
            "--server-url",
            "http://127.0.0.1:9",
            "--token",
            "t",
        ])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .expect("run agentd daemon");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("agents.custom.mine.output")
            && stderr.contains("\"xml\"")
            && stderr.contains("text, claude, codex, opencode, gemini"),
        "{stderr}"
    );
}

/// `docs/agents.md`'s custom CLI example is exactly the config this file runs.
#[test]
fn the_docs_example_is_the_tested_config() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/agents.md"))
            .expect("docs/agents.md");
    let section = doc
        .split("## Custom CLIs")
        .nth(1)
        .expect("a Custom CLIs section");
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a toml block in the Custom CLIs section");
    assert_eq!(block.trim(), CONFIG.trim());
}
