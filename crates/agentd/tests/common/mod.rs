//! Shared by the end-to-end tests that run the real `agentd server` binary: start it on
//! port 0 in a temp data dir, and drive it with the real `agentd` CLI (`--json`).
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_agentd");

/// A child process killed (and reaped) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `agentd server` with its admin token.
pub struct Server {
    pub url: String,
    pub admin: String,
    /// The server's stderr (its log).
    pub log: PathBuf,
    _proc: Proc,
}

impl Server {
    /// Starts `agentd server --listen 127.0.0.1:0` with its data in `dir/server` and its
    /// log in `dir/server.log`; returns once it printed its URL.
    pub fn start(dir: &Path) -> Server {
        Server::start_with_args(dir, &[])
    }

    /// Like [`Server::start`], plus `args` (e.g. `--offline-after-secs 4`). When `args`
    /// holds its own `--listen`, that address is used instead of `127.0.0.1:0` (a restart
    /// on the same port). The log is appended to, so a restart in the same `dir` keeps the
    /// first run's log.
    pub fn start_with_args(dir: &Path, args: &[&str]) -> Server {
        let log = dir.join("server.log");
        let mut cmd = Command::new(BIN);
        cmd.arg("server");
        if !args.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = cmd
            .args(args)
            .args(["--json", "--data-dir"])
            .arg(dir.join("server"))
            .env("RUST_LOG", "agentd_server=info")
            .stdout(Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .expect("server.log"),
            )
            .spawn()
            .expect("spawn agentd server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("server stdout"))
            .read_line(&mut line)
            .expect("server prints its URL");
        let proc = Proc(child);
        let url = serde_json::from_str::<Value>(&line)
            .unwrap_or_else(|e| panic!("server JSON line {line:?}: {e}"))["url"]
            .as_str()
            .expect("url")
            .to_string();
        let admin = std::fs::read_to_string(dir.join("server/admin-token"))
            .expect("admin-token")
            .trim()
            .to_string();
        Server {
            url,
            admin,
            log,
            _proc: proc,
        }
    }

    /// Creates a workspace and two tokens scoped to it, a member token (the CLI and the
    /// board) and a daemon token (for `agentd daemon`): `(workspace id, member, daemon)`.
    pub fn workspace_with_tokens(&self, name: &str) -> (String, String, String) {
        let ws = cli(&self.url, &self.admin, &["workspace", "create", name])["id"]
            .as_str()
            .expect("workspace id")
            .to_string();
        let mint = |extra: &[&str]| {
            let mut args = vec!["token", "create", "--workspace", &ws];
            args.extend_from_slice(extra);
            cli(&self.url, &self.admin, &args)["token"]
                .as_str()
                .expect("token")
                .to_string()
        };
        let member = mint(&[]);
        let daemon = mint(&["--daemon"]);
        (ws, member, daemon)
    }
}

/// Runs `agentd ARGS --json` against `url` with `token`; panics with its stderr on failure.
pub fn cli(url: &str, token: &str, args: &[&str]) -> Value {
    serde_json::from_str(&cli_raw(url, token, args)).expect("agentd --json prints JSON")
}

/// Like [`cli`], but returns what it printed (JSON lines for streams such as `task logs`).
pub fn cli_raw(url: &str, token: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .arg("--json")
        .env("AGENTD_SERVER_URL", url)
        .env("AGENTD_TOKEN", token)
        .output()
        .expect("run agentd");
    assert!(
        out.status.success(),
        "agentd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// True while process `pid` exists and is not a zombie (a killed child lingers as one
/// until it is reaped: that is dead).
pub fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// Polls `f` every 50 ms until it returns Some; panics naming `what` after `secs`.
pub async fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (up to `secs`) until `provider`'s runtime is online in workspace `ws`; its id.
pub async fn online_runtime(url: &str, token: &str, ws: &str, provider: &str, secs: u64) -> String {
    eventually(secs, &format!("{provider} online in {ws}"), || {
        cli(url, token, &["runtime", "list", "--workspace", ws])
            .as_array()?
            .iter()
            .find(|r| r["provider"] == provider && r["status"] == "online")
            .and_then(|r| r["id"].as_str().map(str::to_string))
    })
    .await
}

/// Creates agent `agent_name` on runtime `rid` and an issue `title` assigned to it, which
/// queues a task: `(agent id, issue id)`.
pub fn assign_new_issue(
    url: &str,
    token: &str,
    ws: &str,
    rid: &str,
    agent_name: &str,
    title: &str,
) -> (String, String) {
    let id = |v: Value| v["id"].as_str().expect("an id").to_string();
    let agent = id(cli(
        url,
        token,
        &[
            "agent",
            "create",
            agent_name,
            "--workspace",
            ws,
            "--runtime",
            rid,
        ],
    ));
    let issue = id(cli(
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
    ));
    (agent, issue)
}

/// Writes a stand-in `claude` into `dir/bin` (created): it answers `--version` with a
/// supported version and otherwise runs the shell `body`. Returns the bin dir.
pub fn stand_in_claude(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let claude = bin.join("claude");
    std::fs::write(
        &claude,
        format!(
            "#!/bin/sh\nif [ \"$1\" = \"--version\" ]; then echo '2.1.0 (Claude Code)'; exit 0; fi\n{body}\n"
        ),
    )
    .expect("write stand-in claude");
    std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    bin
}

/// Starts the real `agentd daemon` against `url` with `token`: PATH is `bin` plus
/// `/usr/bin:/bin`, data in `dir/daemon`, an empty config file, log in `dir/daemon.log`,
/// `--health-port 0`, plus `args` (intervals, device name, …).
pub fn spawn_daemon(dir: &Path, bin: &Path, url: &str, token: &str, args: &[&str]) -> Proc {
    spawn_daemon_with(dir, bin, url, token, "", &[], args)
}

/// [`spawn_daemon`] with `config` as the daemon's config file and `env` set on it.
pub fn spawn_daemon_with(
    dir: &Path,
    bin: &Path,
    url: &str,
    token: &str,
    config: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> Proc {
    std::fs::write(dir.join("daemon.toml"), config).expect("daemon.toml");
    let child = Command::new(BIN)
        .args(["daemon", "--server-url", url, "--token", token])
        .args(["--health-port", "0"])
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("daemon"))
        .arg("--config")
        .arg(dir.join("daemon.toml"))
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env_remove("AGENTD_TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("daemon.log")).expect("daemon.log"))
        .spawn()
        .expect("spawn agentd daemon");
    Proc(child)
}

/// The `/health` document of the daemon whose data dir is `data_dir` (it writes its
/// health address to `daemon.health` there), waiting up to 30 s for it to answer.
pub async fn daemon_health(data_dir: &Path) -> Value {
    let file = data_dir.join("daemon.health");
    eventually(30, "the daemon's health endpoint", || {
        let addr = std::fs::read_to_string(&file).ok()?;
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "5"])
            .arg(format!("http://{}/health", addr.trim()))
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    })
    .await
}

/// Command lines (with their pids) of the host's processes that contain `needle`.
pub fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!("{}: {cmdline}", e.file_name().to_string_lossy()));
        }
    }
    found
}

