//! [`DaemonConfig`]: everything the daemon needs, as plain data. The `agentd` binary
//! builds it from the TOML file, the environment and flags; tests build it directly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// One agent CLI the daemon offers as a runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEntry {
    /// `claude`, `codex`, `opencode`, `gemini`.
    pub provider: String,
    /// The command to run: a bare name found on PATH or an absolute path.
    pub path: PathBuf,
}

#[derive(Clone)]
pub struct DaemonConfig {
    /// `http(s)://host[:port][/prefix]`, no trailing slash.
    pub server_url: String,
    pub token: String,
    /// Stable identity of this machine (see [`crate::identity`]).
    pub daemon_id: String,
    pub legacy_daemon_ids: Vec<String>,
    pub device_name: String,
    pub cli_version: String,
    pub launched_by: String,
    pub timezone: String,
    /// Where the daemon keeps its identity, outbox and task directories.
    pub data_dir: PathBuf,
    pub agents: Vec<AgentEntry>,
    /// Operator-declared CLIs (`[agents.custom.NAME]`); each one found is also in
    /// `agents`, with its name as the provider.
    pub custom_agents: Vec<crate::backend::custom::CustomCli>,
    pub heartbeat_interval: Duration,
    pub poll_interval: Duration,
    pub workspace_sync_interval: Duration,
    /// Local health endpoint; `None` disables it. Port 0 picks a free port.
    pub health_addr: Option<SocketAddr>,
    pub max_concurrent_tasks: usize,
    /// This machine's labels (`gpu`, `os=linux`), sent with every runtime at register:
    /// agents bound to a pool with labels run only where all of them are.
    pub labels: Vec<String>,
    /// Timeout of one HTTP call.
    pub http_timeout: Duration,
    /// Timeout of one `<cli> --version` probe.
    pub version_probe_timeout: Duration,
    /// How long running tasks get to finish at shutdown before they are stopped.
    pub shutdown_grace: Duration,
    /// Server clock differing from ours by more than this is reported as clock skew.
    pub clock_skew_tolerance: Duration,
    /// The `agentd` executable put on the agents' PATH (so they can post comments).
    pub agentd_exe: Option<PathBuf>,
    /// A whole run is stopped after this long (failure reason `timeout`).
    pub task_timeout: Duration,
    /// A run that prints nothing for this long is stopped (`inactivity_timeout`).
    pub inactivity_timeout: Duration,
    /// Fallback cancellation check for servers that do not push `task_cancelled`.
    pub status_poll_interval: Duration,
    /// Between SIGTERM to an agent's process group and SIGKILL.
    pub kill_grace: Duration,
    /// Messages are sent in batches: at most this long after the first one…
    pub message_batch_interval: Duration,
    /// …or as soon as this many are waiting.
    pub message_batch_max: usize,
    /// How often finished task directories are swept, and after how long they go.
    pub gc_interval: Duration,
    pub gc_ttl: Duration,
    /// A task directory without a finished marker is removed after this long.
    pub gc_orphan_ttl: Duration,
    /// Extra environment for every agent run (e.g. a model base URL), applied before the
    /// agent's own `custom_env`.
    pub agent_env: Vec<(String, String)>,
    /// Where agents run and what they can see and reach (see [`crate::sandbox`]).
    pub sandbox: crate::sandbox::SandboxConfig,
    /// Clone `file://` URLs and local paths (the single-user `agentd up` case); off, a
    /// task naming one fails with `repo_not_allowed`.
    pub allow_local_repos: bool,
    /// The kind of server served, when the operator fixed it (`server_kind`); `None`: from
    /// the register answer (agentd's server names itself, Multica's does not).
    pub server_kind: Option<agentd_proto::ServerKind>,
}

impl std::fmt::Debug for DaemonConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonConfig")
            .field("server_url", &self.server_url)
            .field("token", &"<redacted>")
            .field("daemon_id", &self.daemon_id)
            .field("device_name", &self.device_name)
            .field("data_dir", &self.data_dir)
            .field("agents", &self.agents)
            .field("custom_agents", &self.custom_agents)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("poll_interval", &self.poll_interval)
            .field("health_addr", &self.health_addr)
            .field("max_concurrent_tasks", &self.max_concurrent_tasks)
            .field("sandbox", &self.sandbox)
            .finish_non_exhaustive()
    }
}

