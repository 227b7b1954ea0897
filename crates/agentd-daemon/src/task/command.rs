//! The command line and environment of one agent run: the environment from allow-lists
//! ([`crate::sandbox::env`]), then, when sandboxed, bubblewrap around the CLI
//! ([`crate::sandbox::bwrap`]), the limits launcher in front of it
//! ([`crate::sandbox::limits`]) and the egress relay inside it (allow-list network).
//!
//! The chain, outermost first (each part only when it is needed):
//! `agentd sandbox-exec <limits> -- bwrap <layout> -- agentd sandbox-relay -- <cli> <args>`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use agentd_proto::{FailureReason, SandboxState, Task};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Failure;
use crate::backend::CommandSpec;
use crate::daemon::Daemon;
use crate::execenv::TaskEnv;
use crate::sandbox::{NetworkMode, bwrap, egress, env as agent_env};

/// The port the in-sandbox relay listens on (the proxy variables point here).
pub const RELAY_ADDR: &str = "127.0.0.1:3128";

/// The run's egress proxy: stopped (and its socket removed) when dropped.
pub(super) struct Egress {
    stop: CancellationToken,
    socket: PathBuf,
    /// Connections the proxy denied, for the transcript.
    pub denied: mpsc::UnboundedReceiver<String>,
}

impl Drop for Egress {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// The hosts a provider's CLI talks to by default (the provider table's
/// [`api_hosts`](crate::backend::ProviderInfo::api_hosts)).
fn provider_hosts(provider: &str) -> &'static [&'static str] {
    crate::backend::provider::provider(provider).map_or(&[], |p| p.api_hosts)
}

/// `host` or `host:port` of a URL (`None` if it has no host).
fn authority(url: &str) -> Option<(String, Option<u16>)> {
    let u = url::Url::parse(url).ok()?;
    Some((u.host_str()?.to_string(), u.port_or_known_default()))
}

/// What the proxy allows for one run: the provider's API hosts, the agentd server and
/// every base URL the agent's environment names (exact endpoints: they may be on this
/// machine), the workspace's git hosts and the operator's extras.
fn egress_policy(
    provider: &str,
    server_url: &str,
    vars: &[(String, String)],
    repos: &[String],
    extra: &[String],
) -> (Vec<String>, Vec<String>) {
    let mut hosts: Vec<String> = provider_hosts(provider)
        .iter()
        .map(|h| h.to_string())
        .collect();
    hosts.extend(extra.iter().cloned());
    let mut endpoints = Vec::new();
    let urls = std::iter::once(server_url).chain(
        vars.iter()
            .filter(|(k, _)| k.ends_with("_BASE_URL") || k.ends_with("_API_BASE"))
            .map(|(_, v)| v.as_str()),
    );
    for u in urls {
        if let Some((host, Some(port))) = authority(u) {
            endpoints.push(format!("{host}:{port}"));
        }
    }
    for r in repos {
        use crate::execenv::{RepoUrl, classify_url};
        if !matches!(classify_url(r), Ok(RepoUrl::Remote | RepoUrl::PlainHttp)) {
            continue;
        }
        if let Some((host, port)) = authority(r) {
            hosts.push(match port {
                Some(p) if p != 443 && p != 80 => format!("{host}:{p}"),
                _ => host,
            });
        } else if let Some((user_host, _)) = r.split_once(':') {
            // scp-like `user@host:path`: ssh through a CONNECT tunnel.
            let host = user_host.rsplit('@').next().unwrap_or(user_host);
            hosts.push(format!("{host}:22"));
        }
    }
    hosts.sort();
    hosts.dedup();
    endpoints.sort();
    endpoints.dedup();
    (hosts, endpoints)
}

/// A command ready to spawn, and what it needs cleaned up after the run.
pub(super) struct AgentCommand {
    pub cmd: Command,
    /// Keys of `custom_env` that were refused, with why (for the transcript).
    pub refused_env: Vec<agent_env::Refused>,
    /// The run used cgroups to be removed when it is over.
    pub limits_run: Option<String>,
    /// The run's egress proxy (allow-list network).
    pub egress: Option<Egress>,
}

