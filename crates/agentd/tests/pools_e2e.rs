//! A runtime pool end to end (issue 14), with the real server, two real daemons and
//! stand-in Claude CLIs that replay recorded output: an agent bound to "any claude
//! runtime" has its tasks spread over both machines; with both busy (one task at a time
//! each) a third task waits, then goes to the machine that frees first; a machine killed
//! mid-task has its task failed `runtime_offline` after the lease and retried on the
//! other, and the issue shows both attempts.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// A machine: a daemon whose stand-in `claude` takes `secs` per task, or 60 s when the
/// prompt says `SLOW`.
fn machine(dir: &Path, url: &str, daemon_token: &str, name: &str, secs: u32) -> Proc {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../agentd-daemon/tests/fixtures/agent-output/claude-text.jsonl");
    let home = dir.join(name);
    std::fs::create_dir_all(&home).unwrap();
    let bin = stand_in_claude(
        &home,
        &format!(
            "case \"$*\" in *SLOW*) sleep 60;; *) sleep {secs};; esac\n{}",
            replay(&fixture)
        ),
    );
    spawn_daemon(
        &home,
        &bin,
        url,
        daemon_token,
        &[
            "--heartbeat-interval",
            "1s",
            "--poll-interval",
            "1s",
            "--max-concurrent-tasks",
            "1",
            "--device-name",
            name,
        ],
    )
}

fn runtimes(url: &str, token: &str, ws: &str) -> Vec<Value> {
    cli(url, token, &["runtime", "list", "--workspace", ws])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn tasks(url: &str, token: &str, issue: &str) -> Vec<Value> {
    cli(url, token, &["issue", "show", issue])["tasks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn new_issue(url: &str, token: &str, ws: &str, agent: &str, title: &str) -> String {
    cli(
        url,
        token,
        &[
            "issue",
            "create",
            title,
            "--workspace",
            ws,
            "--assign",
            agent,
        ],
    )["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_pool_spreads_work_waits_for_room_and_survives_a_dead_machine() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_args(
        dir.path(),
        &["--offline-after-secs", "3", "--retry-backoff-secs", "0"],
    );
    let url = server.url.clone();
    let (ws, token, daemon) = server.workspace_with_tokens("pool");
    let mut laptop = machine(dir.path(), &url, &daemon, "laptop", 2);
    let buildbox = machine(dir.path(), &url, &daemon, "buildbox", 5);
    let ids = eventually(30, "both machines online", || {
        let rts = runtimes(&url, &token, &ws);
        let id = |device: &str| {
            rts.iter()
                .find(|r| r["device_name"] == device && r["status"] == "online")
                .and_then(|r| r["id"].as_str().map(str::to_string))
        };
        Some((id("laptop")?, id("buildbox")?))
    })
    .await;
    let (laptop_rt, buildbox_rt) = ids;
    let agent = cli(
        &url,
        &token,
        &[
            "agent",
            "create",
            "pooled",
            "--workspace",
            &ws,
            "--pool-provider",
            "claude",
        ],
    );
    assert_eq!(
        agent["pool_runtimes"].as_array().unwrap().len(),
        2,
        "{agent}"
    );

    // Two tasks: one on each machine (each runs one at a time).
    let i1 = new_issue(&url, &token, &ws, "pooled", "first");
    let i2 = new_issue(&url, &token, &ws, "pooled", "second");
    let ran_on = |issue: &str| -> Option<String> {
        let t = tasks(&url, &token, issue);
        t.last()
            .filter(|t| t["status"] == "completed")
            .and_then(|t| t["runtime_id"].as_str().map(str::to_string))
    };
    // With both busy, a third waits for a runtime of the pool...
    let i3 = new_issue(&url, &token, &ws, "pooled", "third");
    eventually(10, "both machines busy", || {
        let running = [&i1, &i2]
            .iter()
            .filter(|i| {
                tasks(&url, &token, i)
                    .first()
                    .is_some_and(|t| t["status"] == "running")
            })
            .count();
        (running == 2).then_some(())
    })
    .await;
    let third = tasks(&url, &token, &i3);
    assert_eq!(third[0]["status"], "queued", "{third:?}");
    assert_eq!(third[0]["runtime_id"], "", "{third:?}");
    // ...and goes to the laptop, which frees first (2 s a task against 5 s).
    let third_on = eventually(20, "the third task completes", || ran_on(&i3)).await;
    assert_eq!(third_on, laptop_rt);
    let first_two = [
        eventually(20, "first completes", || ran_on(&i1)).await,
        eventually(20, "second completes", || ran_on(&i2)).await,
    ];
    assert!(first_two.contains(&laptop_rt) && first_two.contains(&buildbox_rt));

    // A machine dies mid-task.
    let i4 = new_issue(&url, &token, &ws, "pooled", "SLOW: survive the laptop");
    let first_try = eventually(10, "the slow task runs", || {
        tasks(&url, &token, &i4)
            .first()
            .filter(|t| t["status"] == "running")
            .cloned()
    })
    .await;
    let victim = first_try["runtime_id"].as_str().unwrap().to_string();
    // Kill the machine running it (its daemon; the sandboxed agent dies with it), and let
    // the other machine's stand-in run SLOW tasks fast from now on.
    let survivor = if victim == laptop_rt {
        let _ = laptop.0.kill();
        let _ = laptop.0.wait();
        "buildbox"
    } else {
        drop(buildbox);
        "laptop"
    };
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../agentd-daemon/tests/fixtures/agent-output/claude-text.jsonl");
    stand_in_claude(&dir.path().join(survivor), &replay(&fixture));
    // After the lease the task fails runtime_offline, and its retry completes elsewhere.
    let done = eventually(60, "the retry completes", || {
        let t = tasks(&url, &token, &i4);
        (t.len() == 2 && t[1]["status"] == "completed").then_some(t)
    })
    .await;
    assert_eq!(done[0]["status"], "failed", "{done:?}");
    assert_eq!(done[0]["failure_reason"], "runtime_offline", "{done:?}");
    assert_eq!(done[0]["attempt"], 1);
    assert_eq!(done[1]["attempt"], 2);
    assert_eq!(done[1]["parent_task_id"], done[0]["id"]);
    assert_ne!(done[1]["runtime_id"], victim.as_str(), "{done:?}");
    // `agentd issue show` says where each attempt ran.
    let out = std::process::Command::new(BIN)
        .args(["issue", "show", &i4])
        .env("AGENTD_SERVER_URL", &url)
        .env("AGENTD_TOKEN", &token)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (dead, alive) = if victim == laptop_rt {
        ("laptop", "buildbox")
    } else {
        ("buildbox", "laptop")
    };
    assert!(text.contains(&format!("on Claude ({dead})")), "{text}");
    assert!(text.contains(&format!("on Claude ({alive})")), "{text}");
    assert!(text.contains("attempt 2"), "{text}");
}
