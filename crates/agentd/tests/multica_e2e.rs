//! The real `agentd daemon` serving the fake server set to Multica's behaviour (its
//! register answer names no server kind, cancels are seen only by polling the task's
//! status, no WS cancel push): follow-ups continue in the previous checkout, or on the
//! task's branch when it is gone; the agent gets the `MULTICA_*` environment; a cancelled
//! run reports its usage and nothing else. And the same cancel on agentd's own server
//! (the fake's default) reports usage and `fail`.
//!
//! The stand-in `claude` is a shell script in a directory the test makes and puts on the
//! daemon's PATH (the sandbox shows PATH directories, not the test's temp files).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use agentd_proto::ws::{TaskAvailable, WsMessage};
use agentd_proto::{CompleteRequest, FailureReason, Repo, Task, TaskStatus};
use agentd_testkit::fake_server::FakeServer;
use common::{Proc, bare_remote, eventually, git, spawn_daemon_with, stand_in_claude};

const TOKEN: &str = "multica-e2e-token";

/// The stand-in agent: records what it was given into `.git/` of its work dir (seen
/// from the test, never committed), says whether the earlier run's change is there,
/// makes its own change, and prints a Claude session and result.
const AGENT: &str = r#"
t="$MULTICA_TASK_ID"
[ -n "$t" ] || t="$AGENTD_TASK_ID"
env | grep -E '^(MULTICA|AGENTD)_' | sort > ".git/env-$t"
echo "$@" > ".git/args-$t"
if [ -f earlier.txt ]; then cp earlier.txt ".git/seen-$t"; fi
echo "$t" >> earlier.txt
echo '{"type":"system","subtype":"init","session_id":"s-'"$t"'","model":"claude-test"}'
echo '{"type":"result","subtype":"success","is_error":false,"result":"done","session_id":"s-'"$t"'"}'
"#;

struct Setup {
    fake: FakeServer,
    dir: tempfile::TempDir,
    url: String,
    rid: String,
    _daemon: Proc,
}

impl Setup {
    async fn start(multica: bool, body: &str) -> Setup {
        Setup::start_with(multica, body, None).await
    }