/// Sets `k` to `v`, replacing any earlier value.
fn set(vars: &mut Vec<(String, String)>, k: &str, v: String) {
    vars.retain(|(ek, _)| ek != k);
    vars.push((k.to_string(), v));
}

fn split_path(path: &str) -> Vec<PathBuf> {
    std::env::split_paths(path)
        .filter(|p| p.is_absolute())
        .collect()
}

impl Daemon {
    /// What the agent needs to act on its issue on the server this daemon serves:
    /// `AGENTD_*` (the `agentd issue` commands, with the task's own token) for agentd's
    /// server; for a Multica server the `MULTICA_*` variables Multica's daemon sets, so
    /// its `multica` CLI works as it does under Multica's daemon (whose token is the
    /// daemon's own: Multica has no per-task token).
    pub(super) fn server_vars(&self, task: &Task) -> Vec<(&'static str, String)> {
        if self.server_kind().is_agentd() {
            return vec![
                ("AGENTD_SERVER_URL", self.cfg.server_url.clone()),
                ("AGENTD_TOKEN", task.task_token.clone()),
                ("AGENTD_TASK_ID", task.id.clone()),
                ("AGENTD_ISSUE_ID", task.issue_id.clone()),
            ];
        }
        let name = if task.agent.name.is_empty() {
            "agent".to_string()
        } else {
            task.agent.name.clone()
        };
        let workspace = if task.workspace_id.is_empty() {
            self.registry
                .workspace_of(&task.runtime_id)
                .unwrap_or_default()
        } else {
            task.workspace_id.clone()
        };
        let mut vars = vec![
            ("MULTICA_TOKEN", self.cfg.token.clone()),
            ("MULTICA_SERVER_URL", self.cfg.server_url.clone()),
            ("MULTICA_WORKSPACE_ID", workspace),
            ("MULTICA_AGENT_NAME", name),
            ("MULTICA_AGENT_ID", task.agent_id.clone()),
            ("MULTICA_TASK_ID", task.id.clone()),
        ];
        // The health endpoint's port (fixed ports only); agentd serves no `/repo/checkout`
        // there, so `multica repo checkout` does not work (docs/multica.md).
        if let Some(addr) = self.cfg.health_addr.filter(|a| a.port() != 0) {
            vars.push(("MULTICA_DAEMON_PORT", addr.port().to_string()));
        }
        vars
    }

    /// Builds the agent's command for `task`.
    pub(super) fn agent_command(
        &self,
        task: &Task,
        provider: &str,
        cli: &Path,
        spec: &CommandSpec,
        env: &TaskEnv,
    ) -> Result<AgentCommand, Failure> {
        let sb = &self.cfg.sandbox;
        let sandboxed = self.sandbox.state == SandboxState::Bwrap;
        let network = if sandboxed {
            sb.network_for(provider)
        } else {
            NetworkMode::Open
        };
        let home = std::env::var_os("HOME").map(PathBuf::from);

        // The environment: allow-listed inherited keys < the daemon config's agent env <
        // the backend's own < the agent's custom_env (filtered) < what the daemon sets.
        let mut vars = agent_env::inherited(
            provider,
            network == NetworkMode::Open,
            &sb.pass_env,
            std::env::vars_os(),
        );
        vars.extend(self.cfg.agent_env.iter().cloned());
        vars.extend(spec.env.iter().cloned());
        let (custom, refused_env) = agent_env::custom(&task.agent.custom_env, &sb.custom_env_allow);
        for r in &refused_env {
            tracing::warn!(task_id = %task.id, key = %r.key, why = r.why, "refusing custom_env key");
        }
        vars.extend(custom);
        let mut path: Vec<PathBuf> = split_path(
            &std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        );
        if let Some(exe_dir) = self.cfg.agentd_exe.as_ref().and_then(|p| p.parent()) {
            path.insert(0, exe_dir.to_path_buf());
        }
        if let Ok(joined) = std::env::join_paths(&path) {
            set(&mut vars, "PATH", joined.to_string_lossy().into_owned());
        }
        if let Some(h) = &home {
            set(&mut vars, "HOME", h.display().to_string());
        }
        set(&mut vars, "PWD", env.workdir.display().to_string());
        for (k, v) in self.server_vars(task) {
            set(&mut vars, k, v);
        }
        if sandboxed {
            // The private /tmp; git needs an identity with the real HOME hidden.
            set(&mut vars, "TMPDIR", "/tmp".into());
            for k in ["GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"] {
                set(&mut vars, k, "agentd".into());
            }
            for k in ["GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"] {
                set(&mut vars, k, "agentd@localhost".into());
            }
        }
        if network == NetworkMode::AllowList {
            let proxy = format!("http://{RELAY_ADDR}");
            for k in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
                set(&mut vars, k, proxy.clone());
            }
            for k in ["ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"] {
                vars.retain(|(ek, _)| ek != k);
            }
            set(&mut vars, "NODE_USE_ENV_PROXY", "1".into());
        }

