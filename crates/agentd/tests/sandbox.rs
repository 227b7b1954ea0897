//! The agent sandbox as an operator gets it: the real `agentd daemon` binary against the
//! fake control plane, with a stand-in `claude` (a shell script that prints Claude Code's
//! stream-json) that writes what it could see and do into `obs.txt` in its work dir.
//!
//! - the agent's environment is the allow-list (not the daemon's token or secrets);
//! - what it starts in the background dies with the task;
//! - process and memory limits hold;
//! - `custom_env` keys that redirect are refused, and the transcript says so;
//! - a daemon whose sandbox cannot start claims nothing and says why (health and
//!   registration), and `sandbox = "off"` is an explicit choice.
//!
//! Each test needs bubblewrap (`scripts/install-sandbox.sh`); without it the test prints
//! `SKIP sandbox: …` and returns.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use agentd_proto::ws::{TaskAvailable, WsMessage};
use agentd_proto::{SandboxState, Task};
use agentd_testkit::fake_server::FakeServer;
use common::{Proc, bwrap_works, eventually, processes_with, spawn_daemon_with, stand_in_claude};

const TOKEN: &str = "sandbox-test-daemon-token-5150";

/// A stand-in claude that runs `body` with its output in `obs.txt`, then ends like
/// Claude Code does.
fn agent(dir: &Path, body: &str) -> PathBuf {
    stand_in_claude(
        dir,
        &format!(
            r#"{{
{body}
}} > obs.txt 2>&1
echo '{{"type":"system","subtype":"init","cwd":"'"$PWD"'","session_id":"s-1","tools":[],"model":"stand-in"}}'
echo '{{"type":"result","subtype":"success","is_error":false,"num_turns":1,"duration_ms":1,"result":"observed","session_id":"s-1"}}'"#
        ),
    )
}

struct Run {
    fake: FakeServer,
    dir: tempfile::TempDir,
    _daemon: Proc,
}

