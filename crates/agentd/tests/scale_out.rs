//! Several real `agentd server` instances on one throwaway PostgreSQL
//! (`agentd_testkit::pg::PgCluster`), HAProxy in front (a generated config on free
//! ports, health-checking `/ready`), the real `agentd daemon` with a stand-in `claude`:
//!
//! 1. a task queued through instance A is picked up by a daemon connected to instance B
//!    (woken over the signal bus, not by its 60 s poll), a cancel through A reaches it,
//!    and the board's event stream of either instance sees both;
//! 2. an instance SIGKILLed mid-run loses no task: its daemons come back through the
//!    balancer to the others and every run completes once;
//! 3. a rolling restart of every instance, one by one, loses nothing.
//!
//! Skipped, with a printed reason, only when the PostgreSQL or HAProxy binaries are
//! missing (`scripts/install-postgres.sh`, `scripts/install-haproxy.sh`; CI installs both).
//! Each drill prints `DRILL <name>: …` for docs/benchmarks.md. Waits poll for a state
//! with a deadline.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{BIN, Proc, cli, eventually, spawn_daemon, stand_in_claude};
use serde_json::Value;

/// The daemon: pollers every 60 s (so a quick pickup proves the bus woke it), heartbeats
/// every second, agents unsandboxed (the test watches their pids from the host).
const DAEMON_ARGS: &[&str] = &[
    "--heartbeat-interval",
    "1s",
    "--poll-interval",
    "60s",
    "--sandbox",
    "off",
];

/// PostgreSQL and HAProxy, or why this machine cannot run these tests.
fn prerequisites() -> Option<&'static agentd_testkit::pg::PgCluster> {
    let haproxy = Command::new("haproxy")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !haproxy {
        println!("SKIP: haproxy not found (install: scripts/install-haproxy.sh)");
        return None;
    }
    let cluster = agentd_testkit::pg::PgCluster::shared();
    if cluster.is_none() {
        println!("SKIP: {}", agentd_testkit::pg::SKIP_HINT);
    }
    cluster
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// One `agentd server` instance on a fixed port (so it restarts where the balancer
/// expects it), its data dir holding the shared admin token.
struct Instance {
    port: u16,
    data: PathBuf,
    log: PathBuf,
    database_url: String,
    child: Option<Child>,
}

impl Instance {
    fn new(root: &Path, n: usize, database_url: &str) -> Instance {
        let data = root.join(format!("server-{n}"));
        std::fs::create_dir_all(&data).unwrap();
        Instance {
            port: free_port(),
            log: root.join(format!("server-{n}.log")),
            data,
            database_url: database_url.to_string(),
            child: None,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts it and waits until `/ready` answers 200.
    async fn start(&mut self) {
        let child = Command::new(BIN)
            .args(["server", "--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--database-url", &self.database_url, "--data-dir"])
            .arg(&self.data)
            .env("RUST_LOG", "agentd_server=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.log)
                    .unwrap(),
            )
            .spawn()
            .expect("spawn agentd server");
        self.child = Some(child);
        let url = format!("{}/ready", self.url());
        eventually(30, &format!("{url} ready"), || {
            let out = Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "--max-time",
                    "2",
                ])
                .arg(&url)
                .output()
                .ok()?;
            (out.stdout == b"200").then_some(())
        })
        .await;
    }