        if !sandboxed {
            let mut cmd = Command::new(cli);
            cmd.args(&spec.args)
                .current_dir(&env.workdir)
                .env_clear()
                .envs(vars);
            return Ok(AgentCommand {
                cmd,
                refused_env,
                limits_run: None,
                egress: None,
            });
        }

        let exe = self.cfg.agentd_exe.clone();
        let needs_exe = network == NetworkMode::AllowList
            || sb.limits.memory_bytes.is_some()
            || sb.limits.max_processes.is_some();
        if needs_exe && exe.is_none() {
            return Err(Failure::new(
                FailureReason::EnvironmentError,
                "network allow-list mode and limits need the agentd executable (agentd_exe is not set)",
            ));
        }

        // What the sandbox shows.
        let hidden = self.hidden_paths(home.as_deref());
        let mut writable: Vec<PathBuf> = match &home {
            Some(h) => bwrap::state_dirs(provider, h, &vars),
            None => Vec::new(),
        };
        for d in &writable {
            // The provider's state must survive runs (sessions, logins): it lives in the
            // real HOME, made if missing, private to the user.
            let _ = crate::fsutil::create_private_dir(d);
        }
        writable.extend(sb.writable.iter().cloned());
        let mut read_only = path.clone();
        read_only.extend(bwrap::install_dirs(cli));
        read_only.extend(exe.clone());
        read_only.extend(sb.read_only.iter().cloned());
        let egress = match network {
            NetworkMode::Open => None,
            NetworkMode::AllowList => Some(self.start_egress(task, provider, &vars)?),
        };
        let layout = bwrap::Layout {
            workdir: env.workdir.clone(),
            hidden,
            writable,
            read_only,
            share_net: network == NetworkMode::Open,
            egress_socket: egress.as_ref().map(|e| e.socket.clone()),
        };

