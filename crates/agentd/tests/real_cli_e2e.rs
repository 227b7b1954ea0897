//! The REAL agent CLIs run THROUGH the real `agentd daemon` binary against the mock model
//! (`agentd-testkit::mock_model`) and the fake control plane, fully offline on loopback.
//!
//! Each test gives the daemon a PATH holding exactly one CLI, so exactly one runtime
//! registers; queues a task whose issue title selects a mock script; and checks what the
//! server was told against what really happened: the messages the daemon posted are the
//! ones the CLI printed (its stdout is recorded on the way by a `tee`, then parsed with the
//! same backend parser), the file is in the worktree and committed on the task's branch,
//! and the completion carries the mocked final answer.
//!
//! The per-CLI tests run once per row of [`agentd_testkit::agent_clis::ROWS`] (how each
//! CLI is installed, pointed at the mock, and what its runs look like), stamped by
//! `per_cli!` as `<cli>::<test>`; the tests of agentd features that need one real CLI
//! (comments, `agentd up`, the sandbox, the team flow) use Claude Code.
//!
//! The CLIs come from `scripts/install-agent-clis.sh` (`$AGENTD_CLI_PREFIX`, default
//! `<repo>/.cache/agent-clis`). A missing one, or a behaviour its row does not record, is
//! skipped with a `SKIP real_cli_e2e <name>: …` line on stderr. Heavy rows take the same
//! file lock as `agentd-daemon/tests/real_cli.rs`, so at most one of them runs at a time.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use agentd_daemon::backend::{self, AgentEvent, RunSpec};
use agentd_proto::ws::{TaskAvailable, WsMessage};
use agentd_proto::{FailureReason, MessageKind, Task, TaskMessage};
use agentd_testkit::agent_clis;
use agentd_testkit::fake_server::FakeServer;
use agentd_testkit::mock_model::{Api, MockModel};
use tokio::time::Instant;

const TOKEN: &str = "real-cli-e2e-token";
/// Bound of one test, from the daemon's start to the last assertion.
const TEST_BOUND: Duration = Duration::from_secs(120);

/// The installed CLI `name`, or `None` after printing why the test is skipped.
fn installed(name: &str) -> Option<PathBuf> {
    let bin = agent_clis::row(name).installed("real_cli_e2e")?;
    Some(bin.canonicalize().unwrap_or(bin))
}

/// One daemon with one CLI, in a throw-away directory (HOME, TMPDIR, bin, data dir).
struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    /// The CLI's stdout of the task run, as recorded by the wrapper's `tee`.
    stdout_log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// The daemon's log and the CLI's recorded stdout, for failure messages.
    fn describe(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let out = std::fs::read_to_string(&self.stdout_log).unwrap_or_default();
        format!(
            "--- daemon log (tail) ---\n{}\n--- CLI stdout ---\n{out}",
            tail.join("\n")
        )
    }
}

/// The env one CLI needs to talk to the mock (its config files under `<dir>/home`), set
/// on the daemon (which passes its environment to the agent).
fn cli_env(name: &str, dir: &Path, mock: &MockModel) -> Vec<(String, String)> {
    agent_clis::row(name).env(&dir.join("home"), mock)
}

/// Starts `agentd daemon` against `server_url` with a PATH holding only `name`'s CLI (a
/// wrapper that `exec`s the installed CLI with its stdout through `tee`) plus
/// `/usr/bin:/bin` (node and git), and that CLI's env pointing at `mock`. The daemon's
/// environment is cleared first, so nothing from the developer's machine leaks in.
fn spawn_daemon(name: &str, cli: &Path, server_url: &str, token: &str, mock: &MockModel) -> Daemon {
    spawn_agentd(name, cli, mock, Stdio::null(), |cmd, root| {
        cmd.args(["daemon", "--server-url", server_url, "--token", token])
            .args(["--heartbeat-interval", "1s", "--poll-interval", "30s"])
            .args(["--health-port", "0", "--agent-timeout", "100s"])
            .arg("--data-dir")
            .arg(root.join("data"))
            .arg("--config")
            .arg(root.join("daemon.toml"));
    })
}

/// `agentd` with the arguments `args` adds (given the sandbox root), in a sandbox whose
/// PATH holds only `name`'s CLI (see [`spawn_daemon`]); its stderr goes to `daemon.log`.
fn spawn_agentd(
    name: &str,
    cli: &Path,
    mock: &MockModel,
    stdout: Stdio,
    args: impl FnOnce(&mut Command, &Path),
) -> Daemon {
    let dir = tempfile::tempdir().expect("tempdir");
    spawn_agentd_in(dir, name, cli, mock, stdout, args)
}

/// The sandbox settings a test daemon needs, as an operator would write them: the CLI's
/// install dir readable (the wrapper in `<root>/bin` execs it, and the repository may sit
/// under a hidden tree such as `/tmp`) and the stdout recorder's log dir writable.
fn sandbox_paths(cli: &Path, root: &Path) -> String {
    // A Python CLI also needs its venv and base interpreter (`install_dirs`).
    let install: Vec<String> = agentd_daemon::sandbox::bwrap::install_dirs(cli)
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    assert!(!install.is_empty(), "the CLI's install dir");
    format!(
        "read_only_paths = {install:?}\nwritable_paths = [{:?}]\n",
        root.join("logs").display().to_string()
    )
}

/// [`spawn_agentd`] in a directory the caller made (and may have filled) beforehand.
fn spawn_agentd_in(
    dir: tempfile::TempDir,
    name: &str,
    cli: &Path,
    mock: &MockModel,
    stdout: Stdio,
    args: impl FnOnce(&mut Command, &Path),
) -> Daemon {
    use std::os::unix::fs::PermissionsExt;
    let root = dir.path();
    for d in ["home", "tmp", "bin", "data", "logs"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    // The CLI runs in the daemon's sandbox, where the test's temp dir is hidden: the
    // recorder's log dir is one the operator made writable.
    let stdout_log = root.join("logs").join("cli-stdout.jsonl");
    // `exec` keeps the CLI itself as the process the daemon supervises (same pid, exit
    // status and signals); `tee` only copies what it prints on its way to the daemon.
    let wrapper = format!(
        "#!/bin/bash\nif [ \"$1\" = --version ]; then exec '{cli}' \"$@\"; fi\nexec '{cli}' \"$@\" > >(exec tee -a '{log}')\n",
        cli = cli.display(),
        log = stdout_log.display()
    );
    // Named as the daemon looks it up: the provider's binary (`cn` for `continue`).
    let binary = agentd_daemon::backend::provider::provider(name).map_or(name, |p| p.binary);
    let bin = root.join("bin").join(binary);
    std::fs::write(&bin, wrapper).expect("write wrapper");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // Codex's mock provider reads its key from MOCK_API_KEY, which is not one of the
    // variables the daemon passes to agents by default.
    let config = format!(
        "pass_env = [\"MOCK_API_KEY\"]\n{}",
        sandbox_paths(cli, root)
    );
    std::fs::write(root.join("daemon.toml"), config).expect("daemon.toml");
    let log = std::fs::File::create(root.join("daemon.log")).expect("daemon.log");

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentd"));
    args(&mut cmd, root);
    cmd.env_clear()
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", root.join("bin").display()),
        )
        .env("HOME", root.join("home"))
        .env("TMPDIR", root.join("tmp"))
        .env("LANG", "C.UTF-8")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "agentd_daemon=debug,agentd_server=info");
    for (k, v) in cli_env(name, root, mock) {
        cmd.env(k, v);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(log)
        .spawn()
        .expect("spawn agentd");
    Daemon {
        child,
        dir,
        stdout_log,
    }
}