/// `true` when bwrap can create a task's namespaces here (agents run in it by default);
/// otherwise prints why the calling test skips.
pub fn bwrap_works() -> bool {
    let ok = Command::new("/usr/bin/bwrap")
        .args(agentd_daemon::sandbox::bwrap::probe_args())
        .arg("true")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "SKIP: /usr/bin/bwrap cannot create namespaces here; run scripts/install-sandbox.sh"
        );
    }
    ok
}

/// A shell snippet that prints the recorded agent output `fixture` (a here-document,
/// so a stand-in agent needs no file outside its sandbox: the repository itself may sit
/// under a hidden tree such as `/tmp`).
pub fn replay(fixture: &Path) -> String {
    format!("cat {}", heredoc(fixture))
}

/// The file `fixture` as a shell here-document (`<<'END' … END`), to feed a command's
/// stdin inside a sandbox that cannot see the file.
pub fn heredoc(fixture: &Path) -> String {
    let text = std::fs::read_to_string(fixture)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", fixture.display()));
    assert!(!text.contains("AGENTD_FIXTURE_END"));
    format!(
        "<<'AGENTD_FIXTURE_END'\n{}\nAGENTD_FIXTURE_END",
        text.trim_end()
    )
}

/// `git -C dir args…`, trimmed stdout; panics with git's stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bare repository at `<dir>/remote.git` with one commit (`README.md`) on `main`.
pub fn bare_remote(dir: &Path) -> PathBuf {
    bare_remote_at(&dir.join("remote.git"), &dir.join("seed"))
}

/// A bare repository at `path` with one commit (`README.md`) on `main`, made through
/// a working repository at `seed`.
pub fn bare_remote_at(path: &Path, seed: &Path) -> PathBuf {
    std::fs::create_dir_all(seed).expect("seed dir");
    let p = path.to_str().expect("utf-8 path");
    git(seed, &["init", "-q", "--bare", "-b", "main", p]);
    git(seed, &["init", "-q", "-b", "main"]);
    std::fs::write(seed.join("README.md"), "hello\n").expect("README");
    git(seed, &["add", "."]);
    git(
        seed,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "init",
        ],
    );
    git(seed, &["push", "-q", p, "main"]);
    path.to_path_buf()
}
