//! A throwaway PostgreSQL cluster for tests: `initdb` + `pg_ctl` from Debian's
//! `postgresql` package (`scripts/install-postgres.sh`) in a temp dir, listening on a
//! unix socket in that dir and on a free TCP port of 127.0.0.1, with `fsync=off`.
//!
//! One cluster per test binary ([`PgCluster::shared`]), one fresh database per test
//! ([`PgCluster::create_database`]). PostgreSQL refuses to run as root, so as root the
//! cluster runs as the `postgres` user (or `nobody`) through `runuser`. A watchdog
//! process stops the shared cluster and removes its dir once the test binary is gone
//! (statics are never dropped); an owned [`PgCluster::start`] stops on drop.
//!
//! The superuser is `agentd` with password [`PgCluster::PASSWORD`]: TCP connections need
//! it (scram-sha-256), so tests can also try a wrong one; the socket trusts.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub struct PgCluster {
    /// The temp dir: `data/` (the cluster), the socket, `log`.
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// The user the server runs as (`None`: this process's user).
    run_as: Option<String>,
    /// Whether drop stops the cluster (not for the shared one: its watchdog does).
    stop_on_drop: bool,
}

/// Where `initdb` and `pg_ctl` are: the newest `/usr/lib/postgresql/*/bin`, else the
/// directory of an `initdb` on PATH.
pub fn pg_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
        .map(|d| std::fs::canonicalize(d.join("initdb")).map_or(d, |p| p.with_file_name("")))
}

/// The message a test prints when it skips for lack of PostgreSQL.
pub const SKIP_HINT: &str =
    "PostgreSQL binaries (initdb, pg_ctl) not found (install: scripts/install-postgres.sh)";

static SHARED: OnceLock<Option<PgCluster>> = OnceLock::new();

impl PgCluster {
    pub const USER: &'static str = "agentd";
    pub const PASSWORD: &'static str = "agentd-test-password";