    /// SIGKILL: no graceful close of anything.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and wait for a graceful exit (WebSockets closed, liveness written).
    async fn stop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        if let Some(mut c) = self.child.take() {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
            let exited = eventually(30, "the instance exits", || c.try_wait().ok().flatten()).await;
            assert!(exited.success(), "graceful exit: {exited}");
        }
    }

    fn admin(&self) -> String {
        std::fs::read_to_string(self.data.join("admin-token"))
            .unwrap()
            .trim()
            .to_string()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `n` instances on a fresh database. The first bootstraps the admin token; the others
/// get a copy of its `admin-token` before they start (docs/operations.md).
async fn instances(root: &Path, n: usize) -> Vec<Instance> {
    let cluster = agentd_testkit::pg::PgCluster::shared().expect("checked");
    let url = cluster.create_database().unwrap();
    let mut all: Vec<Instance> = (0..n).map(|i| Instance::new(root, i, &url)).collect();
    all[0].start().await;
    for i in 1..n {
        std::fs::copy(
            all[0].data.join("admin-token"),
            all[i].data.join("admin-token"),
        )
        .unwrap();
        all[i].start().await;
    }
    all
}

/// HAProxy in front of `backends`, round robin, health-checking `/ready` every 200 ms.
fn haproxy(root: &Path, backends: &[&Instance]) -> (Proc, String) {
    let port = free_port();
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, b)| format!("    server s{i} 127.0.0.1:{} check\n", b.port))
        .collect();
    let cfg = format!(
        "global\n    maxconn 4096\n\
         defaults\n    mode http\n    timeout connect 1s\n    timeout client 1h\n    \
         timeout server 1h\n    timeout tunnel 1h\n    retries 3\n    option redispatch\n\
         frontend agentd\n    bind 127.0.0.1:{port}\n    default_backend instances\n\
         backend instances\n    balance roundrobin\n    option httpchk GET /ready\n    \
         http-check expect status 200\n    default-server inter 200ms fall 2 rise 1\n{servers}"
    );
    let path = root.join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let child = Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(root.join("haproxy.log")).unwrap())
        .spawn()
        .expect("spawn haproxy");
    (Proc(child), format!("http://127.0.0.1:{port}"))
}