    /// [`Setup::start`] with a stand-in `multica` CLI (running `cli`) beside the agent.
    async fn start_with(multica: bool, body: &str, cli: Option<&str>) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let remote = bare_remote(dir.path());
        let url = remote.display().to_string();
        let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
        if multica {
            fake.set_multica();
        }
        fake.set_repos("ws-1", &[&url]);
        let bin = stand_in_claude(dir.path(), body);
        if let Some(cli) = cli {
            use std::os::unix::fs::PermissionsExt;
            let p = bin.join("multica");
            std::fs::write(&p, format!("#!/bin/sh\n{cli}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let daemon = spawn_daemon_with(
            dir.path(),
            &bin,
            &fake.url,
            TOKEN,
            "allow_local_repos = true\n",
            &[],
            &["--heartbeat-interval", "1s", "--poll-interval", "1s"],
        );
        let rid = eventually(30, "the runtime registered", || {
            fake.runtime_id_of("claude")
        })
        .await;
        Setup {
            fake,
            dir,
            url,
            rid,
            _daemon: daemon,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    fn task(&self, id: &str) -> Task {
        Task {
            id: id.into(),
            agent_id: "agent-7".into(),
            runtime_id: self.rid.clone(),
            issue_id: "issue1".into(),
            workspace_id: "ws-1".into(),
            repos: vec![Repo {
                url: self.url.clone(),
            }],
            ..Task::default()
        }
    }

    /// Queues `task` and waits for its completion.
    async fn complete(&self, task: Task) -> CompleteRequest {
        let id = task.id.clone();
        self.fake.queue_task(&self.rid, task);
        self.fake.push(&WsMessage::TaskAvailable(TaskAvailable {
            runtime_id: self.rid.clone(),
            task_id: Some(id.clone()),
        }));
        eventually(60, "the task's final report", || {
            if let Some((_, f)) = self
                .fake
                .fail_requests()
                .into_iter()
                .find(|(t, _)| *t == id)
            {
                panic!("{id} failed: {f:?}\n{}", self.log());
            }
            self.fake
                .completed()
                .into_iter()
                .find(|(t, _)| *t == id)
                .map(|(_, c)| c)
        })
        .await
    }

    fn transcript(&self, id: &str) -> String {
        self.fake
            .messages(id)
            .iter()
            .filter_map(|m| m.content.clone())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multica_follow_up_continues_in_the_previous_checkout_with_multica_env() {
    let s = Setup::start(true, AGENT).await;
    let health = common::daemon_health(&s.dir.path().join("daemon")).await;
    assert_eq!(health["server_kind"], "multica", "{health:#}");
    let first = s.complete(s.task("task1")).await;
    let w1 = PathBuf::from(first.work_dir.clone().unwrap());
    assert!(
        !w1.join(".git/seen-task1").exists(),
        "nothing earlier on a first run"
    );

    let mut follow = s.task("task2");
    follow.prior_work_dir = w1.display().to_string();
    follow.prior_session_id = first.session_id.clone().unwrap();
    let second = s.complete(follow).await;
    assert_eq!(
        second.work_dir.as_deref(),
        first.work_dir.as_deref(),
        "same checkout"
    );
    assert_eq!(second.branch_name, first.branch_name, "same branch");
    assert_eq!(
        read(&w1.join(".git/seen-task2")),
        "task1\n",
        "sees the earlier change"
    );
    let args = read(&w1.join(".git/args-task2"));
    assert!(args.contains("--resume s-task1"), "resumes there: {args}");

    // The agent's environment is Multica's daemon's, not agentd's.
    let env = read(&w1.join(".git/env-task2"));
    for want in [
        format!("MULTICA_TOKEN={TOKEN}"),
        format!("MULTICA_SERVER_URL={}", s.fake.url),
        "MULTICA_WORKSPACE_ID=ws-1".into(),
        "MULTICA_AGENT_ID=agent-7".into(),
        "MULTICA_AGENT_NAME=agent".into(),
        "MULTICA_TASK_ID=task2".into(),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing from {env}");
    }
    assert!(!env.contains("AGENTD_TOKEN"), "{env}");
    // No `multica` CLI on this PATH: the transcript says what that means.
    assert!(
        s.transcript("task2")
            .contains("multica CLI is not installed"),
        "{}",
        s.transcript("task2")
    );
    // The commit of the follow-up sits on top of the first run's, in one branch.
    let log = git(&w1, &["log", "--format=%s"]);
    assert_eq!(log.lines().count(), 3, "init + two runs: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multica_follow_up_without_the_previous_checkout_runs_on_the_tasks_branch() {
    let s = Setup::start(true, AGENT).await;
    let first = s.complete(s.task("task1")).await;
    let w1 = PathBuf::from(first.work_dir.clone().unwrap());
    let branch = first.branch_name.clone().unwrap();
    // The first run's branch was pushed (agentd publishes it); then GC or an operator
    // removes the checkout.
    let remote = s.dir.path().join("remote.git");
    git(
        &remote,
        &["rev-parse", "--verify", &format!("refs/heads/{branch}")],
    );
    std::fs::remove_dir_all(w1.parent().unwrap()).unwrap();

    let mut follow = s.task("task2");
    follow.prior_work_dir = w1.display().to_string();
    follow.prior_session_id = first.session_id.clone().unwrap();
    let second = s.complete(follow).await;
    let w2 = PathBuf::from(second.work_dir.clone().unwrap());
    assert_ne!(w2, w1, "a fresh checkout");
    assert_eq!(
        second.branch_name.as_deref(),
        Some(branch.as_str()),
        "the task's branch"
    );
    assert_eq!(
        read(&w2.join(".git/seen-task2")),
        "task1\n",
        "the branch's earlier work"
    );
    let args = read(&w2.join(".git/args-task2"));
    assert!(
        !args.contains("--resume"),
        "the session starts anew: {args}"
    );
    let said = s.transcript("task2");
    assert!(
        said.contains("fresh checkout") && said.contains("no longer exists"),
        "{said}"
    );
}

/// A stand-in that streams one assistant message with its usage, then works on until it
/// is stopped (no `result`: the usage is only in the message).
const LONG_AGENT: &str = r#"
echo '{"type":"system","subtype":"init","session_id":"s-long","model":"claude-test"}'
echo '{"type":"assistant","message":{"id":"msg_1","model":"claude-test","content":[{"type":"text","text":"working"}],"usage":{"input_tokens":120,"output_tokens":7,"cache_read_input_tokens":3,"cache_creation_input_tokens":0}}}'
sleep 60
"#;

async fn cancel_a_long_run(multica: bool) -> Setup {
    let s = Setup::start(multica, LONG_AGENT).await;
    s.fake.queue_task(&s.rid, s.task("long1"));
    s.fake.push(&WsMessage::TaskAvailable(TaskAvailable {
        runtime_id: s.rid.clone(),
        task_id: Some("long1".into()),
    }));
    eventually(30, "the agent's message", || {
        s.fake
            .messages("long1")
            .iter()
            .any(|m| m.content.as_deref() == Some("working"))
            .then_some(())
    })
    .await;
    // Cancelled on the server: seen by the status poll (no push).
    s.fake.set_task_status("long1", TaskStatus::Cancelled);
    eventually(30, "usage posted", || {
        (!s.fake.usage().is_empty()).then_some(())
    })
    .await;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multica_cancel_seen_by_polling_posts_usage_and_no_fail() {
    let s = cancel_a_long_run(true).await;
    let (id, usage) = s.fake.usage().remove(0);
    assert_eq!(id, "long1");
    assert_eq!(usage.usage.len(), 1, "{usage:?}");
    let u = &usage.usage[0];
    assert_eq!(
        (
            u.model.as_str(),
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens
        ),
        ("claude-test", 120, 7, 3)
    );
    // Multica's daemon sends nothing after a cancel; neither does agentd serving it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        s.fake.fail_requests().is_empty(),
        "{:?}",
        s.fake.fail_requests()
    );
    assert!(s.fake.completed().is_empty());
    assert!(
        s.log().contains("nothing to report to a Multica server"),
        "{}",
        s.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agentd_cancel_posts_usage_and_fails_with_reason_cancelled() {
    let s = cancel_a_long_run(false).await;
    let health = common::daemon_health(&s.dir.path().join("daemon")).await;
    assert_eq!(health["server_kind"], "agentd", "{health:#}");
    let fail = eventually(30, "fail report", || {
        s.fake.fail_requests().into_iter().next()
    })
    .await;
    assert_eq!(fail.0, "long1");
    assert_eq!(fail.1.failure_reason, Some(FailureReason::Cancelled));
    let u = &s.fake.usage()[0].1.usage[0];
    assert_eq!((u.input_tokens, u.output_tokens), (120, 7));
}

/// With the `multica` CLI installed, the agent runs it (inside its sandbox) with the
/// environment it needs, and the transcript carries no "not installed" note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installed_multica_cli_is_what_the_agent_uses() {
    let agent = format!("multica issue get \"$MULTICA_TASK_ID\" > .git/multica-out\n{AGENT}");
    let s = Setup::start_with(
        true,
        &agent,
        Some(r#"echo "multica $* as $MULTICA_AGENT_ID on $MULTICA_SERVER_URL""#),
    )
    .await;
    let done = s.complete(s.task("task1")).await;
    let work = PathBuf::from(done.work_dir.unwrap());
    assert_eq!(
        read(&work.join(".git/multica-out")),
        format!("multica issue get task1 as agent-7 on {}\n", s.fake.url)
    );
    let said = s.transcript("task1");
    assert!(!said.contains("multica CLI is not installed"), "{said}");
}
