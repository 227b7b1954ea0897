//! The web board end to end, in headless Chromium: the real `agentd server` and the real
//! `agentd daemon` with a stand-in `claude` that replays recorded Claude Code output
//! slowly (so the log really streams), driven by `tests/web/board.e2e.mjs` (Playwright's
//! `playwright-core` on Debian's `/usr/bin/chromium`). Screenshots at 1280 and 390 px are
//! kept in `target/web-e2e/`.
//!
//! Needs node, `/usr/bin/chromium` and playwright-core from `scripts/install-browser.sh`
//! (`scripts/test.sh` runs it); without them the test prints `SKIP web_e2e: …`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Server, cli, online_runtime, spawn_daemon, stand_in_claude};

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
    if !prefix
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return Err(format!(
            "playwright-core is not installed in {}; run scripts/install-browser.sh",
            prefix.display()
        ));
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
    // real CLI (a Write, a Bash call and the final answer), one line a second.
    let fixture = repo_root()
        .join("crates/agentd-daemon/tests/fixtures/agent-output/claude-write-shell.jsonl");
    let bin = stand_in_claude(
        dir.path(),
        &format!(
            "echo 'hello from mock' > hello.txt\n\
             while IFS= read -r line; do printf '%s\\n' \"$line\"; sleep 1; done < '{}'",
            fixture.display()
        ),
    );
    let _daemon = spawn_daemon(
        dir.path(),
        &bin,
        &url,
        &daemon,
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

    let shots = repo_root().join("target/web-e2e");
    let started = std::time::Instant::now();
    let mut node = tokio::process::Command::new("node");
    node.arg(repo_root().join("tests/web/board.e2e.mjs"))
        .env("AGENTD_URL", &url)
        .env("AGENTD_TOKEN", &token)
        .env("AGENT_NAME", "claude-bot")
        .env("SHOT_DIR", &shots)
        .env("PLAYWRIGHT_PREFIX", &prefix)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), node.output())
        .await
        .expect("the browser test finished within 120 s")
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
        "issue-1280.png",
        "board-390.png",
        "issue-390.png",
    ] {
        assert!(shots.join(shot).exists(), "screenshot {shot}");
    }
    eprintln!(
        "web_e2e: browser run took {:?}; screenshots in {}",
        started.elapsed(),
        shots.display()
    );
}