        // Outermost first: the limits launcher, bwrap, the relay, the CLI.
        let mut argv: Vec<OsString> = Vec::new();
        let limits = sb.limits;
        let limits_run = (limits.memory_bytes.is_some() || limits.max_processes.is_some())
            .then(|| task.id.clone());
        if let (Some(run), Some(exe)) = (&limits_run, &exe) {
            argv.push(exe.clone().into());
            argv.push("sandbox-exec".into());
            argv.push("--run".into());
            argv.push(run.into());
            if let Some(m) = limits.memory_bytes {
                argv.push("--memory".into());
                argv.push(m.to_string().into());
            }
            if let Some(p) = limits.max_processes {
                argv.push("--pids".into());
                argv.push(p.to_string().into());
            }
            argv.push("--".into());
        }
        argv.push(sb.bwrap.clone().into());
        argv.extend(bwrap::args(&layout));
        if let (Some(_), Some(exe)) = (&egress, &exe) {
            argv.push(exe.clone().into());
            argv.push("sandbox-relay".into());
            argv.push("--listen".into());
            argv.push(RELAY_ADDR.into());
            argv.push("--socket".into());
            argv.push(bwrap::EGRESS_SOCKET.into());
            argv.push("--".into());
        }
        argv.push(cli.as_os_str().to_owned());
        argv.extend(spec.args.iter().map(OsString::from));

        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(&env.workdir)
            .env_clear()
            .envs(vars);
        Ok(AgentCommand {
            cmd,
            refused_env,
            limits_run,
            egress,
        })
    }

    /// What every sandbox of this daemon hides: the defaults (temp dirs, `/run`, the
    /// real HOME), the daemon's data dir and the configured extras.
    fn hidden_paths(&self, home: Option<&Path>) -> Vec<PathBuf> {
        let mut hidden = bwrap::default_hidden(home);
        hidden.push(self.cfg.data_dir.clone());
        hidden.extend(self.cfg.sandbox.hidden.iter().cloned());
        hidden
    }

    /// The sandbox the daemon's own git runs in after a sandboxed agent (see
    /// [`crate::execenv::commit_changes`]): the agent's layout without its state dirs and
    /// without network, plus `writable` (where a bundle of the work goes). Empty when
    /// agents are not sandboxed.
    pub(super) fn git_sandbox(&self, workdir: &Path, writable: &[PathBuf]) -> Vec<OsString> {
        if self.sandbox.state != SandboxState::Bwrap {
            return Vec::new();
        }
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let layout = bwrap::Layout {
            workdir: workdir.to_path_buf(),
            hidden: self.hidden_paths(home.as_deref()),
            writable: writable.to_vec(),
            read_only: split_path(&std::env::var("PATH").unwrap_or_default()),
            share_net: false,
            egress_socket: None,
        };
        let mut argv = vec![OsString::from(&self.cfg.sandbox.bwrap)];
        argv.extend(bwrap::args(&layout));
        argv
    }

    /// Starts this run's egress proxy on its own socket (in a 0700 dir of the data dir,
    /// which the sandbox hides; the socket alone is bound in).
    fn start_egress(
        &self,
        task: &Task,
        provider: &str,
        vars: &[(String, String)],
    ) -> Result<Egress, Failure> {
        let env_err = |e: String| Failure::new(FailureReason::EnvironmentError, e);
        let workspace = self
            .registry
            .workspace_of(&task.runtime_id)
            .unwrap_or_default();
        let repos = self.registry.allowed_repos(&workspace);
        let (hosts, endpoints) = egress_policy(
            provider,
            &self.cfg.server_url,
            vars,
            &repos,
            &self.cfg.sandbox.allow_hosts,
        );
        let policy = egress::Policy::new(&hosts, &endpoints)
            .map_err(|e| env_err(format!("the network allow-list is invalid: {e}")))?;
        let dir = self.cfg.data_dir.join("egress");
        crate::fsutil::create_private_dir(&dir)
            .map_err(|e| env_err(format!("create {}: {e}", dir.display())))?;
        let name: String = task
            .id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(16)
            .collect();
        let socket = dir.join(format!("{name}.sock"));
        if socket.as_os_str().len() > 100 {
            return Err(env_err(format!(
                "the egress socket path {} is too long for a Unix socket; use a shorter data_dir",
                socket.display()
            )));
        }
        let _ = std::fs::remove_file(&socket);
        let listener = tokio::net::UnixListener::bind(&socket)
            .map_err(|e| env_err(format!("bind {}: {e}", socket.display())))?;
        let (tx, denied) = mpsc::unbounded_channel();
        let task_id = task.id.clone();
        let on_decision: egress::OnDecision = Arc::new(move |d| match d {
            egress::Decision::Allowed { host, port } => {
                tracing::debug!(task_id, host, port, "egress allowed");
            }
            egress::Decision::Denied { host, port, reason } => {
                tracing::info!(task_id, host, port, reason, "egress denied");
                let _ = tx.send(format!(
                    "agentd: network connection to {host}:{port} denied: {reason} (not on this agent's allow-list)"
                ));
            }
        });
        let stop = self.root.child_token();
        tracing::info!(task_id = %task.id, ?hosts, ?endpoints, "egress allow-list");
        self.tracker.spawn(egress::serve(
            listener,
            Arc::new(policy),
            on_decision,
            stop.clone(),
        ));
        Ok(Egress {
            stop,
            socket,
            denied,
        })
    }
}