/// Polls `cond` every 50 ms until it holds; panics with `what` and `context()` at `deadline`.
async fn until(
    deadline: Instant,
    what: &str,
    context: impl Fn() -> String,
    mut cond: impl FnMut() -> bool,
) {
    while !cond() {
        if Instant::now() >= deadline {
            panic!("timed out waiting for: {what}\n{}", context());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the one runtime to register, queues a task for it and wakes the daemon over WS.
async fn queue_task(fake: &FakeServer, d: &Daemon, name: &str, title: &str, deadline: Instant) {
    until(
        deadline,
        "the runtime registered",
        || d.describe(),
        || fake.runtime_id_of(name).is_some(),
    )
    .await;
    until(
        deadline,
        "WS connected",
        || d.describe(),
        || fake.ws_connected_clients() >= 1,
    )
    .await;
    let registered: Vec<String> = fake
        .register_requests()
        .iter()
        .flat_map(|r| r.runtimes.iter().map(|rt| rt.provider.clone()))
        .collect();
    assert!(
        registered.iter().all(|p| p == name),
        "only {name} may register, got {registered:?}"
    );
    let rid = fake.runtime_id_of(name).expect("runtime id");
    fake.queue_task(
        &rid,
        Task {
            id: "task-1".into(),
            runtime_id: rid.clone(),
            issue_id: "issue-42".into(),
            workspace_id: "ws-1".into(),
            issue_title: title.into(),
            issue_description: "Create the file the mock asks for.".into(),
            task_token: "task-token-1".into(),
            ..Task::default()
        },
    );
    fake.push(&WsMessage::TaskAvailable(TaskAvailable {
        runtime_id: rid,
        task_id: Some("task-1".into()),
    }));
}

/// Waits until the task was reported completed or failed.
async fn wait_reported(fake: &FakeServer, d: &Daemon, deadline: Instant) {
    until(
        deadline,
        "the task was reported completed or failed",
        || d.describe(),
        || !fake.completed().is_empty() || !fake.fail_requests().is_empty(),
    )
    .await;
}

/// What the daemon should have posted: the recorded stdout run through the provider's
/// parser, numbered 1..n (as the daemon does; blank lines skipped as the daemon does).
fn expected_messages(name: &str, stdout: &str) -> Vec<TaskMessage> {
    let backend = backend::for_provider(name).expect("backend");
    let mut parser = backend.parser(&RunSpec::default());
    let mut events = Vec::new();
    for line in stdout.lines() {
        if !line.trim().is_empty() {
            events.extend(parser.line(line));
        }
    }
    events.extend(parser.finish().events);
    events
        .into_iter()
        .filter_map(|e| match e {
            AgentEvent::Message(m) => Some(m),
            AgentEvent::SessionId(_) => None,
        })
        .enumerate()
        .map(|(i, m)| m.into_message(i as i64 + 1))
        .collect()
}

fn git(work: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(work)
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `@mock:write` script through the daemon: a tool call writing `hello.txt`, then
/// the final answer `MOCK-DONE: wrote hello.txt`.
async fn writes_a_file_through_the_daemon(name: &str) {
    let row = agent_clis::row(name);
    let Some(cli) = installed(name) else {
        return;
    };
    let _lock = agent_clis::heavy_lock(row).await;
    let started = std::time::Instant::now();
    let deadline = Instant::now() + TEST_BOUND;
    let mock = MockModel::start(vec![]).await.expect("mock model");
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    let d = spawn_daemon(name, &cli, &fake.url, TOKEN, &mock);
    queue_task(&fake, &d, name, "@mock:write Add a hello file", deadline).await;
    wait_reported(&fake, &d, deadline).await;

    let fails = fake.fail_requests();
    assert!(
        fails.is_empty(),
        "task failed: {fails:#?}\n{}",
        d.describe()
    );
    let (id, done) = fake.completed().remove(0);
    assert_eq!(id, "task-1");
    assert_eq!(fake.started(), ["task-1"]);
    let ctx = || format!("completion: {done:#?}\n{}", d.describe());

    // The final answer is the mocked one.
    assert_eq!(done.output, "MOCK-DONE: wrote hello.txt", "{}", ctx());
    // An answer-only CLI (Continue) prints no session id; one that cannot resume may
    // report none (mini-swe-agent has none).
    if row.answer_only {
        assert!(done.session_id.is_none(), "{}", ctx());
    } else {
        assert!(!row.resume || done.session_id.is_some(), "{}", ctx());
    }

    // Every message the CLI printed was posted, in order, numbered 1..n. Reports are
    // asynchronous (outbox): the completion may overtake the last message batch.
    let stdout = std::fs::read_to_string(&d.stdout_log).expect("CLI stdout recorded");
    let expected = expected_messages(name, &stdout);
    until(
        deadline,
        "all messages posted",
        || format!("posted: {:#?}\n{}", fake.messages("task-1"), ctx()),
        || fake.messages("task-1").len() >= expected.len(),
    )
    .await;
    let msgs = fake.messages("task-1");
    let seqs: Vec<i64> = msgs.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=msgs.len() as i64).collect::<Vec<_>>(),
        "seq 1..n\n{}",
        ctx()
    );
    assert_eq!(
        msgs,
        expected,
        "the posted messages are the CLI's printed ones\n{}",
        ctx()
    );

    // Among them: the write tool call with its input, its result, and the final text.
    let (api, write_tool) = (row.api, row.write_tool);
    if row.answer_only {
        assert_eq!(msgs.len(), 1, "only the final answer\n{msgs:#?}\n{}", ctx());
    } else {
        let use_at = msgs
            .iter()
            .position(|m| m.kind == MessageKind::ToolUse && m.tool.as_deref() == Some(write_tool))
            .unwrap_or_else(|| panic!("no {write_tool} tool_use\n{msgs:#?}\n{}", ctx()));
        let input = msgs[use_at].input.clone().unwrap_or_default().to_string();
        // Most CLIs print the tool's arguments, content included; Codex prints a
        // `file_change` item (path and kind, not the patch). The row says which.
        assert!(
            input.contains("hello.txt") && input.contains(row.write_input_shows),
            "tool_use input names the file and its content: {input}\n{}",
            ctx()
        );
        // Hermes' quiet mode prints no tool results (its row has no shell tool).
        assert!(
            row.shell_tool.is_none()
                || msgs[use_at + 1..]
                    .iter()
                    .any(|m| m.kind == MessageKind::ToolResult),
            "a tool_result follows the tool_use\n{msgs:#?}"
        );
    }
    assert!(
        msgs.iter().any(|m| m.kind == MessageKind::Text
            && m.content.as_deref() == Some("MOCK-DONE: wrote hello.txt")),
        "{msgs:#?}"
    );

    // The CLI really went through both turns of the script with the mock.
    let turns: Vec<usize> = mock
        .requests()
        .iter()
        .filter(|r| r.api == api && r.scenario.as_deref() == Some("write"))
        .map(|r| r.turn)
        .collect();
    assert!(
        turns.contains(&0) && turns.contains(&1),
        "mock turns {turns:?}"
    );

    // The file is in the worktree and committed on the task's branch.
    let work = PathBuf::from(done.work_dir.clone().expect("work_dir"));
    assert!(work.starts_with(d.dir.path()), "{}", ctx());
    assert_eq!(
        std::fs::read_to_string(work.join("hello.txt")).unwrap_or_default(),
        "hello from mock\n",
        "{}",
        ctx()
    );
    let branch = done.branch_name.clone().expect("branch_name");
    let log = git(&work, &["log", "--format=%s", "--name-only", &branch]);
    assert!(
        log.contains("hello.txt"),
        "hello.txt committed on {branch}: {log}"
    );
    assert_eq!(
        git(&work, &["show", &format!("{branch}:hello.txt")]),
        "hello from mock\n"
    );
    eprintln!(
        "real_cli_e2e {name}: write task done in {:?}",
        started.elapsed()
    );
}

/// `@mock:error` (HTTP 400 from the model API): the CLI exits non-zero and the daemon
/// fails the task as `agent_error` with the API error (the texts the row records) in the
/// failure and in a posted message (the CLI's own report of it).
async fn api_error_fails_the_task_as_agent_error(name: &str) {
    let row = agent_clis::row(name);
    let Some(cli) = installed(name) else {
        return;
    };
    let Some((_, texts)) = row.needs("real_cli_e2e", "the API-error exit", row.api_error) else {
        return;
    };
    let _lock = agent_clis::heavy_lock(row).await;
    let deadline = Instant::now() + TEST_BOUND;
    let mock = MockModel::start(vec![]).await.expect("mock model");
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    let d = spawn_daemon(name, &cli, &fake.url, TOKEN, &mock);
    queue_task(&fake, &d, name, "@mock:error Add a hello file", deadline).await;
    wait_reported(&fake, &d, deadline).await;

    assert!(
        fake.completed().is_empty(),
        "completed: {:#?}",
        fake.completed()
    );
    let fails = fake.fail_requests();
    assert_eq!(fails.len(), 1, "{fails:#?}");
    let (id, req) = &fails[0];
    assert_eq!(id, "task-1");
    let ctx = || format!("fail request: {req:#?}\n{}", d.describe());
    assert_eq!(
        req.failure_reason,
        Some(FailureReason::AgentError),
        "{}",
        ctx()
    );
    assert!(
        texts.iter().all(|t| req.error.contains(t)),
        "the error names the API error ({texts:?})\n{}",
        ctx()
    );
    assert!(req.work_dir.is_some(), "{}", ctx());
    assert!(
        mock.requests()
            .iter()
            .any(|r| r.api == row.api && r.scenario.as_deref() == Some("error")),
        "the CLI asked the mock"
    );
    if row.answer_only {
        // Its stdout stays empty: the failure (with the stderr tail) is the report.
        assert!(fake.messages("task-1").is_empty(), "{}", ctx());
        return;
    }
    until(
        deadline,
        "the API-error message posted",
        || format!("posted: {:#?}\n{}", fake.messages("task-1"), ctx()),
        || {
            fake.messages("task-1").iter().any(|m| {
                m.content
                    .as_deref()
                    .is_some_and(|c| texts.iter().all(|t| c.contains(t)))
            })
        },
    )
    .await;
}

/// A follow-up resumes the first run's session through the daemon, as the server asks
/// for it (`prior_session_id` and `prior_work_dir` of the earlier run): the CLI answers
/// in the same session and the model sees the first exchange again. The daemon runs the
/// follow-up in the first run's checkout, so CLIs whose sessions belong to a project
/// directory (Gemini CLI, OpenCode, Qwen Code, Pi) resume too.
async fn a_follow_up_resumes_the_session_through_the_daemon(name: &str) {
    let row = agent_clis::row(name);
    let Some(cli) = installed(name) else {
        return;
    };
    if !row.resume {
        eprintln!("SKIP real_cli_e2e {name}: the CLI has no session resume");
        return;
    }
    let _lock = agent_clis::heavy_lock(row).await;
    let deadline = Instant::now() + TEST_BOUND;
    let mock = MockModel::start(vec![]).await.expect("mock model");
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    let d = spawn_daemon(name, &cli, &fake.url, TOKEN, &mock);
    queue_task(&fake, &d, name, "@mock:text hello", deadline).await;
    wait_reported(&fake, &d, deadline).await;
    let fails = fake.fail_requests();
    assert!(
        fails.is_empty(),
        "task failed: {fails:#?}\n{}",
        d.describe()
    );
    let (_, first) = fake.completed().remove(0);
    let ctx = |what: &dyn std::fmt::Debug| format!("{what:#?}\n{}", d.describe());
    assert_eq!(
        first.output,
        "Hello from the mock model.",
        "{}",
        ctx(&first)
    );
    let session = first
        .session_id
        .clone()
        .expect("the first run's session id");

    let rid = fake.runtime_id_of(name).expect("runtime id");
    fake.queue_task(
        &rid,
        Task {
            id: "task-2".into(),
            runtime_id: rid.clone(),
            issue_id: "issue-42".into(),
            workspace_id: "ws-1".into(),
            issue_title: "@mock:text again".into(),
            issue_description: "Say it again.".into(),
            task_token: "task-token-2".into(),
            prior_session_id: session.clone(),
            prior_work_dir: first.work_dir.clone().unwrap_or_default(),
            ..Task::default()
        },
    );
    fake.push(&WsMessage::TaskAvailable(TaskAvailable {
        runtime_id: rid,
        task_id: Some("task-2".into()),
    }));
    until(
        deadline,
        "the follow-up was reported",
        || d.describe(),
        || fake.completed().len() + fake.fail_requests().len() >= 2,
    )
    .await;
    let fails = fake.fail_requests();
    assert!(
        fails.is_empty(),
        "follow-up failed: {fails:#?}\n{}",
        d.describe()
    );
    let (id, second) = fake.completed().remove(1);
    assert_eq!(id, "task-2");
    assert_eq!(
        second.work_dir,
        first.work_dir,
        "the first run's checkout\n{}",
        ctx(&second)
    );
    assert_eq!(
        second.output,
        "Hello from the mock model.",
        "{}",
        ctx(&second)
    );
    assert_eq!(
        second.session_id.as_deref(),
        Some(session.as_str()),
        "the same session\n{}",
        ctx(&second)
    );
    let last = mock
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.api == row.api)
        .expect("a request to the model")
        .body
        .to_string();
    assert!(
        last.contains("@mock:text hello") && last.contains("@mock:text again"),
        "the resumed request carries the first exchange\n{}",
        d.describe()
    );
}

/// Stamps every per-CLI test above once per CLI, as `<cli>::<test>`, and lists the CLIs
/// for [`every_row_is_tested`].
/// A provider name written as an identifier (`r#continue` for the keyword) as a string.
fn cli_name(ident: &'static str) -> &'static str {
    ident.trim_start_matches("r#")
}

macro_rules! per_cli {
    ($($cli:ident),* $(,)?) => {
        const TESTED: &[&str] = &[$(stringify!($cli)),*];
        $(
            mod $cli {
                use super::cli_name;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn write_task_through_the_daemon() {
                    super::writes_a_file_through_the_daemon(cli_name(stringify!($cli))).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn api_error_fails_the_task_as_agent_error() {
                    super::api_error_fails_the_task_as_agent_error(cli_name(stringify!($cli)))
                        .await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn a_follow_up_resumes_the_session_through_the_daemon() {
                    super::a_follow_up_resumes_the_session_through_the_daemon(cli_name(stringify!($cli)))
                        .await;
                }
            }
        )*
    };
}

per_cli!(
    claude, codex, opencode, gemini, qwen, pi, kilo, r#continue, hermes, mini, copilot, droid
);

/// A row without tests here is a mistake.
#[test]
fn every_row_is_tested() {
    let rows: Vec<&str> = agent_clis::ROWS.iter().map(|r| r.name).collect();
    let tested: Vec<&str> = TESTED.iter().map(|t| cli_name(t)).collect();
    assert_eq!(rows, tested, "add the row's name to per_cli!");
}

/// Issue 4's teammate check, on the real server: the mocked model has the real Claude
/// Code run `agentd issue comment "$AGENTD_ISSUE_ID" …` through its Bash tool. The daemon
/// put `agentd` on the agent's PATH with the claim's task token, so the comment lands on
/// the issue attributed to the agent; then the result comment follows and the issue
/// moves to `in_review`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_comments_on_its_issue_through_the_real_server() {
    let Some(claude) = installed("claude") else {
        return;
    };
    let mock = MockModel::start(vec![]).await.expect("mock model");
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::Server::start(dir.path());
    let url = server.url.clone();
    let (ws, token, daemon) = server.workspace_with_tokens("e2e");
    let d = spawn_daemon("claude", &claude, &url, &daemon, &mock);
    let api = |args: &[&str]| common::cli(&url, &token, args);

    let rid = common::online_runtime(&url, &token, &ws, "claude", 60).await;
    let (agent, issue) = common::assign_new_issue(
        &url,
        &token,
        &ws,
        &rid,
        "bot",
        "@mock:comment Tell the team you are done",
    );

    let mut last = serde_json::Value::Null;
    let reached = tokio::time::timeout(TEST_BOUND, async {
        loop {
            last = api(&["issue", "show", &issue]);
            if last["issue"]["status"] == "in_review" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "the issue never reached in_review: {last:#}\n{}",
        d.describe()
    );
    let ctx = || format!("{last:#}\n{}", d.describe());
    assert_eq!(last["tasks"][0]["status"], "completed", "{}", ctx());
    let comments = last["comments"].as_array().expect("comments");
    let by_agent = comments
        .iter()
        .find(|c| c["body"] == "done by the mock")
        .unwrap_or_else(|| panic!("the agent's own comment is missing\n{}", ctx()));
    assert_eq!(by_agent["author_type"], "agent", "{}", ctx());
    assert_eq!(by_agent["author_id"], agent.as_str(), "{}", ctx());
    let result = comments.last().expect("result comment");
    assert_eq!(result["author_type"], "agent", "{}", ctx());
    assert!(
        result["body"]
            .as_str()
            .is_some_and(|b| b.contains("MOCK-DONE: commented")),
        "the result comment carries the final answer\n{}",
        ctx()
    );
    // The task log shows the Bash call that posted it.
    let tid = last["tasks"][0]["id"]
        .as_str()
        .expect("task id")
        .to_string();
    let logs = common::cli_raw(&url, &token, &["task", "logs", &tid]);
    assert!(
        logs.contains("agentd issue comment") && logs.contains("Bash"),
        "the Bash tool call is in the task log: {logs}"
    );
    // The real CLI played both turns of the script with the mock.
    let turns: Vec<usize> = mock
        .requests()
        .iter()
        .filter(|r| r.api == Api::Anthropic && r.scenario.as_deref() == Some("comment"))
        .map(|r| r.turn)
        .collect();
    assert!(
        turns.contains(&0) && turns.contains(&1),
        "mock turns {turns:?}"
    );
}

/// Issue 14's retry classes, on the real server with the real Claude Code: the model API
/// answers 529 (overloaded) to the first attempt; Claude Code gives up (its own retries
/// off), the daemon reports `model_unavailable`, and the server's automatic retry
/// completes the issue. The first attempt stays visible, failed, with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_model_api_is_retried_and_completes() {
    let Some(claude) = installed("claude") else {
        return;
    };
    let mock = MockModel::start(vec![]).await.expect("mock model");
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::Server::start_with_args(dir.path(), &["--retry-backoff-secs", "0"]);
    let url = server.url.clone();
    let (ws, token, daemon) = server.workspace_with_tokens("e2e");
    let d = spawn_daemon("claude", &claude, &url, &daemon, &mock);
    let api = |args: &[&str]| common::cli(&url, &token, args);
    let rid = common::online_runtime(&url, &token, &ws, "claude", 60).await;
    api(&[
        "agent",
        "create",
        "bot",
        "--workspace",
        &ws,
        "--runtime",
        &rid,
        "--env",
        "CLAUDE_CODE_MAX_RETRIES=0",
    ]);
    let issue = api(&[
        "issue",
        "create",
        "@mock:overloaded-once busy model",
        "--workspace",
        &ws,
        "--assign",
        "bot",
    ])["id"]
        .as_str()
        .expect("issue id")
        .to_string();
    let mut last = serde_json::Value::Null;
    let reached = tokio::time::timeout(TEST_BOUND, async {
        loop {
            last = api(&["issue", "show", &issue]);
            if last["issue"]["status"] == "in_review" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let ctx = || format!("{last:#}\n{}", d.describe());
    assert!(
        reached.is_ok(),
        "the issue never reached in_review: {}",
        ctx()
    );
    let tasks = last["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 2, "{}", ctx());
    assert_eq!(tasks[0]["status"], "failed", "{}", ctx());
    assert_eq!(tasks[0]["failure_reason"], "model_unavailable", "{}", ctx());
    assert!(
        tasks[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("529")),
        "{}",
        ctx()
    );
    assert_eq!(tasks[1]["status"], "completed", "{}", ctx());
    assert_eq!(tasks[1]["attempt"], 2, "{}", ctx());
    assert_eq!(tasks[1]["parent_task_id"], tasks[0]["id"], "{}", ctx());
    assert!(
        tasks[1]["output"]
            .as_str()
            .is_some_and(|o| o.contains("MOCK-DONE: after the overload")),
        "{}",
        ctx()
    );
}

/// Issue 4's user flow: `agentd up` (server + daemon in one process) with the real Claude
/// Code against the mock. The user creates an agent and an issue assigned to it, follows
/// the task with `agentd task logs --follow` (which ends when the task does), and finds
/// the result posted as a comment, the issue in review, and the change committed on the
/// task's branch in its worktree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_an_issue_on_real_claude_end_to_end() {
    let Some(claude) = installed("claude") else {
        return;
    };
    let mock = MockModel::start(vec![]).await.expect("mock model");
    let Up {
        d: up,
        url,
        ws,
        token,
    } = start_up(&claude, &mock, "", &[]);
    let api = |args: &[&str]| common::cli(&url, &token, args);
    // The daemon says its runs are sandboxed, and the board's runtime list agrees.
    let health = up_health(&up).await;
    assert_eq!(health["sandbox"], "bwrap", "{health:#}\n{}", up.describe());
    let rid = common::online_runtime(&url, &token, &ws, "claude", 60).await;
    let runtimes = api(&["runtime", "list", "--workspace", &ws]);
    let shown = runtimes
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["id"] == rid.as_str()))
        .unwrap_or_else(|| panic!("{runtimes:#}"));
    assert_eq!(shown["sandbox"], "bwrap", "{shown:#}");

    let (_agent, issue) = common::assign_new_issue(
        &url,
        &token,
        &ws,
        &rid,
        "claude-bot",
        "@mock:write Add a hello file",
    );
    let task = common::eventually(10, "the issue has a task", || {
        api(&["issue", "show", &issue])["tasks"][0]["id"]
            .as_str()
            .map(str::to_string)
    })
    .await;

    // `task logs --follow` prints the messages as they arrive and returns once the task
    // is finished.
    let (u, t, id) = (url.clone(), token.clone(), task.clone());
    let follow = tokio::time::timeout(
        TEST_BOUND,
        tokio::task::spawn_blocking(move || {
            Command::new(common::BIN)
                .args(["task", "logs", &id, "--follow"])
                .env("AGENTD_SERVER_URL", u)
                .env("AGENTD_TOKEN", t)
                .output()
                .expect("run agentd task logs")
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("task logs --follow never ended\n{}", up.describe()))
    .expect("join");
    let printed = String::from_utf8_lossy(&follow.stdout);
    assert!(follow.status.success(), "{printed}\n{}", up.describe());
    assert!(
        printed.contains("Write") && printed.contains("MOCK-DONE: wrote hello.txt"),
        "the log shows the tool call and the final answer:\n{printed}"
    );

    let shown = common::eventually(10, "the issue reaches in_review", || {
        let v = api(&["issue", "show", &issue]);
        (v["issue"]["status"] == "in_review").then_some(v)
    })
    .await;
    let ctx = || format!("{shown:#}\n{}", up.describe());
    assert_eq!(shown["tasks"][0]["status"], "completed", "{}", ctx());
    let result = shown["comments"]
        .as_array()
        .and_then(|c| c.last())
        .expect("a result comment");
    assert_eq!(result["author_type"], "agent", "{}", ctx());
    assert!(
        result["body"]
            .as_str()
            .is_some_and(|b| b.contains("MOCK-DONE: wrote hello.txt")),
        "{}",
        ctx()
    );
    // The change is committed on the task's branch in its worktree, both named on the task.
    let task = &shown["tasks"][0];
    let work = PathBuf::from(task["work_dir"].as_str().expect("work_dir on the task"));
    let branch = task["branch_name"]
        .as_str()
        .expect("branch_name on the task");
    assert_eq!(
        git(&work, &["show", &format!("{branch}:hello.txt")]),
        "hello from mock\n",
        "{}",
        ctx()
    );
    assert!(
        task["usage"].as_array().is_some_and(|u| !u.is_empty()),
        "token usage reported: {}",
        ctx()
    );
}

/// Issue 17: on agentd's own server, a member's comment re-runs real Claude Code in the
/// first run's checkout (same work dir and branch, the earlier change there) and resumes
/// its session: the mock model sees the first exchange in the follow-up's request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comment_resumes_claude_in_its_checkout_on_the_real_server() {
    let Some(claude) = installed("claude") else {
        return;
    };
    let mock = MockModel::start(vec![]).await.expect("mock model");
    let up = start_up(&claude, &mock, "", &[]);
    let api = |args: &[&str]| common::cli(&up.url, &up.token, args);
    let (shown, first) = run_issue(&up, "@mock:write Add a hello file").await;
    let issue = shown["issue"]["id"].as_str().expect("issue id").to_string();
    let t1 = &shown["tasks"][0];
    let ctx = |v: &serde_json::Value| format!("{v:#}\n{}", up.d.describe());
    assert_eq!(t1["status"], "completed", "{}", ctx(&shown));
    let work = t1["work_dir"].as_str().expect("work_dir").to_string();
    let branch = t1["branch_name"].as_str().expect("branch").to_string();
    let session = t1["session_id"].as_str().expect("session").to_string();
    let requests_before = mock.requests().len();

    api(&[
        "issue",
        "comment",
        &issue,
        "@mock:text Say hello again, please.",
    ]);
    let shown = common::eventually(90, "the follow-up ended", || {
        let v = api(&["issue", "show", &issue]);
        let tasks = v["tasks"].as_array()?;
        (tasks.len() == 2
            && tasks
                .iter()
                .all(|t| matches!(t["status"].as_str(), Some("completed" | "failed"))))
        .then_some(v)
    })
    .await;
    let t2 = shown["tasks"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["id"] != first.as_str()))
        .unwrap_or_else(|| panic!("{}", ctx(&shown)));
    assert_eq!(t2["status"], "completed", "{}", ctx(&shown));
    assert_eq!(
        t2["work_dir"],
        work.as_str(),
        "the same checkout\n{}",
        ctx(&shown)
    );
    assert_eq!(
        t2["branch_name"],
        branch.as_str(),
        "the same branch\n{}",
        ctx(&shown)
    );
    assert_eq!(
        t2["session_id"],
        session.as_str(),
        "the same session\n{}",
        ctx(&shown)
    );
    // The earlier change is still there, and the follow-up's commit (if any) builds on it.
    assert_eq!(
        git(Path::new(&work), &["show", &format!("{branch}:hello.txt")]),
        "hello from mock\n"
    );
    let follow_up: Vec<String> = mock.requests()[requests_before..]
        .iter()
        .filter(|r| r.api == Api::Anthropic && r.scenario.as_deref() == Some("text"))
        .map(|r| r.body.to_string())
        .collect();
    assert!(
        !follow_up.is_empty(),
        "the follow-up asked the model\n{}",
        up.d.describe()
    );
    assert!(
        follow_up
            .iter()
            .any(|b| b.contains("@mock:write Add a hello file")
                && b.contains("MOCK-DONE: wrote hello.txt")
                && b.contains("Say hello again")),
        "the resumed request carries the first exchange\n{}",
        up.d.describe()
    );
    // Its usage is on the task, and the run view shows tokens.
    assert!(
        t2["usage"].as_array().is_some_and(|u| !u.is_empty()),
        "{}",
        ctx(&shown)
    );
}

/// The agent's MCP servers (`agent.mcp_config`, as a Multica server sends them) reach real
/// Claude Code: it starts the configured stdio server inside the run's sandbox (the server
/// here only leaves a marker in the work dir's `.git` and exits), and the run completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_starts_the_agents_mcp_server() {
    let Some(cli) = installed("claude") else {
        return;
    };
    let deadline = Instant::now() + TEST_BOUND;
    let mock = MockModel::start(vec![]).await.expect("mock model");
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    let d = spawn_daemon("claude", &cli, &fake.url, TOKEN, &mock);
    until(
        deadline,
        "the runtime registered",
        || d.describe(),
        || fake.runtime_id_of("claude").is_some(),
    )
    .await;
    let rid = fake.runtime_id_of("claude").expect("runtime id");
    let mut task = Task {
        id: "task-mcp".into(),
        runtime_id: rid.clone(),
        issue_id: "issue-42".into(),
        workspace_id: "ws-1".into(),
        issue_title: "@mock:text hello".into(),
        task_token: "task-token-1".into(),
        ..Task::default()
    };
    task.agent.mcp_config = Some(serde_json::json!({"mcpServers": {"probe": {
        "command": "/bin/sh",
        "args": ["-c", "echo started > \"$PWD/.git/mcp-started\""]}}}));
    fake.queue_task(&rid, task);
    fake.push(&WsMessage::TaskAvailable(TaskAvailable {
        runtime_id: rid,
        task_id: Some("task-mcp".into()),
    }));
    wait_reported(&fake, &d, deadline).await;
    let fails = fake.fail_requests();
    assert!(fails.is_empty(), "{fails:#?}\n{}", d.describe());
    let (_, done) = fake.completed().remove(0);
    let work = PathBuf::from(done.work_dir.clone().expect("work dir"));
    assert_eq!(
        std::fs::read_to_string(work.join(".git/mcp-started")).unwrap_or_default(),
        "started\n",
        "the MCP server ran in the work dir\n{}",
        d.describe()
    );
}

/// `agentd up` with one real CLI (see [`spawn_agentd`]), its data in `<root>/data`.
struct Up {
    d: Daemon,
    url: String,
    ws: String,
    token: String,
}

/// Starts `agentd up` with `claude`, the daemon config `config` (written where `up`'s
/// daemon reads it: `$HOME/.config/agentd/daemon.toml`) and extra environment `env`, and
/// waits for its address.
fn start_up(claude: &Path, mock: &MockModel, config: &str, env: &[(&str, &str)]) -> Up {
    start_up_in(
        tempfile::tempdir().expect("tempdir"),
        claude,
        mock,
        config,
        env,
    )
}

/// [`start_up`] in `dir`.
fn start_up_in(
    dir: tempfile::TempDir,
    claude: &Path,
    mock: &MockModel,
    config: &str,
    env: &[(&str, &str)],
) -> Up {
    use std::io::{BufRead, BufReader};
    let config = format!("{}{config}", sandbox_paths(claude, dir.path()));
    let mut up = spawn_agentd_in(dir, "claude", claude, mock, Stdio::piped(), |cmd, root| {
        let dir = root.join("home/.config/agentd");
        std::fs::create_dir_all(&dir).expect("config dir");
        std::fs::write(dir.join("daemon.toml"), &config).expect("daemon.toml");
        // In the test's own dir, outside any git repository (`up` adopts the one
        // around it).
        cmd.args(["up", "--json", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(root.join("data"))
            .current_dir(root);
        for (k, v) in env {
            cmd.env(k, v);
        }
    });
    let mut line = String::new();
    BufReader::new(up.child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("agentd up prints its address");
    let info: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}\n{}", up.describe()));
    let url = info["url"].as_str().expect("url").to_string();
    let ws = info["workspace_id"]
        .as_str()
        .expect("workspace")
        .to_string();
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(up.dir.path().join("data/up.json")).expect("up.json"),
    )
    .expect("up.json is JSON");
    let token = state["token"].as_str().expect("token").to_string();
    Up {
        d: up,
        url,
        ws,
        token,
    }
}

/// The `up` daemon's `/health` document (waiting for its endpoint to be up).
async fn up_health(up: &Daemon) -> serde_json::Value {
    common::daemon_health(&up.dir.path().join("data/daemon")).await
}

/// Runs one issue whose script is `marker` on `up`'s claude runtime and waits until it is
/// in review: `(issue show document, task id)`.
async fn run_issue(up: &Up, marker: &str) -> (serde_json::Value, String) {
    let api = |args: &[&str]| common::cli(&up.url, &up.token, args);
    let rid = common::online_runtime(&up.url, &up.token, &up.ws, "claude", 60).await;
    let (_agent, issue) =
        common::assign_new_issue(&up.url, &up.token, &up.ws, &rid, "claude-bot", marker);
    let shown = common::eventually(90, "the issue reaches in_review", || {
        let v = api(&["issue", "show", &issue]);
        matches!(
            v["issue"]["status"].as_str(),
            Some("in_review") | Some("blocked")
        )
        .then_some(v)
    })
    .await;
    let task = shown["tasks"][0]["id"]
        .as_str()
        .expect("task id")
        .to_string();
    (shown, task)
}

/// `agentd task logs <id> --json`: the task's transcript as the server keeps it.
fn transcript(up: &Up, task: &str) -> String {
    let out = Command::new(common::BIN)
        .args(["task", "logs", task, "--json"])
        .env("AGENTD_SERVER_URL", &up.url)
        .env("AGENTD_TOKEN", &up.token)
        .output()
        .expect("agentd task logs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The issue's escape attempts, run by real Claude Code's Bash tool inside the sandbox of
/// `agentd up`: it reads none of the secrets (the admin token, `up.json`, the daemon
/// config, the daemon's environ, another task's dir, a repository mirror), cannot signal
/// the daemon, and nothing it starts in the background outlives the task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_in_the_sandbox_reads_no_secret_and_leaves_nothing_behind() {
    use agentd_testkit::mock_model::Turn;
    let Some(claude) = installed("claude") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    let data = root.join("data");
    // Another task's dir and a repository mirror, as an earlier task would have left them.
    let other = data.join("daemon/tasks/other-task/work");
    std::fs::create_dir_all(&other).expect("other task dir");
    std::fs::write(other.join("secret.txt"), "other-task-secret-4711").expect("secret");
    let mirror = data.join("daemon/repos/ws/private-repo-0011.git");
    std::fs::create_dir_all(&mirror).expect("mirror");
    std::fs::write(
        mirror.join("config"),
        "[remote \"origin\"]\n\turl = mirror-secret-0815\n",
    )
    .expect("mirror config");
    let p = |p: &Path| p.display().to_string();
    let config_path = root.join("home/.config/agentd/daemon.toml");
    let script = format!(
        r#"{{
echo "== find"; timeout 30 find / -maxdepth 7 \( -name admin-token -o -name up.json \) -not -path '/proc/*' 2>/dev/null
echo "== admin-token"; cat '{admin}'
echo "== up.json"; cat '{upjson}'
echo "== config"; cat '{config}'
echo "== environ"; for p in /proc/[0-9]*; do tr '\0' '\n' < $p/environ; done 2>/dev/null | grep -i marker
echo "== ps"; ps -eo pid,args
echo "== other task"; cat '{other}/secret.txt'; ls -R '{tasks}' | sed 's/^/LISTED /'
echo "== mirror"; cat '{mirror}/config'; ls -R '{repos}' | sed 's/^/LISTED /'
echo "== kill"; pkill -9 -f 'agentd up' 2>&1; echo pkill-exit=$?
echo "== background"; setsid nohup sleep 3131 >/dev/null 2>&1 & (sleep 3132 &); echo started
echo "== end"
}} > escape.txt 2>&1; cat escape.txt"#,
        admin = p(&data.join("server/admin-token")),
        upjson = p(&data.join("up.json")),
        config = p(&config_path),
        other = p(&other),
        tasks = p(&data.join("daemon/tasks")),
        mirror = p(&mirror),
        repos = p(&data.join("daemon/repos")),
    );
    let mock = MockModel::start(vec![(
        "escape",
        vec![Turn::shell(script), Turn::text("MOCK-DONE: tried")],
    )])
    .await
    .expect("mock model");
    let up = start_up_in(
        dir,
        &claude,
        &mock,
        "# config-secret-marker-2323\n",
        &[("ESCAPE_MARKER_ENV", "environ-secret-marker-9898")],
    );
    let health = up_health(&up.d).await;
    assert_eq!(health["sandbox"], "bwrap", "{health:#}");
    let (shown, task) = run_issue(&up, "@mock:escape Try to get out").await;
    let ctx = || format!("{shown:#}\n{}", up.d.describe());
    assert_eq!(shown["tasks"][0]["status"], "completed", "{}", ctx());

    let work = PathBuf::from(shown["tasks"][0]["work_dir"].as_str().expect("work_dir"));
    let seen = std::fs::read_to_string(work.join("escape.txt")).expect("the agent's escape.txt");
    assert!(seen.contains("== end"), "the whole attempt ran:\n{seen}");
    let admin = std::fs::read_to_string(data.join("server/admin-token")).expect("admin token");
    let up_json = std::fs::read_to_string(data.join("up.json")).expect("up.json");
    let up_token = serde_json::from_str::<serde_json::Value>(&up_json).expect("json")["token"]
        .as_str()
        .expect("token")
        .to_string();
    let logs = transcript(&up, &task);
    for (what, secret) in [
        ("the admin token", admin.trim()),
        ("up.json's token", up_token.as_str()),
        ("the daemon config", "config-secret-marker-2323"),
        ("the daemon's environ", "environ-secret-marker-9898"),
        ("another task's dir", "other-task-secret-4711"),
        ("a repository mirror", "mirror-secret-0815"),
        ("the mirror's name", "LISTED private-repo-0011"),
        ("the other task's name", "LISTED other-task"),
        ("the repos dir", "LISTED ws"),
    ] {
        assert!(!seen.contains(secret), "the agent read {what}:\n{seen}");
        assert!(!logs.contains(secret), "the transcript shows {what}");
    }
    // `ps` inside shows only the sandbox's own processes: not the daemon.
    assert!(
        !seen.contains("up --json --listen"),
        "the daemon is visible:\n{seen}"
    );
    // The daemon survived the kill attempts, and nothing the agent started is left.
    assert!(
        common::pid_alive(up.d.child.id() as i32),
        "the daemon was killed"
    );
    assert!(
        up_health(&up.d).await["status"].is_string(),
        "the daemon still answers"
    );
    common::eventually(10, "the agent's background processes are gone", || {
        let left = [
            common::processes_with("sleep 3131"),
            common::processes_with("sleep 3132"),
        ]
        .concat();
        left.is_empty().then_some(())
    })
    .await;
}

/// Allow-list network: real Claude reaches the mock model and the agentd server through
/// the egress proxy, a loopback server that is not on the list is never reached, and the
/// transcript says the connection was denied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_list_mode_reaches_the_model_but_not_an_unlisted_server() {
    use agentd_testkit::mock_model::Turn;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let Some(claude) = installed("claude") else {
        return;
    };
    // A loopback server not on the list, counting connections.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&hits);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    let mock = MockModel::start(vec![(
        "allowlist",
        vec![
            Turn::shell(format!(
                "agentd issue comment \"$AGENTD_ISSUE_ID\" 'through the proxy'; curl -sS --max-time 10 http://127.0.0.1:{port}/steal; echo curl-exit=$?"
            )),
            Turn::text("MOCK-DONE: allowlist"),
        ],
    )])
    .await
    .expect("mock model");
    let up = start_up(&claude, &mock, "network = \"allowlist\"\n", &[]);
    let (shown, task) = run_issue(&up, "@mock:allowlist Try the network").await;
    let ctx = || format!("{shown:#}\n{}", up.d.describe());
    assert_eq!(shown["tasks"][0]["status"], "completed", "{}", ctx());
    // The model answered both turns through the proxy; the server took the comment.
    assert!(mock.count(Api::Anthropic) >= 2, "{}", ctx());
    let bodies: Vec<&str> = shown["comments"]
        .as_array()
        .expect("comments")
        .iter()
        .filter_map(|c| c["body"].as_str())
        .collect();
    assert!(bodies.contains(&"through the proxy"), "{}", ctx());
    // The unlisted server saw nothing; the transcript says why.
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the unlisted server was reached"
    );
    let logs = transcript(&up, &task);
    assert!(
        logs.contains(&format!("127.0.0.1:{port} denied")),
        "the transcript names the denied connection:\n{logs}"
    );
}

