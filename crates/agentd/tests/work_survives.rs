//! Running work survives ordinary operations: the real `agentd server` and the real
//! `agentd daemon`, a stand-in `claude` that streams Claude Code's stream-json for a
//! while, and one ordinary operation during the run — a sibling runtime deleted, every
//! connection reset five times, a server restart longer than a lease — after which the
//! task must still complete with its result comment and no task may have failed. The
//! fourth drill is the other direction: a task ended on the server must stop its agent
//! within a second, and the daemon's report that arrives after the end is kept visible
//! (a `Late report` comment) without changing the task.
//!
//! Each drill prints one line, `DRILL <name>: tasks=… completed=… lost=… duplicated=…`
//! (lost: tasks that did not complete, or failed; duplicated: a task id whose agent ran
//! more than once, or a result comment posted more than once), for docs/benchmarks.md.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agentd_testkit::fault_proxy::FaultProxy;
use common::{
    Server, assign_new_issue, cli, eventually, online_runtime, pid_alive, spawn_daemon,
    stand_in_claude,
};
use serde_json::Value;
use tokio::time::Instant;

/// The drills watch the stand-in agent from the host (its pid file, whether that pid is
/// alive, its run log), which the sandbox rightly hides and re-numbers; they are about
/// work surviving blips, so they run unsandboxed. The sandbox's own containment is
/// proven in `real_cli_e2e.rs` and `sandbox.rs`.
const DAEMON_ARGS: &[&str] = &[
    "--heartbeat-interval",
    "1s",
    "--poll-interval",
    "1s",
    "--sandbox",
    "off",
];

/// The stand-in agent's body: records `<task id> <pid>` in `dir/runs.log` and its pid in
/// `dir/agent.pid` first thing, then prints Claude Code stream-json — `system/init`, one
/// assistant text line per second for `secs` seconds, and the `result` line whose final
/// output is `output`.
fn long_agent(dir: &Path, secs: u32, output: &str) -> String {
    let runs = dir.join("runs.log");
    let pid = dir.join("agent.pid");
    format!(
        r#"echo "$AGENTD_TASK_ID $$" >> '{runs}'
echo $$ > '{pid}.tmp' && mv '{pid}.tmp' '{pid}'
echo '{{"type":"system","subtype":"init","cwd":"'"$PWD"'","session_id":"stand-in-'$$'","tools":[],"model":"stand-in"}}'
i=1
while [ $i -le {secs} ]; do
  echo '{{"type":"assistant","message":{{"id":"msg_'$i'","type":"message","role":"assistant","model":"stand-in","content":[{{"type":"text","text":"still working ('$i'/{secs})"}}],"stop_reason":null}},"parent_tool_use_id":null,"session_id":"stand-in-'$$'"}}'
  sleep 1
  i=$((i+1))
done
echo '{{"type":"result","subtype":"success","is_error":false,"num_turns":1,"duration_ms":{ms},"result":"{output}","session_id":"stand-in-'$$'"}}'
"#,
        runs = runs.display(),
        pid = pid.display(),
        ms = secs * 1000,
    )
}

