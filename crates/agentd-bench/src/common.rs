//! Shared plumbing: the `agentd` binary, stand-in agent CLIs, spawning a daemon, waiting
//! with deadlines, latency statistics and `/proc` readings.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};

pub const TOKEN: &str = "bench-token";

/// The `agentd` binary: `$AGENTD_BIN`, else next to this executable (build both with
/// `cargo build --release -p agentd -p agentd-bench`).
pub fn agentd_exe() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("AGENTD_BIN") {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe()?;
    let p = me.with_file_name("agentd");
    if !p.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p agentd) or set AGENTD_BIN",
            p.display()
        );
    }
    Ok(p)
}

/// Writes an executable stand-in CLI `name` into `bin` that answers `--version` with
/// `version` and otherwise runs the bash `body` (bash for `$EPOCHREALTIME`: a
/// microsecond timestamp without forking `date`).
pub fn stand_in(bin: &Path, name: &str, version: &str, body: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(bin)?;
    let p = bin.join(name);
    std::fs::write(
        &p,
        format!(
            "#!/bin/bash\nif [ \"$1\" = \"--version\" ]; then echo '{version}'; exit 0; fi\n{body}\n"
        ),
    )?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// A daemon process, killed when dropped.
pub struct DaemonProc {
    pub child: Child,
}

impl DaemonProc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for DaemonProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `agentd daemon` against `url` with `dir/bin` first on PATH, data in `dir/data`.
pub fn spawn_daemon(url: &str, dir: &Path, extra: &[&str]) -> anyhow::Result<DaemonProc> {
    spawn_daemon_with(url, TOKEN, dir, extra, "agentd_daemon=warn")
}

/// [`spawn_daemon`] with another token and log filter.
pub fn spawn_daemon_with(
    url: &str,
    token: &str,
    dir: &Path,
    extra: &[&str],
    rust_log: &str,
) -> anyhow::Result<DaemonProc> {
    // Stand-ins write their time stamps to `<dir>/marks`, which the agent sandbox hides
    // like the rest of the daemon's surroundings unless it is made writable.
    let marks = dir.join("marks");
    let config = if marks.is_dir() {
        format!("writable_paths = [{:?}]\n", marks.display().to_string())
    } else {
        String::new()
    };
    std::fs::write(dir.join("daemon.toml"), config)?;
    let log = std::fs::File::create(dir.join("daemon.log"))?;
    let child = Command::new(agentd_exe()?)
        .args(["daemon", "--server-url", url, "--token", token])
        .args(["--health-port", "0"])
        .args(extra)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(dir.join("daemon.toml"))
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", dir.join("bin").display()),
        )
        .env_remove("AGENTD_TOKEN")
        .env("RUST_LOG", rust_log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("spawn agentd daemon")?;
    Ok(DaemonProc { child })
}

/// Polls `cond` every `every` until it holds; errors after `secs`.
pub async fn wait_for(
    secs: f64,
    every: Duration,
    what: &str,
    mut cond: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    while !cond() {
        if Instant::now() >= deadline {
            bail!("timed out after {secs} s waiting for: {what}");
        }
        tokio::time::sleep(every).await;
    }
    Ok(())
}

/// The time a stand-in wrote into a file with `echo $EPOCHREALTIME > file` (file
/// mtimes are no good here: the kernel stamps them from a coarse, jiffy-grained clock).
pub fn stamp(p: &Path) -> Option<SystemTime> {
    let s = std::fs::read_to_string(p).ok()?;
    let secs: f64 = s.trim().parse().ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs))
}

/// `later - earlier`, zero if the clock disagrees.
pub fn since(earlier: SystemTime, later: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

/// Percentiles of a latency sample.
pub struct Stats {
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Stats {
    pub fn of(mut v: Vec<Duration>) -> Stats {
        v.sort();
        let at = |q: f64| {
            if v.is_empty() {
                Duration::ZERO
            } else {
                v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
            }
        };
        Stats {
            n: v.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: v.last().copied().unwrap_or_default(),
        }
    }
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Resident set size of a process, in KiB (`VmRSS`), and its peak (`VmHWM`).
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU time (user + system) a process used so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.rsplit(')').next()?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the comm field: state is f[0], utime is field 14 of the line = f[11].
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / clk_tck() as f64))
}

fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}
