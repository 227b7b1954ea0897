//! `process::AgentProcess` with real child processes (`sh` scripts): line order, group
//! signals, SIGKILL after the grace, grandchildren, garbage and over-long lines.
//! Every wait is bounded by `tokio::time::timeout`; no test sleeps to win a race.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use agentd_daemon::backend::Line;
use agentd_daemon::process::{AgentProcess, ExitReport, SpawnOptions};
use nix::sys::signal::kill;
use nix::unistd::Pid;
use tokio::process::Command;
use tokio::time::timeout;

const BOUND: Duration = Duration::from_secs(20);

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script);
    cmd
}

fn spawn(script: &str) -> AgentProcess {
    AgentProcess::spawn(sh(script), SpawnOptions::default()).expect("spawn sh")
}

async fn next(p: &mut AgentProcess) -> Option<Line> {
    timeout(BOUND, p.next_line())
        .await
        .expect("next_line timed out")
}

async fn finish(p: AgentProcess) -> ExitReport {
    timeout(BOUND, p.finish()).await.expect("finish timed out")
}

fn text(line: Option<Line>) -> String {
    match line {
        Some(Line::Text(t)) => t,
        other => panic!("expected a text line, got {other:?}"),
    }
}

/// `kill -0` succeeds and the process is not a zombie (a killed grandchild is reparented
/// to pid 1, which in a container may be slow or unwilling to reap it).
fn alive(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // State is the field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
            .unwrap_or(true),
        Err(_) => false,
    }
}