/// Issue 12's team flow with real Claude Code against the mock model, the real server
/// and daemon, a real bare repository hosting `acme/widgets` and the fake GitHub in
/// front of it: the run's branch is pushed, a pull request opened with the right head,
/// base and title; a signed review asking for changes queues a follow-up that pushes a
/// second commit to the same branch; a signed `merged` webhook moves the issue to done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_flow_pushes_opens_a_pull_request_answers_a_review_and_lands() {
    use agentd_testkit::fake_forge::{FakeForge, Flavor};
    use agentd_testkit::mock_model::Turn;
    use serde_json::json;
    let Some(claude) = installed("claude") else {
        return;
    };
    if !common::bwrap_works() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let g = |dir: &Path, args: &[&str]| git(dir, args).trim().to_string();
    // The repository: a bare `acme/widgets.git` with one commit on main.
    let bare = common::bare_remote_at(
        &dir.path().join("acme/widgets.git"),
        &dir.path().join("seed"),
    );
    let repo_url = format!("file://{}", bare.display());
    let forge = FakeForge::start("ghp_team").await;
    forge.add_git_repo("acme/widgets", "main", &bare);

    // The server, a workspace on that repository, its forge connection and tokens.
    let server = common::Server::start_with_args(dir.path(), &["--allow-local-repos"]);
    let (url, admin) = (server.url.clone(), server.admin.clone());
    let ws = common::cli(
        &url,
        &admin,
        &["workspace", "create", "team", "--repo", &repo_url],
    )["id"]
        .as_str()
        .expect("workspace")
        .to_string();
    let token_of = |args: &[&str]| {
        common::cli(&url, &admin, args)["token"]
            .as_str()
            .expect("token")
            .to_string()
    };
    let member = token_of(&["token", "create", "--workspace", &ws]);
    let daemon_token = token_of(&["token", "create", "--daemon", "--workspace", &ws]);
    let token_file = dir.path().join("forge-token");
    std::fs::write(&token_file, "ghp_team").unwrap();
    let conn = common::cli(
        &url,
        &admin,
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
    let secret = conn["webhook_secret"].as_str().expect("secret").to_string();

    // The daemon with real Claude; the review's follow-up plays `@mock:second`.
    let mock = MockModel::start(vec![(
        "second",
        vec![
            Turn::write_file("second.txt", "second\n"),
            Turn::text("MOCK-DONE: wrote second.txt"),
        ],
    )])
    .await
    .expect("mock model");
    let (u, t) = (url.clone(), daemon_token.clone());
    let d = spawn_agentd("claude", &claude, &mock, Stdio::null(), move |cmd, root| {
        cmd.args(["daemon", "--server-url", &u, "--token", &t])
            .args(["--heartbeat-interval", "1s", "--poll-interval", "2s"])
            .args(["--health-port", "0", "--allow-local-repos", "--data-dir"])
            .arg(root.join("data"))
            .arg("--config")
            .arg(root.join("daemon.toml"));
    });
    let rid = common::online_runtime(&url, &member, &ws, "claude", 60).await;
    let (_agent, issue) = common::assign_new_issue(
        &url,
        &member,
        &ws,
        &rid,
        "claude-bot",
        "@mock:write Add a hello file",
    );
    let api = |args: &[&str]| common::cli(&url, &member, args);

    // The run's branch is pushed and the pull request opened on it.
    let pr = common::eventually(90, "a pull request opened for the issue", || {
        let v = api(&["issue", "show", &issue]);
        v["issue"]["pr"]["number"].as_i64().map(|_| v)
    })
    .await;
    let ctx = || format!("{pr:#}\n{}", d.describe());
    let branch = pr["tasks"][0]["branch_name"]
        .as_str()
        .expect("branch")
        .to_string();
    let pulls = forge.requests_to("POST", "/repos/acme/widgets/pulls");
    assert_eq!(pulls.len(), 1, "{}", ctx());
    let body = pulls[0].body.clone();
    assert_eq!(body["head"], branch.as_str(), "{}", ctx());
    assert_eq!(body["base"], "main");
    assert_eq!(body["title"], "@mock:write Add a hello file");
    assert!(
        body["body"].as_str().unwrap_or("").contains(&issue),
        "links the issue: {body}"
    );
    let first = g(&bare, &["rev-parse", &format!("refs/heads/{branch}")]);
    assert_eq!(
        g(&bare, &["show", &format!("{branch}:hello.txt")]),
        "hello from mock"
    );

    // A review asking for changes: a follow-up on the same branch, a second commit.
    let webhook = |d: agentd_testkit::fake_forge::Delivery| {
        let http = reqwest::Client::new();
        let mut r = http
            .post(format!("{url}/api/v1/forge/webhooks/github"))
            .body(d.body.clone());
        for (k, v) in &d.headers {
            r = r.header(k, v);
        }
        async move { r.send().await.expect("webhook").status() }
    };
    let review = forge.webhook(
        Flavor::Github,
        "pull_request_review",
        "acme/widgets",
        1,
        json!({"action": "submitted", "review": {"id": 1, "state": "changes_requested",
               "body": "@mock:second please also add second.txt", "user": {"login": "alice"}}}),
        Some(&secret),
    );
    assert_eq!(webhook(review).await, 200);
    common::eventually(90, "the follow-up pushed a second commit", || {
        let head = g(&bare, &["rev-parse", &format!("refs/heads/{branch}")]);
        (head != first).then_some(())
    })
    .await;
    assert_eq!(
        g(&bare, &["rev-parse", &format!("refs/heads/{branch}^")]),
        first,
        "the second commit sits on the first"
    );
    assert_eq!(
        g(&bare, &["show", &format!("{branch}:second.txt")]),
        "second"
    );
    assert_eq!(
        forge.requests_to("POST", "/repos/acme/widgets/pulls").len(),
        1,
        "the same pull request, updated"
    );

    // Merged: the issue is done.
    forge.merge("acme/widgets", 1);
    let merged = forge.webhook(
        Flavor::Github,
        "pull_request",
        "acme/widgets",
        1,
        json!({"action": "closed"}),
        Some(&secret),
    );
    assert_eq!(webhook(merged).await, 200);
    common::eventually(20, "the issue is done", || {
        (api(&["issue", "show", &issue])["issue"]["status"] == "done").then_some(())
    })
    .await;
}