    /// The cluster of this test binary, started at the first call; `None` when the
    /// binaries are missing. Panics if they are there but the cluster does not start.
    pub fn shared() -> Option<&'static PgCluster> {
        SHARED
            .get_or_init(|| {
                pg_bin_dir()?;
                let mut c = PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
                c.stop_on_drop = false;
                c.watch(std::process::id());
                Some(c)
            })
            .as_ref()
    }

    /// Starts a new cluster (stopped and removed on drop).
    pub fn start() -> Result<PgCluster, String> {
        let bin = pg_bin_dir().ok_or_else(|| SKIP_HINT.to_string())?;
        let run_as = if run(Command::new("id").arg("-u"))?.trim() == "0" {
            let user = ["postgres", "nobody"]
                .into_iter()
                .find(|u| {
                    Command::new("id")
                        .arg(u)
                        .output()
                        .is_ok_and(|o| o.status.success())
                })
                .ok_or("running as root and neither a postgres nor a nobody user exists")?;
            Some(user.to_string())
        } else {
            None
        };
        let dir = std::env::temp_dir().join(format!("agentd-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, PgCluster::PASSWORD).map_err(|e| e.to_string())?;
        if let Some(user) = &run_as {
            let uid: u32 = run(Command::new("id").args(["-u", user]))?
                .trim()
                .parse()
                .map_err(|e| format!("{e}"))?;
            let gid: u32 = run(Command::new("id").args(["-g", user]))?
                .trim()
                .parse()
                .map_err(|e| format!("{e}"))?;
            for p in [&dir, &pwfile] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid))
                    .map_err(|e| format!("cannot chown {}: {e}", p.display()))?;
            }
        }
        let port = free_port()?;
        let mut c = PgCluster {
            dir,
            bin,
            port,
            run_as,
            stop_on_drop: true,
        };
        let data = c.dir.join("data");
        c.run_pg(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                PgCluster::USER.as_ref(),
                format!("--pwfile={}", pwfile.display()).as_ref(),
                "--auth-local=trust".as_ref(),
                "--auth-host=scram-sha-256".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        // The port was free a moment ago; another process may take it first (tests of
        // other worktrees run beside these), so a start that cannot bind tries another.
        for attempt in 1.. {
            match c.pg_start() {
                Ok(()) => break,
                Err(e) if attempt < 5 && e.contains("could not bind") => {
                    c.port = free_port()?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(c)
    }

    /// `postgres://agentd:PASSWORD@127.0.0.1:PORT/DB`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{db}",
            PgCluster::USER,
            PgCluster::PASSWORD,
            self.port
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates a fresh database `t_<uuid>` and returns its URL.
    pub fn create_database(&self) -> Result<String, String> {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        Ok(self.url(&name))
    }

    /// Runs `sql` in database `db` through the socket (psql, as the superuser); its
    /// output (unaligned, tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let psql = self.bin.join("psql");
        let psql = if psql.exists() {
            psql
        } else {
            PathBuf::from("psql")
        };
        run(Command::new(psql)
            .arg("-h")
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                PgCluster::USER,
                "-d",
                db,
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql]))
    }

    /// Stops the server (`pg_ctl stop -m fast`): connections drop, the data stays.
    pub fn stop_server(&self) -> Result<(), String> {
        self.pg_ctl_stop("fast")
    }

    /// Starts it again after [`PgCluster::stop_server`] (same port and data).
    pub fn start_server(&self) -> Result<(), String> {
        self.pg_start()
    }

    fn pg_start(&self) -> Result<(), String> {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=400",
            self.port,
            self.dir.display()
        );
        self.run_pg(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-o".as_ref(),
                opts.as_ref(),
                "start".as_ref(),
            ],
        )
        .map(drop)
        .map_err(|e| {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            format!("{e}\n-- server log --\n{log}")
        })
    }

    fn pg_ctl_stop(&self, mode: &str) -> Result<(), String> {
        let data = self.dir.join("data");
        self.run_pg(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                mode.as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        )
        .map(drop)
    }

    /// Runs a binary of the bin dir as the cluster's user.
    fn run_pg(&self, name: &str, args: &[&std::ffi::OsStr]) -> Result<String, String> {
        let exe = self.bin.join(name);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args).current_dir(&self.dir);
        run(&mut cmd)
    }

    /// A process that outlives this one: once `pid` is gone, it stops the cluster and
    /// removes its dir.
    fn watch(&self, pid: u32) {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = match &self.run_as {
            Some(u) => format!("runuser -u {u} -- '{}'", pg_ctl.display()),
            None => format!("'{}'", pg_ctl.display()),
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             {stop} -D '{dir}/data' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            dir = self.dir.display()
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

use std::os::unix::process::CommandExt;

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.stop_on_drop {
            let _ = self.pg_ctl_stop("immediate");
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A TCP port of 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Runs `cmd`; its stdout, or an error with its stderr.
fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{:?} {:?} failed ({}): {}{}",
            cmd.get_program(),
            cmd.get_args().collect::<Vec<_>>(),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_serves_a_fresh_database_and_says_when_its_port_is_taken() {
        if pg_bin_dir().is_none() {
            println!("SKIP: {SKIP_HINT}");
            return;
        }
        let c = PgCluster::start().unwrap();
        let url = c.create_database().unwrap();
        let db = url.rsplit('/').next().unwrap();
        assert_eq!(c.psql(db, "SELECT 40 + 2").unwrap().trim(), "42");
        // The message `start` retries on when another process took the port.
        c.stop_server().unwrap();
        let taken = std::net::TcpListener::bind(("127.0.0.1", c.port())).unwrap();
        let err = c.start_server().unwrap_err();
        assert!(err.contains("could not bind"), "{err}");
        drop(taken);
        c.start_server().unwrap();
        assert_eq!(c.psql(db, "SELECT 1").unwrap().trim(), "1");
        let dir = c.dir().to_path_buf();
        drop(c);
        assert!(!dir.exists(), "dropped: stopped and removed");
    }
}
