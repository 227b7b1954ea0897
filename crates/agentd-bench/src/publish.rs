//! The work reaching the team (issue 12): from the agent's exit to its branch pushed, and
//! to the pull request opened. The real `agentd server` and `agentd daemon`, a real bare
//! repository as the remote (`file://…/acme/widgets.git`) and the testkit's fake GitHub
//! hosting it. The stand-in `claude` changes a file and stamps `$EPOCHREALTIME` as its
//! last act; "pushed" is the server seeing the task completed with its branch (the
//! daemon reports after the push), "PR opened" the fake forge's `POST …/pulls`, both
//! sampled every 2 ms. Tasks run one at a time.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use agentd_testkit::fake_forge::FakeForge;
use anyhow::{Context, bail};
use serde_json::json;

use crate::common::{Stats, since, spawn_daemon_with, stamp, stand_in, wait_for};
use crate::server::Server;

pub struct Publish {
    pub to_pushed: Stats,
    pub to_pr: Stats,
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output()?;
    if !out.status.success() {
        bail!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

pub async fn publish(n: usize) -> anyhow::Result<Publish> {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    let bare = root.join("acme/widgets.git");
    let seed = root.join("seed");
    std::fs::create_dir_all(&seed)?;
    git(
        root,
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            &bare.display().to_string(),
        ],
    )?;
    git(&seed, &["init", "-q", "-b", "main"])?;
    std::fs::write(seed.join("README.md"), "widgets\n")?;
    git(&seed, &["add", "."])?;
    git(
        &seed,
        &[
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@b",
            "commit",
            "-qm",
            "init",
        ],
    )?;
    git(&seed, &["push", "-q", &bare.display().to_string(), "main"])?;
    let forge = FakeForge::start("ghp_bench").await;
    forge.add_git_repo("acme/widgets", "main", &bare);

    let server =
        Server::start_with(&["--allow-local-repos", "--forge-poll-interval-secs", "0"]).await?;
    let repo_url = format!("file://{}", bare.display());
    let ws = server
        .post(
            &server.admin,
            "/api/v1/workspaces",
            json!({"name": "bench", "repos": [repo_url]}),
        )
        .await?;
    let ws = ws["id"].as_str().context("workspace id")?.to_string();
    let daemon_token = server
        .post(
            &server.admin,
            "/api/v1/tokens",
            json!({"name": "bench", "kind": "daemon", "workspace_ids": [ws]}),
        )
        .await?["token"]
        .as_str()
        .context("token")?
        .to_string();
    server
        .put(
            &server.admin,
            &format!("/api/v1/workspaces/{ws}/forge"),
            json!({"kind": "github", "repo": "acme/widgets", "token": "ghp_bench",
                   "api_url": forge.url, "poll": false}),
        )
        .await?;

    let marks = root.join("marks");
    std::fs::create_dir_all(&marks)?;
    let m = marks.display();
    stand_in(
        &root.join("bin"),
        "claude",
        "2.1.330 (Claude Code)",
        &format!(
            r#"echo "$AGENTD_TASK_ID" >> changes.txt
echo '{{"type":"result","subtype":"success","is_error":false,"result":"ok","session_id":"s"}}'
echo $EPOCHREALTIME > "{m}/exit-$AGENTD_TASK_ID""#
        ),
    )?;
    let _daemon = spawn_daemon_with(
        &server.url,
        &daemon_token,
        root,
        &[
            "--heartbeat-interval",
            "5s",
            "--poll-interval",
            "30s",
            "--allow-local-repos",
        ],
        "agentd_daemon=warn",
    )?;
    let rid = {
        let mut rid = String::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while rid.is_empty() {
            let rts = server
                .get(&server.admin, &format!("/api/v1/workspaces/{ws}/runtimes"))
                .await?;
            if let Some(id) = rts
                .as_array()
                .and_then(|a| a.first())
                .and_then(|r| r["id"].as_str())
            {
                rid = id.to_string();
            } else if std::time::Instant::now() > deadline {
                bail!("the daemon's runtime never registered");
            } else {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        rid
    };
    let agent = server
        .post(
            &server.admin,
            &format!("/api/v1/workspaces/{ws}/agents"),
            json!({"name": "bench", "runtime_id": rid}),
        )
        .await?;
    let agent = agent["id"].as_str().context("agent id")?.to_string();

    let (mut pushed, mut prs) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n + 2 {
        let pulls_before = forge.requests_to("POST", "/repos/acme/widgets/pulls").len();
        let issue = server
            .post(
                &server.admin,
                &format!("/api/v1/workspaces/{ws}/issues"),
                json!({"title": format!("bench {i}"), "assignee_agent_id": agent}),
            )
            .await?;
        let issue = issue["id"].as_str().context("issue id")?.to_string();
        let mut task_id = String::new();
        let mut done_at = None;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while done_at.is_none() {
            let shown = server
                .get(&server.admin, &format!("/api/v1/issues/{issue}"))
                .await?;
            let t = &shown["tasks"][0];
            match t["status"].as_str() {
                Some("completed") => {
                    done_at = Some(SystemTime::now());
                    task_id = t["id"].as_str().unwrap_or_default().to_string();
                }
                Some("failed") => bail!("bench task failed: {t}"),
                _ if std::time::Instant::now() > deadline => bail!("bench task never completed"),
                _ => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
        wait_for(
            20.0,
            Duration::from_millis(2),
            "the pull request opened",
            || forge.requests_to("POST", "/repos/acme/widgets/pulls").len() > pulls_before,
        )
        .await?;
        let pr_at = SystemTime::now();
        let exit = stamp(&marks.join(format!("exit-{task_id}")))
            .with_context(|| format!("task {task_id}: no exit stamp"))?;
        if i >= 2 {
            // The first two warm up (mirror clone, connections).
            pushed.push(since(exit, done_at.unwrap_or(pr_at)));
            prs.push(since(exit, pr_at));
        }
    }
    Ok(Publish {
        to_pushed: Stats::of(pushed),
        to_pr: Stats::of(prs),
    })
}