/// Writes a stand-in `codex` into `bin` that answers `--version` with a supported
/// version (the minimum is 0.100.0) and does nothing else.
fn stand_in_codex(bin: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let codex = bin.join("codex");
    std::fs::write(
        &codex,
        "#!/bin/sh\nif [ \"$1\" = \"--version\" ]; then echo 'codex-cli 0.128.0'; exit 0; fi\nexit 0\n",
    )
    .expect("write stand-in codex");
    std::fs::set_permissions(&codex, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Kills (SIGKILL, whole process group) every stand-in agent listed in `runs.log` when
/// dropped, so a failing drill leaves no agent behind once its daemon is gone.
struct Agents(PathBuf);

impl Agents {
    fn new(dir: &Path) -> Agents {
        Agents(dir.join("runs.log"))
    }

    /// `(task id, pid)` of every agent run so far.
    fn runs(&self) -> Vec<(String, i32)> {
        std::fs::read_to_string(&self.0)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (task, pid) = l.split_once(' ')?;
                Some((task.to_string(), pid.trim().parse().ok()?))
            })
            .collect()
    }

    /// How many of them still run.
    fn alive(&self) -> usize {
        self.runs()
            .iter()
            .filter(|(_, pid)| pid_alive(*pid))
            .count()
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, killpg};
        use nix::unistd::Pid;
        let script = self.0.with_file_name("bin").join("claude");
        let script = script.to_string_lossy();
        for (_, pid) in self.runs() {
            // Only a process that still is our stand-in (not a reused pid); the daemon
            // starts each agent as the leader of its own process group.
            let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(script.as_ref()));
            if ours {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// The agent's pid from `dir/agent.pid`, once written.
fn agent_pid(dir: &Path) -> Option<i32> {
    std::fs::read_to_string(dir.join("agent.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `agentd issue show`: the issue, its tasks and its comments.
fn show(url: &str, token: &str, issue: &str) -> Value {
    cli(url, token, &["issue", "show", issue])
}

fn tasks(shown: &Value) -> Vec<Value> {
    shown["tasks"].as_array().cloned().unwrap_or_default()
}

fn is_final(task: &Value) -> bool {
    matches!(
        task["status"].as_str(),
        Some("completed" | "failed" | "cancelled")
    )
}

/// Every task of the workspace (through every issue), with its issue id.
fn all_tasks(url: &str, token: &str, ws: &str) -> Vec<(String, Value)> {
    let issues = cli(url, token, &["issue", "list", "--workspace", ws]);
    let mut out = Vec::new();
    for i in issues.as_array().cloned().unwrap_or_default() {
        let id = i["id"].as_str().expect("issue id").to_string();
        for t in tasks(&show(url, token, &id)) {
            out.push((id.clone(), t));
        }
    }
    out
}

/// Waits until every issue in `issues` has a task and all its tasks are `running`.
async fn all_running(url: &str, token: &str, issues: &[String], secs: u64) {
    eventually(secs, "every task running", || {
        issues
            .iter()
            .all(|i| {
                let ts = tasks(&show(url, token, i));
                !ts.is_empty() && ts.iter().all(|t| t["status"] == "running")
            })
            .then_some(())
    })
    .await;
}

/// Waits until every task of every issue in `issues` has ended (completed, failed or
/// cancelled).
async fn all_final(url: &str, token: &str, issues: &[String], secs: u64) {
    eventually(secs, "every task ended", || {
        issues
            .iter()
            .all(|i| {
                let ts = tasks(&show(url, token, i));
                !ts.is_empty() && ts.iter().all(is_final)
            })
            .then_some(())
    })
    .await;
}

/// What a drill ended with.
struct Outcome {
    tasks: Vec<(String, Value)>,
    completed: usize,
    failed: Vec<String>,
    lost: usize,
    duplicated: usize,
    /// `issue id → how many result comments (agent comments whose body is the output)`.
    results: HashMap<String, usize>,
}

/// One drill: its name, the server it talks to (URL, workspace token, workspace), the
/// output its stand-in agent ends with, and the agents it ran.
struct Drill {
    name: &'static str,
    url: String,
    /// A member token (the CLI).
    token: String,
    /// The daemon token its daemon runs with.
    daemon: String,
    ws: String,
    output: String,
    agents: Agents,
}

impl Drill {
    /// Counts the workspace's tasks, their ends, result comments and agent runs, and
    /// prints the drill's summary line (before anything is asserted, so a failing drill
    /// prints it too). `ended_by_test`: a task the drill itself cancelled, which is not
    /// lost when `cancelled`.
    fn outcome(&self, issues: &[String], ended_by_test: Option<&str>, extra: &str) -> Outcome {
        let (url, token) = (self.url.as_str(), self.token.as_str());
        let tasks = all_tasks(url, token, &self.ws);
        let mut results = HashMap::new();
        for i in issues {
            let shown = show(url, token, i);
            let n = shown["comments"]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .filter(|c| {
                            c["author_type"] == "agent" && c["body"] == self.output.as_str()
                        })
                        .count()
                })
                .unwrap_or(0);
            results.insert(i.clone(), n);
        }
        let done = |i: &String, t: &Value| {
            t["status"] == "completed" && results.get(i).copied().unwrap_or(0) >= 1
        };
        let completed = tasks.iter().filter(|(i, t)| done(i, t)).count();
        let lost = tasks
            .iter()
            .filter(|(i, t)| {
                let ours =
                    ended_by_test.is_some_and(|id| t["id"] == id) && t["status"] == "cancelled";
                !done(i, t) && !ours
            })
            .count();
        let failed: Vec<String> = tasks
            .iter()
            .filter(|(_, t)| t["status"] == "failed")
            .map(|(_, t)| {
                format!(
                    "{} failed ({}): {}",
                    t["id"].as_str().unwrap_or("?"),
                    t["failure_reason"].as_str().unwrap_or("?"),
                    t["error"].as_str().unwrap_or("")
                )
            })
            .collect();
        let mut runs: HashMap<String, usize> = HashMap::new();
        for (task, _) in self.agents.runs() {
            *runs.entry(task).or_default() += 1;
        }
        let duplicated = runs.values().map(|n| n.saturating_sub(1)).sum::<usize>()
            + results.values().map(|n| n.saturating_sub(1)).sum::<usize>();
        println!(
            "DRILL {}: tasks={} completed={completed} lost={lost} duplicated={duplicated}{extra}",
            self.name,
            tasks.len()
        );
        Outcome {
            tasks,
            completed,
            failed,
            lost,
            duplicated,
            results,
        }
    }
}

impl Outcome {
    /// Every task completed with exactly one result comment; none failed; no agent ran
    /// twice.
    fn assert_all_completed(&self, want_tasks: usize) {
        let statuses: Vec<String> = self
            .tasks
            .iter()
            .map(|(_, t)| {
                format!(
                    "{} {} {}",
                    t["id"].as_str().unwrap_or("?"),
                    t["status"].as_str().unwrap_or("?"),
                    t["failure_reason"].as_str().unwrap_or("")
                )
            })
            .collect();
        assert!(
            self.failed.is_empty(),
            "no task may fail, but: {:?}",
            self.failed
        );
        assert_eq!(
            self.tasks.len(),
            want_tasks,
            "tasks of the drill: {statuses:?}"
        );
        assert_eq!(
            self.completed, want_tasks,
            "every task completes with its result comment: {statuses:?} (result comments \
             per issue: {:?})",
            self.results
        );
        assert_eq!(self.lost, 0);
        assert_eq!(
            self.duplicated, 0,
            "no agent ran twice, no result comment was posted twice (result comments per \
             issue: {:?})",
            self.results
        );
    }
}

/// Polls `f` every 100 ms for up to `secs`; its first Some, or None.
async fn within<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Starts the server's side of a drill: a workspace, its token, and a stand-in `claude`
/// running `secs` seconds in `dir/bin`. Returns the drill and the bin dir.
fn drill(name: &'static str, server: &Server, dir: &Path, secs: u32) -> (Drill, PathBuf) {
    let (ws, token, daemon) = server.workspace_with_tokens("work-survives");
    let output = format!("survived-{name}");
    let bin = stand_in_claude(dir, &long_agent(dir, secs, &output));
    let drill = Drill {
        name,
        url: server.url.clone(),
        token,
        daemon,
        ws,
        output,
        agents: Agents::new(dir),
    };
    (drill, bin)
}

/// 1. Deleting a sibling runtime of the same daemon (codex, on the Runtimes page) while
///    the claude runtime runs a task makes the daemon heal (codex back under a new id),
///    and leaves the claude task alone: it completes with its result comment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sibling_runtime_deleted_during_a_run_does_not_touch_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(d);
    let (drill, bin) = drill("sibling_runtime_deleted", &server, d, 10);
    let (url, token, ws) = (drill.url.as_str(), drill.token.as_str(), drill.ws.as_str());
    stand_in_codex(&bin);
    let _daemon = spawn_daemon(d, &bin, url, &drill.daemon, DAEMON_ARGS);

    let claude = online_runtime(url, token, ws, "claude", 30).await;
    let codex = online_runtime(url, token, ws, "codex", 30).await;
    let (_, issue) = assign_new_issue(url, token, ws, &claude, "bot", "Run long");
    let issues = vec![issue];
    all_running(url, token, &issues, 30).await;
    eventually(10, "the agent started", || agent_pid(d)).await;

    // The user deletes the codex runtime; the daemon heals it under a new id.
    cli(url, token, &["runtime", "delete", &codex]);
    eventually(30, "codex online under a new id", || {
        cli(url, token, &["runtime", "list", "--workspace", ws])
            .as_array()?
            .iter()
            .find(|r| {
                r["provider"] == "codex" && r["status"] == "online" && r["id"] != codex.as_str()
            })
            .map(|_| ())
    })
    .await;
    let running_at_heal = drill.agents.alive();

    all_final(url, token, &issues, 60).await;
    let o = drill.outcome(&issues, None, "");
    o.assert_all_completed(1);
    assert_eq!(o.tasks[0].1["runtime_id"], claude.as_str(), "{:?}", o.tasks);
    assert_eq!(running_at_heal, 1, "the daemon healed while the agent ran");
}

/// 2. Every connection between the daemon and the server is reset (RST) five times, 2 s
///    apart, while three tasks run on a server whose lease is 4 s: all three complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_connection_reset_five_times_during_three_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start_with_args(d, &["--offline-after-secs", "4"]);
    let (drill, bin) = drill("connection_resets", &server, d, 14);
    let (url, token, ws) = (drill.url.as_str(), drill.token.as_str(), drill.ws.as_str());
    let proxy = FaultProxy::for_url(url).await;
    let _daemon = spawn_daemon(d, &bin, &proxy.url(), &drill.daemon, DAEMON_ARGS);

    let rid = online_runtime(url, token, ws, "claude", 30).await;
    let (agent, first) = assign_new_issue(url, token, ws, &rid, "bot", "Run long 1");
    let mut issues = vec![first];
    for n in 2..=3 {
        let title = format!("Run long {n}");
        let v = cli(
            url,
            token,
            &[
                "issue",
                "create",
                &title,
                "--workspace",
                ws,
                "--assign",
                &agent,
            ],
        );
        issues.push(v["id"].as_str().expect("issue id").to_string());
    }
    all_running(url, token, &issues, 30).await;

    let mut reset = 0;
    for round in 0..5 {
        if round > 0 {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        reset += proxy.reset_all();
    }
    let running_at_last_reset = drill.agents.alive();

    all_final(url, token, &issues, 60).await;
    let o = drill.outcome(
        &issues,
        None,
        &format!(" resets=5 connections_reset={reset}"),
    );
    o.assert_all_completed(3);
    assert_eq!(
        running_at_last_reset, 3,
        "the last reset came while all three agents ran"
    );
}

/// 3. The server is stopped (SIGKILL) for 7 s — longer than its 3 s lease — while a task
///    runs, and started again on the same port and data: the task completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_longer_than_a_lease_keeps_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let listen = format!("127.0.0.1:{}", free_port());
    let server_args = ["--listen", listen.as_str(), "--offline-after-secs", "3"];
    let server = Server::start_with_args(d, &server_args);
    assert_eq!(server.url, format!("http://{listen}"));
    let (drill, bin) = drill("server_restart", &server, d, 15);
    let (url, token, ws) = (drill.url.as_str(), drill.token.as_str(), drill.ws.as_str());
    let _daemon = spawn_daemon(d, &bin, url, &drill.daemon, DAEMON_ARGS);

    let rid = online_runtime(url, token, ws, "claude", 30).await;
    let (_, issue) = assign_new_issue(url, token, ws, &rid, "bot", "Run long");
    let issues = vec![issue];
    all_running(url, token, &issues, 30).await;
    eventually(10, "the agent started", || agent_pid(d)).await;

    drop(server); // SIGKILL
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let server = Server::start_with_args(d, &server_args);
    let outage = down.elapsed();
    assert_eq!(server.url, url, "restarted on the same port");
    let running_at_restart = drill.agents.alive();

    all_final(url, token, &issues, 60).await;
    let o = drill.outcome(&issues, None, &format!(" outage_ms={}", outage.as_millis()));
    o.assert_all_completed(1);
    assert_eq!(
        running_at_restart, 1,
        "the server came back while the agent ran"
    );
}

/// 4. A running task cancelled on the server stops its agent within a second; the
///    daemon's final report, arriving after the end, shows up as a `Late report` comment
///    and leaves the task `cancelled`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_ended_on_the_server_stops_its_agent_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(d);
    let (drill, bin) = drill("task_ended_on_server", &server, d, 30);
    let (url, token, ws) = (drill.url.as_str(), drill.token.as_str(), drill.ws.as_str());
    let _daemon = spawn_daemon(d, &bin, url, &drill.daemon, DAEMON_ARGS);

    let rid = online_runtime(url, token, ws, "claude", 30).await;
    let (_, issue) = assign_new_issue(url, token, ws, &rid, "bot", "Run long");
    let issues = vec![issue.clone()];
    all_running(url, token, &issues, 30).await;
    let pid = eventually(10, "the agent started", || agent_pid(d)).await;
    assert!(pid_alive(pid), "the agent {pid} runs");
    let task = tasks(&show(url, token, &issue))[0]["id"]
        .as_str()
        .expect("task id")
        .to_string();

    let cancelled = cli(url, token, &["task", "cancel", &task]);
    let ended = Instant::now();
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    // Poll /proc every 10 ms for up to 5 s; the time it took is judged below.
    let mut stopped = None;
    while ended.elapsed() < Duration::from_secs(5) {
        if !pid_alive(pid) {
            stopped = Some(ended.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stop_ms = stopped.map_or(-1, |t| t.as_millis() as i64);
    let late = within(30, || {
        show(url, token, &issue)["comments"]
            .as_array()?
            .iter()
            .find(|c| {
                c["body"]
                    .as_str()
                    .is_some_and(|b| b.contains("Late report"))
            })
            .cloned()
    })
    .await;
    let o = drill.outcome(
        &issues,
        Some(&task),
        &format!(" cancelled=1 stop_ms={stop_ms}"),
    );

    let stopped =
        stopped.unwrap_or_else(|| panic!("the agent {pid} still runs 5 s after the task ended"));
    assert!(
        stopped < Duration::from_secs(1),
        "the agent stopped {stopped:?} after the task ended on the server"
    );
    assert!(o.failed.is_empty(), "no task may fail, but: {:?}", o.failed);
    assert_eq!(o.tasks.len(), 1, "{:?}", o.tasks);
    let shown = show(url, token, &issue);
    let late = late
        .unwrap_or_else(|| panic!("no `Late report` comment 30 s after the task ended: {shown}"));
    assert_eq!(
        o.tasks[0].1["status"], "cancelled",
        "the late report leaves the task cancelled: {:?} (late report: {late})",
        o.tasks
    );
    assert_eq!(o.lost, 0);
    assert_eq!(o.duplicated, 0, "{:?}", drill.agents.runs());
}