impl DaemonConfig {
    /// Defaults matching the reference daemon (15 s heartbeat, 30 s poll, 30 s sync,
    /// 20 concurrent tasks, 30 s HTTP timeout) for a given server and token.
    pub fn new(server_url: &str, token: &str, data_dir: PathBuf) -> DaemonConfig {
        DaemonConfig {
            server_url: server_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            daemon_id: String::new(),
            legacy_daemon_ids: Vec::new(),
            device_name: "local-machine".into(),
            cli_version: env!("CARGO_PKG_VERSION").into(),
            launched_by: String::new(),
            timezone: "UTC".into(),
            data_dir,
            agents: Vec::new(),
            custom_agents: Vec::new(),
            heartbeat_interval: Duration::from_secs(15),
            poll_interval: Duration::from_secs(30),
            workspace_sync_interval: Duration::from_secs(30),
            health_addr: None,
            max_concurrent_tasks: 20,
            labels: Vec::new(),
            http_timeout: Duration::from_secs(30),
            version_probe_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
            clock_skew_tolerance: Duration::from_secs(60),
            agentd_exe: None,
            task_timeout: Duration::from_secs(2 * 3600),
            inactivity_timeout: Duration::from_secs(10 * 60),
            status_poll_interval: Duration::from_secs(5),
            kill_grace: Duration::from_secs(5),
            message_batch_interval: Duration::from_millis(300),
            message_batch_max: 50,
            agent_env: Vec::new(),
            gc_interval: Duration::from_secs(3600),
            gc_ttl: Duration::from_secs(24 * 3600),
            gc_orphan_ttl: Duration::from_secs(72 * 3600),
            sandbox: crate::sandbox::SandboxConfig {
                bwrap: PathBuf::from("/usr/bin/bwrap"),
                ..crate::sandbox::SandboxConfig::default()
            },
            allow_local_repos: false,
            server_kind: None,
        }
    }

    /// The WS freshness window: two heartbeat intervals (30 s by default), well inside
    /// the server's 45 s offline threshold.
    pub fn ws_fresh_window(&self) -> Duration {
        if self.heartbeat_interval.is_zero() {
            Duration::from_secs(30)
        } else {
            self.heartbeat_interval * 2
        }
    }
}

/// Normalizes a server URL: `ws`→`http`, `wss`→`https`, a bare `/ws` path dropped,
/// query and fragment dropped, no trailing slash. Errors name what is wrong.
pub fn normalize_server_url(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("server URL is empty".into());
    }
    let mut url = url::Url::parse(trimmed).map_err(|e| format!("server URL {trimmed:?}: {e}"))?;
    let scheme = match url.scheme() {
        "http" | "ws" => "http",
        "https" | "wss" => "https",
        other => {
            return Err(format!(
                "server URL {trimmed:?}: scheme {other:?} must be http, https, ws or wss"
            ));
        }
    };
    url.set_scheme(scheme)
        .map_err(|_| format!("server URL {trimmed:?}: cannot use scheme {scheme}"))?;
    url.set_query(None);
    url.set_fragment(None);
    if url.path() == "/ws" {
        url.set_path("");
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_server_urls() {
        assert_eq!(
            normalize_server_url("ws://localhost:8080/ws").unwrap(),
            "http://localhost:8080"
        );
        assert_eq!(
            normalize_server_url("wss://h/multica/?x=1").unwrap(),
            "https://h/multica"
        );
        assert_eq!(normalize_server_url(" http://h:1/ ").unwrap(), "http://h:1");
        assert!(
            normalize_server_url("ftp://h")
                .unwrap_err()
                .contains("scheme")
        );
        assert!(normalize_server_url("").is_err());
        assert!(normalize_server_url("not a url").is_err());
    }
}