/// The daemon WebSockets the instance at `url` holds (`/metrics`).
fn ws_connections(url: &str) -> usize {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "2"])
        .arg(format!("{url}/metrics"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .find_map(|l| l.strip_prefix("agentd_ws_connections "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as usize
}

/// Whether `url/ready` answers 200.
fn ready(url: &str) -> bool {
    Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "2",
        ])
        .arg(format!("{url}/ready"))
        .output()
        .is_ok_and(|o| o.stdout == b"200")
}

/// A workspace with a member and a daemon token, made through `url`.
fn workspace(url: &str, admin: &str) -> (String, String, String) {
    let ws = cli(url, admin, &["workspace", "create", "scale"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mint = |extra: &[&str]| {
        let mut args = vec!["token", "create", "--workspace", &ws];
        args.extend_from_slice(extra);
        cli(url, admin, &args)["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let member = mint(&[]);
    let daemon = mint(&["--daemon"]);
    (ws, member, daemon)
}

/// The stand-in agent: records `<task id> <pid>` in `dir/runs.log`, prints Claude Code's
/// stream-json for `secs` seconds, then its result `output`.
fn agent(dir: &Path, secs: u32, output: &str) -> String {
    let runs = dir.join("runs.log");
    format!(
        r#"echo "$AGENTD_TASK_ID $$" >> '{runs}'
echo '{{"type":"system","subtype":"init","cwd":"'"$PWD"'","session_id":"s-'$$'","tools":[],"model":"stand-in"}}'
i=1
while [ $i -le {secs} ]; do
  echo '{{"type":"assistant","message":{{"id":"m'$i'","type":"message","role":"assistant","model":"stand-in","content":[{{"type":"text","text":"working '$i'"}}],"stop_reason":null}},"parent_tool_use_id":null,"session_id":"s-'$$'"}}'
  sleep 1
  i=$((i+1))
done
echo '{{"type":"result","subtype":"success","is_error":false,"num_turns":1,"duration_ms":{ms},"result":"{output}","session_id":"s-'$$'"}}'
"#,
        runs = runs.display(),
        ms = secs * 1000,
    )
}

/// The runtime of `provider` online in `ws` (through `url`).
async fn online(url: &str, token: &str, ws: &str) -> String {
    eventually(30, "claude online", || {
        cli(url, token, &["runtime", "list", "--workspace", ws])
            .as_array()?
            .iter()
            .find(|r| r["provider"] == "claude" && r["status"] == "online")
            .and_then(|r| r["id"].as_str().map(str::to_string))
    })
    .await
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_string()
}

/// The issue's tasks (`agentd issue show`).
fn tasks(url: &str, token: &str, issue: &str) -> Vec<Value> {
    cli(url, token, &["issue", "show", issue])["tasks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The task ids of `runs.log` and how often each ran.
fn runs(dir: &Path) -> std::collections::HashMap<String, usize> {
    let mut out = std::collections::HashMap::new();
    for l in std::fs::read_to_string(dir.join("runs.log"))
        .unwrap_or_default()
        .lines()
    {
        if let Some((t, _)) = l.split_once(' ') {
            *out.entry(t.to_string()).or_default() += 1;
        }
    }
    out
}

/// Follows the board's event stream of `ws` on `url` into `file` (curl -N).
fn follow_events(url: &str, token: &str, ws: &str, file: &Path) -> Proc {
    let child = Command::new("curl")
        .args(["-sN", "-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("{url}/api/v1/workspaces/{ws}/events"))
        .stdout(std::fs::File::create(file).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl");
    Proc(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_queued_on_one_instance_runs_on_a_daemon_of_the_other_and_is_cancelled_there() {
    if prerequisites().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let all = instances(d, 2).await;
    let (a, b) = (&all[0], &all[1]);
    let (ws, member, daemon) = workspace(&a.url(), &a.admin());
    let events_a = follow_events(&a.url(), &member, &ws, &d.join("events-a"));
    let events_b = follow_events(&b.url(), &member, &ws, &d.join("events-b"));
    let bin = stand_in_claude(d, &agent(d, 30, "never"));
    let _daemon = spawn_daemon(d, &bin, &b.url(), &daemon, DAEMON_ARGS);
    let rt = online(&a.url(), &member, &ws).await;
    // The daemon's WebSocket on B is up (its pollers ran their first claim).
    eventually(30, "the daemon's WS connected", || {
        let addr = std::fs::read_to_string(d.join("daemon/daemon.health")).ok()?;
        let out = Command::new("curl")
            .args(["-s", "--max-time", "2"])
            .arg(format!("http://{}/health", addr.trim()))
            .output()
            .ok()?;
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        (v["ws_connected"] == true).then_some(())
    })
    .await;

    // Queued through A; the daemon on B runs it well before its 60 s poll.
    let (url_a, url_b) = (a.url(), b.url());
    let agent_id = id(&cli(
        &url_a,
        &member,
        &[
            "agent",
            "create",
            "bot",
            "--workspace",
            &ws,
            "--runtime",
            &rt,
        ],
    ));
    let queued = std::time::Instant::now();
    let issue = id(&cli(
        &url_a,
        &member,
        &[
            "issue",
            "create",
            "cross",
            "--workspace",
            &ws,
            "--assign",
            &agent_id,
        ],
    ));
    let task = eventually(10, "the task running on B's daemon", || {
        let t = tasks(&url_a, &member, &issue).pop()?;
        (t["status"] == "running").then(|| id(&t))
    })
    .await;
    let pickup = queued.elapsed();
    assert!(pickup < Duration::from_secs(10), "{pickup:?}");
    eventually(10, "the agent started", || runs(d).get(&task).map(|_| ())).await;

    // Cancelled through A: the daemon on B stops the agent and the task stays cancelled.
    let cancelled = std::time::Instant::now();
    cli(&url_a, &member, &["task", "cancel", &task]);
    let pid: i32 = std::fs::read_to_string(d.join("runs.log"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{task} ")))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    eventually(5, "the agent stopped", || {
        (!common::pid_alive(pid)).then_some(())
    })
    .await;
    let stopped = cancelled.elapsed(); // `agentd task cancel` (a process) included
    let t = tasks(&url_b, &member, &issue).pop().unwrap();
    assert_eq!(t["status"], "cancelled", "{t}");

    // Both instances' event streams saw the task queued, running and cancelled.
    for (name, file) in [("A", d.join("events-a")), ("B", d.join("events-b"))] {
        eventually(10, &format!("{name}'s stream saw everything"), || {
            let text = std::fs::read_to_string(&file).ok()?;
            let statuses: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("data:") && l.contains(&task))
                .filter_map(|l| {
                    let v: Value =
                        serde_json::from_str(l.trim_start_matches("data:").trim()).ok()?;
                    v["status"].as_str().map(|s| match s {
                        "queued" => "queued",
                        "running" => "running",
                        "cancelled" => "cancelled",
                        _ => "",
                    })
                })
                .collect();
            ["queued", "running", "cancelled"]
                .iter()
                .all(|s| statuses.contains(s))
                .then_some(())
        })
        .await;
    }
    drop((events_a, events_b));
    println!(
        "DRILL cross_instance: queued on A → running on B's daemon in {pickup:?}, cancel on A \
         → agent stopped on B's daemon in {stopped:?}, both event streams saw queued/running/cancelled"
    );
}

/// Queues `n` issues for `agent_id` through `url`; their ids.
fn queue(url: &str, member: &str, ws: &str, agent_id: &str, prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            id(&cli(
                url,
                member,
                &[
                    "issue",
                    "create",
                    &format!("{prefix} {i}"),
                    "--workspace",
                    ws,
                    "--assign",
                    agent_id,
                ],
            ))
        })
        .collect()
}

/// Waits until every issue's task ended; asserts each completed (none failed, none lost)
/// and each agent ran once. Prints the drill line first.
async fn all_complete(
    name: &str,
    url: &str,
    member: &str,
    dir: &Path,
    issues: &[String],
    secs: u64,
) {
    let ended = |t: &Value| {
        matches!(
            t["status"].as_str(),
            Some("completed" | "failed" | "cancelled")
        )
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut last = Vec::new();
    while tokio::time::Instant::now() < deadline {
        last = issues
            .iter()
            .map(|i| tasks(url, member, i))
            .collect::<Vec<_>>();
        if last.iter().all(|ts| !ts.is_empty() && ts.iter().all(ended)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let all: Vec<&Value> = last.iter().flatten().collect();
    let completed = all.iter().filter(|t| t["status"] == "completed").count();
    let runs = runs(dir);
    let duplicated: usize = runs.values().map(|n| n.saturating_sub(1)).sum();
    println!(
        "DRILL {name}: tasks={} completed={completed} lost={} duplicated={duplicated}",
        issues.len(),
        issues.len() - completed
    );
    let statuses: Vec<String> = all
        .iter()
        .map(|t| format!("{} {} {}", t["status"], t["failure_reason"], t["error"]))
        .collect();
    assert_eq!(all.len(), issues.len(), "one task per issue: {statuses:?}");
    assert_eq!(
        completed,
        issues.len(),
        "every task completes: {statuses:?}"
    );
    assert_eq!(duplicated, 0, "no agent ran twice: {runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_mid_run_or_a_rolling_restart_loses_no_task() {
    if prerequisites().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut all = instances(d, 3).await;
    let (_lb, lb) = haproxy(d, &all.iter().collect::<Vec<_>>());
    eventually(10, "HAProxy answers /ready", || ready(&lb).then_some(())).await;
    let (ws, member, daemon) = workspace(&lb, &all[0].admin());
    // Two daemons through the balancer (their WebSockets land on different instances).
    let mut daemons = Vec::new();
    let mut agents = Vec::new();
    for n in 0..2 {
        let dn = d.join(format!("d{n}"));
        std::fs::create_dir_all(&dn).unwrap();
        let bin = stand_in_claude(&dn, &agent(&dn, 8, "done"));
        let args: Vec<&str> = DAEMON_ARGS
            .iter()
            .copied()
            .chain(["--device-name", if n == 0 { "box0" } else { "box1" }])
            .collect();
        daemons.push(spawn_daemon(&dn, &bin, &lb, &daemon, &args));
        agents.push(dn);
    }
    let runtimes: Vec<String> = eventually(30, "both runtimes online", || {
        let rts: Vec<String> = cli(&lb, &member, &["runtime", "list", "--workspace", &ws])
            .as_array()?
            .iter()
            .filter(|r| r["status"] == "online")
            .filter_map(|r| r["id"].as_str().map(str::to_string))
            .collect();
        (rts.len() == 2).then_some(rts)
    })
    .await;
    let bots: Vec<String> = runtimes
        .iter()
        .enumerate()
        .map(|(i, rt)| {
            id(&cli(
                &lb,
                &member,
                &[
                    "agent",
                    "create",
                    &format!("bot{i}"),
                    "--workspace",
                    &ws,
                    "--runtime",
                    rt,
                ],
            ))
        })
        .collect();

    // 1. Four runs in flight, then the instance most of them talk to is SIGKILLed.
    let mut issues = Vec::new();
    for (i, bot) in bots.iter().enumerate() {
        issues.extend(queue(&lb, &member, &ws, bot, &format!("kill-{i}"), 2));
    }
    eventually(30, "the first runs started", || {
        (agents.iter().map(|a| runs(a).len()).sum::<usize>() >= 2).then_some(())
    })
    .await;
    // SIGKILL the instance that holds the most daemon WebSockets (at least one).
    let (victim, held) = eventually(30, "daemon WebSockets on the instances", || {
        let counts: Vec<usize> = all.iter().map(|i| ws_connections(&i.url())).collect();
        let (at, most) = counts.iter().enumerate().max_by_key(|(_, n)| **n)?;
        (counts.iter().sum::<usize>() == 2).then_some((at, *most))
    })
    .await;
    all[victim].kill();
    let killed = std::time::Instant::now();
    let merged = d.join("runs-all");
    let check_dir = |dirs: &[PathBuf]| {
        let text: String = dirs
            .iter()
            .map(|a| std::fs::read_to_string(a.join("runs.log")).unwrap_or_default())
            .collect();
        std::fs::create_dir_all(&merged).unwrap();
        std::fs::write(merged.join("runs.log"), text).unwrap();
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while tokio::time::Instant::now() < deadline {
        check_dir(&agents);
        let done = issues.iter().all(|i| {
            tasks(&lb, &member, i).iter().all(|t| {
                matches!(
                    t["status"].as_str(),
                    Some("completed" | "failed" | "cancelled")
                )
            })
        });
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    check_dir(&agents);
    all_complete("instance_sigkilled", &lb, &member, &merged, &issues, 5).await;
    println!(
        "  (instance {victim} held {held} of the 2 daemon WebSockets; all done {:?} after the kill)",
        killed.elapsed()
    );
    all[victim].start().await;

    // 2. A rolling restart: each instance stopped and started again, one by one, while
    //    tasks keep being queued and run.
    let mut rolling = Vec::new();
    for (n, bot) in (0..all.len()).zip(bots.iter().cycle()) {
        rolling.extend(queue(&lb, &member, &ws, bot, &format!("roll-{n}"), 1));
        all[n].stop().await;
        rolling.extend(queue(&lb, &member, &ws, bot, &format!("roll-{n}-down"), 1));
        all[n].start().await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    while tokio::time::Instant::now() < deadline {
        check_dir(&agents);
        let done = rolling.iter().all(|i| {
            let ts = tasks(&lb, &member, i);
            !ts.is_empty()
                && ts.iter().all(|t| {
                    matches!(
                        t["status"].as_str(),
                        Some("completed" | "failed" | "cancelled")
                    )
                })
        });
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    check_dir(&agents);
    all_complete("rolling_restart", &lb, &member, &merged, &rolling, 5).await;
    drop(daemons);
}