impl Run {
    async fn start(body: &str, config: &str, env: &[(&str, &str)]) -> Run {
        let dir = tempfile::tempdir().expect("tempdir");
        let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
        let bin = agent(dir.path(), body);
        let daemon = spawn_daemon_with(
            dir.path(),
            &bin,
            &fake.url,
            TOKEN,
            config,
            env,
            &["--heartbeat-interval", "1s", "--poll-interval", "1s"],
        );
        Run {
            fake,
            dir,
            _daemon: daemon,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    async fn runtime(&self) -> String {
        eventually(30, "the claude runtime registered", || {
            self.fake.runtime_id_of("claude")
        })
        .await
    }

    /// Queues one task (with the agent's `custom_env`) and wakes the daemon.
    async fn queue(&self, custom_env: &[(&str, &str)]) {
        let rid = self.runtime().await;
        let mut task = Task {
            id: "task-1".into(),
            runtime_id: rid.clone(),
            issue_id: "issue-1".into(),
            workspace_id: "ws-1".into(),
            issue_title: "Look around".into(),
            task_token: "task-token-of-task-1".into(),
            ..Task::default()
        };
        task.agent.custom_env = custom_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.fake.queue_task(&rid, task);
        self.fake.push(&WsMessage::TaskAvailable(TaskAvailable {
            runtime_id: rid,
            task_id: Some("task-1".into()),
        }));
    }

    /// Runs one task to its end and returns what the agent observed.
    async fn observe(&self, custom_env: &[(&str, &str)]) -> String {
        self.queue(custom_env).await;
        let done = eventually(60, "the task completed", || {
            if let Some((_, f)) = self.fake.fail_requests().first() {
                panic!("task failed: {f:#?}\n{}", self.log());
            }
            self.fake.completed().first().cloned()
        })
        .await;
        let work = PathBuf::from(done.1.work_dir.expect("work_dir"));
        std::fs::read_to_string(work.join("obs.txt")).expect("obs.txt")
    }

    /// The daemon's `/health` document.
    async fn health(&self) -> serde_json::Value {
        common::daemon_health(&self.dir.path().join("daemon")).await
    }

    /// What each registered runtime said about its sandbox.
    fn registered_sandboxes(&self) -> Vec<Option<SandboxState>> {
        self.fake
            .register_requests()
            .iter()
            .flat_map(|r| r.runtimes.iter().map(|rt| rt.sandbox))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_gets_the_allow_listed_environment_never_the_daemons_token() {
    if !bwrap_works() {
        return;
    }
    let run = Run::start(
        "env | sort",
        "",
        &[
            ("AWS_SECRET_ACCESS_KEY", "aws-secret-7777"),
            ("ANTHROPIC_API_KEY", "model-key-1234"),
            ("AGENTD_SERVER_URL", "http://daemon-env-url"),
            ("LANG", "C.UTF-8"),
        ],
    )
    .await;
    let env = run.observe(&[("FOO", "bar")]).await;
    assert!(env.contains("ANTHROPIC_API_KEY=model-key-1234"), "{env}");
    assert!(env.contains("AGENTD_TOKEN=task-token-of-task-1"), "{env}");
    assert!(env.contains("LANG=C.UTF-8"), "{env}");
    assert!(env.contains("FOO=bar"), "{env}");
    assert!(env.contains("TMPDIR=/tmp"), "{env}");
    assert!(
        !env.contains(TOKEN),
        "the daemon's token reached the agent:\n{env}"
    );
    assert!(!env.contains("aws-secret-7777"), "{env}");
    assert!(!env.contains("daemon-env-url"), "{env}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirecting_custom_env_is_refused_and_the_transcript_says_so() {
    if !bwrap_works() {
        return;
    }
    let run = Run::start(
        "env | sort",
        "custom_env_allow = [\"OPENAI_BASE_URL\"]\n",
        &[],
    )
    .await;
    let env = run
        .observe(&[
            ("ANTHROPIC_BASE_URL", "https://attacker.example"),
            ("GIT_SSH_COMMAND", "sh -c evil"),
            ("OPENAI_BASE_URL", "https://allowed.example"),
        ])
        .await;
    assert!(!env.contains("attacker.example"), "{env}");
    assert!(!env.contains("GIT_SSH_COMMAND"), "{env}");
    assert!(
        env.contains("OPENAI_BASE_URL=https://allowed.example"),
        "{env}"
    );
    let said: Vec<String> = eventually(10, "the refusal in the transcript", || {
        let msgs: Vec<String> = run
            .fake
            .messages("task-1")
            .into_iter()
            .filter_map(|m| m.content)
            .filter(|c| c.contains("custom_env key"))
            .collect();
        (msgs.len() >= 2).then_some(msgs)
    })
    .await;
    assert!(
        said.iter().any(|m| m.contains("ANTHROPIC_BASE_URL")),
        "{said:?}"
    );
    assert!(
        said.iter().any(|m| m.contains("GIT_SSH_COMMAND")),
        "{said:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_the_agent_starts_outlives_the_task() {
    if !bwrap_works() {
        return;
    }
    let run = Run::start(
        "setsid nohup sleep 4141 >/dev/null 2>&1 &\n(sleep 4142 &)\nnohup sh -c 'sleep 4143' >/dev/null 2>&1 &\necho started",
        "",
        &[],
    )
    .await;
    let obs = run.observe(&[]).await;
    assert!(obs.contains("started"), "{obs}");
    eventually(10, "the background processes died with the task", || {
        let left = [
            processes_with("sleep 4141"),
            processes_with("sleep 4142"),
            processes_with("sleep 4143"),
        ]
        .concat();
        left.is_empty().then_some(())
    })
    .await;
}

/// Limits: with `process_limit` the agent cannot start more processes than that, and
/// with `memory_limit` a large allocation fails. Needs a writable cgroup hierarchy (root
/// here) to be exact; with rlimits only, the process cap counts every process of the
/// user, so the test skips there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_and_memory_limits_hold() {
    if !bwrap_works() {
        return;
    }
    let cgroups = [
        "/sys/fs/cgroup/cgroup.procs",
        "/sys/fs/cgroup/pids/cgroup.procs",
    ]
    .iter()
    .any(|p| std::fs::OpenOptions::new().write(true).open(p).is_ok());
    if !cgroups {
        eprintln!("SKIP sandbox limits: no writable cgroup hierarchy here (rlimits only)");
        return;
    }
    // Empty cgroups of this name from an earlier run on this machine are not this run's.
    for d in run_cgroups() {
        let _ = std::fs::remove_dir(d);
    }
    let run = Run::start(
        r#"/usr/bin/python3 - <<'PY'
import os, subprocess, time
kids, n = [], 0
for _ in range(60):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(3)
        os._exit(0)
    kids.append(pid)
print(f"started={len(kids)}", flush=True)
for k in kids:
    os.kill(k, 9)
    os.waitpid(k, 0)
r = subprocess.run(["/usr/bin/python3", "-c", "x = bytearray(300 * 1024 * 1024); x[::4096] = b'a' * len(x[::4096]); print('survived-allocation')"], capture_output=True, text=True)
print(r.stdout.strip(), f"alloc-exit={r.returncode}", flush=True)
PY"#,
        "process_limit = 20\nmemory_limit = \"64M\"\n",
        &[],
    )
    .await;
    let obs = run.observe(&[]).await;
    let started: usize = obs
        .lines()
        .find_map(|l| l.strip_prefix("started="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count:\n{obs}\n{}", run.log()));
    assert!(
        started < 20,
        "{started} processes started under a cap of 20:\n{obs}"
    );
    assert!(
        !obs.contains("survived-allocation"),
        "300 MB under a 64 MB cap:\n{obs}"
    );
    assert!(obs.contains("alloc-exit="), "{obs}");
    // The run's cgroups are gone once it is over.
    let left: Vec<PathBuf> = run_cgroups();
    assert!(left.is_empty(), "{left:?}");
}

/// The cgroups named after this test's run (`agentd-task-1`) on this machine.
fn run_cgroups() -> Vec<PathBuf> {
    [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/memory",
    ]
    .iter()
    .flat_map(|root| walk_named(Path::new(root), "agentd-task-1", 4))
    .collect()
}

/// Directories named `name` under `root`, at most `depth` levels down.
fn walk_named(root: &Path, name: &str, depth: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if depth == 0 {
        return out;
    }
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            if e.file_name() == name {
                out.push(p.clone());
            }
            out.extend(walk_named(&p, name, depth - 1));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_whose_sandbox_cannot_start_claims_nothing_and_says_why() {
    let run = Run::start("echo ran", "bwrap_path = \"/nonexistent/bwrap\"\n", &[]).await;
    run.queue(&[]).await;
    let health = run.health().await;
    assert_eq!(health["status"], "unsandboxed", "{health:#}");
    assert_eq!(health["ready"], false, "{health:#}");
    assert_eq!(health["sandbox"], "unavailable", "{health:#}");
    let detail = health["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("/nonexistent/bwrap") && detail.contains("sandbox = \"off\""),
        "{detail}"
    );
    let said = run.registered_sandboxes();
    assert!(
        !said.is_empty() && said.iter().all(|s| *s == Some(SandboxState::Unavailable)),
        "{said:?}"
    );
    // Several poll intervals later the task is still not claimed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(run.fake.started().is_empty(), "{}", run.log());
    assert!(run.fake.completed().is_empty() && run.fake.fail_requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_off_is_an_explicit_choice_the_daemon_reports() {
    let run = Run::start("echo unsandboxed-run", "sandbox = \"off\"\n", &[]).await;
    let obs = run.observe(&[]).await;
    assert!(obs.contains("unsandboxed-run"), "{obs}");
    let health = run.health().await;
    assert_eq!(health["sandbox"], "off", "{health:#}");
    let said = run.registered_sandboxes();
    assert!(
        said.iter().all(|s| *s == Some(SandboxState::Off)),
        "{said:?}"
    );
}

/// The agent replaces `.git` with one whose config runs a filter on `git add`; the
/// daemon's own commit afterwards must not run it on the host (it runs in a sandbox too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_git_dir_runs_nothing_on_the_host_when_the_daemon_commits() {
    if !bwrap_works() {
        return;
    }
    let marker_dir = tempfile::tempdir().expect("tempdir");
    let marker = marker_dir.path().join("pwned");
    let run = Run::start(
        &format!(
            r#"mv .git .git-old
git init -q .
git config filter.x.clean "sh -c 'echo pwned > {m}; cat'"
echo '* filter=x' > .gitattributes
echo data > f.txt
echo replaced"#,
            m = marker.display()
        ),
        "",
        &[],
    )
    .await;
    let obs = run.observe(&[]).await;
    assert!(obs.contains("replaced"), "{obs}");
    // The daemon committed (or tried to) after the run; give it a moment either way.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !marker.exists(),
        "a filter from the agent's .git ran on the host\n{}",
        run.log()
    );
}