/// Waits (bounded) until `pid` is gone. A killed grandchild is reparented to init (or a
/// subreaper) and may take a moment to be reaped there.
async fn wait_gone(pid: i32) {
    let start = Instant::now();
    while alive(pid) {
        assert!(start.elapsed() < BOUND, "pid {pid} still alive");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads `pid_file` once the child wrote it (the child prints `ready` afterwards).
fn read_pid(pid_file: &Path) -> i32 {
    std::fs::read_to_string(pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid")
}

#[tokio::test]
async fn lines_arrive_in_order_and_exit_status_is_reported() {
    let mut p = spawn("for i in 1 2 3 4 5; do echo line$i; done; echo oops >&2; exit 3");
    let mut got = Vec::new();
    while let Some(line) = next(&mut p).await {
        got.push(text(Some(line)));
    }
    assert_eq!(got, ["line1", "line2", "line3", "line4", "line5"]);
    let report = finish(p).await;
    assert_eq!(report.status.and_then(|s| s.code()), Some(3));
    assert_eq!(report.stderr_tail, "oops\n");
    assert!(report.unread.is_empty());
    assert!(!report.killed);
}

#[tokio::test]
async fn many_lines_are_not_lost() {
    let mut p = spawn("i=0; while [ $i -lt 5000 ]; do echo \"{\\\"n\\\":$i}\"; i=$((i+1)); done");
    let mut n = 0;
    while let Some(line) = next(&mut p).await {
        assert_eq!(text(Some(line)), format!("{{\"n\":{n}}}"));
        n += 1;
    }
    assert_eq!(n, 5000);
    assert_eq!(finish(p).await.status.and_then(|s| s.code()), Some(0));
}

#[tokio::test]
async fn sigterm_reaches_the_child_within_100ms() {
    let mut p = spawn("echo ready; exec sleep 1000");
    assert_eq!(text(next(&mut p).await), "ready");
    let start = Instant::now();
    p.terminate(Duration::from_secs(10));
    assert_eq!(next(&mut p).await, None);
    let report = finish(p).await;
    let elapsed = start.elapsed();
    assert_eq!(report.status.and_then(|s| s.signal()), Some(libc_sigterm()));
    assert!(!report.killed);
    assert!(elapsed < Duration::from_millis(100), "took {elapsed:?}");
}

#[tokio::test]
async fn a_child_that_traps_sigterm_is_killed_after_the_grace() {
    // The trap prints, so we also see that draining goes on during the grace.
    let mut p = spawn("trap 'echo got-term' TERM; echo ready; while :; do sleep 0.01; done");
    assert_eq!(text(next(&mut p).await), "ready");
    let grace = Duration::from_millis(300);
    let start = Instant::now();
    p.terminate(grace);
    assert_eq!(text(next(&mut p).await), "got-term");
    let report = finish(p).await;
    let elapsed = start.elapsed();
    assert!(report.killed);
    assert_eq!(report.status.and_then(|s| s.signal()), Some(9));
    assert!(
        elapsed >= grace,
        "killed before the grace ended: {elapsed:?}"
    );
    assert!(elapsed < grace + Duration::from_secs(5), "took {elapsed:?}");
}

#[tokio::test]
async fn terminate_kills_a_grandchild_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("grandchild.pid");
    let script = format!(
        "sleep 1000 & echo $! > '{}'; echo ready; wait",
        pid_file.display()
    );
    let mut p = spawn(&script);
    assert_eq!(text(next(&mut p).await), "ready");
    let grandchild = read_pid(&pid_file);
    assert!(alive(grandchild));
    // A long grace: the grandchild must go with the SIGTERM to the group, not the SIGKILL.
    let start = Instant::now();
    p.terminate(Duration::from_secs(30));
    let report = finish(p).await;
    assert!(!report.killed);
    assert_eq!(report.status.and_then(|s| s.signal()), Some(libc_sigterm()));
    wait_gone(grandchild).await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_grandchild_holding_stdout_after_the_leader_exits_is_bounded_and_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("grandchild.pid");
    // The leader exits at once; the backgrounded sleep keeps stdout open.
    let script = format!(
        "sleep 1000 & echo $! > '{}'; echo bye; exit 0",
        pid_file.display()
    );
    let opts = SpawnOptions {
        drain_after_exit: Duration::from_millis(200),
        ..SpawnOptions::default()
    };
    let mut p = AgentProcess::spawn(sh(&script), opts).expect("spawn");
    assert_eq!(text(next(&mut p).await), "bye");
    let start = Instant::now();
    assert_eq!(
        next(&mut p).await,
        None,
        "reading must stop after the drain bound"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    let grandchild = read_pid(&pid_file);
    let report = finish(p).await;
    assert_eq!(report.status.and_then(|s| s.code()), Some(0));
    wait_gone(grandchild).await;
}

#[tokio::test]
async fn garbage_and_over_long_lines_do_not_stop_reading() {
    let opts = SpawnOptions {
        max_line: 1024,
        ..SpawnOptions::default()
    };
    // Invalid UTF-8, a 100 KB line without spaces, a line without a trailing newline.
    let script = "printf 'first\\n\\377\\376garbage\\n'; head -c 100000 /dev/zero | tr '\\0' x; printf '\\nafter\\nlast'";
    let mut p = AgentProcess::spawn(sh(script), opts).expect("spawn");
    let mut got = Vec::new();
    while let Some(line) = next(&mut p).await {
        got.push(line);
    }
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(got[0], Line::Text("first".into()));
    assert_eq!(got[1], Line::Text("\u{fffd}\u{fffd}garbage".into()));
    assert!(matches!(&got[2], Line::TooLong { max: 1024, head } if head.starts_with("xxx")));
    assert_eq!(got[3], Line::Text("after".into()));
    assert_eq!(got[4], Line::Text("last".into()));
    assert_eq!(finish(p).await.status.and_then(|s| s.code()), Some(0));
}

#[tokio::test]
async fn stderr_tail_keeps_the_end() {
    let mut p =
        spawn("i=0; while [ $i -lt 3000 ]; do echo \"err $i\" >&2; i=$((i+1)); done; echo done");
    while next(&mut p).await.is_some() {}
    let report = finish(p).await;
    assert!(report.stderr_tail.len() <= 8 * 1024);
    assert!(
        report.stderr_tail.ends_with("err 2999\n"),
        "{}",
        report.stderr_tail
    );
    assert!(!report.stderr_tail.contains("err 1\n"));
}

#[tokio::test]
async fn stdin_is_dev_null() {
    // `cat` ends at once on /dev/null; with an open pipe it would wait forever.
    let mut p = spawn("cat; echo eof");
    assert_eq!(text(next(&mut p).await), "eof");
    assert_eq!(finish(p).await.status.and_then(|s| s.code()), Some(0));
}

#[tokio::test]
async fn dropping_a_running_process_kills_its_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("grandchild.pid");
    let script = format!(
        "sleep 1000 & echo $! > '{}'; echo ready; wait",
        pid_file.display()
    );
    let mut p = spawn(&script);
    assert_eq!(text(next(&mut p).await), "ready");
    let grandchild = read_pid(&pid_file);
    drop(p);
    wait_gone(grandchild).await;
}

fn libc_sigterm() -> i32 {
    nix::sys::signal::Signal::SIGTERM as i32
}

/// Runs `program args…` through `command_for` in `dir` and returns its stdout lines.
async fn lines_of(program: &str, args: &[&str], dir: &Path) -> Vec<String> {
    let spec = agentd_daemon::backend::CommandSpec {
        program: "unused",
        args: args.iter().map(|a| a.to_string()).collect(),
        env: vec![("AGENTD_TEST_VAR".into(), "42".into())],
    };
    let cmd = agentd_daemon::process::command_for(program, &spec, dir);
    let mut p = AgentProcess::spawn(cmd, SpawnOptions::default()).expect("spawn");
    let mut lines = Vec::new();
    while let Some(line) = next(&mut p).await {
        lines.push(text(Some(line)));
    }
    assert_eq!(finish(p).await.status.and_then(|s| s.code()), Some(0));
    lines
}

#[tokio::test]
async fn command_for_sets_cwd_pwd_and_env() {
    let dir = tempfile::tempdir().expect("tempdir");
    let real = std::fs::canonicalize(dir.path()).expect("canonicalize");
    assert_eq!(
        lines_of("pwd", &["-P"], dir.path()).await,
        [real.display().to_string()]
    );
    // `env` (not a shell, which would recompute PWD) shows what the child was given.
    // OpenCode resolves paths against $PWD: it must name the work dir, not ours.
    let env = lines_of("env", &[], dir.path()).await;
    assert!(env.iter().any(|l| l == "AGENTD_TEST_VAR=42"), "{env:?}");
    let pwd = format!("PWD={}", dir.path().display());
    assert!(env.contains(&pwd), "{env:?}");
}

#[tokio::test]
async fn a_child_flooding_stdout_and_ignoring_sigterm_is_still_killed() {
    // `yes` never blocks our reader: stdout is always ready.
    let mut p = spawn("trap '' TERM; echo ready; exec yes flood");
    assert_eq!(text(next(&mut p).await), "ready");
    let grace = Duration::from_millis(200);
    let start = Instant::now();
    p.terminate(grace);
    let report = finish(p).await;
    assert!(report.killed);
    assert_eq!(report.status.and_then(|s| s.signal()), Some(9));
    assert!(start.elapsed() >= grace);
    assert!(!report.unread.is_empty());
}
